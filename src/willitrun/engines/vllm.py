"""vLLM: it takes gpu_memory_utilization of the card up front and gives what the model does not need
to the KV cache -- on every rank of a tensor x pipeline parallel layout.

At start-up every worker loads its share of the weights, runs one forward pass of dummy tokens
(profile_run) and then
    KV pool = total memory x gpu_memory_utilization - weights - non-torch memory - activation peak,
split into blocks of block_size tokens; the blocks are then unified to the smallest count over all
ranks (vllm==0.10.1 vllm/v1/core/kv_cache_utils.py `unify_kv_cache_configs`). If the pool holds fewer
tokens than max_model_len vLLM refuses to start.

What differs between versions (VLLM_VERSIONS; sources are the PyPI wheels' Python files, read as
"vllm==X: path"):
- V0 (up to 0.7; the PR #10511 log this profile was first calibrated on): without chunked prefill the
  profile batch is max(max_model_len, 2048) tokens; beyond 32K of max_model_len V0 chunks too (2048
  tokens), so the 12.5 GiB of temporaries for 131,072 tokens this profile once gave Llama 3.1 was
  neither V0's nor V1's behaviour; the sampler runs on max_num_seqs (256) rows; 0.6 counts the CUDA
  context in non-torch memory.
- V1 (default from 0.8, vllm==0.8.5 vllm/envs.py `VLLM_USE_V1` "1"): prefill is always chunked
  (vllm==0.8.5 vllm/engine/arg_utils.py `_set_default_args_v1`: "V1 always uses chunked prefills"),
  so the profile batch is max_num_batched_tokens, whose default depends on the card and on `vllm serve`
  vs the `LLM` class (V1_BATCH_DEFAULTS); the sampler runs on min(max_num_batched_tokens, max_num_seqs)
  rows, on the last pipeline stage only (vllm==0.10.1 vllm/v1/worker/gpu_model_runner.py `profile_run`,
  `_dummy_sampler_run`), sorting the logits for top-k/top-p before 0.17 and with a Triton kernel from 0.17
  (VLLM_V1_SORT_BYTES_PER_LOGIT, VLLM_V1_TRITON_BYTES_PER_LOGIT); non-torch memory is measured from a baseline taken after the CUDA context
  (vllm==0.10.1 vllm/v1/worker/gpu_worker.py `init_device`), so the context sits in the headroom.
- From 0.21 gpu_memory_utilization defaults to 0.92 (vllm==0.22.0 vllm/config/cache.py) and CUDA graph
  memory is estimated and subtracted (vllm==0.22.0 envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS "1").
- 0.34 sizes the KV cache after warmup and graph capture (the extensible KV cache, default on CUDA):
  gpu_memory_utilization defaults to 1.0, the pool keeps max(1 GiB, 0.75 x the activation peak) free beyond
  the peak, and blocks hold 64 tokens (vllm==0.34.0 config/cache.py, v1/worker/extensible_kv_cache.py).

Weights per rank are the tensors as vLLM shards them, plus the rotary cos/sin cache, summed the way
vLLM measures them: the PyTorch caching allocator's allocated bytes (`DeviceMemoryProfiler`,
vllm==0.10.1 vllm/platforms/cuda.py `get_current_memory_usage`: `torch.cuda.max_memory_allocated`
after `reset_peak_memory_stats`), which round blocks (see `torch_allocated`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .. import archs
from ..archs import caches
from ..archs.base import EXPERT_ROLES, LINEAR_ROLES, Geometry, LayerKV, Tensor
from ..archs.caches import IndexerKeys
from ..archs.mamba import VLLM_STATE_REFUSAL
from ..archs.mllama import MllamaSpec
from ..errors import UsageError
from ..memory import (
    TRANSFORMERS_OVERHEAD_BYTES,
    AnySpec,
    Request,
    Resolved,
    resolve,
    stage_peak,
    stages,
    storage_types,
    vocab_size,
)
from .base import GIB, MIB, Buffer, EngineEstimate, pad
from .torch_alloc import torch_allocated


# --------------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VllmVersion:
    key: str
    since: str
    v1: bool  # V1 engine: chunked prefill always, sampler on min(tokens, seqs) rows
    gpu_memory_utilization: float  # CacheConfig default
    a100_exception: bool  # A100s get the small batch defaults whatever their memory (0.10.1 on)
    b200_tier: bool  # >= 160 GiB cards get 16384 tokens for `vllm serve` too (0.33.0)
    cudagraphs_profiled: bool  # CUDA graph memory estimated and subtracted from the budget (0.21 on)
    source: str
    context_in_non_torch: bool = False  # non-torch memory counted from before the CUDA context (before PR #12126)
    # The hybrid KV cache manager (0.9.1 on: vllm==0.9.1 vllm/v1/core/kv_cache_utils.py
    # `_get_kv_cache_config_uniform_page_size`, absent from 0.9.0): sliding-window layers get their own
    # block tables and only the blocks their window needs. Before it a model with both full and sliding
    # layers gave every layer a full cache (vllm==0.8.5 kv_cache_utils.py `unify_hybrid_kv_cache_specs`).
    hybrid_kv: bool = False
    # Mamba / hybrid-state models on V1 (MambaSpec in vllm==0.10.1 vllm/v1/kv_cache_interface.py for
    # mamba, mamba2, jamba, falcon_h1, bamba, granitemoehybrid; 0.9.2 had MambaSpec but mamba and jamba
    # were `SupportsV0Only`).
    state_pools: bool = False
    # 0.19.1 / 0.22.0 vllm/v1/core/kv_cache_utils.py `_get_kv_cache_groups_uniform_page_size`: group size
    # = the largest type count when it is under 1.5 x the smallest (gpt-oss + eagle); the start-up check
    # counts the padding layers (`_max_memory_usage_bytes_from_groups`).
    padded_groups: bool = False
    # 0.22.0 kv_cache_utils.py `_report_kv_cache_config`: "GPU KV cache size" = int(max_concurrency x
    # max_model_len) instead of num_blocks // groups x block_size.
    tokens_from_concurrency: bool = False
    # 0.33.0 vllm/v1/kv_cache_interface.py SlidingWindowSpec `max_admission_blocks_per_request`: the window
    # plus `max_in_flight_tokens` (vllm/config/vllm.py: max_concurrent_batches x max_num_batched_tokens,
    # 2 batches with async scheduling -- on by default for generative models -- at PP 1, PP batches else).
    in_flight_batches: bool = False
    # 0.33.0 vllm/config/model.py `is_prefix_caching_supported`: "Generative hybrid models support prefix
    # caching" (0.22.0: "Hybrid models do not support prefix caching"), so attention + Mamba models run with
    # mamba_cache_mode "align" (models/config.py MambaModelConfig): a state block per attention block and
    # MambaSpec.max_memory_usage_bytes = page x (2 + num_prefill_checkpoint_blocks); the Mamba2 mixer
    # declares one checkpoint block (layers/mamba/mamba_mixer2.py `get_kv_cache_spec`).
    hybrid_prefix_caching: bool = False
    # MXFP4 mixture-of-experts weights padded per MoE backend (MXFP4_PADDING), from the mxfp4.py read at
    # vllm-project/vllm 007d50058a06dec0f82472d63c819244d460c40d; the 0.10-0.20 files were not checked.
    mxfp4_padding: bool = False
    # The profile sampler's top-k/top-p: the Triton kernel from 0.17.0 (VLLM_V1_TRITON_BYTES_PER_LOGIT), torch.sort
    # before it (VLLM_V1_SORT_BYTES_PER_LOGIT).
    triton_sampler: bool = False
    # VLLM_USE_FLASHINFER_SAMPLER on a plain `pip install vllm`: vllm==0.21.0 and 0.22.0 envs.py default True, and
    # flashinfer-python is a requirement from 0.12.0 (the wheels' METADATA); 0.8-0.11 read None as "on" but
    # FlashInfer is only the `vllm[flashinfer]` extra there (0.11.0 METADATA), 0.12.0-0.20.0 read None as "off"
    # (topk_topp_sampler.py `if envs.VLLM_USE_FLASHINFER_SAMPLER:`; vllm==0.20.0 envs.py default None).
    flashinfer_sampler: bool = False
    # GGUF weights load (vllm/model_executor/layers/quantization/gguf.py and model_loader/gguf_loader.py: in
    # every wheel from 0.6 to 0.23.0, every llama.cpp quant type of STANDARD_QUANT_TYPES, KQUANT_TYPES and
    # IMATRIX_QUANT_TYPES); vllm==0.24.0 and later wheels hold neither file and register no "gguf" quantization
    # (a plugin carries it since: vllm-project/vllm-gguf-plugin issue #101 runs a Q4_K_M file on vLLM 0.18.0).
    gguf: bool = True
    # The extensible KV cache (vllm==0.34.0, on by default on CUDA and ROCm: vllm/config/vllm.py, "on where
    # supported if unset"): the pool is sized after warmup and CUDA graph capture from the memory then free,
    # vllm/v1/worker/extensible_kv_cache.py `measure_kv_cache_bytes`:
    #     available = min(requested - non_kv_used, headroom - margin) - transient_peak,
    #     margin = max(KV_CACHE_MARGIN_FLOOR_BYTES = 1 GiB, KV_CACHE_MARGIN_FRACTION 0.75 x transient_peak),
    # requested = ceil(total x gpu_memory_utilization) (v1/worker/utils.py `request_memory`), whose default is
    # 1.0 with this cache (config/cache.py `resolved_gpu_memory_utilization`).
    extensible_kv: bool = False
    # CacheConfig.DEFAULT_BLOCK_SIZE: 16 up to 0.33.0, 64 in vllm==0.34.0 config/cache.py (FlashAttention's
    # `get_preferred_block_size` keeps the default: it supports MultipleOf(16), v1/attention/backends/flash_attn.py).
    block_size: int = 16
    # KV layers of several types whose pages differ in size (Gemma 4: 256-wide sliding heads, 512-wide full ones):
    # "none" -> refused (vllm==0.10.1 vllm/v1/core/kv_cache_utils.py `get_kv_cache_config` ends in a bare
    # `raise NotImplementedError`); "block" -> vllm==0.22.0 kv_cache_utils.py `unify_kv_cache_spec_page_size`
    # (lines 1012-1049, called by `get_kv_cache_groups` line 1672): a layer whose page divides the largest page
    # gets block_size x (largest // its page), otherwise NotImplementedError ("Cannot unify by adjusting
    # block_size"); "pad-attn" -> vllm==0.24.0 kv_cache_utils.py lines 1049-1100: a non-dividing page is padded to the
    # largest when the backend `indexes_kv_by_block_stride` (v1/attention/backend.py line 205: the layered stride order
    # does not keep num_layers first -- FlashAttention's and Triton's (1, 0, 2, 3, 4, 5) under the default NHD layout,
    # v1/attention/backends/utils.py `get_kv_cache_layout`), else NotImplementedError; Mamba pages not padded; MLA
    # backends not checked, refused here; "pad" -> vllm==0.33.0 / 0.34.0 vllm/v1/core/kv_cache_planning.py `unify_kv_cache_spec_page_size`
    # (lines 346-408, called by `get_kv_cache_groups` line 1170): the same, but a non-dividing page of a non-MLA
    # attention layer (or a Mamba layer) is padded to the largest (`page_size_padded`, block_size kept); MLA still
    # raises. The equal pages then go to `_get_kv_cache_groups_uniform_page_size` like any hybrid model.
    page_unify: str = "none"


VLLM_VERSIONS: dict[str, VllmVersion] = {
    v.key: v
    for v in (
        VllmVersion(
            "0.6",
            "0.6.x (V0)",
            False,
            0.9,
            False,
            False,
            False,
            "vllm-project/vllm PR #10511 (Dec 2024) worker.py memory profiling; V0 engine",
            True,
        ),
        VllmVersion(
            "0.7",
            "0.7.x (V0)",
            False,
            0.9,
            False,
            False,
            False,
            "vllm-project/vllm PR #12126 (Jan 2025): non-torch memory from a baseline after the CUDA context",
        ),
        VllmVersion(
            "0.8",
            "0.8.x (V1)",
            True,
            0.9,
            False,
            False,
            False,
            "vllm==0.8.5 vllm/engine/arg_utils.py `_set_default_args_v1`; vllm/config.py gpu_memory_utilization 0.9",
        ),
        # 0.9.0 has 0.9.1's batch defaults (the A100 exception: vllm==0.9.0 arg_utils.py:1495) but not the hybrid
        # KV cache manager: "0.9" with --disable-hybrid-kv-cache-manager reproduces it.
        VllmVersion(
            "0.9",
            "0.9.1 to 0.9.2 (V1)",
            True,
            0.9,
            True,
            False,
            False,
            "vllm==0.9.1 vllm/v1/core/kv_cache_utils.py (hybrid KV cache manager); vllm/engine/arg_utils.py:1554 "
            "(A100 exception)",
            hybrid_kv=True,
        ),
        # VLLM_USE_V1=0 inside 0.9: vllm==0.9.x envs.py `VLLM_USE_V1` (default "1") still selects the V0 engine when
        # set to 0 (V0 was removed in 0.10/0.11): V0's profile (max(max_model_len, 2048) tokens, 256 sequences,
        # vllm/engine/arg_utils.py `_set_default_args_v0`) and no hybrid KV cache manager (a V1 component).
        VllmVersion(
            "0.9-v0",
            "0.9.x with VLLM_USE_V1=0 (V0)",
            False,
            0.9,
            False,
            False,
            False,
            "vllm==0.9.x vllm/envs.py VLLM_USE_V1 (default 1; 0 selects the V0 engine)",
        ),
        VllmVersion(
            "0.10",
            "0.10 to 0.11 (V1)",
            True,
            0.9,
            True,
            False,
            False,
            "vllm==0.10.1 and 0.19.1 vllm/engine/arg_utils.py (A100 exception, PR #17885); "
            "vllm/config/cache.py gpu_memory_utilization 0.9; KV groups as vllm==0.10.1 kv_cache_utils.py; "
            "sampler as vllm==0.10.1 and 0.11.0 topk_topp_sampler.py (torch.sort)",
            hybrid_kv=True,
            state_pools=True,
        ),
        # 0.12 to 0.16: 0.10's budget, plus page-size unification (vllm==0.12.0 vllm/v1/core/kv_cache_utils.py
        # `unify_kv_cache_spec_page_size` line 885, called by `get_kv_cache_groups` line 1224; also in 0.13.0,
        # 0.14.0, 0.15.0 and 0.16.0; absent from 0.10.1 and 0.11.0, whose `get_kv_cache_config` raises).
        VllmVersion(
            "0.12",
            "0.12 to 0.16 (V1)",
            True,
            0.9,
            True,
            False,
            False,
            "vllm==0.12.0 to 0.16.0 vllm/v1/core/kv_cache_utils.py `unify_kv_cache_spec_page_size`; otherwise as 0.10",
            hybrid_kv=True,
            state_pools=True,
            page_unify="block",
        ),
        # 0.17 to 0.20: 0.10's budget with the Triton top-k/top-p sampler (vllm==0.17.0, 0.18.0 and 0.19.1
        # topk_topp_sampler.py `apply_top_k_top_p`; absent from 0.16.0).
        VllmVersion(
            "0.17",
            "0.17 to 0.20 (V1)",
            True,
            0.9,
            True,
            False,
            False,
            "vllm==0.17.0 and 0.19.1 vllm/v1/sample/ops/topk_topp_sampler.py (Triton top-k/top-p, PR #33538); "
            "otherwise as 0.10 (vllm==0.19.1 arg_utils.py, config/cache.py)",
            hybrid_kv=True,
            state_pools=True,
            triton_sampler=True,
            page_unify="block",
        ),
        VllmVersion(
            "0.22",
            "0.21 to 0.23 (V1)",
            True,
            0.92,
            True,
            False,
            True,
            "vllm==0.22.0 vllm/config/cache.py gpu_memory_utilization 0.92; envs.py "
            "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS '1' ('default since v0.21.0' in the log)",
            hybrid_kv=True,
            state_pools=True,
            padded_groups=True,
            tokens_from_concurrency=True,
            mxfp4_padding=True,
            triton_sampler=True,  # as 0.17 (the Triton kernel is in main's topk_topp_sampler.py since PR #33538)
            flashinfer_sampler=True,
            page_unify="block",
        ),
        # 0.24 to 0.32: 0.22's budget without GGUF (vllm==0.24.0 has no quantization/gguf.py; 0.23.0 does)
        VllmVersion(
            "0.24",
            "0.24 to 0.32 (V1)",
            True,
            0.92,
            True,
            False,
            True,
            "vllm==0.24.0 wheel: no model_executor/layers/quantization/gguf.py (present in 0.23.0); otherwise as "
            "0.22 (vllm==0.27.0 and 0.30.0 have no GGUF either)",
            hybrid_kv=True,
            state_pools=True,
            padded_groups=True,
            tokens_from_concurrency=True,
            mxfp4_padding=True,
            triton_sampler=True,
            flashinfer_sampler=True,
            gguf=False,
            page_unify="pad-attn",
        ),
        VllmVersion(
            "0.33",
            "0.33 (V1)",
            True,
            0.92,
            True,
            True,
            True,
            "vllm==0.33.0 vllm/engine/arg_utils.py `get_batch_defaults` (>= 160 GiB tier)",
            hybrid_kv=True,
            state_pools=True,
            padded_groups=True,
            tokens_from_concurrency=True,
            in_flight_batches=True,
            hybrid_prefix_caching=True,
            mxfp4_padding=True,
            triton_sampler=True,
            flashinfer_sampler=True,
            gguf=False,
            page_unify="pad",
        ),
        # 0.34: 0.33's batch defaults, sampler, KV groups and cudagraph sizes (vllm==0.34.0 engine/arg_utils.py
        # `get_batch_defaults`, config/scheduler.py and v1/core/kv_cache_utils.py read against 0.33.0: no change to
        # them), with the extensible KV cache on, gpu_memory_utilization 1.0 and block size 64.
        VllmVersion(
            "0.34",
            "0.34 (V1)",
            True,
            1.0,
            True,
            True,
            True,
            "vllm==0.34.0 vllm/config/cache.py (DEFAULT_BLOCK_SIZE 64, `resolved_gpu_memory_utilization` 1.0 with "
            "enable_extensible_kv_cache); vllm/v1/worker/extensible_kv_cache.py `measure_kv_cache_bytes` "
            "(KV_CACHE_MARGIN_FLOOR_BYTES 1 GiB, KV_CACHE_MARGIN_FRACTION 0.75)",
            hybrid_kv=True,
            state_pools=True,
            padded_groups=True,
            tokens_from_concurrency=True,
            in_flight_batches=True,
            hybrid_prefix_caching=True,
            mxfp4_padding=True,
            triton_sampler=True,
            flashinfer_sampler=True,
            gguf=False,
            extensible_kv=True,
            block_size=64,
            page_unify="pad",
        ),
    )
}
# vllm==0.34.0 vllm/v1/worker/extensible_kv_cache.py: the sizing margin's floor and its share of the transient peak.
# `KV_CACHE_MARGIN_FLOOR_BYTES = (3 if current_platform.is_rocm() else 1) << 30`: "ROCr also maps kernel scratch
# outside the allocator when a kernel first needs it, so ROCm keeps a larger floor".
VLLM_KV_MARGIN_FLOOR_BYTES = 1 << 30
VLLM_KV_MARGIN_FLOOR_ROCM_BYTES = 3 << 30
VLLM_KV_MARGIN_FRACTION = 0.75
# What a vLLM worker holds before its memory snapshot on one card: vllm==0.34.0 vllm/v1/worker/gpu_worker.py
# `init_device` creates the CUDA context, NCCL and the cuBLAS/cuBLASLt handles ("Create the handles now, before the
# snapshot, so they count as baseline like the NCCL buffers") and then takes `init_snapshot`, whose free memory is
# what `measure_kv_cache_bytes` caps the pool with (headroom = free after warmup + committed KV = init free -
# non_kv_used). So with the extensible KV cache the pool is min(requested, total - this - margin) - the rest: at
# the default utilization 1.0 this comes off the pool (before 0.34 it sat in the 1 - utilization headroom).
# Figure: a PyTorch process's CUDA context, cuBLAS workspace and allocator reserve, measured at 360 MiB on an
# RTX 3090 (memory.TRANSFORMERS_OVERHEAD_BYTES, lm-sys/FastChat#2005). The bare context grows with the SM count:
# 555 MiB on an RTX PRO 6000 Blackwell (188 SMs), 107 MiB on an RTX 4060 Ti (34 SMs), cudaMemGetInfo's primary
# context as measured in ggml-org/llama.cpp PR #23604 (2026-05-24) -- about 3 MiB per SM; the card's SM count is
# not known here, so one figure serves every card (VllmOptions.cuda_context_bytes overrides it). On an H100 the same
# footprint reads far larger: vLLM's own PYNVVIDEOCODEC_CUDA_CONTEXT_BYTES = 1.8 GiB ("Per-API-server CUDA context and
# driver allocation, measured with PyNvVideoCodec 2.0.4 on H100", vllm==0.34.0 multimodal/video_decoders/
# pynvvideocodec.py), and PR #10511's V0 non_torch_memory (1.79 GiB, counted from before the context) less PR
# #12126's V1 figure (0.16 GiB, after it) is 1.63 GiB: on such cards the pool is up to 1.3 GiB smaller than shown.
VLLM_CUDA_CONTEXT_BYTES = TRANSFORMERS_OVERHEAD_BYTES
# --kv-cache-dtype: "auto" (the model's dtype), float16, bfloat16 and the fp8 formats (vllm==0.11.0, 0.22.0 and
# 0.33.0 vllm/config/cache.py CacheDType); llama.cpp's q8_0 / q4_0 cache types are not among them.
VLLM_KV_TYPES = frozenset({"f16", "bf16", "f32", "fp8"})


def accepts(info: VllmVersion, dtype_name: str, dtype_family: str, kv_name: str) -> str | None:
    """Why vLLM `info` would not load these weight and KV-cache types (None: it would)."""
    if kv_name not in VLLM_KV_TYPES:
        return (
            f"vLLM has no {kv_name} KV cache: --kv-cache-dtype takes auto, float16, bfloat16 or fp8 "
            "(vllm/config/cache.py CacheDType); --kv-dtype fp8 is its 8-bit cache"
        )
    if dtype_family == "gguf" and not info.gguf:
        return (
            f"vLLM {info.since} loads no GGUF file ({dtype_name}): its own GGUF loader is in the wheels up to "
            "0.23.0 (quantization/gguf.py) and gone from 0.24.0 (the separate vllm-gguf-plugin package is not "
            "modelled); --vllm-version 0.22 or earlier, or a safetensors type"
        )
    return None


# The newest release line on PyPI (vllm==0.34.0): the default, as for every engine; the
# calibration entries name their own line (0.10 for the 0.10-0.16 logs, whose budget 0.12 shares, 0.17 for 0.17-0.20, all the 0.9 share).
VLLM_DEFAULT_VERSION = "0.34"


def _release(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^v?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?", text.strip())
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def version_for_release(release: str) -> str | None:
    """The version key whose range (its `since`: "0.12 to 0.16", "0.9.1 to 0.9.2", "0.6.x", "0.33") holds a
    release a log prints ("0.11.0" -> "0.10"); the V0 fallback keys are never chosen this way. None when no
    range holds it."""
    r = _release(release)
    if r is None:
        return None
    for key, v in VLLM_VERSIONS.items():
        if "-" in key:
            continue
        bounds = re.findall(r"\d+\.\d+(?:\.\d+)?", v.since)
        if not bounds:
            continue
        lo, hi = _release(bounds[0]), _release(bounds[-1])
        assert lo is not None and hi is not None
        # a bound of two parts holds every patch release of it (0.16 holds 0.16.3)
        if lo <= r[: len(lo)] and r[: len(hi)] <= hi:
            return key
    return None


# non_torch_memory, V0: "non_torch_memory 1.79GiB" for Llama-3-8B on an H100 at TP 1 and 3.58 GiB at TP 2
# (PR #10511 log, measured.yaml `vllm-pr10511-llama3-8b-bf16-h100-tp1`): the CUDA context, cuBLAS
# workspaces and, at TP 2, NCCL and the custom all-reduce buffers. Larger TP was not printed.
VLLM_V0_NON_TORCH_BYTES = round(1.79 * GIB)
VLLM_V0_NON_TORCH_TP_BYTES = round(3.58 * GIB)
# V1 measures from a baseline taken after the CUDA context: 0.16 GiB at TP 1 (PR #12126 log, Jan 2025,
# H100) and 0.25 GiB at TP 2 (issue #13061 log, 2 x RTX 4090).
VLLM_NON_TORCH_BYTES = round(0.16 * GIB)
VLLM_NON_TORCH_TP_BYTES = round(0.25 * GIB)
# The profile run's sampler: 1.26 GiB for Llama-3-8B at 256 sequences (PR #10511 log, the same at TP 2
# although the layers' temporaries halve there): float32 logits, the sorted copy and int64 indices for
# top-p/top-k, probabilities, log-probabilities: 1.26 GiB / (256 x 128,256 x 4 B) = 10.3 logits-sized
# tensors. V1's `_dummy_sampler_run` takes the same path (dummy top_k, top_p, penalties), so the count is
# kept for V1; no public V1 log separates the sampler to check it.
VLLM_SAMPLER_LOGITS_COPIES = 10.3
# V1's profile sampler, from the source (vllm==0.10.1 and 0.11.0 vllm/v1/worker/gpu_model_runner.py
# `_dummy_sampler_run`: temperature 0.5, top_p 0.9, top_k = vocab - 1, no_penalties=True, no logprobs), with the
# PyTorch-native top-k/top-p of a plain `pip install vllm` (FlashInfer is the `vllm[flashinfer]` extra in the
# 0.10.1 and 0.11.0 wheels' METADATA; topk_topp_sampler.py falls back to `forward_native` without it). Bytes per
# logit alive, as the caching allocator counts them (torch.cuda.max_memory_allocated):
#   the logits as compute_logits returns them (model dtype, still held by _dummy_sampler_run)  a
#   `logits.to(torch.float32)` (sampler.py `forward`; temperature divides in place)            4
#   `logits_sort, logits_idx = logits.sort(...)` (topk_topp_sampler.py `apply_top_k_top_p`)  4 + 8
# and inside that sort, PyTorch's CUDA sort of rows longer than 4096 (pytorch/pytorch
# aten/src/ATen/native/cuda/Sort.cu `launch_stable_sort_kernel`, read at d63874ec7496f41ffcd8d1b30cd7566c4bf76958):
#   >= 128 rows `segmented_sort_pairs`: int64 reverse indices 8 + cub DeviceSegmentedRadixSort's temporary
#     storage, which holds a third key and value buffer when the output may not overwrite the input
#     (is_overwrite_okay false: 4 + 8)                                                      = a + 36
#   2-127 rows `segmented_sort_pairs_by_full_sort`: two int2 index/segment arrays 8 + 8, the keys output
#     `radix_sort_pairs` allocates for a nullptr keys_out (aten/src/ATen/cuda/cub.cuh) 4, cub's third
#     buffers 4 + 8                                                                         = a + 48
#   1 row `segmented_sort_large_segments`: int64 indices of one row 8 + cub's third buffers 12  = a + 36
# The later peak, in apply_top_k_top_p's scatter (bool masks 1 + 1, softmax 4, scatter result 4: a + 26), is
# lower. The sort's temporaries are what puts 0.10/0.11's profile about a third above a + 26.
VLLM_V1_SORT_BYTES_PER_LOGIT = 36  # + the model dtype's bytes; >= 128 rows and 1 row
VLLM_V1_FULL_SORT_BYTES_PER_LOGIT = 48  # 2 to 127 rows
VLLM_SORT_SEGMENTED_ROWS = 128  # Sort.cu: `nsegments < 128` -> segmented_sort_pairs_by_full_sort
# From the Triton top-k/top-p kernel on (vllm PR #33538; vllm==0.19.1 topk_topp_sampler.py `apply_top_k_top_p`:
# `if HAS_TRITON and logits.shape[0] >= 8: return apply_top_k_top_p_triton(...)`, absent from 0.16.0) the logits
# are masked in place (topk_topp_triton.py): a + float32 copy 4 + `logits.softmax` 4 + random_sample's
# `torch.empty_like(probs)` 4 = a + 12, plus the kernel's per-program buffer (min(SMs, rows) rows of float32
# logits, "~80MiB" in PR #33538), not counted: the card's SM count is not known here.
VLLM_V1_TRITON_BYTES_PER_LOGIT = 12
VLLM_TRITON_SAMPLER_MIN_ROWS = 8  # fewer rows still sort (apply_top_k_top_p_pytorch)
# FlashInfer's top-k/top-p (VLLM_USE_FLASHINFER_SAMPLER; TopKTopPSampler.forward_cuda -> flashinfer_sample, which
# the dummy sampler run's top_k and top_p send to `flashinfer.sampling.top_k_top_p_sampling_from_logits`):
# flashinfer-python 0.3.1 and 0.6.11.post2 flashinfer/sampling.py, filter_apply_order "top_k_first":
# `masked_logits = top_k_mask_logits(logits, top_k)` (torch.empty_like: 4 B) then `probs = torch.softmax(...)`
# (4 B), besides the sampler's float32 copy (4 B) and the model-dtype logits: a + 12, no sort. Its 1 MiB
# row-state buffer (`_get_cache_buf`) is not counted.
VLLM_V1_FLASHINFER_BYTES_PER_LOGIT = 12
VLLM_BLOCK_SIZE = 16  # CacheConfig block_size default on CUDA
VLLM_V0_MAX_NUM_SEQS = 256  # SchedulerConfig max_num_seqs default (V0)
VLLM_MIN_BATCHED_TOKENS = (
    2048  # V0 EngineArgs: max_num_batched_tokens = max(max_model_len, 2048) without chunked prefill
)
VLLM_V0_MULTIMODAL_BATCHED_TOKENS = 5120  # vllm==0.8.5 vllm/config.py _MULTIMODAL_MODEL_MAX_NUM_BATCHED_TOKENS
# vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE: the embedding and LM head rows are padded to
# a multiple of 64 (`pad_vocab_size`), then divided over the TP ranks (`divide`, which asserts).
VLLM_VOCAB_PADDING = 64
# (serve tokens, serve seqs, LLM-class tokens, LLM-class seqs) by tier: vllm==0.10.1
# vllm/engine/arg_utils.py 1634-1656 (same in 0.19.1, 0.22.0; 0.8.5 lacks the A100 exception;
# 0.33.0 adds the >= 160 GiB tier).
V1_BATCH_DEFAULTS = {
    "small": (2048, 256, 8192, 256),  # < 70 GiB, or an A100
    "large": (8192, 1024, 16384, 1024),  # >= 70 GiB (H100, H200, MI300X)
    "b200": (16384, 1024, 16384, 1024),  # >= 160 GiB (0.33.0)
}


@dataclass(frozen=True)
class VllmOptions:
    """vLLM settings (flag in brackets)."""

    total_memory_bytes: int | None = None  # the card's memory as torch.cuda.mem_get_info reports it
    gpu_memory_utilization: float | None = None  # [--gpu-memory-utilization] None: the version's default
    max_model_len: int | None = None  # [--max-model-len] None: the request's context, else the model's window
    max_num_seqs: int | None = None  # [--max-num-seqs] None: the version's default for the card
    max_num_batched_tokens: int | None = None  # [--max-num-batched-tokens] None: the version's default
    block_size: int | None = None  # [--block-size] None: the version's default (16; 64 from 0.34)
    non_torch_bytes: int | None = None  # None: the version's figure (VLLM_*NON_TORCH*)
    non_torch_detail: str | None = None  # where non_torch_bytes comes from (explain --save); None: the version's
    # The CUDA context, NCCL and cuBLAS handles a worker holds before its memory snapshot; None: VLLM_CUDA_CONTEXT_BYTES.
    # Only the extensible KV cache (0.34) sizes the pool against it; earlier it sits in the 1 - utilization headroom.
    cuda_context_bytes: int | None = None
    # The captured CUDA graphs' memory, as a log prints it ("Graph capturing finished in N secs, took X GiB", or from
    # 0.21 "Estimated CUDA graph memory: X GiB total"); None: not modelled (0). From 0.21 vLLM takes its estimate off
    # the KV budget (gpu_worker.py `determine_available_memory`: requested - non_kv_cache_memory -
    # cudagraph_memory_estimate); 0.34 captures before sizing the extensible cache, so the graphs' pool is in its
    # non_kv_used; before 0.21 they are captured after the pool, in the headroom, and do not change it.
    cudagraph_bytes: int | None = None
    tensor_parallel: int = 1  # [--tensor-parallel-size]
    pipeline_parallel: int = 1  # [--pipeline-parallel-size]
    version: str = VLLM_DEFAULT_VERSION  # a key of VLLM_VERSIONS
    usage: str = "serve"  # "serve" (`vllm serve`, the OpenAI server) or "llm" (the `LLM` class): batch defaults
    gpu_name: str | None = None  # the card's name: vLLM gives A100s the small batch defaults
    disable_hybrid_kv_cache_manager: bool = (
        False  # [--disable-hybrid-kv-cache-manager] sliding layers cache every token
    )
    expert_parallel: bool = False  # [--enable-expert-parallel] whole experts per rank instead of TP-sharded ones
    data_parallel: int = 1  # [--data-parallel-size] attention replicas; with expert parallel EP = TP x DP
    flashinfer_sampler: bool | None = None  # [VLLM_USE_FLASHINFER_SAMPLER] None: the version's default install

    def __post_init__(self) -> None:
        if self.version not in VLLM_VERSIONS:
            raise UsageError(f"unknown vLLM version {self.version!r}; choose one of {', '.join(VLLM_VERSIONS)}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(f"gpu_memory_utilization must be in (0, 1] (got {self.gpu_memory_utilization})")
        for name in (
            "tensor_parallel",
            "pipeline_parallel",
            "data_parallel",
            "block_size",
            "max_num_seqs",
            "max_num_batched_tokens",
            "max_model_len",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 (got {value})")
        if self.usage not in ("serve", "llm"):
            raise UsageError(f"usage must be 'serve' or 'llm' (got {self.usage!r})")

    @property
    def moe_split(self) -> MoeSplit:
        return MoeSplit(self.tensor_parallel * self.data_parallel, self.expert_parallel)

    @property
    def info(self) -> VllmVersion:
        return VLLM_VERSIONS[self.version]

    @property
    def uses_flashinfer_sampler(self) -> bool:
        """FlashInfer's top-k/top-p in the profile sampler: V1 only (V0 reads the variable's absence as off and
        its profile is the fitted VLLM_SAMPLER_LOGITS_COPIES)."""
        if not self.info.v1:
            return False
        return self.info.flashinfer_sampler if self.flashinfer_sampler is None else self.flashinfer_sampler

    @property
    def kv_block_size(self) -> int:
        return self.block_size if self.block_size is not None else self.info.block_size

    @property
    def utilization(self) -> float:
        return (
            self.gpu_memory_utilization if self.gpu_memory_utilization is not None else self.info.gpu_memory_utilization
        )


def batch_defaults(
    opt: VllmOptions, max_model_len: int, multimodal: bool = False, sliding: bool = False
) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) as the version sets them for this card, unless given."""
    info = opt.info
    if not info.v1:
        seqs = opt.max_num_seqs or VLLM_V0_MAX_NUM_SEQS
        if opt.max_num_batched_tokens:
            return opt.max_num_batched_tokens, seqs
        # V0 turns chunked prefill on for max_model_len > 32K on a GPU (no sliding window, not multimodal):
        # 2048 tokens; otherwise max(max_model_len, 2048), and at least 5120 for a multimodal model
        # (vllm==0.8.5 vllm/engine/arg_utils.py `_set_default_args_v0`, vllm/config.py SchedulerConfig).
        if max_model_len > 32768 and not multimodal and not sliding:
            return VLLM_MIN_BATCHED_TOKENS, seqs
        tokens = max(max_model_len, VLLM_MIN_BATCHED_TOKENS)
        return (max(tokens, VLLM_V0_MULTIMODAL_BATCHED_TOKENS) if multimodal else tokens), seqs
    total = opt.total_memory_bytes or 0
    a100 = info.a100_exception and "a100" in (opt.gpu_name or "").lower()
    tier = "small"
    if info.b200_tier and total >= 160 * GIB:
        tier = "b200"
    elif total >= 70 * GIB and not a100:
        tier = "large"
    serve_tokens, serve_seqs, llm_tokens, llm_seqs = V1_BATCH_DEFAULTS[tier]
    tokens, seqs = (serve_tokens, serve_seqs) if opt.usage == "serve" else (llm_tokens, llm_seqs)
    return opt.max_num_batched_tokens or tokens, opt.max_num_seqs or seqs


# --------------------------------------------------------------------------------------------------
# Tensor and pipeline parallel: which layers, which rows
# --------------------------------------------------------------------------------------------------
def pp_partition(layers: int, pp: int) -> tuple[int, ...]:
    """Decoder layers per pipeline stage: vllm==0.10.1 vllm/distributed/utils.py `get_pp_indices`:
    layers // pp each, the remainder one each to the stages before the last (80 layers, PP 3: 27, 27, 26)."""
    if pp > layers:
        raise UsageError(f"pipeline_parallel {pp} exceeds the {layers} layers")
    parts = [layers // pp] * pp
    for i in range(2, layers % pp + 2):
        parts[-i] += 1
    return tuple(parts)


def kv_heads_per_rank(kv_heads: int, tp: int) -> int:
    """vllm==0.10.1 vllm/config/__init__.py `get_num_kv_heads`: max(1, kv_heads // tp) (replicated when tp
    exceeds them)."""
    return max(1, kv_heads // tp)


def tp_problems(spec: AnySpec, tp: int, moe: MoeSplit | None = None) -> list[str]:
    """Why vLLM refuses tensor_parallel = tp for this model (empty when it accepts): every attention's
    query heads and every MLP's width are divided (`divide()` in vllm/model_executor/layers/linear.py
    asserts), KV heads divided or replicated (QKVParallelLinear: `divide(tp_size, total_num_kv_heads)`),
    and the embedding rows, padded to 64, divided too (vocab_parallel_embedding.py)."""
    g = archs.geometry(spec)
    out = []
    for what, count, replicable in g.tp_constraints:
        ranks = tp
        if what == "moe_intermediate_size" and moe is not None:
            if moe.expert_parallel:
                continue  # whole experts per rank: their width is not divided
            ranks = moe.ranks  # without EP the experts are split over TP x DP (flatten_tp_across_dp)
        if count % ranks == 0 or (replicable and ranks % count == 0):
            continue
        if ranks != tp:
            out.append(f"{what} ({count}) not divisible by TP x DP = {ranks}")
            continue
        extra = f", and {tp} is not a multiple of {count} (which would replicate them)" if replicable else ""
        out.append(f"{what} ({count}) not divisible by {tp}{extra}")
    rows = pad(g.vocab_size, VLLM_VOCAB_PADDING)
    if rows % tp:
        out.append(f"vocabulary padded to {rows} rows not divisible by {tp}")
    return out


_QKV = frozenset({"attn_q", "attn_k", "attn_v", "attn_qkv"})
_GATE_UP = frozenset({"ffn_gate", "ffn_up", "ffn_gate_up"})
_ROW_PARALLEL = frozenset({"attn_output", "ffn_down"})  # their bias is added after the all-reduce: replicated


@dataclass(frozen=True)
class MoeSplit:
    """How the routed experts are divided (vllm==0.10.1 vllm/model_executor/layers/fused_moe/config.py
    `FusedMoEParallelConfig.make`): without expert parallel every expert is TP-sharded over all TP x DP
    devices ("flatten_tp_across_dp"); with it ("In EP, each device owns a set of experts fully") the MoE
    layer has tp_size 1 and ep_size = TP x DP, and rank r holds `determine_expert_map`'s
    global // ep experts, one more for the first global % ep ranks (fused_moe/layer.py)."""

    ranks: int = 1  # TP x DP
    expert_parallel: bool = False

    def experts_on_rank0(self, experts: int) -> int:
        return experts // self.ranks + (1 if experts % self.ranks else 0)


# vllm/model_executor/layers/quantization/mxfp4.py `Mxfp4MoEMethod.create_weights` (vllm-project/vllm
# 007d50058a06dec0f82472d63c819244d460c40d): the experts' intermediate size per partition and the hidden size
# are rounded up per backend -- Marlin ("n % 256 == 0 and k % 128 == 0": round_up(I, 128), round_up(H, 256)),
# FlashInfer on SM100 (round_up(I, 256), round_up(H, 256)), Triton (round_up(I, 64), H as is) -- and the
# padded w13 / w2 weights, scales and biases are allocated so. (intermediate, hidden) alignments:
MXFP4_PADDING = {"marlin": (128, 256), "flashinfer-sm100": (256, 256), "triton": (64, 1)}


def on_rocm(gpu_name: str | None) -> bool:
    """An AMD card (the catalog's names start "AMD": Instinct, Radeon, Ryzen AI): vLLM runs it on ROCm."""
    name = (gpu_name or "").lower()
    return name.startswith("amd") or "instinct" in name or "radeon" in name


def mxfp4_backend(gpu_name: str | None) -> str:
    """mxfp4.py `get_mxfp4_backend` by the card: SM100 (B200, GB200, B300) with FlashInfer (a vLLM
    dependency) -> its BF16 path; SM90 (H100, H200, H20) -> Triton (triton_kernels on (9, 0) <= capability <
    (11, 0)); everything else -- Ampere, Ada, and SM120 (RTX 50, RTX PRO Blackwell), which Triton does not take --
    -> Marlin. A card given only by its memory counts as Marlin."""
    name = (gpu_name or "").lower()
    if any(k in name for k in ("b200", "b100", "b300", "gb200", "gb300")):
        return "flashinfer-sm100"
    if any(k in name for k in ("h100", "h200", "h800", "h20", "gh200")):
        return "triton"
    return "marlin"


def _mxfp4_padded(t: Tensor, base: str, is_bias: bool, moe: MoeSplit | None, align: tuple[int, int]) -> int:
    """Elements one rank allocates for an MXFP4 expert tensor (or its bias) after the backend's padding.
    Weights are (experts, out, in): gate/up out = intermediate, in = hidden; down the reverse."""
    a_i, a_h = align
    split = moe is not None and moe.ranks > 1
    experts = moe.experts_on_rank0(t.shape[0]) if split and moe is not None and moe.expert_parallel else t.shape[0]
    ranks = moe.ranks if split and moe is not None and not moe.expert_parallel else 1
    down = base == "ffn_down_exps"
    if is_bias:
        width = t.shape[1]
        return experts * (-(-width // a_h) * a_h if down else -(-(width // ranks) // a_i) * a_i)
    inter, hidden = (t.shape[2], t.shape[1]) if down else (t.shape[1], t.shape[2])
    return experts * (-(-(inter // ranks) // a_i) * a_i) * (-(-hidden // a_h) * a_h)


def _rank_share(t: Tensor, tp: int, kv_heads: int, moe: MoeSplit | None = None) -> int:
    """Elements of tensor `t` one TP rank (the first: the fullest under expert parallel) holds."""
    role = t.role
    if role in ("token_embd", "output"):
        return pad(t.shape[0], VLLM_VOCAB_PADDING) // tp * t.numel // t.shape[0]
    is_bias = role == "bias"
    base = t.name.rsplit(".", 2)[-2] if is_bias else role  # "decoder.3.attn_k.bias" -> "attn_k"
    if base in EXPERT_ROLES and moe is not None and moe.ranks > 1:
        if moe.expert_parallel:  # whole experts: dimension 0 of (n_expert, out, in)
            return t.numel // t.shape[0] * moe.experts_on_rank0(t.shape[0])
        if not (is_bias and base == "ffn_down_exps"):
            return t.numel // moe.ranks
        return t.numel
    if base in ("attn_k", "attn_v"):
        return t.numel * kv_heads_per_rank(kv_heads, tp) // kv_heads
    if base in LINEAR_ROLES and base not in _ROW_PARALLEL:
        return t.numel // tp  # column parallel: weight rows and bias split
    if base in _ROW_PARALLEL and not is_bias:
        return t.numel // tp  # row parallel: weight columns split
    return t.numel  # norms, row-parallel biases, position tables: replicated


@dataclass(frozen=True)
class RankWeights:
    """One rank's weights as vLLM allocates them."""

    tensor_bytes: int  # the parameters on this rank
    rope_bytes: int  # the rotary cos/sin cache (first stage with layers: every stage has one)
    allocated_bytes: int  # what vLLM prints: the caching allocator's allocated bytes after loading
    layers: tuple[int, int]  # [first, last) decoder layers on the rank
    embeddings: bool
    lm_head: bool


def _allocations(
    r: Resolved,
    tp: int,
    first: int,
    last: int,
    embed: bool,
    head: bool,
    moe: MoeSplit | None = None,
    mxfp4_align: tuple[int, int] | None = None,
) -> Iterator[tuple[str, int]]:
    """The rank's parameter allocations in vLLM's module order, q/k/v and gate/up fused as vLLM fuses
    them (QKVParallelLinear, MergedColumnParallelLinear). ("rope", n) marks where the first layer
    builds the rotary cache."""
    spec = r.spec
    g = archs.geometry(spec)
    kv_heads = g.tp_kv_heads
    tensors = archs.model_tensors(spec)
    storage = storage_types(spec, r.dtype)
    pending: dict[str, int] = {}
    current = None
    roped = False
    mxfp4 = mxfp4_align is not None and any(
        s.name == "mxfp4" for t, s in zip(tensors, storage, strict=True) if t.role in EXPERT_ROLES
    )
    for t, s in zip(tensors, storage, strict=True):
        nbytes = s.nbytes(_rank_share(t, tp, kv_heads, moe))
        if mxfp4 and mxfp4_align is not None and t.component == "decoder" and t.layer is not None:
            b = t.name.rsplit(".", 2)[-2] if t.role == "bias" else t.role
            if b in EXPERT_ROLES and len(t.shape) == (2 if t.role == "bias" else 3):
                nbytes = s.nbytes(_mxfp4_padded(t, b, t.role == "bias", moe, mxfp4_align))
        if t.component in ("decoder",) and t.layer is not None:
            if not first <= t.layer < last:
                continue
            if current != t.layer:
                yield from pending.items()
                pending, current = {}, t.layer
            role = t.role
            base = t.name.rsplit(".", 2)[-2] if role == "bias" else role
            group = "qkv" if base in _QKV else "gate_up" if base in _GATE_UP else t.name
            key = group + (".bias" if role == "bias" and group in ("qkv", "gate_up") else "")
            pending[key] = pending.get(key, 0) + nbytes
            if base == "attn_output" and not roped and role != "bias":
                yield from pending.items()
                pending = {}
                roped = True
                yield "rope", 0
            continue
        yield from pending.items()
        pending, current = {}, None
        if t.role == "token_embd":
            if embed:
                yield t.name, nbytes
        elif t.role == "output" or (t.component == "decoder" and t.layer is None):
            if head:
                yield t.name, nbytes
        elif embed:  # vision tower, projector ...: on the first stage
            yield t.name, nbytes
    yield from pending.items()
    if not roped and last > first:
        yield "rope", 0


def rope_events(r: Resolved) -> tuple[int, list[tuple[str, str, int]]]:
    """(bytes kept, allocator events) of the rotary cos/sin cache, built once per process (get_rope's
    cache) on the GPU: vllm==0.10.1 vllm/model_executor/layers/rotary_embedding/base.py
    `_compute_cos_sin_cache`: freqs = outer(t, inv_freq) (positions x rotary_dim/2, float32), cos, sin,
    cat (positions x rotary_dim, float32), then `.to(dtype)` (the model's dtype). Positions are the
    config's max_position_embeddings; rotary_dim is head_dim for the families here."""
    g = archs.geometry(r.spec)
    positions = g.context_window or 0
    heads = [k for k in g.self_kv if k is not None]
    if not positions or not heads:
        return 0, []
    rd = heads[0].key_dim
    half = positions * rd // 2 * 4
    act = r.dtype.activation_bytes
    ev = [
        ("alloc", "rope.t", positions * 4),
        ("alloc", "rope.freqs", half),
        ("alloc", "rope.cos", half),
        ("alloc", "rope.sin", half),
        ("alloc", "rope.cat", 2 * half),
        ("free", "rope.t", 0),
        ("free", "rope.freqs", 0),
        ("free", "rope.cos", 0),
        ("free", "rope.sin", 0),
    ]
    kept = positions * rd * act
    if act != 4:
        ev += [("alloc", "rope.cache", kept), ("free", "rope.cat", 0)]
    return kept, ev


def rank_weights(
    r: Resolved,
    tp: int,
    layers: tuple[int, int],
    embeddings: bool,
    lm_head: bool,
    moe: MoeSplit | None = None,
    mxfp4_align: tuple[int, int] | None = None,
) -> RankWeights:
    """One rank's weights: its layers' tensors divided as vLLM divides them, the embedding on the first
    stage, the final norm and LM head on the last, the rotary cache; and the allocator's figure."""

    def compute() -> RankWeights:
        rope_kept, rope_ev = rope_events(r)
        events: list[tuple[str, str, int]] = []
        tensor_bytes = 0
        for name, nbytes in _allocations(r, tp, layers[0], layers[1], embeddings, lm_head, moe, mxfp4_align):
            if name == "rope":
                events += rope_ev
                continue
            tensor_bytes += nbytes
            events.append(("alloc", name, nbytes))
        rope = rope_kept if rope_ev else 0
        return RankWeights(tensor_bytes, rope, torch_allocated(events), layers, embeddings, lm_head)

    split = "" if moe is None or moe.ranks == 1 else f":{moe.ranks}{'ep' if moe.expert_parallel else 'tp'}"
    return archs.cached(
        r.spec, f"vllm-rank:{r.dtype.name}:{tp}:{layers}:{embeddings}:{lm_head}{split}:{mxfp4_align}", compute
    )


# --------------------------------------------------------------------------------------------------
# One rank's budget
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankBudget:
    """What one rank (the first GPU of a pipeline stage; its TP peers hold the same) allocates."""

    stage: int
    layers: tuple[int, int]
    total_memory_bytes: int
    usable_bytes: int
    weights: RankWeights
    non_torch_bytes: int
    layer_peak_bytes: int
    sampler_bytes: int  # 0 except on the last stage
    kv_bytes_per_token: int  # this rank's layers, every attention layer counted in full
    available_bytes: int  # for the KV cache (may be negative)
    kv: KVLayout | None = None  # the rank's KV cache groups (None: not computed)
    mm: MultimodalProfile | None = None  # the multimodal profile (first stage of a multimodal model)
    margin_bytes: int = 0  # what the extensible KV cache's sizing keeps free beyond the budget (0.34 on)
    context_bytes: int = 0  # the worker's CUDA context etc. where the extensible KV cache's cap counts it (0.34 on)
    cudagraph_bytes: int = 0  # the captured graphs, where the version takes them off the KV budget (0.21 on)

    @property
    def activation_bytes(self) -> int:
        return max(self.layer_peak_bytes, self.sampler_bytes)


def indexer_token_bytes(g: Geometry, i: int) -> list[int]:
    """Bytes per token of layer i's DSA indexer-key caches (archs/caches.py IndexerKeys: deepseek_v32,
    glm_moe_dsa), each its own cache layer: vllm/model_executor/models/deepseek_v2.py DeepseekV32IndexerCache
    returns MLAAttentionSpec(num_kv_heads=1, head_size=head_dim + head_dim // quant_block_size * 4,
    dtype=torch.uint8): fp8 keys with a float32 scale per 128 (quant_block_size), whatever the KV dtype, and
    not split by TP (one head)."""
    return [k.head_dim + k.head_dim // 128 * 4 for k in g.caches[i] if isinstance(k, IndexerKeys)]


def _kv_layers(g: Geometry, first: int, last: int) -> list[LayerKV]:
    """The KV-holding attention layers among decoder layers [first, last): vLLM gives every attention
    layer blocks -- mllama's cross-attention layers too."""
    out = []
    for i in range(first, last):
        for kv in (g.self_kv[i], g.cross_kv[i]):
            if kv is not None:
                out.append(kv)
    return out


# --------------------------------------------------------------------------------------------------
# KV cache specs, groups and blocks (V1's KVCacheConfig)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """One layer's KVCacheSpec as V1 builds it (vllm==0.10.1 vllm/v1/worker/gpu_model_runner.py
    `get_kv_cache_spec`): FullAttentionSpec, SlidingWindowSpec (the Attention module has a sliding
    window), or MambaSpec (one state per sequence: block_size = max_model_len, one block)."""

    kind: str  # "full", "sliding" or "mamba"
    window: int  # the sliding window (0 otherwise)
    page_bytes: int  # one block of the layer: block_size tokens x K,V per token; a mamba layer's state
    block_size: int  # tokens per block
    state_blocks: int = 1  # a mamba layer's blocks per request (1; 2 or 3 with prefix caching, 0.33)

    def blocks_per_request(self, max_model_len: int, in_flight: int) -> int:
        """Blocks one request of max_model_len tokens needs (`max_memory_usage_bytes` / page):
        vllm==0.10.1 vllm/v1/kv_cache_interface.py FullAttentionSpec: cdiv(max_model_len, block_size);
        SlidingWindowSpec: cdiv(min(sliding_window - 1 + max_num_batched_tokens, max_model_len),
        block_size) + 1 ("+1 here because the sliding window may not start from the beginning of the
        block"); MambaSpec: "We allocate 1 block for each request"."""
        if self.kind == "mamba":
            return self.state_blocks
        if self.kind == "sliding":
            return -(-min(self.window - 1 + in_flight, max_model_len) // self.block_size) + 1
        return -(-max_model_len // self.block_size)


@dataclass(frozen=True)
class KVGroup:
    """A KV cache group: `layers` layers of one spec sharing a block table (padded to group_size)."""

    spec: LayerSpec
    layers: int
    blocks_per_request: int


@dataclass(frozen=True)
class KVLayout:
    """A rank's KV cache configuration: its groups and what one block id costs over all its pools."""

    groups: tuple[KVGroup, ...]
    group_size: int  # memory pools (KVCacheTensors): one layer of every group shares each
    page_bytes: int  # per pool and block (uniform after page-size unification); 0: no KV at all
    uniform_type: bool  # one type of layer: one group of all layers, each its own tensor
    pool_block_bytes: int  # bytes of one block id over all the pools (num_blocks = available // this)
    needed_bytes: int  # KV one request of max_model_len needs: the start-up check
    block_size: int  # the attention block size (raised for a model with mamba layers)
    notes: tuple[str, ...] = ()

    @property
    def blocks_per_request(self) -> int:
        return sum(gr.blocks_per_request for gr in self.groups)

    def num_blocks(self, available: int) -> int:
        """vllm==0.10.1 kv_cache_utils.py `get_num_blocks`: available // page_size // group_size
        (`_get_kv_cache_config_uniform_type`: the layers' pages summed when they differ in size, as
        0.22.0's UniformTypeKVCacheSpecs)."""
        if not self.pool_block_bytes:
            return 0
        return max(available, 0) // self.pool_block_bytes

    def concurrency(self, num_blocks: int, max_model_len: int, info: VllmVersion) -> float:
        """ "Maximum concurrency for X tokens per request": vllm==0.10.1 kv_cache_utils.py
        `get_max_concurrency_for_kv_cache_config`: num_blocks / the blocks one request needs summed over
        the groups. (0.8.5 printed num_tokens / max_model_len, blind to windows.)"""
        if not info.hybrid_kv and self.groups and self.groups[0].spec.kind != "mamba":
            return num_blocks * self.block_size / max_model_len
        need = self.blocks_per_request
        return num_blocks / need if need else 0.0

    def printed_tokens(self, num_blocks: int, max_model_len: int, info: VllmVersion) -> int:
        """ "GPU KV cache size: N tokens": num_blocks x block_size for one group (vllm==0.10.1
        `_get_kv_cache_config_uniform_type`), num_blocks // groups x the smallest block size for several
        (`_get_kv_cache_config_uniform_page_size`); from 0.22 int(max_concurrency x max_model_len)
        (vllm==0.22.0 `_report_kv_cache_config`: "a naive `num_blocks // num_groups * block_size` formula
        underestimates capacity for these models")."""
        if not self.groups:
            return 0
        if info.tokens_from_concurrency:
            return int(self.concurrency(num_blocks, max_model_len, info) * max_model_len)
        if self.uniform_type:
            return num_blocks * self.block_size
        return num_blocks // len(self.groups) * min(gr.spec.block_size for gr in self.groups)


# The cache kinds kv_layout sizes (archs/caches.py), as vLLM V1's specs: FullAttentionSpec, SlidingWindowSpec,
# ChunkedLocalAttentionSpec, CrossAttentionSpec, MLAAttentionSpec, the DSA indexer's cache (indexer_token_bytes) and MambaSpec (Mamba / Mamba-2, the Gated DeltaNet's
# conv + temporal state: vllm/model_executor/layers/mamba/mamba_utils.py gated_delta_net_state_shape, and the short
# convolution's). A model keeping any other kind is refused by kind, never by family name.
VLLM_CACHE_KINDS = frozenset(
    {
        caches.FullAttention,
        caches.SlidingWindow,
        caches.ChunkedAttention,
        caches.CrossAttention,
        caches.MLALatent,
        caches.IndexerKeys,
        caches.MambaState,
        caches.LinearAttentionState,
        caches.ShortConvState,
    }
)


def _state_bytes(r: Resolved, g: Geometry, i: int, tp: int) -> int:
    """Layer i's recurrent state per sequence on one TP rank, as vLLM keeps it: the conv state holds
    conv_kernel - 1 columns (vllm==0.10.1 vllm/model_executor/layers/mamba/mamba_utils.py
    `mamba1_state_shape` / `mamba2_state_shape`: `conv_kernel - 1`; the Geometry counts conv_kernel
    columns as transformers does), both states split over TP (`divide(intermediate_size, tp)`,
    `divide(num_heads, tp)`), in the model's dtype (`mamba2_state_dtype`: "auto" -> model dtype for the
    conv and the SSM state)."""
    conv, ssm = g.ssm_state[i]
    k = g.ssm_conv_kernel
    if k:
        conv = conv // k * (k - 1)
    return (conv // tp + ssm // tp) * r.dtype.activation_bytes


def _unify_pages(
    by_spec: dict[LayerSpec, int], specs: list[LayerSpec], info: VllmVersion, mla: bool, notes: list[str]
) -> tuple[dict[LayerSpec, int], list[LayerSpec]]:
    """The layers' specs with one page size, as vLLM's `unify_kv_cache_spec_page_size` makes them (see
    VllmVersion.page_unify): a smaller page that divides the largest one -> block_size x the ratio; one that does not
    -> padded to the largest (0.33 on, not MLA) or refused. Before the function: refused."""
    pages = sorted({sp.page_bytes for sp in by_spec})
    largest = pages[-1]
    if info.page_unify == "none":
        raise UsageError(
            "vLLM cannot group this model's KV caches: its layers' pages differ in size "
            f"({pages} B; vLLM {info.since} has no page-size unification: vllm==0.10.1 "
            "vllm/v1/core/kv_cache_utils.py `get_kv_cache_config` raises NotImplementedError)"
        )
    new: dict[LayerSpec, LayerSpec] = {}
    for sp in by_spec:
        if sp.page_bytes == largest:
            new[sp] = sp
        elif sp.kind != "mamba" and largest % sp.page_bytes == 0:
            ratio = largest // sp.page_bytes
            new[sp] = replace(sp, page_bytes=largest, block_size=sp.block_size * ratio)
            notes.append(
                f"{sp.kind} layers' block size raised to {sp.block_size * ratio} tokens so that their page equals "
                f"the largest ({largest} B): vLLM `unify_kv_cache_spec_page_size`"
            )
        elif (info.page_unify == "pad" and (sp.kind == "mamba" or not mla)) or (
            info.page_unify == "pad-attn" and sp.kind != "mamba" and not mla
        ):
            new[sp] = replace(sp, page_bytes=largest)
            notes.append(
                f"{sp.kind} layers' page ({sp.page_bytes} B) padded to the largest ({largest} B): vLLM "
                "`unify_kv_cache_spec_page_size` page_size_padded"
            )
        else:
            raise UsageError(
                "vLLM cannot unify this model's KV page sizes: "
                + (
                    f"a Mamba state page ({sp.page_bytes} B) does not grow with the block size (padded from 0.33)"
                    if sp.kind == "mamba"
                    else f"{sp.page_bytes} B does not divide {largest} B"
                    + (" and an MLA cache cannot be padded" if info.page_unify == "pad" else "")
                )
                + f" (vLLM {info.since} vllm/v1/core/kv_cache_utils.py `unify_kv_cache_spec_page_size` raises "
                "NotImplementedError)"
            )
    unified: dict[LayerSpec, int] = {}
    for sp, n in by_spec.items():
        unified[new[sp]] = unified.get(new[sp], 0) + n
    return unified, [new[sp] for sp in specs]


def kv_layout(r: Resolved, opt: VllmOptions, layers: tuple[int, int], max_model_len: int, batched: int) -> KVLayout:
    """The KV cache groups of the ranks holding decoder `layers`, as vLLM V1 forms them.

    vllm==0.10.1 vllm/v1/core/kv_cache_utils.py `get_kv_cache_config`: one type of layer -> one group
    (`_get_kv_cache_config_uniform_type`); several types with one page size ->
    `_get_kv_cache_config_uniform_page_size`: layers grouped by spec, group_size = the smallest count
    (Gemma 3 27B: 52 sliding + 10 full -> 6 sliding groups, the last padded, + 1 full group), group_size
    pools each shared by one layer of every group, num_blocks = available // page // group_size.
    With the hybrid manager off (`--disable-hybrid-kv-cache-manager`, before 0.9.1, or chunked local
    attention: `unify_hybrid_kv_cache_specs`) sliding layers become full-attention specs."""
    g = archs.geometry(r.spec)
    info, tp = opt.info, opt.tensor_parallel
    notes: list[str] = []
    in_flight = batched
    if info.in_flight_batches:
        in_flight = batched * (2 if opt.pipeline_parallel == 1 else opt.pipeline_parallel)
    attn: list[tuple[str, int, int]] = []  # (kind, window, bytes per token)
    states: list[int] = []
    chunked = False
    for i in range(*layers):
        for kv in (g.self_kv[i], g.cross_kv[i]):
            if kv is None:
                continue
            per_token = r.kv.nbytes((kv.key_dim + kv.value_dim) * kv_heads_per_rank(kv.kv_heads, tp))
            kind, window = ("sliding", kv.window or 0) if kv.kind == "sliding" else ("full", 0)
            chunked = chunked or kv.kind == "chunked"
            attn.append((kind, window, per_token))
        attn.extend(("full", 0, b) for b in indexer_token_bytes(g, i))
        if i < len(g.ssm_state) and any(g.ssm_state[i]):
            states.append(_state_bytes(r, g, i, tp))
    kinds = {k for k, _, _ in attn}
    hybrid = info.v1 and info.hybrid_kv and not opt.disable_hybrid_kv_cache_manager and not chunked
    if "sliding" in kinds and ("full" in kinds or states) and not hybrid:
        attn = [("full", 0, b) for _, _, b in attn]
        if info.v1:
            notes.append(
                "sliding-window layers get a full cache: "
                + (
                    "the hybrid KV cache manager is off for chunked local attention by default (vllm==0.10.1 "
                    "vllm/config/__init__.py: VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE)"
                    if chunked
                    else "--disable-hybrid-kv-cache-manager"
                    if opt.disable_hybrid_kv_cache_manager
                    else f"vLLM {info.since} has no hybrid KV cache manager (0.9.1 on)"
                )
            )
    elif not info.v1 and "sliding" in kinds:
        attn = [("full", 0, b) for _, _, b in attn]
    if chunked:
        notes.append(
            "chunked local attention layers are cached in full: vLLM 0.9 had no ChunkedLocalAttentionSpec and "
            "0.10 on turns the hybrid manager off for them by default (VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_"
            "HYBRID_KV_CACHE=1 turns it on)"
        )
    if not attn and not states:
        return KVLayout((), 0, 0, True, 0, 0, opt.kv_block_size, tuple(notes))
    block_size = opt.kv_block_size
    mamba_page = max(states) if states else 0
    if states and attn:
        # vllm==0.10.1 vllm/model_executor/models/config.py HybridAttentionMambaModelConfig: the attention
        # block size is raised to 16 x cdiv(mamba_page, 16 x attention bytes per token) when smaller, and
        # the mamba page padded up to the attention page ("Padding mamba page size by ..."). 0.22.0 and
        # 0.33.0 do the same in vllm/platforms/interface.py `_align_hybrid_block_size` with the attention
        # backend's smallest kernel block size (16 for FlashAttention's MultipleOf(16)) in place of 16.
        per_token = attn[0][2]
        needed_bs = 16 * -(-mamba_page // (16 * per_token))
        if block_size < needed_bs:
            notes.append(
                f"attention block size raised to {needed_bs} tokens so that its page ({needed_bs} x "
                f"{per_token} B) holds a mamba state ({mamba_page} B): vllm==0.10.1 models/config.py "
                "HybridAttentionMambaModelConfig"
            )
            block_size = needed_bs
        mamba_page = block_size * per_token
    specs = [LayerSpec(k, w, b * block_size, block_size) for k, w, b in attn]
    if states and attn and info.hybrid_prefix_caching:
        # vllm/model_executor/models/mamba.py, jamba.py run MambaMixer (Mamba-1: 2 states); falcon_h1,
        # mamba2, bamba, granitemoehybrid run MambaMixer2 (+ its prefill checkpoint): the family says which
        state_blocks = 2 if g.ssm_mixer == "mamba" else 3
        notes.append(
            f"prefix caching is on for hybrid models from 0.33: each Mamba layer keeps {state_blocks} states "
            "per request (mamba_cache_mode 'align': 2"
            + ("" if state_blocks == 2 else " + the Mamba2 mixer's prefill checkpoint")
            + ")"
        )
        specs += [LayerSpec("mamba", 0, mamba_page, block_size, state_blocks) for _ in states]
    else:
        specs += [LayerSpec("mamba", 0, mamba_page if attn else s, max_model_len) for s in states]
    by_spec: dict[LayerSpec, int] = {}
    for sp in specs:
        by_spec[sp] = by_spec.get(sp, 0) + 1
    kinds_left = {(sp.kind, sp.window) for sp in by_spec}
    if len(kinds_left) == 1:
        # One type: one group of every layer; pages may differ in size (UniformTypeKVCacheSpecs in 0.22):
        # a block id costs the sum of the layers' pages.
        sp = specs[0]
        per_req = sp.blocks_per_request(max_model_len, in_flight)
        total_page = sum(x.page_bytes for x in specs)
        group = KVGroup(sp, len(specs), per_req)
        return KVLayout(
            (group,), len(specs), sp.page_bytes, True, total_page, per_req * total_page, block_size, tuple(notes)
        )
    pages = {sp.page_bytes for sp in by_spec}
    if len(pages) > 1:
        by_spec, specs = _unify_pages(by_spec, specs, info, bool(g.mla), notes)
        pages = {sp.page_bytes for sp in by_spec}
    page = pages.pop()
    counts = list(by_spec.values())
    group_size = min(counts)
    if info.padded_groups and max(counts) < group_size * 1.5:
        group_size = max(counts)
    groups: list[KVGroup] = []
    for sp, n in by_spec.items():
        per_req = sp.blocks_per_request(max_model_len, in_flight)
        count = -(-n // group_size)
        if info.padded_groups:
            # vllm==0.22.0 `_get_kv_cache_groups_uniform_page_size`: layers[i::num_groups] to group i, so the
            # groups of a type differ by at most one layer (52 sliding in 6 groups: 9, 9, 9, 9, 8, 8)
            groups += [KVGroup(sp, n // count + (1 if i < n % count else 0), per_req) for i in range(count)]
        else:
            # vllm==0.10.1: layers[i * group_size:(i + 1) * group_size], the last group padded
            groups += [KVGroup(sp, min(group_size, n - i * group_size), per_req) for i in range(count)]
    if info.padded_groups:
        # vllm==0.22.0 `_max_memory_usage_bytes_from_groups`: group_size x page x the blocks of every group
        needed = group_size * page * sum(gr.blocks_per_request for gr in groups)
    else:
        # vllm==0.10.1 `check_enough_kv_cache_memory`: each layer's max_memory_usage_bytes, no padding
        needed = sum(sp.blocks_per_request(max_model_len, in_flight) * sp.page_bytes for sp in specs)
    padding = len(groups) * group_size - len(specs)
    if padding:
        notes.append(
            f"{padding} padding layer(s) in the KV groups (vLLM: 'Add {padding} padding layers, may waste ...')"
        )
    return KVLayout(tuple(groups), group_size, page, False, page * group_size, needed, block_size, tuple(notes))


def cudagraph_sizes(opt: VllmOptions, batched: int, seqs: int) -> tuple[list[int], list[int]]:
    """(PIECEWISE, FULL) CUDA graph batch sizes vLLM captures by default (FULL_AND_PIECEWISE, no speculative
    decoding, not the "interactivity" performance mode): vllm==0.22.0 vllm/config/vllm.py `_set_cudagraph_sizes`:
    max = min(max_num_batched_tokens, min(2 x max_num_seqs, 512)); 1, 2, 4, multiples of 8 below 256, multiples of
    16 from 256, and max_num_batched_tokens when it is within the max; vllm==0.33.0 also adds max_num_seqs when it
    is within the max and raises 512 to 1024 on SM100 (B200/GB200/B300). FULL graphs are the decode sizes up to
    max_num_seqs (vllm/v1/cudagraph_dispatcher.py `initialize_cudagraph_keys`, separate_routine)."""
    top = 1024 if opt.info.b200_tier and mxfp4_backend(opt.gpu_name) == "flashinfer-sm100" else 512
    cap = min(batched, min(2 * seqs, top))
    sizes = [i for i in (1, 2, 4) if i <= cap]
    if cap >= 8:
        sizes += list(range(8, min(cap + 1, 256), 8))
    if cap >= 256:
        sizes += list(range(256, cap + 1, 16))
    if batched <= cap:
        sizes.append(batched)
    if opt.info.b200_tier and seqs <= min(2 * seqs, top) and seqs <= batched:
        sizes.append(seqs)
    piecewise = sorted(set(sizes))
    return piecewise, [x for x in piecewise if x <= seqs]


def v1_sampler_bytes_per_logit(info: VllmVersion, rows: int, flashinfer: bool = False) -> int:
    """Bytes per logit at the V1 profile sampler's peak, besides the model-dtype logits (see
    VLLM_V1_SORT_BYTES_PER_LOGIT): FlashInfer's top-k/top-p when on, else the Triton kernel from 0.17 on 8 rows
    or more, torch.sort otherwise."""
    if flashinfer:
        return VLLM_V1_FLASHINFER_BYTES_PER_LOGIT
    if info.triton_sampler and rows >= VLLM_TRITON_SAMPLER_MIN_ROWS:
        return VLLM_V1_TRITON_BYTES_PER_LOGIT
    if 1 < rows < VLLM_SORT_SEGMENTED_ROWS:
        return VLLM_V1_FULL_SORT_BYTES_PER_LOGIT
    return VLLM_V1_SORT_BYTES_PER_LOGIT


def sampler_kind(opt: VllmOptions, rows: int) -> str:
    """Which top-k/top-p the V1 profile sampler runs."""
    if opt.uses_flashinfer_sampler:
        return "FlashInfer"
    return "Triton" if opt.info.triton_sampler and rows >= VLLM_TRITON_SAMPLER_MIN_ROWS else "torch.sort"


def v1_sampler_bytes(
    info: VllmVersion, rows: int, batched: int, vocab: int, hidden: int, act: int, flashinfer: bool = False
) -> int:
    """V1's `_dummy_sampler_run` peak on the last stage: `rows` x `vocab` logits (model dtype plus the
    sampler's temporaries per logit) while profile_run still holds the dummy run's hidden states (`batched`
    tokens), their `hidden_states[logit_indices]` rows and `_dummy_sampler_run`'s `torch.rand_like` copy of them
    (vllm==0.10.1 / 0.11.0 gpu_model_runner.py `_dummy_run`, `profile_run`, `_dummy_sampler_run`; 0.8.5 has no
    rand_like copy, rows x hidden x act bytes less, not told apart). 0.8.5's topk_topp_sampler.py sorts as 0.10.1 does."""
    logits = rows * vocab * (act + v1_sampler_bytes_per_logit(info, rows, flashinfer))
    return logits + (batched + 2 * rows) * hidden * act


# --------------------------------------------------------------------------------------------------
# The multimodal profile run
# --------------------------------------------------------------------------------------------------
# V1 (0.8 on): items allowed per prompt when --limit-mm-per-prompt is not given: vllm==0.8.5 and 0.9.x
# vllm/config.py MultiModalConfig.get_limit_per_prompt `999 if envs.VLLM_USE_V1 else 1` (V0: 1).
VLLM_V1_MM_LIMIT_PER_PROMPT = 999
# Llama 3.2 Vision's vision encoder pads each tile's 1601 positions to a multiple of 8 (vLLM
# vllm/model_executor/models/mllama.py MllamaVisionModel.forward `num_padding_patches = (8 - (n % 8)) % 8`).
VLLM_MLLAMA_PATCH_PAD = 8


@dataclass(frozen=True)
class MultimodalProfile:
    """What the profile run feeds the vision encoder, and what it holds while the decoder runs.

    V1 (vllm/v1/worker/gpu_model_runner.py `profile_run`; the budget in vllm==0.11.0 and 0.12.0
    vllm/v1/worker/utils.py MultiModalBudget.get_max_items, vllm==0.17.0, 0.22.0 and 0.33.0
    vllm/multimodal/encoder_budget.py): the encoder cache budget is max(max_num_batched_tokens, the largest item's
    tokens) (vllm/v1/core/encoder_cache_manager.py `compute_mm_encoder_budget`: SchedulerConfig sets
    max_num_encoder_input_tokens and encoder_cache_size to max_num_batched_tokens); the encoder runs on
    max(1, min(budget // item tokens, max_num_seqs x items per prompt)) dummy items of the maximum feature size
    (`_get_mm_dummy_batch`; 0.8.x and 0.9.x gpu_model_runner.py `cdiv` the budget instead), items per prompt =
    max(1, min(999, max_model_len // item tokens)), and the outputs stay in `encoder_cache["tmp"]` through the
    decoder's dummy run and the sampler. The modality profiled is the one with the most tokens per item; only
    images are modelled (a video item can decide for Qwen-VL models).
    V0 (vllm/worker/model_runner.py `profile_run`): max_num_seqs = min(max_num_seqs, max_num_batched_tokens //
    max multimodal tokens), each sequence with one item (V0's limit per prompt), the vision pass inside the
    model's forward; the sampler runs on those sequences. V0 encoder-decoder (mllama,
    vllm/worker/enc_dec_model_runner.py `profile_run`): one image per each of max_num_seqs sequences, not
    reduced ('pixel_values is torch.Size([256, 1, 1, 4, 3, 560, 560])' at the default 256, vLLM issue #10569)."""

    tokens_per_item: int  # the largest item's embeddings in the sequence
    items: int  # dummy items the vision encoder runs on at once
    encoder_budget: int  # V1's encoder cache budget in tokens (0 on V0)
    encoder_peak_bytes: int  # the vision pass over `items` (per TP rank)
    outputs_bytes: int  # embeddings (or mllama's cross-attention states) held through the decoder run
    sampler_rows: int  # the profile sampler's rows (V0 multimodal: the reduced sequence count)
    detail: str


def _mllama_encoder_extra(spec: MllamaSpec, items: int, act: int) -> tuple[int, int, str]:
    """(vision tokens, bytes besides the layer's temporaries, detail) of vLLM's MllamaVisionModel over `items`
    images (vllm/model_executor/models/mllama.py, read at the version stored in the index): the tiles' positions
    padded to a multiple of 8; `_prepare_aspect_ratio_attention_mask` builds one (tiles x padded)^2 mask per
    image in the model dtype, alive through both encoders; MllamaVisionEncoder keeps the hidden states of
    `intermediate_layers_indices` (5 for Llama 3.2 Vision) until `torch.stack` after the local encoder."""
    v = spec.config.vision_config
    per_tile = -(-v.positions_per_tile // VLLM_MLLAMA_PATCH_PAD) * VLLM_MLLAMA_PATCH_PAD
    length = v.max_num_tiles * per_tile
    tokens = items * length
    mask = items * length * length * act
    kept = len(v.intermediate_layers_indices) * tokens * v.hidden_size * act
    detail = (
        f"aspect-ratio mask {items} x {length}^2 x {act} B ({mask / GIB:.2f} GiB) + "
        f"{len(v.intermediate_layers_indices)} intermediate hidden states ({kept / GIB:.2f} GiB)"
    )
    return tokens, mask + kept, detail


def mm_profile(r: Resolved, opt: VllmOptions, max_model_len: int, batched: int, seqs: int) -> MultimodalProfile | None:
    """The multimodal part of the profile run (None for a text-only model)."""
    spec = r.spec
    g = archs.geometry(spec)
    info = opt.info
    act = r.dtype.activation_bytes
    tp = opt.tensor_parallel
    if g.vision_cross_attention and isinstance(spec, MllamaSpec):
        items = seqs
        tokens, extra, extra_detail = _mllama_encoder_extra(spec, items, act)
        vision = [st for st in stages(spec, batched, r.source, items) if st.per_input]
        layer = max((stage_peak(replace(st, tokens=tokens, eager_scores=False), 1, act) for st in vision), default=0)
        per_image = spec.config.vision_config.max_num_tiles * spec.config.vision_config.positions_per_tile
        outputs = items * per_image * g.hidden_size * act  # the projected cross-attention states
        return MultimodalProfile(
            per_image,
            items,
            0,
            layer // tp + extra,
            outputs,
            seqs,
            f"V0 encoder-decoder profile: {items} images (one per sequence) of {tokens // items} vision positions; "
            f"layer temporaries {layer / tp / GIB:.2f} GiB + {extra_detail}",
        )
    if not g.takes_images:
        return None
    per_item = archs.image_tokens(spec, None)
    if per_item <= 0:
        return None
    if info.v1:
        budget = max(batched, per_item)
        per_prompt = max(1, min(VLLM_V1_MM_LIMIT_PER_PROMPT, max_model_len // per_item))
        by_budget = -(-budget // per_item) if opt.version in ("0.8", "0.9") else budget // per_item
        items = max(1, min(by_budget, seqs * per_prompt))
        rows = min(seqs, batched)
    else:
        budget = 0
        items = max(1, min(seqs, batched // per_item))
        rows = items
    vision = [st for st in stages(spec, batched, r.source, items) if st.per_input]
    # vLLM's vision towers run fused attention (vllm/attention/layer.py MultiHeadAttention: xformers / SDPA /
    # flash): no score matrix, whatever transformers does
    encoder = max((stage_peak(replace(st, eager_scores=False), 1, act) for st in vision), default=0) // tp
    outputs = items * per_item * g.hidden_size * act
    where = (
        f"encoder cache budget {budget} tokens (max(max_num_batched_tokens, one item)): "
        if info.v1
        else "V0: min(max_num_seqs, max_num_batched_tokens // item tokens) sequences with one image each: "
    )
    return MultimodalProfile(
        per_item,
        items,
        budget,
        encoder,
        outputs,
        rows,
        f"{where}{items} image(s) of {per_item} tokens through the vision tower ({encoder / GIB:.2f} GiB), "
        f"their embeddings ({outputs / GIB:.2f} GiB) held through the decoder run",
    )


def rank_budget(
    r: Resolved,
    opt: VllmOptions,
    stage: int,
    layers: tuple[int, int],
    batched: int,
    seqs: int,
    total_memory_bytes: int,
    max_model_len: int | None = None,
) -> RankBudget:
    """The start-up budget of the ranks of pipeline stage `stage` holding decoder `layers` on a card of
    `total_memory_bytes`."""
    spec, tp, pp = r.spec, opt.tensor_parallel, opt.pipeline_parallel
    g = archs.geometry(spec)
    last_stage = stage == pp - 1
    info = opt.info
    align = MXFP4_PADDING[mxfp4_backend(opt.gpu_name)] if info.mxfp4_padding else None
    weights = rank_weights(r, tp, layers, stage == 0, last_stage, opt.moe_split, align)
    if opt.non_torch_bytes is not None:
        non_torch = opt.non_torch_bytes
    elif info.context_in_non_torch:
        non_torch = VLLM_V0_NON_TORCH_TP_BYTES if tp * pp > 1 else VLLM_V0_NON_TORCH_BYTES
    else:
        non_torch = VLLM_NON_TORCH_TP_BYTES if tp * pp > 1 else VLLM_NON_TORCH_BYTES
    # The layers' temporaries for the profile batch (memory.stage_peak: one stream of `batched` tokens;
    # flash attention: no score matrix), each rank holding 1/tp of the heads and MLP width.
    layer_peak = 0
    mm = mm_profile(r, opt, max_model_len or batched, batched, seqs) if stage == 0 else None
    if layers[1] > layers[0]:
        lm = [st for st in stages(spec, batched, r.source, r.images) if mm is None or not st.per_input]
        layer_peak = max(stage_peak(st, 1, r.dtype.activation_bytes) for st in lm) // tp
        if not info.v1:
            # V0 runs the layers eagerly: LlamaModel's loop (`hidden_states, residual = layer(..., hidden_states,
            # ..., residual)`, vllm/model_executor/models/llama.py) still holds the layer's input, which
            # RMSNorm's fused_add_rms_norm normalised in place, while the layer's attention output, the residual
            # and the MLP's gate_up / SiluAndMul outputs are alive: one hidden state per token above
            # memory.stage_peak (vLLM issue #10517's Llama 3.1 8B runs at 20,000 and 29,000 tokens print 8 % above
            # it, (3 x 4096 + 3 x 14336) / (2 x 4096 + 3 x 14336) = 1.08). V1 runs the torch.compile'd graph,
            # whose buffers Inductor frees at their last use: not added there.
            layer_peak += batched * g.hidden_size * r.dtype.activation_bytes
    held = 0
    rows = min(seqs, batched)
    if mm is not None:
        # the vision pass first, then the decoder's dummy run and the sampler with its outputs still held
        held = mm.outputs_bytes
        layer_peak = max(mm.encoder_peak_bytes, held + layer_peak)
        rows = mm.sampler_rows
    # V1: only the last stage samples (`if get_pp_group().is_last_rank`); the logits are gathered whole
    # on every TP rank of it. V0 (PP 1 in its calibration) the same.
    if not last_stage:
        sampler = 0
    elif info.v1:
        sampler = v1_sampler_bytes(
            info, rows, batched, vocab_size(spec), g.hidden_size, r.dtype.activation_bytes, opt.uses_flashinfer_sampler
        )
    else:
        sampler = int(VLLM_SAMPLER_LOGITS_COPIES * rows * vocab_size(spec) * 4)
    if sampler:
        sampler += held
    per_token = 0
    for kv in _kv_layers(g, *layers):
        share = kv_heads_per_rank(kv.kv_heads, tp)
        per_token += (kv.key_dim + kv.value_dim) * share
    per_token = r.kv.nbytes(per_token) if per_token else 0
    per_token += sum(b for i in range(*layers) for b in indexer_token_bytes(g, i))
    usable = int(total_memory_bytes * opt.utilization)
    peak = max(layer_peak, sampler)
    margin = context = 0
    if info.extensible_kv:
        # vllm==0.34.0 extensible_kv_cache.py `measure_kv_cache_bytes`: min(requested - non_kv_used, headroom -
        # margin) - transient_peak, headroom being what is free after warmup plus the committed KV: the card less what
        # the worker held at its init snapshot (the CUDA context, NCCL, cuBLAS handles: VLLM_CUDA_CONTEXT_BYTES) and
        # non_kv_used. The cap binds unless gpu_memory_utilization leaves the context and the margin free already;
        # what it takes is shown as the context first, then the margin.
        floor = max(
            VLLM_KV_MARGIN_FLOOR_ROCM_BYTES if on_rocm(opt.gpu_name) else VLLM_KV_MARGIN_FLOOR_BYTES,
            int(peak * VLLM_KV_MARGIN_FRACTION),
        )
        held = VLLM_CUDA_CONTEXT_BYTES if opt.cuda_context_bytes is None else opt.cuda_context_bytes
        taken = max(0, usable - (total_memory_bytes - held - floor))  # what the cap takes off the budget
        context = min(held, taken)
        margin = taken - context
    # the captured graphs' pool, where the version counts it against the KV budget (VllmOptions.cudagraph_bytes)
    graphs = (opt.cudagraph_bytes or 0) if info.cudagraphs_profiled else 0
    available = usable - context - margin - weights.allocated_bytes - non_torch - peak - graphs
    layout = kv_layout(r, opt, layers, max_model_len, batched) if max_model_len else None
    return RankBudget(
        stage,
        layers,
        total_memory_bytes,
        usable,
        weights,
        non_torch,
        layer_peak,
        sampler,
        per_token,
        available,
        layout,
        mm,
        margin,
        context,
        graphs,
    )


def stage_layers(spec: AnySpec, pp: int) -> list[tuple[int, int]]:
    """[first, last) decoder layers of each pipeline stage."""
    n = archs.geometry(spec).decoder_layers
    out, start = [], 0
    for k in pp_partition(n, pp):
        out.append((start, start + k))
        start += k
    return out


def budgets(
    spec: AnySpec, request: Request, opt: VllmOptions, memory_by_stage: list[int] | None = None
) -> tuple[Resolved, int, int, int, list[RankBudget]]:
    """(resolved, max_model_len, max_num_batched_tokens, max_num_seqs, one budget per stage)."""
    g = archs.geometry(spec)
    refusal = g.refusals.get("vllm")
    # The architectures refuse vLLM for their recurrent state (archs/mamba.py VLLM_STATE_REFUSAL); from the
    # version with MambaSpec for every family (vllm==0.10.1) the state pools are modelled here.
    if refusal and not (refusal == VLLM_STATE_REFUSAL and g.ssm_state and opt.info.state_pools):
        raise UsageError(
            refusal
            if refusal != VLLM_STATE_REFUSAL
            else f"vLLM {opt.info.since} runs recurrent-state models on V0, which the profile does not model "
            "(mamba and jamba are `SupportsV0Only` in vllm==0.9.2): --vllm-version 0.10 or later sizes "
            "their Mamba state pools"
        )
    missing = caches.unmodelled(g.caches, VLLM_CACHE_KINDS)
    if missing:  # after the model's own refusal, which says more (RWKV: "vLLM has no RWKV model")
        raise UsageError(f"vllm: the profile does not size {' or '.join(missing)} caches yet, which this model keeps")
    if g.ssm_state and any(g.ssm_state) and not refusal and not opt.info.state_pools:
        raise UsageError(
            f"vLLM {opt.info.since} runs recurrent-state models on V0, which the profile does not model: "
            "--vllm-version 0.10 or later sizes their Mamba state pools"
        )
    r0 = resolve(spec, request)
    why = accepts(opt.info, r0.dtype.name, r0.dtype.family, r0.kv.name)
    if why:
        raise UsageError(why)
    if g.vision_cross_attention and opt.info.v1:
        # vLLM-ascend issue #1963 (v0.9.2): "['MllamaForConditionalGeneration'] is not supported by the V1 Engine.
        # Falling back to V0."; vllm/model_executor/models/registry.py `_PREVIOUSLY_SUPPORTED_MODELS`:
        # "MllamaForConditionalGeneration": "0.10.2" (PR #24907 removed V0's encoder-decoder runner).
        raise UsageError(
            f"vLLM {opt.info.since} runs Llama 3.2 Vision (mllama) only on its V0 engine: 0.8 to 0.10.1 fall back "
            "to V0 and 0.10.2 removed the model (vLLM PR #24907); --vllm-version 0.9-v0 (or 0.7) sizes that run"
        )
    if opt.total_memory_bytes is None and memory_by_stage is None:
        raise UsageError("the vLLM profile needs the GPU's memory (--gpu or --vram)")
    problems = tp_problems(spec, opt.tensor_parallel, opt.moe_split)
    if (opt.tensor_parallel > 1 or opt.moe_split.ranks > 1) and problems:
        raise UsageError(f"tensor_parallel {opt.tensor_parallel}: " + "; ".join(problems))
    r = r0
    window = r.att.context_window or 4096
    max_model_len = opt.max_model_len or request.context or window
    batched, seqs = batch_defaults(
        opt, max_model_len, g.takes_images or g.vision_cross_attention, g.sliding_window is not None
    )
    mems = memory_by_stage or [opt.total_memory_bytes or 0] * opt.pipeline_parallel
    need = max_model_len + (r.source if g.vision_cross_attention else 0)
    out = [
        rank_budget(r, opt, s, layers, batched, seqs, mems[s], need)
        for s, layers in enumerate(stage_layers(spec, opt.pipeline_parallel))
    ]
    return r, max_model_len, batched, seqs, out


def unified_blocks(ranks: list[RankBudget], block_size: int) -> int:
    """Full-attention blocks every rank allocates: each rank's own count, then the smallest over the ranks
    (`unify_kv_cache_configs`), every attention layer counted in full (one KV group; what vLLM does
    without the hybrid KV cache manager). `unified_kv_blocks` counts the KV groups."""
    counts = [max(b.available_bytes, 0) // (b.kv_bytes_per_token * block_size) for b in ranks if b.kv_bytes_per_token]
    return min(counts) if counts else 0


def estimate_max_model_len(r: Resolved, opt: VllmOptions, ranks: list[RankBudget], batched: int, upper: int) -> int:
    """vLLM's "Based on the available memory, the estimated maximum model length is N": the largest
    max_model_len in [1, upper] whose one-request KV fits every rank's available memory, by binary search
    (vllm==0.10.1 kv_cache_utils.py `estimate_max_model_len`; 0.22.0 `_estimate_max_model_len_from_groups`);
    0 when one token does not fit. The groups are rebuilt for each length, as vLLM re-evaluates
    max_memory_usage_bytes."""

    def fits(length: int) -> bool:
        return all(kv_layout(r, opt, b.layers, length, batched).needed_bytes <= b.available_bytes for b in ranks)

    if upper < 1 or not fits(1):
        return 0
    lo, hi = 1, upper
    while lo < hi:  # bounded: log2(upper) steps
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def unified_kv_blocks(ranks: list[RankBudget]) -> int:
    """Blocks every rank allocates with its KV groups (`KVLayout.num_blocks`), the smallest over the ranks
    (`unify_kv_cache_configs`: "changes the num_blocks of each rank to the smallest among all ranks")."""
    counts = [b.kv.num_blocks(b.available_bytes) for b in ranks if b.kv is not None and b.kv.pool_block_bytes]
    return min(counts) if counts else 0


def vllm_estimate(spec: AnySpec, request: Request, options: VllmOptions | None = None) -> EngineEstimate:
    """vLLM's start-up budget for `spec`: per GPU of `options.total_memory_bytes`, one set of buffers
    per pipeline stage (device = the stage's first global rank; its TP peers hold the same)."""
    opt = options or VllmOptions()
    r, max_model_len, batched, seqs, ranks = budgets(spec, request, opt)
    g = archs.geometry(spec)
    tp, pp = opt.tensor_parallel, opt.pipeline_parallel
    blocks = unified_kv_blocks(ranks)
    need = max_model_len + (r.source if g.vision_cross_attention else 0)
    info = opt.info
    layout = ranks[0].kv
    assert layout is not None  # budgets() gives every rank its layout
    kv_tokens = layout.printed_tokens(blocks, need, info)
    concurrency = layout.concurrency(blocks, need, info)
    # vllm==0.10.1 kv_cache_utils.py `check_enough_kv_cache_memory`, on every rank: "To serve at least one
    # request with the models's max seq len ... KV cache is needed, which is larger than the available KV
    # cache memory"
    fits = all(b.available_bytes > 0 and (b.kv is None or b.kv.needed_bytes <= b.available_bytes) for b in ranks)
    warnings = []
    if any(b.available_bytes <= 0 for b in ranks):
        warnings.append("no memory left for the KV cache: vLLM stops with 'No available memory for the cache blocks'")
    # the longest request the pool takes (up to max_model_len): vLLM's own estimate when it refuses; with
    # KV groups it is not the printed "GPU KV cache size" (a sliding or Mamba group needs a fixed count)
    longest = need if fits else estimate_max_model_len(r, opt, ranks, batched, need)
    if not fits and not any(b.available_bytes <= 0 for b in ranks):
        short = max((b.kv.needed_bytes - b.available_bytes for b in ranks if b.kv is not None), default=0)
        warnings.append(
            f"one request of max_model_len {need} needs {short / GIB:.2f} GiB more KV cache than the pool has: "
            f"vLLM refuses to start ('the estimated maximum model length is {longest}'; lower "
            "--context, vLLM's --max-model-len, or raise --gpu-memory-utilization)"
        )
    parallel = f" per GPU, TP {tp} x PP {pp}" if tp * pp > 1 else ""
    # after page-size unification the attention groups' block sizes differ (Gemma 4: 16 full, 32 sliding)
    sizes = sorted({gr.spec.block_size for gr in layout.groups if gr.spec.kind != "mamba"} or {layout.block_size})
    groups = (
        f"{len(layout.groups)} KV cache groups of {layout.group_size} layers, block size "
        f"{' / '.join(map(str, sizes))}, "
        if len(layout.groups) > 1
        else ""
    )
    notes = [
        f"vLLM {info.since}: takes {opt.utilization:.2f} of {ranks[0].total_memory_bytes / GIB:.2f} GiB up front"
        f"{parallel}; {groups}{blocks} blocks: 'GPU KV cache size: {kv_tokens:,} tokens', "
        f"'Maximum concurrency for {need:,} tokens per request: {concurrency:.2f}x'",
        f"profile run: {batched} tokens (max_num_batched_tokens) over {min(seqs, batched)} sequences "
        f"(max_num_seqs {seqs})"
        + ("" if info.v1 else "; V0: max(max_model_len, 2048), or 2048 with chunked prefill beyond 32K"),
    ]
    if info.mxfp4_padding and any(
        t.role in EXPERT_ROLES and st.name == "mxfp4"
        for t, st in zip(archs.model_tensors(spec), storage_types(spec, resolve(spec, request).dtype), strict=True)
    ):
        backend = mxfp4_backend(opt.gpu_name)
        a_i, a_h = MXFP4_PADDING[backend]
        notes.append(
            f"MXFP4 experts on the {backend} MoE backend: the intermediate size per partition rounded up to "
            f"{a_i}"
            + (f" and the hidden size to {a_h}" if a_h > 1 else "")
            + " (vLLM mxfp4.py Mxfp4MoEMethod.create_weights)"
        )
    if info.extensible_kv:
        notes.append(
            "vLLM 0.34 sizes the KV cache after warmup and CUDA graph capture from the memory then free "
            "(the extensible KV cache, on by default on CUDA and ROCm): it keeps max(1 GiB -- 3 on ROCm --, 0.75 x the "
            "activation peak) "
            "plus the peak free, and caps the pool at the card less what the worker held at its start-up snapshot "
            f"(CUDA context, NCCL, cuBLAS: {ranks[0].context_bytes / MIB:,.0f} MiB counted here)"
        )
    elif info.context_in_non_torch:
        notes.append("vLLM 0.6 prints the CUDA context inside non_torch_memory")
    else:
        notes.append(
            "the CUDA context (a few hundred MiB) sits in the 1 - gpu_memory_utilization headroom: vLLM "
            "measures non-torch memory from a baseline taken after it (PR #12126, 0.7 on)"
        )
    # CUDA graph memory is not sized: vllm==0.11.0 captures the graphs after the KV pool (gpu_worker.py
    # `compile_or_warm_up_model` -> gpu_model_runner.py `capture_model`) for batch sizes 1, 2, 4, 8, 16, ... up to
    # min(2 x max_num_seqs, 512) (config/__init__.py:557) and only measures the pool afterwards (the
    # torch.cuda.mem_get_info difference it returns); what the pool holds is the compiled graphs' intermediate
    # buffers, which the source does not give in closed form. From 0.21 vLLM estimates it by a dummy capture.
    if info.extensible_kv:
        pw, full = cudagraph_sizes(opt, batched, seqs)
        notes.append(
            f"CUDA graphs (PIECEWISE {len(pw)} sizes up to {pw[-1]}, FULL {len(full)} up to {full[-1] if full else 0}) "
            "are captured before the extensible KV cache is sized, so the pool is what they leave: vllm==0.34.0 "
            "v1/worker/gpu/model_runner.py `profile_cudagraph_memory` returns 0 with this cache ('measures the "
            "capture footprint after warmup'); "
            + (
                f"{ranks[0].cudagraph_bytes / GIB:.2f} GiB as given"
                if ranks[0].cudagraph_bytes
                else "their memory is measured at start-up, not modelled here: the pool is that much smaller (0.11 "
                "to 1.58 GiB in the logs read)"
            )
        )
    elif info.cudagraphs_profiled:
        pw, full = cudagraph_sizes(opt, batched, seqs)
        notes.append(
            f"'Profiling CUDA graph memory: PIECEWISE={len(pw)} (largest={pw[-1]}), FULL={len(full)} "
            f"(largest={full[-1] if full else 0})': since 0.21 vLLM captures the largest and the next graph of each "
            "mode, takes first + (count - 1) x second as the graphs' memory (gpu_model_runner.py "
            "`profile_cudagraph_memory`) and subtracts it from the KV budget; what one capture costs is measured, "
            "not modelled here: the pool is that much smaller (0.30 to 1.58 GiB in the logs read; "
            "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 turns it off)"
        )
    else:
        notes.append("CUDA graphs are captured after the KV cache, in the headroom (not counted)")
    notes += layout.notes
    if g.ssm_state and any(g.ssm_state) and opt.version == "0.10":
        notes.append(
            "vLLM 0.10.x itself still runs recurrent-state models on V0 unless VLLM_USE_V1=1 (vllm==0.10.1 "
            "engine/arg_utils.py: 'V1 mamba models are unoptimized' -> 'Falling back to V0 Engine'); the V1 "
            "arithmetic shown is what later releases of this range do (0.19.1 has no V0)"
        )
    if g.ssm_state and any(g.ssm_state) and tp > 1:
        notes.append(
            "Mamba2 states under TP: vLLM adds replicated groups when n_groups does not divide by TP "
            "(mamba_utils.py `extra_groups_for_head_shards`), not counted here"
        )
    split = opt.moe_split
    if g.experts and split.ranks > 1:
        if split.expert_parallel:
            notes.append(
                f"expert parallel (EP = TP {tp} x DP {opt.data_parallel} = {split.ranks}): each rank holds whole "
                f"experts, the first {split.experts_on_rank0(g.experts)} of {g.experts} (vllm==0.10.1 fused_moe/"
                "layer.py `determine_expert_map`); attention, the router and the embeddings stay as TP shards"
            )
        else:
            notes.append(
                f"every expert is split over TP x DP = {split.ranks} ranks (fused_moe/config.py `flatten_tp_across_dp`)"
            )
    elif opt.expert_parallel:
        notes.append(
            "--enable-expert-parallel changes nothing here: "
            + ("no mixture-of-experts layers" if not g.experts else "it needs TP x DP > 1")
        )
    if opt.data_parallel > 1:
        notes.append(
            f"data parallel {opt.data_parallel}: {opt.data_parallel} engines, each with its own KV pool; the "
            f"figures are one GPU's ({tp * pp * opt.data_parallel} GPUs in all)"
        )
    if not info.v1 and g.sliding_window:
        notes.append(
            f"sliding-window layers (window {g.sliding_window}) are counted as full attention (V0's block "
            "manager is not modelled for windows)"
        )
    sliding = [gr for gr in layout.groups if gr.spec.kind == "sliding"]
    if sliding:
        sw = sliding[0]
        flight = (
            f"{batched} scheduled tokens"
            if not info.in_flight_batches
            else f"the tokens in flight ({batched} x {2 if pp == 1 else pp} batches, vllm==0.33.0)"
        )
        notes.append(
            f"sliding-window layers (window {sw.spec.window}) hold {sw.blocks_per_request} blocks per request: "
            f"cdiv(min(window - 1 + {flight}, max_model_len), block size) + 1 (vllm/v1/kv_cache_interface.py "
            "SlidingWindowSpec); full-attention layers cdiv(max_model_len, block size)"
        )
    if g.vision_cross_attention:
        notes.append("the KV pool spans the cross-attention layers too (one block table per request)")
    if ranks[0].mm is not None:
        notes.append(f"multimodal profile run: {ranks[0].mm.detail}")
    buffers: list[Buffer] = []
    for b in ranks:
        dev = b.stage * tp
        where = f" (stage {b.stage}, layers {b.layers[0]}-{b.layers[1] - 1})" if pp > 1 else ""
        w = b.weights
        bits = [f"1/{tp} of the sharded ones"] if tp > 1 else []
        if g.experts and split.ranks > 1:
            bits.append(
                f"{split.experts_on_rank0(g.experts)} whole experts of {g.experts}"
                if split.expert_parallel
                else f"experts 1/{split.ranks}"
                if split.ranks != tp
                else ""
            )
        share = f" ({', '.join(x for x in bits if x)})" if any(bits) else ""
        parts = [f"{r.dtype.name} tensors {w.tensor_bytes / MIB:.2f} MiB" + share]
        if w.rope_bytes:
            parts.append(f"rotary cos/sin cache {w.rope_bytes / MIB:.2f} MiB")
        slack = w.allocated_bytes - w.tensor_bytes - w.rope_bytes
        if slack:
            parts.append(f"caching-allocator rounding {slack / MIB:.2f} MiB")
        suffix = "" if pp == 1 else f" [stage {b.stage}]"
        buffers.append(
            Buffer(
                "weights" + suffix,
                w.allocated_bytes,
                "gpu",
                "weights",
                " + ".join(parts) + where + " ('Model loading took')",
                dev,
            )
        )
        buffers.append(
            Buffer(
                "non-torch memory" + suffix,
                b.non_torch_bytes,
                "gpu",
                "overhead",
                opt.non_torch_detail
                or (
                    "NCCL, cuBLAS workspaces created after the baseline (PR #12126 / issue #13061 logs)"
                    if not info.context_in_non_torch
                    else "CUDA context, cuBLAS workspaces, NCCL: 1.79 GiB at TP 1, 3.58 GiB at "
                    "TP 2 for Llama-3-8B on an H100 (vLLM PR #10511)"
                ),
                dev,
            )
        )
        rows = b.mm.sampler_rows if b.mm else min(seqs, batched)
        sampler = (
            (
                f"sampler: {rows} rows x {vocab_size(spec)} x ({r.dtype.activation_bytes} + "
                f"{v1_sampler_bytes_per_logit(info, rows, opt.uses_flashinfer_sampler)}) B "
                f"({sampler_kind(opt, rows)}"
                f" top-k/top-p) + the dummy run's hidden states"
                if info.v1
                else f"sampler: {VLLM_SAMPLER_LOGITS_COPIES} x {rows} rows x {vocab_size(spec)} x 4 B"
            )
            + (" + the held embeddings" if b.mm else "")
            if b.sampler_bytes
            else "no sampler (not the last stage)"
        )
        buffers.append(
            Buffer(
                "activation peak (profile run)" + suffix,
                b.activation_bytes,
                "gpu",
                "compute",
                f"max({'the vision pass, or the held embeddings + ' if b.mm else ''}"
                f"layers over {batched} tokens / {tp}: {b.layer_peak_bytes} B, {sampler})",
                dev,
            )
        )
        if b.context_bytes:
            buffers.append(
                Buffer(
                    "CUDA context (before the snapshot)" + suffix,
                    b.context_bytes,
                    "gpu",
                    "other",  # held before vLLM's own snapshot: not the non-torch memory explain --save replaces
                    "the CUDA context, NCCL and cuBLAS handles the worker creates before `init_snapshot`: the extensible "
                    "KV cache caps the pool at the card less them (vllm==0.34.0 gpu_worker.py `init_device`, "
                    "extensible_kv_cache.py `measure_kv_cache_bytes`); "
                    + (
                        "given"
                        if opt.cuda_context_bytes is not None
                        else "360 MiB measured for a PyTorch process on an RTX 3090 (FastChat#2005); the bare context "
                        "grows with the SM count (llama.cpp PR #23604: 107 MiB on 34 SMs, 555 MiB on 188)"
                    ),
                    dev,
                )
            )
        if b.cudagraph_bytes:
            buffers.append(
                Buffer(
                    "CUDA graphs" + suffix,
                    b.cudagraph_bytes,
                    "gpu",
                    "other",  # a measured figure already: not replaced by explain --save
                    "the captured graphs' memory as given (a log's 'Graph capturing finished ..., took' or 'Estimated "
                    "CUDA graph memory'), off the KV budget: vllm==0.22.0 gpu_worker.py `determine_available_memory`; "
                    "0.34 captures before sizing the extensible KV cache",
                    dev,
                )
            )
        if b.margin_bytes:
            buffers.append(
                Buffer(
                    "kept free (KV sizing margin)" + suffix,
                    b.margin_bytes,
                    "gpu",
                    "other",  # memory kept free, not the runtime's own (explain --save replaces the overhead rows)
                    f"max({3 if on_rocm(opt.gpu_name) else 1} GiB, 0.75 x the activation peak), less what "
                    "gpu_memory_utilization "
                    f"{opt.utilization:.2f} leaves free (vllm==0.34.0 extensible_kv_cache.py `measure_kv_cache_bytes`)",
                    dev,
                )
            )
        kv = b.kv
        assert kv is not None
        if kv.uniform_type and kv.groups and kv.groups[0].spec.kind != "mamba":
            detail = (
                f"{blocks} blocks x {kv.block_size} tokens x {b.kv_bytes_per_token} B per token "
                f"({len(_kv_layers(g, *b.layers))} layers x "
                + (
                    f"the MLA latent: kv_lora_rank {g.mla[0]} + rope {g.mla[1]} x {r.kv.name}, not split by TP"
                    + (
                        " + the DSA indexer's keys: fp8 and a float32 scale per 128"
                        if any(isinstance(k, IndexerKeys) for kinds in g.caches for k in kinds)
                        else ""
                    )
                    + ")"
                    if g.mla
                    else f"K,V x {f'max(1, KV heads / {tp})' if tp > 1 else 'KV heads'} x head_dim x {r.kv.name})"
                )
            )
        elif kv.uniform_type:
            detail = (
                f"{blocks} sequence states x {kv.group_size} layers x {kv.page_bytes} B (conv state of conv_kernel "
                f"- 1 columns + SSM state, {r.dtype.activation_bytes}-byte model dtype{', / TP' if tp > 1 else ''}): "
                "MambaSpec, one block per sequence"
            )
        else:
            counted: dict[LayerSpec, list[KVGroup]] = {}
            for gr in kv.groups:
                counted.setdefault(gr.spec, []).append(gr)
            kinds = ", ".join(
                f"{len(grs)} {sp.kind}{f' (window {sp.window})' if sp.window else ''} of "
                f"{'+'.join(str(x.layers) for x in grs)} layers, {grs[0].blocks_per_request} blocks per "
                "request each"
                for sp, grs in counted.items()
            )
            detail = (
                f"{blocks} blocks x {kv.group_size} pools x {kv.page_bytes} B page; groups: {kinds} "
                "(vllm/v1/core/kv_cache_utils.py `_get_kv_cache_config_uniform_page_size`)"
            )
        buffers.append(Buffer("KV cache blocks" + suffix, blocks * kv.pool_block_bytes, "gpu", "kv_self", detail, dev))
    first = ranks[0]
    facts: dict[str, int | bool | str] = {
        "usable_bytes": first.usable_bytes,
        "kv_tokens": kv_tokens,
        "kv_blocks": blocks,
        "max_model_len": max_model_len,
        "fits_window": fits,
        "max_num_batched_tokens": batched,
        "max_num_seqs": seqs,
        "kv_groups": len(layout.groups),
        "kv_needed_bytes": layout.needed_bytes,
        "estimated_max_model_len": longest,
        "max_concurrency_pct": round(concurrency * 100),
        "gpu_memory_utilization_pct": round(opt.utilization * 100),
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
        "version": opt.version,
        "v1": info.v1,
        "extensible_kv": info.extensible_kv,
        "data_parallel": opt.data_parallel,
        "expert_parallel": opt.expert_parallel,
    }
    if info.cudagraphs_profiled:
        pw, full = cudagraph_sizes(opt, batched, seqs)
        facts["cudagraphs_piecewise"] = len(pw)
        facts["cudagraphs_full"] = len(full)
    if first.mm is not None:
        facts["mm_items"] = first.mm.items
        facts["mm_tokens_per_item"] = first.mm.tokens_per_item
        facts["encoder_cache_budget"] = first.mm.encoder_budget
    return EngineEstimate(
        "vllm",
        spec.id,
        spec.architecture,
        r.dtype.name,
        r.kv.name,
        max_model_len,
        kv_tokens,
        tuple(buffers),
        facts,
        tuple(notes + list(r.notes)),
        tuple(warnings),
    )


__all__ = [
    "MXFP4_PADDING",
    "V1_BATCH_DEFAULTS",
    "VLLM_DEFAULT_VERSION",
    "VLLM_KV_TYPES",
    "VLLM_VERSIONS",
    "KVGroup",
    "KVLayout",
    "LayerSpec",
    "MoeSplit",
    "MultimodalProfile",
    "RankBudget",
    "RankWeights",
    "VllmOptions",
    "VllmVersion",
    "accepts",
    "batch_defaults",
    "budgets",
    "cudagraph_sizes",
    "estimate_max_model_len",
    "kv_heads_per_rank",
    "kv_layout",
    "mm_profile",
    "mxfp4_backend",
    "pp_partition",
    "rank_budget",
    "rank_weights",
    "sampler_kind",
    "stage_layers",
    "torch_allocated",
    "tp_problems",
    "unified_blocks",
    "unified_kv_blocks",
    "vllm_estimate",
]
