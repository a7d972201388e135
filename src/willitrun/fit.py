"""Estimate + available memory -> verdict, headroom, the largest context that fits, and what would
make it fit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dtypes import KV_DTYPES, WEIGHT_DTYPES

# the searches and the transformers parts live with the arithmetic (engines use them and know no verdict);
# imported here for the callers that know them as fit.*
from .memory import AnySpec, Estimate, Request, Resolved, _total, default_context, estimate_resolved, resolve
from .memory import context_limit as context_limit
from .memory import estimate_facts as estimate_facts
from .memory import estimate_parts as estimate_parts
from .memory import largest as largest
from .memory import max_context as max_context

if TYPE_CHECKING:
    from .engines import EngineFit
    from .overrides import WeightsOverride

# Weight types, largest first: the `ladder` command's rows and the types tried when suggesting a
# smaller one (one ladder: issue 12 found two that disagreed).
LADDER_WEIGHTS = ("fp16", "fp8", "int8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k")
DTYPE_LADDER = LADDER_WEIGHTS
KV_LADDER = ("f16", "fp8", "q8_0", "q4_0")


@dataclass(frozen=True)
class Fit:
    estimate: Estimate
    device: str  # what the memory figure belongs to: a catalog GPU id, a detected card, or "--vram"
    vram_bytes: int
    max_context_tokens: int  # 0 when not even the smallest context fits
    context_limit: int  # the largest context searched (the model's window)
    suggestions: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """The bytes compared with the card (as EngineFit.total_bytes)."""
        return self.estimate.total_bytes

    @property
    def fits(self) -> bool:
        return self.estimate.total_bytes <= self.vram_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.vram_bytes - self.estimate.total_bytes


def ladder_dtypes(spec: AnySpec) -> tuple[str, ...]:
    """LADDER_WEIGHTS with the 16-bit rung in bf16 unless the checkpoint is fp16 (same size; fp32-trained
    models such as T5 overflow in fp16)."""
    return LADDER_WEIGHTS if spec.dtype == "float16" else ("bf16", *LADDER_WEIGHTS[1:])


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def suggestions(
    spec: AnySpec, req: Request, r: Resolved, est: Estimate, vram: int, weights: WeightsOverride | None = None
) -> list[str]:
    """Changes that would make a non-fitting estimate fit, smallest change first."""
    out: list[str] = []
    limit = context_limit(r, est.context_tokens)
    n = max_context(r, vram, est.batch_size, est.beams, limit)
    if n:
        out.append(f"--context {n} fits (the largest that does)")
    if est.batch_size > 1 and _total(r, est.context_tokens, 1, est.beams) <= vram:
        b = largest(lambda n: _total(r, est.context_tokens, n, est.beams) <= vram, 1, est.batch_size)
        out.append(f"--batch {b} fits (the largest that does)")
    if est.beams > 1 and _total(r, est.context_tokens, est.batch_size, 1) <= vram:
        out.append("--beams 1 (greedy decoding) fits")
    current = WEIGHT_DTYPES[est.dtype]
    for name in ladder_dtypes(spec):
        cand = WEIGHT_DTYPES[name]
        if cand.storage.bits_per_element >= current.storage.bits_per_element or name == est.dtype:
            continue
        r2 = resolve(
            spec,
            Request(
                batch=req.batch,
                dtype=name,
                kv_dtype=req.kv_dtype,
                images=req.images,
                encoder_tokens=req.encoder_tokens,
                beams=req.beams,
                image_size=req.image_size,
            ),
            weights,
        )
        if _total(r2, est.context_tokens, est.batch_size, est.beams) <= vram:
            out.append(
                f"--dtype {name} fits ({_gib(estimate_resolved(r2, est.context_tokens, est.batch_size, est.beams).weights_bytes)} of weights)"
            )
            break
    current_kv = KV_DTYPES[est.kv_dtype]
    for name in KV_LADDER:
        kv_cand = KV_DTYPES[name]
        if kv_cand.bits_per_element >= current_kv.bits_per_element:
            continue
        # req.dtype, not est.dtype: the same without imported weights, and keeps their stored bytes with them
        r2 = resolve(
            spec,
            Request(
                batch=req.batch,
                dtype=req.dtype,
                kv_dtype=name,
                images=req.images,
                encoder_tokens=req.encoder_tokens,
                beams=req.beams,
                image_size=req.image_size,
            ),
            weights,
        )
        if _total(r2, est.context_tokens, est.batch_size, est.beams) <= vram:
            out.append(f"--kv-dtype {name} fits")
            break
    return out


def check_fit(
    spec: AnySpec,
    req: Request,
    vram_bytes: int,
    device: str,
    weights: WeightsOverride | None = None,
    *,
    suggest: bool = True,
    resolved: Resolved | None = None,
) -> Fit:
    """Estimate `spec` for `req` and compare it with `vram_bytes`; `suggest=False` skips the search
    for what would make it fit (check prints none); `resolved` reuses resolve(spec, req, weights)."""
    r = resolved or resolve(spec, req, weights)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    limit = context_limit(r, context)
    n = max_context(r, vram_bytes, req.batch, req.beams, limit)
    hints = (
        ()
        if est.total_bytes <= vram_bytes or not suggest
        else tuple(suggestions(spec, req, r, est, vram_bytes, weights))
    )
    return Fit(est, device, vram_bytes, n, limit, hints)


# --------------------------------------------------------------------------------------------------
# The verdict: FITS, TIGHT or DOES NOT FIT, against the card and what is free on it now (issue 19 §3)
# --------------------------------------------------------------------------------------------------
MIB = 1 << 20
FITS, TIGHT, DOES_NOT_FIT = "fits", "tight", "does_not_fit"


@dataclass(frozen=True)
class ErrorBand:
    """How far an engine's estimate has been from measured runs: the largest sum of absolute
    buffer errors of one run (its total is off by at most this much), over `runs` runs."""

    bytes: int
    runs: int
    worst_run: str


# Generated from the calibration comparisons (tests/engines/calibration.py over tests/engines/data/
# measured.yaml and calibration_extra.yaml, the rows docs/accuracy.md prints; informational rows left
# out); tests/answers/test_verdict.py recomputes this table and prints the new one when the data change.
# ollama has no measured run of its own (it runs llama.cpp's buffers plus its own layout): no band.
ERROR_BANDS: dict[str, ErrorBand] = {
    "whisper.cpp": ErrorBand(30864, 10, "whispercpp-ci-v100-large-v3-turbo-f16"),
    "transformers": ErrorBand(181584372, 1, "fw-readme-v1.1.0-large-v2-openai-fp16-b5"),
    "llama.cpp": ErrorBand(24680704, 29, "mtmd-ggufparser44-qwen2.5-vl-fa-on"),
    "vllm": ErrorBand(49964175, 10, "vllm-pr12126-llama-3.2-11b-vision-bf16-h100-tp1"),
    "ctranslate2": ErrorBand(626870272, 9, "fw-readme-17a6d83-medium-ctranslate2-3.5-fp16-b5-v100s"),
    "ollama": ErrorBand(17940, 5, "ollama-0.7.0-llama2-7b-q4_0-metal-m2pro-np2"),
}


@dataclass(frozen=True)
class Reserve:
    """What an engine keeps free of the memory it finds free, beyond the buffers it sizes (the engine
    class declares it: engines/registry.py Engine.reserve_bytes / reserve_source)."""

    bytes: int
    source: str


def reserve(engine: str) -> Reserve:
    """Against the memory free now (a detected card), engine `engine`'s own reserve."""
    from .engines.registry import REGISTRY

    e = REGISTRY.get(engine)
    return Reserve(e.reserve_bytes, e.reserve_source) if e is not None else Reserve(0, "no reserve of its own")


@dataclass(frozen=True)
class Memory:
    """What an answer is judged against: the card's total (or --vram), what is free on it now when
    the card was detected (None with --gpu/--vram), and the user's own --margin."""

    total_bytes: int
    free_bytes: int | None = None
    margin_bytes: int = 0

    @property
    def card_bytes(self) -> int:
        """The card less the user's margin: what every estimate and largest-context search fits into."""
        return max(self.total_bytes - self.margin_bytes, 0)


@dataclass(frozen=True)
class Verdict:
    status: str  # FITS, TIGHT or DOES_NOT_FIT
    engine: str
    need_bytes: int  # what the engine needs (vLLM: weights, non-torch, profile peak and one max_model_len request's KV)
    total_bytes: int  # the card's total (or --vram)
    free_bytes: int | None  # free now on a detected card; None without detection
    margin_bytes: int  # --margin
    reserve_bytes: int  # the engine's own reserve, taken off the free memory
    reserve_source: str
    available_bytes: int  # what the need was judged against (free now when known, else the card)
    headroom_bytes: int  # available - need
    band: ErrorBand | None
    reason: str  # one sentence: why TIGHT or DOES NOT FIT ("" when it fits)
    # what the need was judged against when the engine takes a share of the card's total as its whole
    # budget ("vLLM's share"; Engine.budget), else ""
    share_name: str = ""

    @property
    def fits(self) -> bool:
        """It fits the card (FITS or TIGHT)."""
        return self.status != DOES_NOT_FIT

    @property
    def label(self) -> str:
        return {FITS: "FITS", TIGHT: "TIGHT", DOES_NOT_FIT: "DOES NOT FIT"}[self.status]

    @property
    def exit_code(self) -> int:
        """0 FITS, 5 TIGHT, 1 DOES NOT FIT (errors.ExitCode; README's table)."""
        from .errors import ExitCode

        return int({FITS: ExitCode.FITS, TIGHT: ExitCode.TIGHT, DOES_NOT_FIT: ExitCode.DOES_NOT_FIT}[self.status])


def worst(codes: Iterable[int]) -> int:
    """One exit code for several verdicts: 1 if any does not fit, else 5 if any is tight, else 0."""
    seen = set(codes)
    return 1 if 1 in seen else 5 if 5 in seen else 0


def verdict(f: Fit | EngineFit, memory: Memory | None = None) -> Verdict:
    """The verdict on a fit: against `memory` (the card, what is free on it, --margin), else the
    memory the fit was sized for."""
    memory = memory or Memory(f.vram_bytes)
    if isinstance(f, Fit):
        return judge(f.total_bytes, memory, "transformers")
    from .engines.registry import REGISTRY

    e = f.estimate
    budget = REGISTRY[e.engine].budget(e)
    if budget is not None:
        return judge(e.need_bytes, memory, e.engine, share_bytes=budget[0], utilization=budget[1])
    return judge(f.total_bytes, memory, e.engine)


def budget_line(f: Fit | EngineFit, size: Callable[[int], str]) -> str:
    """The engine's sentence on its need against its own budget (vLLM: its share), "" for none."""
    if isinstance(f, Fit):
        return ""
    from .engines.registry import REGISTRY

    return REGISTRY[f.estimate.engine].budget_line(f, size)


def judge(
    need: int, memory: Memory, engine: str, *, share_bytes: int | None = None, utilization: float | None = None
) -> Verdict:
    """FITS, TIGHT or DOES NOT FIT. The need must fit the card less --margin (vLLM: its share of the
    card, `share_bytes`). A detected card's free memory then decides between FITS and TIGHT: the need
    plus the engine's reserve must fit what is free less --margin; vLLM V1 refuses to start when less
    than its share is free (vllm/v1/worker/gpu_worker.py `init_device`: "Free memory on device ... on
    startup is less than desired GPU memory utilization"). Last, headroom inside the engine's
    measured error band (ERROR_BANDS) is TIGHT."""
    gib = _gib
    own = reserve(engine)
    share_name = f"{_label(engine)}'s share" if share_bytes is not None else ""
    band = ERROR_BANDS.get(engine)
    card = share_bytes if share_bytes is not None else memory.card_bytes
    free = memory.free_bytes
    if need > card:
        what = (
            f"{share_name} ({utilization:.2f}) of {gib(memory.total_bytes)}"
            if share_bytes is not None and utilization
            else gib(memory.total_bytes)
            + (f" less the {gib(memory.margin_bytes)} margin" if memory.margin_bytes else "")
        )
        return Verdict(
            DOES_NOT_FIT,
            engine,
            need,
            memory.total_bytes,
            free,
            memory.margin_bytes,
            0,
            own.source,
            card,
            card - need,
            band,
            f"needs {gib(need - card)} more than {what}",
            share_name,
        )
    available, reason = card, ""
    if free is not None:
        if share_bytes is not None:
            if free - memory.margin_bytes < share_bytes:
                reason = (
                    f"{_label(engine)} takes {gib(share_bytes)} at start and only {gib(free)} is free now: it refuses to start "
                    "(lower --gpu-memory-utilization or free memory)"
                )
        else:
            now = free - memory.margin_bytes - own.bytes
            available = min(card, now)
            if need > now:
                kept = f" less {own.source}" if own.bytes else ""
                reason = f"fits the card's {gib(memory.total_bytes)} but not the {gib(free)} free now{kept}"
    headroom = available - need
    if not reason and band is not None and headroom < band.bytes:
        reason = f"the headroom is inside the {engine} estimate's measured error (±{band.bytes / MIB:,.0f} MiB)"
    return Verdict(
        TIGHT if reason else FITS,
        engine,
        need,
        memory.total_bytes,
        free,
        memory.margin_bytes,
        own.bytes if share_bytes is None and free is not None else 0,
        own.source,
        available,
        headroom,
        band,
        reason,
        share_name,
    )


def _label(engine: str) -> str:
    """How sentences name engine `engine` (Engine.label, else its name)."""
    from .engines.registry import REGISTRY

    e = REGISTRY.get(engine)
    return (e.label or e.name) if e is not None else engine


def runtime_overhead(engine: str) -> str:
    """What engine `engine`'s totals hold of the runtime beyond its own buffers (the CUDA context, cuBLAS,
    the allocator), said beside totals that mix engines (ladder) so that they can be compared (issue 19);
    each engine class declares it (engines/registry.py Engine.runtime_overhead)."""
    from .engines.registry import REGISTRY

    e = REGISTRY.get(engine)
    return e.runtime_overhead if e is not None else ""
