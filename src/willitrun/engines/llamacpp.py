"""llama.cpp and ollama: the buffers they print at start-up, reproduced from the tensor inventory.

llama.cpp allocates, per device:
- model buffers: every GGUF tensor in its file type, each placed at a 128-byte aligned offset. The
  token embedding stays in host memory (the "CPU buffer"). Which layers `-ngl N` offloads depends on
  the build (`LlamaCppVersion.output_first`): up to mid-December 2025 the repeating layers from
  n_layer - N on, and the output layer (final norm + LM head) only when N > n_layer (`-ngl 33` for
  32 layers); since ggml-org/llama.cpp PR #18148 the output layer first, then the last N - 1
  repeating layers. A vision model's CLIP tower and projector are a separate mmproj file with their
  own buffer and compute buffer;
- one KV cache of n_ctx cells, n_ctx padded (the rule changed between versions, see
  LLAMACPP_VERSIONS), each layer's K and V on the device of the layer;
- a compute buffer per device: the peak of the worst-case graph (n_ubatch tokens, every output
  kept), which ggml-alloc measures once at start-up; a host compute buffer and a host output buffer.

The compute-buffer form is calibrated against printed buffers of Llama-architecture models (Llama 2
7B MHA, Llama 3 8B GQA, a Mistral 7B v0.2/0.3 GQA model) from llama.cpp b2197 (Feb 2024) to a
January 2025 llama-server, n_ctx 512 to 32768, all exact to 0.01 MiB (tests/engines/
calibration_extra.yaml); the KV padding of later versions comes from their source. Mixture-of-experts
models on 2025 builds (Qwen3-30B-A3B with every expert on the host, Qwen3-235B-A22B at -ngl 93,
gpt-oss-20b's host buffers) match to 0.01 MiB once Q and the attention output are n_head x head_dim
wide; two GPU compute buffers stay unexplained (gpt-oss-20b with flash attention 12.8 % above its
logits phase, Mixtral on a 2024 Metal build 9.8 % below the feed-forward form) and are listed as such.
Other architectures keep more tensors alive at the attention peak (GPT-NeoX's fused QKV: 6
hidden-size tensors instead of 4), so the form is for Llama-like decoders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, NamedTuple

from .. import archs, gguf
from ..archs import caches
from ..archs.base import EXPERT_ROLES, VisionShape, uniform_width
from ..dtypes import BF16, F16, F32, Q8_0, StorageType, WeightDtype, weight_dtype
from ..errors import UsageError
from ..memory import AnySpec, Request, check_room_for_text, default_context, largest_within, resolve
from ..tensors import Tensor, model_tensors
from .base import Buffer, EngineEstimate, aligned_sum, pad

# ggml-cuda.cu `ggml_backend_cuda_buffer_type_get_alignment`: every tensor of a backend buffer starts
# at a 128-byte boundary (ggml-alloc `ggml_backend_alloc_ctx_tensors_from_buft`).
GGML_CUDA_ALIGNMENT = 128
# Host buffers: ggml-backend.c `#define TENSOR_ALIGNMENT 32 // required for mmap as gguf only guarantees
# 32-byte alignment` (the CPU buffer type's alignment; an mmapped CPU buffer is the file's span, whose
# tensors GGUF aligns to 32 bytes), and no CUDA row padding.
GGML_CPU_ALIGNMENT = 32
# ggml's compute buffers hold f32 activations (ggml-alloc sizes every graph tensor; llama.cpp builds
# its graphs in GGML_TYPE_F32), so every activation term below is 4 bytes an element.
F32_BYTES = 4
MMPROJ = frozenset({"vision_tower", "projector"})
# ggml-cuda.cu `ggml_backend_cuda_buffer_type_get_alloc_size`: a quantized tensor whose rows are not a
# multiple of MATRIX_ROW_PADDING (512) elements gets one row-remainder of padding at its end.
MATRIX_ROW_PADDING = 512


def cuda_tensor_bytes(t: Tensor, s: StorageType) -> int:
    """Bytes the CUDA backend allocates for one weight tensor (before alignment)."""
    nbytes = s.nbytes(t.numel)
    if s.block_size > 1 and t.row % MATRIX_ROW_PADDING:
        nbytes += s.nbytes(MATRIX_ROW_PADDING - t.row % MATRIX_ROW_PADDING)
    return nbytes


@dataclass(frozen=True)
class LlamaCppVersion:
    """How a range of llama.cpp versions pads the KV cache and whether flash attention is on by default."""

    key: str
    since: str
    source: str
    kv_pad: int  # n_ctx padding without flash attention
    kv_pad_fa: int  # with flash attention
    flash_attn_default: bool
    # Host-weight ops (the output layer, host layers) run on the GPU for batches >= 32 rows: from
    # ggml-org/llama.cpp PR #6083 "backend : offload large batches to GPU" (March 2024); before it
    # every op whose weight is in host memory ran on the CPU (b2197 CI log, ggml-org/ci
    # llama.cpp/46/fd2737.../open_llama_7b_v2-save-load-state.log: no CUDA0 compute buffer at -ngl 0).
    op_offload: bool = True
    # With flash attention and a quantized KV cache, the CUDA tile/MMA kernels convert K and V to f16
    # inside the FA node's allocation (ggml-cuda.cu: `ggml_cuda_flash_attn_ext_get_alloc_size`;
    # fattn-common.cuh pads and appends ggml_nelements(K) x 2 B), so the printed compute buffer holds
    # them; earlier builds took them from the CUDA pool (not printed).
    fa_f16_kv_in_compute: bool = False
    # llama-server reserves logits for n_parallel outputs, not n_ubatch: ggml-org/llama.cpp PR #23861
    # "llama: limit max outputs of `llama_context`" (2026-05-29; tools/server/server-context.cpp sets
    # n_outputs_max = min(n_batch, n_parallel x (1 + n_draft)); llama-cli and the library keep n_batch).
    server_outputs: bool = False
    # Latent attention (DeepSeek V2/V3) caches the latent in K only: ggml-org/llama.cpp PR #19067
    # "kv-cache : support V-less cache" (2026-01-24; llama-kv-cache.cpp `const bool has_v = !is_mla;`):
    # "almost x2 less memory for the KV cache". Before it, K 576 and V 512 per cell and layer.
    mla_v_less: bool = False
    # `-ngl N` offloads the output layer first, then N - 1 repeating layers: ggml-org/llama.cpp PR #18148
    # "llama: offload output layer to GPU first" (opened 2025-12-17, merged mid-December 2025; fixes issue
    # #18119). llama-model.cpp `load_tensors`: `i_gpu_start = std::max(n_layer_all + 1 - n_gpu_layers, 0)`
    # (before: `std::max((int) hparams.n_layer - n_gpu_layers, (int) 0)`), and the output layer, placed as
    # layer il = n_layer, is on the GPU when il - i_gpu_start < act_gpu_layers = min(n_gpu_layers, n_layer + 1),
    # i.e. for every N >= 1. `-ngl N` with N > n_layer places the same as before.
    output_first: bool = False
    # llama-server without -np: "n_parallel is set to auto, using n_parallel = 4 and kv_unified = true"
    # (tools/server/server.cpp `if (params.n_parallel < 0)`; ggml-org/llama.cpp PR #16736 "server : support
    # unified cache across slots", opened 2025-10-23: "By default, start the server using 4 slots and unified
    # KV cache"; b7079 of 2025-11-16 starts 4 slots, issue #17300; `-np` help "default: -1, -1 = auto" since
    # PR #17997). One cache of n_ctx cells shared by 4 sequences: the sliding-window layers keep 4 windows,
    # a recurrent model 4 states, the output buffer 4 rows.
    server_auto_parallel: bool = False
    # `--fit` (on by default) sets what the user left unset -- n_ctx from the trained window down to 4096, then
    # layers and experts to the host -- so that LLAMACPP_FIT_TARGET_BYTES stay free on every device:
    # ggml-org/llama.cpp PR #16653 "llama: automatically set parameters not set by the user in such a way that
    # maximizes GPU utilization" (merged mid-December 2025; its log: "cannot fulfill margin of 1024 MiB on all
    # devices"); per-device targets `--fit-target` PR #18679 (2026-01-07).
    fit: bool = False
    # Without a unified cache each of the -np sequences has its own stream: every cache tensor is [n_embd,
    # kv_size, n_stream] (llama-kv-cache.cpp `ggml_new_tensor_3d(ctx, type_k, n_embd_k_gqa, kv_size,
    # n_stream)`), so the sliding-window layers keep GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256) cells per
    # stream, n_seq_max times: ggml-org/llama.cpp PR #14363 "llama : add high-throughput mode" (July 2025).
    kv_streams: bool = False
    # The DeepSeek sparse-attention (DSA) indexer's key cache (llama_kv_cache_dsa, src/llama-kv-cache-dsa.cpp):
    # "none" -- no such cache: deepseek32 does not load, glm-dsa runs as plain latent attention (its indexer tensors
    # loaded and ignored; GLM_DSA reused deepseek2's graph); "deepseek32" -- ggml-org/llama.cpp PR #23346 "Support
    # for DeepseekV32ForCausalLM with generic DeepSeek Sparse Attention (DSA) implementation" (opened 2026-05-19,
    # merged late May 2026): deepseek32 keeps an indexer key in every layer, glm-dsa still none; "every_layer" --
    # PR #25407 "GLM 5.2 Indexer support" (reviewed 2026-07-24, merged before b10216 of 2026-07-31, issue #26382):
    # glm-dsa on llama_kv_cache_dsa, an indexer key in EVERY layer, "shared" ones included; "full_layers" -- PR
    # #26474 "llama : allocate GLM_DSA indexer cache only in \"full\" indexer layers" (opened 2026-08-02: "approx by
    # ~75%"): only the layers whose glm-dsa.attention.indexer.types entry is full.
    dsa_indexer: Literal["none", "deepseek32", "every_layer", "full_layers"] = "none"


LLAMACPP_VERSIONS: dict[str, LlamaCppVersion] = {
    v.key: v
    for v in (
        LlamaCppVersion(
            "2023-12",
            "2023-12-03 (b1600s) to mid-March 2024 (b2197 = 2024-02-19 is one)",
            "ggml-org/llama.cpp PR #4280 'llama : pad KV cache size': cparams.n_ctx = GGML_PAD(n_ctx, 32); "
            "no op offload yet (PR #6083): under partial offload the output layer runs on the CPU",
            32,
            32,
            False,
            op_offload=False,
        ),
        LlamaCppVersion(
            "2024-03",
            "mid-March 2024 to 2024-04-29",
            "ggml-org/llama.cpp PR #6083 'backend : offload large batches to GPU': host-weight ops of "
            "batches >= 32 rows run on the GPU (the LM head is copied into its compute buffer)",
            32,
            32,
            False,
        ),
        LlamaCppVersion(
            "2024-04",
            "2024-04-30 to 2024-05-12",
            "ggml-org/llama.cpp PR #5021 (FlashAttention) with fix-up PR #6438: n_ctx padded to 256",
            256,
            256,
            False,
        ),
        LlamaCppVersion(
            "2024-05",
            "2024-05-13 to 2025-08",
            "ggml-org/llama.cpp PR #7257 'less KV padding when FA is off': "
            "llama_kv_cache_get_padding = flash_attn ? 256 : 32",
            32,
            256,
            False,
        ),
        LlamaCppVersion(
            "2025-08",
            "2025-08 to 2025-10-27",
            "same padding as 2024-05; `--flash-attn auto` became the default "
            "(mudler/LocalAI PR #6168 2025-08-31 and docker/model-runner PR #44 2025-09-24 follow it)",
            32,
            256,
            True,
            kv_streams=True,
        ),
        LlamaCppVersion(
            "2025-10",
            "2025-10-28 to 2025-11-05",
            "ggml-org/llama.cpp PR #16812 'memory : remove KV cache size padding'",
            1,
            1,
            True,
            kv_streams=True,
        ),
        LlamaCppVersion(
            "2025-11",
            "2025-11-06 to mid-December 2025",
            "ggml-org/llama.cpp PR #17046 'kv-cache : pad the cache size to 256 for performance': "
            "llama-context.cpp cparams.n_ctx = GGML_PAD(n_ctx, 256), and per sequence when the "
            "cache is split (n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256))",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            server_auto_parallel=True,
            kv_streams=True,
        ),
        LlamaCppVersion(
            "2025-12",
            "mid-December 2025 to 2026-01-23",
            "the padding of 2025-11; ggml-org/llama.cpp PR #18148 'llama: offload output layer to GPU "
            "first': -ngl N offloads the output layer, then N - 1 repeating layers",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
        ),
        LlamaCppVersion(
            "2026-01",
            "2026-01-24 to late May 2026",
            "the padding of 2025-11 (PR #17046: n_ctx padded to 256, per sequence when split); -ngl "
            "output layer first (PR #18148); ggml-org/llama.cpp PR #19067 'kv-cache : support V-less "
            "cache': latent attention caches K only; no DSA indexer cache yet (deepseek32 does not load)",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            mla_v_less=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
            dsa_indexer="none",
        ),
        LlamaCppVersion(
            "2026-05",
            "late May 2026 to late July 2026",
            "2026-01 with ggml-org/llama.cpp PR #23346 (DeepseekV32ForCausalLM, llama_kv_cache_dsa): deepseek32 "
            "keeps an indexer key per cell in every layer; glm-dsa still runs as plain latent attention",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            mla_v_less=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
            dsa_indexer="deepseek32",
        ),
        LlamaCppVersion(
            "2026-07",
            "late July 2026 (PR #25407, before b10216) to early August 2026 (PR #26474)",
            "ggml-org/llama.cpp PR #25407 'GLM 5.2 Indexer support': glm-dsa on the DSA cache, with an indexer-key "
            "cache in every layer, shared-indexer layers included",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            mla_v_less=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
            dsa_indexer="every_layer",
        ),
        LlamaCppVersion(
            "current",
            "early August 2026 (PR #26474) on",
            "the padding of 2025-11 (PR #17046); -ngl output layer first (PR #18148); latent attention caches K "
            "only (PR #19067); ggml-org/llama.cpp PR #26474: the glm-dsa indexer-key cache only in the full "
            "indexer layers",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            mla_v_less=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
            dsa_indexer="full_layers",
        ),
        LlamaCppVersion(
            "2026-06-server",
            "llama-server from 2026-05-29 on",
            "ggml-org/llama.cpp PR #23861 'llama: limit max outputs of llama_context': llama-server "
            "reserves the logits of n_parallel outputs (no speculative draft), not of n_ubatch tokens",
            256,
            256,
            True,
            fa_f16_kv_in_compute=True,
            server_outputs=True,
            mla_v_less=True,
            output_first=True,
            server_auto_parallel=True,
            fit=True,
            kv_streams=True,
            dsa_indexer="full_layers",  # as `current`; 2026-05 / 2026-07 size older builds' DSA caches
        ),
    )
}


# common/common.h `fit_params_target = std::vector<size_t>(llama_max_devices(), 1024 * 1024*1024)`: the
# memory --fit keeps free per device (`fit_params_min_ctx = 4096` is the least context it reduces to).
LLAMACPP_FIT_TARGET_BYTES = 1024 * 1024 * 1024
# common.h `fit_params_min_ctx = 4096` (-fitc / --fit-ctx): the least context --fit shrinks an unset one to
LLAMACPP_FIT_MIN_CTX = 4096
# The context llama.cpp takes when -c is not given. Builds before --fit: common.h `int32_t n_ctx = 4096` (the
# llama-cli / llama-server help of 2024-25: "-c, --ctx-size N  size of the prompt context (default: 4096, 0 =
# loaded from model)"; llama-cli of 2023 had 512). Builds with --fit (PR #16653, mid-December 2025): an unset
# context is 0 -- the trained window (common/fit.cpp `n_ctx_auto = (cparams->n_ctx == 0)`, probed at
# n_ctx_train x n_streams) -- which --fit shrinks toward 4096 when it does not fit (the PR's own log: "context
# size reduced from 65536 to 4096"; issue #18376 on b7539).
LLAMACPP_PRE_FIT_DEFAULT_CTX = 4096

# llama-server's `-np auto`: tools/server/server.cpp `params.n_parallel = 4; params.kv_unified = true;`
LLAMA_SERVER_AUTO_PARALLEL = 4

# --cpu-moe counts as this many layers (more than any model has; every count is min(n_cpu_moe, n_layer)).
MAX_MOE_LAYERS = 1 << 30


@dataclass(frozen=True)
class LlamaCppOptions:
    """llama.cpp settings (flag in brackets)."""

    n_ubatch: int = 512  # [-ub] physical batch; common.h default 512
    flash_attn: bool | None = None  # [-fa] None: the version's default
    # [-np] sequences sharing the one cache of n_ctx cells; None: the program's default, llama-server's auto
    # (4 slots and a unified cache, `LlamaCppVersion.server_auto_parallel`) or 1 on older builds
    parallel: int | None = None
    gpu_layers: int | None = None  # [-ngl] None: everything (999); n_layer + 1 also offloads the output layer
    version: str = "current"  # a key of LLAMACPP_VERSIONS
    kv_pad: int | None = None  # override the version's n_ctx padding
    gpus: int = 1  # layer split over this many identical GPUs (-sm layer, even split)
    # [--op-offload/--no-op-offload, ggml-org/llama.cpp PR #13386, May 2025] large batches run on the GPU
    # even for host weights; builds before PR #6083 (version "2023-12") never do
    op_offload: bool = True
    mmproj_dtype: str = "f16"  # the mmproj file's type; f16 is what the conversion scripts write by default
    mmproj_on_gpu: bool = True  # current libmtmd puts CLIP on the GPU; 2024 llava-cli ran it on the CPU
    # [--mmproj FILE] the user's mmproj GGUF as read at the edge (cli/engine_options.py read_mmproj; engines read
    # no file format): its tensor table sizes the vision weights
    mmproj_file: MmprojFile | None = None
    kv_unified: bool = False  # [-kvu] one stream for all sequences (llama-server's default when -np is not given)
    cuda_overhead_bytes: int = 0  # CUDA context + cuBLAS + ggml's CUDA pool: not printed by llama.cpp
    cuda_overhead_detail: str = "given as an option"  # where cuda_overhead_bytes comes from (explain --save)
    swa_full: bool = False  # [--swa-full] sliding-window layers keep every cell, not just their window
    # latent attention (DeepSeek V2/V3) cached as the latent; False: a GGUF converted before PR #12801 (no
    # attn_k_b/attn_v_b), whose cache holds every head's K and V (ollama's 2024 library files)
    mla_latent: bool = True
    n_cpu_moe: int = 0  # [--n-cpu-moe N] the expert tensors of layers 0..N-1 stay in host memory (-ot exps=CPU: all)
    cpu_moe: bool = False  # [--cpu-moe] the expert tensors of every layer in host memory (n_cpu_moe is then ignored)
    # [--image-min-tokens / --image-max-tokens] libmtmd's bounds on a dynamic-resolution image (Qwen2-VL, Pixtral):
    # clip.cpp set_limit_image_tokens takes them instead of the projector's defaults (8..4096, 8..1024)
    image_min_tokens: int | None = None
    image_max_tokens: int | None = None
    # [-ot / --override-tensor PATTERN=CPU, repeatable] every tensor of a repeating layer whose GGUF name
    # (blk.N.ffn_up_exps.weight ...) the regex finds stays in host memory (`-ot exps=CPU`: all experts)
    override_tensor: tuple[str, ...] = ()
    # [--fit-target MiB] the memory llama.cpp's --fit keeps free per device; None: the build's (1024 MiB)
    fit_target_bytes: int | None = None
    fit_target_mib: int | None = None  # the same in MiB, as the flag takes it
    # the card's memory (--gpu): on builds with --fit, the default context (the trained window) is shrunk to what
    # fits it less the fit target (llama_fit_context); None: no card, the trained window as it is
    vram_bytes: int | None = None

    def __post_init__(self) -> None:
        given: object = self.override_tensor
        if isinstance(given, str):  # the command line's comma-separated text
            object.__setattr__(self, "override_tensor", (given,))
        if self.fit_target_mib is not None:
            if not 0 <= self.fit_target_mib <= 1 << 20:
                raise UsageError(f"fit_target_mib must be between 0 and {1 << 20} (got {self.fit_target_mib})")
            object.__setattr__(self, "fit_target_bytes", self.fit_target_mib << 20)
        if self.version not in LLAMACPP_VERSIONS:
            raise UsageError(
                f"unknown llama.cpp version {self.version!r}; choose one of {', '.join(LLAMACPP_VERSIONS)}"
            )
        for name in ("n_ubatch", "parallel", "gpus"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.gpu_layers is not None and self.gpu_layers < 0:
            raise UsageError(f"gpu_layers cannot be negative (got {self.gpu_layers})")
        if self.n_cpu_moe < 0:
            raise UsageError(f"n_cpu_moe cannot be negative (got {self.n_cpu_moe})")
        if self.cpu_moe:  # every layer: llama.cpp's --cpu-moe is one override, `\.ffn_(up|down|gate)_(ch|)exps`
            object.__setattr__(self, "n_cpu_moe", max(self.n_cpu_moe, MAX_MOE_LAYERS))
        for name in ("image_min_tokens", "image_max_tokens"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1 << 20:
                raise UsageError(f"{name} must be between 1 and {1 << 20} (got {value})")
        tensor_overrides(self.override_tensor)  # parsed and bounded here: a bad pattern is one usage error
        if self.fit_target_bytes is not None and not 0 <= self.fit_target_bytes <= 1 << 50:
            raise UsageError(f"fit_target_bytes must be between 0 and 2^50 (got {self.fit_target_bytes})")
        if self.image_min_tokens and self.image_max_tokens and self.image_min_tokens > self.image_max_tokens:
            raise UsageError(
                f"image_min_tokens ({self.image_min_tokens}) is above image_max_tokens ({self.image_max_tokens})"
            )

    def moe_flag(self) -> str:
        """The flag the user gave: --cpu-moe or --n-cpu-moe N."""
        return "--cpu-moe" if self.cpu_moe else f"--n-cpu-moe {self.n_cpu_moe}"


# --------------------------------------------------------------------------------------------------
# Tensor types and placement
# --------------------------------------------------------------------------------------------------
def gguf_storage(tensors: list[Tensor], dtype: WeightDtype, spec: AnySpec) -> list[StorageType]:
    """The type of every tensor in a GGUF file of `dtype`: the k-quant mixes from gguf.py; a float file
    (convert_hf_to_gguf.py --outtype f16/bf16/f32) keeps 1-D tensors (norms, biases) in f32."""
    if dtype.family == "gguf":
        return gguf.tensor_types(tensors, dtype, archs.geometry(spec))
    if dtype.family == "float":
        return [F32 if len(t.shape) < 2 else dtype.storage for t in tensors]
    raise UsageError(
        f"llama.cpp loads GGUF files: --dtype {dtype.name} is not a GGUF type "
        "(choose fp16, bf16, fp32, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, q3_k_m or q2_k)"
    )


def mmproj_tensors(spec: AnySpec, tensors: list[Tensor]) -> list[Tensor]:
    """What llava's convert_image_encoder_to_gguf.py writes to the mmproj file: the CLIP layers up to
    the feature layer (vision_feature_layer -2 drops the last of 24: 23 layers, `clip.vision.block_count
    = 23`) and no post-layernorm; the projector (and LLaVA-NeXT's image_newline)."""
    vision = archs.geometry(spec).vision
    keep = vision.mmproj_layers if vision is not None else 0
    return [
        t
        for t in tensors
        if t.component in MMPROJ
        and not t.name.startswith("vision.post_ln")
        and (t.layer is None or t.component != "vision_tower" or t.layer < keep)
    ]


def mmproj_storage(tensors: list[Tensor], dtype_name: str) -> list[StorageType]:
    """mmproj types: 1-D f32, the patch convolution f16, 2-D tensors in `dtype_name` when their rows are
    whole blocks (llava's quantize leaves the rest f16) -- the 377-tensor f32/f16/q4_0 split of
    llava-v1.5-7b's q4_0 mmproj."""
    try:
        base = weight_dtype(dtype_name)
    except KeyError:
        raise UsageError(f"unknown mmproj type {dtype_name!r}") from None
    out = []
    for t in tensors:
        if len(t.shape) < 2:
            out.append(F32)
        elif t.role == "conv" or base.family != "gguf":
            out.append(F16 if base.family != "float" or base.storage is F16 else base.storage)
        else:
            out.append(base.storage if t.row % base.storage.block_size == 0 else F16)
    return out


def mmproj_weights(spec: AnySpec, tensors: list[Tensor], dtype_name: str) -> tuple[int, int]:
    """(tensors, bytes) of the mmproj file's weights as the CUDA backend allocates them, each aligned."""
    mm = mmproj_tensors(spec, tensors)
    storage = mmproj_storage(mm, dtype_name)
    nbytes = aligned_sum((cuda_tensor_bytes(t, s) for t, s in zip(mm, storage, strict=True)), GGML_CUDA_ALIGNMENT)
    return len({t.name for t in mm}), nbytes


@dataclass(frozen=True)
class LmShape:
    """What the llama.cpp graph needs of the language model."""

    n_layer: int
    n_embd: int
    n_head: int
    n_ff: int
    n_vocab: int
    kv_width: int  # n_embd_k_gqa (= n_embd_v_gqa)
    q_width: int = 0  # n_head x n_embd_head_k, the query and attention-output width; 0: n_embd

    @property
    def attn_width(self) -> int:
        return self.q_width or self.n_embd


def lm_shape(spec: AnySpec) -> LmShape:
    """The graph's shapes; q_width = n_head x head_dim, which Qwen3-30B-A3B (32 x 128 = 4096 over n_embd
    2048) and gpt-oss (64 x 64 = 4096 over 2880) set apart from n_embd. Latent attention (DeepSeek) keeps
    n_embd: its attention graph is not this form."""
    g = archs.geometry(spec)
    head_dims = {k.key_dim for k in g.self_layers}
    q_width = g.num_attention_heads * max(head_dims) if head_dims and g.mla is None else 0
    return LmShape(
        g.decoder_layers,
        g.hidden_size,
        g.num_attention_heads,
        g.intermediate_size,
        g.vocab_size,
        uniform_width(g.self_layers),
        q_width,
    )


def kv_cells(n_ctx: int, parallel: int, pad_to: int, version: str, unified: bool) -> tuple[int, int]:
    """(cells allocated, cells each sequence can use). `current` pads the total and, with a split
    cache, each sequence's share (llama-context.cpp after PR #17046); older versions pad the total."""
    if version in (
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-05",
        "2026-07",
        "current",
        "2026-06-server",
    ):  # PR #17046's per-sequence padding
        total = pad(n_ctx, pad_to)
        if unified or parallel == 1:
            return total, total
        per_seq = pad(total // parallel, pad_to)
        return per_seq * parallel, per_seq
    total = pad(n_ctx, pad_to)
    return total, total if unified else total // parallel


def compute_bytes(
    shape: LmShape,
    n_kv: int,
    n_ubatch: int,
    flash_attn: bool,
    *,
    logits: bool,
    output_copy: int = 0,
    weight_copy: int = 0,
    t5_bias: bool = False,
    fa_kv_copy: bool = False,
    outputs: int | None = None,
    per_layer_inputs: int = 0,
) -> tuple[int, str]:
    """Peak of the worst-case graph on one device (f32 activations, n_ubatch tokens, every output):

    - logits phase (device holding the output layer): 4 B x n_ubatch x (n_embd + n_vocab) -- the
      final hidden state and the logits; with the output layer in host memory and op offload, the
      LM head's weight is copied to the GPU for the batch matmul too (`output_copy`);
    - attention phase: 4 B x n_ubatch x (2 x n_embd + 2 x q_width + n_kv x (n_head + 1)) -- the f32
      score matrix of every head, the KQ mask, the residual stream and the normed input (n_embd each),
      Q and the attention output (n_head x head_dim each; 4 x n_embd when that equals n_embd, as in
      every Llama log); flash attention never builds the scores and casts the mask to f16
      (2 B x n_kv x n_ubatch);
    - feed-forward phase: 4 B x n_ubatch x (2 x n_embd + 2 x n_ff) (gate and up; SiLU and the product
      run in place); with layers in host memory and op offload, plus the largest host weight, copied
      to the GPU for its batch matmul (`weight_copy`). For a mixture of experts n_ff is what one token
      computes, n_expert_used x n_ff_exp (+ the shared expert): llama-graph.cpp build_moe_ffn holds up
      and gate as [n_ff_exp, n_expert_used, n_ubatch] tensors (ggml_mul_mat_id), the router's logits
      and probabilities only n_expert x n_ubatch. Host experts (--n-cpu-moe) are host weights: each
      expert tensor is copied whole for its batch matmul, one at a time (ggml-backend.cpp
      split_graph starts a new split at every weight of another backend "so the memory of the
      previously offloaded weights can be reused").
    Calibrated for the Llama family on b2197 (70.50 MiB logits-bound and 164.00 MiB attention-bound,
    Llama-2-7B shapes), a mid-2024 llama-cpp-python (258.50 MiB, Llama 3 8B) and a Jan 2025
    llama-server (164.00 and 2144.00 MiB, Mistral 7B shapes, n_ctx 2048 and 32768); the
    partial-offload logits phase (203.99 MiB) on b4343; the q_width term on Qwen3-30B-A3B (b5622,
    1080.00 MiB on each of two GPUs at n_ctx 16384, experts on the host) (tests/engines/
    calibration_extra.yaml). ollama's own estimate (fs/ggml/ggml.go GraphSize, "llama") is the
    same max of the first two forms. The flash-attention and T5 terms are not calibrated, nor is the
    feed-forward phase of a mixture of experts (the one log where it decides, Mixtral 8x7B on Metal
    b2688, printed 115.50 MiB where this form gives 128.00).
    """
    ub = n_ubatch
    heads = shape.n_head * (2 if t5_bias else 1)  # T5 adds an f32 relative-position bias of the same shape
    # residual + normed input (n_embd each), Q + attention output (q_width each)
    hidden = 2 * shape.n_embd + 2 * shape.attn_width
    hidden_detail = (
        f"4 x {shape.n_embd}" if shape.attn_width == shape.n_embd else f"2 x {shape.n_embd} + 2 x {shape.attn_width}"
    )
    if flash_attn:
        attn = F32_BYTES * ub * hidden + 2 * n_kv * ub
        attn_detail = (
            f"4 B x {ub} x ({hidden_detail}) (hidden) + 2 B x {n_kv} x {ub} (f16 mask); flash attention: no scores"
        )
        if fa_kv_copy:  # quantized cache: K and V converted to f16 inside the FA node (fattn-common.cuh)
            attn += 2 * 2 * n_kv * shape.kv_width
            attn_detail += f" + 2 x 2 B x {n_kv} x {shape.kv_width} (K and V as f16 for the FA kernel)"
    else:
        attn = F32_BYTES * ub * (hidden + n_kv * (heads + 1))
        attn_detail = f"4 B x {ub} x ({hidden_detail} + {n_kv} x ({heads} heads + 1 mask))"
    ffn = F32_BYTES * ub * (2 * shape.n_embd + 2 * shape.n_ff)
    ffn_detail = f"4 B x {ub} x (2 x {shape.n_embd} + 2 x {shape.n_ff})" + (
        f" + {weight_copy} B host weight copied for a batch matmul" if weight_copy else ""
    )
    if per_layer_inputs:
        # Gemma 3n / 4: the per-layer inputs [n_embd_per_layer x n_layer, n_ubatch] f32 (build_inp_per_layer, then
        # project_per_layer_inputs) are read by every layer (src/models/gemma3n.cpp, gemma4.cpp: a view of
        # inp_per_layer at `il`), so ggml-alloc keeps them through the attention and feed-forward phases
        resident = F32_BYTES * ub * per_layer_inputs
        attn += resident
        ffn += resident
        tail = f" + 4 B x {ub} x {per_layer_inputs} (per-layer inputs)"
        attn_detail += tail
        ffn_detail += tail
    phases = [(attn, attn_detail), (ffn + weight_copy, ffn_detail)]
    if logits:
        rows = ub if outputs is None else min(outputs, ub)  # the output rows are selected before the final norm
        phases.append(
            (
                F32_BYTES * rows * (shape.n_embd + shape.n_vocab) + output_copy,
                f"4 B x {rows} x ({shape.n_embd} + {shape.n_vocab}) (logits)"
                + (f" + {output_copy} B LM head copied from host" if output_copy else ""),
            )
        )
    return max(phases)


def clip_compute_bytes(v: VisionShape) -> int:
    """CLIP's compute buffer for one image (clip.cpp, batch 1): the f32 scores of every head (P x P per
    head, P = patches + class token), five hidden-size tensors alive at the softmax (residual, norm,
    Q, K, V) and the f32 image: 32.88 MiB for ViT-L/14-336. Not calibrated against a sourced log."""
    p = v.patches + 1
    return F32_BYTES * (
        v.num_attention_heads * p * p + 5 * p * v.hidden_size + v.num_channels * v.image_size * v.image_size
    )


# --------------------------------------------------------------------------------------------------
# Vision through libmtmd: the mmproj file of Gemma 3, Qwen2-VL / Qwen2.5-VL and Mistral 3 (Pixtral)
# (LLaVA keeps the llava-cli-era model above: mmproj_tensors / mmproj_storage / clip_compute_bytes)
# --------------------------------------------------------------------------------------------------
# convert_hf_to_gguf.py --mmproj writes these --outtype values (ModelBase.prepare_tensors: ALL_F32,
# MOSTLY_F16, MOSTLY_BF16, MOSTLY_Q8_0; the TQ types are for ternary text models).
MMPROJ_FILE_TYPES = {"f32": F32, "fp32": F32, "f16": F16, "fp16": F16, "bf16": BF16, "q8_0": Q8_0}
# llama.cpp's CLIP graph got flash attention in ggml-org/llama.cpp PR #16837 (clip.cpp warmup(): with
# --flash-attn auto it is tried first and kept when the backend supports FLASH_ATTN_EXT); the version
# keys from November 2025 on have it, earlier builds always materialise the f32 scores.
CLIP_FLASH_ATTN_VERSIONS = frozenset({"2025-12", "2026-01", "2026-05", "2026-07", "current", "2026-06-server"})


@dataclass(frozen=True)
class ClipGraph:
    """What clip.cpp needs of a vision tower (tools/mtmd/clip.cpp load_hparams and the graph builders)."""

    projector: str  # clip.projector_type as load_hparams prints it
    hidden: int  # clip.vision.embedding_length (n_embd)
    heads: int
    n_ff: int
    gated: bool  # SwiGLU feed-forward (ffn_gate and ffn_up): Pixtral, Qwen2.5-VL
    windowed: bool  # Qwen2.5-VL window attention: an f32 n_pos x n_pos window mask is a graph input
    patch: int
    merge: int  # hparams.n_merge: patches per side merged into one token per side
    fixed_side: int | None  # a fixed square image (Gemma 3: 896); None for dynamic resolution
    min_tokens: int = 0  # set_limit_image_tokens(min, max): image_min/max_pixels = tokens x (patch x merge)^2
    max_tokens: int = 0
    warmup_tokens: int = 0  # set_warmup_n_tokens: the square image the start-up reservation is built for
    img_break: bool = False  # Pixtral: one [IMG_BREAK] embedding per row but the last (clip_n_output_tokens)

    @property
    def align(self) -> int:
        return self.patch * self.merge


def clip_graph(spec: AnySpec) -> ClipGraph | None:
    """The clip.cpp view of a Gemma 3, Qwen2(.5)-VL or Mistral 3 vision tower; None for other models.
    Limits from clip.cpp load_hparams (ggml-org/llama.cpp tools/mtmd/clip.cpp @ 0024aa74): GEMMA3
    n_merge 4; QWEN2VL / QWEN25VL n_merge 2, set_limit_image_tokens(8, 4096), set_warmup_n_tokens(46*46);
    PIXTRAL n_merge = spatial_merge_size, set_limit_image_tokens(8, 1024), set_warmup_n_tokens(256)."""
    from ..archs.gemma3 import Gemma3Spec
    from ..archs.mistral3 import Mistral3Spec
    from ..archs.qwen2_vl import QwenVLSpec

    if isinstance(spec, Gemma3Spec):
        v = spec.config.vision_config
        if not spec.config.pooling_fits:  # a config transformers builds but could not run (importers warn)
            raise UsageError(
                f"mm_tokens_per_image ({spec.config.mm_tokens_per_image}) does not pool the "
                f"{v.image_size // v.patch_size} patches per side evenly: clip.cpp's n_merge has no value"
            )
        # Gemma3MultiModalProjector pools the patch grid to mm_tokens_per_image: n_merge per side
        merge = (v.image_size // v.patch_size) // int(spec.config.mm_tokens_per_image**0.5)
        return ClipGraph(
            "gemma3",
            v.hidden_size,
            v.num_attention_heads,
            v.intermediate_size,
            False,
            False,
            v.patch_size,
            merge,
            v.image_size,
        )
    if isinstance(spec, QwenVLSpec):
        q = spec.config.vision_config
        q25 = spec.architecture == "qwen2_5_vl"
        return ClipGraph(
            "qwen2.5vl_merger" if q25 else "qwen2vl_merger",
            spec.vision_width,
            q.num_heads,
            spec.vision_mlp,
            q25,
            q25,
            q.patch_size,
            q.spatial_merge_size,
            None,
            8,
            4096,
            46 * 46,
        )
    if isinstance(spec, Mistral3Spec):
        p = spec.config.vision_config
        return ClipGraph(
            "pixtral",
            p.hidden_size,
            p.num_attention_heads,
            p.intermediate_size,
            True,
            False,
            p.patch_size,
            spec.config.spatial_merge_size,
            None,
            8,
            1024,
            256,
            img_break=True,
        )
    return None


def mmproj_file_tensors(spec: AnySpec, tensors: list[Tensor]) -> list[Tensor]:
    """The tensors convert_hf_to_gguf.py --mmproj writes: the whole vision tower and projector, with
    Qwen2VLVisionModel.modify_tensors splitting the fused qkv into q, k, v and the Conv3d patch kernel
    into two Conv2d kernels (v.patch_embd.weight and .weight.1); Gemma3VisionModel.filter_tensors
    drops a SigLIP pooling head; LlavaVisionModel (Mistral 3) adds the [IMG_BREAK] row of the text
    embedding as v.token_embd.img_break."""
    arch = spec.architecture
    out: list[Tensor] = []
    for t in tensors:
        if t.component not in MMPROJ or (arch == "gemma3" and t.name.startswith("vision.head.")):
            continue
        if arch in ("qwen2_vl", "qwen2_5_vl") and ".attn_qkv." in t.name:
            third = (t.shape[0] // 3, *t.shape[1:])
            out += [
                replace(t, name=t.name.replace("attn_qkv", part), shape=third)
                for part in ("attn_q", "attn_k", "attn_v")
            ]
        elif arch in ("qwen2_vl", "qwen2_5_vl") and t.role == "conv":
            h, c, frames, p, p2 = t.shape
            out += [replace(t, name=f"{t.name}{suffix}", shape=(h, c, p, p2)) for suffix in ("", ".1")[:frames]]
        else:
            out.append(t)
    if arch == "mistral3":
        out.append(Tensor("vision.token_embd.img_break", "projector", (archs.geometry(spec).hidden_size,), "other"))
    return out


def mmproj_file_storage(spec: AnySpec, tensors: list[Tensor], dtype_name: str) -> list[StorageType]:
    """Each mmproj tensor's type under convert_hf_to_gguf.py --outtype `dtype_name`
    (ModelBase.prepare_tensors): 1-D tensors f32; MmprojModel.tensor_force_quant keeps the patch
    kernel and Pixtral's patch merger f16 in an f16 file and f32 otherwise; Gemma3VisionModel keeps
    its `.embeddings.` (patch kernel, its bias, positions) f32 and mm.input_projection f16 (issue
    #13025); position embeddings are f32 (V_ENC_EMBD_POS); q8_0 falls back to f16 for rows that are
    not whole 32-element blocks (gguf.quants.quantize raises QuantError)."""
    base = MMPROJ_FILE_TYPES.get(dtype_name.lower())
    if base is None:
        raise UsageError(
            f"convert_hf_to_gguf.py writes {spec.architecture} mmproj files as f32, f16, bf16 or q8_0 "
            f"(--mmproj-dtype {dtype_name!r})"
        )
    gemma3 = spec.architecture == "gemma3"
    out: list[StorageType] = []
    for t in tensors:
        force: StorageType | None = None
        if gemma3 and t.name.startswith("projector.mm_input_projection"):
            force = F16
        elif gemma3 and (t.role in ("conv", "pos_embd") or t.name == "vision.patch_embd.bias"):
            force = F32
        elif t.role == "conv" or t.name == "projector.patch_merger.weight":
            force = F16 if base is F16 else F32
        if len(t.shape) <= 1:
            out.append(F32)
        elif force is not None:
            out.append(force)
        elif t.role == "pos_embd":
            out.append(F32)
        else:
            out.append(base if base.block_size == 1 or t.row % base.block_size == 0 else F16)
    return out


def mmproj_file_bytes(spec: AnySpec, dtype_name: str = "f16") -> int:
    """The mmproj file's tensor bytes, unaligned: clip_model_loader's `model size` (load_hparams prints it in MiB)."""
    mm = mmproj_file_tensors(spec, model_tensors(spec))
    return sum(s.nbytes(t.numel) for t, s in zip(mm, mmproj_file_storage(spec, mm, dtype_name), strict=True))


# clip.cpp's keys of an mmproj file (tools/mtmd/clip-impl.h: KEY_PROJ_TYPE "clip.projector_type",
# KEY_N_EMBD "clip.%s.embedding_length", KEY_N_HEAD "clip.%s.attention.head_count", KEY_PATCH_SIZE
# "clip.%s.patch_size", KEY_IMAGE_SIZE "clip.%s.image_size", KEY_N_BLOCK "clip.%s.block_count"), the
# ones checked against the model's vision tower (ClipGraph's field for each).
MMPROJ_VISION_KEYS = {
    "clip.vision.embedding_length": "hidden",
    "clip.vision.attention.head_count": "heads",
    "clip.vision.patch_size": "patch",
}


@dataclass(frozen=True)
class MmprojFile:
    """The user's mmproj GGUF (--mmproj FILE) as clip.cpp loads it: the projector, the vision keys and
    each tensor's (name, ggml type, row length, exact bytes) from the file's tensor table."""

    path: str
    projector: str | None
    vision: tuple[tuple[str, int], ...]
    tensors: tuple[tuple[str, str, int, int], ...]

    def value(self, key: str) -> int | None:
        return dict(self.vision).get(key)

    def device_bytes(self, on_gpu: bool) -> int:
        """The weights' backend buffer: every tensor aligned (128 B on CUDA, 32 B on the host), a quantized
        tensor on CUDA padded to whole MATRIX_ROW_PADDING rows (as cuda_tensor_bytes)."""
        from ..ggml_types import GGML_TYPES

        blocks = {name: (block, nbytes) for name, block, nbytes in GGML_TYPES.values()}
        sizes = []
        for _, dtype, row, nbytes in self.tensors:
            block, block_bytes = blocks.get(dtype, (1, 0))
            if on_gpu and block > 1 and row % MATRIX_ROW_PADDING:
                nbytes += (MATRIX_ROW_PADDING - row % MATRIX_ROW_PADDING) // block * block_bytes
            sizes.append(nbytes)
        return aligned_sum(sizes, GGML_CUDA_ALIGNMENT if on_gpu else GGML_CPU_ALIGNMENT)


def mmproj_mismatch(mf: MmprojFile, cg: ClipGraph, model: str) -> str | None:
    """Why the user's mmproj file does not belong to the model (its projector or vision tower differs), or None."""
    if mf.projector is not None and mf.projector != cg.projector:
        return (
            f"{mf.path}: a {mf.projector!r} projector (clip.projector_type), but {model} needs {cg.projector!r}: "
            "this mmproj file belongs to another model"
        )
    for key, attr in MMPROJ_VISION_KEYS.items():
        got, want = mf.value(key), getattr(cg, attr)
        if got is not None and got != want:
            return f"{mf.path}: {key} is {got}, {model}'s vision tower has {want}: this mmproj file belongs to another model"
    return None


def llava_mmproj_mismatch(mf: MmprojFile, vision: VisionShape, model: str) -> str | None:
    """mmproj_mismatch for a LLaVA tower: llava's convert_image_encoder_to_gguf.py writes clip.projector_type
    "mlp" (clip.cpp reads a file without the key as PROJECTOR_TYPE_MLP too)."""
    if mf.projector is not None and mf.projector != "mlp":
        return (
            f"{mf.path}: a {mf.projector!r} projector (clip.projector_type), but {model} needs LLaVA's 'mlp': "
            "this mmproj file belongs to another model"
        )
    wants = {
        "clip.vision.embedding_length": vision.hidden_size,
        "clip.vision.attention.head_count": vision.num_attention_heads,
        "clip.vision.image_size": vision.image_size,
    }
    for key, want in wants.items():
        got = mf.value(key)
        if got is not None and got != want:
            return f"{mf.path}: {key} is {got}, {model}'s vision tower has {want}: this mmproj file belongs to another model"
    return None


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5)  # std::round on the positive values calc_size_preserved_ratio sees


def clip_image(cg: ClipGraph, image_size: tuple[int, int] | None, warmup: bool = False) -> tuple[int, int]:
    """(height, width) of the image clip.cpp encodes: Gemma 3's fixed square; for dynamic resolution
    mtmd-image.cpp calc_size_preserved_ratio (align = patch x n_merge, each side rounded to it, then scaled
    into image_min/max_pixels); without an image size the largest square llama.cpp accepts, or with
    `warmup` the square of set_warmup_n_tokens that clip.cpp reserves its buffer for at start-up."""
    if cg.fixed_side is not None:
        return cg.fixed_side, cg.fixed_side
    a = cg.align
    if warmup or image_size is None:
        side = math.isqrt(cg.warmup_tokens if warmup else cg.max_tokens) * a
        return side, side
    lo, hi = cg.min_tokens * a * a, cg.max_tokens * a * a
    height, width = image_size
    h = max(a, _round_half_away(height / a) * a)
    w = max(a, _round_half_away(width / a) * a)
    if h * w > hi:
        beta = math.sqrt(height * width / hi)
        h, w = max(a, math.floor(height / beta / a) * a), max(a, math.floor(width / beta / a) * a)
    elif h * w < lo:
        beta = math.sqrt(lo / (height * width))
        h, w = math.ceil(height * beta / a) * a, math.ceil(width * beta / a) * a
    return h, w


def clip_output_tokens(cg: ClipGraph, height: int, width: int) -> int:
    """clip_n_output_tokens: the embeddings one image puts in the llama context (positions of n_ctx):
    patches / n_merge^2; Pixtral adds one [IMG_BREAK] per row but the last."""
    rows, cols = height // cg.align, width // cg.align
    return rows * cols + (rows - 1 if cg.img_break else 0)


def clip_graph_bytes(cg: ClipGraph, height: int, width: int, flash_attn: bool) -> tuple[int, str]:
    """The GPU compute buffer of one image's CLIP graph (P = patches of the image, f32 activations):

    - flash attention: the feed-forward peak 4 B x P x (n_ff + 3 x n_embd) (SwiGLU: gate, up and their
      product, 3 x n_ff) -- 121.25 MiB for Gemma 3's 896 px SigLIP, ggml-org/llama.cpp PR #22790's log;
    - without: the f32 scores of every head and six n_embd-wide tensors, 4 B x (heads x P^2 + 6 x P x
      n_embd) -- 1132 MiB for the same tower (gguf-parser-go issue #44);
    - Qwen2.5-VL adds its f32 P x P window-attention mask, a graph input alive through every layer.
    Exact for Gemma 3; for Qwen2-VL / Qwen2.5-VL within 0.5 % without flash attention and 8 % / 3 %
    above with it, for Pixtral 4 % below with it (tests/engines/test_llamacpp_mmproj.py names the logs)."""
    p = (height // cg.patch) * (width // cg.patch)
    ff = cg.n_ff * (3 if cg.gated else 1)
    ffn = F32_BYTES * p * (ff + 3 * cg.hidden)
    mask = F32_BYTES * p * p if cg.windowed else 0
    mask_detail = f" + 4 B x {p}^2 (window mask)" if mask else ""
    if flash_attn:
        return ffn + mask, (
            f"4 B x {p} patches x ({ff} ffn + 3 x {cg.hidden}){mask_detail}; flash attention: no scores"
        )
    scores = F32_BYTES * (cg.heads * p * p + 6 * p * cg.hidden)
    if scores >= ffn:
        return scores + mask, f"4 B x ({cg.heads} heads x {p}^2 scores + 6 x {p} x {cg.hidden}){mask_detail}"
    return ffn + mask, f"4 B x {p} patches x ({ff} ffn + 3 x {cg.hidden}){mask_detail}"


def mmproj_buffers(
    spec: AnySpec,
    tensors: list[Tensor],
    images: int,
    image_size: tuple[int, int] | None,
    opt: LlamaCppOptions,
    flash_attn: bool,
    n_ctx: int | None,
) -> tuple[list[Buffer], list[str], list[str]]:
    """The mmproj file (libmtmd, --mmproj) of a Gemma 3 / Qwen2-VL / Mistral 3 model: its weights on the
    GPU (clip_ctx loads them to the first GPU backend), the GPU compute buffer of one image's graph and
    the host compute buffer holding the f32 image (inp_raw: 9.19 MiB for 896 x 896 in PR #22790's log).
    Returns (buffers, notes, warnings)."""
    cg = clip_graph(spec)
    if cg is None:
        return [], [], []
    custom = opt.image_min_tokens is not None or opt.image_max_tokens is not None
    if cg.fixed_side is None and custom:
        cg = replace(
            cg, min_tokens=opt.image_min_tokens or cg.min_tokens, max_tokens=opt.image_max_tokens or cg.max_tokens
        )
        if cg.min_tokens > cg.max_tokens:
            raise UsageError(f"image_min_tokens {cg.min_tokens} is above the image's {cg.max_tokens} tokens at most")
    placement: Literal["gpu", "host"] = "gpu" if opt.mmproj_on_gpu else "host"
    if opt.mmproj_file is not None:  # the user's file: its tensor table's exact bytes
        mf = opt.mmproj_file
        wrong = mmproj_mismatch(mf, cg, str(getattr(spec, "id", spec.architecture)))
        if wrong:
            raise UsageError(wrong)
        weights = mf.device_bytes(opt.mmproj_on_gpu)
        weights_detail = f"{len(mf.tensors)} tensors of {mf.path} (its GGUF tensor table; clip_model_loader)"
    else:
        mm = mmproj_file_tensors(spec, tensors)
        storage = mmproj_file_storage(spec, mm, opt.mmproj_dtype)
        align = GGML_CUDA_ALIGNMENT if opt.mmproj_on_gpu else GGML_CPU_ALIGNMENT
        sizes = (
            cuda_tensor_bytes(t, s) if opt.mmproj_on_gpu else s.nbytes(t.numel)
            for t, s in zip(mm, storage, strict=True)
        )
        weights = aligned_sum(sizes, align)
        weights_detail = f"{len(mm)} tensors, {opt.mmproj_dtype} file (convert_hf_to_gguf.py --mmproj; clip_model_loader: model size)"
    clip_fa = flash_attn and opt.version in CLIP_FLASH_ATTN_VERSIONS
    h, w = clip_image(cg, image_size)
    graph, detail = clip_graph_bytes(cg, h, w, clip_fa)
    buffers = [
        Buffer(f"mmproj ({cg.projector})", weights, placement, "weights", weights_detail),
        Buffer(
            "CLIP compute buffer",
            graph,
            placement,
            "compute",
            f"one {w} x {h} image: {detail} (clip.cpp alloc_compute_meta)",
        ),
        Buffer(
            "CLIP compute buffer (CPU): the image",
            F32_BYTES * 3 * h * w,
            "host",
            "compute",
            f"4 B x 3 x {w} x {h} (inp_raw, f32)",
        ),
    ]
    tokens = clip_output_tokens(cg, h, w)
    notes = [
        f"{cg.projector} mmproj: a {w} x {h} image puts {tokens:,} embeddings in the llama context (positions "
        "of n_ctx, clip_n_output_tokens)"
        + (
            ""
            if cg.fixed_side or image_size
            else "; the largest square image llama.cpp accepts (give --image-size HxW)"
        )
    ]
    if cg.fixed_side is None:
        wh, ww = clip_image(cg, None, warmup=True)
        warm, _ = clip_graph_bytes(cg, wh, ww, clip_fa)
        notes.append(
            f"clip.cpp reserves {warm / 2**20:,.2f} MiB at start-up (warmup image {ww} x {wh}); a larger image "
            "re-allocates the buffer when it is encoded (ggml_backend_sched_alloc_graph)"
        )
    if cg.fixed_side is not None and custom:
        notes.append(
            f"--image-min/max-tokens do not apply to {cg.projector}: every image is {cg.fixed_side} x "
            f"{cg.fixed_side} px"
        )
    if not clip_fa:
        notes.append(
            "the CLIP graph runs without flash attention: its f32 attention scores grow with the square of "
            "the image's patches"
            + (
                ""
                if opt.version in CLIP_FLASH_ATTN_VERSIONS
                else " (llama.cpp gave clip.cpp flash attention in PR #16837, November 2025)"
            )
        )
    if n_ctx is not None and images * tokens >= n_ctx:  # libmtmd's own count (clip_n_output_tokens)
        raise UsageError(
            f"the context {n_ctx} leaves no room for text: {images} image(s) take {images * tokens} positions "
            "(llama.cpp's libmtmd)"
        )
    return buffers, notes, []


# --------------------------------------------------------------------------------------------------
# Mixture of experts: expert offload (--n-cpu-moe / -ot exps=CPU)
# --------------------------------------------------------------------------------------------------
# -ot: bounds on what the user gives (llama.cpp itself takes any number; these are far beyond real use)
MAX_TENSOR_OVERRIDES = 64
MAX_OVERRIDE_PATTERN_CHARS = 256


@lru_cache(maxsize=64)
def tensor_overrides(specs: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """The -ot PATTERN=BUFFER_TYPE overrides as compiled regexes. common/arg.cpp `--override-tensor`
    splits each comma-separated item at '=' and looks the buffer type up by name (ggml_backend_buft_name:
    "CPU", "CUDA0" ...); llama-model-loader.cpp `create_tensor` takes the first override whose pattern
    `std::regex_search` finds in the tensor's name. Only `=CPU` is modelled (host memory)."""
    items = [item for spec in specs for item in spec.split(",") if item]
    if len(items) > MAX_TENSOR_OVERRIDES:
        raise UsageError(f"--override-tensor: at most {MAX_TENSOR_OVERRIDES} patterns (got {len(items)})")
    patterns = []
    for item in items:
        pattern, eq, target = item.rpartition("=")
        if not eq or not pattern:
            raise UsageError(f"--override-tensor {item[:80]!r}: expected PATTERN=BUFFER_TYPE, e.g. exps=CPU")
        if len(pattern) > MAX_OVERRIDE_PATTERN_CHARS:
            raise UsageError(f"--override-tensor: a pattern of at most {MAX_OVERRIDE_PATTERN_CHARS} characters")
        if target != "CPU":
            raise UsageError(
                f"--override-tensor {item[:80]!r}: only =CPU (host memory) is modelled, not {target[:20]!r}"
            )
        try:
            patterns.append(re.compile(pattern))
        except re.error as e:
            raise UsageError(f"--override-tensor {pattern[:80]!r} is not a regular expression: {e}") from None
    return tuple(patterns)


def gguf_tensor_name(t: Tensor) -> str:
    """The tensor's name in a GGUF file: decoder layer N is `blk.N.` (gguf-py TENSOR_NAMES)."""
    return "blk." + t.name[len("decoder.") :] if t.name.startswith("decoder.") else t.name


# Tensors of no decoder layer that llama.cpp creates as layer 0's (src/models/gemma3n.cpp, gemma4.cpp load_arch_tensors:
# `tn(LLM_TENSOR_PER_LAYER_MODEL_PROJ, "weight", 0)`, and LLM_TENSOR_INFO makes both LLM_TENSOR_LAYER_REPEATING, so
# llama-model.cpp create_tensor takes `dev_layer.at(tn.bid)`): they sit on the first layer's device, not the output's
FIRST_LAYER_TENSORS = frozenset({"per_layer_model_proj.weight", "per_layer_proj_norm.weight"})


def input_table(t: Tensor) -> bool:
    """A lookup table of the input layer, which llama.cpp keeps in host memory (llama-model.cpp: "there is very
    little benefit to offloading the input layer, so always keep it on the CPU"): the token embedding and Gemma 3n /
    4's per-layer embeddings (src/llama-arch.cpp LLM_TENSOR_INFO: LLM_TENSOR_PER_LAYER_TOKEN_EMBD is
    LLM_TENSOR_LAYER_INPUT, GGML_OP_GET_ROWS; issue #14430: "the PLE of Gemma3N is loaded to CPU"). archs/gemma4.py
    and importers/gguf_generic.py give that table the embeddings component and the role "other"."""
    return t.role == "token_embd" or (t.component == "embeddings" and t.layer is None and t.role == "other")


def gguf_tensors(spec: AnySpec) -> list[Tensor]:
    """The model's tensors as its GGUF holds them: the per-layer embedding table has a row per vocabulary entry
    (src/models/gemma3n.cpp, gemma4.cpp create `per_layer_tok_embd` as {n_embd_per_layer x n_layer, n_vocab}), so
    convert_hf_to_gguf.py Gemma3NModel pads Gemma 3n's 262144 rows (vocab_size_per_layer_input) to vocab_size's
    262400 ("Padding per-layer embeddings ... adding 256 vision/audio token slots"). Built once per spec, as
    model_tensors (callers must not mutate the list): a ladder or a batch search makes dozens of estimates."""
    return archs.cached(spec, "gguf-tensors", lambda: _gguf_tensors(spec))


def per_layer_input_width(spec: AnySpec, tensors: list[Tensor]) -> int:
    """The row width of Gemma 3n / 4's per-layer embeddings' table (0: none), once per spec (`tensors`:
    gguf_tensors(spec))."""
    return archs.cached(
        spec,
        "gguf-per-layer-input-width",
        lambda: max((t.shape[-1] for t in tensors if input_table(t) and t.role != "token_embd"), default=0),
    )


def _gguf_tensors(spec: AnySpec) -> list[Tensor]:
    tensors = model_tensors(spec)
    vocab = next((t.shape[0] for t in tensors if t.role == "token_embd"), 0)
    return [
        replace(t, shape=(vocab, *t.shape[1:]))
        if input_table(t) and t.role != "token_embd" and t.shape[0] < vocab
        else t
        for t in tensors
    ]


def overridden_to_host(t: Tensor, opt: LlamaCppOptions) -> bool:
    return t.layer is not None and any(p.search(gguf_tensor_name(t)) for p in tensor_overrides(opt.override_tensor))


def expert_on_host(t: Tensor, opt: LlamaCppOptions) -> bool:
    """common/arg.cpp `--n-cpu-moe N`: one tensor override per layer i < N, `blk\\.i` +
    common.h LLM_FFN_EXPS_REGEX `\\.ffn_(up|down|gate)_(ch|)exps` = CPU, keeps
    the routed experts of the first N layers in host memory (`-ot exps=CPU`, `--cpu-moe`: every layer);
    the rest of those layers (attention, router, shared expert, norms, KV) stays on the GPU."""
    if opt.override_tensor and overridden_to_host(t, opt):
        return True
    if t.layer is None or t.layer >= opt.n_cpu_moe:
        return False
    # the pattern is a regex search on the GGUF name, so an expert's bias (gpt-oss
    # `blk.N.ffn_gate_exps.bias`) moves with it
    return t.role in EXPERT_ROLES or (t.role == "bias" and any(f".{r}." in t.name for r in EXPERT_ROLES))


def expert_host_detail(opt: LlamaCppOptions, n_layer: int) -> str:
    ot = ("the layers' tensors matching -ot " + ",".join(opt.override_tensor)) if opt.override_tensor else ""
    if not opt.n_cpu_moe:
        return ot
    return "; ".join(
        d for d in (f"the expert tensors of layers 0..{min(opt.n_cpu_moe, n_layer) - 1} ({opt.moe_flag()})", ot) if d
    )


def mla_kv_layer(
    mla: tuple[int, int, int, int, int], kv: StorageType, cells: int, v_less: bool = False
) -> tuple[int, str]:
    """Multi-head latent attention (DeepSeek V2/V3): convert_hf_to_gguf.py writes key_length =
    kv_lora_rank + qk_rope_head_dim and value_length = kv_lora_rank with head_count_kv 1, so each layer's
    cache holds a K row of 576 and a V row of 512 elements per cell (llama-kv-cache-unified.cpp,
    llama.cpp as vendored in llama-cpp-python 0.3.16) -- the latent, never the 128 decompressed heads;
    from PR #19067 (`v_less`) the V row is not stored (V is read from the latent in K)."""
    rank, rope = mla[0], mla[1]
    if v_less:
        return kv.nbytes(
            rank + rope
        ) * cells, f"({rank} + {rope} K latent; no V: PR #19067) x {cells} cells x {kv.name}"
    nbytes = (kv.nbytes(rank + rope) + kv.nbytes(rank)) * cells
    return nbytes, f"({rank} + {rope} K + {rank} V latent) x {cells} cells x {kv.name}"


def mla_note(mla: tuple[int, int, int, int, int], kv: StorageType) -> str:
    rank, rope, heads, qk, v = mla
    return (
        f"latent attention: the cache holds the compressed KV ({rank} + {rope} per token per layer), not "
        f"{heads} heads x ({qk} K + {v} V) = {heads * (qk + v)} elements, which an engine caching full heads "
        "(transformers 4.x) would keep"
    )


def check_dsa_version(g: archs.Geometry, version: LlamaCppVersion) -> None:
    """deepseek32 (DeepSeek-V3.2) loads only in builds with llama_kv_cache_dsa (ggml-org/llama.cpp PR #23346)."""
    from ..archs.caches import IndexerKeys

    keys = any(isinstance(k, IndexerKeys) for kinds in g.caches for k in kinds)
    if keys and version.dsa_indexer == "none" and g.gguf_architecture != "glm-dsa":
        raise UsageError(
            f"llama.cpp {version.key} ({version.since}) cannot load this sparse-attention (deepseek32) model: "
            "DeepseekV32ForCausalLM came with ggml-org/llama.cpp PR #23346 (late May 2026; --llamacpp-version "
            "2026-05 or later)"
        )


def with_indexer_keys(
    g: archs.Geometry,
    layer_kv: list[int],
    kv: StorageType,
    cells: int,
    dsa: Literal["none", "deepseek32", "every_layer", "full_layers"] = "full_layers",
) -> tuple[list[int], str | None]:
    """Layers whose cache kinds hold the DeepSeek sparse-attention indexer's keys (archs/caches.py IndexerKeys:
    deepseek32, glm-dsa): llama.cpp keeps them in a second cache of the same cells and K type
    (src/llama-kv-cache-dsa.cpp: llama_kv_cache_dsa creates kv_base and kv_ik, an llama_ik_cache, with type_k and
    kv_size; src/models/deepseek32.cpp stores one indexer key of indexer_head_size per cell and layer).

    By build (LlamaCppVersion.dsa_indexer): glm-dsa keeps no indexer keys before PR #25407 ("none", "deepseek32":
    plain latent attention), keeps them in every latent-attention layer from it ("every_layer": the "shared"
    layers too) and only in the "full" indexer layers -- the layers whose cache kinds hold IndexerKeys -- from PR
    #26474 ("full_layers")."""
    from ..archs.caches import IndexerKeys, MLALatent

    glm = g.gguf_architecture == "glm-dsa"
    if glm and dsa in ("none", "deepseek32"):
        return layer_kv, None
    extra = [sum(k.bytes(cells, 1, kv) for k in kinds if isinstance(k, IndexerKeys)) for kinds in g.caches]
    if not any(extra):
        return layer_kv, None
    dims = sorted({k.head_dim for kinds in g.caches for k in kinds if isinstance(k, IndexerKeys)})
    how = "llama_kv_cache_dsa: a second, indexer-key cache"
    if glm and dsa == "every_layer":
        # Before PR #26474 llama_kv_cache_dsa built kv_ik with the base cache's layer `filter` (ggml-org/llama.cpp
        # src/llama-kv-cache-dsa.cpp at 4309c8486a94): every attention layer. From it llama-model.cpp create_memory
        # passes `filter_lid = [&](uint32_t il) { return il < hparams.n_layer() && (arch != LLM_ARCH_GLM_DSA ||
        # hparams.is_indexer_full(il)); }` (llama.cpp cb7729cf1808, as quoted by a public LongCat patch script).
        per_layer = max(extra)
        extra = [per_layer if any(isinstance(k, MLALatent) for k in kinds) else 0 for kinds in g.caches]
        how += "; builds before ggml-org/llama.cpp PR #26474 allocate it in the shared-indexer layers too"
    note = (
        f"sparse attention: {sum(1 for e in extra if e)} layers also keep the indexer's keys, "
        f"{'/'.join(map(str, dims))} x {cells} cells x {kv.name} each ({how})"
    )
    return [b + e for b, e in zip(layer_kv, extra, strict=True)], note


def per_layer_kv_widths(g: archs.Geometry) -> list[tuple[int, int]] | None:
    """Each layer's (K, V) elements per cell where layers differ (Gemma 4's full-attention layers: global_head_dim
    512 and their own KV heads) or some attention model's layers keep no cache (Gemma 3n / 4's KV-shared layers);
    None when every layer is alike (then 2 x n_embd_k_gqa per layer). llama-kv-cache.cpp gives layer il a K of
    n_embd_k_gqa(il) and a V of n_embd_v_gqa(il) elements per cell (llama-hparams.cpp: n_embd_head_k(il) x
    n_head_kv(il), the sliding layers' head size n_embd_head_k_swa) and skips the layers without
    `hparams.has_kv(il)` (il >= n_layer_kv_from_start: "layer %3d: does not have KV cache"); the shared layers read
    an earlier layer's cache (llama-model.cpp create_memory `reuse`; the ggml-org/llama.cpp issue #21730 log: "layer
    29: reuse layer 23, is_swa = 0"). A hybrid's recurrent layers: hybrid_layer_kv; latent attention: mla_kv_layer."""
    if g.mla is not None:
        return None
    shapes = {(k.key_width, k.value_width) for k in g.self_layers}
    cacheless = not g.ssm_state and bool(g.self_layers) and any(k is None for k in g.self_kv)
    if len(shapes) <= 1 and not cacheless:
        return None
    return [(0, 0) if k is None else (k.key_width, k.value_width) for k in g.self_kv]


def per_layer_kv_detail(
    widths: list[tuple[int, int]], windows: list[int | None], cells: int, swa_cells: int, kv_name: str
) -> str:
    """How the per-layer cache is made: each (K + V, cells) of the layers that keep one, and the layers without."""
    groups: dict[tuple[int, int, int], int] = {}
    for (k, v), w in zip(widths, windows, strict=True):
        if k or v:
            key = (k, v, swa_cells if w else cells)
            groups[key] = groups.get(key, 0) + 1
    parts = [f"{n} x ({k} K + {v} V) x {c} cells" for (k, v, c), n in groups.items()]
    none = sum(1 for k, v in widths if not (k or v))
    return (
        "("
        + " + ".join(parts)
        + f") x {kv_name}"
        + (f"; {none} layers keep none (KV shared with an earlier layer: has_kv)" if none else "")
    )


def hybrid_layer_kv(g: archs.Geometry, layer_kv: list[int]) -> list[int]:
    """A hybrid (Jamba) keeps KV cells only for its attention layers (llama_memory_hybrid: the KV
    cache filters the non-recurrent layers); its Mamba layers hold recurrent state instead."""
    if not g.ssm_state:
        return layer_kv
    return [0 if k is None else b for k, b in zip(g.self_kv, layer_kv, strict=True)]


def recurrent_state_buffers(g: archs.Geometry, sequences: int, first_gpu: int) -> list[Buffer]:
    """State-space layers (llama-memory-recurrent.cpp, llama-hparams.cpp n_embd_r / n_embd_s): per layer
    and sequence (max(1, n_seq_max) cells) an f32 conv state of (d_conv - 1) x (d_inner + 2 x n_group x
    d_state) -- the oldest column is shifted out; n_group is 0 for Mamba-1, so d_inner channels -- and an
    f32 SSM state of d_state x d_inner (Mamba-2: d_inner = heads x head_dim), on the layer's device;
    none of it grows with n_ctx. A hybrid (Jamba, Granite 4.0-H) gives state only to its recurrent
    layers (llama_memory_hybrid filters them with hparams.is_recurrent)."""
    if not g.ssm_state:
        return []
    k = g.ssm_conv_kernel
    per_layer = [(c * (k - 1) // k if k else c) + s for c, s in g.ssm_state]
    gpu = sum(per_layer[first_gpu:]) * F32_BYTES * sequences
    host = sum(per_layer[:first_gpu]) * F32_BYTES * sequences
    layers = sum(1 for c, s in g.ssm_state if c or s)
    detail = (
        f"{layers} recurrent layers x (conv (d_conv - 1) x channels + SSM d_state x d_inner) x f32 x "
        f"{sequences} sequence(s), constant in n_ctx (llama_memory_recurrent)"
    )
    out = []
    if gpu:
        out.append(Buffer("recurrent state (CUDA0)", gpu, "gpu", "kv_self", detail))
    if host:
        out.append(Buffer("recurrent state (CPU)", host, "host", "kv_self", detail))
    return out


def moe_notes(spec: AnySpec, opt: LlamaCppOptions) -> list[str]:
    g = archs.geometry(spec)
    if opt.n_cpu_moe and not g.experts:
        raise UsageError(f"{opt.moe_flag().split()[0]} applies to mixture-of-experts models; {spec.id} has no experts")
    if not opt.n_cpu_moe:
        return []
    n = min(opt.n_cpu_moe, g.decoder_layers)
    which = f"every layer (0..{n - 1})" if n == g.decoder_layers else f"layers 0..{n - 1}"
    return [
        f"{opt.moe_flag()}: the expert tensors of {which} stay in host memory; a token reads "
        f"{g.experts_per_token} of their {g.experts} experts from system RAM (the CPU computes them), and "
        "batches of 32 tokens or more copy each expert tensor to the GPU for its matmul (op offload)"
    ]


# --------------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------------
# The cache kinds this profile sizes (archs/caches.py): keys and values per layer (llama_kv_cache, the iswa pair),
# the MLA latent, the DSA indexer's keys (with_indexer_keys), and the recurrent states llama_memory_recurrent keeps
# from n_embd_r / n_embd_s (llama-hparams.cpp): Mamba / Mamba-2, Gated DeltaNet (qwen3next / qwen35 files write
# ssm.* so that the Mamba-2 formula gives their conv and recurrent state: convert_hf_to_gguf.py Qwen3NextModel) and
# LFM2's short convolution. A model keeping any other kind is refused by kind, never by family name.
LLAMACPP_CACHE_KINDS = frozenset(
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


def _device_peak(est: EngineEstimate) -> int:
    """The fullest device's bytes as --fit measures them: llama_get_memory_breakdown's model + context + compute
    of each device (common/fit.cpp `dmd.mb.total()`), so not a CUDA overhead willitrun adds (kind "overhead")."""
    per_device: dict[int, int] = {}
    for b in est.buffers:
        if b.placement == "gpu" and b.kind != "overhead":
            per_device[b.device] = per_device.get(b.device, 0) + b.bytes
    return max(per_device.values(), default=0)


def _devices_used(est: EngineEstimate) -> tuple[int, int]:
    """(every device's bytes as --fit sums them, the model buffers' part of it)."""
    used = model = 0
    for b in est.buffers:
        if b.placement == "gpu" and b.kind != "overhead":
            used += b.bytes
            model += b.bytes if b.kind == "weights" else 0
    return used, model


@dataclass(frozen=True)
class FitContext:
    """The context a build with --fit takes when -c is not given (common/fit.cpp), and why.

    `n_ctx` is in the unit the estimate's context is (n_ctx for llama-server's unified cache, positions per
    sequence for --batch N); `gpu_layers` is what --fit's layer step would set when even its least context
    does not fit the card less its target (None: every layer stays on the GPU)."""

    n_ctx: int
    reason: str
    gpu_layers: int | None = None
    n_layer: int = 0
    n_cpu_moe: int | None = None  # a mixture of experts: the layers whose experts --fit moves to the host
    # the layer step's placement: the fullest GPU's bytes (as --fit measures them) and the host's, with what moved
    plan_gpu_bytes: int = 0
    plan_host_bytes: int = 0
    plan_how: str = ""


# (id(spec), engine, request, options, output_embd) -> (the spec, its FitContext): the search costs two
# estimates (the trained window and 4096) and is asked again by every command of one answer (main, its
# largest-context search, check's repeated rows, gpus' rows of one card): done once each. Bounded as
# cli/checks.py's memos are; the spec is held so that its id stays its own.
_FIT_MEMO: dict[tuple[object, ...], tuple[AnySpec, FitContext | None]] = {}
_FIT_MEMO_SIZE = 1 << 12


def fit_context(
    spec: AnySpec, request: Request, opt: LlamaCppOptions, engine: str = "llama.cpp", output_embd: bool = False
) -> FitContext | None:
    """What a build with --fit takes for n_ctx when neither -c nor --context is given, on the card
    `opt.vram_bytes` (None: no card, nothing to fit; also None for builds before --fit, whose -c default is
    4096: common.h `int32_t n_ctx = 4096`). Memoized per (spec, request, options).

    ggml-org/llama.cpp common/fit.cpp (PR #16653; read at 08033df02cc3), common_params_fit_impl:
    - `const uint32_t n_streams = cparams->kv_unified ? 1 : std::max<uint32_t>(1, cparams->n_seq_max);`
      `const bool n_ctx_auto = cparams->n_ctx == 0;` and, unset, `cparams->n_ctx = n_ctx_max` where
      `n_ctx_max = hp_nct * n_streams` (the trained window per stream);
    - step 1: `projected_free = dmd.free - dmd.mb.total()`; `if (projected_free_per_device[0] >= margins[0])`
      "no changes needed": the window is kept;
    - step 2: with `n_ctx_max > n_ctx_min_total` (`n_ctx_min * n_streams`, common.h fit_params_min_ctx 4096)
      it measures again at n_ctx_min_total and, when `sum_used_target > sum_projected_used_min_ctx`,
      `cparams->n_ctx += (n_ctx_max - n_ctx_min_total) * (sum_used_target - sum_projected_used_min_ctx) /
      (sum_projected_used - sum_projected_used_min_ctx);` then `const uint32_t align = 256 * n_streams;
      cparams->n_ctx = std::max(cparams->n_ctx - cparams->n_ctx % align, n_ctx_min_total);` -- one device
      returns there ("entire model can be fit by reducing context"), several subtract `(nd + 1) *
      model_per_layer / (hp_nex == 0 ? 2 : 6)` from the target first;
    - otherwise n_ctx stays n_ctx_min_total and step 3 moves layers to the host: "iteratively fill the back to
      front with dense layers" (the most layers whose device memory meets `targets[id] = free - margin`), which
      it does only while `mparams->n_gpu_layers` is the default ("n_gpu_layers already set by user ... abort").
    The card's whole memory (less --margin) stands for `dmd.free`, so every command -- `gpus` has no free
    memory -- takes the same context; a detected card with less free is judged TIGHT by the verdict."""
    if opt.vram_bytes is None or not LLAMACPP_VERSIONS[opt.version].fit:
        return None
    key = (id(spec), engine, request, opt, output_embd)
    hit = _FIT_MEMO.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    found = _fit_context(spec, request, opt, engine, output_embd)
    if len(_FIT_MEMO) >= _FIT_MEMO_SIZE:
        _FIT_MEMO.clear()
    _FIT_MEMO[key] = (spec, found)
    return found


class _Probe(NamedTuple):
    """What --fit reads of one test allocation (common_get_device_memory_data): the fullest device, every device's
    sum and its model part; and the plan's figures (the fullest GPU as willitrun compares it, the host)."""

    peak: int
    used: int
    model: int
    max_device: int
    host: int
    n_layer: int


# (id(spec), engine, request, options without the card, output_embd, n_ctx) -> (the spec, its probe): a probe does not
# depend on the card, so the two of every model (the window, 4096) and the layer step's are measured once for all
# the cards of `gpus` or `check --rows`; bounded as _FIT_MEMO is.
_PROBES: dict[tuple[object, ...], tuple[AnySpec, _Probe]] = {}


def _probe(spec: AnySpec, request: Request, opt: LlamaCppOptions, engine: str, output_embd: bool, n_ctx: int) -> _Probe:
    opt = replace(opt, vram_bytes=None)
    key = (id(spec), engine, request, opt, output_embd, n_ctx)
    hit = _PROBES.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    est = _llamacpp_estimate(spec, request, opt, engine=engine, n_ctx=n_ctx, output_embd=output_embd, room=False)
    used, model = _devices_used(est)
    found = _Probe(_device_peak(est), used, model, est.max_device_bytes, est.host_bytes, int(est.facts["n_layer"]))
    if len(_PROBES) >= _FIT_MEMO_SIZE:
        _PROBES.clear()
    _PROBES[key] = (spec, found)
    return found


def _fit_context(
    spec: AnySpec, request: Request, opt: LlamaCppOptions, engine: str, output_embd: bool
) -> FitContext | None:
    window = archs.geometry(spec).context_window
    if not window:
        return None
    vram = opt.vram_bytes
    assert vram is not None
    version = LLAMACPP_VERSIONS[opt.version]
    target = opt.fit_target_bytes if opt.fit_target_bytes is not None else LLAMACPP_FIT_TARGET_BYTES
    mib = target >> 20
    # the streams as the estimate resolves them: llama-server's -np auto is one unified cache; --batch N is N
    # sequences of --context positions each (the estimate multiplies); -np N without -kvu is N streams of n_ctx / N
    auto = opt.parallel is None and version.server_auto_parallel and request.batch <= 1
    if auto or opt.kv_unified:
        streams, per = 1, 1
    elif opt.parallel is None or opt.parallel == 1:
        streams, per = max(1, request.batch), 1
    else:
        streams, per = opt.parallel, opt.parallel
    n_ctx_max, n_ctx_min = window * per, LLAMACPP_FIT_MIN_CTX * per

    def measured(ctx: int, o: LlamaCppOptions = opt) -> _Probe:
        return _probe(spec, request, o, engine, output_embd, ctx)

    unit = "n_ctx" if per > 1 or streams == 1 else "positions per sequence"
    # -np N without a unified cache: N streams of the window each (n_ctx_max = hp_nct * n_streams)
    per_stream = f" x {per} streams" if per > 1 else ""
    shown = f"{window:,}{per_stream} = {n_ctx_max:,}" if per > 1 else f"{n_ctx_max:,}"
    if window <= LLAMACPP_FIT_MIN_CTX:
        return FitContext(
            n_ctx_max,
            f"{unit} {n_ctx_max:,}: the trained window{per_stream}, which llama.cpp's --fit takes when -c is not given and keeps "
            f"at or below its least context ({LLAMACPP_FIT_MIN_CTX:,}; common/fit.cpp)",
        )
    full = measured(n_ctx_max)
    gpus = max(1, opt.gpus)
    if full.peak <= vram - target:  # step 1: fits as it is
        return FitContext(
            n_ctx_max,
            f"{unit} {n_ctx_max:,}: the trained window{per_stream}, which llama.cpp's --fit takes when -c is not given and "
            f"keeps, as it fits the card less its {mib} MiB target (common/fit.cpp)",
        )
    used_full, model = full.used, full.model
    used_target = gpus * (vram - target)
    if gpus > 1:  # several devices: whole layers (dense) or whole tensors (MoE) waste some of each
        layers = min(opt.gpu_layers if opt.gpu_layers is not None else 1 << 30, lm_shape(spec).n_layer)
        used_target -= (gpus + 1) * (model // max(layers, 1)) // (6 if archs.geometry(spec).experts else 2)
    least = measured(n_ctx_min)
    used_min = least.used
    if used_target > used_min and used_full > used_min:
        ctx = n_ctx_min + (n_ctx_max - n_ctx_min) * (used_target - used_min) // (used_full - used_min)
        align = 256 * per  # 256 x n_streams of n_ctx: 256 positions per sequence
        ctx = max(ctx - ctx % align, n_ctx_min)
        return FitContext(
            ctx,
            f"{unit} {ctx:,}: llama.cpp's --fit shrank the trained window ({shown}) to what fits the card less "
            f"its {mib} MiB target (common/fit.cpp: interpolated between the window and {n_ctx_min:,}, rounded down "
            f"to a multiple of {align})",
        )
    # step 3: the least context, and layers to the host (not when -ngl, -ot or --n-cpu-moe place them already)
    n_layer = least.n_layer
    # several cards: --fit spreads layers by each device's free memory (not modelled: willitrun splits evenly)
    placed = opt.gpu_layers is not None or opt.n_cpu_moe or opt.cpu_moe or opt.override_tensor or gpus > 1
    why = (
        f"{unit} {n_ctx_min:,}: even at its least context llama.cpp's --fit does not meet the card less its "
        f"{mib} MiB target"
    )
    if placed or least.peak <= vram - target:
        return FitContext(n_ctx_min, why + " (common/fit.cpp)")
    budget = vram - target
    if archs.geometry(spec).experts:
        # a mixture of experts: --fit puts every expert tensor in host memory first ("for a MoE model, same as
        # dense model but with all MoE tensors in system memory") and then converts layers back to full layers
        # while they fit (step 4): as many layers' experts on the host as --n-cpu-moe N moves
        # the fewest layers whose experts move: the most m layers keeping theirs on the GPU, the peak near-affine
        # in m (memory.largest_within: a handful of probes, the same answer as a bisection)
        def kept(m: int) -> int:
            return measured(n_ctx_min, replace(opt, n_cpu_moe=n_layer - m)).peak

        m = largest_within(kept, budget, 0, n_layer)
        moe = n_layer - m
        if kept(m) <= budget:
            at = measured(n_ctx_min, replace(opt, n_cpu_moe=moe))
            return FitContext(
                n_ctx_min,
                why + f": it keeps {n_ctx_min:,} and moves the expert tensors of {moe} of {n_layer} layers to the "
                "host (as --n-cpu-moe "
                f"{moe}; common/fit.cpp steps 3 and 4)",
                None,
                n_layer,
                moe,
                at.max_device,
                at.host,
                f"with llama.cpp's --fit keeping the experts of {moe} of {n_layer} layers in host memory "
                f"(--n-cpu-moe {moe})",
            )
    ngl = largest_within(lambda n: measured(n_ctx_min, replace(opt, gpu_layers=n)).peak, budget, 0, n_layer + 1)
    moved = n_layer + 1 - ngl
    at = measured(n_ctx_min, replace(opt, gpu_layers=ngl))
    return FitContext(
        n_ctx_min,
        why + f": it keeps {n_ctx_min:,} and moves {moved} of {n_layer + 1} layers to the host (-ngl {ngl}; "
        "common/fit.cpp step 3, 'fill the back to front with dense layers')",
        ngl,
        n_layer,
        None,
        at.max_device,
        at.host,
        # -ngl 0: nothing of the model on the GPU (llama.cpp then runs on the CPU): no plan that uses the card
        f"with llama.cpp's --fit moving {moved} of {n_layer + 1} layers to the host (-ngl {ngl})" if ngl else "",
    )


def check_architecture(spec: AnySpec, engine: str) -> None:
    g = archs.geometry(spec)
    refusal = g.refusals.get(engine)
    if refusal:
        raise UsageError(refusal)
    missing = caches.unmodelled(g.caches, LLAMACPP_CACHE_KINDS)
    if missing:
        raise UsageError(
            f"{engine}: the profile does not size {' or '.join(missing)} caches yet, which this model keeps"
        )


def trained_window_warning(window: int | None, n_ctx_seq: int) -> list[str]:
    """What llama.cpp says when each sequence's context is beyond the model's trained window (GGUF
    `context_length`, the config's max_position_embeddings): llama-context.cpp `LLAMA_LOG_WARN("n_ctx_seq
    (%u) > n_ctx_train (%u) -- possible training context overflow")`; llama-server then caps each slot's
    context at n_ctx_train (tools/server/server-context.cpp: "the slot context (%d) exceeds the training
    context of the model (%d) - capping") while the KV cache keeps every cell asked for. The same words as
    the transformers path (memory.estimate_resolved)."""
    if not window or n_ctx_seq <= window:
        return []
    return [
        f"context {n_ctx_seq} is beyond the model's trained window of {window} tokens (llama.cpp: "
        "'possible training context overflow'; llama-server caps each slot at the trained window, the KV "
        "cache is still allocated for all of it)"
    ]


def offloaded_layers(ngl: int, n_layer: int, output_first: bool) -> tuple[int, bool]:
    """(first repeating layer on the GPU, whether the output layer is) for `-ngl ngl`, 0 <= ngl <= n_layer + 1.
    Builds since PR #18148 (`output_first`): i_gpu_start = max(n_layer + 1 - ngl, 0), the output layer with
    the first offloaded slot; before: i_gpu_start = max(n_layer - ngl, 0), the output layer last."""
    if output_first:
        return min(max(n_layer + 1 - ngl, 0), n_layer), ngl >= 1
    return max(n_layer - ngl, 0), ngl > n_layer


def _place_weights(
    tensors: list[Tensor],
    storage: list[StorageType],
    first_gpu: int,
    output_on_gpu: bool,
    last_device: int,
    device_of: Callable[[int], int],
    gpus: int,
    opt: LlamaCppOptions,
) -> tuple[dict[int, int | None], int | None, int, int, int, int]:
    """The model buffers' bytes, each tensor 128-byte aligned: (per GPU, host layers and output layer,
    token embedding; None for a buffer with no tensor), the output tensor's bytes, the largest host
    weight, and the file span an mmapped host buffer covers (see `mapped_span`)."""
    gpu_sizes: dict[int, list[int]] = {d: [] for d in range(gpus)}
    host_sizes: list[int] = []
    embd_sizes: list[int] = []
    output_tensor_bytes = 0
    largest_host_weight = 0
    file_sizes: list[int] = []  # every tensor of the GGUF file, in order
    last_host = -1  # index in file_sizes of the last tensor kept in host memory
    tied = not any(t.role == "output" for t in tensors)
    for t, s in zip(tensors, storage, strict=True):
        if t.component in MMPROJ:
            continue  # the mmproj file, below
        nbytes = cuda_tensor_bytes(t, s)
        host_nbytes = s.nbytes(t.numel)  # no CUDA row padding in host memory
        file_sizes.append(host_nbytes)
        layer = 0 if gguf_tensor_name(t) in FIRST_LAYER_TENSORS else t.layer
        on_host = (
            input_table(t)
            or (layer is None and not output_on_gpu)
            or (layer is not None and (layer < first_gpu or expert_on_host(t, opt)))
        )
        if on_host:
            last_host = len(file_sizes) - 1
        if input_table(t) and t.role != "token_embd":
            embd_sizes.append(host_nbytes)  # the per-layer embeddings' table: rows looked up on the CPU
            continue
        if t.role == "token_embd":
            embd_sizes.append(host_nbytes)
            if tied:
                # llama.cpp asks for `output` and, absent, re-creates token_embd as TENSOR_DUPLICATED;
                # in the same CPU buffer type it returns the existing tensor (llama-model-loader.cpp
                # `create_tensor`: "if duplicated, check if the original tensor was allocated in the
                # same buffer type context"), so only an offloaded output layer holds a second copy
                # (a repacked CPU buffer type such as CPU_AARCH64 would copy it too: not modelled).
                output_tensor_bytes = nbytes
                if output_on_gpu:
                    gpu_sizes[last_device].append(nbytes)
            continue
        if layer is None:  # final norms and the LM head: the output layer
            if t.role == "output":
                output_tensor_bytes = nbytes
            if output_on_gpu:
                gpu_sizes[last_device].append(nbytes)
            else:
                host_sizes.append(host_nbytes)
        elif layer >= first_gpu and not expert_on_host(t, opt):
            gpu_sizes[device_of(layer)].append(nbytes)
        else:
            host_sizes.append(host_nbytes)
            largest_host_weight = max(largest_host_weight, nbytes)
    align = GGML_CUDA_ALIGNMENT

    def total(sizes: list[int]) -> int | None:
        return aligned_sum(sizes, align) if sizes else None

    host_total = aligned_sum(host_sizes, GGML_CPU_ALIGNMENT) if host_sizes else None
    return (
        {d: total(v) for d, v in gpu_sizes.items()},
        host_total,
        aligned_sum(embd_sizes, GGML_CPU_ALIGNMENT),
        output_tensor_bytes,
        largest_host_weight,
        mapped_span(file_sizes, last_host),
    )


def mapped_span(file_sizes: list[int], last_host: int) -> int:
    """What an mmapped load prints as `CPU_Mapped model buffer size`: llama-model-loader.cpp maps the
    file range from the first to the last tensor of the CPU buffer type (`ggml_backend_cpu_buffer_from_ptr
    (addr + first, last - first)`), so tensors stored between host tensors -- the GPU layers'
    attention between the experts kept by --n-cpu-moe -- are inside it. The tensor order is the
    inventory's, the GGUF writers' (token_embd, blk.0 ... blk.N-1, output); 32-byte aligned (GGUF)."""
    return aligned_sum(file_sizes[: last_host + 1], GGML_CPU_ALIGNMENT) if last_host >= 0 else 0


def llamacpp_estimate(
    spec: AnySpec,
    request: Request,
    options: LlamaCppOptions | None = None,
    *,
    engine: str = "llama.cpp",
    n_ctx: int | None = None,
    extra: tuple[Buffer, ...] = (),
    notes: tuple[str, ...] = (),
    output_embd: bool = False,
) -> EngineEstimate:
    """Every buffer llama.cpp allocates for `spec` (see the module docstring), at the context asked (`n_ctx`,
    else `request.context`); with none asked, at the context the build takes without -c:
    - builds with --fit (PR #16653) on a card (`options.vram_bytes`, which every command sets from --gpu /
      --vram / the card of a `gpus` row): the trained window, shrunk by --fit to what fits the card less its
      target (fit_context); the answer says so (facts `context_source` "fit" and `context_reason`);
    - builds before --fit: 4096 (common.h `int32_t n_ctx = 4096`, also memory.DEFAULT_CONTEXT);
    - no card (library use without vram_bytes): 4096, willitrun's default, with the build's own choice (the
      trained window, which --fit would shrink to a card) in a note and the fact `build_default_n_ctx`."""
    kw = {"engine": engine, "extra": extra, "notes": notes, "output_embd": output_embd}
    opt = options or LlamaCppOptions()
    if n_ctx or request.context:
        return _llamacpp_estimate(spec, request, options, n_ctx=n_ctx, **kw)  # type: ignore[arg-type]
    fitted = fit_context(spec, request, opt, engine, output_embd) if not extra else None
    if fitted is None:
        est = _llamacpp_estimate(spec, request, options, **kw)  # type: ignore[arg-type]
        window = archs.geometry(spec).context_window
        if not LLAMACPP_VERSIONS[opt.version].fit or not window or window == est.context_tokens:
            return est
        note = (
            f"without a card willitrun answers at {est.context_tokens:,}; a build with --fit takes the trained window "
            f"({window:,}) when -c is not given and shrinks it to what fits the card (PR #16653): give --gpu or --vram"
        )
        return replace(
            est,
            notes=(*est.notes, note),
            facts={**est.facts, "build_default_n_ctx": window, "context_source": "default"},
        )
    try:
        est = _llamacpp_estimate(spec, request, options, n_ctx=fitted.n_ctx, **kw)  # type: ignore[arg-type]
    except UsageError as err:  # the media do not fit the context --fit picks: say who picked it
        if "leaves no room for text" not in str(err):
            raise
        raise UsageError(f"{err} (the context llama.cpp's --fit picks on this card; give --context)") from None
    facts: dict[str, int | bool | str] = {
        **est.facts,
        "build_default_n_ctx": fitted.n_ctx,
        "context_source": "fit",
        "context_reason": fitted.reason,
    }
    if fitted.gpu_layers is not None:
        facts["fit_gpu_layers"] = fitted.gpu_layers
    if fitted.n_cpu_moe is not None:
        facts["fit_n_cpu_moe"] = fitted.n_cpu_moe
    if fitted.plan_how:  # what the build itself does when the whole model does not fit (Engine.plan)
        facts["fit_plan_gpu_bytes"] = fitted.plan_gpu_bytes
        facts["fit_plan_host_bytes"] = fitted.plan_host_bytes
        facts["fit_plan_how"] = fitted.plan_how
    return replace(est, notes=(*est.notes, fitted.reason), facts=facts)


def _llamacpp_estimate(
    spec: AnySpec,
    request: Request,
    options: LlamaCppOptions | None = None,
    *,
    engine: str = "llama.cpp",
    n_ctx: int | None = None,
    extra: tuple[Buffer, ...] = (),
    notes: tuple[str, ...] = (),
    output_embd: bool = False,
    room: bool = True,
) -> EngineEstimate:
    """Every buffer llama.cpp allocates for `spec` (see the module docstring); `room` False: a --fit probe, which
    measures memory at a context whatever the media take of it (common/fit.cpp loads no prompt)."""
    opt = options or LlamaCppOptions()
    check_architecture(spec, engine)
    r = resolve(spec, request)
    version = LLAMACPP_VERSIONS[opt.version]
    check_dsa_version(archs.geometry(spec), version)
    fa = version.flash_attn_default if opt.flash_attn is None else opt.flash_attn
    pad_to = opt.kv_pad or (version.kv_pad_fa if fa else version.kv_pad)
    out_notes = list(notes)
    asked = n_ctx or request.context or default_context(r)
    warnings: list[str] = []
    if request.beams > 1:
        warnings.append("llama.cpp decodes without beam search: --beams is ignored")
    if opt.parallel is None:
        if version.server_auto_parallel and request.batch <= 1:
            opt = replace(opt, parallel=LLAMA_SERVER_AUTO_PARALLEL, kv_unified=True)
            out_notes.append(
                f"llama-server's default -np auto: {LLAMA_SERVER_AUTO_PARALLEL} slots sharing one unified "
                "cache (tools/server/server.cpp, PR #16736); llama-cli and --parallel 1 keep one sequence"
            )
        else:
            opt = replace(opt, parallel=1)
    parallel: int = opt.parallel or 1
    # the media must leave room for text in the context asked (--context, ollama's num_ctx, --fit's pick): positions
    # per sequence with --batch, n_ctx with -np (the largest-context search starts just above the media's positions)
    if room and clip_graph(spec) is None:  # a vision tower through libmtmd: its own count, in mmproj_buffers
        check_room_for_text(r, asked, "--context" if request.context else "the context")
    if request.batch > 1 and parallel == 1:
        # --context is positions per sequence: N sequences of it are llama.cpp's -np N -c (N x context)
        opt = replace(opt, parallel=request.batch)
        parallel = request.batch
        asked *= request.batch
        out_notes.append(
            f"--batch {request.batch} read as -np {request.batch} -c {asked}: each sequence keeps "
            f"{asked // request.batch} positions of the shared cache"
        )
    cells, per_seq = kv_cells(asked, parallel, pad_to, opt.version, opt.kv_unified)
    warnings += trained_window_warning(r.att.context_window, asked if opt.kv_unified else asked // parallel)
    if cells != asked:
        out_notes.append(
            f"n_ctx {asked} allocated as {cells} cells (padded to a multiple of {pad_to}: {version.source})"
        )
    if parallel > 1:
        out_notes.append(
            f"{parallel} sequences share one cache of {cells} cells"
            + ("" if opt.kv_unified else f": {per_seq} positions each")
        )
    shape = lm_shape(spec)
    ub = min(opt.n_ubatch, cells)

    g = archs.geometry(spec)
    tensors = gguf_tensors(spec)
    storage = archs.cached(spec, f"gguf:{r.dtype.name}", lambda: gguf_storage(tensors, r.dtype, spec))
    n_layer = shape.n_layer
    ngl = n_layer + 1 if opt.gpu_layers is None else min(opt.gpu_layers, n_layer + 1)
    first_gpu, output_on_gpu = offloaded_layers(ngl, n_layer, version.output_first)
    gpu_layer_count = n_layer - first_gpu

    def device_of(layer: int) -> int:
        # even layer split over the GPUs (llama.cpp's default splits by free memory; equal cards: even)
        return min((layer - first_gpu) * opt.gpus // max(gpu_layer_count, 1), opt.gpus - 1)

    # with no repeating layer offloaded, an output layer on the GPU is on the first (llama.cpp: layer_gpu of
    # (n_layer - i_gpu_start) / act_gpu_layers = 0)
    last_device = device_of(n_layer - 1) if gpu_layer_count else 0 if output_on_gpu else opt.gpus - 1
    # The weights' placement depends on the type and -ngl, not the context: computed once per spec
    # (a `check --rows` of 1,000 rows or a context bisection re-uses it).
    placed = archs.cached(
        spec,
        f"llamacpp-place:{r.dtype.name}:{first_gpu}:{output_on_gpu}:{opt.gpus}:{opt.n_cpu_moe}:{opt.override_tensor}",
        lambda: _place_weights(tensors, storage, first_gpu, output_on_gpu, last_device, device_of, opt.gpus, opt),
    )
    gpu_sizes, host_bytes, embd_bytes, output_tensor_bytes, largest_host_weight, mapped_bytes = placed
    buffers: list[Buffer] = []
    for d, nbytes in gpu_sizes.items():
        if nbytes is not None:
            buffers.append(
                Buffer(
                    f"model buffer (CUDA{d})",
                    nbytes,
                    "gpu",
                    "weights",
                    "GGUF tensors of the offloaded layers"
                    + (" and the output layer" if output_on_gpu and d == last_device else "")
                    + ", each 128-byte aligned (llm_load_tensors: CUDA0 buffer size)",
                    d,
                )
            )
    buffers.append(
        Buffer(
            "model buffer (CPU): token embedding",
            embd_bytes,
            "host",
            "weights",
            "token_embd stays in host memory: only rows are looked up (llama-model.cpp: the input "
            "layer is always on the CPU)"
            + (
                "; so does the per-layer embeddings' table, per_layer_token_embd (LLM_TENSOR_LAYER_INPUT)"
                if per_layer_input_width(spec, tensors)
                else ""
            ),
        )
    )
    if host_bytes is not None:
        buffers.append(
            Buffer(
                "model buffer (CPU): layers kept on the host",
                host_bytes,
                "host",
                "weights",
                "; ".join(
                    d
                    for d in (
                        (f"layers 0..{first_gpu - 1}" if first_gpu else "the output layer" if not output_on_gpu else "")
                        + (" and the output layer" if first_gpu and not output_on_gpu else "")
                        + (
                            f" stay in host memory (-ngl {ngl} of {n_layer + 1})"
                            if first_gpu or not output_on_gpu
                            else ""
                        ),
                        expert_host_detail(opt, n_layer),
                    )
                    if d
                ),
            )
        )

    # KV cache: per layer on the layer's device.
    kv_layer = 2 * r.kv.nbytes(shape.kv_width) * cells
    kv_detail = f"2 x {shape.kv_width} x {cells} cells x {r.kv.name}"
    if g.mla is not None and not opt.mla_latent:
        # llama-model.cpp: without attn_k_b (n_embd_head_k_mla = 0) the layer caches n_head_kv = n_head heads of
        # key_length (qk_nope + qk_rope) and value_length: ollama 0.32.13 printed 540.00 MiB for
        # DeepSeek-Coder-V2-Lite's 27 layers x 2048 cells = 27 x 16 x (192 + 128) x 2 B x 2048
        heads, qk, v = g.mla[2], g.mla[3], g.mla[4]
        kv_layer = (r.kv.nbytes(heads * qk) + r.kv.nbytes(heads * v)) * cells
        kv_detail = f"{heads} heads x ({qk} K + {v} V) x {cells} cells x {r.kv.name} (GGUF without attn_k_b)"
        out_notes.append(
            "a GGUF converted before ggml-org/llama.cpp PR #12801 (April 2025): no latent attention in the cache, "
            f"every head's K and V ({heads} x ({qk} + {v}) per cell and layer)"
        )
    elif g.mla is not None:
        kv_layer, kv_detail = mla_kv_layer(g.mla, r.kv, cells, version.mla_v_less)
        out_notes.append(mla_note(g.mla, r.kv))
        out_notes.append(
            "a GGUF converted before ggml-org/llama.cpp PR #12801 (April 2025) has no attn_k_b/attn_v_b "
            "tensors (print_info: n_embd_head_k_mla = 0); llama.cpp then caches full heads, "
            f"{g.mla[2]} x ({g.mla[3]} K + {g.mla[4]} V) per cell and layer: DeepSeek-Coder-V2-Lite printed "
            "540.00 MiB for 27 layers x 2048 cells in f16"
        )
    swa_cells = cells
    windows = [
        k.window if k is not None and k.kind in ("sliding", "chunked") and g.llamacpp_swa else None for k in g.self_kv
    ]
    if any(windows) and not opt.swa_full:
        # llama-kv-cache-iswa.cpp (llama_kv_cache_iswa): the non-SWA layers get n_ctx cells, the SWA
        # layers GGML_PAD(min(n_ctx, n_swa x (unified ? n_seq_max : 1) + n_ubatch), 256) cells
        # ("the SWA cache is always padded to 256", issue #17037); --swa-full gives them n_ctx.
        n_swa = max(w for w in windows if w)
        if version.kv_streams and parallel > 1 and not opt.kv_unified:
            per_stream = pad(min(per_seq, n_swa + ub), 256)
            swa_cells = per_stream * parallel
            how = f"{parallel} streams x {per_stream} (window {n_swa} + ubatch {ub} of each stream's {per_seq})"
        else:
            windows_kept = parallel if opt.kv_unified else 1
            swa_cells = pad(min(cells, n_swa * windows_kept + ub), 256)
            how = f"window {n_swa}" + (f" x {windows_kept} sequences" if windows_kept > 1 else "") + f" + ubatch {ub}"
        out_notes.append(
            f"sliding-window layers ({sum(1 for w in windows if w)} of {n_layer}) keep {swa_cells} cells: "
            f"{how}, padded to 256 (llama_kv_cache_iswa; --swa-full keeps {cells})"
        )
    # The sliding layers take -ctk/-ctv like the rest (llama-kv-cache-iswa.cpp builds kv_swa with the same type_k /
    # type_v as kv_base). Only the builds between ggml-org/llama.cpp PR #21277 "kv-cache : do not quantize SWA KV
    # cache" (merged 2026-04-01) and its revert, PR #21332 (2026-04-02: "In some cases the SWA cache actually takes
    # significant portion of memory"), kept them in F16 -- a day of builds just before b8643 (2026-04-03, issue
    # #21394), older than ollama's llama-server runner (ollama#16031, 2026-05-29), so no LLAMACPP_VERSIONS row.
    layer_kv = [kv_layer if not w or opt.swa_full else 2 * r.kv.nbytes(shape.kv_width) * swa_cells for w in windows]
    widths = per_layer_kv_widths(g)
    if widths is not None:
        layer_kv = [
            (r.kv.nbytes(k) + r.kv.nbytes(v)) * (swa_cells if w and not opt.swa_full else cells) if k or v else 0
            for (k, v), w in zip(widths, windows, strict=True)
        ]
        kv_detail = per_layer_kv_detail(widths, windows, cells, swa_cells if not opt.swa_full else cells, r.kv.name)
    layer_kv = hybrid_layer_kv(g, layer_kv)
    layer_kv, indexer_note = with_indexer_keys(g, layer_kv, r.kv, cells, version.dsa_indexer)
    if indexer_note:
        out_notes.append(indexer_note)
    if swa_cells != cells and widths is None:
        kv_detail = (
            f"2 x {shape.kv_width} x {r.kv.name} x ({cells} cells per full layer, {swa_cells} per sliding layer)"
        )
    if indexer_note:
        kv_detail += " + the indexer's keys"
    # The detail counts the layers that hold KV cells: a hybrid's recurrent layers (and blocks with no cache) keep
    # none. llama.cpp's own line counts the layers its layer filter kept (llama_memory_hybrid filters with
    # !is_recurrent, llama_kv_cache_iswa with is_swa): "llama_kv_cache: size = 3224.38 MiB (120064 cells,  10
    # layers,  1/1 seqs)" for Gemma 4 31B's 10 full-attention layers of 60 (ggml-org/llama.cpp issue #21394, b8643).
    kv_by_device: dict[int, int] = {}
    layers_on: dict[int, int] = {}
    on_device: dict[int, list[int]] = {}
    kv_host_layers = sum(1 for b in layer_kv[:first_gpu] if b)
    for i in range(first_gpu, n_layer):
        kv_by_device[device_of(i)] = kv_by_device.get(device_of(i), 0) + layer_kv[i]
        layers_on[device_of(i)] = layers_on.get(device_of(i), 0) + (1 if layer_kv[i] else 0)
        on_device.setdefault(device_of(i), []).append(i)

    def layers_detail(layers: list[int], count: int, host: str = "") -> str:
        if widths is None:
            return f"{count} {host}layers x {kv_detail}"
        # per-layer widths: the layers of this device, grouped by shape
        return f"{count} {host}layers: " + per_layer_kv_detail(
            [widths[i] for i in layers],
            [windows[i] for i in layers],
            cells,
            swa_cells if not opt.swa_full else cells,
            r.kv.name,
        )

    for d, nbytes in kv_by_device.items():
        if widths is not None and not nbytes:
            continue  # every layer of this device reads an earlier layer's cache: llama.cpp allocates none here
        buffers.append(
            Buffer(
                f"KV cache (CUDA{d})",
                nbytes,
                "gpu",
                "kv_self",
                f"{layers_detail(on_device[d], layers_on[d])} (llama_kv_cache: CUDA0 KV buffer size)",
                d,
            )
        )
    if kv_host_layers:
        buffers.append(
            Buffer(
                "KV cache (CPU)",
                sum(layer_kv[:first_gpu]),
                "host",
                "kv_self",
                layers_detail(list(range(first_gpu)), kv_host_layers, "host "),
            )
        )
    buffers.extend(recurrent_state_buffers(g, parallel, first_gpu))
    if g.encoder_tokens_option:
        out_notes.append(
            "T5 in llama.cpp keeps no cross-attention cache: every decoder step projects the "
            "encoder output (kept in host memory, n_embd x encoder tokens f32) again"
        )
        buffers.append(
            Buffer(
                "encoder output (host)",
                F32_BYTES * shape.n_embd * r.encoder_tokens,
                "host",
                "other",
                f"4 B x {shape.n_embd} x {r.encoder_tokens} encoder tokens (llama_context cross.v_embd)",
            )
        )

    # Compute buffers: one per GPU. Gemma 3n / 4 also keep their per-layer inputs (the per-layer table's row width,
    # n_layer x n_embd_per_layer) alive through the layers; the rest of their graph (Gemma 3n's four AltUp streams)
    # is not in the Llama-calibrated form
    per_layer_inputs = per_layer_input_width(spec, tensors)
    if widths is not None and not opt.swa_full:
        # flash attention over a quantized cache converts one layer's K and V to f16 at a time: the widest of
        # K x cells over the layers (a sliding layer has its window's cells), as a width over the full cells
        shape = replace(
            shape,
            kv_width=max(
                -(-k * (swa_cells if w else cells) // cells) for (k, _), w in zip(widths, windows, strict=True)
            ),
        )
    if per_layer_inputs:
        out_notes.append(
            "compute buffer: the Llama-calibrated form plus the per-layer inputs every layer reads "
            f"(4 B x {ub} x {per_layer_inputs}); not checked against a printed Gemma 3n / 4 compute buffer"
        )
    # ggml-cuda offload_op: batches of >= 32 rows (GGML_OP_OFFLOAD_MIN_BATCH) run on the GPU
    copies = opt.op_offload and version.op_offload and ub >= 32
    if not opt.op_offload and opt.version not in (
        "2025-08",
        "2025-10",
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-05",
        "2026-07",
        "current",
        "2026-06-server",
    ):
        out_notes.append(
            "--no-op-offload is a flag from ggml-org/llama.cpp PR #13386 (May 2025); older builds turn "
            "op offload off only with -ub below 32"
        )
    if not version.op_offload and ngl <= n_layer:
        out_notes.append(
            f"llama.cpp {opt.version} has no op offload (PR #6083): the host layers and the output "
            "layer run on the CPU, the GPU compute buffer holds only the offloaded layers' graph"
        )
    for d in range(opt.gpus):
        holds_output = d == last_device
        if (
            not copies
            and not any(device_of(i) == d for i in range(first_gpu, n_layer))
            and not (output_on_gpu and holds_output)
        ):
            continue  # nothing runs on this GPU
        nbytes, detail = compute_bytes(
            shape,
            cells,
            ub,
            fa,
            logits=holds_output and (output_on_gpu or copies),
            output_copy=output_tensor_bytes if holds_output and not output_on_gpu and copies else 0,
            weight_copy=largest_host_weight if copies and d == 0 else 0,
            t5_bias=g.relative_position_bias,
            fa_kv_copy=version.fa_f16_kv_in_compute and r.kv.name not in ("f16", "fp16"),
            outputs=parallel if version.server_outputs else None,
            per_layer_inputs=per_layer_inputs,
        )
        buffers.append(
            Buffer(f"compute buffer (CUDA{d})", nbytes, "gpu", "compute", f"peak of the worst-case graph: {detail}", d)
        )
    if not copies and (first_gpu > 0 or not output_on_gpu):
        # Without op offload the host layers and the output layer run on the CPU: their graph has its
        # own host compute buffer, the same worst-case form over the phases the CPU runs (b2197 at
        # -ngl 0: "CUDA_Host compute buffer size = 70.50 MiB" = 4 B x 512 x (4096 + 32000), the logits;
        # ggml-org/ci llama.cpp/46/fd2737.../open_llama_7b_v2-save-load-state.log).
        nbytes, detail = compute_bytes(shape, cells, ub, fa, logits=not output_on_gpu, t5_bias=g.relative_position_bias)
        buffers.append(
            Buffer(
                "compute buffer (CPU graph)",
                nbytes,
                "host",
                "compute",
                f"the host layers' and output layer's graph, run on the CPU: {detail}",
            )
        )
    elif not copies and opt.n_cpu_moe and g.experts:
        # Without op offload (--no-op-offload, -ub < 32, builds before PR #6083) the host experts'
        # matmuls run on the CPU at prompt batches too, so the CPU graph holds their feed-forward phase:
        # the normed input and residual (n_embd each) and up and gate as [n_ff_exp, n_expert_used,
        # n_ubatch] (build_moe_ffn). With op offload (the default) they run on the GPU, whose compute
        # buffer holds the copied expert instead, and the CPU only decodes (one token).
        ffn = F32_BYTES * ub * (2 * shape.n_embd + 2 * shape.n_ff)
        buffers.append(
            Buffer(
                "compute buffer (CPU graph)",
                ffn,
                "host",
                "compute",
                f"the host experts' feed-forward, run on the CPU without op offload: 4 B x {ub} x "
                f"(2 x {shape.n_embd} + 2 x {shape.n_ff}) (not calibrated against a log)",
            )
        )
    # The graph inputs in pinned host memory: the input embeddings and the f32 KQ mask (f32 even with
    # flash attention, which casts it on the GPU), and for a sliding-window model the second mask of its
    # SWA cache (gpt-oss-20b, b6699: 263.15 MiB = 4 B x 512 x (2880 + 131072 + 768) + 0.03 of small inputs).
    swa_mask = swa_cells if any(windows) else 0
    buffers.append(
        Buffer(
            "compute buffer (CUDA_Host)",
            F32_BYTES * ub * (shape.n_embd + cells + swa_mask),
            "host",
            "compute",
            f"4 B x {ub} x ({shape.n_embd} input embeddings + {cells} KQ mask"
            + (f" + {swa_mask} sliding-window KQ mask)" if swa_mask else ")"),
        )
    )
    out_width = shape.n_vocab + (shape.n_embd if output_embd else 0)
    buffers.append(
        Buffer(
            "output buffer (host)",
            F32_BYTES * out_width * parallel,
            "host",
            "other",
            f"4 B x {out_width} x {parallel} sequences (llama_output_reserve)",
        )
    )

    # The mmproj file (LLaVA): its own weights and CLIP compute buffer.
    model_name = str(getattr(spec, "id", spec.architecture))
    if g.vision is not None:
        placement: Literal["gpu", "host"] = "gpu" if opt.mmproj_on_gpu else "host"
        mm_count, mm_bytes = archs.cached(  # the spec and the mmproj type decide it: summed once per spec
            spec, f"llamacpp-mmproj:{opt.mmproj_dtype}", lambda: mmproj_weights(spec, tensors, opt.mmproj_dtype)
        )
        mm_detail = f"{mm_count} tensors, {opt.mmproj_dtype} (clip_model_load: params backend buffer size)"
        if opt.mmproj_file is not None:  # the user's file: its tensor table's exact bytes
            mf = opt.mmproj_file
            wrong = llava_mmproj_mismatch(mf, g.vision, model_name)
            if wrong:
                raise UsageError(wrong)
            mm_bytes = mf.device_bytes(opt.mmproj_on_gpu)
            mm_detail = f"{len(mf.tensors)} tensors of {mf.path} (its GGUF tensor table; clip_model_load)"
        buffers.append(Buffer("mmproj (CLIP + projector)", mm_bytes, placement, "weights", mm_detail))
        buffers.append(
            Buffer(
                "CLIP compute buffer",
                clip_compute_bytes(g.vision),
                placement,
                "compute",
                "4 B x (heads x P^2 + 5 x P x hidden + image), P = patches + 1 (clip.cpp, one image)",
            )
        )
    # The mmproj file (Gemma 3, Qwen2-VL, Pixtral through libmtmd): weights, CLIP graph, the f32 image.
    vision_buffers, vision_notes, vision_warnings = mmproj_buffers(
        spec, tensors, r.images, r.image_size, opt, fa, cells if room else None
    )
    if opt.mmproj_file is not None and g.vision is None and not vision_buffers:
        raise UsageError(
            f"--mmproj {opt.mmproj_file.path}: {model_name} has no vision tower here (a GGUF or config of the language "
            "model alone); give the vision model (the catalog's id or its config.json) to size the projector"
        )
    if g.takes_images and g.vision is None and not vision_buffers and clip_graph(spec) is None:
        # a vision tower whose mmproj (libmtmd) this profile does not size (Llama 4's clip_graph_llama4): images
        # asked for are refused rather than their tower and graph left out of the total
        if request.images:
            raise UsageError(
                f"{engine}: the profile does not size {model_name}'s vision mmproj yet; ask without --images for the "
                "language model alone, or use --engine transformers or vllm"
            )
        out_notes.append(
            f"{model_name}'s vision tower (an mmproj file in llama.cpp) is not sized here: the answer is the language "
            "model alone; --images is refused"
        )
    buffers += vision_buffers
    out_notes += vision_notes
    warnings += vision_warnings
    buffers.extend(extra)
    if opt.cuda_overhead_bytes:
        for d in range(opt.gpus):
            buffers.append(
                Buffer(
                    f"CUDA context and pools (CUDA{d})",
                    opt.cuda_overhead_bytes,
                    "gpu",
                    "overhead",
                    opt.cuda_overhead_detail,
                    d,
                )
            )
    else:
        out_notes.append(
            "the CUDA context, cuBLAS workspace and ggml's CUDA memory pool are not in llama.cpp's "
            "printed buffers; nvidia-smi shows a few hundred MiB more"
        )
    if opt.gpus > 1:
        out_notes.append(
            "with several GPUs and every layer offloaded llama.cpp enables pipeline parallelism, "
            "which keeps extra copies of the graph inputs (not counted here)"
        )
    out_notes += moe_notes(spec, opt)
    host_weights = embd_bytes + (host_bytes or 0)
    if (opt.n_cpu_moe or opt.override_tensor) and mapped_bytes > host_weights:
        out_notes.append(
            f"with mmap (the default) llama.cpp prints CPU_Mapped = {mapped_bytes / 2**20:.2f} MiB: the file "
            "span from token_embd to the last host expert, which also holds the GPU tensors stored between "
            f"the experts ({(mapped_bytes - host_weights) / 2**20:.2f} MiB, read once at load; the page cache "
            "can drop them); the host row counts only what stays in host memory"
        )
    facts: dict[str, int | bool | str] = {
        "cpu_mapped_bytes": mapped_bytes,
        "n_cpu_moe": min(opt.n_cpu_moe, n_layer),
        "n_ctx": cells,
        "n_ctx_seq": per_seq,
        "kv_pad": pad_to,
        "n_ubatch": ub,
        "flash_attn": fa,
        "parallel": parallel,
        "gpu_layers": ngl,
        "n_layer": n_layer,
        "output_on_gpu": output_on_gpu,
        "version": opt.version,
        "op_offload": copies,
        # what the build's --fit keeps free on each device (0: a build without --fit)
        "fit_target_bytes": opt.fit_target_bytes
        if opt.fit_target_bytes is not None
        else LLAMACPP_FIT_TARGET_BYTES
        if version.fit
        else 0,
    }
    return EngineEstimate(
        engine,
        spec.id,
        spec.architecture,
        r.dtype.name,
        r.kv.name,
        asked,
        cells,
        tuple(buffers),
        facts,
        tuple(out_notes + list(r.notes)),
        tuple(warnings),
    )


__all__ = [
    "LLAMACPP_FIT_TARGET_BYTES",
    "LLAMACPP_VERSIONS",
    "ClipGraph",
    "LlamaCppOptions",
    "LlamaCppVersion",
    "MmprojFile",
    "check_architecture",
    "clip_compute_bytes",
    "clip_graph",
    "clip_graph_bytes",
    "clip_image",
    "clip_output_tokens",
    "compute_bytes",
    "cuda_tensor_bytes",
    "expert_on_host",
    "gguf_storage",
    "gguf_tensor_name",
    "gguf_tensors",
    "hybrid_layer_kv",
    "kv_cells",
    "llamacpp_estimate",
    "lm_shape",
    "mla_kv_layer",
    "mla_note",
    "mmproj_buffers",
    "mmproj_file_bytes",
    "mmproj_file_storage",
    "mmproj_file_tensors",
    "mmproj_mismatch",
    "mmproj_storage",
    "mmproj_tensors",
    "moe_notes",
    "offloaded_layers",
    "recurrent_state_buffers",
    "tensor_overrides",
    "trained_window_warning",
]
