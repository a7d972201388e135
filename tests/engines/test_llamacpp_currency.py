"""llama.cpp as of 2026: what its KV cache holds on sliding-window, hybrid and sparse-attention models.

- ggml-org/llama.cpp PR #21277 "kv-cache : do not quantize SWA KV cache" (ggerganov, merged 2026-04-01) kept the
  sliding-window layers' cache in F16 whatever -ctk/-ctv said; PR #21332 "(revert) kv-cache : do not quantize SWA
  KV cache" undid it the next day ("In some cases the SWA cache actually takes significant portion of memory").
  src/llama-kv-cache-iswa.cpp as stored (commit 02c28f533ebb) builds kv_swa with the same type_k / type_v as
  kv_base, so every build but those of 2026-04-01/02 quantizes the sliding layers with the rest.
- a hybrid's KV buffer counts only the layers that hold KV (llama.cpp prints "(N cells, 10 layers, ...)" for the
  10 full-attention layers of Gemma 4 31B's 60, issue #21394).
- the DeepSeek sparse-attention indexer's keys (archs/caches.py IndexerKeys) are sized by kind for ollama as for
  llama.cpp: ollama v0.30+ runs every GGML model in llama-server (ollama#16031), i.e. llama.cpp's
  llama_kv_cache_dsa.
"""

from __future__ import annotations

import re

import pytest

from tests.engines.test_cache_kinds import NEMOTRON_H, QWEN3_NEXT
from willitrun import archs
from willitrun.archs.caches import FullAttention, IndexerKeys, MLALatent
from willitrun.engines import LlamaCppOptions, OllamaOptions, engine_estimate
from willitrun.errors import UsageError
from willitrun.importers.configs import spec_from_config
from willitrun.memory import Request


def _kv(est):
    return sum(b.bytes for b in est.buffers if b.kind == "kv_self" and b.name.startswith("KV cache"))


def _q8_0(n: int) -> int:
    """ggml block_q8_0: 32 int8 quants and an f16 scale, 34 bytes a block (ggml-common.h)."""
    return n // 32 * 34


def test_sliding_layers_take_the_quantized_cache_type(catalog):
    """Gemma 3 1B (26 layers, 1 KV head x 256, window 512, 4 global layers) at -c 32768 -np 1 -ctk/-ctv q8_0: the
    22 sliding layers keep GGML_PAD(512 + 512, 256) = 1024 cells in q8_0, as the 4 global layers keep 32768 --
    not in f16, which only the builds between PR #21277 and its revert PR #21332 (2026-04-01/02) did."""
    spec = catalog.resolve("model", "gemma-3-1b")
    opts = LlamaCppOptions(parallel=1)
    q8 = _kv(engine_estimate(spec, Request(context=32768, dtype="q4_0", kv_dtype="q8_0"), "llama.cpp", opts))
    f16 = _kv(engine_estimate(spec, Request(context=32768, dtype="q4_0"), "llama.cpp", opts))
    assert f16 == (4 * 32768 + 22 * 1024) * 2 * 256 * 2
    assert q8 == (4 * 32768 + 22 * 1024) * 2 * _q8_0(256)
    swa_kept_f16 = 4 * 32768 * 2 * _q8_0(256) + 22 * 1024 * 2 * 256 * 2  # what PR #21277's builds held
    assert q8 != swa_kept_f16
    assert swa_kept_f16 - q8 == 22 * 1024 * 2 * (256 * 2 - _q8_0(256))  # exactly the sliding layers' share


@pytest.mark.parametrize("cfg", [QWEN3_NEXT, NEMOTRON_H], ids=["qwen3_next", "nemotron_h"])
@pytest.mark.parametrize("gpu_layers", [None, 4])
def test_hybrid_kv_detail_counts_the_attention_layers(cfg, gpu_layers):
    """Qwen3-Next (8 layers, every 4th full attention) and Nemotron-H ("M-M*-M*E": 2 attention blocks of 8): the
    KV buffers' detail counts the layers that hold KV, on the GPU and on the host, not every layer."""
    spec = spec_from_config(cfg, "config.json")
    g = archs.geometry(spec)
    attention = [i for i, layer in enumerate(g.caches) if any(isinstance(k, FullAttention) for k in layer)]
    est = engine_estimate(
        spec, Request(context=4096, dtype="q8_0"), "llama.cpp", LlamaCppOptions(parallel=1, gpu_layers=gpu_layers)
    )
    kv = [b for b in est.buffers if b.name.startswith("KV cache")]
    counted = 0
    for b in kv:
        m = re.match(r"(\d+) (host )?layers x ", b.detail)
        assert m, b.detail
        counted += int(m.group(1))
        assert b.bytes == int(m.group(1)) * 2 * 2 * 64 * 4096 * 2  # layers x K,V x kv_heads x head_dim x cells x f16
    assert counted == len(attention) == 2
    assert _kv(est) == len(attention) * 2 * 2 * 64 * 4096 * 2


DEEPSEEK_V32 = {
    "model_type": "deepseek_v32",
    "vocab_size": 1024,
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 64,
    "q_lora_rank": 96,
    "qk_rope_head_dim": 16,
    "qk_nope_head_dim": 32,
    "v_head_dim": 32,
    "index_head_dim": 32,
    "index_n_heads": 4,
}


def test_ollama_sizes_the_indexer_keys_by_kind():
    """A DeepSeek-V3.2-shaped model (every layer: the MLA latent, 64 + 16, and the indexer's keys, 32): ollama's
    llama-server runner keeps llama.cpp's second, indexer-key cache (src/llama-kv-cache-dsa.cpp llama_kv_cache_dsa:
    kv_ik of type_k and kv_size), so both profiles hold latent + indexer keys x cells x the K type."""
    spec = spec_from_config(DEEPSEEK_V32, "config.json")
    g = archs.geometry(spec)
    assert all(any(isinstance(k, IndexerKeys) for k in layer) for layer in g.caches)
    assert all(any(isinstance(k, MLALatent) for k in layer) for layer in g.caches)
    req = Request(context=4096, dtype="q8_0")
    expected = 4 * (64 + 16 + 32) * 4096 * 2  # layers x (latent K, no V since PR #19067, + indexer key) x cells x f16
    llama = engine_estimate(spec, req, "llama.cpp", LlamaCppOptions(parallel=1))
    ollama = engine_estimate(spec, req, "ollama", OllamaOptions(num_parallel=1, num_batch=512))
    assert _kv(llama) == _kv(ollama) == expected
    for est in (llama, ollama):
        assert any("indexer's keys" in b.detail for b in est.buffers if b.name.startswith("KV cache"))
        assert any("indexer's keys" in n for n in est.notes)


@pytest.mark.parametrize("release", ["0.6", "0.10", "0.13", "0.15"])
def test_ollama_before_llama_server_refuses_the_indexer_keys_by_kind(release):
    """ollama before v0.30 ran GGUFs in its CGO runner over a vendored llama.cpp without llama_kv_cache_dsa (PR
    #23346, May 2026; ollama#16031 moved every GGML model to llama-server on 2026-05-29): one line, no estimate."""
    spec = spec_from_config(DEEPSEEK_V32, "config.json")
    with pytest.raises(UsageError, match=r"indexer-key cache .* \(--ollama-version 0\.30\)"):
        engine_estimate(spec, Request(context=4096), "ollama", OllamaOptions(release=release))
    # a model without indexer keys is estimated on the same release
    dense = dict(DEEPSEEK_V32, model_type="deepseek_v3", num_key_value_heads=4)
    dense.pop("index_head_dim")
    dense.pop("index_n_heads")
    assert (
        _kv(
            engine_estimate(
                spec_from_config(dense, "config.json"), Request(context=4096), "ollama", OllamaOptions(release=release)
            )
        )
        > 0
    )
