"""StarCoder2 and Cohere 2 in llama.cpp (the GGUF families added for issue 9): which layers keep a
window-sized cache. llama.cpp's sources, not willitrun's, decide it:

- src/models/starcoder2.cpp: load_arch_hparams reads no sliding window and the graph builds
  build_attn_inp_kv() (one cache, every layer n_ctx cells), although the checkpoints' config.json say
  sliding_window 4096: llama.cpp runs StarCoder2 with full attention;
- src/models/cohere2.cpp: swa_type LLAMA_SWA_TYPE_STANDARD, set_swa_pattern(4) (3 sliding : 1 global),
  n_swa from cohere2.attention.sliding_window, build_attn_inp_kv_iswa(): the sliding layers keep
  GGML_PAD(min(n_ctx, n_swa + n_ubatch), 256) cells (llama-kv-cache-iswa.cpp).
"""

from __future__ import annotations

from willitrun.engines import LlamaCppOptions, engine_estimate
from willitrun.memory import Request


def _kv(spec, context, **opts):
    est = engine_estimate(spec, Request(context=context, dtype="q4_0"), "llama.cpp", LlamaCppOptions(**opts))
    return sum(b.bytes for b in est.buffers if b.kind == "kv_self")


def test_llama_cpp_caches_every_starcoder2_layer_in_full(catalog):
    # starcoder2-7b: 32 layers x 4 KV heads x 128, f16 K and V: 2 x 512 x 2 B = 2 KiB per cell per layer
    spec = catalog.resolve("model", "starcoder2-7b")
    assert spec.config.sliding_window == 4096
    assert _kv(spec, 16384) == _kv(spec, 16384, swa_full=True) == 32 * 2 * 512 * 2 * 16384


def test_llama_cpp_keeps_cohere2_sliding_layers_at_the_window(catalog):
    # command-r7b: 32 layers, 8 KV heads x 128 (2 x 1024 x 2 B = 4 KiB per cell); layers 3, 7, ..., 31
    # are global (8 of 32), the other 24 keep GGML_PAD(min(8192, 4096 + 512 ubatch), 256) = 4608 cells
    spec = catalog.resolve("model", "command-r7b")
    per_cell = 2 * 1024 * 2
    assert _kv(spec, 8192, parallel=1) == 8 * per_cell * 8192 + 24 * per_cell * 4608
    # llama-server's default (-np auto: 4 slots, unified cache) keeps 4 windows: min(8192, 4 x 4096 + 512)
    assert _kv(spec, 8192) == 32 * per_cell * 8192
    assert _kv(spec, 8192, swa_full=True) == 32 * per_cell * 8192
