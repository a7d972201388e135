"""llama.cpp and ollama: the buffers they print at start-up, reproduced from the tensor inventory.

llama.cpp allocates, per device:
- model buffers: every GGUF tensor in its file type, each placed at a 128-byte aligned offset. The
  token embedding stays in host memory (the "CPU buffer"); the repeating layers go to the GPU from
  layer n_layer - gpu_layers on; the output layer (final norm + LM head) only when gpu_layers >
  n_layer (`-ngl 33` for 32 layers). A vision model's CLIP tower and projector are a separate
  mmproj file with their own buffer and compute buffer;
- one KV cache of n_ctx cells, n_ctx padded (the rule changed between versions, see
  LLAMACPP_VERSIONS), each layer's K and V on the device of the layer;
- a compute buffer per device: the peak of the worst-case graph (n_ubatch tokens, every output
  kept), which ggml-alloc measures once at start-up; a host compute buffer and a host output buffer.

The compute-buffer form is calibrated against printed buffers of Llama-architecture models (Llama 2
7B MHA, Llama 3 8B GQA, a Mistral 7B v0.2/0.3 GQA model) from llama.cpp b2197 (Feb 2024) to a
January 2025 llama-server, n_ctx 512 to 32768, all exact to 0.01 MiB (tests/engines/
calibration_extra.yaml); the KV padding of later versions comes from their source. Other architectures keep more tensors alive at the
attention peak (GPT-NeoX's fused QKV: 6 hidden-size tensors instead of 4), so the form is for the
Llama family, which is all llama.cpp runs from this catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from .. import archs, gguf
from ..archs.base import EXPERT_ROLES, VisionShape, uniform_width
from ..dtypes import F16, F32, StorageType, WeightDtype, weight_dtype
from ..errors import UsageError
from ..memory import AnySpec, Request, default_context, resolve
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


LLAMACPP_VERSIONS: dict[str, LlamaCppVersion] = {v.key: v for v in (
    LlamaCppVersion("2023-12", "2023-12-03 (b1600s) to mid-March 2024 (b2197 = 2024-02-19 is one)",
                    "ggml-org/llama.cpp PR #4280 'llama : pad KV cache size': cparams.n_ctx = GGML_PAD(n_ctx, 32); "
                    "no op offload yet (PR #6083): under partial offload the output layer runs on the CPU",
                    32, 32, False, op_offload=False),
    LlamaCppVersion("2024-03", "mid-March 2024 to 2024-04-29",
                    "ggml-org/llama.cpp PR #6083 'backend : offload large batches to GPU': host-weight ops of "
                    "batches >= 32 rows run on the GPU (the LM head is copied into its compute buffer)",
                    32, 32, False),
    LlamaCppVersion("2024-04", "2024-04-30 to 2024-05-12",
                    "ggml-org/llama.cpp PR #5021 (FlashAttention) with fix-up PR #6438: n_ctx padded to 256",
                    256, 256, False),
    LlamaCppVersion("2024-05", "2024-05-13 to 2025-08",
                    "ggml-org/llama.cpp PR #7257 'less KV padding when FA is off': "
                    "llama_kv_cache_get_padding = flash_attn ? 256 : 32",
                    32, 256, False),
    LlamaCppVersion("2025-08", "2025-08 to 2025-10-27",
                    "same padding as 2024-05; `--flash-attn auto` became the default "
                    "(mudler/LocalAI PR #6168 2025-08-31 and docker/model-runner PR #44 2025-09-24 follow it)",
                    32, 256, True),
    LlamaCppVersion("2025-10", "2025-10-28 to 2025-11-05",
                    "ggml-org/llama.cpp PR #16812 'memory : remove KV cache size padding'",
                    1, 1, True),
    LlamaCppVersion("current", "2025-11-06 on",
                    "ggml-org/llama.cpp PR #17046 'kv-cache : pad the cache size to 256 for performance': "
                    "llama-context.cpp cparams.n_ctx = GGML_PAD(n_ctx, 256), and per sequence when the "
                    "cache is split (n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256))",
                    256, 256, True, fa_f16_kv_in_compute=True),
    LlamaCppVersion("2026-06-server", "llama-server from 2026-05-29 on",
                    "ggml-org/llama.cpp PR #23861 'llama: limit max outputs of llama_context': llama-server "
                    "reserves the logits of n_parallel outputs (no speculative draft), not of n_ubatch tokens",
                    256, 256, True, fa_f16_kv_in_compute=True, server_outputs=True),
)}


@dataclass(frozen=True)
class LlamaCppOptions:
    """llama.cpp settings (flag in brackets)."""

    n_ubatch: int = 512  # [-ub] physical batch; common.h default 512
    flash_attn: bool | None = None  # [-fa] None: the version's default
    parallel: int = 1  # [-np] sequences sharing the one cache of n_ctx cells
    gpu_layers: int | None = None  # [-ngl] None: everything (999); n_layer + 1 also offloads the output layer
    version: str = "current"  # a key of LLAMACPP_VERSIONS
    kv_pad: int | None = None  # override the version's n_ctx padding
    gpus: int = 1  # layer split over this many identical GPUs (-sm layer, even split)
    # [--op-offload/--no-op-offload, ggml-org/llama.cpp PR #13386, May 2025] large batches run on the GPU
    # even for host weights; builds before PR #6083 (version "2023-12") never do
    op_offload: bool = True
    mmproj_dtype: str = "f16"  # the mmproj file's type (LLaVA); f16 is what the conversion script writes
    mmproj_on_gpu: bool = True  # current libmtmd puts CLIP on the GPU; 2024 llava-cli ran it on the CPU
    kv_unified: bool = False  # [-kvu] one stream for all sequences (llama-server's default when -np is not given)
    cuda_overhead_bytes: int = 0  # CUDA context + cuBLAS + ggml's CUDA pool: not printed by llama.cpp
    swa_full: bool = False  # [--swa-full] sliding-window layers keep every cell, not just their window
    n_cpu_moe: int = 0  # [--n-cpu-moe N] the expert tensors of layers 0..N-1 stay in host memory (-ot exps=CPU: all)

    def __post_init__(self) -> None:
        if self.version not in LLAMACPP_VERSIONS:
            raise UsageError(f"unknown llama.cpp version {self.version!r}; choose one of {', '.join(LLAMACPP_VERSIONS)}")
        for name in ("n_ubatch", "parallel", "gpus"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.gpu_layers is not None and self.gpu_layers < 0:
            raise UsageError(f"gpu_layers cannot be negative (got {self.gpu_layers})")
        if self.n_cpu_moe < 0:
            raise UsageError(f"n_cpu_moe cannot be negative (got {self.n_cpu_moe})")


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
    raise UsageError(f"llama.cpp loads GGUF files: --dtype {dtype.name} is not a GGUF type "
                     "(choose fp16, bf16, fp32, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, q3_k_m or q2_k)")


def mmproj_tensors(spec: AnySpec, tensors: list[Tensor]) -> list[Tensor]:
    """What llava's convert_image_encoder_to_gguf.py writes to the mmproj file: the CLIP layers up to
    the feature layer (vision_feature_layer -2 drops the last of 24: 23 layers, `clip.vision.block_count
    = 23`) and no post-layernorm; the projector (and LLaVA-NeXT's image_newline)."""
    vision = archs.geometry(spec).vision
    keep = vision.mmproj_layers if vision is not None else 0
    return [t for t in tensors if t.component in MMPROJ and not t.name.startswith("vision.post_ln")
            and (t.layer is None or t.component != "vision_tower" or t.layer < keep)]


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


@dataclass(frozen=True)
class LmShape:
    """What the llama.cpp graph needs of the language model."""

    n_layer: int
    n_embd: int
    n_head: int
    n_ff: int
    n_vocab: int
    kv_width: int  # n_embd_k_gqa (= n_embd_v_gqa)


def lm_shape(spec: AnySpec) -> LmShape:
    g = archs.geometry(spec)
    return LmShape(g.decoder_layers, g.hidden_size, g.num_attention_heads, g.intermediate_size, g.vocab_size,
                   uniform_width(g.self_layers))


def kv_cells(n_ctx: int, parallel: int, pad_to: int, version: str, unified: bool) -> tuple[int, int]:
    """(cells allocated, cells each sequence can use). `current` pads the total and, with a split
    cache, each sequence's share (llama-context.cpp after PR #17046); older versions pad the total."""
    if version in ("current", "2026-06-server"):  # PR #17046's per-sequence padding
        total = pad(n_ctx, pad_to)
        if unified or parallel == 1:
            return total, total
        per_seq = pad(total // parallel, pad_to)
        return per_seq * parallel, per_seq
    total = pad(n_ctx, pad_to)
    return total, total if unified else total // parallel


def compute_bytes(shape: LmShape, n_kv: int, n_ubatch: int, flash_attn: bool, *, logits: bool,
                  output_copy: int = 0, weight_copy: int = 0, t5_bias: bool = False,
                  fa_kv_copy: bool = False, outputs: int | None = None) -> tuple[int, str]:
    """Peak of the worst-case graph on one device (f32 activations, n_ubatch tokens, every output):

    - logits phase (device holding the output layer): 4 B x n_ubatch x (n_embd + n_vocab) -- the
      final hidden state and the logits; with the output layer in host memory and op offload, the
      LM head's weight is copied to the GPU for the batch matmul too (`output_copy`);
    - attention phase: 4 B x n_ubatch x (4 x n_embd + n_kv x (n_head + 1)) -- the f32 score matrix of
      every head, the KQ mask and four hidden-size tensors; flash attention never builds the scores
      and casts the mask to f16 (2 B x n_kv x n_ubatch);
    - feed-forward phase: 4 B x n_ubatch x (2 x n_embd + 2 x n_ff) (gate and up; SiLU and the product
      run in place); with layers in host memory and op offload, plus the largest host weight, copied
      to the GPU for its batch matmul (`weight_copy`).
    Calibrated for the Llama family on b2197 (70.50 MiB logits-bound and 164.00 MiB attention-bound,
    Llama-2-7B shapes), a mid-2024 llama-cpp-python (258.50 MiB, Llama 3 8B) and a Jan 2025
    llama-server (164.00 and 2144.00 MiB, Mistral 7B shapes, n_ctx 2048 and 32768); the
    partial-offload logits phase (203.99 MiB) on b4343 (tests/engines/calibration_extra.yaml). ollama's own estimate (fs/ggml/ggml.go GraphSize, "llama") is the
    same max of the first two forms. The flash-attention and T5 terms are not calibrated.
    """
    ub = n_ubatch
    heads = shape.n_head * (2 if t5_bias else 1)  # T5 adds an f32 relative-position bias of the same shape
    if flash_attn:
        attn = F32_BYTES * ub * 4 * shape.n_embd + 2 * n_kv * ub
        attn_detail = f"4 B x {ub} x 4 x {shape.n_embd} (hidden) + 2 B x {n_kv} x {ub} (f16 mask); flash attention: no scores"
        if fa_kv_copy:  # quantized cache: K and V converted to f16 inside the FA node (fattn-common.cuh)
            attn += 2 * 2 * n_kv * shape.kv_width
            attn_detail += f" + 2 x 2 B x {n_kv} x {shape.kv_width} (K and V as f16 for the FA kernel)"
    else:
        attn = F32_BYTES * ub * (4 * shape.n_embd + n_kv * (heads + 1))
        attn_detail = f"4 B x {ub} x (4 x {shape.n_embd} + {n_kv} x ({heads} heads + 1 mask))"
    ffn = F32_BYTES * ub * (2 * shape.n_embd + 2 * shape.n_ff)
    ffn_detail = f"4 B x {ub} x (2 x {shape.n_embd} + 2 x {shape.n_ff})" + (
        f" + {weight_copy} B host weight copied for a batch matmul" if weight_copy else "")
    phases = [(attn, attn_detail), (ffn + weight_copy, ffn_detail)]
    if logits:
        rows = ub if outputs is None else min(outputs, ub)  # the output rows are selected before the final norm
        phases.append((F32_BYTES * rows * (shape.n_embd + shape.n_vocab) + output_copy,
                       f"4 B x {rows} x ({shape.n_embd} + {shape.n_vocab}) (logits)"
                       + (f" + {output_copy} B LM head copied from host" if output_copy else "")))
    return max(phases)


def clip_compute_bytes(v: VisionShape) -> int:
    """CLIP's compute buffer for one image (clip.cpp, batch 1): the f32 scores of every head (P x P per
    head, P = patches + class token), five hidden-size tensors alive at the softmax (residual, norm,
    Q, K, V) and the f32 image: 32.88 MiB for ViT-L/14-336. Not calibrated against a sourced log."""
    p = v.patches + 1
    return F32_BYTES * (v.num_attention_heads * p * p + 5 * p * v.hidden_size
                        + v.num_channels * v.image_size * v.image_size)


# --------------------------------------------------------------------------------------------------
# Mixture of experts: expert offload (--n-cpu-moe / -ot exps=CPU)
# --------------------------------------------------------------------------------------------------
def expert_on_host(t: Tensor, opt: LlamaCppOptions) -> bool:
    """common/arg.cpp `--n-cpu-moe N`: a tensor override `blk\\.(0..N-1)\\.ffn_(up|down|gate)_exps`=CPU keeps
    the routed experts of the first N layers in host memory (`-ot exps=CPU`, `--cpu-moe`: every layer);
    the rest of those layers (attention, router, shared expert, norms, KV) stays on the GPU."""
    return t.role in EXPERT_ROLES and t.layer is not None and t.layer < opt.n_cpu_moe


def expert_host_detail(opt: LlamaCppOptions, n_layer: int) -> str:
    if not opt.n_cpu_moe:
        return ""
    return f"the expert tensors of layers 0..{min(opt.n_cpu_moe, n_layer) - 1} (--n-cpu-moe {opt.n_cpu_moe})"


def mla_kv_layer(mla: tuple[int, int, int, int, int], kv: StorageType, cells: int) -> tuple[int, str]:
    """Multi-head latent attention (DeepSeek V2/V3): convert_hf_to_gguf.py writes key_length =
    kv_lora_rank + qk_rope_head_dim and value_length = kv_lora_rank with head_count_kv 1, so each layer's
    cache holds a K row of 576 and a V row of 512 elements per cell (llama-kv-cache-unified.cpp,
    llama.cpp as vendored in llama-cpp-python 0.3.16) -- the latent, never the 128 decompressed heads."""
    rank, rope = mla[0], mla[1]
    nbytes = (kv.nbytes(rank + rope) + kv.nbytes(rank)) * cells
    return nbytes, f"({rank} + {rope} K + {rank} V latent) x {cells} cells x {kv.name}"


def mla_note(mla: tuple[int, int, int, int, int], kv: StorageType) -> str:
    rank, rope, heads, qk, v = mla
    return (f"latent attention: the cache holds the compressed KV ({rank} + {rope} per token per layer), not "
            f"{heads} heads x ({qk} K + {v} V) = {heads * (qk + v)} elements, which an engine caching full heads "
            "(transformers 4.x) would keep")


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
    detail = (f"{layers} recurrent layers x (conv (d_conv - 1) x channels + SSM d_state x d_inner) x f32 x "
              f"{sequences} sequence(s), constant in n_ctx (llama_memory_recurrent)")
    out = []
    if gpu:
        out.append(Buffer("recurrent state (CUDA0)", gpu, "gpu", "kv_self", detail))
    if host:
        out.append(Buffer("recurrent state (CPU)", host, "host", "kv_self", detail))
    return out


def moe_notes(spec: AnySpec, opt: LlamaCppOptions) -> list[str]:
    g = archs.geometry(spec)
    if opt.n_cpu_moe and not g.experts:
        raise UsageError(f"--n-cpu-moe applies to mixture-of-experts models; {spec.id} has no experts")
    if not opt.n_cpu_moe:
        return []
    n = min(opt.n_cpu_moe, g.decoder_layers)
    return [f"--n-cpu-moe {opt.n_cpu_moe}: the expert tensors of layers 0..{n - 1} stay in host memory; a token "
            f"reads {g.experts_per_token} of their {g.experts} experts from system RAM"]


# --------------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------------
def check_architecture(spec: AnySpec, engine: str) -> None:
    refusal = archs.geometry(spec).refusals.get(engine)
    if refusal:
        raise UsageError(refusal)


def _place_weights(tensors: list[Tensor], storage: list[StorageType], first_gpu: int, output_on_gpu: bool,
                   last_device: int, device_of: Callable[[int], int], gpus: int, opt: LlamaCppOptions,
                   ) -> tuple[dict[int, int | None], int | None, int, int, int]:
    """The model buffers' bytes, each tensor 128-byte aligned: (per GPU, host layers and output layer,
    token embedding; None for a buffer with no tensor), the output tensor's bytes, the largest host weight."""
    gpu_sizes: dict[int, list[int]] = {d: [] for d in range(gpus)}
    host_sizes: list[int] = []
    embd_sizes: list[int] = []
    output_tensor_bytes = 0
    largest_host_weight = 0
    tied = not any(t.role == "output" for t in tensors)
    for t, s in zip(tensors, storage, strict=True):
        if t.component in MMPROJ:
            continue  # the mmproj file, below
        nbytes = cuda_tensor_bytes(t, s)
        host_nbytes = s.nbytes(t.numel)  # no CUDA row padding in host memory
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
        if t.layer is None:  # final norms and the LM head: the output layer
            if t.role == "output":
                output_tensor_bytes = nbytes
            if output_on_gpu:
                gpu_sizes[last_device].append(nbytes)
            else:
                host_sizes.append(host_nbytes)
        elif t.layer >= first_gpu and not expert_on_host(t, opt):
            gpu_sizes[device_of(t.layer)].append(nbytes)
        else:
            host_sizes.append(host_nbytes)
            largest_host_weight = max(largest_host_weight, nbytes)
    align = GGML_CUDA_ALIGNMENT

    def total(sizes: list[int]) -> int | None:
        return aligned_sum(sizes, align) if sizes else None

    host_total = aligned_sum(host_sizes, GGML_CPU_ALIGNMENT) if host_sizes else None
    return ({d: total(v) for d, v in gpu_sizes.items()}, host_total, aligned_sum(embd_sizes, GGML_CPU_ALIGNMENT),
            output_tensor_bytes, largest_host_weight)


def llamacpp_estimate(spec: AnySpec, request: Request, options: LlamaCppOptions | None = None, *,
                      engine: str = "llama.cpp", n_ctx: int | None = None, extra: tuple[Buffer, ...] = (),
                      notes: tuple[str, ...] = (), output_embd: bool = False) -> EngineEstimate:
    """Every buffer llama.cpp allocates for `spec` (see the module docstring)."""
    opt = options or LlamaCppOptions()
    check_architecture(spec, engine)
    r = resolve(spec, request)
    version = LLAMACPP_VERSIONS[opt.version]
    fa = version.flash_attn_default if opt.flash_attn is None else opt.flash_attn
    pad_to = opt.kv_pad or (version.kv_pad_fa if fa else version.kv_pad)
    asked = n_ctx or request.context or default_context(r)
    out_notes = list(notes)
    warnings: list[str] = []
    if request.beams > 1:
        warnings.append("llama.cpp decodes without beam search: --beams is ignored")
    if request.batch > 1 and opt.parallel == 1:
        # --context is positions per sequence: N sequences of it are llama.cpp's -np N -c (N x context)
        opt = replace(opt, parallel=request.batch)
        asked *= request.batch
        out_notes.append(f"--batch {request.batch} read as -np {request.batch} -c {asked}: each sequence keeps "
                         f"{asked // request.batch} positions of the shared cache")
    cells, per_seq = kv_cells(asked, opt.parallel, pad_to, opt.version, opt.kv_unified)
    if cells != asked:
        out_notes.append(f"n_ctx {asked} allocated as {cells} cells (padded to a multiple of {pad_to}: {version.source})")
    if opt.parallel > 1:
        out_notes.append(f"{opt.parallel} sequences share one cache of {cells} cells"
                         + ("" if opt.kv_unified else f": {per_seq} positions each"))
    shape = lm_shape(spec)
    ub = min(opt.n_ubatch, cells)

    g = archs.geometry(spec)
    tensors = model_tensors(spec)
    storage = archs.cached(spec, f"gguf:{r.dtype.name}", lambda: gguf_storage(tensors, r.dtype, spec))
    n_layer = shape.n_layer
    ngl = n_layer + 1 if opt.gpu_layers is None else min(opt.gpu_layers, n_layer + 1)
    first_gpu = max(n_layer - ngl, 0)
    gpu_layer_count = n_layer - first_gpu
    output_on_gpu = ngl > n_layer

    def device_of(layer: int) -> int:
        # even layer split over the GPUs (llama.cpp's default splits by free memory; equal cards: even)
        return min((layer - first_gpu) * opt.gpus // max(gpu_layer_count, 1), opt.gpus - 1)

    last_device = device_of(n_layer - 1) if gpu_layer_count else opt.gpus - 1
    mm_tensors = mmproj_tensors(spec, tensors) if g.vision is not None else []
    mm_names = {t.name for t in mm_tensors}
    # The weights' placement depends on the type and -ngl, not the context: computed once per spec
    # (a `check --rows` of 1,000 rows or a context bisection re-uses it).
    placed = archs.cached(spec, f"llamacpp-place:{r.dtype.name}:{ngl}:{opt.gpus}:{opt.n_cpu_moe}",
                          lambda: _place_weights(tensors, storage, first_gpu, output_on_gpu, last_device, device_of,
                                                 opt.gpus, opt))
    gpu_sizes, host_bytes, embd_bytes, output_tensor_bytes, largest_host_weight = placed
    buffers: list[Buffer] = []
    align = GGML_CUDA_ALIGNMENT
    for d, nbytes in gpu_sizes.items():
        if nbytes is not None:
            buffers.append(Buffer(f"model buffer (CUDA{d})", nbytes, "gpu", "weights",
                                  "GGUF tensors of the offloaded layers" + (" and the output layer" if output_on_gpu and d == last_device else "")
                                  + ", each 128-byte aligned (llm_load_tensors: CUDA0 buffer size)", d))
    buffers.append(Buffer("model buffer (CPU): token embedding", embd_bytes, "host", "weights",
                          "token_embd stays in host memory: only rows are looked up (llama-model.cpp: the input "
                          "layer is always on the CPU)"))
    if host_bytes is not None:
        buffers.append(Buffer("model buffer (CPU): layers kept on the host", host_bytes, "host",
                              "weights", "; ".join(d for d in (
                                  (f"layers 0..{first_gpu - 1}" if first_gpu else "the output layer" if not output_on_gpu else "")
                                  + (" and the output layer" if first_gpu and not output_on_gpu else "")
                                  + (f" stay in host memory (-ngl {ngl} of {n_layer + 1})" if first_gpu or not output_on_gpu else ""),
                                  expert_host_detail(opt, n_layer)) if d)))

    # KV cache: per layer on the layer's device.
    kv_layer = 2 * r.kv.nbytes(shape.kv_width) * cells
    kv_detail = f"2 x {shape.kv_width} x {cells} cells x {r.kv.name}"
    if g.mla is not None:
        kv_layer, kv_detail = mla_kv_layer(g.mla, r.kv, cells)
        out_notes.append(mla_note(g.mla, r.kv))
    swa_cells = cells
    windows = [k.window if k is not None and k.kind in ("sliding", "chunked") and g.llamacpp_swa else None for k in g.self_kv]
    if any(windows) and not opt.swa_full:
        # llama-kv-cache-iswa.cpp (llama_kv_cache_iswa): the non-SWA layers get n_ctx cells, the SWA
        # layers GGML_PAD(min(n_ctx, n_swa x (unified ? n_seq_max : 1) + n_ubatch), 256) cells
        # ("the SWA cache is always padded to 256", issue #17037); --swa-full gives them n_ctx.
        n_swa = max(w for w in windows if w)
        swa_cells = pad(min(cells, n_swa * (opt.parallel if opt.kv_unified else 1) + ub), 256)
        out_notes.append(f"sliding-window layers ({sum(1 for w in windows if w)} of {n_layer}) keep {swa_cells} cells: "
                         f"window {n_swa} + ubatch {ub}, padded to 256 (llama_kv_cache_iswa; --swa-full keeps {cells})")
    layer_kv = [kv_layer if not w or opt.swa_full else 2 * r.kv.nbytes(shape.kv_width) * swa_cells for w in windows]
    layer_kv = hybrid_layer_kv(g, layer_kv)
    if swa_cells != cells:
        kv_detail = (f"2 x {shape.kv_width} x {r.kv.name} x ({cells} cells per full layer, "
                     f"{swa_cells} per sliding layer)")
    kv_by_device: dict[int, int] = {}
    layers_on: dict[int, int] = {}
    kv_host_layers = first_gpu
    for i in range(first_gpu, n_layer):
        kv_by_device[device_of(i)] = kv_by_device.get(device_of(i), 0) + layer_kv[i]
        layers_on[device_of(i)] = layers_on.get(device_of(i), 0) + 1
    for d, nbytes in kv_by_device.items():
        buffers.append(Buffer(f"KV cache (CUDA{d})", nbytes, "gpu", "kv_self",
                              f"{layers_on[d]} layers x {kv_detail} (llama_kv_cache: CUDA0 KV buffer size)", d))
    if kv_host_layers:
        buffers.append(Buffer("KV cache (CPU)", sum(layer_kv[:first_gpu]), "host", "kv_self",
                              f"{kv_host_layers} host layers x {kv_detail}"))
    buffers.extend(recurrent_state_buffers(g, opt.parallel, first_gpu))
    if g.encoder_tokens_option:
        out_notes.append("T5 in llama.cpp keeps no cross-attention cache: every decoder step projects the "
                         "encoder output (kept in host memory, n_embd x encoder tokens f32) again")
        buffers.append(Buffer("encoder output (host)", F32_BYTES * shape.n_embd * r.encoder_tokens, "host", "other",
                              f"4 B x {shape.n_embd} x {r.encoder_tokens} encoder tokens (llama_context cross.v_embd)"))

    # Compute buffers: one per GPU.
    # ggml-cuda offload_op: batches of >= 32 rows (GGML_OP_OFFLOAD_MIN_BATCH) run on the GPU
    copies = opt.op_offload and version.op_offload and ub >= 32
    if not opt.op_offload and opt.version not in ("2025-08", "2025-10", "current", "2026-06-server"):
        out_notes.append("--no-op-offload is a flag from ggml-org/llama.cpp PR #13386 (May 2025); older builds turn "
                         "op offload off only with -ub below 32")
    if not version.op_offload and ngl <= n_layer:
        out_notes.append(f"llama.cpp {opt.version} has no op offload (PR #6083): the host layers and the output "
                         "layer run on the CPU, the GPU compute buffer holds only the offloaded layers' graph")
    for d in range(opt.gpus):
        holds_output = d == last_device
        if not copies and not any(device_of(i) == d for i in range(first_gpu, n_layer)) \
                and not (output_on_gpu and holds_output):
            continue  # nothing runs on this GPU
        nbytes, detail = compute_bytes(
            shape, cells, ub, fa, logits=holds_output and (output_on_gpu or copies),
            output_copy=output_tensor_bytes if holds_output and not output_on_gpu and copies else 0,
            weight_copy=largest_host_weight if copies and d == 0 else 0, t5_bias=g.relative_position_bias,
            fa_kv_copy=version.fa_f16_kv_in_compute and r.kv.name not in ("f16", "fp16"),
            outputs=opt.parallel if version.server_outputs else None)
        buffers.append(Buffer(f"compute buffer (CUDA{d})", nbytes, "gpu", "compute",
                              f"peak of the worst-case graph: {detail}", d))
    if not copies and (first_gpu > 0 or not output_on_gpu):
        # Without op offload the host layers and the output layer run on the CPU: their graph has its
        # own host compute buffer, the same worst-case form over the phases the CPU runs (b2197 at
        # -ngl 0: "CUDA_Host compute buffer size = 70.50 MiB" = 4 B x 512 x (4096 + 32000), the logits;
        # ggml-org/ci llama.cpp/46/fd2737.../open_llama_7b_v2-save-load-state.log).
        nbytes, detail = compute_bytes(shape, cells, ub, fa, logits=not output_on_gpu,
                                       t5_bias=g.relative_position_bias)
        buffers.append(Buffer("compute buffer (CPU graph)", nbytes, "host", "compute",
                              f"the host layers' and output layer's graph, run on the CPU: {detail}"))
    buffers.append(Buffer("compute buffer (CUDA_Host)", F32_BYTES * ub * (shape.n_embd + cells), "host", "compute",
                          f"4 B x {ub} x ({shape.n_embd} input embeddings + {cells} KQ mask)"))
    out_width = shape.n_vocab + (shape.n_embd if output_embd else 0)
    buffers.append(Buffer("output buffer (host)", F32_BYTES * out_width * opt.parallel, "host", "other",
                          f"4 B x {out_width} x {opt.parallel} sequences (llama_output_reserve)"))

    # The mmproj file (LLaVA): its own weights and CLIP compute buffer.
    if g.vision is not None:
        mm_storage = mmproj_storage(mm_tensors, opt.mmproj_dtype)
        placement: Literal["gpu", "host"] = "gpu" if opt.mmproj_on_gpu else "host"
        buffers.append(Buffer("mmproj (CLIP + projector)", aligned_sum(
            (cuda_tensor_bytes(t, s) for t, s in zip(mm_tensors, mm_storage, strict=True)), align), placement, "weights",
            f"{len(mm_names)} tensors, {opt.mmproj_dtype} (clip_model_load: params backend buffer size)"))
        buffers.append(Buffer("CLIP compute buffer", clip_compute_bytes(g.vision), placement, "compute",
                              "4 B x (heads x P^2 + 5 x P x hidden + image), P = patches + 1 (clip.cpp, one image)"))
    buffers.extend(extra)
    if opt.cuda_overhead_bytes:
        for d in range(opt.gpus):
            buffers.append(Buffer(f"CUDA context and pools (CUDA{d})", opt.cuda_overhead_bytes, "gpu", "overhead",
                                  "given as an option", d))
    else:
        out_notes.append("the CUDA context, cuBLAS workspace and ggml's CUDA memory pool are not in llama.cpp's "
                         "printed buffers; nvidia-smi shows a few hundred MiB more")
    if opt.gpus > 1:
        out_notes.append("with several GPUs and every layer offloaded llama.cpp enables pipeline parallelism, "
                         "which keeps extra copies of the graph inputs (not counted here)")
    out_notes += moe_notes(spec, opt)
    facts: dict[str, int | bool | str] = {
        "n_cpu_moe": min(opt.n_cpu_moe, n_layer),
        "n_ctx": cells, "n_ctx_seq": per_seq, "kv_pad": pad_to, "n_ubatch": ub, "flash_attn": fa,
        "parallel": opt.parallel, "gpu_layers": ngl, "n_layer": n_layer, "output_on_gpu": output_on_gpu,
        "version": opt.version, "op_offload": copies,
    }
    return EngineEstimate(engine, spec.id, spec.architecture, r.dtype.name, r.kv.name, asked, cells,
                          tuple(buffers), facts, tuple(out_notes + list(r.notes)), tuple(warnings))


__all__ = [
    "LLAMACPP_VERSIONS",
    "LlamaCppOptions",
    "LlamaCppVersion",
    "check_architecture",
    "clip_compute_bytes",
    "compute_bytes",
    "cuda_tensor_bytes",
    "expert_on_host",
    "gguf_storage",
    "hybrid_layer_kv",
    "kv_cells",
    "llamacpp_estimate",
    "lm_shape",
    "mla_kv_layer",
    "mla_note",
    "mmproj_storage",
    "mmproj_tensors",
    "moe_notes",
    "recurrent_state_buffers",
]
