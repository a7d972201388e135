"""State-space models: parameters, a recurrent state constant in the context, no KV cache."""

from __future__ import annotations

import pytest

from willitrun import archs, estimate, load_catalog


def spec(model_id: str):
    return load_catalog().resolve("model", model_id)


# params: transformers' counts (tests/reference/reference.json; mamba-2.8b also its parameters_declared).
# conv, ssm: state elements per sequence; the conv state takes the model's dtype, the SSM state float32
# (measured in a bfloat16 run: reference.json state_dtypes_bf16).
@pytest.mark.parametrize(
    ("model_id", "params", "conv", "ssm"),
    [
        # state-spaces/mamba-2.8b-hf: 64 layers x 5120 x (4 conv + 16 SSM) = 6,553,600 elements, float32 model
        ("mamba-2.8b", 2_768_345_600, 64 * 5120 * 4, 64 * 5120 * 16),
        # tiiuae/falcon-mamba-7b: intermediate_size 8192 (not expand 16 x hidden), 64 layers, bfloat16
        ("falcon-mamba-7b", 7_272_665_088, 64 * 8192 * 4, 64 * 8192 * 16),
    ],
)
def test_parameters_and_state(model_id, params, conv, ssm):
    s = spec(model_id)
    e = estimate(s, context=1024)
    assert e.parameters == params
    assert archs.geometry(s).state_elements == conv + ssm
    assert e.kv_self_bytes == 0 and e.attention.self_layers == 0
    assert e.state_bytes == conv * (4 if e.dtype == "fp32" else 2) + ssm * 4


def test_state_is_constant_in_context():
    s = spec("mamba-2.8b")
    small, large = estimate(s, context=1024), estimate(s, context=1_000_000)
    assert small.state_bytes == large.state_bytes and large.kv_self_bytes == 0
    assert not archs.geometry(s).cache_grows_with_context
    assert any("memory does not bound the context" in n for n in small.notes)


def test_batch_multiplies_state():
    s = spec("falcon-mamba-7b")
    assert estimate(s, batch=4).state_bytes == 4 * estimate(s).state_bytes


def test_llamacpp_recurrent_state():
    """llama.cpp: f32, the conv state one column shorter (d_conv - 1), per sequence."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    e = llamacpp_estimate(spec("mamba-2.8b"), Request(dtype="q8_0", context=8192), LlamaCppOptions(parallel=2))
    rs = [b for b in e.buffers if b.name.startswith("recurrent state")]
    assert sum(b.bytes for b in rs) == 64 * 5120 * (3 + 16) * 4 * 2


def test_import_falcon_mamba_config_json():
    """config.json says expand 16 and intermediate_size 8192: the explicit width wins, as in transformers."""
    from willitrun.importers.configs import spec_from_config

    cfg = {
        "model_type": "falcon_mamba",
        "conv_kernel": 4,
        "expand": 16,
        "hidden_size": 4096,
        "intermediate_size": 8192,
        "num_hidden_layers": 64,
        "state_size": 16,
        "tie_word_embeddings": False,
        "time_step_rank": 256,
        "torch_dtype": "bfloat16",
        "use_bias": False,
        "use_conv_bias": True,
        "vocab_size": 65024,
    }
    s = spec_from_config(cfg, source="config.json")
    assert estimate(s).parameters == 7_272_665_088  # transformers' count, tests/reference/reference.json


def test_jamba_kv_only_in_attention_layers():
    """Jamba 1.5 Mini: attention at layers 4, 12, 20, 28 (i % 8 == 4): 4 x 2 x 8 x 128 x 2 B = 16,384 B
    per token, 8x less than counting all 32 layers; 28 Mamba layers hold 8192 x 4 conv (bf16) and
    8192 x 16 SSM (float32) states."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    s = spec("jamba-mini-1.5")
    g = archs.geometry(s)
    assert [i for i, k in enumerate(g.self_kv) if k is not None] == [4, 12, 20, 28]
    e = estimate(s, context=4096)
    assert e.kv_self_bytes == 16_384 * 4096
    assert e.state_bytes == 28 * 8192 * (4 * 2 + 16 * 4)  # conv in bf16, SSM in float32
    assert (e.parameters, round(e.active_parameters / 1e9)) == (
        51_570_323_328,
        12,
    )  # transformers' count (reference.json); card: 52B total, 12B active
    lc = llamacpp_estimate(s, Request(dtype="q4_k_m", context=4096), LlamaCppOptions(parallel=1))  # one sequence
    assert sum(b.bytes for b in lc.buffers if b.name.startswith("KV cache")) == 16_384 * 4096
    assert sum(b.bytes for b in lc.buffers if b.name.startswith("recurrent")) == 28 * 8192 * (3 + 16) * 4
    assert archs.geometry(s).cache_grows_with_context


def test_falcon_h1_attention_and_state_in_every_layer():
    """Falcon-H1 7B: attention and Mamba-2 in parallel in all 44 layers: KV 44 x 2 x 2 x 128 x 2 B =
    45,056 B per token, plus per layer a conv state of (3072 + 2 x 256) x 4 in bf16 and an SSM state of
    24 heads x 128 x 256 in float32 (transformers' mamba2_chunk_scan returns it in float32:
    tests/reference/reference.json state_dtypes_bf16)."""
    s = spec("falcon-h1-7b")
    e = estimate(s, context=4096)
    assert e.parameters == 7_585_513_568  # transformers' count, tests/reference/reference.json
    assert e.kv_self_bytes == 45_056 * 4096
    assert e.state_bytes == 44 * (3584 * 4 * 2 + 24 * 128 * 256 * 4)


@pytest.mark.parametrize("model_id", ["mamba-2.8b", "jamba-mini-1.5", "falcon-h1-7b"])
def test_vllm_refuses_state_space_models_plainly(model_id):
    """Before vLLM 0.10 these run on V0 (mamba and jamba `SupportsV0Only` in vllm==0.9.2), not modelled;
    from 0.10 on engines/vllm.py sizes their MambaSpec pools (tests/engines/test_vllm_hybrid.py)."""
    from willitrun.engines.vllm import VllmOptions, vllm_estimate
    from willitrun.errors import UsageError
    from willitrun.memory import Request

    with pytest.raises(UsageError, match="Mamba state pools"):
        vllm_estimate(spec(model_id), Request(), VllmOptions(total_memory_bytes=80 * 2**30, version="0.9"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # FalconH1Config.validate_architecture: mamba_n_heads divides the SSM width, d_head x heads equals it
        ({"mamba_d_head": 64}, "the Mamba-2 heads (24 x head_dim 64 = 1536) must equal the SSM inner width (3072)"),
        ({"mamba_n_heads": 7, "mamba_d_head": "auto"}, "mamba_d_ssm (3072) must be a multiple of mamba_n_heads (7)"),
        ({"mamba_n_groups": 5}, "heads (24) are not a multiple of n_groups (5)"),
    ],
)
def test_falcon_h1_contradictory_mamba_heads_are_one_line(change, message):
    from willitrun.errors import SpecError
    from willitrun.importers.configs import spec_from_config

    cfg = {"model_type": "falcon_h1", **spec("falcon-h1-7b").config.model_dump(exclude_none=True), **change}
    with pytest.raises(SpecError) as err:
        spec_from_config(cfg, source="config.json")
    assert message in str(err.value) and "\n" not in str(err.value)
