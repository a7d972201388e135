"""Kimi-Linear GGUF (llama.cpp `kimi-linear`, src/llama-arch.cpp LLM_ARCH_KIMI_LINEAR) through the generic GGUF path
(importers/gguf_generic.py): the file llama.cpp's converter writes, its KDA state from the metadata.

The metadata is what conversion/kimi_linear.py KimiLinearModel.set_gguf_parameters writes (ggml-org/llama.cpp commit
051139f5): head_count_kv one value per layer (num_key_value_heads forced to 1 on the MLA layers, the 1-indexed
`full_attn_layers`; 0 on the KDA layers), ssm.conv_kernel (short_conv_kernel_size), kda.head_dim, kv_lora_rank,
rope.dimension_count (qk_rope_head_dim), key_length = kv_lora_rank + rope, key_length_mla, value_length_mla, the
expert keys; plus TextModel's block_count, embedding_length, feed_forward_length, head_count, context_length. The
tensor names are gguf-py's MODEL_TENSORS[MODEL_ARCH.KIMI_LINEAR] (ssm_conv1d_q/k/v, ssm_f_a/f_b, ssm_dt, ssm_a,
ssm_beta, ssm_g_a/g_b, ssm_norm; attn_k_b / attn_v_b split from kv_b_proj; experts stacked), with the converter's
shapes (conv1d reshaped to (1, d_inner, 1, d_conv), A_log kept (1, 1, heads, 1), dt_bias written as ssm_dt.bias).

The expected recurrent state is llama.cpp's (src/llama-hparams.cpp, the n_embd_head_kda branches):
n_embd_r = 3 x (ssm_d_conv - 1) x n_head x head_dim, n_embd_s = head_dim^2 x n_head, both float32
(llama-memory-recurrent.cpp); the recurrent layers are those with 0 KV heads (llama_model_kimi_linear::
load_arch_hparams). The parameter count is checked against transformers' KimiLinearForCausalLM built from the same
sizes (its router's e_score_correction_bias is an nn.Buffer there and a tensor, exp_probs_b, in the file).
"""

from __future__ import annotations

import pytest

from tests.importers.test_gguf_generic import write
from willitrun import archs, estimate
from willitrun.engines import engine_estimate
from willitrun.importers import spec_from_path
from willitrun.memory import Request

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
VOCAB, H, FF, MOE, EXPERTS, USED, SHARED = 256, 64, 96, 32, 4, 2, 1
HEADS, RANK, ROPE, NOPE, V = 4, 16, 8, 8, 8  # MLA
KDA_HEADS, KDA_DIM, KERNEL = 4, 16, 4
FULL_ATTN_LAYERS = [2, 4]  # 1-indexed, as linear_attn_config writes them
LAYERS = 4


def _tensors() -> dict:
    qkv = KDA_HEADS * KDA_DIM
    t: dict = {
        "token_embd.weight": ((VOCAB, H), Q.F16),
        "output_norm.weight": ((H,), Q.F32),
        "output.weight": ((VOCAB, H), Q.F16),
    }
    for i in range(LAYERS):
        p = f"blk.{i}."
        t |= {p + "attn_norm.weight": ((H,), Q.F32), p + "ffn_norm.weight": ((H,), Q.F32)}
        if i + 1 in FULL_ATTN_LAYERS:
            t |= {
                p + "attn_q.weight": ((HEADS * (NOPE + ROPE), H), Q.F16),
                p + "attn_kv_a_mqa.weight": ((RANK + ROPE, H), Q.F16),
                p + "attn_kv_a_norm.weight": ((RANK,), Q.F32),
                p + "attn_k_b.weight": ((HEADS, RANK, NOPE), Q.F16),
                p + "attn_v_b.weight": ((HEADS, V, RANK), Q.F16),
                p + "attn_output.weight": ((H, HEADS * V), Q.F16),
            }
        else:
            t |= {p + f"attn_{x}.weight": ((qkv, H), Q.F16) for x in "qkv"}
            t |= {p + f"ssm_conv1d_{x}.weight": ((1, qkv, 1, KERNEL), Q.F32) for x in "qkv"}
            t |= {
                p + "ssm_f_a.weight": ((KDA_DIM, H), Q.F16),
                p + "ssm_f_b.weight": ((qkv, KDA_DIM), Q.F16),
                p + "ssm_dt.bias": ((qkv,), Q.F32),
                p + "ssm_a": ((1, 1, KDA_HEADS, 1), Q.F32),
                p + "ssm_beta.weight": ((KDA_HEADS, H), Q.F16),
                p + "ssm_g_a.weight": ((KDA_DIM, H), Q.F16),
                p + "ssm_g_b.weight": ((qkv, KDA_DIM), Q.F16),
                p + "ssm_norm.weight": ((KDA_DIM,), Q.F32),
                p + "attn_output.weight": ((H, qkv), Q.F16),
            }
        if i == 0:  # first_k_dense_replace 1
            t |= {p + f"ffn_{x}.weight": ((FF, H), Q.F16) for x in ("gate", "up")}
            t[p + "ffn_down.weight"] = ((H, FF), Q.F16)
        else:
            t |= {
                p + "ffn_gate_inp.weight": ((EXPERTS, H), Q.F32),
                p + "exp_probs_b.bias": ((EXPERTS,), Q.F32),
                p + "ffn_gate_exps.weight": ((EXPERTS, MOE, H), Q.F16),
                p + "ffn_up_exps.weight": ((EXPERTS, MOE, H), Q.F16),
                p + "ffn_down_exps.weight": ((EXPERTS, H, MOE), Q.F16),
                p + "ffn_gate_shexp.weight": ((MOE * SHARED, H), Q.F16),
                p + "ffn_up_shexp.weight": ((MOE * SHARED, H), Q.F16),
                p + "ffn_down_shexp.weight": ((H, MOE * SHARED), Q.F16),
            }
    return t


def _file(tmp_path, **meta):
    kv = [1 if i + 1 in FULL_ATTN_LAYERS else 0 for i in range(LAYERS)]
    base = {
        "block_count": LAYERS,
        "context_length": 4096,
        "embedding_length": H,
        "feed_forward_length": FF,
        "attention.head_count": HEADS,
        "attention.head_count_kv": kv,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "ssm.conv_kernel": KERNEL,
        "kda.head_dim": KDA_DIM,
        "attention.kv_lora_rank": RANK,
        "rope.dimension_count": ROPE,
        "attention.key_length": RANK + ROPE,
        "attention.key_length_mla": NOPE + ROPE,
        "attention.value_length_mla": V,
        "expert_count": EXPERTS,
        "expert_used_count": USED,
        "expert_feed_forward_length": MOE,
        "expert_shared_count": SHARED,
        "leading_dense_block_count": 1,
        "vocab_size": VOCAB,
    }
    return write(tmp_path / "kimi-linear.gguf", "kimi-linear", base | meta, _tensors())


def test_kimi_linear_gguf_is_answered_with_its_kda_state(tmp_path):
    spec, weights = spec_from_path(_file(tmp_path))
    assert spec.architecture == "generic" and spec.config.source_architecture == "kimi-linear"
    assert "kimi_linear family" in spec.config.provenance
    assert "2 layers keep a KDA conv and delta-rule state" in spec.config.provenance
    g = archs.geometry(spec)
    kda = (3 * (KERNEL - 1) * KDA_HEADS * KDA_DIM, KDA_DIM * KDA_DIM * KDA_HEADS)  # elements per layer and sequence
    assert [kv is not None for kv in g.self_kv] == [False, True, False, True]
    assert g.ssm_state == (kda, (0, 0), kda, (0, 0))
    assert g.mla == (RANK, ROPE, HEADS, NOPE + ROPE, V)
    e = estimate(spec, context=1000, weights=weights)
    # two MLA layers x (kv_lora_rank + rope) x 1000 positions x 2 bytes (f16)
    assert e.kv_self_bytes == 2 * (RANK + ROPE) * 1000 * 2
    # llama.cpp: two KDA layers x (n_embd_r + n_embd_s) x f32 x llama-server's 4 sequences, whatever the context
    for context in (1000, 100_000):
        run = engine_estimate(spec, Request(context=context), "llama.cpp", weights=weights)
        state = sum(b.bytes for b in run.buffers if b.name.startswith("recurrent state"))
        assert state == 2 * sum(kda) * 4 * 4
    assert weights.total_bytes == sum((2 if q == Q.F16 else 4) * _numel(shape) for shape, q in _tensors().values())


def test_kimi_linear_gguf_parameters_are_transformers(tmp_path):
    """The file's tensors hold KimiLinearForCausalLM's parameters (plus the router bias buffers)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    config = tf.KimiLinearConfig(
        vocab_size=VOCAB,
        hidden_size=H,
        intermediate_size=FF,
        moe_intermediate_size=MOE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        kv_lora_rank=RANK,
        q_lora_rank=None,
        qk_rope_head_dim=ROPE,
        qk_nope_head_dim=NOPE,
        v_head_dim=V,
        num_experts=EXPERTS,
        num_experts_per_token=USED,
        num_shared_experts=SHARED,
        first_k_dense_replace=1,
        linear_attn_config={
            "full_attn_layers": FULL_ATTN_LAYERS,
            "kda_layers": [i + 1 for i in range(LAYERS) if i + 1 not in FULL_ATTN_LAYERS],
            "head_dim": KDA_DIM,
            "num_heads": KDA_HEADS,
            "short_conv_kernel_size": KERNEL,
        },
        **IDS,
    )
    with torch.device("meta"):
        model = tf.KimiLinearForCausalLM(config)
    buffers = sum(b.numel() for n, b in model.named_buffers() if n.endswith("e_score_correction_bias"))
    assert buffers == 3 * EXPERTS
    spec, weights = spec_from_path(_file(tmp_path))
    assert estimate(spec, weights=weights).parameters == sum(p.numel() for p in model.parameters()) + buffers


def test_a_kimi_linear_file_without_a_kernel_takes_llama_cpps_default(tmp_path):
    """n_embd_r takes 3 for (ssm_d_conv - 1) when the file has no conv kernel (llama-hparams.cpp)."""
    meta = {"ssm.conv_kernel": 0}
    spec, _ = spec_from_path(_file(tmp_path, **meta))
    assert archs.geometry(spec).ssm_state[0] == (3 * 3 * KDA_HEADS * KDA_DIM, KDA_DIM * KDA_DIM * KDA_HEADS)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
