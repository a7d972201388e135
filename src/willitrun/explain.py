"""`willitrun explain`: a log set beside the estimate of the run it describes.

The log's reader (engines.logs) gives the printed buffers and the settings the log states; this module
turns those settings into the request and engine options, estimates the run with the same engine profile
the other commands use, and pairs every printed buffer with the estimate's buffers of the same kind,
placement and device. What the log does not say comes from the caller (a model, a card, a version key) or
the engine's defaults, and the answer says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .engines import engine_estimate
from .engines.base import EngineEstimate
from .engines.logs import LogRun, Printed
from .engines.registry import log_int, log_setting
from .errors import UsageError
from .memory import AnySpec, Request

# GGUF file types as llama.cpp prints them (llama_model_ftype_name, src/llama-model-loader.cpp) -> willitrun's
FILE_TYPES = {
    "all f32": "fp32",
    "f16": "fp16",
    "bf16": "bf16",
    "q8_0": "q8_0",
    "q6_k": "q6_k",
    "q5_k - medium": "q5_k_m",
    "q4_k - medium": "q4_k_m",
    "q4_0": "q4_0",
    "q3_k - medium": "q3_k_m",
    "q2_k - medium": "q2_k",
    "q5_0": "q5_0",
    "q5_1": "q5_1",
    "q4_1": "q4_1",
    "iq4_xs - 4.25 bpw": "iq4_xs",
    "iq3_xxs - 3.0625 bpw": "iq3_xxs",
    "iq2_xxs - 2.0625 bpw": "iq2_xxs",
    "mxfp4 moe": "mxfp4",
}
KV_TYPES = {"f16": "f16", "f32": "f32", "bf16": "bf16", "q8_0": "q8_0", "q4_0": "q4_0"}


@dataclass(frozen=True)
class Row:
    """A printed figure beside the estimate of the same part."""

    part: str
    printed_bytes: int
    estimated_bytes: int
    lines: tuple[int, ...]

    @property
    def difference_bytes(self) -> int:
        return self.estimated_bytes - self.printed_bytes

    @property
    def relative(self) -> float | None:
        return self.difference_bytes / self.printed_bytes if self.printed_bytes else None


@dataclass(frozen=True)
class Explanation:
    run: LogRun
    estimate: EngineEstimate
    rows: tuple[Row, ...]
    settings: dict[str, Any]  # what the estimate was asked, and from where ("log" or "default" or "given")
    notes: tuple[str, ...] = field(default_factory=tuple)


_setting = log_setting


def dtype_of(run: LogRun) -> str | None:
    """The weight type a llama.cpp log names (print_info: file type / llm_load_print_meta: model ftype)."""
    for key in ("file_type", "model_ftype"):
        value = run.facts.get(key)
        if isinstance(value, str):
            name = value.split("(")[0].strip().lower()
            if name in FILE_TYPES:
                return FILE_TYPES[name]
    return None


def options_for(run: LogRun, engine: str, version: str | None, vram_bytes: int | None, settings: dict[str, Any]) -> Any:
    """The engine options the log states (the rest at the engine's defaults): each engine's class reads its
    own (engines/registry.py Engine.options_from_log)."""
    from .engines.registry import engine_class

    return engine_class(engine).options_from_log(run.facts, version, vram_bytes, settings)


def request_for(run: LogRun, engine: str, request: Request, settings: dict[str, Any]) -> Request:
    """The request: what the caller gave wins; else what the log says; else the defaults."""
    kw: dict[str, Any] = {}
    if request.context is None and engine in ("llama.cpp", "vllm"):
        n = log_int(run.facts, "n_ctx", "kv_cells") if engine == "llama.cpp" else log_int(run.facts, "max_model_len")
        if n is not None and n > 0:
            kw["context"] = _setting(settings, "context", n, "log")
    elif request.context is not None:
        _setting(settings, "context", request.context, "given")
    if request.dtype is None and engine in ("llama.cpp", "ollama") and (d := dtype_of(run)) is not None:
        kw["dtype"] = _setting(settings, "dtype", d, "log")
    elif request.dtype is not None:
        _setting(settings, "dtype", request.dtype, "given")
    kv = run.facts.get("type_k")
    if request.kv_dtype is None and isinstance(kv, str) and kv in KV_TYPES:
        kw["kv_dtype"] = _setting(settings, "kv_dtype", KV_TYPES[kv], "log")
    return replace(request, **kw) if kw else request


def _estimated(est: EngineEstimate, p: Printed) -> int:
    """The estimate's bytes for what `p` printed: its buffers of the same kind, placement and device (or the
    named ones), or for a whole-device figure every buffer on that device."""
    if p.kind == "other" and p.estimate_name is None:  # nvidia-smi / ollama ps: the whole device
        return est.device_bytes(p.device) if p.placement == "gpu" else est.host_bytes
    return sum(
        b.bytes
        for b in est.buffers
        if b.placement == p.placement
        and (p.placement == "host" or b.device == p.device)
        and (b.name.startswith(p.estimate_name) if p.estimate_name else b.kind == p.kind)
    )


_PART = {
    "weights": "weights",
    "kv_self": "KV cache",
    "kv_cross": "cross-attention KV",
    "compute": "compute",
    "overhead": "overhead",
    "other": "other",
}


def compare(run: LogRun, est: EngineEstimate) -> tuple[Row, ...]:
    """One row per printed part (several printed lines of one part, e.g. a sliding-window KV buffer beside the
    full one, add up), in the order the log printed them."""
    groups: dict[tuple[str, str, int, str | None], list[Printed]] = {}
    for p in run.buffers:
        if p.kind == "other" and p.estimate_name is None and run.engine not in ("nvidia-smi", "ollama ps"):
            continue
        groups.setdefault(
            (p.kind, p.placement, p.device, p.estimate_name or (p.label if p.kind == "other" else None)), []
        ).append(p)
    rows = []
    for (kind, placement, device, name), printed in groups.items():
        where = f"GPU {device}" if placement == "gpu" else "host"
        part = name or _PART[kind]
        rows.append(
            Row(
                f"{part} ({where})",
                sum(p.bytes for p in printed),
                _estimated(est, printed[0]),
                tuple(p.line for p in printed),
            )
        )
    return tuple(rows)


ENGINE_OF_TOOL = {"nvidia-smi": None, "ollama ps": "ollama"}


def explain(
    run: LogRun,
    spec: AnySpec,
    request: Request | None = None,
    *,
    engine: str | None = None,
    version: str | None = None,
    vram_bytes: int | None = None,
) -> Explanation:
    """The estimate of the run `run` describes, beside what it printed."""
    settings: dict[str, Any] = {}
    eng = engine or ENGINE_OF_TOOL.get(run.engine, run.engine)
    if eng is None:
        raise UsageError(f"{run.engine} output shows totals, not which engine ran: give --engine")
    req = request_for(run, eng, request or Request(), settings)
    opts = options_for(run, eng, version, vram_bytes, settings)
    est = engine_estimate(spec, req, eng, opts)
    notes = list(run.notes)
    asked = settings.get("context", {}).get("value")
    if eng == "llama.cpp" and isinstance(asked, int) and est.n_ctx != asked:
        notes.append(f"the engine allocates {est.n_ctx:,} cells for the {asked:,} asked (padding or slots)")
    return Explanation(run, est, compare(run, est), settings, tuple(notes))


def to_json(x: Explanation) -> dict[str, Any]:
    """The explanation as JSON (docs/json-output.md, `explain`)."""
    return {
        "schema_version": 1,
        "engine": x.estimate.engine,
        "log_reader": x.run.engine,
        "model": x.estimate.model,
        "settings": x.settings,
        "facts": x.run.facts,
        "rows": [
            {
                "part": r.part,
                "printed_bytes": r.printed_bytes,
                "estimated_bytes": r.estimated_bytes,
                "difference_bytes": r.difference_bytes,
                "lines": list(r.lines),
            }
            for r in x.rows
        ],
        "notes": list(x.notes),
    }


# --------------------------------------------------------------------------------------------------
# `explain LOG --save`: what the log shows this machine's runtime holding beyond the engine's buffers
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    """An overhead a log measured: its bytes, the card the log names (None: it names none) and where."""

    engine: str
    bytes: int
    card_name: str | None
    card_total_bytes: int | None
    where: str  # the printed figure and its line


# Why a log cannot give the overhead its engine leaves out (engines/registry.py Engine.measured_overhead
# says which engines take one; these say why the others do not)
CANNOT_SAVE = {
    "ollama": "ollama's log prints its buffers, not what the runtime holds beyond them (its 457 MiB minimum free "
    "memory is a constant of its source, already in the estimate)",
    "whisper.cpp": "whisper.cpp's log prints its buffers only, not what the CUDA context and allocator hold",
    "nvidia-smi": "nvidia-smi shows whole-device totals: which part is overhead cannot be told from them",
    "ollama ps": "`ollama ps` shows whole-model totals: which part is overhead cannot be told from them",
}
# The engine's own line that holds the overhead, said when a log of that engine lacks it
WHERE_PRINTED = {
    "llama.cpp": "it has no memory breakdown table of the run (llama-cli and llama-server print one at exit, "
    "llama.cpp PR #16740; --fit's trial tables do not count): let the program exit and give the whole log",
    "vllm": "it does not print non_torch_memory (vLLM V1 prints the memory profile at DEBUG only: run with "
    "VLLM_LOGGING_LEVEL=DEBUG)",
}


def measured_overhead(run: LogRun) -> Measured:
    """The overhead `run`'s log measured for its engine: llama.cpp's exit memory breakdown (its unaccounted MiB
    on the fullest GPU) or vLLM's non_torch_memory; UsageError saying why for any other log."""
    from .engines.registry import REGISTRY

    cls = REGISTRY.get(run.engine)
    if cls is None or cls.measured_overhead is None:
        why = CANNOT_SAVE.get(run.engine, f"{run.engine} takes no measured overhead")
        raise UsageError(f"--save: {why}; nothing saved")
    found = [p for p in run.buffers if p.kind == "overhead" and p.placement == "gpu"]
    if not found:
        notes = "; ".join(n for n in run.notes if "memory breakdown" in n)
        raise UsageError(
            f"--save: this {run.engine} log shows no overhead: {notes or WHERE_PRINTED.get(run.engine, '')}; "
            "nothing saved"
        )
    top = max(found, key=lambda p: p.bytes)
    name, total = run.facts.get(f"gpu{top.device}_name"), run.facts.get(f"gpu{top.device}_total_bytes")
    return Measured(
        run.engine,
        top.bytes,
        name if isinstance(name, str) else None,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        f"{top.label}, line {top.line}",
    )
