"""Engine profiles: hand arithmetic for padding, parallel sequences, partial offload, beams, vLLM's pool."""

from __future__ import annotations

import pytest

from tests.conftest import llama
from willitrun.dtypes import Q4_0, Q6_K
from willitrun.engines import (
    ENGINES,
    LlamaCppOptions,
    OllamaOptions,
    VllmOptions,
    WhisperCppOptions,
    default_engine,
    engine_estimate,
)
from willitrun.engines.base import pad
from willitrun.engines.llamacpp import kv_cells
from willitrun.engines.ollama import OLLAMA_MINIMUM_MEMORY_BYTES, ollama_default_context
from willitrun.errors import UsageError
from willitrun.memory import Request, estimate

MiB = 1 << 20
GiB = 1 << 30
# Llama-2-7B: 2 (K, V) x 4096 x 2 B = 16 KiB per position per layer; 32 layers: 512 KiB per position.
PER_LAYER_POS = 2 * 4096 * 2


def ll(spec, context, engine="llama.cpp", **opts):
    options = {"llama.cpp": LlamaCppOptions, "ollama": OllamaOptions}[engine](**opts)
    return engine_estimate(spec, Request(context=context, dtype=opts.pop("dtype", None) or "q4_0"), engine, options)


# --------------------------------------------------------------------------------------------------
# KV padding by version
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "fa", "cells"),
    [
        ("2023-12", False, 320),  # GGML_PAD(300, 32)
        ("2024-04", False, 512),  # 256 with the first flash-attention builds
        ("2024-05", False, 320),  # flash_attn ? 256 : 32
        ("2024-05", True, 512),
        ("2025-10", True, 300),  # no padding (PR #16812)
        ("current", True, 512),  # GGML_PAD(n_ctx, 256) (PR #17046)
        ("current", False, 512),
    ],
)
def test_kv_padding(version, fa, cells):
    e = ll(llama(), 300, version=version, flash_attn=fa)
    assert e.n_ctx == cells
    assert e.find("KV cache (CUDA0)").bytes == 32 * PER_LAYER_POS * cells


def test_explicit_kv_pad_overrides_the_version():
    assert ll(llama(), 300, kv_pad=64).n_ctx == 320


# --------------------------------------------------------------------------------------------------
# --parallel: one cache of n_ctx cells
# --------------------------------------------------------------------------------------------------
def test_parallel_shares_one_cache():
    one = ll(llama(), 4096)
    four = ll(llama(), 4096, parallel=4)
    assert four.find("KV cache (CUDA0)").bytes == one.find("KV cache (CUDA0)").bytes == 2 * GiB
    assert four.facts["n_ctx_seq"] == 1024
    # the host output buffer holds one row of logits per sequence: 4 B x 32000 x 4
    assert four.find("output buffer (host)").bytes == 4 * 32000 * 4


def test_parallel_split_pads_each_sequence():
    # current llama.cpp: n_ctx_seq = GGML_PAD(4096 / 3, 256) = 1536, n_ctx = 3 x 1536
    assert kv_cells(4096, 3, 256, "current", unified=False) == (4608, 1536)
    assert kv_cells(4096, 3, 256, "current", unified=True) == (4096, 4096)


def test_ollama_gives_every_parallel_request_num_ctx():
    e = engine_estimate(llama(), Request(dtype="q4_0"), "ollama", OllamaOptions(num_ctx=2048, num_parallel=4))
    assert e.n_ctx == 8192
    assert e.find("KV cache (CUDA0)").bytes == 32 * PER_LAYER_POS * 8192  # 4 GiB
    assert e.find("ollama minimum free memory").bytes == OLLAMA_MINIMUM_MEMORY_BYTES == 457 * MiB
    # ollama v0.30+ starts llama-server with --flash-attn auto (llm/llama_server.go appendFlashAttentionArgs)
    assert e.facts["flash_attn"] is True
    old = engine_estimate(llama(), Request(dtype="q4_0"), "ollama", OllamaOptions(num_ctx=2048, release="0.10"))
    assert old.facts["flash_attn"] is False  # v0.10-v0.13.3: llama is not on ollama's flash-attention list
    # v0.13.4-v0.29 (PR #13052): the llama runner is loaded with FlashAttention:Auto; ollama 0.20.2's log of
    # qwen2.5-coder:7b prints "Flash Attention was auto, set to enabled" (calibration_extra.yaml)
    mid = engine_estimate(llama(), Request(dtype="q4_0"), "ollama", OllamaOptions(num_ctx=2048, release="0.15"))
    assert mid.facts["flash_attn"] is True


@pytest.mark.parametrize(("release", "ctx"), [("0.6", 4096), ("0.15", 32768), ("0.30", 32768)])
def test_ollama_default_context_by_release(release, ctx):
    """The VRAM tiers came with commit 0334ffa62 (2026-01-27, first tag v0.15.5); before, 4096 (PR #10364)."""
    from willitrun import load_catalog

    spec = load_catalog().resolve("model", "llama-3.1-8b")  # trained on 131072: no clamp
    e = engine_estimate(spec, Request(dtype="q4_0"), "ollama", OllamaOptions(vram_bytes=24 * GiB, release=release))
    assert e.context_tokens == ctx


def test_unknown_ollama_release_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown ollama version"):
        OllamaOptions(release="0.99")


@pytest.mark.parametrize(
    ("vram_gib", "ctx"),
    [
        (None, 4096),
        (16, 4096),
        (22.9, 4096),
        (23, 32768),
        (23.99, 32768),
        (24, 32768),
        (46.9, 32768),
        (47, 262144),
        (80, 262144),
    ],
)
def test_ollama_default_context_tiers(vram_gib, ctx):
    """ollama server/routes.go (0334ffa62, 2026-01-27; fb30760): totalVRAM >= 47 GiB: 262144, >= 23 GiB: 32768,
    else 4096 -- not the docs' 24/48, so an RTX 4090 (23.99 GiB) gets 32768."""
    assert ollama_default_context(None if vram_gib is None else round(vram_gib * GiB)) == ctx


def test_ollama_default_context_counts_the_gpu_overhead():
    """routes.go: totalVRAM += gpu.TotalMemory - envconfig.GpuOverhead()."""
    assert ollama_default_context(24 * GiB, gpu_overhead_bytes=2 * GiB) == 4096


# --------------------------------------------------------------------------------------------------
# -ngl: layers beyond it stay on the host with their KV
# --------------------------------------------------------------------------------------------------
def test_gpu_layers_split_weights_and_kv():
    e = ll(llama(), 2048, gpu_layers=10, version="2024-03")
    assert e.find("KV cache (CUDA0)").bytes == 10 * PER_LAYER_POS * 2048  # 320 MiB
    assert e.find("KV cache (CPU)").bytes == 22 * PER_LAYER_POS * 2048  # 704 MiB
    assert e.facts["output_on_gpu"] is False
    # op offload (PR #6083): the GPU still computes the logits, with the q6_K LM head copied over
    logits = 4 * 512 * (4096 + 32000)
    assert e.find("compute buffer (CUDA0)").bytes == logits + Q6_K.nbytes(32000 * 4096)
    assert e.facts["op_offload"] is True


@pytest.mark.parametrize("how", ["early build", "--no-op-offload"])
def test_without_op_offload_the_output_layer_runs_on_the_cpu(how):
    """Before PR #6083 (b2197 CI log: no CUDA0 compute buffer at -ngl 0), and with --no-op-offload,
    the GPU compute buffer is the offloaded layers' graph only: no logits, no LM-head copy."""
    e = (
        ll(llama(), 2048, gpu_layers=10, version="2023-12")
        if how == "early build"
        else ll(llama(), 2048, gpu_layers=10, op_offload=False, flash_attn=False, version="2025-11")
    )
    assert e.facts["op_offload"] is False
    assert e.facts["output_on_gpu"] is False  # before PR #18148 -ngl 10 keeps the output layer on the host
    n_kv = e.n_ctx
    attention = 4 * 512 * (4 * 4096 + n_kv * (32 + 1))
    assert e.find("compute buffer (CUDA0)").bytes == attention
    with_op_offload = ll(
        llama(), 2048, gpu_layers=10, flash_attn=False, version="2024-03" if how == "early build" else "2025-11"
    )
    assert with_op_offload.find("compute buffer (CUDA0)").bytes > e.find("compute buffer (CUDA0)").bytes


def test_tied_embedding_is_held_once_in_host_memory():
    """A tied output layer in host memory is token_embd itself (llama-model-loader.cpp, TENSOR_DUPLICATED
    in the same buffer type returns the existing tensor); offloaded, it is a second copy on the GPU."""
    from willitrun import load_catalog

    tied = load_catalog().resolve("model", "llama-3.2-1b")  # tie_word_embeddings: true
    n_layer = tied.config.num_hidden_layers
    # every layer offloaded, the output layer not: only builds before PR #18148 place that
    host_output = ll(tied, 2048, gpu_layers=n_layer, version="2025-11")
    assert host_output.find("model buffer (CPU): layers kept on the host").bytes < MiB  # the final norm only
    full = ll(tied, 2048)
    embd = full.find("model buffer (CPU): token embedding").bytes
    assert full.find("model buffer (CUDA0)").bytes - host_output.find("model buffer (CUDA0)").bytes >= embd


@pytest.mark.parametrize("version", ["2025-12", "current", "2026-06-server"])
def test_ngl_offloads_the_output_layer_first_since_pr_18148(version):
    """ggml-org/llama.cpp PR #18148 (December 2025), llama-model.cpp `load_tensors`:
    i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0), the output layer (il = n_layer) on the GPU for every
    -ngl >= 1. So -ngl 10 of a 32-layer model is the output layer and layers 23..31 (9 of them); before it
    (2025-11) -ngl 10 was layers 22..31 and the output layer stayed on the host."""
    new = ll(llama(), 2048, gpu_layers=10, version=version)
    old = ll(llama(), 2048, gpu_layers=10, version="2025-11")
    assert new.facts["output_on_gpu"] is True and old.facts["output_on_gpu"] is False
    assert new.find("KV cache (CUDA0)").bytes == 9 * PER_LAYER_POS * 2048
    assert new.find("KV cache (CPU)").bytes == 23 * PER_LAYER_POS * 2048
    assert old.find("KV cache (CUDA0)").bytes == 10 * PER_LAYER_POS * 2048
    # the GPU's weights: one repeating layer fewer, the output layer (q6_K LM head + f32 final norm) more
    layer = (old.find("model buffer (CUDA0)").bytes) // 10
    output = pad(Q6_K.nbytes(32000 * 4096), 128) + 4096 * 4
    assert new.find("model buffer (CUDA0)").bytes == 9 * layer + output
    # the LM head runs where its weight is: no copy from the host in the GPU's compute buffer
    assert "LM head copied" in old.find("compute buffer (CUDA0)").detail
    assert "LM head copied" not in new.find("compute buffer (CUDA0)").detail


@pytest.mark.parametrize(
    ("ngl", "gpu_layers", "output_on_gpu"),
    [(0, 0, False), (1, 0, True), (2, 1, True), (32, 31, True), (33, 32, True), (999, 32, True)],
)
def test_ngl_output_first_layer_counts(ngl, gpu_layers, output_on_gpu):
    """-ngl N on current builds: N - 1 repeating layers and the output layer, at most all of them (act_gpu_layers =
    min(n_gpu_layers, n_layer + 1)); -ngl 0 keeps everything on the host."""
    e = ll(llama(), 512, gpu_layers=ngl)
    assert e.facts["output_on_gpu"] is output_on_gpu
    kv = e.find("KV cache (CUDA0)").bytes if gpu_layers else 0
    assert kv == gpu_layers * PER_LAYER_POS * 512


def test_gpu_layers_equal_to_n_layer_leaves_the_output_layer_on_the_host():
    e = ll(llama(), 512, gpu_layers=32, version="2025-11")  # before PR #18148
    # per layer: q, k, v, o and gate, up in q4_0; ffn_down's rows (11008) are not a multiple of 512, so
    # the CUDA buffer adds 256 elements (144 B) and aligns the tensor to 128 B; two f32 RMSNorm vectors
    down = pad(Q4_0.nbytes(11008 * 4096) + Q4_0.nbytes(256), 128)
    layer = 4 * Q4_0.nbytes(4096 * 4096) + 2 * Q4_0.nbytes(4096 * 11008) + down + 2 * 4096 * 4
    assert e.facts["output_on_gpu"] is False
    assert e.find("model buffer (CUDA0)").bytes == 32 * layer  # no final norm, no LM head


def test_two_gpus_each_get_a_compute_buffer():
    e = ll(llama(), 2048, gpus=2)
    assert {b.device for b in e.buffers if b.kind == "compute" and b.placement == "gpu"} == {0, 1}
    assert e.find("KV cache (CUDA0)").bytes == e.find("KV cache (CUDA1)").bytes == 16 * PER_LAYER_POS * 2048
    assert e.max_device_bytes < e.gpu_bytes


# --------------------------------------------------------------------------------------------------
# compute buffer form, by hand
# --------------------------------------------------------------------------------------------------
def test_compute_buffer_logits_vs_attention():
    # n_ctx 512: logits 4 B x 512 x (4096 + 32000) = 70.5 MiB beats attention 4 B x 512 x (4 x 4096 + 512 x 33)
    assert ll(llama(), 512, version="2023-12").find("compute buffer (CUDA0)").bytes == 4 * 512 * (4096 + 32000)
    # n_ctx 2048: 32 heads x 2048 x 512 f32 scores + mask + 4 hidden = 164 MiB
    assert ll(llama(), 2048, version="2023-12").find("compute buffer (CUDA0)").bytes == 164 * MiB


def test_flash_attention_drops_the_scores():
    no_fa = ll(llama(), 8192, flash_attn=False).find("compute buffer (CUDA0)").bytes
    fa = ll(llama(), 8192, flash_attn=True).find("compute buffer (CUDA0)").bytes
    assert no_fa == 4 * 512 * (4 * 4096 + 8192 * 33)
    assert fa == 4 * 512 * (4096 + 32000)  # the logits phase is now the peak


# --------------------------------------------------------------------------------------------------
# llama.cpp models with more than a decoder
# --------------------------------------------------------------------------------------------------
def test_llava_mmproj_is_its_own_buffer(catalog):
    e = engine_estimate(catalog.resolve("model", "llava-1.5-7b"), Request(dtype="q4_k_m"), "llama.cpp")
    # 23 CLIP layers (vision_feature_layer -2), no post-LN, projector: f16 2-D, f32 1-D
    two_d = 23 * (4 * 1024 * 1024 + 2 * 1024 * 4096) + 1024 * 4096 + 4096 * 4096 + 577 * 1024 + 1024 * 3 * 14 * 14
    one_d = 23 * (4 * 1024 + 4 * 1024 + 4096 + 1024) + 1024 + 2 * 1024 + 2 * 4096
    assert e.find("mmproj (CLIP + projector)").bytes == 2 * two_d + 4 * one_d == 624_412_672
    # CLIP compute: 16 heads x 577^2 f32 scores + 5 x 577 x 1024 f32 + the 336 x 336 x 3 f32 image
    assert e.find("CLIP compute buffer").bytes == 4 * (16 * 577**2 + 5 * 577 * 1024 + 3 * 336 * 336)


def test_t5_keeps_no_cross_cache_in_llama_cpp(catalog):
    e = engine_estimate(catalog.resolve("model", "flan-t5-base"), Request(context=512, dtype="q8_0"), "llama.cpp")
    assert e.kind_bytes("kv_cross") == 0
    assert any("no cross-attention cache" in n for n in e.notes)


@pytest.mark.parametrize(
    ("model", "engine"),
    [
        ("whisper-tiny", "llama.cpp"),
        ("llama-3.2-11b-vision", "llama.cpp"),
        ("llama-2-7b", "whisper.cpp"),
        ("whisper-tiny", "vllm"),
    ],
)
def test_unsupported_pairs_say_so(catalog, model, engine):
    with pytest.raises(UsageError):
        engine_estimate(
            catalog.resolve("model", model),
            Request(),
            engine,
            VllmOptions(total_memory_bytes=80 * GiB) if engine == "vllm" else None,
        )


def test_llama_cpp_refuses_non_gguf_quantization():
    with pytest.raises(UsageError, match="GGUF"):
        engine_estimate(llama(), Request(dtype="int8"), "llama.cpp")


# --------------------------------------------------------------------------------------------------
# whisper.cpp: decoders re-allocate the self cache
# --------------------------------------------------------------------------------------------------
def test_whisper_beams_reallocate_kv_self(catalog):
    tiny = catalog.resolve("model", "whisper-tiny")
    one = engine_estimate(tiny, Request(), "whisper.cpp", WhisperCppOptions(decoders=1))
    beams = engine_estimate(tiny, Request(beams=5), "whisper.cpp", WhisperCppOptions(temperature_fallback=False))
    # 4 layers x 384 x 2 x 2 B x 512 cells = 3 MiB; 5 decoders: (5 + 2) x 512 cells
    assert one.find("kv self").bytes == 4 * 384 * 2 * 2 * 512 == 3 * MiB
    assert beams.find("kv self").bytes == 7 * 3 * MiB
    assert beams.find("kv cross").bytes == one.find("kv cross").bytes == 4 * 384 * 2 * 2 * 1536


def test_whisper_default_counts_the_best_of_fallback(catalog):
    e = engine_estimate(catalog.resolve("model", "whisper-tiny"), Request(), "whisper.cpp")
    assert e.facts["decoders"] == 5  # greedy best_of 5 at a fallback temperature


def test_whisper_processors_duplicate_the_state(catalog):
    tiny = catalog.resolve("model", "whisper-tiny")
    one = engine_estimate(tiny, Request(), "whisper.cpp", WhisperCppOptions(decoders=1))
    two = engine_estimate(tiny, Request(), "whisper.cpp", WhisperCppOptions(decoders=1, processors=2))
    weights = one.kind_bytes("weights")
    assert two.gpu_bytes - weights == 2 * (one.gpu_bytes - weights)


# --------------------------------------------------------------------------------------------------
# vLLM: whatever is left is KV blocks
# --------------------------------------------------------------------------------------------------
def test_vllm_pool_and_window(catalog):
    spec = catalog.resolve("model", "llama-3-8b")
    e = engine_estimate(spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB))
    # 64 tokens (vllm==0.34.0 config/cache.py DEFAULT_BLOCK_SIZE) x K,V x 32 layers x 8 KV heads x 128 x bf16
    per_block = 64 * 2 * 32 * 1024 * 2
    assert e.find("KV cache blocks").bytes == e.facts["kv_blocks"] * per_block
    assert e.facts["kv_tokens"] == 64 * e.facts["kv_blocks"]
    assert e.facts["fits_window"] is True
    assert e.gpu_bytes <= e.facts["usable_bytes"] < e.gpu_bytes + per_block


def test_vllm_refuses_a_window_it_cannot_hold(catalog):
    e = engine_estimate(
        catalog.resolve("model", "llama-3-8b"),
        Request(),
        "vllm",
        VllmOptions(total_memory_bytes=20 * GiB, gpu_memory_utilization=0.9, max_model_len=8192, version="0.6"),
    )  # V0: its 1.79 GiB non-torch memory leaves no room
    assert e.facts["fits_window"] is False
    assert e.warnings


def test_vllm_mllama_pool_spans_cross_layers(catalog):
    spec = catalog.resolve("model", "llama-3.2-11b-vision")
    # vLLM runs mllama on V0 only (engines/vllm.py `budgets`): the V0 line inside 0.9
    e = engine_estimate(spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB, version="0.9-v0"))
    assert "40 layers" in e.find("KV cache blocks").detail


# --------------------------------------------------------------------------------------------------
# transformers and the shared type
# --------------------------------------------------------------------------------------------------
def test_transformers_profile_is_memory_estimate(catalog):
    spec = catalog.resolve("model", "llava-1.5-7b")
    req = Request(context=2048, batch=2)
    assert engine_estimate(spec, req).total_bytes == estimate(spec, req).total_bytes
    assert engine_estimate(spec, req).host_bytes == 0


@pytest.mark.parametrize(
    ("dtype", "engine"),
    [
        (None, "transformers"),
        ("fp16", "transformers"),
        ("int4", "transformers"),
        ("q4_k_m", "llama.cpp"),
        ("q8_0", "llama.cpp"),
    ],
)
def test_default_engine(dtype, engine):
    assert default_engine(dtype) == engine


def test_every_engine_returns_buffers(catalog):
    for engine in ENGINES:
        model = "whisper-base" if engine in ("whisper.cpp", "ctranslate2") else "llama-3.2-1b"
        opts = VllmOptions(total_memory_bytes=24 * GiB) if engine == "vllm" else None
        e = engine_estimate(catalog.resolve("model", model), Request(), engine, opts)
        assert e.buffers and all(b.bytes >= 0 and b.detail for b in e.buffers)
        assert e.gpu_bytes + e.host_bytes == sum(b.bytes for b in e.buffers)


# --------------------------------------------------------------------------------------------------
# engine_fit: the fullest GPU against its memory, and the largest context that fits
# --------------------------------------------------------------------------------------------------
def test_engine_fit_max_context_llama_cpp():
    from willitrun.engines import engine_fit

    spec = llama()  # Llama-2-7B shapes, 4096 window
    f = engine_fit(spec, Request(dtype="q4_0"), "llama.cpp", LlamaCppOptions(version="2023-12"), 6 * GiB)
    assert f.fits and f.max_context_tokens == 4096
    tight = engine_fit(spec, Request(dtype="q4_0"), "llama.cpp", LlamaCppOptions(version="2023-12"), 4 * GiB)
    n = tight.max_context_tokens
    assert 0 < n < 4096
    fits_n = engine_estimate(spec, Request(context=n, dtype="q4_0"), "llama.cpp", LlamaCppOptions(version="2023-12"))
    over = engine_estimate(spec, Request(context=n + 1, dtype="q4_0"), "llama.cpp", LlamaCppOptions(version="2023-12"))
    assert fits_n.max_device_bytes <= 4 * GiB < over.max_device_bytes


def test_engine_fit_vllm_uses_the_card(catalog):
    from willitrun.engines import engine_fit

    f = engine_fit(catalog.resolve("model", "llama-3-8b"), Request(), "vllm", None, 24 * GiB)
    assert f.estimate.facts["usable_bytes"] == 24 * GiB  # the newest line's share (0.34: 1.0; 0.33: 0.92)
    assert f.fits == (f.estimate.facts["kv_tokens"] >= 8192)


# --------------------------------------------------------------------------------------------------
# Sliding-window layers (llama.cpp's iSWA cache)
# --------------------------------------------------------------------------------------------------
def _kv(est):
    return sum(b.bytes for b in est.buffers if b.kind == "kv_self")


def test_llama_cpp_keeps_sliding_layers_at_the_window(catalog):
    # Gemma 3 1B: 26 layers, 1 KV head x 256, window 512, every 6th layer global (4 of 26).
    spec = catalog.resolve("model", "gemma-3-1b")
    per_cell = 2 * 256 * 2  # K and V, f16
    swa_cells = 1024  # GGML_PAD(min(32768, 512 + 512 ubatch), 256)
    est = ll(spec, 32768, parallel=1)
    assert _kv(est) == 4 * per_cell * 32768 + 22 * per_cell * swa_cells
    assert _kv(ll(spec, 32768, swa_full=True)) == 26 * per_cell * 32768
    # a context shorter than window + ubatch: every layer holds the whole (padded) cache
    assert _kv(ll(spec, 512, parallel=1)) == 26 * per_cell * 512


def test_llama_server_default_slots_size_the_sliding_layers_for_all_of_them(catalog):
    """llama-server without -np: 4 slots, one unified cache (tools/server/server.cpp "n_parallel is set to
    auto, using n_parallel = 4 and kv_unified = true", PR #16736). llama-kv-cache-iswa.cpp gives the SWA
    layers GGML_PAD(min(n_ctx, n_swa x n_seq_max + n_ubatch), 256) cells when unified: 4 x 512 + 512 = 2560."""
    spec = catalog.resolve("model", "gemma-3-1b")
    per_cell = 2 * 256 * 2
    server = ll(spec, 32768)  # the default: -np auto
    assert server.facts["parallel"] == 4 and server.n_ctx == 32768  # unified: n_ctx is not split
    assert _kv(server) == 4 * per_cell * 32768 + 22 * per_cell * 2560
    assert server.find("output buffer (host)").bytes == 4 * 262144 * 4  # llama_output_reserve(n_seq_max)
    assert any("-np auto" in n for n in server.notes)
    # -np 4 given without -kvu: 4 streams of n_ctx / 4 cells, each SWA stream its own window + ubatch
    split = ll(spec, 32768, parallel=4)
    assert split.facts["n_ctx_seq"] == 8192
    assert _kv(split) == 4 * per_cell * 32768 + 22 * per_cell * 4 * 1024
    # builds before PR #16736 (2025-10 and older) started one slot
    assert ll(spec, 32768, version="2025-10").facts["parallel"] == 1


def test_llama_cpp_runs_mistral_and_phi3_windows_as_full_attention(catalog):
    # llama.cpp builds no iSWA cache for these (LLM_ARCH_LLAMA; "Phi SWA is currently disabled")
    for model in ("mistral-7b", "phi-3.5-mini"):
        spec = catalog.resolve("model", model)
        assert _kv(ll(spec, 16384)) == _kv(ll(spec, 16384, swa_full=True))


@pytest.mark.parametrize(
    ("parallel", "ctx", "swa_cells"),
    [(1, 4096, 1024), (2, 4096, 2048), (4, 4096, 4096), (8, 4096, 4096), (2, 8192, 2048)],
)
def test_split_cache_keeps_a_sliding_window_per_stream(catalog, parallel, ctx, swa_cells):
    """-np N without -kvu: the cache tensors are [n_embd, kv_size, n_stream] (llama-kv-cache.cpp, PR #14363), so
    the SWA layers keep N x GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256) cells. unslothai/unsloth PR #5225
    measured llama-server on Gemma-3-270m (the same layer as Gemma 3 1B: 1 KV head x 256, window 512; 3 global
    + 15 sliding layers) bit-exact: 27 / 42 / 72 / 72 MiB at -np 1 / 2 / 4 / 8 and -c 4096, 54 MiB at -np 2
    -c 8192 -- 1 KiB a cell and layer, so 3 x 4096 + 15 x (1024, 2048, 4096, 4096) and 3 x 8192 + 15 x 2048."""
    per_cell = 2 * 256 * 2
    for layers_full, layers_swa, measured in (
        (3, 15, {(1, 4096): 27, (2, 4096): 42, (4, 4096): 72, (8, 4096): 72, (2, 8192): 54}),
    ):
        assert (layers_full * ctx + layers_swa * swa_cells) * per_cell == measured[parallel, ctx] * MiB
    e = ll(catalog.resolve("model", "gemma-3-1b"), ctx, parallel=parallel)  # 4 global + 22 sliding layers
    assert _kv(e) == (4 * ctx + 22 * swa_cells) * per_cell


@pytest.mark.parametrize(("parallel", "cells", "measured_mib"), [(3, 1536, 27.0), (4, 1024, 18.0)])
def test_split_cache_rounds_each_stream_up(catalog, parallel, cells, measured_mib):
    """unslothai/unsloth PR #7530 (2026-07-28), measured on llama-server build 10107 (857c97607), Gemma-3-270m
    at -c 1024: "3 slots allocates 1536 cells / 27.0 MiB, but 4 slots allocates 1024 cells / 18.0 MiB" --
    each stream is padded to 256 (PR #17046: 1024 / 3 -> 512, 1024 / 4 -> 256), and each SWA stream is
    min(n_ctx_seq, 512 + 512) of it. 18 layers x 1 KiB a cell; Gemma 3 1B has 26 such layers."""
    assert 18 * cells * 1024 == measured_mib * MiB
    e = ll(catalog.resolve("model", "gemma-3-1b"), 1024, parallel=parallel)
    assert e.n_ctx == cells and _kv(e) == 26 * cells * 1024


def test_largest_context_uses_the_per_layer_cache(catalog):
    from willitrun.engines import engine_fit

    spec = catalog.resolve("model", "gemma-2-9b")
    req = Request(dtype="q4_k_m")
    swa = engine_fit(spec, req, "llama.cpp", LlamaCppOptions(parallel=1), 8 * GiB)
    full = engine_fit(spec, req, "llama.cpp", LlamaCppOptions(swa_full=True, parallel=1), 8 * GiB)
    assert (full.max_context_tokens, swa.max_context_tokens) == (6656, 8192)  # 8192: the trained window


def test_early_build_at_ngl0_has_no_gpu_compute_buffer():
    """b2197 at -ngl 0 (ggml-org/ci open_llama_7b_v2 log): no CUDA0 compute buffer, a 70.50 MiB CPU graph."""
    e = ll(llama(), 512, gpu_layers=0, version="2023-12", flash_attn=False)
    assert not any(b.name == "compute buffer (CUDA0)" for b in e.buffers)
    assert e.find("compute buffer (CPU graph)").bytes == 4 * 512 * (4096 + 32000)


def test_llama_server_from_2026_06_reserves_logits_for_its_sequences():
    """PR #23861: llama-server's logits phase covers n_parallel outputs, not n_ubatch tokens."""
    from willitrun import load_catalog

    spec = load_catalog().resolve("model", "llama-3-8b")
    cli = ll(spec, 4096, flash_attn=True)
    server = ll(spec, 4096, flash_attn=True, version="2026-06-server", parallel=4)
    assert cli.find("compute buffer (CUDA0)").bytes == 4 * 512 * (4096 + 128256)  # 258.5 MiB, logits-bound
    ffn = 4 * 512 * (2 * 4096 + 2 * 14336)
    assert server.find("compute buffer (CUDA0)").bytes == max(ffn, 4 * 4 * (4096 + 128256))


def test_the_command_line_names_the_engines_the_package_sizes():
    """cli/parse and the engines package read the engine names from dtypes (light, on the start-up
    path); the command line accepts exactly the engines the package sizes."""
    from willitrun import engines
    from willitrun.cli import parse

    assert all(
        parse.engine(name) == engines.ENGINE_ALIASES.get(name, name)
        for name in (*engines.ENGINES, *engines.ENGINE_ALIASES)
    )


# --------------------------------------------------------------------------------------------------
# The trained window: llama.cpp warns, ollama lowers num_ctx
# --------------------------------------------------------------------------------------------------
def _qwen():
    from willitrun import load_catalog

    return load_catalog().resolve("model", "qwen2.5-7b")  # max_position_embeddings 32768


def q4(spec, context, engine="llama.cpp", **opts):
    options = {"llama.cpp": LlamaCppOptions, "ollama": OllamaOptions}[engine](**opts)
    return engine_estimate(spec, Request(context=context, dtype="q4_k_m"), engine, options)


def test_llamacpp_warns_beyond_the_trained_window():
    """llama-context.cpp: "n_ctx_seq (%u) > n_ctx_train (%u) -- possible training context overflow" (the
    transformers path says the same, memory.estimate_resolved); llama-server then caps the slot at
    n_ctx_train but the cache is still sized for -c."""
    spec = _qwen()
    assert spec.config.max_position_embeddings == 32768
    beyond = q4(spec, 262144)
    assert any("beyond the model's trained window of 32768" in w for w in beyond.warnings)
    assert beyond.n_ctx == 262144  # the cache is not capped
    assert not q4(spec, 32768).warnings
    # per sequence: -np 8 -c 262144 is 32768 positions each, within the window ...
    assert not q4(spec, 262144, parallel=8).warnings
    # ... but with a unified cache llama.cpp's n_ctx_seq is the whole n_ctx
    assert q4(spec, 262144, parallel=8, kv_unified=True).warnings


def test_ollama_lowers_num_ctx_to_the_trained_window():
    """ollama llm/server.go (v0.33.2 L112-115): num_ctx above the GGUF's context_length is lowered to it
    ("requested context size too large for model") before KvSize = num_ctx x parallel."""
    spec = _qwen()
    asked = q4(spec, 262144, "ollama")
    assert asked.context_tokens == 32768 and asked.n_ctx == 32768
    assert any("ollama lowers it to 32768" in w for w in asked.warnings)
    # the 80 GB default tier (262144) is lowered the same way, said as a note, not a warning
    default = engine_estimate(spec, Request(dtype="q4_k_m"), "ollama", OllamaOptions(vram_bytes=80 * GiB))
    assert default.n_ctx == 32768 and not default.warnings
    assert any("ollama lowers it to 32768" in n for n in default.notes)


def test_ollama_weighs_a_q4_k_m_file_unless_told():
    """`ollama run llama3.1` pulls the library's default tag, a Q4_K_M file (ollama.com/library); the
    checkpoint's bf16 is what transformers loads, not what ollama runs. --dtype still wins."""
    spec = llama()
    default = engine_estimate(spec, Request(context=4096), "ollama", OllamaOptions())
    assert default.dtype == "q4_k_m" and any("Q4_K_M" in n for n in default.notes)
    same = engine_estimate(spec, Request(context=4096, dtype="q4_k_m"), "ollama", OllamaOptions())
    assert default.buffers == same.buffers
    told = engine_estimate(spec, Request(context=4096, dtype="q8_0"), "ollama", OllamaOptions())
    assert told.dtype == "q8_0" and not any("Q4_K_M" in n for n in told.notes)


def test_ollama_0_30_leaves_placement_to_llama_servers_fit():
    """ollama v0.30 (llm/llama_server.go) passes -ngl only when num_gpu is set; otherwise llama-server's --fit
    places the layers, keeping 1024 MiB free per device (common.h fit_params_target). Earlier runners had
    no such fit."""
    spec = llama()
    new = engine_estimate(spec, Request(context=2048, dtype="q4_0"), "ollama", OllamaOptions())
    old = engine_estimate(spec, Request(context=2048, dtype="q4_0"), "ollama", OllamaOptions(release="0.15"))
    told = engine_estimate(spec, Request(context=2048, dtype="q4_0"), "ollama", OllamaOptions(num_gpu=20))
    assert (new.facts["fit_target_bytes"], old.facts["fit_target_bytes"], told.facts["fit_target_bytes"]) == (
        1024 * MiB,
        0,
        0,
    )
