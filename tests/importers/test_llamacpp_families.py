"""Families transformers does not ship but llama.cpp loads (issue 20 §3): Baichuan, InternLM2, Orion, MiniCPM,
DeepSeek-MoE v1. Their config.json (remote code, never executed) is read by the family's declaration; their GGUF
by its metadata. The two readings of one model must agree:

- parameters: the family's count from config.json equals the sum of the tensor table llama.cpp writes for the same
  hyperparameters (tensor names and shapes as ggml-org/llama.cpp src/llama-model.cpp load_tensors creates them:
  LLM_ARCH_BAICHUAN / INTERNLM2 / MINICPM are Llama's list (wq {n_embd, n_embd_head_k * n_head}, wk / wv
  {n_embd, n_embd_k_gqa}, wo, ffn_gate / ffn_up {n_embd, n_ff}, ffn_down {n_ff, n_embd}, attn_norm / ffn_norm /
  output_norm {n_embd}); LLM_ARCH_ORION adds a bias to attn_norm, ffn_norm and output_norm; LLM_ARCH_DEEPSEEK's
  first leading_dense_block_count layers are dense, the others hold ffn_gate_inp {n_embd, n_expert},
  ffn_{gate,up}_exps {n_embd, n_ff_exp, n_expert}, ffn_down_exps {n_ff_exp, n_embd, n_expert} and the shared
  expert ffn_{gate,up}_shexp {n_embd, n_ff_exp * n_expert_shared}, ffn_down_shexp); convert_hf_to_gguf.py splits
  the fused W_pack / wqkv projections into attn_q / attn_k / attn_v (same elements);
- KV cache: 2 x n_layer x n_head_kv x head_dim per position in both (llama-hparams.cpp n_embd_k_gqa / n_embd_v_gqa).
GGML shapes are written fastest dimension first; the tensors below are PyTorch-ordered (rows, columns).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.importers.test_gguf_generic import Q, write
from willitrun import archs, estimate
from willitrun.importers import spec_from_path

SMALL = {"vocab_size": 128, "hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 512}


def _attention(i: int, h: int, heads: int, kv: int, hd: int, norm_bias: bool = False) -> dict:
    t = {
        f"blk.{i}.attn_norm.weight": ((h,), Q.F32),
        f"blk.{i}.attn_q.weight": ((heads * hd, h), Q.F16),
        f"blk.{i}.attn_k.weight": ((kv * hd, h), Q.F16),
        f"blk.{i}.attn_v.weight": ((kv * hd, h), Q.F16),
        f"blk.{i}.attn_output.weight": ((h, heads * hd), Q.F16),
        f"blk.{i}.ffn_norm.weight": ((h,), Q.F32),
    }
    if norm_bias:
        t[f"blk.{i}.attn_norm.bias"] = ((h,), Q.F32)
        t[f"blk.{i}.ffn_norm.bias"] = ((h,), Q.F32)
    return t


def _mlp(i: int, h: int, ff: int, suffix: str = "") -> dict:
    return {
        f"blk.{i}.ffn_gate{suffix}.weight": ((ff, h), Q.F16),
        f"blk.{i}.ffn_up{suffix}.weight": ((ff, h), Q.F16),
        f"blk.{i}.ffn_down{suffix}.weight": ((h, ff), Q.F16),
    }


def _ends(vocab: int, h: int, tied: bool, norm_bias: bool = False) -> dict:
    t = {"token_embd.weight": ((vocab, h), Q.F16), "output_norm.weight": ((h,), Q.F32)}
    if norm_bias:
        t["output_norm.bias"] = ((h,), Q.F32)
    if not tied:
        t["output.weight"] = ((vocab, h), Q.F16)
    return t


def _numel(tensors: dict) -> int:
    n = 0
    for shape, _ in tensors.values():
        p = 1
        for d in shape:
            p *= d
        n += p
    return n


def _dense(cfg: dict, norm_bias: bool = False) -> dict:
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv, hd = cfg.get("num_key_value_heads") or heads, h // heads
    tensors = _ends(cfg["vocab_size"], h, cfg.get("tie_word_embeddings", False), norm_bias)
    for i in range(cfg["num_hidden_layers"]):
        tensors.update(_attention(i, h, heads, kv, hd, norm_bias))
        tensors.update(_mlp(i, h, cfg["intermediate_size"]))
    return tensors


def _meta(cfg: dict, **extra: int) -> dict:
    heads = cfg["num_attention_heads"]
    return {
        "block_count": cfg["num_hidden_layers"],
        "embedding_length": cfg["hidden_size"],
        "feed_forward_length": cfg["intermediate_size"],
        "attention.head_count": heads,
        "attention.head_count_kv": cfg.get("num_key_value_heads") or heads,
        "context_length": cfg["max_position_embeddings"],
        **extra,
    }


def _both(tmp_path: Path, cfg: dict, arch: str, tensors: dict, meta: dict):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    from_config, _ = spec_from_path(tmp_path / "m" / "config.json")
    from_gguf, weights = spec_from_path(write(tmp_path / f"{arch}.gguf", arch, meta, tensors))
    return from_config, from_gguf, weights


# (id, config.json, llama.cpp architecture, its tensor table builder, extra metadata)
DENSE = [
    (
        "baichuan2-7b-shape",  # Baichuan2-7B-Chat: W_pack, 4096 wide, 32 heads, vocab 125696 (here small)
        {"model_type": "baichuan", **SMALL, "intermediate_size": 96, "num_hidden_layers": 2},
        "baichuan",
        False,
    ),
    (
        "baichuan-13b-model-max-length",  # the 13B class names its context model_max_length
        {
            "model_type": "baichuan",
            **{k: v for k, v in SMALL.items() if k != "max_position_embeddings"},
            "model_max_length": 512,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
        },
        "baichuan",
        False,
    ),
    (
        "internlm2.5-7b-shape",  # internlm2_5-7b-chat config.json: "bias": false, 8 KV heads of 32 heads
        {"model_type": "internlm2", **SMALL, "intermediate_size": 96, "num_hidden_layers": 2, "bias": False}
        | {"num_key_value_heads": 2},
        "internlm2",
        False,
    ),
    (
        "orion-14b-shape",  # Orion-14B: LayerNorms with a bias, 40 heads of 128 over 5120
        {"model_type": "orion", **SMALL, "intermediate_size": 96, "num_hidden_layers": 2, "num_key_value_heads": 4},
        "orion",
        True,
    ),
    (
        "minicpm-2b-tied",  # MiniCPM-2B: tie_word_embeddings true (no output.weight in its GGUF)
        {
            "model_type": "minicpm",
            **SMALL,
            "intermediate_size": 96,
            "num_hidden_layers": 3,
            "tie_word_embeddings": True,
        },
        "minicpm",
        False,
    ),
]


@pytest.mark.parametrize(("case", "cfg", "arch", "norm_bias"), DENSE, ids=[c[0] for c in DENSE])
def test_config_json_and_gguf_count_the_same_model(tmp_path, case, cfg, arch, norm_bias):
    if "max_position_embeddings" not in cfg:
        cfg_meta = {**cfg, "max_position_embeddings": cfg["model_max_length"]}
    else:
        cfg_meta = cfg
    tensors = _dense(cfg_meta, norm_bias)
    from_config, from_gguf, weights = _both(tmp_path, cfg, arch, tensors, _meta(cfg_meta))
    assert from_config.architecture == arch and from_gguf.architecture == "generic"
    assert f"willitrun.archs.{archs.FAMILIES[arch]}" in from_gguf.config.provenance
    assert estimate(from_config).parameters == _numel(tensors) == estimate(from_gguf, weights=weights).parameters
    kv, hd = cfg.get("num_key_value_heads") or 4, 64 // 4
    expected = 2 * cfg["num_hidden_layers"] * kv * hd * 300 * 2  # K and V, f16, 300 positions
    assert estimate(from_config, context=300, dtype="fp16").kv_self_bytes == expected
    assert estimate(from_gguf, context=300, weights=weights).kv_self_bytes == expected
    assert from_config.config.max_position_embeddings == 512


def test_internlm2_bias_is_counted_from_config_json(tmp_path):
    # InternLM2Attention: wqkv and wo biased when config.bias (the class default True, internlm2-chat-7b's first
    # release); llama.cpp's loader creates no such tensors, so only the config.json reading counts them
    cfg = {
        "model_type": "internlm2",
        **SMALL,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec, _ = spec_from_path(tmp_path / "config.json")
    unbiased = _numel(_dense(cfg))
    # per layer: wqkv bias (4 + 2 x 2 heads) x 16 and wo bias 64
    assert estimate(spec).parameters == unbiased + 2 * ((4 + 2 * 2) * 16 + 64)


def test_deepseek_moe_v1(tmp_path):
    # deepseek-moe-16b-base config.json shape: first_k_dense_replace 1, 64 routed experts of 1408, 2 shared, top 6
    # (here 4 layers, 8 experts of 32, 2 shared, top 2)
    h, heads, experts, ff_exp, shared, vocab = 64, 4, 8, 32, 2, 128
    cfg = {
        "model_type": "deepseek",
        **SMALL,
        "intermediate_size": 96,
        "moe_intermediate_size": ff_exp,
        "num_hidden_layers": 4,
        "num_key_value_heads": heads,
        "n_routed_experts": experts,
        "n_shared_experts": shared,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
    }
    tensors = _ends(vocab, h, False)
    for i in range(4):
        tensors.update(_attention(i, h, heads, heads, h // heads))
        if i < 1:
            tensors.update(_mlp(i, h, 96))
            continue
        tensors.update(
            {
                f"blk.{i}.ffn_gate_inp.weight": ((experts, h), Q.F32),
                f"blk.{i}.ffn_gate_exps.weight": ((experts, ff_exp, h), Q.F16),
                f"blk.{i}.ffn_up_exps.weight": ((experts, ff_exp, h), Q.F16),
                f"blk.{i}.ffn_down_exps.weight": ((experts, h, ff_exp), Q.F16),
                **_mlp(i, h, ff_exp * shared, "_shexp"),
            }
        )
    meta = _meta(
        cfg,
        expert_count=experts,
        expert_used_count=2,
        expert_shared_count=shared,
        expert_feed_forward_length=ff_exp,
        leading_dense_block_count=1,
    )
    from_config, from_gguf, weights = _both(tmp_path, cfg, "deepseek", tensors, meta)
    assert estimate(from_config).parameters == _numel(tensors) == estimate(from_gguf, weights=weights).parameters
    g = archs.geometry(from_config)
    assert (g.experts, g.experts_per_token) == (experts, 2)
    assert (archs.geometry(from_gguf).experts, archs.geometry(from_gguf).experts_per_token) == (experts, 2)
    # a token runs 2 of 8 routed experts in the 3 sparse layers: 6 of the 8 experts' 3 matrices are idle
    idle = 3 * 6 * 3 * ff_exp * h
    assert estimate(from_config).active_parameters == _numel(tensors) - idle


def test_minicpm3_gguf_caches_every_head_not_the_latent(tmp_path):
    # MiniCPM3-4B shape (convert_hf_to_gguf.py MiniCPM3Model): kv_lora_rank 256, q_lora_rank 768, qk_nope 64,
    # qk_rope 32 (key_length 96), v_head_dim 64, 40 heads; src/models/minicpm3.cpp concatenates k_nope and the
    # repeated k_pe into n_head keys of n_embd_head_k and caches them with n_head values of n_embd_head_v
    h, heads, rank, q_rank, nope, rope, v = 64, 4, 32, 48, 16, 8, 16
    tensors = _ends(128, h, False)
    for i in range(2):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": ((h,), Q.F32),
                f"blk.{i}.attn_q_a_norm.weight": ((q_rank,), Q.F32),
                f"blk.{i}.attn_kv_a_norm.weight": ((rank,), Q.F32),
                f"blk.{i}.attn_q_a.weight": ((q_rank, h), Q.F16),
                f"blk.{i}.attn_q_b.weight": ((heads * (nope + rope), q_rank), Q.F16),
                f"blk.{i}.attn_kv_a_mqa.weight": ((rank + rope, h), Q.F16),
                f"blk.{i}.attn_kv_b.weight": ((heads * (nope + v), rank), Q.F16),
                f"blk.{i}.attn_output.weight": ((h, heads * v), Q.F16),
                f"blk.{i}.ffn_norm.weight": ((h,), Q.F32),
                **_mlp(i, h, 96),
            }
        )
    meta = {
        "block_count": 2,
        "embedding_length": h,
        "feed_forward_length": 96,
        "attention.head_count": heads,
        "attention.head_count_kv": heads,
        "attention.key_length": nope + rope,
        "attention.value_length": v,
        "attention.q_lora_rank": q_rank,
        "attention.kv_lora_rank": rank,
        "rope.dimension_count": rope,
        "context_length": 4096,
    }
    spec, weights = spec_from_path(write(tmp_path / "minicpm3.gguf", "minicpm3", meta, tensors))
    assert estimate(spec, weights=weights).parameters == _numel(tensors)
    assert archs.geometry(spec).mla is None
    # per layer and position: 4 heads x 24 key + 4 heads x 16 value elements, f16
    assert estimate(spec, context=100, weights=weights).kv_self_bytes == 2 * 100 * heads * (nope + rope + v) * 2
    assert "willitrun.archs.minicpm" in spec.config.provenance and "not the kv_lora_rank latent" in (
        spec.config.provenance
    )


def test_remote_code_families_are_listed_with_both_readings():
    from willitrun.cli.commands.list import architecture_rows

    rows = {r["architecture"]: r for r in architecture_rows([])}
    for arch, gguf in (
        ("baichuan", ["baichuan"]),
        ("internlm2", ["internlm2"]),
        ("orion", ["orion"]),
        ("minicpm", ["minicpm", "minicpm3"]),
        ("deepseek", ["deepseek"]),
        ("chatglm", ["chatglm"]),
    ):
        assert rows[arch]["config_model_type"] == arch and rows[arch]["gguf_architectures"] == gguf


def test_chatglm_config_json_and_gguf(tmp_path):
    # THUDM/chatglm3-6b config.json's flags on a small shape: multi_query_attention with 2 groups, add_qkv_bias.
    # llama.cpp LLM_ARCH_CHATGLM load_tensors: wqkv {n_embd, n_embd + 2 n_embd_gqa} with bqkv, wo {n_embd, n_embd},
    # ffn_up {n_embd, n_ff * 2} (gate and up fused, as dense_h_to_4h), ffn_down {n_ff, n_embd}, untied output
    h, heads, groups, hd, ff, vocab, layers = 64, 4, 2, 16, 96, 128, 2
    cfg = {
        "model_type": "chatglm",
        "num_layers": layers,
        "padded_vocab_size": vocab,
        "hidden_size": h,
        "ffn_hidden_size": ff,
        "kv_channels": hd,
        "num_attention_heads": heads,
        "seq_length": 512,
        "multi_query_attention": True,
        "multi_query_group_num": groups,
        "add_qkv_bias": True,
    }
    tensors = _ends(vocab, h, False)
    for i in range(layers):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": ((h,), Q.F32),
                f"blk.{i}.attn_qkv.weight": ((h + 2 * groups * hd, h), Q.F16),
                f"blk.{i}.attn_qkv.bias": ((h + 2 * groups * hd,), Q.F32),
                f"blk.{i}.attn_output.weight": ((h, h), Q.F16),
                f"blk.{i}.ffn_norm.weight": ((h,), Q.F32),
                f"blk.{i}.ffn_up.weight": ((2 * ff, h), Q.F16),
                f"blk.{i}.ffn_down.weight": ((h, ff), Q.F16),
            }
        )
    meta = {
        "block_count": layers,
        "embedding_length": h,
        "feed_forward_length": ff,
        "attention.head_count": heads,
        "attention.head_count_kv": groups,
        "context_length": 512,
    }
    from_config, from_gguf, weights = _both(tmp_path, cfg, "chatglm", tensors, meta)
    assert from_config.architecture == "chatglm"
    assert estimate(from_config).parameters == _numel(tensors) == estimate(from_gguf, weights=weights).parameters
    expected = 2 * layers * groups * hd * 200 * 2
    assert estimate(from_config, context=200, dtype="fp16").kv_self_bytes == expected
    assert estimate(from_gguf, context=200, weights=weights).kv_self_bytes == expected


def test_chatglm3_6b_parameter_count(tmp_path):
    # THUDM/chatglm3-6b config.json (its shape keys and flags); "6B" on the model card. By llama.cpp's tensor list:
    # embeddings and output 65024 x 4096 each, final norm 4096; per layer qkv (4096 + 2 x 2 x 128) x 4096 + 4608
    # bias, dense 4096 x 4096, dense_h_to_4h 27392 x 4096, dense_4h_to_h 4096 x 13696, 2 norms of 4096
    cfg = {
        "model_type": "chatglm",
        "num_layers": 28,
        "padded_vocab_size": 65024,
        "hidden_size": 4096,
        "ffn_hidden_size": 13696,
        "kv_channels": 128,
        "num_attention_heads": 32,
        "seq_length": 8192,
        "multi_query_attention": True,
        "multi_query_group_num": 2,
        "add_qkv_bias": True,
        "add_bias_linear": False,
        "rmsnorm": True,
        "post_layer_norm": True,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec, _ = spec_from_path(tmp_path / "config.json")
    layer = 4608 * 4096 + 4608 + 4096 * 4096 + 27392 * 4096 + 4096 * 13696 + 2 * 4096
    assert estimate(spec).parameters == 2 * 65024 * 4096 + 4096 + 28 * layer == 6_243_584_000
    # KV per position: 28 layers x 2 groups x 128, K and V, f16
    assert estimate(spec, context=1000).kv_self_bytes == 28 * 2 * 2 * 128 * 1000 * 2


def test_deepseek_moe_16b_parameter_count(tmp_path):
    # deepseek-ai/deepseek-moe-16b-base's shape (its DeepseekConfig as copied in the search corpus: vocab 102400,
    # hidden 2048, intermediate 10944, moe_intermediate 1408, 28 layers, 16 heads, 64 routed + 2 shared experts,
    # top 6, first_k_dense_replace 1, moe_layer_freq 1, untied). "16.38B (total)" in vinicius-ianni/shimmy
    # docs/deepseek-moe-16b-cpu-offload-README.md (its F16 GGUF: 32.8 GB). By llama.cpp's tensor list:
    cfg = {
        "model_type": "deepseek",
        "vocab_size": 102400,
        "hidden_size": 2048,
        "intermediate_size": 10944,
        "moe_intermediate_size": 1408,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "n_shared_experts": 2,
        "n_routed_experts": 64,
        "num_experts_per_tok": 6,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec, _ = spec_from_path(tmp_path / "config.json")
    attention, norms = 4 * 2048 * 2048, 2 * 2048
    dense = attention + norms + 3 * 2048 * 10944
    sparse = attention + norms + 64 * 2048 + 64 * 3 * 2048 * 1408 + 3 * 2048 * 2 * 1408
    total = 2 * 102400 * 2048 + 2048 + dense + 27 * sparse
    assert estimate(spec).parameters == total == 16_375_728_128
