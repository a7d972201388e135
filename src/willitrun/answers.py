"""Answers beyond yes/no: what would make it fit, and on what.

- `max_batch`: the largest batch that fits at a context;
- `quant_ladder`: every weight type x KV type, whether it fits and the largest context each allows;
- `which_gpus` / `cards_needed`: every catalog GPU, and how many of one card a model needs;
- `sweep`: total memory by component at context 512, 1024, ... up to the model's window;
- and, re-exported from placement.py and speed.py: multi-GPU splits, partial offload and the
  decode-speed bound, so `from willitrun.answers import ...` reaches every answer. They load on first
  use (PEP 562 `__getattr__`): the ladder needs neither module (~8 ms of `willitrun ladder`).

Pure library: no typer, no rich, nothing printed. Every size is an int of bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import archs
from .dtypes import KV_DTYPES, WEIGHT_DTYPES
from .errors import UsageError
from .fit import FITS, Memory, context_limit, judge, ladder_dtypes, max_context, verdict
from .limits import MAX_CARDS
from .memory import (
    AnySpec,
    Estimate,
    Request,
    Resolved,
    default_context,
    estimate_resolved,
    largest_within,
    resolve,
    weight_components,
)
from .tensors import model_tensors

if TYPE_CHECKING:
    from .engines import EngineOptions
    from .layers import Layout, layout
    from .overrides import WeightsOverride
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
        tp_constraints,
        tp_problems,
    )
    from .specs import GPUSpec
    from .speed import SYSTEM_BANDWIDTH_BYTES_S, DecodeSpeed, SpeedTerm, decode_speed, offload_speed, split_speed

# names re-exported from the module that defines them, imported on first use
_REEXPORTS = {
    **dict.fromkeys(("Layout", "layout"), "layers"),
    **dict.fromkeys(
        (
            "Card",
            "Device",
            "Offload",
            "Split",
            "device",
            "layer_owners",
            "layer_split",
            "offload",
            "split",
            "tensor_split",
            "tp_constraints",
            "tp_problems",
        ),
        "placement",
    ),
    **dict.fromkeys(
        ("SYSTEM_BANDWIDTH_BYTES_S", "DecodeSpeed", "SpeedTerm", "decode_speed", "offload_speed", "split_speed"),
        "speed",
    ),
}


def __getattr__(name: str) -> Any:
    """The names of placement.py, speed.py and layers.py, loaded on first use."""
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __package__), name)
    globals()[name] = value
    return value


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
    """Largest batch whose total fits at `context` (the total grows with the batch: caches and
    activations are per sequence). Exact: it fits, +1 does not. memory.largest_within solves it in a
    few estimates where the total is affine in the batch (it is, here), as the doubling and bisection
    it replaced did in ~2 log2 of the answer; the estimates it made are reused for the answer's totals."""
    totals: dict[int, int] = {}

    def total(b: int) -> int:
        if b not in totals:
            totals[b] = _total(r, context, b, beams)
        return totals[b]

    n = largest_within(total, vram, 1, _MAX_BATCH)
    at = max(n, 1)
    now, after = total(at), total(at + 1)
    return BatchAnswer(context, beams, vram, n, now, after if n else now, after - now)


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
    verdict: str = ""  # fit.FITS, TIGHT or DOES_NOT_FIT, by fit.judge as the main command's
    context_tokens: int = 0  # the row's context: the engine's default when none is given (vLLM: the window)


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
        """The first row that fits (FITS or TIGHT): the most bits that still fit."""
        return next((row for row in self.rows if row.fits), None)

    @property
    def exit_code(self) -> int:
        """0 if a row FITS, 5 if rows fit only tightly, 1 if none fits (each row judged as the main command's)."""
        return 0 if any(r.verdict == FITS for r in self.rows) else 5 if self.best is not None else 1


def engine_for(dtype: str | None, engine: str | None) -> str:
    """The engine a row is sized with: the one given, else the main command's default for the type."""
    from .dtypes import default_engine

    return engine or default_engine(dtype)


def _imported(req: Request, engine: str | None, weights: WeightsOverride | None) -> tuple[Request, str]:
    """The request and engine for an imported file, as the main command decides them: a GGUF file's
    stored type is its --dtype (and so llama.cpp, or the engine whose store held it: ollama); other
    weights size the transformers profile."""
    engine = engine or (weights.engine if weights is not None else None)
    if (
        weights is not None
        and req.dtype is None
        and weights.dtype
        and engine_for(weights.dtype, engine) != "transformers"
    ):
        req = dataclasses.replace(req, dtype=weights.dtype)
    return req, engine_for(req.dtype or (weights.dtype if weights is not None else None), engine)


def engine_max_batch(
    spec: AnySpec, req: Request, engine: str, vram: int, context: int, guess: int | None = None
) -> int:
    """The most sequences of `context` positions whose llama.cpp or ollama estimate fits (the fullest
    GPU's bytes, as engine_fit compares them; no context search per probe).

    Solved by memory.largest_within: each sequence adds its KV cells, outputs and mask columns, so the
    bytes grow almost linearly with the batch (padding aside) and the line through the bracket's ends
    lands on the answer, which the estimate at answer + 1 confirms: ~4 estimates where doubling and
    bisection took ~10 (ladder llava-7b: 198 estimates, ~0.2 s). `guess` (the ladder's previous row
    predicts the next) is tried first with its neighbour: 2 estimates when it is right, and the same
    search on what is left when it is not. The same answer whenever the bytes never fall as the batch
    grows (tests/answers/test_answers.py checks it against a scan of every batch)."""
    return _engine_batch(spec, req, engine, vram, context, guess)[0]


def _engine_batch(
    spec: AnySpec, req: Request, engine: str, vram: int, context: int, guess: int | None
) -> tuple[int, int, int]:
    """(engine_max_batch, the bytes one more sequence adds at that batch and the bytes left at it: 0 and 0
    when not estimated)."""
    from .engines import engine_estimate

    totals: dict[int, int] = {}

    def total(b: int) -> int:
        if b not in totals:
            at = dataclasses.replace(req, batch=b, context=context)
            totals[b] = engine_estimate(spec, at, engine).max_device_bytes
        return totals[b]

    if guess is None or not 1 <= guess < _MAX_NP:
        n = largest_within(total, vram, 1, _MAX_NP)
    elif total(guess) > vram:  # fewer than guessed (0 if not even one fits)
        n = largest_within(total, vram, 1, guess - 1)
    elif total(guess + 1) > vram:  # the guess: it fits and one more does not
        n = guess
    else:
        n = largest_within(total, vram, guess + 1, _MAX_NP)
    if n in totals and n + 1 in totals:
        return n, totals[n + 1] - totals[n], vram - totals[n]
    return n, 0, 0


def engine_options(engine: str, vram: int, gpu_name: str | None = None) -> EngineOptions:
    """The options the main command gives `engine` on one card with none typed (cli/estimation.engine_fit):
    vLLM takes the card's memory and name (its batch defaults depend on both), ollama the card's memory
    (its default context tier: engines/ollama.py ollama_default_context); the others none."""
    from .engines.registry import engine_class

    return engine_class(engine).card_options(vram, gpu_name)  # type: ignore[no-any-return]


class _BatchHint:
    """What the last row of one KV type on one engine found: the next row (smaller weights) starts
    its batch search where the bytes it saves would take the last row's answer. (A plain class: a
    dataclass costs ~0.5 ms to create at import, on every `willitrun ladder`.)"""

    __slots__ = ("device_bytes", "left_bytes", "max_batch", "per_sequence_bytes")

    def __init__(self, device_bytes: int, max_batch: int, per_sequence_bytes: int, left_bytes: int) -> None:
        self.device_bytes = device_bytes  # the row's fullest GPU at the asked batch
        self.max_batch = max_batch
        self.per_sequence_bytes = per_sequence_bytes  # what one more sequence added at max_batch
        self.left_bytes = left_bytes  # what the card had left at max_batch

    def guess(self, device_bytes: int) -> int | None:
        """This row's batch if each sequence adds what it did in the last row, and the bytes this row
        saves (its smaller weights) come on top of what the last row had left."""
        if self.per_sequence_bytes <= 0 or self.max_batch < 1:
            return None
        return self.max_batch + (self.left_bytes + self.device_bytes - device_bytes) // self.per_sequence_bytes


def _engine_row(
    spec: AnySpec,
    req: Request,
    engine: str,
    memory: Memory,
    wname: str,
    kname: str,
    options: EngineOptions,
    hints: dict[str, _BatchHint],
) -> LadderRow:
    """One row on an engine profile; `hints` (by KV type) carries each row's batch search to the next."""
    from .engines import engine_fit

    vram = memory.card_bytes
    row_req = dataclasses.replace(req, dtype=wname, kv_dtype=kname)  # the context as given: the engine's default else
    f = engine_fit(spec, row_req, engine, options, vram)  # UsageError: refused
    e = f.estimate
    from .engines.registry import engine_class

    if engine_class(engine).places_layers:
        hint = hints.get(kname)
        batch, per_seq, left = _engine_batch(
            spec,
            dataclasses.replace(row_req, context=e.context_tokens),
            engine,
            vram,
            e.context_tokens,
            hint.guess(e.max_device_bytes) if hint is not None else None,
        )
        hints[kname] = _BatchHint(e.max_device_bytes, batch, per_seq, left)
    else:
        batch = int(f.fits)
    v = verdict(f, memory)
    kv = e.kind_bytes("kv_self") + e.kind_bytes("kv_cross") + e.need_bytes - e.max_device_bytes  # vLLM: one request's
    return LadderRow(
        wname,
        kname,
        e.kind_bytes("weights"),
        kv,
        f.total_bytes,
        v.fits,
        v.headroom_bytes,
        f.max_context_tokens,
        batch,
        engine,
        v.status,
        e.context_tokens,
    )


def quant_ladder(
    spec: AnySpec, req: Request, vram: int | Memory, engine: str | None = None, gpu_name: str | None = None
) -> Ladder:
    """Every weight type x KV type of the ladder: total at the context, verdict, largest context, largest
    batch; each row on `engine`, else on the main command's default for its type (GGUF types: llama.cpp),
    so a row answers as `willitrun MODEL --dtype TYPE --kv-dtype KV` does (the same context default,
    total and verdict: fit.judge against `vram`, a fit.Memory when free memory or --margin are known)."""
    memory = vram if isinstance(vram, Memory) else Memory(vram)
    vram = memory.card_bytes
    base = resolve(spec, req)
    context = req.context or default_context(base)
    limit = context_limit(base, context)
    tensors = model_tensors(spec)
    rows = []
    refused: UsageError | None = None  # why the engine gave no row; raised when no row is left at all
    options: dict[str, EngineOptions] = {}  # by engine: the same card, the same options for every row
    hints: dict[str, dict[str, _BatchHint]] = {}
    for wname in ladder_dtypes(spec):
        eng = engine_for(wname, engine)
        if eng != "transformers":
            from .engines.registry import engine_class

            if eng not in options:
                options[eng] = engine_options(eng, vram, gpu_name)
            for kname in engine_class(eng).ladder_kv or LADDER_KV:
                try:
                    rows.append(
                        _engine_row(spec, req, eng, memory, wname, kname, options[eng], hints.setdefault(eng, {}))
                    )
                except UsageError as err:  # the engine refuses this type or architecture: no row
                    refused = err
            continue
        wd = WEIGHT_DTYPES[wname]
        comps = weight_components(spec, wd, tensors)
        for kname in LADDER_KV:
            r = dataclasses.replace(base, dtype=wd, kv=KV_DTYPES[kname], components=comps)
            e = estimate_resolved(r, context, req.batch, req.beams)
            v = judge(e.total_bytes, memory, "transformers")
            rows.append(
                LadderRow(
                    wname,
                    kname,
                    e.weights_bytes,
                    e.kv_bytes,
                    e.total_bytes,
                    v.fits,
                    v.headroom_bytes,
                    max_context(r, vram, req.batch, req.beams, limit),
                    max_batch(r, vram, context, req.beams).max_batch,
                    "transformers",
                    v.status,
                    context,
                )
            )
    if (
        not rows and refused is not None
    ):  # e.g. Whisper on llama.cpp: the main command's own refusal, not an empty table
        raise refused
    return Ladder(spec.id, memory.total_bytes, context, req.batch, req.beams, limit, tuple(rows))


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
    from .placement import tp_bytes, tp_kv_heads, tp_problems

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
    from .layers import layout
    from .placement import tensor_split, tp_problems

    r = resolve(spec, req)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    lay = layout(r)
    n = _min_cards(spec, est, lay.kv_proj_bytes, gpu.vram_bytes, max_cards)
    skipped = tuple(
        f"{k}: {'; '.join(tp_problems(spec, k))}" for k in range(2, (n or max_cards) + 1) if tp_problems(spec, k)
    )
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
    verdict: str = ""  # fit.FITS, TIGHT or DOES_NOT_FIT on one card, by fit.judge as the main command's


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
    engine: str = "transformers"  # the profile that sized it; ollama, whisper.cpp and ctranslate2 count one card only


def _engine_cards(spec: AnySpec, req: Request, engine: str, vram: int, gpu_name: str) -> int:
    """The fewest of one card the engine fits on, up to MAX_CARDS: llama.cpp's even layer split over N
    cards (-sm layer), vLLM's tensor parallelism (-tp N; counts that do not divide the heads are
    refused by the profile and skipped); 0 for the other engines (one card each) or if none fits."""
    from .engines import EngineFit, engine_estimate
    from .engines.registry import engine_class

    cls = engine_class(engine)
    if cls.multi_card is None:
        return 0
    key = "gpus" if cls.multi_card == "layers" else "tensor_parallel_size"  # -sm layer over N, or -tp N
    for n in range(2, MAX_CARDS + 1):
        try:
            e = engine_estimate(spec, req, engine, cls.make_options({key: n}, vram, gpu_name))
        except UsageError:
            continue
        if cls.fits(EngineFit(e, vram, 0, 0)):
            return n
    return 0


def _engine_gpus(spec: AnySpec, req: Request, gpus: Iterable[GPUSpec], engine: str, margin: int) -> GpuTable:
    """which_gpus on an engine profile: engine_fit per card with the options the main command gives it
    (engine_options), judged as the main command judges (fit.verdict); the cards needed by _engine_cards."""
    from .engines import engine_fit

    rows = []
    first = None
    for g in sorted(gpus, key=lambda g: (g.capacity_bytes, g.id)):
        memory = Memory(g.capacity_bytes, None, margin)
        vram = memory.card_bytes
        f = engine_fit(spec, req, engine, engine_options(engine, vram, g.name), vram)
        first = first or f
        v = verdict(f, memory)
        need = int(v.fits) or (0 if g.vendor == "apple" else _engine_cards(spec, req, engine, vram, g.name))
        rows.append(
            GpuRow(
                g.id,
                g.name,
                g.capacity_bytes,
                g.bandwidth_gb_s,
                v.fits,
                v.headroom_bytes,
                f.max_context_tokens,
                need,
                v.status,
            )
        )
    assert first is not None, "no GPUs given"
    e = first.estimate
    return GpuTable(
        spec.id,
        e.dtype,
        e.kv_dtype,
        e.context_tokens,
        req.batch,
        req.beams,
        first.total_bytes,
        first.context_limit,
        tuple(rows),
        engine,
    )


def which_gpus(
    spec: AnySpec,
    req: Request,
    gpus: Iterable[GPUSpec],
    engine: str | None = None,
    weights: WeightsOverride | None = None,
    margin: int = 0,
) -> GpuTable:
    """Every GPU given (the catalog): verdict, headroom and largest context on one card, and the cards
    needed under tensor parallelism; sorted by memory. `engine` defaults as the main command's;
    `weights` are an imported file's stored tensors (its GGUF type picks llama.cpp); `margin` is
    kept free of every card (--margin)."""
    from .layers import layout

    req, eng = _imported(req, engine, weights)
    if eng != "transformers":
        return _engine_gpus(spec, req, gpus, eng, margin)
    r = resolve(spec, req, weights)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    limit = context_limit(r, context)
    kv_proj = layout(r).kv_proj_bytes
    rows = []
    for g in sorted(gpus, key=lambda g: (g.capacity_bytes, g.id)):
        memory = Memory(g.capacity_bytes, None, margin)
        vram = memory.card_bytes
        v = judge(est.total_bytes, memory, "transformers")
        rows.append(
            GpuRow(
                g.id,
                g.name,
                g.capacity_bytes,
                g.bandwidth_gb_s,
                v.fits,
                v.headroom_bytes,
                max_context(r, vram, req.batch, req.beams, limit),
                # Macs are not linked for tensor parallelism: one unified memory each
                int(v.fits) if g.vendor == "apple" else _min_cards(spec, est, kv_proj, vram, MAX_CARDS),
                v.status,
            )
        )
    return GpuTable(
        spec.id, est.dtype, est.kv_dtype, context, req.batch, req.beams, est.total_bytes, limit, tuple(rows)
    )


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


def sweep(
    spec: AnySpec,
    req: Request,
    vram: int | None = None,
    engine: str | None = None,
    weights: WeightsOverride | None = None,
    gpu_name: str | None = None,
) -> Sweep:
    """Total memory and its parts at every context of `sweep_contexts`, up to the model's window;
    on `engine` (default as the main command's), the parts are its buffers by kind and the total the
    fullest GPU's bytes."""
    req, eng = _imported(req, engine, weights)
    if eng != "transformers":
        return _engine_sweep(spec, req, vram, eng, gpu_name)
    r = resolve(spec, req, weights)
    limit = context_limit(r, req.context or default_context(r))
    points = []
    for c in sweep_contexts(limit, r.image_tokens):
        e = estimate_resolved(r, c, req.batch, req.beams)
        points.append(
            SweepPoint(
                c,
                e.weights_bytes,
                e.kv_self_bytes,
                e.kv_cross_bytes,
                e.activations_bytes,
                e.overhead_bytes,
                e.total_bytes,
                None if vram is None else e.total_bytes <= vram,
                e.state_bytes,
            )
        )
    best = None if vram is None else max_context(r, vram, req.batch, req.beams, limit)
    return Sweep(
        spec.id,
        r.dtype.name,
        r.kv.name,
        req.batch,
        req.beams,
        vram,
        limit,
        best,
        tuple(points),
        archs.geometry(spec).cache_grows_with_context,
    )


def _engine_sweep(spec: AnySpec, req: Request, vram: int | None, engine: str, gpu_name: str | None = None) -> Sweep:
    """The sweep on an engine: each point is the engine's need at that context (vLLM: with max_model_len
    at that context, its KV for one request, not the pool its share fills: EngineEstimate.need_bytes)."""
    from .engines import engine_estimate, engine_fit
    from .engines.registry import engine_class

    cls = engine_class(engine)
    if cls.sized_by_card and vram is None:
        raise UsageError("vLLM sizes its KV pool from the card: give --gpu or --vram")
    r = resolve(spec, req)
    limit = context_limit(r, req.context or default_context(r))
    options = engine_options(engine, vram, gpu_name) if vram is not None else None
    points = []
    e = None
    for c in sweep_contexts(limit, r.image_tokens):
        e = engine_estimate(spec, dataclasses.replace(req, context=c), engine, options)
        need = e.need_bytes
        kv = e.kind_bytes("kv_self", "gpu") + need - e.max_device_bytes  # vLLM: one request's KV, not the pool
        points.append(
            SweepPoint(
                c,
                e.kind_bytes("weights", "gpu"),
                kv,
                e.kind_bytes("kv_cross", "gpu"),
                e.kind_bytes("compute", "gpu"),
                e.kind_bytes("overhead", "gpu") + e.kind_bytes("other", "gpu"),
                need,
                None if vram is None else cls.fits_estimate(e, vram),
            )
        )
    assert e is not None
    best = None if vram is None else engine_fit(spec, req, engine, options, vram).max_context_tokens
    return Sweep(
        spec.id,
        e.dtype,
        e.kv_dtype,
        req.batch,
        req.beams,
        vram,
        limit,
        best,
        tuple(points),
        archs.geometry(spec).cache_grows_with_context,
    )
