"""RWKV (archs/rwkv.py): RWKV-4 from config.json checked against transformers (RwkvForCausalLM on the meta device
for the parameters, a CPU forward pass for the state), RWKV-6 / RWKV-7 GGUFs read from their metadata with llama.cpp's
state formula (src/llama-hparams.cpp: n_embd_r() = token_shift_count x n_embd and n_embd_s() = n_embd x
wkv_head_size when wkv_head_size != 0; llama_memory_recurrent keeps both in f32)."""

from __future__ import annotations

import json

import pytest

from tests.importers.test_gguf_generic import HIDDEN, Q, ends, write
from willitrun import archs, estimate
from willitrun.archs.rwkv import WkvState
from willitrun.engines import LlamaCppOptions, engine_estimate
from willitrun.importers import spec_from_path
from willitrun.memory import Request

SMALL = {"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2, "context_length": 256}


@pytest.mark.parametrize(
    "extra",
    [{}, {"tie_word_embeddings": True}, {"attention_hidden_size": 64, "intermediate_size": 96}],
    ids=["defaults", "tied", "widths"],
)
def test_rwkv4_parameters_equal_transformers(tmp_path, extra):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    cfg = {"model_type": "rwkv", **SMALL, **extra}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec, _ = spec_from_path(tmp_path / "config.json")
    with torch.device("meta"):
        model = tf.RwkvForCausalLM(tf.RwkvConfig(**{k: v for k, v in cfg.items() if k != "model_type"}))
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())


def test_rwkv4_state_equals_transformers_cache():
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.specs import parse_model_spec

    model = tf.RwkvForCausalLM(tf.RwkvConfig(**SMALL)).to(torch.bfloat16).eval()
    with torch.no_grad():
        out = model(torch.zeros((1, 7), dtype=torch.long), use_cache=True)
    measured = sum(s.numel() * s.element_size() for s in out.state)
    spec = parse_model_spec(
        {
            "id": "tiny-rwkv",
            "name": "tiny rwkv",
            "architecture": "rwkv",
            "dtype": "bfloat16",
            "sources": {"config": "transformers RwkvConfig"},
            "config": SMALL,
        }
    )
    kinds = archs.geometry(spec).caches
    assert all(layer == (WkvState(128, 192, ssm_f32=True),) for layer in kinds)
    # 2 token shifts in bf16 and 3 wkv tensors in f32, 64 wide, per layer; constant in the context
    e = estimate(spec, context=7, dtype="bf16")
    assert e.state_bytes == measured == 2 * (2 * 64 * 2 + 3 * 64 * 4)
    assert estimate(spec, context=7000, dtype="bf16").state_bytes == measured


def test_llama_cpp_refuses_rwkv4(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "rwkv", **SMALL}))
    spec, _ = spec_from_path(tmp_path / "config.json")
    assert "RWKV-4" in archs.geometry(spec).refusals["llama.cpp"]


def _rwkv7_block(i: int, h: int, ffn: int) -> dict:
    # llama.cpp src/llama-arch.cpp LLM_ARCH_RWKV7 tensor names (ranks of the low-rank maps: 16)
    r = 16
    t = {
        f"blk.{i}.attn_norm.weight": ((h,), Q.F32),
        f"blk.{i}.attn_norm.bias": ((h,), Q.F32),
        f"blk.{i}.attn_norm_2.weight": ((h,), Q.F32),
        f"blk.{i}.attn_norm_2.bias": ((h,), Q.F32),
        f"blk.{i}.time_mix_w0.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_w1.weight": ((r, h), Q.F16),
        f"blk.{i}.time_mix_w2.weight": ((h, r), Q.F16),
        f"blk.{i}.time_mix_a0.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_a1.weight": ((r, h), Q.F16),
        f"blk.{i}.time_mix_a2.weight": ((h, r), Q.F16),
        f"blk.{i}.time_mix_g1.weight": ((r, h), Q.F16),
        f"blk.{i}.time_mix_g2.weight": ((h, r), Q.F16),
        f"blk.{i}.time_mix_k_k.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_k_a.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_r_k.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_lerp_fused.weight": ((6, 1, 1, h), Q.F32),
        f"blk.{i}.time_mix_key.weight": ((h, h), Q.F16),
        f"blk.{i}.time_mix_value.weight": ((h, h), Q.F16),
        f"blk.{i}.time_mix_receptance.weight": ((h, h), Q.F16),
        f"blk.{i}.time_mix_ln.weight": ((h,), Q.F32),
        f"blk.{i}.time_mix_ln.bias": ((h,), Q.F32),
        f"blk.{i}.time_mix_output.weight": ((h, h), Q.F16),
        f"blk.{i}.channel_mix_lerp_k.weight": ((1, 1, h), Q.F32),
        f"blk.{i}.channel_mix_key.weight": ((ffn, h), Q.F16),
        f"blk.{i}.channel_mix_value.weight": ((h, ffn), Q.F16),
    }
    if i:  # the value residual maps exist from the second layer on
        t[f"blk.{i}.time_mix_v0.weight"] = ((h,), Q.F32)
        t[f"blk.{i}.time_mix_v1.weight"] = ((r, h), Q.F16)
        t[f"blk.{i}.time_mix_v2.weight"] = ((h, r), Q.F16)
    return t


@pytest.mark.parametrize("arch", ["rwkv7", "rwkv6"])
def test_rwkv_gguf_state_is_llama_cpps(tmp_path, arch):
    ffn, head = 224, 32
    tensors = {**ends(), "token_embd_norm.weight": ((HIDDEN,), Q.F32), "token_embd_norm.bias": ((HIDDEN,), Q.F32)}
    for i in range(3):
        tensors.update(_rwkv7_block(i, HIDDEN, ffn))
    meta = {"block_count": 3, "embedding_length": HIDDEN, "feed_forward_length": ffn, "wkv.head_size": head}
    spec, weights = spec_from_path(write(tmp_path / f"{arch}.gguf", arch, meta, tensors))
    assert "willitrun.archs.rwkv" in spec.config.provenance
    g = archs.geometry(spec)
    assert g.self_kv == (None,) * 3 and not g.cache_grows_with_context
    # token_shift_count defaults to 2 (llama-hparams.h); n_embd_r = 2 x 256, n_embd_s = 256 x 32
    assert g.ssm_state == ((2 * HIDDEN, HIDDEN * head),) * 3
    est = engine_estimate(spec, Request(context=4096, dtype="q8_0"), "llama.cpp", LlamaCppOptions(parallel=1))
    state = sum(b.bytes for b in est.buffers if b.kind == "kv_self")
    assert state == 3 * (2 * HIDDEN + HIDDEN * head) * 4
    assert estimate(spec, weights=weights).parameters == sum(
        int(__import__("math").prod(shape)) for shape, _ in tensors.values()
    )
