"""Granite 4.0-H (granitemoehybrid): KV only on the attention layers, a Mamba-2 state on the others,
routed experts plus an always-on shared MLP, config.json import, one-line errors for contradictions.

No Granite 4.0-H config.json was found verbatim (docs/research/issue10/granite-4.0-h-small.yaml), so
the family is checked on the test shapes of tests/reference/family_specs, whose parameter counts and
caches transformers measured (tests/reference/reference.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from willitrun import archs, estimate
from willitrun.catalog import load_spec
from willitrun.errors import SpecError
from willitrun.importers.configs import spec_from_config

FAMILY_SPECS = Path(__file__).resolve().parents[1] / "reference" / "family_specs"


def shape(name: str):
    return load_spec(FAMILY_SPECS / f"granitemoehybrid-{name}-shape.yaml", "model")


# granitemoehybrid-moe-shape: hidden 512, layers [mamba, attention, mamba, mamba], 8 heads / 2 KV heads
# (head_dim 512 / 8 = 64), 8 experts of 128, top 2, shared 256, 16 Mamba heads x 64, 2 groups, d_state 32.
MOE_KV_PER_TOKEN = 1 * 2 * 2 * 64  # one attention layer, K and V, 2 KV heads x 64
MOE_CONV = 3 * (1024 + 2 * 2 * 32) * 4  # three Mamba layers x (d_inner + 2 x groups x d_state) x d_conv
MOE_SSM = 3 * 16 * 64 * 32


def test_kv_only_on_attention_layers_and_state_on_mamba_layers():
    s = shape("moe")
    g = archs.geometry(s)
    assert [i for i, k in enumerate(g.self_kv) if k is not None] == [1]
    assert [i for i, st in enumerate(g.ssm_state) if st != (0, 0)] == [0, 2, 3]
    e = estimate(s, context=1000, dtype="bf16")
    assert e.parameters == 14_012_944  # transformers 5.23 (tests/reference/reference.json)
    assert e.kv_self_bytes == MOE_KV_PER_TOKEN * 1000 * 2
    assert e.state_bytes == MOE_CONV * 2 + MOE_SSM * 4  # conv in bf16, SSM in float32
    assert estimate(s, context=2000, dtype="bf16").state_bytes == e.state_bytes
    assert g.cache_grows_with_context


def test_active_parameters_count_routed_and_shared():
    """Each token reads 2 of the 8 experts of each of the 4 layers; the shared MLP always."""
    s = shape("moe")
    e = estimate(s)
    expert = 3 * 128 * 512  # gate, up, down of one expert
    assert (archs.geometry(s).experts, archs.geometry(s).experts_per_token) == (8, 2)
    assert e.parameters - e.active_parameters == 4 * (8 - 2) * expert


def test_no_routed_experts_and_no_layer_types():
    """num_local_experts 0: no router, no experts, only the shared MLP; no layer_types: every layer
    is Mamba-2 (GraniteMoeHybridConfig.__post_init__), so nothing grows with the context."""
    s = shape("dense")
    g = archs.geometry(s)
    e = estimate(s)
    assert e.parameters == 7_140_972  # transformers 5.23 (tests/reference/reference.json)
    assert (g.experts, g.experts_per_token) == (0, 0) and e.active_parameters == e.parameters
    assert g.self_layers == () and not g.cache_grows_with_context
    assert not any(t.role.startswith("ffn_gate_inp") or t.role.endswith("_exps") for t in archs.model_tensors(s))


def test_llamacpp_hybrid_memory():
    """llama_memory_hybrid: KV cells for the attention layer only; f32 recurrent state (llama-hparams.cpp
    n_embd_r = (d_conv - 1) x (d_inner + 2 x n_group x d_state), n_embd_s = d_state x d_inner) for the
    three Mamba layers."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    e = llamacpp_estimate(shape("moe"), Request(dtype="q8_0", context=4096), LlamaCppOptions(parallel=1))
    kv = sum(b.bytes for b in e.buffers if b.name.startswith("KV cache"))
    state = sum(b.bytes for b in e.buffers if b.name.startswith("recurrent state"))
    assert kv == MOE_KV_PER_TOKEN * 4096 * 2  # f16 cache
    assert state == 3 * (3 * (1024 + 2 * 2 * 32) + 32 * 1024) * 4
    # llama-server's default -np auto keeps one state per slot: 4 (tools/server/server.cpp, PR #16736)
    server = llamacpp_estimate(shape("moe"), Request(dtype="q8_0", context=4096))
    assert sum(b.bytes for b in server.buffers if b.name.startswith("recurrent state")) == 4 * state


GRANITE_JSON = {  # the fields of a granitemoehybrid config.json (shape of tests/reference/family_specs)
    "model_type": "granitemoehybrid",
    "vocab_size": 1000,
    "hidden_size": 512,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "shared_intermediate_size": 256,
    "layer_types": ["mamba", "attention", "mamba", "mamba"],
    "mamba_n_heads": 16,
    "mamba_d_head": 64,
    "mamba_n_groups": 2,
    "mamba_d_state": 32,
    "mamba_d_conv": 4,
    "mamba_expand": 2,
    "torch_dtype": "bfloat16",
    "position_embedding_type": "nope",
    "normalization_function": "rmsnorm",
    "attention_multiplier": 0.015625,
}


def test_import_config_json():
    s = spec_from_config(GRANITE_JSON, source="config.json")
    assert s.architecture == "granitemoehybrid"
    assert estimate(s).parameters == estimate(shape("moe")).parameters
    legacy = {k: v for k, v in GRANITE_JSON.items() if k != "layer_types"} | {
        "layers_block_type": GRANITE_JSON["layer_types"]
    }
    s = spec_from_config(legacy, source="config.json")
    assert [k is not None for k in archs.geometry(s).self_kv] == [False, True, False, False]
    assert "layers_block_type read as layer_types" in (s.notes or "")


def test_import_without_layer_types_is_all_mamba():
    cfg = {k: v for k, v in GRANITE_JSON.items() if k != "layer_types"}
    s = spec_from_config(cfg, source="config.json")
    assert archs.geometry(s).self_layers == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_experts_per_tok": 9}, "num_experts_per_tok (9) is more than the 8 experts per layer"),
        ({"num_experts_per_tok": 0}, "num_experts_per_tok is 0 with 8 experts per layer"),
        ({"mamba_d_head": 32}, "the Mamba-2 heads (16 x head_dim 32 = 512) must equal the SSM inner width (1024)"),
        ({"mamba_d_head": "auto", "mamba_n_heads": 24}, "mamba_n_heads (24) must divide mamba_expand x hidden_size"),
        ({"mamba_n_groups": 3}, "heads (16) are not a multiple of n_groups (3)"),
        ({"mamba_n_heads": 0}, "mamba_n_heads: Input should be greater than 0"),
        ({"num_attention_heads": 0}, "num_attention_heads: Input should be greater than 0"),
        ({"num_key_value_heads": 3}, "num_attention_heads (8) is not a multiple of num_key_value_heads (3)"),
        ({"layer_types": ["mamba", "attention"]}, "layer_types has 2 entries for 4 layers"),
        ({"layer_types": ["mamba", "moe", "mamba", "mamba"]}, "layer_types.1"),
    ],
)
def test_contradictions_are_one_line(change, message):
    with pytest.raises(SpecError) as err:
        spec_from_config({**GRANITE_JSON, **change}, source="config.json")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_zero_experts_take_any_experts_per_token():
    """transformers builds no block_sparse_moe without experts, whatever num_experts_per_tok says."""
    s = spec_from_config({**GRANITE_JSON, "num_local_experts": 0, "num_experts_per_tok": 2}, source="config.json")
    assert archs.geometry(s).experts_per_token == 0


def test_vllm_sizes_the_state_pool_from_0_10_and_refuses_before():
    """vLLM before 0.10 runs state-space models on V0 only (not modelled: refused plainly); from 0.10 its
    MambaSpec pool holds one state per sequence (engines/vllm.py, tests/engines/test_vllm_hybrid.py)."""
    from willitrun.engines.vllm import VllmOptions, vllm_estimate
    from willitrun.errors import UsageError
    from willitrun.memory import Request

    with pytest.raises(UsageError, match="Mamba state pools"):
        vllm_estimate(shape("moe"), Request(), VllmOptions(total_memory_bytes=80 * 2**30, version="0.9"))
    fit = vllm_estimate(shape("moe"), Request(), VllmOptions(total_memory_bytes=80 * 2**30))
    assert any("MambaSpec" in b.detail or " mamba of " in b.detail for b in fit.buffers)


# ---- GGUF import ---------------------------------------------------------------------------------
def gguf_name(name: str, moe: bool) -> str:
    """willitrun's tensor names are llama.cpp's under blk.N (the shared MLP: ffn_*_shexp with experts,
    plain ffn_* without, as convert_hf_to_gguf.py GraniteMoeModel.modify_tensors writes them)."""
    name = name.replace("decoder.output_norm", "output_norm").replace("decoder.", "blk.")
    return (
        name.replace("shexp.ffn_gate.", "ffn_gate_shexp." if moe else "ffn_gate.")
        .replace("shexp.ffn_up.", "ffn_up_shexp." if moe else "ffn_up.")
        .replace("shexp.ffn_down.", "ffn_down_shexp." if moe else "ffn_down.")
    )


def write_granite_gguf(path: Path, spec) -> Path:
    """The GGUF convert_hf_to_gguf.py (GraniteHybridModel) would write for `spec`: its metadata keys and
    every tensor of the model under llama.cpp's name, F32."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    c = spec.config
    w = gguf.GGUFWriter(str(path), "granitehybrid")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(2**20)  # GraniteHybridModel: no rope -> 2**20
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv([c.kv_heads if c.is_attention(i) else 0 for i in range(c.num_hidden_layers)])
    w.add_expert_count(c.num_local_experts)
    w.add_expert_used_count(c.num_experts_per_tok)
    w.add_expert_shared_feed_forward_length(c.shared_intermediate_size)
    w.add_ssm_conv_kernel(c.mamba_d_conv)
    w.add_ssm_state_size(c.mamba_d_state)
    w.add_ssm_group_count(c.mamba_n_groups)
    w.add_ssm_inner_size(c.d_inner)
    w.add_ssm_time_step_rank(c.mamba_n_heads)
    w.add_embedding_scale(12.0)
    w.add_file_type(0)  # ALL_F32
    for t in archs.model_tensors(spec):
        w.add_tensor(gguf_name(t.name, c.num_local_experts > 0), np.zeros(t.shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("name", ["moe", "dense"])
def test_gguf_import(tmp_path, name):
    """The importer reads the layer kinds from the per-layer KV head counts, the Mamba-2 widths from
    ssm.*, and its parameter count must equal the file's tensors (checked inside the import)."""
    from willitrun.importers import spec_from_path

    original = shape(name)
    spec, weights = spec_from_path(write_granite_gguf(tmp_path / f"{name}.gguf", original))
    assert spec.architecture == "granitemoehybrid"
    assert estimate(spec).parameters == estimate(original).parameters
    g, g0 = archs.geometry(spec), archs.geometry(original)
    assert (g.self_kv, g.ssm_state, g.experts, g.experts_per_token) == (
        g0.self_kv,
        g0.ssm_state,
        g0.experts,
        g0.experts_per_token,
    )
    assert spec.config.embedding_multiplier == 12.0
    assert weights is not None and weights.elements == estimate(original).parameters


def test_gguf_with_kv_heads_missing_per_layer_is_one_error(tmp_path):
    gguf = pytest.importorskip("gguf")
    from willitrun.importers import spec_from_path

    path = write_granite_gguf(tmp_path / "x.gguf", shape("moe"))
    # rewrite with a scalar head_count_kv: the layer kinds cannot be told
    w = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "granitehybrid")
    r = gguf.GGUFReader(str(path))
    for field in r.fields.values():
        if field.name.startswith("granitehybrid.") and field.name != "granitehybrid.attention.head_count_kv":
            w.add_key_value(
                field.name, field.contents(), field.types[0], field.types[-1] if len(field.types) > 1 else None
            )
    w.add_head_count_kv(2)
    for t in r.tensors:
        w.add_tensor(t.name, t.data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(SpecError, match="head_count_kv: expected one count per layer") as err:
        spec_from_path(tmp_path / "bad.gguf")
    assert "\n" not in str(err.value)


def test_list_architectures_names_the_gguf_architectures():
    """llama.cpp's names (llama-arch.cpp LLM_ARCH_MAMBA2 "mamba2", LLM_ARCH_GRANITE_HYBRID "granitehybrid")."""
    from willitrun.cli.commands.list import architecture_rows

    rows = {r["architecture"]: r for r in architecture_rows([])}
    assert rows["mamba2"]["gguf_architectures"] == ["mamba2"]
    assert rows["granitemoehybrid"]["gguf_architectures"] == ["granitehybrid"]
    assert rows["granitemoehybrid"]["config_model_type"] == "granitemoehybrid"
