"""Answers beyond yes/no: what would make it fit, and on what.

- `max_batch`: the largest batch that fits at a context;
- `quant_ladder`: every weight type x KV type, whether it fits and the largest context each allows;
- `which_gpus` / `cards_needed`: every catalog GPU, and how many of one card a model needs;
- `sweep`: total memory by component at context 512, 1024, ... up to the model's window;
- and, re-exported from placement.py and speed.py: multi-GPU splits, partial offload and the
  decode-speed bound, so `from willitrun.answers import ...` reaches every answer.

Pure library: no typer, no rich, nothing printed. Every size is an int of bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import archs
from .dtypes import KV_DTYPES, WEIGHT_DTYPES
from .errors import UsageError
from .fit import context_limit, ladder_dtypes, largest, max_context
from .layers import Layout, layout
from .limits import MAX_CARDS
from .memory import (
    AnySpec,
    Estimate,
    Request,
    Resolved,
    default_context,
    estimate_resolved,
    resolve,
    weight_components,
)
from .placement import (
    Card,
    Device,
    Offload,
    Split,
    device,
    layer_owners,
    layer_split,
    offload,
    split,
    tensor_split,
    tp_bytes,
    tp_constraints,
    tp_kv_heads,
    tp_problems,
)
from .specs import GPUSpec
from .speed import SYSTEM_BANDWIDTH_BYTES_S, DecodeSpeed, SpeedTerm, decode_speed, offload_speed, split_speed
from .tensors import model_tensors

if TYPE_CHECKING:
    from .importers import WeightsOverride

LADDER_KV = ("f16", "q8_0", "q4_0")
SWEEP_START = 512
_MAX_NP = 4096  # llama.cpp's -np bound on the command line (cli/parse.py BOUNDS["--parallel"])
_MAX_BATCH = 1 << 24  # a search bound only: every sequence adds logits, so the batch is always finite

__all__ = [
    "SYSTEM_BANDWIDTH_BYTES_S",
    "BatchAnswer",
    "Card",
    "CardCount",
    "DecodeSpeed",
    "Device",
    "GpuRow",
    "GpuTable",
    "Ladder",
    "LadderRow",
    "Layout",
    "Offload",
    "SpeedTerm",
    "Split",
    "Sweep",
    "SweepPoint",
    "cards_needed",
    "decode_speed",
    "device",
    "layer_owners",
    "layer_split",
    "layout",
    "max_batch",
    "offload",
    "offload_speed",
    "quant_ladder",
    "split",
    "split_speed",
    "sweep",
    "sweep_contexts",
    "tensor_split",
    "tp_constraints",
    "tp_problems",
    "which_gpus",
]


def _total(r: Resolved, context: int, batch: int, beams: int) -> int:
    return estimate_resolved(r, context, batch, beams).total_bytes


# --------------------------------------------------------------------------------------------------
# Largest batch
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchAnswer:
    context_tokens: int
    beams: int
    vram_bytes: int
    max_batch: int  # 0 when not even one sequence fits
    total_bytes: int  # at max_batch (at batch 1 when max_batch is 0)
    next_total_bytes: int  # at max_batch + 1: the first batch that does not fit
    per_sequence_bytes: int  # what the next sequence adds: its KV caches and activations


def max_batch(r: Resolved, vram: int, context: int, beams: int = 1) -> BatchAnswer:
    """Largest batch whose total fits at `context`: doubling to bracket it, then bisection (the
    total grows with the batch: caches and activations are per sequence). Exact: it fits, +1 does not."""
    n = largest(lambda b: _total(r, context, b, beams) <= vram, 1, _MAX_BATCH, grow=True)
    at = max(n, 1)
    total, after = _total(r, context, at, beams), _total(r, context, at + 1, beams)
    return BatchAnswer(context, beams, vram, n, total, after if n else total, after - total)


# --------------------------------------------------------------------------------------------------
# Quantization ladder
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LadderRow:
    dtype: str
    kv_dtype: str
    weights_bytes: int
    kv_bytes: int  # self + cross caches at the context
    total_bytes: int
    fits: bool
    headroom_bytes: int
    max_context_tokens: int  # 0 when no context fits
    max_batch: int  # at the context; 0 when not even one sequence fits
    engine: str = "transformers"  # the profile that sized the row (the main command's default for its type)


@dataclass(frozen=True)
class Ladder:
    model: str
    vram_bytes: int
    context_tokens: int
    batch_size: int
    beams: int
    context_limit_tokens: int
    rows: tuple[LadderRow, ...]  # weight types largest first; within one, KV types largest first

    @property
    def best(self) -> LadderRow | None:
        """The first row that fits: the most bits that still fit."""
        return next((row for row in self.rows if row.fits), None)


def engine_for(dtype: str | None, engine: str | None) -> str:
    """The engine a row is sized with: the one given, else the main command's default for the type."""
    from .dtypes import default_engine

    return engine or default_engine(dtype)


def _imported(req: Request, engine: str | None, weights: WeightsOverride | None) -> tuple[Request, str]:
    """The request and engine for an imported file, as the main command decides them: a GGUF file's
    stored type is its --dtype (and so llama.cpp, or the engine whose store held it: ollama); other
    weights size the transformers profile."""
    engine = engine or (weights.engine if weights is not None else None)
    if weights is not None and req.dtype is None and weights.dtype and engine_for(weights.dtype, engine) != "transformers":
        req = dataclasses.replace(req, dtype=weights.dtype)
    return req, engine_for(req.dtype or (weights.dtype if weights is not None else None), engine)


def engine_max_batch(spec: AnySpec, req: Request, engine: str, vram: int, context: int) -> int:
    """The most sequences of `context` positions whose llama.cpp or ollama estimate fits (the fullest
    GPU's bytes, as engine_fit compares them; no context search per probe)."""
    from .engines import engine_estimate

    def fits(b: int) -> bool:
        return engine_estimate(spec, dataclasses.replace(req, batch=b, context=context), engine).max_device_bytes <= vram

    return largest(fits, 1, _MAX_NP, grow=True)


def _engine_row(spec: AnySpec, req: Request, engine: str, vram: int, wname: str, kname: str,
                context: int) -> LadderRow | None:
    from .engines import engine_fit

    row_req = dataclasses.replace(req, dtype=wname, kv_dtype=kname, context=context)
    try:
        f = engine_fit(spec, row_req, engine, None, vram)
    except UsageError:
        return None  # the engine refuses this type or architecture: no row
    e = f.estimate
    batch = engine_max_batch(spec, row_req, engine, vram, context) if engine in ("llama.cpp", "ollama") else int(f.fits)
    return LadderRow(wname, kname, e.kind_bytes("weights"), e.kind_bytes("kv_self") + e.kind_bytes("kv_cross"),
                     f.total_bytes, f.fits, f.headroom_bytes, f.max_context_tokens, batch, engine)


def quant_ladder(spec: AnySpec, req: Request, vram: int, engine: str | None = None) -> Ladder:
    """Every weight type x KV type of the ladder: total at the context, fit, largest context, largest batch;
    each row on `engine`, else on the main command's default for its type (GGUF types: llama.cpp), so a
    row answers as `willitrun MODEL --dtype TYPE --kv-dtype KV` does."""
    base = resolve(spec, req)
    context = req.context or default_context(base)
    limit = context_limit(base, context)
    tensors = model_tensors(spec)
    rows = []
    for wname in ladder_dtypes(spec):
        eng = engine_for(wname, engine)
        if eng != "transformers":
            for kname in LADDER_KV:
                row = _engine_row(spec, req, eng, vram, wname, kname, context)
                if row is not None:
                    rows.append(row)
            continue
        wd = WEIGHT_DTYPES[wname]
        comps = weight_components(spec, wd, tensors)
        for kname in LADDER_KV:
            r = dataclasses.replace(base, dtype=wd, kv=KV_DTYPES[kname], components=comps)
            e = estimate_resolved(r, context, req.batch, req.beams)
            rows.append(LadderRow(wname, kname, e.weights_bytes, e.kv_bytes, e.total_bytes, e.total_bytes <= vram,
                                  vram - e.total_bytes, max_context(r, vram, req.batch, req.beams, limit),
                                  max_batch(r, vram, context, req.beams).max_batch))
    return Ladder(spec.id, vram, context, req.batch, req.beams, limit, tuple(rows))


# --------------------------------------------------------------------------------------------------
# Which GPUs, and how many
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardCount:
    gpu: str
    vram_bytes: int
    cards: int  # the smallest tensor-parallel count that fits; 0 if none up to max_cards
    max_cards: int
    split: Split | None  # the split at `cards`
    skipped: tuple[str, ...]  # smaller counts that cannot split the model, and why


def _min_cards(spec: AnySpec, est: Estimate, kv_proj_bytes: int, vram: int, max_cards: int) -> int:
    """Smallest N whose tensor split fits at the estimate's context (the first card holds the most)."""
    kv_heads = tp_kv_heads(spec)
    fixed = est.activations_bytes + est.overhead_bytes
    for n in range(1, max_cards + 1):
        if tp_problems(spec, n):
            continue
        w, kv = tp_bytes(est, n, kv_heads, kv_proj_bytes)
        if w[0] + kv[0] + fixed <= vram:
            return n
    return 0


def cards_needed(spec: AnySpec, req: Request, gpu: Device, max_cards: int = MAX_CARDS) -> CardCount:
    """How many of `gpu` the model needs under tensor parallelism at the request's context."""
    r = resolve(spec, req)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    lay = layout(r)
    n = _min_cards(spec, est, lay.kv_proj_bytes, gpu.vram_bytes, max_cards)
    skipped = tuple(f"{k}: {'; '.join(tp_problems(spec, k))}" for k in range(2, (n or max_cards) + 1)
                    if tp_problems(spec, k))
    s = tensor_split(r, context, req.batch, req.beams, [gpu] * n, lay) if n else None
    return CardCount(gpu.gpu, gpu.vram_bytes, n, max_cards, s, skipped)


@dataclass(frozen=True)
class GpuRow:
    gpu: str
    name: str
    vram_bytes: int
    bandwidth_gb_s: float
    fits: bool
    headroom_bytes: int
    max_context_tokens: int  # on one card; 0 if none
    cards_needed: int  # smallest tensor-parallel count of this card that fits; 0 if none up to MAX_CARDS (or Apple)


@dataclass(frozen=True)
class GpuTable:
    model: str
    dtype: str
    kv_dtype: str
    context_tokens: int
    batch_size: int
    beams: int
    total_bytes: int
    context_limit_tokens: int
    rows: tuple[GpuRow, ...]  # by memory, smallest first


def _engine_gpus(spec: AnySpec, req: Request, gpus: Iterable[GPUSpec], engine: str) -> GpuTable:
    """which_gpus on an engine profile: engine_fit per card; the cards needed are llama.cpp's even
    layer split over N of the card, the smallest N up to MAX_CARDS (as the transformers table) whose
    fullest card fits, tried in turn (other engines: 1 if one card fits, else 0)."""
    from .engines import LlamaCppOptions, engine_estimate, engine_fit

    rows = []
    first = None
    for g in sorted(gpus, key=lambda g: (g.capacity_bytes, g.id)):
        vram = g.capacity_bytes
        f = engine_fit(spec, req, engine, None, vram)
        first = first or f
        need = int(f.fits)
        if not f.fits and engine == "llama.cpp" and g.vendor != "apple":
            need = next((n for n in range(2, MAX_CARDS + 1)
                         if engine_estimate(spec, req, engine, LlamaCppOptions(gpus=n)).max_device_bytes <= vram), 0)
        rows.append(GpuRow(g.id, g.name, vram, g.bandwidth_gb_s, f.fits, f.headroom_bytes, f.max_context_tokens, need))
    assert first is not None, "no GPUs given"
    e = first.estimate
    return GpuTable(spec.id, e.dtype, e.kv_dtype, e.context_tokens, req.batch, req.beams, first.total_bytes,
                    first.context_limit, tuple(rows))


def which_gpus(spec: AnySpec, req: Request, gpus: Iterable[GPUSpec], engine: str | None = None,
               weights: WeightsOverride | None = None) -> GpuTable:
    """Every GPU given (the catalog): fit, headroom and largest context on one card, and the cards
    needed under tensor parallelism; sorted by memory. `engine` defaults as the main command's;
    `weights` are an imported file's stored tensors (its GGUF type picks llama.cpp)."""
    req, eng = _imported(req, engine, weights)
    if eng != "transformers":
        return _engine_gpus(spec, req, gpus, eng)
    r = resolve(spec, req, weights)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    limit = context_limit(r, context)
    kv_proj = layout(r).kv_proj_bytes
    rows = []
    for g in sorted(gpus, key=lambda g: (g.capacity_bytes, g.id)):
        vram = g.capacity_bytes
        rows.append(GpuRow(g.id, g.name, vram, g.bandwidth_gb_s, est.total_bytes <= vram, vram - est.total_bytes,
                           max_context(r, vram, req.batch, req.beams, limit),
                           # Macs are not linked for tensor parallelism: one unified memory each
                           int(est.total_bytes <= vram) if g.vendor == "apple"
                           else _min_cards(spec, est, kv_proj, vram, MAX_CARDS)))
    return GpuTable(spec.id, est.dtype, est.kv_dtype, context, req.batch, req.beams, est.total_bytes, limit,
                    tuple(rows))


# --------------------------------------------------------------------------------------------------
# Context sweep
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepPoint:
    context_tokens: int
    weights_bytes: int
    kv_self_bytes: int
    kv_cross_bytes: int
    activations_bytes: int
    overhead_bytes: int
    total_bytes: int
    fits: bool | None  # None without a memory to compare with
    state_bytes: int = 0  # recurrent state (state-space layers): the same at every context


@dataclass(frozen=True)
class Sweep:
    model: str
    dtype: str
    kv_dtype: str
    batch_size: int
    beams: int
    vram_bytes: int | None
    context_limit_tokens: int
    max_context_tokens: int | None  # None without a memory
    points: tuple[SweepPoint, ...]
    memory_bounds_context: bool = True  # False for a pure state-space model: no KV cache grows


def sweep_contexts(limit: int, image_tokens: int = 0) -> list[int]:
    """512, 1024, ... (powers of two below `limit` that leave room for text), then `limit` itself."""
    out, c = [], SWEEP_START
    while c < limit:
        if c > image_tokens:
            out.append(c)
        c *= 2
    return [*out, limit]


def sweep(spec: AnySpec, req: Request, vram: int | None = None, engine: str | None = None,
          weights: WeightsOverride | None = None) -> Sweep:
    """Total memory and its parts at every context of `sweep_contexts`, up to the model's window;
    on `engine` (default as the main command's), the parts are its buffers by kind and the total the
    fullest GPU's bytes."""
    req, eng = _imported(req, engine, weights)
    if eng != "transformers":
        return _engine_sweep(spec, req, vram, eng)
    r = resolve(spec, req, weights)
    limit = context_limit(r, req.context or default_context(r))
    points = []
    for c in sweep_contexts(limit, r.image_tokens):
        e = estimate_resolved(r, c, req.batch, req.beams)
        points.append(SweepPoint(c, e.weights_bytes, e.kv_self_bytes, e.kv_cross_bytes, e.activations_bytes,
                                 e.overhead_bytes, e.total_bytes, None if vram is None else e.total_bytes <= vram,
                                 e.state_bytes))
    best = None if vram is None else max_context(r, vram, req.batch, req.beams, limit)
    return Sweep(spec.id, r.dtype.name, r.kv.name, req.batch, req.beams, vram, limit, best, tuple(points),
                 archs.geometry(spec).cache_grows_with_context)


def _engine_sweep(spec: AnySpec, req: Request, vram: int | None, engine: str) -> Sweep:
    from .engines import engine_estimate, engine_fit

    r = resolve(spec, req)
    limit = context_limit(r, req.context or default_context(r))
    points = []
    e = None
    for c in sweep_contexts(limit, r.image_tokens):
        e = engine_estimate(spec, dataclasses.replace(req, context=c), engine)
        gpu = e.max_device_bytes
        points.append(SweepPoint(c, e.kind_bytes("weights", "gpu"), e.kind_bytes("kv_self", "gpu"),
                                 e.kind_bytes("kv_cross", "gpu"), e.kind_bytes("compute", "gpu"),
                                 e.kind_bytes("overhead", "gpu") + e.kind_bytes("other", "gpu"), gpu,
                                 None if vram is None else gpu <= vram))
    assert e is not None
    best = None if vram is None else engine_fit(spec, req, engine, None, vram).max_context_tokens
    return Sweep(spec.id, e.dtype, e.kv_dtype, req.batch, req.beams, vram, limit, best, tuple(points),
                 archs.geometry(spec).cache_grows_with_context)
