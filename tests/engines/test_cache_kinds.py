"""Engines answer or refuse by cache kind (archs/caches.py), never by family name (issue 20 section 2).

The hybrid families keep kinds beside keys and values -- Gated DeltaNet state (Qwen3-Next, Qwen3.5), Mamba-2 state
and blocks with no cache at all (Nemotron-H) -- and llama.cpp, ollama and vLLM size them from the kinds. A kind an
engine profile does not size is refused in one line naming it (a kind no profile lists, given to the geometry of a
real spec at the narrowest boundary, `archs.geometry`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from willitrun import archs
from willitrun.archs.caches import F32_BYTES, LinearAttentionState, MambaState, RecurrentState, unmodelled
from willitrun.engines import VllmOptions, engine_estimate
from willitrun.errors import UsageError
from willitrun.importers.configs import spec_from_config
from willitrun.memory import Request

QWEN3_NEXT = {
    "model_type": "qwen3_next",
    "vocab_size": 1024,
    "hidden_size": 256,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 64,
    "shared_expert_intermediate_size": 64,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 32,
}
NEMOTRON_H = {
    "model_type": "nemotron_h",
    "vocab_size": 1024,
    "hidden_size": 256,
    "hybrid_override_pattern": "M-M*-M*E",
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "ssm_state_size": 16,
    "mamba_num_heads": 8,
    "mamba_head_dim": 32,
    "n_groups": 2,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 64,
    "moe_shared_expert_intermediate_size": 64,
}


def _spec(cfg):
    return spec_from_config(cfg, "config.json")


def _llamacpp_state(spec, sequences: int = 1) -> int:
    """llama.cpp's recurrent state for these kinds (llama-hparams.cpp n_embd_r / n_embd_s, f32): the conv state
    without its oldest column, (d_conv - 1) x channels, and the recurrent state."""
    g = archs.geometry(spec)
    total = 0
    for layer in g.caches:
        for k in layer:
            if isinstance(k, LinearAttentionState | MambaState):
                total += (k.conv // g.ssm_conv_kernel * (g.ssm_conv_kernel - 1) + k.ssm) * F32_BYTES
    return total * sequences


@pytest.mark.parametrize("cfg", [QWEN3_NEXT, NEMOTRON_H], ids=["qwen3_next", "nemotron_h"])
def test_llamacpp_sizes_the_hybrid_kinds(cfg):
    spec = _spec(cfg)
    g = archs.geometry(spec)
    e = engine_estimate(spec, Request(context=4096, dtype="q8_0"), "llama.cpp")
    state = {b.name: b.bytes for b in e.buffers if b.name.startswith("recurrent state")}
    assert sum(state.values()) == _llamacpp_state(spec, sequences=4)  # llama-server's default 4 slots
    kv = sum(b.bytes for b in e.buffers if b.name.startswith("KV cache"))
    attention = sum(1 for layer in g.caches for k in layer if type(k).__name__ == "FullAttention")
    assert kv == attention * 2 * 2 * 64 * 4096 * 2  # layers x K,V x kv_heads x head_dim x cells x f16


class UnsizedState(RecurrentState):
    """A kind no engine profile lists, for the refusal below."""


def test_an_unmodelled_kind_is_refused_by_name(monkeypatch):
    spec = _spec(QWEN3_NEXT)
    g = archs.geometry(spec)
    kinds = tuple((*layer, UnsizedState(64, 4096)) if i == 3 else layer for i, layer in enumerate(g.caches))
    assert unmodelled(kinds, {type(k) for layer in g.caches for k in layer}) == ("UnsizedState",)
    patched = replace(g, cache_kinds=kinds)
    monkeypatch.setattr(archs, "geometry", lambda s: patched)
    for engine, options in (("llama.cpp", None), ("ollama", None), ("vllm", VllmOptions(total_memory_bytes=80 << 30))):
        with pytest.raises(UsageError, match=r"does not size UnsizedState caches"):
            engine_estimate(spec, Request(context=4096), engine, options)


def test_a_family_refusal_comes_before_the_kind_refusal():
    """RWKV-4 keeps its own WkvState kind, which no profile sizes; its refusals say why better (archs/rwkv.py)."""
    spec = spec_from_config(
        {"model_type": "rwkv", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2, "context_length": 128},
        "config.json",
    )
    for engine, options, why in (
        ("llama.cpp", None, "RWKV-6 and RWKV-7"),
        ("vllm", VllmOptions(total_memory_bytes=80 << 30), "no RWKV model"),
    ):
        with pytest.raises(UsageError, match=why):
            engine_estimate(spec, Request(context=4096), engine, options)
