"""ollama: llama.cpp with ollama's defaults, by release line (OLLAMA_RELEASES: default context by VRAM, parallel
requests, flash attention for its llama.cpp runner and for its Go engine, the llama-server runner of v0.30 with its
automatic batch and fit target), the free memory its scheduler keeps per GPU, and how the scheduler places a
model on several GPUs. Checked against five ollama logs (tests/engines/data/calibration_extra.yaml). Llama 3.2
Vision runs in ollama's own engine; its caches follow ollama's estimate (fs/ggml/ggml.go GraphSize)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import archs
from ..archs import caches
from ..archs.base import uniform_width
from ..errors import UsageError
from ..memory import AnySpec, Request, resolve
from ..tensors import model_tensors
from .base import GIB, MIB, Buffer, EngineEstimate, aligned_sum, pad
from .llamacpp import (
    F32_BYTES,
    GGML_CUDA_ALIGNMENT,
    LLAMACPP_CACHE_KINDS,
    LLAMACPP_FIT_TARGET_BYTES,
    LLAMACPP_VERSIONS,
    MMPROJ,
    LlamaCppOptions,
    MmprojFile,
    check_architecture,
    compute_bytes,
    gguf_storage,
    gguf_tensors,
    llamacpp_estimate,
    lm_shape,
    mmproj_file_bytes,
)

# ollama discover/gpu.go: `cudaMinimumMemory = 457 * format.MebiByte` (rocm the same); in ollama's tree
# of 2026-08 (fb30760) ml/device.go `DeviceInfo.MinimumMemory()`: 457 MiB (Metal 512). The scheduler
# keeps this much free on every GPU when deciding how many layers fit.
OLLAMA_MINIMUM_MEMORY_BYTES = 457 * MIB
# The default num_ctx by VRAM. ollama's docs/context-length.mdx says "< 24 GiB VRAM: 4k context, 24-48 GiB
# VRAM: 32k context, >= 48 GiB VRAM: 256k context", but its server decides with lower thresholds, on the sum
# of every GPU's total memory less OLLAMA_GPU_OVERHEAD: server/routes.go `Serve` (commit 0334ffa62 "server:
# use tiered VRAM-based default context length", 2026-01-27; unchanged at fb30760, 2026-08-21):
# `case totalVRAM >= 47*format.GibiByte: 262144; case totalVRAM >= 23*format.GibiByte: 32768; default: 4096`
# ("slightly lower thresholds (47/23 GiB vs. 48/24 GiB) to account for small differences in the exact
# value"), so a 24 GB card (23.99 GiB) gets 32768. Before: 4096 since PR #10364 2025-04-21, 2048 before that.
OLLAMA_CONTEXT_TIERS = ((23 * GIB, 4096), (47 * GIB, 32768), (None, 262144))
# ollama server/sched.go `defaultParallel`: 4 (or 1 by free memory) before v0.6.7; 2 from PR #10468
# (db428adbb, 2025-04-29, first tag v0.6.7; v0.7.0 logs `parallel=2` and `--ctx-size 8192` for num_ctx 4096);
# 1 from PR #11330 'Reduce default parallelism to 1' (20c3266e9, 2025-07-08, first tag v0.10.0). Per release:
# OllamaRelease.default_parallel.
OLLAMA_DEFAULT_PARALLEL = 1
# ollama fs/ggml/ggml.go `OllamaEngineRequired()` (v0.17.0): the architectures that run in ollama's own Go engine
# (llm/server.go: `if envconfig.NewEngine() || f.KV().OllamaEngineRequired()`); every other GGUF runs in the
# CGO llama runner (llama.cpp's llama_context) until v0.30
OLLAMA_ENGINE_ARCHITECTURES = frozenset(
    {"bert", "deepseek2", "gemma3", "gemma3n", "gptoss", "gpt-oss", "llama4", "mistral3", "mllama", "olmo3"}
    | {"qwen25vl", "qwen3", "qwen3moe", "qwen3next", "qwen3vl", "qwen3vlmoe", "glm4moelite", "lfm2"}
    # Gemma 4 (April 2026, before v0.30): ollama's later fs/ggml/ggml.go lists "gemma4" too (model/models/gemma4).
    # Its gemma3n keeps the cache layout llama.cpp has: model/models/gemma3n/model_text.go gives the first
    # block_count - attention.shared_kv_layers layers a cache and points each shared one at the last sliding or full
    # one (`cache.SetLayer(firstSharedKeyValue - 2 / - 1)`, no keys or values computed)
    | {"gemma4"}
)
# `ollama pull llama3.1` / `ollama run qwen2.5:7b`: the library's default tags are 4-bit k-quants
# (ollama.com/library: "latest" = the "*-instruct-q4_K_M" tag of the model, e.g. llama3.1:8b ->
# llama3.1:8b-instruct-q4_K_M), so without --dtype the ollama profile weighs a Q4_K_M file.
OLLAMA_DEFAULT_DTYPE = "q4_k_m"
# ollama fs/ggml/ggml.go `FlashAttention()`: the architectures ollama turns flash attention on for by
# default (bert, gemma3, gpt-oss, qwen3 ...). llama, mistral and llava are not among them, so
# OLLAMA_FLASH_ATTENTION=1 is needed.
OLLAMA_FLASH_ATTN_ARCHITECTURES = frozenset({"gemma3", "gptoss", "qwen3", "qwen3moe", "mistral3", "bert"})


@dataclass(frozen=True)
class OllamaRelease:
    """What an ollama release line does by default, each from its source (ollama/ollama, tags by `git tag
    --contains`)."""

    key: str
    since: str
    source: str
    vram_context_tiers: bool  # the default num_ctx by VRAM (else 4096)
    # the GGML runner is llama-server started with `--flash-attn auto` on GPUs that support it, for every
    # architecture (else ollama's per-architecture list, OLLAMA_FLASH_ATTN_ARCHITECTURES)
    llama_server_runner: bool
    default_parallel: int = OLLAMA_DEFAULT_PARALLEL  # OLLAMA_NUM_PARALLEL unset (server/sched.go defaultParallel)
    # the CGO llama runner is loaded with FlashAttention:Auto (llama.cpp decides: on where the GPU supports it);
    # the Go engine's architectures (OLLAMA_ENGINE_ARCHITECTURES) keep ollama's per-architecture list
    llama_runner_fa_auto: bool = False


OLLAMA_RELEASES: dict[str, OllamaRelease] = {
    r.key: r
    for r in (
        OllamaRelease(
            "0.6",
            "v0.6.7 to v0.9.6",
            "PR #10364 (2025-04-21): default num_ctx 4096; PR #10468 (first tag v0.6.7): 2 parallel requests "
            "(num_ctx x 2 cells); flash attention only for the architectures of fs/ggml/ggml.go FlashAttention()",
            False,
            False,
            default_parallel=2,
        ),
        OllamaRelease(
            "0.10",
            "v0.10.0 to v0.13.3",
            "PR #11330 'Reduce default parallelism to 1' (2025-07-08, first tag v0.10.0); num_ctx 4096; flash "
            "attention only for the architectures of fs/ggml/ggml.go FlashAttention()",
            False,
            False,
        ),
        OllamaRelease(
            "0.13",
            "v0.13.4 to v0.15.4",
            "PR #13052 'flash attn: add auto mode for llama engine' (bd6c1d6b4, 2025-12-12, first tag v0.13.4): "
            "llm/server.go loads the llama runner with FlashAttention:Auto; the Go engine's architectures keep "
            "the FlashAttention() list",
            False,
            False,
            llama_runner_fa_auto=True,
        ),
        OllamaRelease(
            "0.15",
            "v0.15.5 to v0.29.x",
            "commit 0334ffa62 'server: use tiered VRAM-based default context "
            "length' (2026-01-27, first in v0.15.5): server/routes.go 23/47 GiB tiers; the llama runner's "
            "FlashAttention:Auto as 0.13",
            True,
            False,
            llama_runner_fa_auto=True,
        ),
        OllamaRelease(
            "0.30",
            "v0.30.0 on",
            "ollama#16031 'runner: Remove CGO engines, use llama-server exclusively for "
            "GGML models' (2026-05-29, first in v0.30.0): llm/llama_server.go starts llama-server with -c num_ctx x "
            "parallel, -np parallel and `--flash-attn auto` (LlamaServerFlashAttention: auto wherever "
            "ml.FlashAttentionSupported, i.e. CUDA compute 7.0+ but 7.2 -- 6.0+ from v0.31.2, ollama#16994 -- ROCm, "
            "Metal, Vulkan)",
            True,
            True,
        ),
    )
}
OLLAMA_DEFAULT_RELEASE = "0.30"


@dataclass(frozen=True)
class OllamaOptions:
    """ollama settings (Modelfile parameter / environment variable in brackets)."""

    num_ctx: int | None = None  # [num_ctx, OLLAMA_CONTEXT_LENGTH] None: the VRAM tier (needs vram_bytes)
    num_parallel: int | None = None  # [OLLAMA_NUM_PARALLEL] None: the release's default (2 in 0.6, then 1)
    flash_attn: bool | None = None  # [OLLAMA_FLASH_ATTENTION] None: ollama's per-architecture default
    # [num_batch] passed to llama.cpp as --batch-size (and so the micro-batch); None: ollama's default, 512, which
    # v0.30+ raises by context and headroom (ollama_generation_batch)
    num_batch: int | None = None
    num_gpu: int | None = None  # [num_gpu] layers on the GPU; None: as many as fit (here: all)
    vram_bytes: int | None = None  # the GPU's memory, to pick the default context tier
    gpu_overhead_bytes: int = 0  # [OLLAMA_GPU_OVERHEAD]
    version: str = "current"  # the llama.cpp ollama bundles
    release: str = OLLAMA_DEFAULT_RELEASE  # [--ollama-version] a key of OLLAMA_RELEASES
    # [--mmproj FILE] the projector GGUF of a vision model: `ollama create`'s Modelfile takes it as a second FROM
    # line after the model's (ollama/ollama issue #9780)
    mmproj_file: MmprojFile | None = None  # read at the edge (cli/engine_options.py read_mmproj)
    gpus: int = 1  # identical GPUs the server sees (--gpu 2xrtx3090); the scheduler decides how many it uses
    use_gpus: int | None = None  # how many of them the model is placed on; None: as the scheduler decides
    sched_spread: bool = False  # [OLLAMA_SCHED_SPREAD] always spread over every GPU
    # DeepSeek V2/V3: False for a library file converted before llama.cpp PR #12801 (full-head cache)
    mla_latent: bool = True

    def __post_init__(self) -> None:
        if self.release not in OLLAMA_RELEASES:
            raise UsageError(f"unknown ollama version {self.release!r}; choose one of {', '.join(OLLAMA_RELEASES)}")


def expert_offload_refusal(flag: str) -> str:
    """Why ollama takes no --n-cpu-moe / --cpu-moe: it has no such option. Its Modelfile parameters
    (api/types.go Runner: num_ctx, num_batch, num_gpu, main_gpu, use_mmap, num_thread) place whole
    layers; the pull requests that would pass llama.cpp's flag through were not merged (ollama#12333
    'feat: add support for MoE offloading', declined 2025-09-18: "we want to be able to configure this
    automatically based on available memory"; #16688 closed; #16146 open; none in ollama's tree at
    fb30760, 2026-08-21). Since ollama#16031 (2026-05-29) its GGML runner is llama-server started
    without -ngl (llm/llama_server.go: "let llama-server auto-detect"), and llama.cpp's automatic fit
    (llama_params_fit, step 3: "for a MoE model, same as dense model but with all MoE tensors in system
    memory", then overflowing layers keep `blk.N.ffn_(up|down|gate_up|gate)_(ch|)exps` on the host)
    chooses the expert placement itself: automatic, not a number the user gives, and not modelled here."""
    return (
        f"{flag} is llama.cpp's: ollama has no expert-offload option (num_gpu places whole layers; since "
        "ollama#16031 its llama-server runner fits experts to memory on its own). Use --engine llama.cpp"
    )


def ollama_default_context(vram_bytes: int | None, gpu_overhead_bytes: int = 0) -> int:
    """The server's default num_ctx for GPUs of `vram_bytes` in all (server/routes.go: total memory less
    OLLAMA_GPU_OVERHEAD; None: the smallest tier)."""
    if vram_bytes is not None:
        vram_bytes -= gpu_overhead_bytes
    for limit, ctx in OLLAMA_CONTEXT_TIERS:
        if vram_bytes is None or limit is None or vram_bytes < limit:
            return ctx
    return OLLAMA_CONTEXT_TIERS[-1][1]


# llm/llama_server.go (fb30760): `mmprojOffloadHeadroom = 1 << 30` ("leaves 1 GiB for backend buffers beyond
# projector weights")
MMPROJ_OFFLOAD_HEADROOM_BYTES = 1 << 30
# server/sched.go bestSingleGPUFit (fb30760): one GPU takes the model when `predictedVRAM <= available*80/100`
OLLAMA_SINGLE_GPU_SHARE = 0.8


OLLAMA_DEFAULT_BATCH = 512  # api/types.go DefaultOptions NumBatch


def ollama_generation_batch(n_ctx: int, predicted: int, available: int | None, flash_attn: bool) -> int:
    """v0.30+ server/sched.go automaticGenerationBatch (ollama#16031), for a num_batch the user did not set:
    with flash attention off on CUDA, 512; else 2048 above 32768 cells, 1024 above 4096, 512 otherwise, lowered
    while it does not fit: the prediction within 80 % of the free memory, within 60 % (2048) or 75 % (1024) of
    it, and room in that 80 % for the batch's surcharge (2 GiB for 2048, 768 MiB for 1024). Without a card
    (no free memory known) the context alone decides, as ollama's generationBatchFits does."""
    if not flash_attn:
        return OLLAMA_DEFAULT_BATCH  # (256 on CUDA cards of 8 GiB or less above 4096 cells: not modelled)
    batch = 2048 if n_ctx > 32768 else 1024 if n_ctx > 4096 else OLLAMA_DEFAULT_BATCH
    surcharge = {2048: 2 * GIB, 1024: 768 * MIB}
    headroom = {2048: 0.60, 1024: 0.75}
    while batch > OLLAMA_DEFAULT_BATCH and available:
        threshold = available * 80 // 100
        if (
            predicted <= threshold
            and predicted <= available * headroom[batch]
            and surcharge[batch] <= threshold - predicted
        ):
            break
        batch = 1024 if batch > 1024 else OLLAMA_DEFAULT_BATCH
    return batch


def ollama_predicted_vram(spec: AnySpec, request: Request, n_ctx: int, mla_latent: bool = True) -> int:
    """ollama's own pre-load guess (llm/llama_server.go PredictServerVRAM, v0.30+): the GGUF file's size plus
    `2 * layers * kv_heads_min * (embedding_length / head_count_max) * context * 2` bytes of f16 cache, with
    context = num_ctx x parallel (server/sched.go effectiveLlamaServerContext). Here the file's size is the
    sum of its tensors in the request's type."""
    r = resolve(spec, request)
    tensors = gguf_tensors(spec)
    storage = gguf_storage(tensors, r.dtype, spec)
    weights = sum(s.nbytes(x.numel) for x, s in zip(tensors, storage, strict=True))
    g = archs.geometry(spec)
    layers = g.self_layers
    if not layers:
        return weights
    cfg = spec.config
    kv_heads = min(layer.kv_heads for layer in layers) or 1
    if g.mla is not None:
        # the GGUF's head_count_kv: 1 for a latent-attention conversion (PR #12801), every head before it
        kv_heads = 1 if mla_latent else g.mla[2]
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
    head_dim = hidden // heads if heads else 0
    n_layers = int(getattr(cfg, "num_hidden_layers", 0) or len(layers))
    return weights + 2 * n_layers * kv_heads * head_dim * n_ctx * 2


def ollama_gpus(
    spec: AnySpec, request: Request, opt: OllamaOptions, release: OllamaRelease, n_ctx: int
) -> tuple[int, str]:
    """How many of `opt.gpus` identical cards ollama's scheduler gives the model, and why.

    v0.30+ (server/sched.go selectLlamaServerPlacement): unless OLLAMA_SCHED_SPREAD is set, the model goes to the
    one GPU with the most free memory when PredictServerVRAM is at most 80 % of that GPU's free memory
    (bestSingleGPUFit, then `--split-mode none --main-gpu 0` with that GPU alone visible); otherwise to every
    GPU of the library, whose layers llama-server's --fit spreads by free memory. Before v0.30 (llm/memory.go
    pickBestFullFitByLibrary, v0.12.0; llm/server.go assignLayers, v0.17.0): "pack into as few GPUs as possible,
    starting from 1 GPU" -- the fewest cards on which ollama's whole estimate fits (each card's share less its
    457 MiB minimum), layers spread evenly over identical cards."""
    if opt.use_gpus is not None:
        return min(opt.use_gpus, opt.gpus), ""
    if opt.gpus <= 1:
        return 1, ""
    if opt.sched_spread:
        return opt.gpus, f"OLLAMA_SCHED_SPREAD=1: layers spread over all {opt.gpus} GPUs"
    if opt.vram_bytes is None:
        return opt.gpus, ""
    if not release.llama_server_runner:
        for n in range(1, opt.gpus):
            est = ollama_estimate(spec, request, replace(opt, use_gpus=n))
            per_card: dict[int, int] = {}
            for b in est.buffers:
                if b.placement == "gpu":
                    per_card[b.device] = per_card.get(b.device, 0) + b.bytes
            if max(per_card.values(), default=0) <= opt.vram_bytes:
                return n, (
                    f"{n} GPU{'s' if n > 1 else ''} of {opt.gpus}: ollama {release.since} packs a model onto as few "
                    "cards as hold it whole (llm/memory.go pickBestFullFitByLibrary); OLLAMA_SCHED_SPREAD=1 spreads it"
                )
        return opt.gpus, f"layers spread over {opt.gpus} GPUs: fewer do not hold the whole model"
    predicted = ollama_predicted_vram(spec, request, n_ctx, opt.mla_latent)
    free = opt.vram_bytes - opt.gpu_overhead_bytes
    if predicted <= free * OLLAMA_SINGLE_GPU_SHARE:
        return 1, (
            f"one GPU of {opt.gpus}: ollama's prediction ({predicted / GIB:.1f} GiB: file + f16 cache) is within "
            "80 % of one card (server/sched.go bestSingleGPUFit); OLLAMA_SCHED_SPREAD=1 spreads it over all"
        )
    return opt.gpus, (
        f"layers spread over {opt.gpus} GPUs: ollama's prediction ({predicted / GIB:.1f} GiB) is above 80 % of one "
        "card (server/sched.go selectLlamaServerPlacement)"
    )


def ollama_estimate(spec: AnySpec, request: Request, options: OllamaOptions | None = None) -> EngineEstimate:
    """llama.cpp as ollama runs it: num_ctx x num_parallel cells, flash attention by the release's rule, the
    output buffer sized with embeddings, 457 MiB per GPU kept free by its scheduler, the cards it places the
    model on (ollama_gpus), and from v0.30 llama-server's batch (ollama_generation_batch) and fit target."""
    opt = options or OllamaOptions()
    check_architecture(spec, "ollama")
    release = OLLAMA_RELEASES[opt.release]
    if not release.llama_server_runner:
        # By kind: the DSA indexer's keys are llama.cpp's llama_kv_cache_dsa (ggml-org/llama.cpp PR #23346, opened
        # 2026-05-19), which only ollama's llama-server runner (v0.30+, ollama#16031, 2026-05-29) can have; the CGO
        # runner's vendored llama.cpp (ollama llama/llama.cpp) has no llama-kv-cache-dsa.cpp in any stored version.
        missing = caches.unmodelled(archs.geometry(spec).caches, LLAMACPP_CACHE_KINDS - {caches.IndexerKeys})
        if "IndexerKeys" in missing:
            raise UsageError(
                f"ollama {release.since}: its llama.cpp runner predates the sparse-attention indexer-key cache "
                "(llama.cpp PR #23346, May 2026) that this model keeps; ollama v0.30+ runs llama-server "
                "(--ollama-version 0.30)"
            )
    default_ctx = (
        ollama_default_context(
            None if opt.vram_bytes is None else opt.vram_bytes * opt.gpus, opt.gpu_overhead_bytes * opt.gpus
        )
        if release.vram_context_tiers
        else OLLAMA_CONTEXT_TIERS[0][1]
    )
    num_ctx = request.context or opt.num_ctx or default_ctx
    notes = []
    if request.dtype is None and getattr(spec, "quantization", None) is None:
        request = replace(request, dtype=OLLAMA_DEFAULT_DTYPE)
        notes.append(
            f"weights in {OLLAMA_DEFAULT_DTYPE}: ollama's library tags default to Q4_K_M "
            "(`ollama run MODEL` pulls MODEL:latest, a q4_K_M file); give --dtype for another tag"
        )
    warnings: list[str] = []
    if not (request.context or opt.num_ctx):
        notes.append(
            f"num_ctx {num_ctx}: ollama's default for "
            + ("an unknown GPU (the smallest tier)" if opt.vram_bytes is None else "this GPU's memory")
            + " (ollama server/routes.go: 4096 below 23 GiB, 32768 below 47 GiB, else 262144)"
            if release.vram_context_tiers
            else f"num_ctx {num_ctx}: ollama {release.since}'s default"
        )
    window = archs.geometry(spec).context_window
    if window and num_ctx > window:
        # ollama llm/server.go (v0.33.2 L112-115, the same since 2024): `if opts.NumCtx > int(trainCtx) &&
        # trainCtx > 0 { slog.Warn("requested context size too large for model", ...); opts.NumCtx =
        # int(trainCtx) }`, before KvSize = NumCtx x numParallel: the cache is sized for the trained window
        (warnings if request.context or opt.num_ctx else notes).append(
            f"num_ctx {num_ctx} is beyond the model's trained window of {window} tokens: ollama lowers it to "
            f"{window} ('requested context size too large for model') and sizes the KV cache for that"
        )
        num_ctx = window
    parallel = opt.num_parallel or release.default_parallel
    if request.batch > 1:
        parallel = request.batch
    gguf_arch = archs.geometry(spec).gguf_architecture or spec.architecture  # ollama reads the GGUF's name
    if opt.flash_attn is not None:
        fa = opt.flash_attn
    elif release.llama_server_runner:
        fa = True  # llama-server --flash-attn auto: on where the GPU supports it (every card this estimates for)
        notes.append(
            f"flash attention on: ollama {release.since} starts llama-server with --flash-attn auto "
            "(llm/llama_server.go; off on CUDA cards below compute 6.0 -- 7.0 before v0.31.2 -- and on 7.2)"
        )
    elif release.llama_runner_fa_auto and gguf_arch not in OLLAMA_ENGINE_ARCHITECTURES:
        fa = True  # the llama runner's FlashAttention:Auto: llama.cpp turns it on where the GPU supports it
        notes.append(
            f"flash attention on: ollama {release.since} loads {gguf_arch} in its llama.cpp runner with "
            "FlashAttention:Auto (PR #13052), which llama.cpp turns on where the GPU supports it"
        )
    else:
        fa = gguf_arch in OLLAMA_FLASH_ATTN_ARCHITECTURES
    n_ctx = (
        num_ctx * parallel
    )  # ollama llm/server.go: --ctx-size num_ctx * numParallel; GraphSize: context *= numParallel
    extra: list[Buffer] = []
    g = archs.geometry(spec)
    if g.vision_cross_attention:
        xkv = g.cross_layers
        cross = len(xkv)
        tiles, per_tile = g.vision_tiles or (0, 0)
        per_layer = (xkv[0].key_width + xkv[0].value_width) * F32_BYTES * per_tile * tiles
        extra.append(
            Buffer(
                "cross-attention KV (vision)",
                cross * per_layer * parallel,
                "gpu",
                "kv_cross",
                f"{cross} cross layers x {xkv[0].kv_heads} KV heads x 2 x {xkv[0].key_dim} x 4 B x "
                f"{per_tile} x {tiles} tiles (fs/ggml/ggml.go GraphSize, mllama: f32)",
            )
        )
    gpus, placement_note = ollama_gpus(spec, request, opt, release, n_ctx)
    if placement_note:
        notes.append(placement_note)
    num_batch = opt.num_batch or OLLAMA_DEFAULT_BATCH
    if opt.num_batch is None and release.llama_server_runner:
        available = None if opt.vram_bytes is None else opt.vram_bytes * gpus
        num_batch = ollama_generation_batch(
            n_ctx, ollama_predicted_vram(spec, request, n_ctx, opt.mla_latent), available, fa
        )
        if num_batch != OLLAMA_DEFAULT_BATCH:
            notes.append(
                f"num_batch {num_batch}: ollama {release.since} raises llama-server's -b/-ub for a {n_ctx}-cell "
                "context when its prediction leaves the headroom (server/sched.go automaticGenerationBatch)"
            )
    for d in range(gpus):
        extra.append(
            Buffer(
                "ollama minimum free memory",
                OLLAMA_MINIMUM_MEMORY_BYTES + opt.gpu_overhead_bytes,
                "gpu",
                "overhead",
                "kept free per GPU by the scheduler: discover/gpu.go cudaMinimumMemory = 457 MiB"
                + (" + OLLAMA_GPU_OVERHEAD" if opt.gpu_overhead_bytes else ""),
                d,
            )
        )
    # llm/llama_server.go mmprojMemoryRequirement: the projector's tensor bytes (the v./mm./a. tensors of the model
    # file, or every tensor of the second blob), unaligned
    projector = 0
    if release.llama_server_runner and any(t.component in MMPROJ for t in model_tensors(spec)):
        projector = opt.mmproj_file.device_bytes(False) if opt.mmproj_file is not None else mmproj_file_bytes(spec)
    mmproj_on_gpu = True
    if projector:
        # shouldDisableMMProjOffload: --no-mmproj-offload (the projector and its graph on the CPU) for num_gpu 0,
        # for a num_gpu below the model's layers + 1, or when a card has less than the projector + 1 GiB in all
        n_layers = archs.geometry(spec).decoder_layers
        why = (
            "num_gpu 0"
            if opt.num_gpu == 0
            else f"num_gpu {opt.num_gpu} offloads part of the text model"
            if opt.num_gpu is not None and opt.num_gpu < n_layers + 1
            else "the card has less than the projector + 1 GiB"
            if opt.vram_bytes is not None and opt.vram_bytes < projector + MMPROJ_OFFLOAD_HEADROOM_BYTES
            else ""
        )
        if why:
            mmproj_on_gpu = False
            notes.append(
                f"the projector stays in host memory: {why}, so ollama starts llama-server with --no-mmproj-offload "
                "(llm/llama_server.go shouldDisableMMProjOffload)"
            )
    lopt = LlamaCppOptions(
        mmproj_on_gpu=mmproj_on_gpu,
        n_ubatch=num_batch,
        flash_attn=fa,
        parallel=parallel,
        gpu_layers=opt.num_gpu,
        version=opt.version,
        cuda_overhead_bytes=0,
        mmproj_file=opt.mmproj_file,
        gpus=gpus,
        mla_latent=opt.mla_latent,
    )
    req = replace(request, context=None, batch=1)
    if g.vision_cross_attention:
        mllama = _ollama_mllama(spec, req, lopt, n_ctx, num_ctx, parallel, tuple(extra), tuple(notes))
        return replace(mllama, warnings=tuple(warnings) + mllama.warnings)
    est = llamacpp_estimate(
        spec, req, lopt, engine="ollama", n_ctx=n_ctx, extra=tuple(extra), notes=tuple(notes), output_embd=True
    )
    # v0.30+: llama-server started without -ngl (llm/llama_server.go: "NumGPU == -1 (default): don't pass -ngl,
    # let llama-server auto-detect"), so its --fit places the layers keeping LLAMACPP_FIT_TARGET_BYTES free per
    # device; the CGO runners before had no such fit (the scheduler's 457 MiB minimum is a buffer above)
    fit_target = LLAMACPP_FIT_TARGET_BYTES if release.llama_server_runner and opt.num_gpu is None else 0
    out_notes = tuple(n for n in est.notes if "CUDA context" not in n)
    if not release.llama_server_runner and gguf_arch in OLLAMA_ENGINE_ARCHITECTURES:
        out_notes += (
            f"ollama {release.since} runs {gguf_arch} in its own Go engine (fs/ggml/ggml.go OllamaEngineRequired), "
            "not llama.cpp's context: its buffers are estimated as llama.cpp's",
        )
    if fit_target and projector and mmproj_on_gpu:
        # llm/llama_server.go: a vision model's projector (inline v./mm. tensors of gemma3, mistral3, qwen2.5-VL...
        # passed as --mmproj MODEL, or the second blob) makes the fit target LLAMA_ARG_FIT_TARGET =
        # ceil((projector bytes + mmprojOffloadHeadroom 1 GiB) / MiB) MiB instead of llama-server's 1024 MiB
        # (mmprojFitTargetMiB, "a stopgap until fit accounts for mmproj memory directly"), unless a card has less
        # than that in all (shouldDisableMMProjOffload "limited-vram": --no-mmproj-offload)
        fit_target = -(-(projector + MMPROJ_OFFLOAD_HEADROOM_BYTES) // MIB) * MIB
        out_notes += (
            f"fit target {fit_target // MIB} MiB: ollama sets LLAMA_ARG_FIT_TARGET to the projector "
            f"({projector / MIB:.0f} MiB) + 1 GiB (llm/llama_server.go mmprojFitTargetMiB)",
        )
    facts = dict(
        est.facts,
        num_ctx=num_ctx,
        num_parallel=parallel,
        fit_target_bytes=fit_target,
        ollama_gpus=gpus,
    )
    return replace(est, facts=facts, notes=out_notes, context_tokens=num_ctx, warnings=tuple(warnings) + est.warnings)


def _ollama_mllama(
    spec: AnySpec,
    req: Request,
    opt: LlamaCppOptions,
    n_ctx: int,
    num_ctx: int,
    parallel: int,
    extra: tuple[Buffer, ...],
    notes: tuple[str, ...],
) -> EngineEstimate:
    """Llama 3.2 Vision in ollama's own engine: the text model's self-attention layers cache num_ctx
    cells, the cross-attention layers the vision features; the vision model is a second GGUF file."""
    r = resolve(spec, req)
    g = archs.geometry(spec)
    tensors = model_tensors(spec)
    storage = gguf_storage(tensors, r.dtype, spec)
    text = aligned_sum(
        (
            s.nbytes(x.numel)
            for x, s in zip(tensors, storage, strict=True)
            if x.component not in MMPROJ and x.role != "token_embd"
        ),
        GGML_CUDA_ALIGNMENT,
    )
    embd = aligned_sum(
        (s.nbytes(x.numel) for x, s in zip(tensors, storage, strict=True) if x.role == "token_embd"),
        GGML_CUDA_ALIGNMENT,
    )
    vision = aligned_sum(
        (s.nbytes(x.numel) for x, s in zip(tensors, storage, strict=True) if x.component in MMPROJ), GGML_CUDA_ALIGNMENT
    )
    self_layers = len(g.self_layers)
    kv_width = uniform_width(g.self_layers)
    cells = pad(
        n_ctx, LLAMACPP_VERSIONS[opt.version].kv_pad_fa if opt.flash_attn else LLAMACPP_VERSIONS[opt.version].kv_pad
    )
    kv = self_layers * 2 * r.kv.nbytes(kv_width) * cells
    shape = lm_shape(spec)
    ub = min(opt.n_ubatch, cells)
    comp, detail = compute_bytes(shape, cells, ub, bool(opt.flash_attn), logits=True)
    buffers = (
        Buffer("model buffer (CUDA0)", text, "gpu", "weights", "text model GGUF tensors, 128-byte aligned"),
        Buffer("model buffer (CPU): token embedding", embd, "host", "weights", "token_embd in host memory"),
        Buffer("vision model (projector file)", vision, "gpu", "weights", "vision tower and projector, f16"),
        Buffer(
            "KV cache (CUDA0)",
            kv,
            "gpu",
            "kv_self",
            f"{self_layers} self-attention layers x 2 x {kv_width} x {cells} cells x {r.kv.name}",
        ),
        Buffer(
            "compute buffer (CUDA0)",
            comp,
            "gpu",
            "compute",
            f"peak of the worst-case graph: {detail} (text model only; the vision encoder's graph is not calibrated)",
        ),
    ) + extra
    facts: dict[str, int | bool | str] = {
        "n_ctx": cells,
        "num_ctx": num_ctx,
        "num_parallel": parallel,
        "n_ubatch": ub,
        "flash_attn": bool(opt.flash_attn),
    }
    return EngineEstimate(
        "ollama",
        spec.id,
        spec.architecture,
        r.dtype.name,
        r.kv.name,
        num_ctx,
        cells,
        buffers,
        facts,
        notes + ("mllama runs in ollama's own engine; its vision encoder compute buffer is not modelled",),
        (),
    )


__all__ = [
    "MMPROJ_OFFLOAD_HEADROOM_BYTES",
    "OLLAMA_DEFAULT_DTYPE",
    "OLLAMA_DEFAULT_RELEASE",
    "OLLAMA_ENGINE_ARCHITECTURES",
    "OLLAMA_MINIMUM_MEMORY_BYTES",
    "OLLAMA_RELEASES",
    "OllamaOptions",
    "OllamaRelease",
    "expert_offload_refusal",
    "ollama_default_context",
    "ollama_estimate",
    "ollama_generation_batch",
    "ollama_gpus",
    "ollama_predicted_vram",
]
