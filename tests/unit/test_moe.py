"""Mixture of experts: active parameters, expert tensors, contradictory fields, GGUF mixes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from willitrun import archs, estimate, load_catalog
from willitrun.dtypes import F32, IQ2_XXS, IQ3_XXS, IQ4_XS, MXFP4, Q4_K, Q5_K, Q6_K, Q8_0, weight_dtype
from willitrun.errors import SpecError
from willitrun.memory import storage_types
from willitrun.specs import parse_model_spec


def spec(model_id: str):
    return load_catalog().resolve("model", model_id)


@pytest.mark.parametrize(
    ("model_id", "total", "active"),
    [
        # totals: the specs' parameters_declared (HF safetensors totals); active: the total less the routed
        # experts a token does not use, layers x (experts - per token) x 3 matrices x intermediate x hidden,
        # which round to the model cards' figures (Mistral AI: 12.9B per token; Qwen3 cards: 3.3B, 22B)
        ("mixtral-8x7b", 46_702_792_704, 46_702_792_704 - 32 * (8 - 2) * 3 * 14336 * 4096),
        ("qwen3-30b-a3b", 30_532_122_624, 30_532_122_624 - 48 * (128 - 8) * 3 * 768 * 2048),
        ("qwen3-235b-a22b", 235_093_634_560, 235_093_634_560 - 94 * (128 - 8) * 3 * 1536 * 4096),
    ],
)
def test_total_and_active_parameters(model_id, total, active):
    e = estimate(spec(model_id))
    assert (e.parameters, e.active_parameters) == (total, active)


def test_active_by_hand_qwen3_30b():
    # per layer 128 experts x 3 x 768 x 2048; a token uses 8 of them
    s = spec("qwen3-30b-a3b")
    expert = 3 * 768 * 2048
    assert estimate(s).parameters - estimate(s).active_parameters == 48 * (128 - 8) * expert


def test_experts_are_fused_3d_tensors():
    t = [t for t in archs.model_tensors(spec("qwen3-30b-a3b")) if t.layer == 0 and t.role.endswith("_exps")]
    assert [(x.role, x.shape) for x in t] == [
        ("ffn_gate_exps", (128, 768, 2048)),
        ("ffn_up_exps", (128, 768, 2048)),
        ("ffn_down_exps", (128, 2048, 768)),
    ]


def test_dense_model_active_equals_total():
    e = estimate(spec("llama-3-8b"))
    assert e.active_parameters == e.parameters and e.expert_bytes == ()


def test_more_experts_per_token_than_experts_is_one_line_error():
    doc = yaml.safe_load((Path(__file__).parents[2] / "model_specs" / "mixtral-8x7b.yaml").read_text())
    doc["config"]["num_experts_per_tok"] = 9
    with pytest.raises((SpecError, ValueError)) as exc:
        parse_model_spec(doc)
    msg = str(exc.value)
    assert "num_experts_per_tok (9) is more than the 8 experts per layer" in msg


def _types(model_id, dtype):
    s = spec(model_id)
    return {t.name: st for t, st in zip(archs.model_tensors(s), storage_types(s, weight_dtype(dtype)), strict=True)}


def test_mixtral_q4_k_m_mix():
    # llama-quant.cpp: 8 experts raise attn_v / attn_k to q8_0 and attn_output to q5_K; ffn_down of
    # use_more_bits layers (layer 0 of 32) q6_K, others q4_K; the router stays f32
    t = _types("mixtral-8x7b", "q4_k_m")
    assert t["decoder.0.attn_v.weight"] is Q8_0 and t["decoder.0.attn_k.weight"] is Q8_0
    assert t["decoder.0.attn_output.weight"] is Q5_K
    assert t["decoder.0.ffn_down_exps.weight"] is Q6_K and t["decoder.4.ffn_down_exps.weight"] is Q4_K
    assert t["decoder.0.ffn_gate_inp.weight"] is F32 and t["decoder.0.ffn_up_exps.weight"] is Q4_K


def test_iquant_and_mxfp4_mixes():
    t = _types("qwen3-30b-a3b", "iq4_xs")
    assert t["decoder.5.ffn_up_exps.weight"] is IQ4_XS and t["decoder.5.attn_v.weight"] is Q5_K  # n_gqa 8 >= 4
    t = _types("qwen3-30b-a3b", "iq3_xxs")
    assert t["decoder.5.ffn_up_exps.weight"] is IQ3_XXS and t["output.weight"] is Q5_K
    t = _types("qwen3-30b-a3b", "iq2_xxs")
    assert t["decoder.5.ffn_up_exps.weight"] is IQ2_XXS and t["decoder.5.attn_v.weight"] is Q4_K
    t = _types("qwen3-30b-a3b", "mxfp4")
    assert t["decoder.5.ffn_up_exps.weight"] is MXFP4 and t["decoder.5.attn_q.weight"] is Q8_0
    assert t["output.weight"] is Q8_0


@pytest.mark.parametrize(("storage", "bpw"), [(IQ2_XXS, 2.0625), (IQ3_XXS, 3.0625), (IQ4_XS, 4.25), (MXFP4, 4.25)])
def test_block_sizes(storage, bpw):
    assert storage.bits_per_element == bpw


def test_qwen3_30b_q4_k_m_file_size():
    # Qwen/Qwen3-30B-A3B-GGUF Qwen3-30B-A3B-Q4_K_M.gguf is 18.6 GB; the tensors alone:
    assert round(estimate(spec("qwen3-30b-a3b"), dtype="q4_k_m").weights_bytes / 1e9, 1) == 18.6


def test_mixtral_8x22b_q4_k_m_file_size():
    # bartowski/Mixtral-8x22B-v0.1-GGUF, quantized with llama.cpp b2636 (merged ffn_*_exps tensors):
    # "Mixtral-8x22B-v0.1-Q4_K_M.gguf Q4_K_M 85.58GB" (model card's file table). The file adds a few
    # MB of metadata and tokenizer to the tensors. (TheBloke's Dec-2023 8x7B Q4_K_M, 26.44 GB against
    # 28.45 GB here, was made before the merged expert tensors, by an older quantizer: not comparable.)
    assert abs(estimate(spec("mixtral-8x22b"), dtype="q4_k_m").weights_bytes - 85.58e9) < 0.03e9


def _layout(model_id, dtype):
    from willitrun.layers import layout
    from willitrun.memory import Request, resolve

    s = spec(model_id)
    return layout(resolve(s, Request(dtype=dtype))), estimate(s, dtype=dtype)


def test_decode_reads_only_the_active_experts():
    from willitrun.speed import decode_speed

    lay, est = _layout("qwen3-30b-a3b", "q4_k_m")
    sp = decode_speed(lay, est, 716_800_000_000)
    dense = sum(x.decode_bytes for x in lay.layers) + lay.output_decode_bytes
    assert sp.weights_read_bytes == dense - sum(b - b * 8 // 128 for b in est.expert_bytes)
    assert sp.weights_read_bytes < dense / 4  # 3.3B of 30.5B parameters active


def test_expert_offload_speed_and_buffers():
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request
    from willitrun.speed import moe_offload_speed

    s = spec("qwen3-30b-a3b")
    full = llamacpp_estimate(s, Request(dtype="q4_k_m"))
    off = llamacpp_estimate(s, Request(dtype="q4_k_m"), LlamaCppOptions(n_cpu_moe=12))
    lay, est = _layout("qwen3-30b-a3b", "q4_k_m")
    moved = sum(est.expert_bytes[:12])
    assert full.gpu_bytes - off.gpu_bytes >= moved  # 128-byte alignment aside
    assert full.gpu_bytes - off.gpu_bytes - moved < 128 * 3 * 12
    assert off.facts["n_cpu_moe"] == 12
    sp = moe_offload_speed(lay, est, 12, 716_800_000_000)
    assert sp.terms[1].where == "system memory" and sp.terms[1].bytes == sum(
        b * 8 // 128 for b in est.expert_bytes[:12]
    )


def test_n_cpu_moe_on_a_dense_model_is_an_error():
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.errors import UsageError
    from willitrun.memory import Request

    with pytest.raises(UsageError, match="mixture-of-experts"):
        llamacpp_estimate(spec("llama-3-8b"), Request(dtype="q4_k_m"), LlamaCppOptions(n_cpu_moe=4))


def test_qwen3_30b_q4_k_m_on_a_16_gb_card():
    """The issue's acceptance: does not fit whole on an RTX 4080 (16 GiB), fits with --n-cpu-moe 10."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    s = spec("qwen3-30b-a3b")
    card = 16 * 2**30
    assert llamacpp_estimate(s, Request(dtype="q4_k_m")).gpu_bytes > card
    assert llamacpp_estimate(s, Request(dtype="q4_k_m"), LlamaCppOptions(n_cpu_moe=10)).gpu_bytes < card - 2**30


@pytest.mark.parametrize("model_id", ["qwen3-30b-a3b", "mixtral-8x7b", "qwen3-235b-a22b", "mixtral-8x22b"])
def test_import_from_config_json_matches_the_catalog(model_id):
    from willitrun.importers.configs import spec_from_config

    doc = yaml.safe_load((Path(__file__).parents[2] / "model_specs" / f"{model_id}.yaml").read_text())
    cfg = {**doc["config"], "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6}  # keys the spec drops are ignored
    s = spec_from_config(cfg, source="config.json")
    assert (estimate(s).parameters, estimate(s).active_parameters) == (
        estimate(spec(model_id)).parameters,
        estimate(spec(model_id)).active_parameters,
    )


def test_import_contradictory_experts_is_one_line():
    from willitrun.importers.configs import spec_from_config

    cfg = {
        "model_type": "qwen3_moe",
        "num_experts": 4,
        "num_experts_per_tok": 8,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
        "intermediate_size": 64,
        "moe_intermediate_size": 32,
        "max_position_embeddings": 128,
        "head_dim": 16,
    }
    with pytest.raises(SpecError) as exc:
        spec_from_config(cfg, source="config.json")
    assert "num_experts_per_tok (8) is more than the 4 experts per layer" in str(exc.value)


def test_deepseek_v3_latent_kv_per_engine():
    """transformers 5.23 caches kv_nope (512) and k_rot (64) per layer -- measured on a small copy in
    tests/reference -- vLLM one 576-element MLA entry, llama.cpp K 576 + V 512 (head_count_kv 1)."""
    from willitrun.engines.llamacpp import llamacpp_estimate
    from willitrun.engines.vllm import VllmOptions, vllm_estimate
    from willitrun.memory import Request

    s = spec("deepseek-v3")
    assert estimate(s, context=4096).kv_self_bytes == 61 * 576 * 2 * 4096  # 70,272 B per token
    from willitrun.engines.llamacpp import LlamaCppOptions

    # before llama.cpp PR #19067 (2026-01-24) K 576 + V 512 per cell; from it K only ("V-less cache")
    lc = llamacpp_estimate(s, Request(dtype="q4_k_m", context=4096), LlamaCppOptions(version="2025-11"))
    assert lc.kind_bytes("kv_self") == 61 * (576 + 512) * 2 * 4096
    assert llamacpp_estimate(s, Request(dtype="q4_k_m", context=4096)).kind_bytes("kv_self") == 61 * 576 * 2 * 4096
    v = vllm_estimate(s, Request(context=4096), VllmOptions(total_memory_bytes=8 * 80 * 2**30))
    assert "70272 B per token" in next(b for b in v.buffers if b.kind == "kv_self").detail
    # what a full-head cache (transformers 4.x) would hold: 128 heads x (192 + 128) per layer
    assert any("128 heads x (192 K + 128 V) = 40960" in n for n in lc.notes)


def test_deepseek_totals():
    v3 = estimate(spec("deepseek-v3"))
    assert v3.parameters == 671_026_404_352  # transformers; the hub's 684.5B adds the MTP layer
    assert round(v3.active_parameters / 1e9) == 38  # DeepSeek: "37B activated" (without embeddings)
    assert v3.dtype == "fp8-block"  # the published checkpoint
    lite = estimate(spec("deepseek-v2-lite"))
    assert (lite.parameters, round(lite.active_parameters / 1e9, 1)) == (15_706_484_224, 2.7)  # card: 2.4B activated


def test_import_deepseek_v3_config_json_with_fp8():
    from willitrun.importers.configs import spec_from_config

    doc = yaml.safe_load((Path(__file__).parents[2] / "model_specs" / "deepseek-v3.yaml").read_text())
    cfg = {
        **doc["config"],
        "torch_dtype": "bfloat16",
        "model_type": "deepseek_v3",
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
    }
    s = spec_from_config(cfg, source="config.json")
    assert s.quantization == "fp8-block"
    assert estimate(s).weights_bytes == estimate(spec("deepseek-v3")).weights_bytes


def test_gpt_oss_checkpoint_and_windows():
    """openai/gpt-oss-20b: 20,914,757,184 parameters, MXFP4 experts, 12.8 GiB as published; half
    its layers slide over 128 positions, which llama.cpp caches per window (iswa)."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    s = spec("gpt-oss-20b")
    e = estimate(s)
    assert e.dtype == "mxfp4-experts" and round(e.weights_bytes / 2**30, 1) == 12.8
    # OpenAI's model card: 3.6B active -- every active weight but the input embedding (a row lookup)
    assert round((e.active_parameters - 579_133_440) / 1e9, 1) == 3.6
    lc = llamacpp_estimate(s, Request(dtype="mxfp4", context=32768), LlamaCppOptions(parallel=1))  # one sequence
    # 12 full layers x 32768 cells + 12 sliding layers x pad(128 + 512, 256) = 768 cells; 2 x 8 x 64 x f16
    assert lc.kind_bytes("kv_self") == 12 * 2 * 512 * 2 * 32768 + 12 * 2 * 512 * 2 * 768


def test_import_gpt_oss_config_json():
    """gpt-oss's config.json names no dtype and says quant_method mxfp4: imported as published."""
    from willitrun.importers.configs import spec_from_config

    doc = yaml.safe_load((Path(__file__).parents[2] / "model_specs" / "gpt-oss-20b.yaml").read_text())
    cfg = {
        **doc["config"],
        "model_type": "gpt_oss",
        "experts_per_token": 4,
        "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]},
    }
    s = spec_from_config(cfg, source="config.json")
    assert (s.quantization, s.dtype) == ("mxfp4-experts", "bfloat16")
    assert estimate(s).weights_bytes == estimate(spec("gpt-oss-20b")).weights_bytes


def test_llama4_scout_chunked_layers():
    """36 of 48 layers attend within 8192-token chunks: llama.cpp caches them per chunk (iswa);
    only the 12 NoPE layers grow: 12 x 2 x 8 x 128 x 2 B = 49,152 B per token."""
    from willitrun.engines.llamacpp import LlamaCppOptions, llamacpp_estimate
    from willitrun.memory import Request

    s = spec("llama-4-scout-text")
    e = estimate(s)
    # total: transformers' count (tests/reference/reference.json); active: less the 15 of 16 routed experts a
    # token skips in each of the 48 MoE layers (3 matrices of 8192 x 5120) -- Meta's "17B active"
    total = 107_769_861_120
    assert (e.parameters, e.active_parameters) == (total, total - 48 * 15 * 3 * 8192 * 5120)
    kinds = [k.kind for k in archs.geometry(s).self_kv]
    assert kinds.count("chunked") == 36 and [i for i, k in enumerate(kinds) if k == "full"][:2] == [3, 7]
    lc = llamacpp_estimate(s, Request(dtype="q4_k_m", context=131072), LlamaCppOptions(parallel=1))  # one sequence
    per_cell = 2 * 8 * 128 * 2
    assert (
        lc.kind_bytes("kv_self") == 12 * per_cell * 131072 + 36 * per_cell * 8704
    )  # 8192 + ubatch 512, a multiple of 256


def test_gguf_moe_metadata_to_spec():
    """A Qwen3-30B-A3B GGUF header's metadata (convert_hf_to_gguf.py keys) gives the catalog's shapes."""
    from willitrun.importers.gguf_file import GGUFHeader, family_rules, is_moe, moe_config
    from willitrun.importers.weights import StoredTensor

    a = "qwen3moe"
    meta = {
        "general.architecture": a,
        f"{a}.block_count": 48,
        f"{a}.embedding_length": 2048,
        f"{a}.attention.head_count": 32,
        f"{a}.attention.head_count_kv": 4,
        f"{a}.context_length": 40960,
        f"{a}.expert_count": 128,
        f"{a}.expert_used_count": 8,
        f"{a}.expert_feed_forward_length": 768,
        f"{a}.feed_forward_length": 6144,
        f"{a}.attention.key_length": 128,
        f"{a}.attention.value_length": 128,
    }
    tensors = [
        StoredTensor("token_embd.weight", "Q4_K", (151936, 2048), 0),
        StoredTensor("output.weight", "Q6_K", (151936, 2048), 0),
    ]
    header = GGUFHeader(3, meta, tensors, 0, 0)
    assert is_moe(header)
    rules = family_rules(a)  # archs/qwen_moe.py reads qwen3moe files into its own spec
    assert rules is not None and rules.moe is not None
    arch, cfg, _ = moe_config(header, Path("x.gguf"), rules.moe)
    s = parse_model_spec(
        {
            "id": "x",
            "name": "x",
            "architecture": arch,
            "dtype": "bfloat16",
            "sources": {"config": "x.gguf"},
            "config": cfg,
        }
    )
    assert estimate(s).parameters == estimate(spec("qwen3-30b-a3b")).parameters
