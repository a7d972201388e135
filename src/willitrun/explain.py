"""`willitrun explain`: a log set beside the estimate of the run it describes.

The log's reader (engines.logs) gives the printed buffers and the settings the log states; this module
turns those settings into the request and engine options, estimates the run with the same engine profile
the other commands use, and pairs every printed buffer with the estimate's buffers of the same kind,
placement and device. What the log does not say comes from the caller (a model, a card, a version key) or
the engine's defaults, and the answer says which.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from .engines import LlamaCppOptions, OllamaOptions, VllmOptions, WhisperCppOptions, engine_estimate
from .engines.base import EngineEstimate
from .engines.logs import LogRun, Printed
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


def _setting(settings: dict[str, Any], name: str, value: Any, source: str) -> Any:
    settings[name] = {"value": value, "from": source}
    return value


def _int_fact(run: LogRun, *keys: str) -> int | None:
    for key in keys:
        value = run.facts.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


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
    """The engine options the log states (the rest at the engine's defaults)."""
    f = run.facts
    if engine == "llama.cpp":
        kw: dict[str, Any] = {}
        if (n := _int_fact(run, "n_ubatch")) is not None:
            kw["n_ubatch"] = _setting(settings, "n_ubatch", n, "log")
        if isinstance(f.get("flash_attn"), bool):
            kw["flash_attn"] = _setting(settings, "flash_attn", f["flash_attn"], "log")
        if (n := _int_fact(run, "n_seq_max")) is not None and n > 1:
            kw["parallel"] = _setting(settings, "parallel", n, "log")
        if (n := _int_fact(run, "layers_offloaded")) is not None:
            kw["gpu_layers"] = _setting(settings, "gpu_layers", n, "log")
        if version is None:
            era = f.get("log_era")
            version = "2024-05" if era == "2024" else "current"
            _setting(settings, "llamacpp_version", version, f"log format ({era})")
        else:
            _setting(settings, "llamacpp_version", version, "given")
        return LlamaCppOptions(version=version, **kw)
    if engine == "ollama":
        kw = {}
        if (n := _int_fact(run, "n_ctx")) is not None:
            kw["num_ctx"] = _setting(settings, "num_ctx", n, "log")
        if (n := _int_fact(run, "n_seq_max")) is not None:
            kw["num_parallel"] = _setting(settings, "num_parallel", n, "log")
        if (n := _int_fact(run, "layers_offloaded", "n_gpu_layers")) is not None:
            kw["num_gpu"] = _setting(settings, "num_gpu", n, "log")
        if vram_bytes is not None:
            kw["vram_bytes"] = vram_bytes
        return OllamaOptions(**kw)
    if engine == "vllm":
        from .engines.vllm import VLLM_VERSIONS

        kw = {}
        total = f.get("total_gpu_memory_bytes")
        if isinstance(total, int):
            kw["total_memory_bytes"] = _setting(settings, "total_memory_bytes", total, "log")
        elif vram_bytes is not None:
            kw["total_memory_bytes"] = _setting(settings, "total_memory_bytes", vram_bytes, "the card")
        if isinstance(f.get("gpu_memory_utilization"), str):
            with contextlib.suppress(ValueError):
                kw["gpu_memory_utilization"] = _setting(
                    settings, "gpu_memory_utilization", float(str(f["gpu_memory_utilization"])), "log"
                )
        for key, name in (
            ("max_model_len", "max_model_len"),
            ("tensor_parallel_size", "tensor_parallel"),
            ("pipeline_parallel_size", "pipeline_parallel"),
            ("max_num_seqs", "max_num_seqs"),
            ("max_num_batched_tokens", "max_num_batched_tokens"),
        ):
            if (n := _int_fact(run, key)) is not None and n > 0:
                kw[name] = _setting(settings, name, n, "log")
        if version is None and isinstance(f.get("version"), str):
            release = ".".join(str(f["version"]).split(".")[:2])
            if release in VLLM_VERSIONS:
                version = release
                _setting(settings, "vllm_version", version, "log")
        if version is not None:
            kw["version"] = version
            settings.setdefault("vllm_version", {"value": version, "from": "given"})
        return VllmOptions(**kw)
    if engine == "whisper.cpp":
        kw = {"decoders": _setting(settings, "decoders", 1, "whisper_init_state sizes the self cache for one decoder")}
        if isinstance(f.get("flash_attn"), bool):
            kw["flash_attn"] = _setting(settings, "flash_attn", f["flash_attn"], "log")
        if version is None and isinstance(f.get("version"), str):
            version = _setting(settings, "whisper_version", str(f["version"]), "log")
        return WhisperCppOptions(version=version, **kw) if version else WhisperCppOptions(**kw)
    return None


def request_for(run: LogRun, engine: str, request: Request, settings: dict[str, Any]) -> Request:
    """The request: what the caller gave wins; else what the log says; else the defaults."""
    kw: dict[str, Any] = {}
    if request.context is None and engine in ("llama.cpp", "vllm"):
        n = _int_fact(run, "n_ctx", "kv_cells") if engine == "llama.cpp" else _int_fact(run, "max_model_len")
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
