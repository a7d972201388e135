"""vLLM: it takes gpu_memory_utilization of the card up front and gives what the model does not need
to the KV cache.

At start-up (worker.determine_num_available_blocks, vLLM ~0.6.5, PR #10511 "overhaul memory profiling")
vLLM loads the weights, runs one forward pass of max_num_batched_tokens dummy tokens spread over
max_num_seqs sequences (profile_run), and then
    KV pool = total memory x gpu_memory_utilization - weights - non-torch memory - activation peak,
split into blocks of block_size tokens. If the pool holds fewer tokens than the model's window
(max_model_len) it refuses to start ("The model's max seq len ... is larger than the maximum number
of tokens that can be stored in KV cache").
Calibrated on the PR #10511 log for Llama-3-8B bf16 on an H100 (../shared/calibration/measured.yaml
`vllm-pr10511-llama3-8b-bf16-h100-tp1`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..memory import AnySpec, Request, resolve, stage_peak, stages, vocab_size
from .. import archs
from .base import GIB, Buffer, EngineEstimate

# non_torch_memory printed by vLLM for Llama-3-8B on an H100 at tensor_parallel 1 (CUDA context, cuBLAS
# workspaces, NCCL): "non_torch_memory 1.79GiB" (PR #10511 log, measured.yaml
# `vllm-pr10511-llama3-8b-bf16-h100-tp1`; 3.58 GiB at TP=2 in the same comment). Later vLLM measures it
# from a baseline taken after the CUDA context: 0.16 GiB in PR #12126's log (Jan 2025), 0.20 GiB in
# PR #14447's (Apr 2025).
VLLM_NON_TORCH_BYTES = round(1.79 * GIB)
# The profile run's activation peak, 1.26 GiB for Llama-3-8B (same entry), is the same at TP=2 (PR #10511
# log) although the layers' temporaries halve there: it is the sampler's float32 work on the logits of
# max_num_seqs sequences (logits, sorted copy and int64 indices for top-p/top-k, probabilities,
# log-probabilities), 1.26 GiB / (256 x 128,256 x 4 B) = 10.3 logits-sized tensors.
VLLM_SAMPLER_LOGITS_COPIES = 10.3
VLLM_BLOCK_SIZE = 16  # CacheConfig block_size default on CUDA
VLLM_MAX_NUM_SEQS = 256  # SchedulerConfig max_num_seqs default
VLLM_MIN_BATCHED_TOKENS = 2048  # EngineArgs: max_num_batched_tokens = max(max_model_len, 2048) without chunked prefill


@dataclass(frozen=True)
class VllmOptions:
    """vLLM settings (flag in brackets)."""

    total_memory_bytes: int | None = None  # the card's memory as torch.cuda.mem_get_info reports it
    gpu_memory_utilization: float = 0.9  # [--gpu-memory-utilization]
    max_model_len: int | None = None  # [--max-model-len] None: the model's window
    max_num_seqs: int = VLLM_MAX_NUM_SEQS  # [--max-num-seqs]
    max_num_batched_tokens: int | None = None  # [--max-num-batched-tokens] None: max(max_model_len, 2048)
    block_size: int = VLLM_BLOCK_SIZE  # [--block-size]
    non_torch_bytes: int = VLLM_NON_TORCH_BYTES
    tensor_parallel: int = 1  # [-tp] weights and KV heads split over this many GPUs (estimate per GPU)

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(f"gpu_memory_utilization must be in (0, 1] (got {self.gpu_memory_utilization})")


def vllm_estimate(spec: AnySpec, request: Request, options: VllmOptions | None = None) -> EngineEstimate:
    """vLLM's start-up budget for `spec` on one GPU of `options.total_memory_bytes`."""
    opt = options or VllmOptions()
    g = archs.geometry(spec)
    if g.refusals.get("vllm"):
        raise UsageError(g.refusals["vllm"])
    if opt.total_memory_bytes is None:
        raise UsageError("the vLLM profile needs the GPU's memory (--gpu or --vram)")
    r = resolve(spec, request)
    att = r.att
    tp = opt.tensor_parallel
    window = att.context_window or 4096
    max_model_len = opt.max_model_len or request.context or window
    batched = opt.max_num_batched_tokens or max(max_model_len, VLLM_MIN_BATCHED_TOKENS)
    usable = int(opt.total_memory_bytes * opt.gpu_memory_utilization)
    weights = sum(c.bytes for c in r.components) // tp
    # The layers' temporaries for the profile batch (the same per-layer peak as memory.stage_peak, one
    # sequence of `batched` tokens; with SDPA/flash attention no score matrix), against the sampler's.
    layer_peak = max(stage_peak(st, 1, r.dtype.activation_bytes) for st in stages(spec, batched, r.source, r.images)) // tp
    sampler = int(VLLM_SAMPLER_LOGITS_COPIES * min(opt.max_num_seqs, batched) * vocab_size(spec) * 4)
    activation = max(layer_peak, sampler)
    # KV: vLLM gives every attention layer blocks -- mllama's cross-attention layers too.
    layers = att.self_layers + att.cross_layers
    per_token = 2 * layers * r.kv.nbytes(att.self_width) // tp  # KV heads are split over the GPUs
    block_bytes = per_token * opt.block_size
    available = usable - weights - opt.non_torch_bytes - activation
    blocks = max(available, 0) // block_bytes
    kv_tokens = blocks * opt.block_size
    need = max_model_len + (r.source if g.vision_cross_attention else 0)
    fits = kv_tokens >= need
    warnings = []
    if available <= 0:
        warnings.append("no memory left for the KV cache: vLLM stops with 'No available memory for the cache blocks'")
    elif not fits:
        warnings.append(f"the KV pool holds {kv_tokens} tokens, fewer than max_model_len {need}: vLLM refuses to start "
                        f"(lower --max-model-len to {kv_tokens} or raise --gpu-memory-utilization)")
    notes = [f"vLLM takes {opt.gpu_memory_utilization:.2f} of {opt.total_memory_bytes / GIB:.2f} GiB up front; "
             f"the KV pool holds {kv_tokens} tokens ({blocks} blocks of {opt.block_size}), "
             f"{kv_tokens // max(need, 1)} full-length sequences"]
    if g.sliding_window:
        # Not modelled: vLLM v1's hybrid KV cache manager (vllm/v1/core/kv_cache_coordinator.py,
        # SlidingWindowSpec in vllm/v1/kv_cache_interface.py) pages sliding layers only over their
        # window plus the scheduled tokens, so a request needs fewer blocks than counted here.
        notes.append(f"sliding-window layers (window {g.sliding_window}) are counted as full attention: vLLM's hybrid "
                     "allocator holds only their window, so the real pool fits more tokens than shown")
    if g.vision_cross_attention:
        notes.append("the KV pool spans the cross-attention layers too; the vision profile run is not calibrated "
                     "(vLLM profiles max_num_seqs images and can take tens of GiB)")
    buffers = (
        Buffer("weights", weights, "gpu", "weights", f"{r.dtype.name} weights" + (f" / {tp} GPUs" if tp > 1 else "")),
        Buffer("non-torch memory", opt.non_torch_bytes, "gpu", "overhead",
               "CUDA context, cuBLAS workspaces, NCCL: 1.79 GiB printed for Llama-3-8B on an H100 (vLLM PR #10511)"),
        Buffer("activation peak (profile run)", activation, "gpu", "compute",
               f"max(layers over {batched} tokens: {layer_peak} B, sampler: {VLLM_SAMPLER_LOGITS_COPIES} x "
               f"{min(opt.max_num_seqs, batched)} seqs x {vocab_size(spec)} x 4 B)"),
        Buffer("KV cache blocks", blocks * block_bytes, "gpu", "kv_self",
               f"{blocks} blocks x {opt.block_size} tokens x 2 x {layers} layers x {att.self_width} x {r.kv.name}"),
    )
    facts: dict[str, int | bool | str] = {
        "usable_bytes": usable, "kv_tokens": kv_tokens, "kv_blocks": blocks, "max_model_len": max_model_len,
        "fits_window": fits, "max_num_batched_tokens": batched, "gpu_memory_utilization_pct": round(opt.gpu_memory_utilization * 100),
    }
    return EngineEstimate("vllm", spec.id, spec.architecture, r.dtype.name, r.kv.name, max_model_len, kv_tokens,
                          buffers, facts, tuple(notes + list(r.notes)), tuple(warnings))
