"""CTranslate2 (faster-whisper): Whisper as most people run it locally.

faster-whisper prints no buffer sizes, so this profile is a component model: the parts that follow
from CTranslate2's source are exact arithmetic, and four constants -- the CUDA context with the
libraries' workspaces and allocator pool (per CUDA major version), the tokens a decoding hypothesis
holds in its self cache, the encoder pass's floor and what int8 runs save -- are fitted to public
whole-device NVML peaks (faster-whisper README and issue #1030; the fit is below).

Weights (CTranslate2 src/models/model.cc, `Model::set_compute_type`): every variable whose name ends in
"weight" is quantizable (`Model::is_quantizable`), i.e. the linear layers *and* the token embedding
(WhisperModel::is_linear_weight only keeps the embedding out of the linear set, not out of int8);
int8 stores one int8 per weight and one float32 scale per output row (src/ops/quantize.cc:
`scale.resize({batch_size})`, docs/quantization.md `scale[i] = 127 / max(abs(W[i,:]))`). Convolution
kernels stay in the float type on CUDA ("quantized convolution is not supported"); biases, layer
norms and position encodings are float. The LM head is the token embedding, stored once (the spec
writer aliases equal variables, python/ctranslate2/specs/model_spec.py `_alias_variables`). The
converter fuses q/k/v (and the cross-attention k/v) into one linear and gives k_proj, which has no
bias, a zero one (converters/utils.py `fuse_linear`).
Compute types (src/types.cc `resolve_compute_type`): "int8" on a float16-saved model (the Systran
conversions faster-whisper downloads) is int8_float16; "default" is the saved type, float16.

Decoding state (src/layers/transformer.cc, src/decoding.cc):
- cross-attention K/V: n_text_layer x 2 x 1500 x d_model per batch item, computed once from the encoder
  output. Beam search does not replicate it per beam since CTranslate2 3.6.0 (b142c826 "Do not
  replicate memory states", `TransformerDecoder::replicate_state`); before it (the "3.5" version key)
  BeamSearch on a GPU tiled every state, the encoder output and its projected keys/values included,
  beam_size times before the first step (v3.5.1 src/decoding.cc: `expand_after_first_step = (device ==
  Device::CPU && ...)` is false on CUDA, then `expand_to_beam_size(state, _beam_size)`). Sampling with
  num_hypotheses > 1 -- faster-whisper's temperature fallback, `num_hypotheses=best_of` -- repeats
  every state, the encoder output included (decoding.cc: `if (num_hypotheses > 1) ... repeat_batch`),
  so a fallback holds best_of copies;
- self-attention K/V: n_text_layer x 2 x d_model per token, per hypothesis (beam x batch, or best_of);
- the encoder output ("memory"): 1500 x d_model per copy.
faster-whisper (transcribe.py): WhisperModel.transcribe decodes one 30 s window at a time with
beam_size 5 at temperature 0 and best_of 5 sampled hypotheses at each fallback temperature
(generate_with_fallback); BatchedInferencePipeline (batch_size, default 8) encodes and decodes a batch
of windows in one generate call at temperatures[0], with no fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from .. import archs
from ..archs.whisper import WhisperSpec
from ..errors import UsageError
from ..memory import AnySpec, Request
from ..tensors import model_tensors
from .base import MIB, Buffer, EngineEstimate

# Compute type -> (bytes per quantized weight, bytes of the float type): src/types.cc compute_type_to_data_type.
COMPUTE_TYPES: dict[str, tuple[int, int]] = {
    "float16": (2, 2),
    "bfloat16": (2, 2),
    "float32": (4, 4),
    "int8_float16": (1, 2),
    "int8_bfloat16": (1, 2),
    "int8_float32": (1, 4),
}
# --dtype / faster-whisper spellings -> CTranslate2 compute type, for a float16-saved model ("default" is
# the saved type; "int8" takes the saved float type: resolve_compute_type, ComputeType::INT8).
COMPUTE_ALIASES = {
    "default": "float16",
    "fp16": "float16",
    "f16": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "f32": "float32",
    "float32": "float32",
    "int8": "int8_float16",
    "int8_float16": "int8_float16",
    "int8_bfloat16": "int8_bfloat16",
    "int8_float32": "int8_float32",
}
SCALE_BYTES = 4  # one float32 scale per quantized row (src/ops/quantize.cc)
FW_BEAM_SIZE = 5  # faster-whisper transcribe(beam_size=5)
FW_BEST_OF = 5  # faster-whisper transcribe(best_of=5)
AUDIO_FRAMES = 1500  # the encoder output of one 30 s window (d_model wide)

# ---- Fitted constants (faster-whisper README NVML peaks; tests/engines/data/measured.yaml and
# calibration_extra.yaml). The model:
#     total = C(cuda) + weights + peak decoding state,
#     state = copies x (cross K/V + encoder output) + hypotheses x T x (self K/V per token)
# Sequential, large-v2/v3, beam 5, fallback on: the fallback phase (5 copies, 5 hypotheses) is the peak.
# 1. T from the two batch_size=8 rows against their batch-1 rows on the same card (RTX 3070 Ti, CUDA 12.4):
#    fp16 6090 - 4525 = 1565 MiB and int8 4500 - 2926 = 1574 MiB = 8 x (cross + memory + 5 T s) -
#    5 x (cross + memory + T s), with cross 234.4 MiB, memory 3.7 MiB, s = 0.156 MiB per token: T = 155
#    (fp16) and 133 (int8). We take T = 150 tokens (a window's prompt and text: faster-whisper conditions
#    on up to 223 previous tokens; batched windows carry none).
# 2. C from one batch-1 row per CUDA generation, given T: 4525 MiB (fp16, CUDA 12.4) -> 274 MiB;
#    4755 MiB (fp16, V100S, CUDA 11.7.1, CTranslate2 3.x) -> 504 MiB. CUDA 11 loads every kernel module
#    of cuBLAS/cuDNN/CTranslate2 at start-up; CUDA 12 loads them lazily (CUDA programming guide, "Lazy
#    Loading" change history: introduced disabled in 11.7, default on Linux from 12.2, everywhere from
#    12.3), which is why the constant is per CUDA major version. The same order of difference was measured
#    for PyTorch's context: 287,047,680 B lazy vs 666,632,192 B eager (pytorch/pytorch PR #86509).
# 3. The encoder pass. Models with a small decoder show a floor the decoding state cannot explain:
#    faster-whisper issue #1030 (same 13-minute audio and NVML script, faster-whisper d57c5b4 on
#    CTranslate2 4.x, so CUDA 12) prints distil-large-v3 fp16 2409 MiB and large-v3-turbo fp16 2537 MiB,
#    i.e. 966 and 994 MiB above their weights, where the decoding state is 99 and 179 MiB. We model the
#    encoder pass as E(b) = E0 + b x (heads x 1500^2 scores + 1500 x FFN) x 2 B, and the peak as the larger
#    of the encoder pass and the decoding state (the allocator pool serves one, then the other). E0 = 605
#    MiB is the mean of the two rows' fits (619 and 592) with the 32-layer, d_model 1280 encoder; how it
#    scales with smaller encoders is not known (no public row), so it is kept whole.
# 4. int8: the fp16/int8 pairs of large-v3 differ by more than their weights (README 1599 MiB, #1030 1568
#    MiB, weights 1459 MiB): int8 runs need 140 and 109 MiB less of everything else; we take 125 MiB.
# Circular: the fp16 batch-1 rows 4525 (C, CUDA 12) and 4755 (C, CUDA 11), the fp16 batch-8 row 6090 (T),
# #1030's distil and turbo fp16 rows (E0), the int8 batch-1 rows 2926 and 2953 (int8 saving). Independent
# checks: int8 batch 8 4500, #1030 large-v3 fp16 4521 and distil int8 1481 (CUDA 12); int8 3091, large-v1
# 4659, medium 2803 and 1939 (CUDA 11).
# What the overhead constant holds and why it does not transfer to every card: it is the whole-device peak less
# the modelled buffers on two cards (RTX 3070 Ti 8 GB, CUDA 12.4; Tesla V100S 32 GB, CUDA 11.7.1), so it holds the
# CUDA context (which depends on the driver, the CUDA version and the card: the local-memory reservation grows with
# the SM count), cuBLAS's and cuDNN's handles and workspaces (CTranslate2 does not call cublasSetWorkspace: cuBLAS
# keeps its own default, which NVIDIA sizes per architecture) and what cudaMallocAsync's pool holds beyond the live
# tensors. No public faster-whisper peak on a card of another size or generation was found to split it; a card far
# from those two can differ by an amount these rows cannot bound. The 3.5-versus-3.6.0 rows (V100S, medium) are the one
# pair whose software differs only in CTranslate2: see CT2_VERSIONS and calibration_extra.yaml's known_gap.
CT2_DECODE_TOKENS = 150
CT2_CUDA_OVERHEAD_BYTES = {12: 274 * MIB, 11: 504 * MIB}
CT2_ENCODER_BASE_BYTES = 605 * MIB
CT2_INT8_SAVING_BYTES = 125 * MIB


@dataclass(frozen=True)
class CTranslate2Version:
    """What changes between CTranslate2 release lines (tags and CHANGELOG of OpenNMT/CTranslate2)."""

    name: str
    cuda: int  # the CUDA major version its GPU wheels are built for (the overhead constant's key)
    beams_share_encoder_state: bool  # beam search keeps one encoder state per batch item (>= 3.6.0)
    since: str
    source: str


CT2_VERSIONS: dict[str, CTranslate2Version] = {
    "3.5": CTranslate2Version(
        "3.5",
        11,
        False,
        "3.0.0 (2022-11-07, Whisper added) to 3.5.1 (2023-02-13)",
        "v3.5.1 src/decoding.cc BeamSearch::search: `expand_after_first_step = (device == Device::CPU && "
        "num_candidates <= vocabulary_size)` is false on CUDA, so `expand_to_beam_size(state, _beam_size)` "
        "tiles every decoder state (ops::Tile), the encoder output and the projected memory keys/values included",
    ),
    "3.6": CTranslate2Version(
        "3.6",
        11,
        True,
        "3.6.0 (2023-02-16) to 3.24.0 (2024-01-08)",
        "b142c826 (PR #1088, v3.6.0) 'Do not replicate memory states': Decoder::replicate_state skips the "
        "states TransformerDecoder::replicate_state names memory*; CHANGELOG 3.6.0 'Reduce the beam search "
        "memory usage'; 3.x wheels: CUDA 11",
    ),
    "4": CTranslate2Version(
        "4",
        12,
        True,
        "4.0.0 (2024-02-15) on: read to 4.8.1 (2026-07-03, the newest stored: 0d8bcd36); 4.8.2 to 4.8.5 (PyPI, "
        "4.8.5 the newest) not stored as source",
        "CHANGELOG 4.0.0: 'This major version introduces the breaking change while updating to cuda 12'; the "
        "beam search state as in 3.6.0 (src/layers/decoder.cc Decoder::replicate_state)",
    ),
}
CT2_LATEST = "4"


def ct2_version_key(version: str | None) -> str:
    """The CT2_VERSIONS key of a version key or a release number (3.5.1, v3.24.0, 4.8.1); None: the newest."""
    if version is None:
        return CT2_LATEST
    v = str(version).strip().lower()
    if v in CT2_VERSIONS:
        return v
    m = re.fullmatch(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", v)
    if m and m.group(1) == "3" and m.group(2) is not None:
        return "3.5" if int(m.group(2)) < 6 else "3.6"
    if m and m.group(1) == "4":
        return "4"
    raise UsageError(
        f"unknown CTranslate2 version {version!r}: give 3.5 (before 3.6.0), 3.6 (3.6.0-3.24.0), 4 (4.x) "
        "or a release number such as 3.24.0 or 4.8.1 (CTranslate2 before 3.0 has no Whisper)"
    )


@dataclass(frozen=True)
class CTranslate2Options:
    """faster-whisper / CTranslate2 settings (faster-whisper argument in brackets)."""

    compute_type: str = "default"  # [WhisperModel(compute_type=)] default, float16, int8_float16, int8, float32, ...
    beam_size: int | None = None  # [transcribe(beam_size=)] None: the request's beams if > 1, else 5
    best_of: int = FW_BEST_OF  # [transcribe(best_of=)] sampled hypotheses at a fallback temperature
    temperature_fallback: bool = True  # [transcribe(temperature=0)] disables it: one temperature, no fallback
    batch_size: int | None = None  # [BatchedInferencePipeline.transcribe(batch_size=)] None: the request's batch
    decode_tokens: int | None = None  # tokens per hypothesis in the self cache; None: the request's context, else 150
    cuda: int | None = None  # CUDA major version of the CTranslate2 build; None: the version's (4.x: 12; 3.x: 11)
    version: str | None = None  # CTranslate2 release line (CT2_VERSIONS key or a release number); None: the newest
    allocator: str = "cuda_malloc_async"  # [CT2_CUDA_ALLOCATOR] cuda_malloc_async (default) or cub_caching

    def __post_init__(self) -> None:
        if self.compute_type.lower() not in COMPUTE_ALIASES:
            raise UsageError(
                f"unknown CTranslate2 compute type {self.compute_type!r}; choose one of "
                "default, float16, bfloat16, float32, int8, int8_float16, int8_bfloat16, int8_float32"
            )
        for name in ("beam_size", "batch_size", "decode_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 (got {value})")
        if self.best_of < 1:
            raise UsageError(f"best_of must be at least 1 (got {self.best_of})")
        ct2_version_key(self.version)  # raises on an unknown version
        if self.allocator not in CT2_ALLOCATORS:
            raise UsageError(
                f"unknown CTranslate2 allocator {self.allocator!r}; choose cuda_malloc_async or cub_caching"
            )
        if self.cuda is not None and self.cuda not in CT2_CUDA_OVERHEAD_BYTES:
            raise UsageError(
                f"cuda must be 11 or 12 (the CUDA major version CTranslate2 was built for), got {self.cuda}"
            )


# CTranslate2's CUDA allocators (src/cuda/allocator.cc, OpenNMT/CTranslate2 4.8.1 and since 2.0.0, PR #684):
# `resolve_cuda_allocator` picks CT2_CUDA_ALLOCATOR, by default "cuda_malloc_async" (cudaMallocAsync: CUDA's
# stream-ordered pool, which the fitted overhead constants were measured with) when every device supports
# memory pools (cudaDevAttrMemoryPoolsSupported), else "cub_caching": cub::CachingDeviceAllocator with
# `bin_growth = 4; min_bin = 3; max_bin = 12; max_cached_bytes = 200 * (1 << 20)` (CT2_CUDA_CACHING_ALLOCATOR_CONFIG
# overrides them). NVIDIA/cub cub/util_allocator.cuh DeviceAllocate: a request is rounded up to the next power of
# bin_growth (NearestPowerOf), at least bin_growth^min_bin = 64 B; above bin_growth^max_bin = 16 MiB it is
# allocated exactly and never cached; DeviceFree keeps a freed block while the cached free bytes stay within
# max_cached_bytes.
CT2_ALLOCATORS = ("cuda_malloc_async", "cub_caching")
CUB_BIN_GROWTH, CUB_MIN_BIN, CUB_MAX_BIN = 4, 3, 12
CUB_MAX_CACHED_BYTES = 200 * (1 << 20)


def cub_block_bytes(nbytes: int) -> int:
    """What cub::CachingDeviceAllocator hands out for a request of `nbytes` (CTranslate2's bin settings)."""
    power, rounded = 0, 1
    while rounded < nbytes:
        rounded *= CUB_BIN_GROWTH
        power += 1
    if power > CUB_MAX_BIN:
        return nbytes
    return CUB_BIN_GROWTH**CUB_MIN_BIN if power < CUB_MIN_BIN else rounded


def ct2_variables(spec: WhisperSpec, compute_type: str) -> list[int]:
    """The bytes of each variable CTranslate2 puts on the device for a Whisper model, one allocation each
    (src/models/model.cc `move_variables_to_device`: `variable = variable.to(device)` per variable), in the
    converter's layout (python/ctranslate2/specs/whisper_spec.py, attention_spec.py: self-attention linear[0]
    is the fused q/k/v, cross-attention linear[0] q and linear[1] the fused k/v; the LM head aliases the
    embedding). int8 weights carry a separate float32 `weight_scale` per row (src/ops/quantize.cc)."""
    wq, wf = COMPUTE_TYPES[compute_type]
    c = spec.config
    d, f = c.d_model, c.encoder_ffn_dim
    out: list[int] = []

    def linear(rows: int, cols: int, bias: bool = True) -> None:
        out.extend([rows * cols + SCALE_BYTES * rows] if wq == 1 else [wq * rows * cols])
        if wq == 1:  # the scale is its own variable
            out[-1] -= SCALE_BYTES * rows
            out.append(SCALE_BYTES * rows)
        if bias:
            out.append(wf * rows)

    def norm() -> None:
        out.extend([wf * d, wf * d])  # gamma, beta

    def ffn(width: int) -> None:
        norm()
        linear(width, d)
        linear(d, width)

    out += [wf * d * c.num_mel_bins * 3, wf * d, wf * d * d * 3, wf * d]  # conv1, conv2 (kernels stay float)
    out.append(wf * c.max_source_positions * d)
    for _ in range(c.encoder_layers):
        norm()
        linear(3 * d, d)
        linear(d, d)
        ffn(f)
    norm()
    linear(c.vocab_size, d, bias=False)  # token embedding = LM head (aliased)
    out.append(wf * c.max_target_positions * d)
    for _ in range(c.decoder_layers):
        norm()
        linear(3 * d, d)
        linear(d, d)
        norm()
        linear(d, d)
        linear(2 * d, d)
        linear(d, d)
        ffn(c.decoder_ffn_dim)
    norm()
    return out


def ct2_weight_bytes(spec: WhisperSpec, compute_type: str) -> int:
    """Bytes of the weights on a CUDA device for `compute_type` (see the module docstring)."""
    wq, wf = COMPUTE_TYPES[compute_type]
    int8 = wq == 1
    total = 0
    for t in model_tensors(spec):
        if len(t.shape) == 2 and t.role != "pos_embd":  # linear layers and the token embedding
            total += t.numel + SCALE_BYTES * t.shape[0] if int8 else wq * t.numel
        else:  # conv kernels (float on CUDA), biases, norms, position encodings
            total += wf * t.numel
    c = spec.config
    zero_k_bias = (c.encoder_layers + 2 * c.decoder_layers) * c.d_model  # fuse_linear's zeros for k_proj
    return total + wf * zero_k_bias


def ctranslate2_estimate(spec: AnySpec, request: Request, options: CTranslate2Options | None = None) -> EngineEstimate:
    """What faster-whisper holds on the GPU for `spec` at its peak (see the module docstring)."""
    if "ctranslate2" in archs.geometry(spec).refusals:
        raise UsageError(
            f"the ctranslate2 (faster-whisper) profile covers Whisper models only; {spec.id} is {spec.architecture}"
        )
    spec = cast(WhisperSpec, spec)  # the geometry let only Whisper through
    opt = options or CTranslate2Options()
    name = opt.compute_type.lower()
    if name == "default" and request.dtype:
        if request.dtype.lower() not in COMPUTE_ALIASES:
            raise UsageError(
                f"CTranslate2 has no {request.dtype} weights; compute types: float16, bfloat16, float32, "
                "int8 (= int8_float16 here), int8_float16, int8_float32"
            )
        name = request.dtype.lower()
    compute_type = COMPUTE_ALIASES[name]
    act = COMPUTE_TYPES[compute_type][1]
    c = spec.config
    d, layers, t_max = c.d_model, c.decoder_layers, c.max_target_positions
    tokens = opt.decode_tokens or request.context or CT2_DECODE_TOKENS
    if tokens > t_max:
        raise UsageError(f"Whisper decodes at most {t_max} tokens per window (got {tokens})")
    beam = opt.beam_size or (request.beams if request.beams > 1 else FW_BEAM_SIZE)
    batch = opt.batch_size or request.batch
    cross_one = layers * 2 * AUDIO_FRAMES * d * act
    memory_one = AUDIO_FRAMES * d * act
    self_token = layers * 2 * d * act
    notes: list[str] = []
    version = CT2_VERSIONS[ct2_version_key(opt.version)]
    cuda = opt.cuda or version.cuda
    # beams per encoder-state copy: 1 since 3.6.0 (b142c826), beam_size before it (v3.5.1 expand_to_beam_size)
    per_item = 1 if version.beams_share_encoder_state else beam
    shared = "the beams share the encoder state" if per_item == 1 else "CTranslate2 < 3.6 copies it per beam"
    if batch > 1:
        phase = f"BatchedInferencePipeline, batch_size {batch}, beam {beam} (no temperature fallback; {shared})"
        copies, hyps = batch * per_item, batch * beam
    else:
        first = (per_item, beam)
        fallback = (opt.best_of, opt.best_of) if opt.temperature_fallback else (0, 0)

        def state(p: tuple[int, int]) -> int:
            return p[0] * (cross_one + memory_one) + p[1] * tokens * self_token

        if opt.temperature_fallback and state(fallback) >= state(first):
            phase = f"a temperature fallback: best_of {opt.best_of} sampled hypotheses, each with its own encoder state"
            copies, hyps = fallback
            notes.append(
                f"the first pass (beam {beam}) holds {state(first) / MIB:.0f} MiB of decoding state; a "
                f"fallback {state(fallback) / MIB:.0f} MiB (temperature=0 disables fallbacks)"
            )
        else:
            phase = f"beam search, beam {beam} ({shared})"
            copies, hyps = first
    per_window = c.encoder_attention_heads * AUDIO_FRAMES**2 * act + AUDIO_FRAMES * c.encoder_ffn_dim * act
    encoder = CT2_ENCODER_BASE_BYTES + batch * per_window
    cub = opt.allocator == "cub_caching"
    if cub:  # every allocation rounded to its cub bin (one per variable, one per state tensor: see cub_block_bytes)
        weights = sum(cub_block_bytes(v) for v in ct2_variables(spec, compute_type))
        # the cross K/V are two tensors per layer (attention.cc: ops::Split of the fused k/v projection), the
        # self K/V two per layer, each holding every copy / hypothesis of the batch
        cross_all = 2 * layers * cub_block_bytes(copies * AUDIO_FRAMES * d * act)
        memory_all = cub_block_bytes(copies * memory_one)
        self_all = 2 * layers * cub_block_bytes(hyps * tokens * d * act)
    else:
        weights = ct2_weight_bytes(spec, compute_type)
        cross_all, memory_all, self_all = copies * cross_one, copies * memory_one, hyps * tokens * self_token
    binned = " (in cub bins)" if cub else ""
    int8 = COMPUTE_TYPES[compute_type][0] == 1
    overhead = CT2_CUDA_OVERHEAD_BYTES[cuda] - (CT2_INT8_SAVING_BYTES if int8 else 0)
    buffers = [
        Buffer(
            "weights",
            weights,
            "gpu",
            "weights",
            f"{compute_type}: "
            + (
                "int8 linear layers and token embedding + float32 scale per row, conv and 1-D tensors in the float type"
                if int8
                else "every tensor in the float type"
            )
            + " (LM head = token embedding, once)"
            + (f"; {ct2_weight_bytes(spec, compute_type) / MIB:.0f} MiB before cub's bins" if cub else ""),
        ),
        Buffer(
            "cross-attention K/V",
            cross_all,
            "gpu",
            "kv_cross",
            f"{copies} x {layers} layers x 2 x {AUDIO_FRAMES} frames x {d} x {act} B{binned}",
        ),
        Buffer(
            "encoder output",
            memory_all,
            "gpu",
            "other",
            f"{copies} x {AUDIO_FRAMES} x {d} x {act} B (the decoder's memory){binned}",
        ),
        Buffer(
            "self-attention K/V",
            self_all,
            "gpu",
            "kv_self",
            f"{hyps} hypotheses x {tokens} tokens x {layers} layers x 2 x {d} x {act} B{binned}"
            + (" (150: fitted to the README's batch rows)" if tokens == CT2_DECODE_TOKENS else ""),
        ),
        Buffer(
            "CUDA context, cuBLAS/cuDNN, allocator pool",
            overhead,
            "gpu",
            "overhead",
            f"fitted to faster-whisper's README NVML peaks (CUDA {cuda}"
            + (", int8: 125 MiB less" if int8 else "")
            + "): see ctranslate2.py",
        ),
    ]
    if cub:
        buffers.append(
            Buffer(
                "cub cache (freed blocks kept)",
                CUB_MAX_CACHED_BYTES,
                "gpu",
                "overhead",
                "CT2_CUDA_ALLOCATOR=cub_caching keeps up to max_cached_bytes = 200 MiB of freed blocks "
                "(src/cuda/allocator.cc): counted whole",
            )
        )
        notes.append(
            "cub_caching: every allocation rounded up to a power of 4 up to 16 MiB (CTranslate2's bins); the CUDA "
            "overhead was fitted with the default cuda_malloc_async, so this is source arithmetic, not a measurement"
        )
    decoding = buffers[1].bytes + buffers[2].bytes + buffers[3].bytes
    if encoder > decoding:  # the encoder pass peaks higher than the decoding (short decodes, big batches)
        buffers.append(
            Buffer(
                "encoder pass (beyond the decoding state)",
                encoder - decoding,
                "gpu",
                "compute",
                f"605 MiB (fitted: faster-whisper #1030's distil and turbo rows) + {batch} x "
                f"({c.encoder_attention_heads} heads x {AUDIO_FRAMES}^2 scores + {AUDIO_FRAMES} x "
                f"{c.encoder_ffn_dim} FFN) x {act} B, less the decoding state above",
            )
        )
        phase = "the encoder pass (it needs more than the decoding state)"
    else:
        notes.append(
            f"the encoder pass ({encoder / MIB:.0f} MiB, 605 of them fitted) is over before decoding, "
            "which peaks higher"
        )
    notes.append(f"peak during {phase}")
    notes.append(
        "a component model fitted to whole-device NVML peaks (faster-whisper README): expect +-10 %, "
        "not the MiB-exact match of the engines that print their buffers"
    )
    if tokens != t_max:
        notes.append(
            f"self K/V counts {tokens} tokens per hypothesis; a window that decodes all {t_max} adds "
            f"{hyps * (t_max - tokens) * self_token / MIB:.0f} MiB"
        )
    facts: dict[str, int | bool | str] = {
        "compute_type": compute_type,
        "beam_size": beam,
        "best_of": opt.best_of,
        "batch_size": batch,
        "hypotheses": hyps,
        "encoder_state_copies": copies,
        "decode_tokens": tokens,
        "temperature_fallback": opt.temperature_fallback and batch == 1,
        "cuda": cuda,
        "allocator": opt.allocator,
        "ct2_version": version.name,
    }
    kv = "f32" if act == 4 else ("bf16" if "bfloat16" in compute_type else "f16")
    return EngineEstimate(
        "ctranslate2",
        spec.id,
        spec.architecture,
        compute_type,
        kv,
        tokens,
        tokens,
        tuple(buffers),
        facts,
        tuple(notes),
        (),
    )
