"""whisper.cpp: the buffers whisper_init_from_file and whisper_init_state print, from the tensor
inventory and the graph shapes of whisper.cpp, per release line (v1.5, v1.6, v1.7, v1.8).

- model: one backend buffer, "CUDA0 total size" (printed in MB = 10^6 B): 2-D weights and the token
  embedding in the file's type, convolution kernels f16, 1-D tensors and both positional embeddings
  f32 (whisper_model_load: `e_pe`, `d_pe` GGML_TYPE_F32, `e_conv_*_w` vtype), each 128-byte aligned;
- kv self: n_text_layer x n_text_state x 2 (K, V) x 2 B x cells, where the cells depend on the version
  (whisper_init_state): v1.5 3 x 448 = 1344 ("we overallocate 3x ctx", batched decoding #1486),
  v1.6 3 x GGML_PAD(448, 256) = 1536 (#2152), v1.7+ GGML_PAD(448, 256) = 512 for one decoder, and
  whisper_full re-allocates it for (n_decoders + 2) x 512 cells "to workaround KV cache
  fragmentation" when more decoders are first needed (#2443, first tag v1.7.0);
- kv cross: n_text_layer x n_text_state x 2 x 2 B x audio frames: 1500 in v1.5, GGML_PAD(1500, 256) =
  1536 from v1.6 (#2152, which padded for flash attention);
- kv pad (v1.6+): n_audio_state x 2 x 2 B x 1536, the flash-attention scratch of the encoder, allocated
  whether or not flash attention is on;
- four compute buffers (conv, encode, cross, decode), each an allocator measured on its graph at
  start-up; the printed size also counts the graph metadata in host memory (whisper_sched_size /
  whisper_allocr_size). They are reserved once, for one 448-token sequence, so they do not grow with
  the decoders (whisper_init_state: "const int n_tokens = hparams.n_text_ctx"); more states (-p) repeat
  them.
Calibrated on whisper.cpp 05ce7476 (v1.7.4+, March 2025), tiny to large-v3, CUDA, flash attention off:
weights and caches exact, compute buffers within 0.02 %; and on two v1.5 logs (tiny, small) for the
v1.5 caches and compute buffers. v1.6 follows the v1.6.0 source (no public log with buffer sizes found).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from .. import archs
from ..dtypes import F16, F32, StorageType, WeightDtype
from ..errors import UsageError
from ..memory import AnySpec, Request, resolve
from ..tensors import model_tensors
from .base import Buffer, EngineEstimate, aligned_sum, pad
from .llamacpp import GGML_CUDA_ALIGNMENT

if TYPE_CHECKING:
    from ..archs.whisper import WhisperConfig

WHISPER_PAD = 256  # v1.6+ whisper_init_state: GGML_PAD(n_text_ctx, 256), GGML_PAD(n_audio_ctx, 256)
GGML_KQ_MASK_PAD = 32  # ggml.h (64 in later ggml; 448 is a multiple of both)
WHISPER_MAX_DECODERS = 8  # whisper.cpp: whisper_full fails with "too many decoders requested" above it
# whisper_sched_graph_init: meta.resize(ggml_tensor_overhead() x WHISPER_MAX_NODES + ggml_graph_overhead()),
# and whisper_sched_size adds meta.size() to the backend buffers. WHISPER_MAX_NODES = 4096 (whisper.cpp);
# ggml_tensor_overhead() = GGML_OBJECT_SIZE 32 + sizeof(ggml_tensor) 336 = 368;
# ggml_graph_overhead() = 32 + ggml_graph_nbytes(2048): 80 (struct) + 2 x 2048 x 8 (nodes, leafs) +
# 4099 x 8 (hash keys, ggml_hash_size(4096) = 4099) + 129 x 4 (bitset), padded to 16 = 66192.
WHISPER_SCHED_META_BYTES = 4096 * 368 + 66_192
# v1.5 and v1.6 (whisper_allocr_graph_init, the same meta.resize): the ggml of those tags still had
# `backend`, `perf_runs`, `perf_cycles`, `perf_time_us` in ggml_tensor (ggml.h at v1.5.4 and v1.6.0:
# sizeof 368, + GGML_OBJECT_SIZE 32 = 400) and no visited bitset in the graph: ggml_graph_nbytes(2048) =
# 80 + 2 x 2048 x 8 + 4099 x 8 = 65640, + 32 = 65680. Checked: the v1.5 logs below print exactly
# GPU graph + 1,704,080 B for every buffer (tiny "compute buffer (cross) = 4.01 MB" = 2,304,000 + 1,704,080).
WHISPER_ALLOCR_META_BYTES = 4096 * 400 + 65_680
F32_BYTES = 4


@dataclass(frozen=True)
class WhisperCppVersion:
    """What changes between whisper.cpp release lines (tags read in ggml-org/whisper.cpp)."""

    name: str
    self_pad: int  # GGML_PAD multiple of the text context in the self cache (1: unpadded)
    self_factor: int | None  # fixed multiple of that for any decoder count; None: v1.7+ (grown per decoders)
    audio_pad: int  # GGML_PAD multiple of the audio context (1: unpadded)
    kv_pad: bool  # the "kv pad" buffer exists
    flash_attn_default: bool | None  # whisper-cli's default; None: no flash attention in this version
    meta_bytes: int  # graph metadata counted in each printed compute buffer
    host_mel: bool  # ggml_backend_sched keeps the mel input in a host buffer (and copies it to the GPU)
    conv_form: str  # "allocr" (v1.5 ggml_allocr) or "gallocr" (v1.6+)
    since: str = ""  # the tags of the line
    source: str = ""  # where its figures were read (tag, commit, pull request)


WHISPERCPP_VERSIONS: dict[str, WhisperCppVersion] = {
    "1.5": WhisperCppVersion(
        "1.5",
        1,
        3,
        1,
        False,
        None,
        WHISPER_ALLOCR_META_BYTES,
        False,
        "allocr",
        "v1.5.0 (2023-11-15) to v1.5.4",
        "whisper.cpp whisper_init_state: `const int factor = 3;` kv_cache_init(..., factor*n_text_ctx) = 1344 cells; "
        "kv_cross n_audio_ctx = 1500; no kv_pad; no flash attention; ggml_allocr (legacy allocator) and "
        "`allocr.meta.size() + ggml_allocr_max_size`",
    ),
    "1.5.5": WhisperCppVersion(
        "1.5.5",
        1,
        3,
        1,
        False,
        None,
        WHISPER_ALLOCR_META_BYTES,
        False,
        "gallocr",
        "v1.5.5 (2024-04-16)",
        "the v1.5 caches, but ggml_gallocr ('ggml-alloc : v3', 1d3270cc8, 2024-02-11) and "
        "`meta.size() + ggml_gallocr_get_buffer_size`; its graphs still copied into fresh tensors that #2443 later "
        "removed: compute buffers not calibrated",
    ),
    "1.6": WhisperCppVersion(
        "1.6",
        WHISPER_PAD,
        3,
        WHISPER_PAD,
        True,
        False,
        WHISPER_ALLOCR_META_BYTES,
        False,
        "gallocr",
        "v1.6.0 (2024-05-15) to v1.6.2",
        "#2152 'whisper : use flash attention' (7094ea5e): GGML_PAD(.., 256) everywhere, 3 x 512 self cells, kv_pad; "
        "whisper-cli flash_attn = false; ggml_gallocr, one backend",
    ),
    "1.7": WhisperCppVersion(
        "1.7",
        WHISPER_PAD,
        None,
        WHISPER_PAD,
        True,
        False,
        WHISPER_SCHED_META_BYTES,
        True,
        "gallocr",
        "v1.7.0 (2024-10-05) to v1.7.6",
        "#2443 'whisper : fix excessive memory usage' (f62a546e): 512 cells for one decoder, re-created as "
        "(n_dec + 2) x 512 in whisper_full; ggml_backend_sched (#2239, first tag v1.7.0)",
    ),
    "1.8": WhisperCppVersion(
        "1.8",
        WHISPER_PAD,
        None,
        WHISPER_PAD,
        True,
        True,
        WHISPER_SCHED_META_BYTES,
        True,
        "gallocr",
        "v1.8.0 (2025-09-30) on (read to v1.9.3, 2026-08)",
        "#3441 'whisper : enable flash attention by default' (0b3587acd); buffers as v1.7; through v1.9.3 only the "
        "decoder's KQ mask lost its GGML_KQ_MASK_PAD rows (72714d169, first in v1.8.3), no change at the 448-token "
        "reserve",
    ),
}
WHISPERCPP_LATEST = "1.8"


def whispercpp_version(version: str) -> WhisperCppVersion:
    """The release line of a whisper.cpp version: "1.7", "v1.7.4", "1.5.4" or "latest"."""
    v = version.strip().lower()
    if v in ("latest", "current", ""):
        return WHISPERCPP_VERSIONS[WHISPERCPP_LATEST]
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-[0-9a-z.-]+)?", v)
    key = f"{m.group(1)}.{m.group(2)}" if m else None
    if key == "1.5" and m and m.group(3) == "5":
        key = "1.5.5"
    if key in WHISPERCPP_VERSIONS:
        return WHISPERCPP_VERSIONS[key]
    if m and (int(m.group(1)), int(m.group(2))) > (1, 8):
        return WHISPERCPP_VERSIONS[WHISPERCPP_LATEST]  # later releases keep the v1.8 buffers until shown otherwise
    raise UsageError(
        f"unknown whisper.cpp version {version!r}: give 1.5, 1.5.5, 1.6, 1.7, 1.8 (or a tag like v1.7.4) "
        "or latest; versions before 1.5 kept one cache per decoder and are not modelled"
    )


@dataclass(frozen=True)
class WhisperCppOptions:
    """whisper.cpp settings (whisper-cli flag in brackets)."""

    version: str = "latest"  # release line: 1.5 (1.5.0-1.5.4), 1.5.5, 1.6, 1.7, 1.8 (= latest); tags like v1.7.4 too
    beam_size: int | None = None  # [-bs] None: the request's beams (whisper-cli's own default is 5)
    best_of: int = 5  # [-bo] whisper_full_default_params greedy.best_of
    temperature_fallback: bool = (
        True  # [-nf disables] temperature_inc 0.2: a failed segment is re-decoded with best_of decoders
    )
    flash_attn: bool | None = None  # [-fa / -nfa] None: the version's whisper-cli default (on from v1.8.0)
    processors: int = 1  # [-p] whisper_full_parallel: one whisper_state (caches + compute) each
    decoders: int | None = None  # override the decoder count (whisper-bench sizes the cache for 1)

    def __post_init__(self) -> None:
        v = whispercpp_version(self.version)
        for name in ("decoders", "beam_size"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= WHISPER_MAX_DECODERS:
                raise UsageError(f"whisper.cpp runs 1 to 8 decoders (WHISPER_MAX_DECODERS): {name} {value}")
        if not 1 <= self.best_of <= WHISPER_MAX_DECODERS:
            raise UsageError(f"whisper.cpp runs 1 to 8 decoders (WHISPER_MAX_DECODERS): best_of {self.best_of}")
        if self.processors < 1:
            raise UsageError(f"processors must be at least 1 (got {self.processors})")
        if self.flash_attn and v.flash_attn_default is None:
            raise UsageError(f"whisper.cpp {v.name} has no flash attention (it arrived in v1.6.0, #2152)")


@dataclass(frozen=True)
class Decoders:
    """How many decoders whisper_full runs: at temperature 0, on a fallback, and the most at once."""

    first_pass: int
    fallback: int  # 0 without temperature fallback
    peak: int


def decoder_count(beam_size: int, best_of: int, fallback: bool) -> Decoders:
    """whisper_full_with_state, per temperature step (the same logic v1.5.0 .. v1.8): at t = 0 beam search
    runs beam_size decoders, greedy one; at t > 0 (a fallback, only when temperature_inc > 0, i.e.
    without --no-fallback) both run greedy.best_of. whisper-cli picks beam search when beam_size > 1.
    Up front whisper_full refuses max(best_of, beam_size) (greedy: best_of) above WHISPER_MAX_DECODERS."""
    upfront = max(best_of, beam_size) if beam_size > 1 else best_of
    if upfront > WHISPER_MAX_DECODERS:
        raise UsageError(f"whisper.cpp refuses {upfront} decoders (max(best_of, beam size) > WHISPER_MAX_DECODERS = 8)")
    first = max(1, beam_size)
    on_fallback = best_of if fallback else 0
    return Decoders(first, on_fallback, max(first, on_fallback, 1))


def whisper_storage(spec: AnySpec, dtype: WeightDtype) -> list[StorageType]:
    """Each tensor's type in a ggml whisper file of `dtype` (whisper_model_load)."""
    wtype = dtype.storage
    vtype = F32 if wtype is F32 else F16  # "conv type"
    out = []
    for t in model_tensors(spec):
        if len(t.shape) < 2 or t.role == "pos_embd":
            out.append(F32)
        elif t.role == "conv":
            out.append(vtype)
        elif dtype.family == "gguf" and t.row % wtype.block_size:
            out.append(F16)  # rows that are not whole blocks stay f16 (examples/common-ggml.cpp)
        else:
            out.append(wtype)
    return out


def whispercpp_estimate(spec: AnySpec, request: Request, options: WhisperCppOptions | None = None) -> EngineEstimate:
    """Every buffer whisper.cpp allocates for `spec` (see the module docstring)."""
    if "whisper.cpp" in archs.geometry(spec).refusals:
        raise UsageError(f"whisper.cpp runs Whisper models only; {spec.id} is {spec.architecture}")
    opt = options or WhisperCppOptions()
    v = whispercpp_version(opt.version)
    flash = bool(v.flash_attn_default if opt.flash_attn is None else opt.flash_attn)
    # ggml-{model}.bin files are f16 (convert-pt-to-ggml.py); the checkpoint's float32 is not what runs.
    r = resolve(spec, Request(dtype=request.dtype or "fp16", kv_dtype=request.kv_dtype or "f16"))
    if r.dtype.family == "quantized":
        raise UsageError(f"whisper.cpp files are f32, f16 or ggml-quantized (q8_0, q4_0 ...), not {r.dtype.name}")
    # the geometry let only Whisper through: its config is a WhisperConfig
    c = cast("WhisperConfig", spec.config)
    notes: list[str] = []
    warnings: list[str] = []
    s, n_ctx, t_ctx = c.d_model, c.max_source_positions, c.max_target_positions
    text_ctx = pad(t_ctx, v.self_pad)
    if request.context and request.context != t_ctx:
        notes.append(
            f"whisper.cpp always allocates the full {t_ctx}-token text context"
            + (f" (padded to {text_ctx})" if text_ctx != t_ctx else "")
        )
    if opt.decoders:
        dec = Decoders(opt.decoders, 0, opt.decoders)
    else:
        dec = decoder_count(opt.beam_size or request.beams, opt.best_of, opt.temperature_fallback)
    if v.self_factor is not None:
        factor = v.self_factor
        cells_detail = f"{v.self_factor} x {text_ctx} cells for any number of decoders (whisper_init_state, v{v.name})"
    else:
        factor = dec.peak + 2 if dec.peak > 1 else 1
        cells_detail = (
            f"({dec.peak} decoders + 2) x {text_ctx} cells, re-created by whisper_full (v1.7+)"
            if factor > 1
            else f"GGML_PAD({t_ctx}, 256) cells for one decoder"
        )
    states = max(opt.processors, request.batch)
    itype = r.kv
    a = GGML_CUDA_ALIGNMENT

    tensors = model_tensors(spec)
    storage = whisper_storage(spec, r.dtype)
    buffers = [
        Buffer(
            "model (CUDA0 total size)",
            aligned_sum((st.nbytes(t.numel) for t, st in zip(tensors, storage, strict=True)), a),
            "gpu",
            "weights",
            f"{len(tensors)} tensors: 2-D in {r.dtype.name}, conv f16, 1-D and positional "
            "embeddings f32, each 128-byte aligned",
        )
    ]

    text_cells = text_ctx * factor
    audio_cells = pad(n_ctx, v.audio_pad)
    half = itype.nbytes(c.decoder_layers * s * text_cells)
    cross_half = itype.nbytes(c.decoder_layers * s * audio_cells)
    pad_half = itype.nbytes(s * audio_cells)
    per_state = [
        Buffer(
            "kv self",
            aligned_sum((half, half), a),
            "gpu",
            "kv_self",
            f"{c.decoder_layers} layers x {s} x 2 x {itype.name} x {text_cells} cells: {cells_detail}",
        ),
        Buffer(
            "kv cross",
            aligned_sum((cross_half, cross_half), a),
            "gpu",
            "kv_cross",
            f"{c.decoder_layers} layers x {s} x 2 x {itype.name} x {audio_cells} frames"
            + (f" (GGML_PAD({n_ctx}, 256))" if audio_cells != n_ctx else " (unpadded before v1.6)"),
        ),
    ]
    if v.kv_pad:
        per_state.append(
            Buffer(
                "kv pad",
                aligned_sum((pad_half, pad_half), a),
                "gpu",
                "other",
                f"{s} x 2 x {itype.name} x {audio_cells}: the encoder's flash-attention scratch, allocated either way",
            )
        )

    mel = F32_BYTES * 2 * n_ctx * c.num_mel_bins
    im2col = 2 * (2 * n_ctx) * 3 * c.num_mel_bins  # f16 [3 x n_mels, 3000]
    conv_out = F32_BYTES * 2 * n_ctx * s
    if v.conv_form == "allocr":
        # v1.5 (ggml_allocr): conv1's im2col is freed before conv2's, but conv2's im2col (f16 [3 x s, 1500])
        # is larger and goes above it, so the high-water mark holds mel, im2col1 (as a hole), conv1's
        # output and im2col2: tiny 0.96 + 1.44 + 4.608 + 3.456 MB + meta 1.704 = 12.17 MB, as printed.
        im2col2 = 2 * n_ctx * 3 * s
        conv = mel + im2col + conv_out + im2col2
        conv_detail = (
            f"mel 4 B x {2 * n_ctx} x {c.num_mel_bins} + conv1 im2col 2 B x {2 * n_ctx} x {3 * c.num_mel_bins} "
            f"+ conv1 output 4 B x {2 * n_ctx} x {s} + conv2 im2col 2 B x {n_ctx} x {3 * s} (ggml_allocr)"
        )
    else:
        conv = mel + im2col + 2 * conv_out
        conv_detail = (
            f"mel copy 4 B x {2 * n_ctx} x {c.num_mel_bins} + conv1 im2col 2 B x {2 * n_ctx} x "
            f"{3 * c.num_mel_bins} + conv1 output and its bias sum 2 x (4 B x {2 * n_ctx} x {s})"
        )
    hidden = F32_BYTES * n_ctx * s
    if flash:
        encode = 4 * hidden
        encode_detail = f"4 x (4 B x {n_ctx} x {s}) hidden-size tensors; flash attention: no scores (not calibrated)"
    else:
        encode = F32_BYTES * c.encoder_attention_heads * n_ctx * n_ctx + 4 * hidden
        encode_detail = (
            f"4 B x {c.encoder_attention_heads} heads x {n_ctx}^2 scores + 4 x (4 B x {n_ctx} x {s}) "
            "hidden-size tensors at the softmax"
        )
    # The decode graph is reserved for one 448-token sequence against the whole self cache as it is at
    # start-up (n_kv = kv_self.size: 1344 in v1.5, 1536 in v1.6, 512 in v1.7+). It peaks at the logits
    # (4 B x n_vocab x 448); the KQ mask is an input that ggml_gallocr keeps (v1.6+), while v1.5's
    # ggml_allocr frees it after the last layer, before the logits. At run time a step decodes one token
    # per decoder against at most (n_dec + 2) x 512 cells: far below the reservation.
    n_kv = text_ctx * (v.self_factor or 1)
    mask = (
        0
        if v.conv_form == "allocr"
        else (
            F32_BYTES * n_kv * pad(t_ctx, GGML_KQ_MASK_PAD) + (2 * n_kv * pad(t_ctx, GGML_KQ_MASK_PAD) if flash else 0)
        )
    )
    decode = F32_BYTES * c.vocab_size * t_ctx + 2 * F32_BYTES * t_ctx * s + mask
    meta = v.meta_bytes
    per_state += [
        Buffer("compute buffer (conv)", conv, "gpu", "compute", conv_detail),
        Buffer("compute buffer (encode)", encode, "gpu", "compute", encode_detail),
        Buffer(
            "compute buffer (cross)",
            hidden,
            "gpu",
            "compute",
            f"4 B x {n_ctx} x {s}: one cross K/V projection at a time",
        ),
        Buffer(
            "compute buffer (decode)",
            decode,
            "gpu",
            "compute",
            f"logits 4 B x {c.vocab_size} x {t_ctx} (worst case: every text position) + 2 x (4 B x {t_ctx} x {s})"
            + (f" + KQ mask 4 B x {n_kv} x {t_ctx}" + (" (+ its f16 copy)" if flash else "") if mask else ""),
        ),
    ]
    if v.host_mel:
        per_state.append(
            Buffer(
                "mel input (host)",
                mel,
                "host",
                "compute",
                f"4 B x {2 * n_ctx} x {c.num_mel_bins}, the conv graph's input",
            )
        )
    per_state.append(
        Buffer(
            "scheduler metadata (host)",
            4 * meta,
            "host",
            "other",
            f"4 graphs x {meta} B of tensor and graph metadata: counted in the printed compute buffer sizes",
        )
    )
    # each state (-p processors, or sequences) holds the same buffers: one line each, times the count
    # (a loop over the states would build millions of buffers for a large --batch)
    buffers += [
        b
        if states == 1
        else Buffer(
            f"{b.name} [x {states} states]",
            b.bytes * states,
            b.placement,
            b.kind,
            f"{states} x {b.bytes} B: {b.detail}",
        )
        for b in per_state
    ]
    if v.self_factor is None and factor > 1:
        if dec.first_pass < dec.peak:
            notes.append(
                f"kv self is sized for {dec.peak} decoders: the first pass runs {dec.first_pass}, and the first "
                f"temperature fallback re-creates the cache for ({dec.peak} + 2) x {text_ctx} cells, never shrunk "
                f"(clean audio stays at {(dec.first_pass + 2 if dec.first_pass > 1 else 1) * text_ctx} cells; "
                "whisper-cli -nf / --no-fallback removes the fallback)"
            )
        else:
            notes.append(
                f"{dec.peak} decoders: whisper_full re-allocates kv self for ({dec.peak} + 2) x {text_ctx} cells "
                "and never shrinks it (at start-up it prints the 1-decoder size)"
            )
    elif v.self_factor is not None:
        notes.append(
            f"whisper.cpp v{v.name} allocates {factor} x {text_ctx} self cells up front and shares them between "
            f"its decoders ({dec.peak} at most here)"
        )
    if v.name in ("1.5.5", "1.6"):
        notes.append(
            f"whisper.cpp v{v.name}'s compute buffers are not calibrated: its graphs differ from v1.7's (#2443 "
            "removed copies into fresh tensors), and the one public large-v2 log between v1.5.4 and v1.5.5 "
            "prints decode 209.26 MB where v1.7.4 prints 100.02 MB"
        )
    if flash:
        notes.append(
            "flash attention: the encode and decode buffers follow the graph without score matrices; only the "
            "flash-attention-off buffers are calibrated"
        )
    notes.append("the CUDA context and cuBLAS workspace are not in whisper.cpp's printed buffers")
    facts: dict[str, int | bool | str] = {
        "version": v.name,
        "decoders": dec.peak,
        "decoders_first_pass": dec.first_pass,
        "decoders_fallback": dec.fallback,
        "kv_self_cells": text_cells,
        "kv_cross_frames": audio_cells,
        "flash_attn": flash,
        "states": states,
        "graph_meta_bytes": meta,
    }
    return EngineEstimate(
        "whisper.cpp",
        spec.id,
        spec.architecture,
        r.dtype.name,
        itype.name,
        t_ctx,
        text_cells,
        tuple(buffers),
        facts,
        tuple(notes),
        tuple(warnings),
    )
