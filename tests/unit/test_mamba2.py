"""Mamba-2 (Mamba-Codestral 7B): parameters, a recurrent state constant in the context (conv in the
model's dtype, SSM in float32), no KV cache, llama.cpp's f32 state, and one-line errors for
contradictory shapes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun import archs, estimate, load_catalog
from willitrun.errors import SpecError

# Mamba-Codestral 7B (model_specs/mamba-codestral-7b.yaml): 64 layers, d_inner = 2 x 4096 = 8192 =
# 128 heads x 64, n_groups 8, state_size 128, conv_kernel 4.
LAYERS, D_INNER, HEADS, HEAD_DIM, GROUPS, STATE, KERNEL = 64, 8192, 128, 64, 8, 128, 4
CONV_CHANNELS = D_INNER + 2 * GROUPS * STATE  # 10,240: the GGUF's ssm_conv1d.bias has this many
CONV = LAYERS * CONV_CHANNELS * KERNEL
SSM = LAYERS * HEADS * HEAD_DIM * STATE

CODESTRAL_CONFIG = {  # the config.json of model_specs/mamba-codestral-7b.yaml's sources, less token ids
    "architectures": ["Mamba2ForCausalLM"],
    "chunk_size": 256,
    "conv_kernel": 4,
    "expand": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.1,
    "intermediate_size": 8192,
    "layer_norm_epsilon": 1e-05,
    "model_type": "mamba2",
    "n_groups": 8,
    "norm_before_gate": True,
    "num_heads": 128,
    "num_hidden_layers": 64,
    "rescale_prenorm_residual": False,
    "residual_in_fp32": True,
    "state_size": 128,
    "tie_word_embeddings": False,
    "time_step_floor": 0.0001,
    "time_step_init_scheme": "random",
    "time_step_limit": [0.0, float("inf")],
    "time_step_max": 0.1,
    "time_step_min": 0.001,
    "time_step_rank": 256,
    "time_step_scale": 1.0,
    "torch_dtype": "bfloat16",
    "use_bias": False,
    "use_cache": True,
    "use_conv_bias": True,
    "vocab_size": 32768,
}


def codestral():
    return load_catalog().resolve("model", "mamba-codestral-7b")


def test_parameters_and_state():
    s = codestral()
    e = estimate(s, context=4096)
    assert e.parameters == 7_285_403_648  # transformers 5.23 on the meta device (tests/reference/reference.json)
    g = archs.geometry(s)
    assert (g.conv_state_elements, g.ssm_state_elements) == (CONV, SSM)
    assert e.kv_self_bytes == 0 and e.attention.self_layers == 0
    assert e.state_bytes == CONV * 2 + SSM * 4  # conv in bf16, SSM in float32 (reference.json state_dtypes_bf16)


@pytest.mark.parametrize("batch", [1, 3])
def test_state_is_constant_in_context_and_scales_with_sequences(batch):
    s = codestral()
    short, long = estimate(s, context=512, batch=batch), estimate(s, context=1_000_000, batch=batch)
    assert short.state_bytes == long.state_bytes == batch * (CONV * 2 + SSM * 4)
    assert not archs.geometry(s).cache_grows_with_context
    assert any("memory does not bound the context" in n for n in short.notes)


def test_cli_says_the_context_is_unbounded():
    from willitrun.cli import app

    r = CliRunner().invoke(app, ["mamba-codestral-7b", "--gpu", "rtx3090"])
    assert r.exit_code == 0, r.output
    assert "recurrent state (conv + SSM)" in r.stdout
    assert "Largest context that fits" not in r.stdout
    r = CliRunner().invoke(app, ["mamba-codestral-7b", "--gpu", "rtx3090", "--json"])
    assert json.loads(r.stdout)["state_bytes"] == CONV * 2 + SSM * 4


def test_llamacpp_recurrent_state():
    """llama-hparams.cpp: n_embd_r = (d_conv - 1) x (d_inner + 2 x n_group x d_state), n_embd_s =
    d_state x d_inner, both f32, per sequence (n_seq_max cells)."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    e = llamacpp_estimate(codestral(), Request(dtype="q4_k_m", context=8192), LlamaCppOptions(parallel=2))
    state = sum(b.bytes for b in e.buffers if b.name.startswith("recurrent state"))
    assert state == LAYERS * ((KERNEL - 1) * CONV_CHANNELS + STATE * D_INNER) * 4 * 2
    assert not [b for b in e.buffers if b.name.startswith("KV cache") and b.bytes]


def test_vllm_sizes_the_state_pool_from_0_10_and_refuses_before():
    """vLLM before 0.10 runs state-space models on V0 only (not modelled: refused plainly); from 0.10 its
    MambaSpec pool holds one state per sequence (engines/vllm.py, tests/engines/test_vllm_hybrid.py)."""
    from willitrun.engines.vllm import VllmOptions, vllm_estimate
    from willitrun.errors import UsageError
    from willitrun.memory import Request

    with pytest.raises(UsageError, match="Mamba state pools"):
        vllm_estimate(codestral(), Request(), VllmOptions(total_memory_bytes=80 * 2**30, version="0.9"))
    fit = vllm_estimate(codestral(), Request(), VllmOptions(total_memory_bytes=80 * 2**30))
    assert any("MambaSpec" in b.detail or " mamba of " in b.detail for b in fit.buffers)


def test_import_config_json():
    """intermediate_size is read by no Mamba2Mixer tensor: dropped; the count is transformers' own."""
    from willitrun.importers.configs import spec_from_config

    s = spec_from_config(CODESTRAL_CONFIG, source="config.json")
    assert s.architecture == "mamba2" and s.dtype == "bfloat16"
    assert estimate(s).parameters == 7_285_403_648
    assert "intermediate_size" not in s.config.model_fields_set


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_heads": 100}, "the Mamba-2 heads (100 x head_dim 64 = 6400) must equal the SSM inner width"),
        ({"head_dim": 32}, "must equal the SSM inner width (8192)"),
        ({"n_groups": 3}, "heads (128) are not a multiple of n_groups (3)"),
        ({"num_heads": 0}, "num_heads: Input should be greater than 0"),
    ],
)
def test_contradictory_shapes_are_one_line(change, message):
    from willitrun.importers.configs import spec_from_config

    with pytest.raises(SpecError) as err:
        spec_from_config({**CODESTRAL_CONFIG, **change}, source="config.json")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_validate_reports_a_contradiction_in_one_line(tmp_path):
    from willitrun.cli import app

    text = (load_catalog().files("model")["mamba-codestral-7b"]).read_text()
    (tmp_path / "model_specs").mkdir()
    bad = tmp_path / "model_specs" / "bad-mamba2.yaml"
    bad.write_text(
        text.replace("id: mamba-codestral-7b", "id: bad-mamba2").replace("  num_heads: 128", "  num_heads: 96")
    )
    r = CliRunner().invoke(app, ["validate", str(bad)])
    assert r.exit_code == 3
    lines = [line for line in r.output.splitlines() if "Mamba-2 heads" in line]
    assert len(lines) == 1 and "bad-mamba2.yaml" in lines[0]
    r = CliRunner().invoke(app, ["bad-mamba2", "--specs-dir", str(tmp_path), "--gpu", "rtx3090"])
    assert r.exit_code == 3 and "Mamba-2 heads" in r.output and "Traceback" not in r.output


# ---- GGUF import ---------------------------------------------------------------------------------
SMALL = {
    "model_type": "mamba2",
    "vocab_size": 96,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_heads": 8,
    "head_dim": 16,
    "state_size": 16,
    "expand": 2,
    "conv_kernel": 4,
    "n_groups": 2,
    "use_bias": False,
    "use_conv_bias": True,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}


def write_mamba2_gguf(path, spec, *, heads=None):
    """The GGUF convert_hf_to_gguf.py (Mamba2Model) would write for `spec`: mamba2.ssm.* keys (the head
    count in ssm.time_step_rank, as in Codestral's GGUF: 128) and every tensor under llama.cpp's name."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    c = spec.config
    w = gguf.GGUFWriter(str(path), "mamba2")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(2**20)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(0)
    w.add_head_count(0)
    w.add_ssm_conv_kernel(c.conv_kernel)
    w.add_ssm_state_size(c.state_size)
    w.add_ssm_group_count(c.n_groups)
    w.add_ssm_inner_size(c.inner)
    w.add_ssm_time_step_rank(heads or c.num_heads)
    w.add_file_type(0)
    for t in archs.model_tensors(spec):
        name = t.name.replace("decoder.output_norm", "output_norm").replace("decoder.", "blk.")
        w.add_tensor(name, np.zeros(t.shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_import(tmp_path):
    from willitrun.importers import spec_from_path
    from willitrun.importers.configs import spec_from_config

    original = spec_from_config(SMALL, source="config.json")
    spec, weights = spec_from_path(write_mamba2_gguf(tmp_path / "m.gguf", original))
    assert spec.architecture == "mamba2"
    fields = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_heads",
        "head_dim",
        "state_size",
        "expand",
        "conv_kernel",
        "n_groups",
        "use_bias",
        "use_conv_bias",
        "tie_word_embeddings",
    )
    assert {f: getattr(spec.config, f) for f in fields} == {f: getattr(original.config, f) for f in fields}
    assert weights is not None and weights.elements == estimate(original).parameters


def test_gguf_whose_head_count_disagrees_with_its_tensors_is_one_error(tmp_path):
    from willitrun.importers import spec_from_path
    from willitrun.importers.configs import spec_from_config

    original = spec_from_config(SMALL, source="config.json")
    with pytest.raises(SpecError, match="ssm_a does not hold one value per head") as err:
        spec_from_path(write_mamba2_gguf(tmp_path / "m.gguf", original, heads=4))
    assert "\n" not in str(err.value)
