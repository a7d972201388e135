"""whisper.cpp: the buffers whisper_init_from_file and whisper_init_state print, from the tensor
inventory and the graph shapes of src/whisper.cpp.

- model: one backend buffer, "CUDA0 total size" (printed in MB = 10^6 B): 2-D weights and the token
  embedding in the file's type, convolution kernels f16, 1-D tensors and both positional embeddings
  f32 (whisper_model_load: `e_pe`, `d_pe` GGML_TYPE_F32, `e_conv_*_w` vtype), each 128-byte aligned;
- kv self: n_text_layer x n_text_state x 2 (K, V) x 2 B x GGML_PAD(448, 256) = 512 cells for one
  decoder; with more decoders (beam search, or best-of at a fallback temperature) whisper_full
  re-allocates it for (n_decoders + 2) x 512 cells "to workaround KV cache fragmentation";
- kv cross: n_text_layer x n_text_state x 2 x 2 B x GGML_PAD(1500, 256) = 1536 frames;
- kv pad: n_audio_state x 2 x 2 B x 1536, the flash-attention scratch of the encoder, allocated
  whether or not flash attention is on;
- four compute buffers (conv, encode, cross, decode), each a ggml_backend_sched measured on its
  graph; the printed size (whisper_sched_size) also counts the scheduler's metadata in host memory.
Calibrated on whisper.cpp 05ce7476 (v1.7.4+, March 2025), tiny to medium, CUDA, flash attention off:
weights and caches exact, compute buffers within 0.02 %.
"""

from __future__ import annotations

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

WHISPER_PAD = 256  # whisper_init_state: GGML_PAD(n_text_ctx, 256), GGML_PAD(n_audio_ctx, 256)
GGML_KQ_MASK_PAD = 32  # ggml.h (64 in later ggml; 448 is a multiple of both)
# whisper_sched_graph_init: meta.resize(ggml_tensor_overhead() x WHISPER_MAX_NODES + ggml_graph_overhead()),
# and whisper_sched_size adds meta.size() to the backend buffers. WHISPER_MAX_NODES = 4096 (whisper.cpp);
# ggml_tensor_overhead() = GGML_OBJECT_SIZE 32 + sizeof(ggml_tensor) 336 = 368;
# ggml_graph_overhead() = 32 + ggml_graph_nbytes(2048): 80 (struct) + 2 x 2048 x 8 (nodes, leafs) +
# 4099 x 8 (hash keys, ggml_hash_size(4096) = 4099) + 129 x 4 (bitset), padded to 16 = 66192.
WHISPER_SCHED_META_BYTES = 4096 * 368 + 66_192
F32_BYTES = 4


@dataclass(frozen=True)
class WhisperCppOptions:
    """whisper.cpp settings (whisper-cli flag in brackets)."""

    decoders: int | None = None  # None: the most whisper_full can run: max(--beam-size, --best-of at fallback)
    best_of: int = 5  # [-bo] whisper_full_default_params greedy.best_of
    temperature_fallback: bool = True  # [-nf disables] temperature_inc 0.2: a failed segment is re-decoded with best_of decoders
    flash_attn: bool = True  # [-fa / -nfa] whisper_context_default_params: flash_attn = true in current whisper.cpp
    processors: int = 1  # [-p] whisper_full_parallel: one whisper_state (caches + compute) each

    def __post_init__(self) -> None:
        if self.decoders is not None and not 1 <= self.decoders <= 8:
            raise UsageError(f"whisper.cpp runs 1 to 8 decoders (WHISPER_MAX_DECODERS), got {self.decoders}")


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
    # ggml-{model}.bin files are f16 (convert-pt-to-ggml.py); the checkpoint's float32 is not what runs.
    r = resolve(spec, Request(dtype=request.dtype or "fp16", kv_dtype=request.kv_dtype or "f16"))
    if r.dtype.family == "quantized":
        raise UsageError(f"whisper.cpp files are f32, f16 or ggml-quantized (q8_0, q4_0 ...), not {r.dtype.name}")
    # the geometry let only Whisper through: its config is a WhisperConfig
    c = cast("WhisperConfig", spec.config)
    notes: list[str] = []
    warnings: list[str] = []
    if request.context and request.context != c.max_target_positions:
        notes.append(f"whisper.cpp always allocates the full {c.max_target_positions}-token text context "
                     f"(padded to {pad(c.max_target_positions, WHISPER_PAD)})")
    decoders = opt.decoders or max(request.beams, opt.best_of if opt.temperature_fallback else 1)
    if decoders > 8:
        raise UsageError(f"whisper.cpp runs at most 8 decoders (WHISPER_MAX_DECODERS); asked {decoders}")
    factor = decoders + 2 if decoders > 1 else 1
    states = max(opt.processors, request.batch)
    s, n_ctx, t_ctx = c.d_model, c.max_source_positions, c.max_target_positions
    itype = r.kv
    a = GGML_CUDA_ALIGNMENT

    tensors = model_tensors(spec)
    storage = whisper_storage(spec, r.dtype)
    buffers = [Buffer("model (CUDA0 total size)", aligned_sum((st.nbytes(t.numel) for t, st in zip(tensors, storage)), a),
                      "gpu", "weights", f"{len(tensors)} tensors: 2-D in {r.dtype.name}, conv f16, 1-D and positional "
                      "embeddings f32, each 128-byte aligned")]

    text_cells = pad(t_ctx, WHISPER_PAD) * factor
    audio_cells = pad(n_ctx, WHISPER_PAD)
    half = itype.nbytes(c.decoder_layers * s * text_cells)
    cross_half = itype.nbytes(c.decoder_layers * s * audio_cells)
    pad_half = itype.nbytes(s * audio_cells)
    per_state = [
        Buffer("kv self", aligned_sum((half, half), a), "gpu", "kv_self",
               f"{c.decoder_layers} layers x {s} x 2 x {itype.name} x {text_cells} cells"
               + (f" ({decoders} decoders: ({decoders} + 2) x {pad(t_ctx, WHISPER_PAD)}, whisper_full)" if factor > 1
                  else f" (GGML_PAD({t_ctx}, 256))")),
        Buffer("kv cross", aligned_sum((cross_half, cross_half), a), "gpu", "kv_cross",
               f"{c.decoder_layers} layers x {s} x 2 x {itype.name} x {audio_cells} frames (GGML_PAD({n_ctx}, 256))"),
        Buffer("kv pad", aligned_sum((pad_half, pad_half), a), "gpu", "other",
               f"{s} x 2 x {itype.name} x {audio_cells}: the encoder's flash-attention scratch, allocated either way"),
    ]

    mel = F32_BYTES * 2 * n_ctx * c.num_mel_bins
    im2col = 2 * (2 * n_ctx) * 3 * c.num_mel_bins  # f16 [3 x n_mels, 3000]
    conv_out = F32_BYTES * 2 * n_ctx * s
    hidden = F32_BYTES * n_ctx * s
    if opt.flash_attn:
        encode = 4 * hidden
        encode_detail = f"4 x (4 B x {n_ctx} x {s}) hidden-size tensors; flash attention: no scores (not calibrated)"
    else:
        encode = F32_BYTES * c.encoder_attention_heads * n_ctx * n_ctx + 4 * hidden
        encode_detail = (f"4 B x {c.encoder_attention_heads} heads x {n_ctx}^2 scores + 4 x (4 B x {n_ctx} x {s}) "
                         "hidden-size tensors at the softmax")
    n_kv = pad(t_ctx, WHISPER_PAD)  # worst case: n_kv = kv_self.size at reservation
    mask = F32_BYTES * n_kv * pad(t_ctx, GGML_KQ_MASK_PAD) + (2 * n_kv * pad(t_ctx, GGML_KQ_MASK_PAD) if opt.flash_attn else 0)
    decode = F32_BYTES * c.vocab_size * t_ctx + 2 * F32_BYTES * t_ctx * s + mask
    per_state += [
        Buffer("compute buffer (conv)", mel + im2col + 2 * conv_out, "gpu", "compute",
               f"mel copy 4 B x {2 * n_ctx} x {c.num_mel_bins} + conv1 im2col 2 B x {2 * n_ctx} x {3 * c.num_mel_bins} "
               f"+ conv1 output and its bias sum 2 x (4 B x {2 * n_ctx} x {s})"),
        Buffer("compute buffer (encode)", encode, "gpu", "compute", encode_detail),
        Buffer("compute buffer (cross)", hidden, "gpu", "compute", f"4 B x {n_ctx} x {s}: one cross K/V projection at a time"),
        Buffer("compute buffer (decode)", decode, "gpu", "compute",
               f"logits 4 B x {c.vocab_size} x {t_ctx} (worst case: every text position) + 2 x (4 B x {t_ctx} x {s}) "
               f"+ KQ mask 4 B x {n_kv} x {t_ctx}" + (" (+ its f16 copy)" if opt.flash_attn else "")),
        Buffer("mel input (host)", mel, "host", "compute", f"4 B x {2 * n_ctx} x {c.num_mel_bins}, the conv graph's input"),
        Buffer("scheduler metadata (host)", 4 * WHISPER_SCHED_META_BYTES, "host", "other",
               "4 schedulers x (4096 nodes x 368 B + 66192 B graph): counted in the printed compute buffer sizes"),
    ]
    for st in range(states):
        buffers += [Buffer(b.name if states == 1 else f"{b.name} [state {st}]", b.bytes, b.placement, b.kind, b.detail)
                    for b in per_state]
    if factor > 1:
        notes.append(f"{decoders} decoders: whisper_full re-allocates kv self for ({decoders} + 2) x 512 cells and never "
                     "shrinks it (at start-up it prints the 1-decoder size)")
    if opt.flash_attn:
        notes.append("flash attention: the encode and decode buffers follow the graph without score matrices; only the "
                     "flash-attention-off buffers are calibrated")
    notes.append("the CUDA context and cuBLAS workspace are not in whisper.cpp's printed buffers")
    facts: dict[str, int | bool | str] = {"decoders": decoders, "kv_self_cells": text_cells, "kv_cross_frames": audio_cells,
                                          "flash_attn": opt.flash_attn, "states": states}
    return EngineEstimate("whisper.cpp", spec.id, spec.architecture, r.dtype.name, itype.name, t_ctx, text_cells,
                          tuple(buffers), facts, tuple(notes), tuple(warnings))

