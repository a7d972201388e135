"""What the estimate command does once its arguments are read. No typer here: the typer command
(cli/commands/estimate.py) and the lean path (cli/lean.py) both fill an `EstimateArgs` and call
`run_estimate`, so they cannot disagree."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ExitCode, UsageError
from . import parse
from .models import devices, request, resolve_model_arg


@dataclass
class EstimateArgs:
    """The estimate command's options as typed (text, so cli/parse.py bounds every number)."""

    model: str
    gpu: list[str] | None = None
    vram: str | None = None
    context: str | None = None
    batch: str = "1"
    dtype: str | None = None
    kv_dtype: str | None = None
    images: str | None = None
    image_size: str | None = None
    encoder_tokens: str | None = None
    beams: str = "1"
    split: str | None = None
    offload: bool = False
    speed: bool = False
    system_bandwidth: str | None = None
    max_batch: bool = False
    no_chart: bool = False
    engine: str | None = None
    ubatch: str | None = None
    flash_attn: bool | None = None
    parallel: str | None = None
    gpu_layers: str | None = None
    gpu_memory_utilization: str | None = None
    json_out: bool = False
    quiet: bool = False
    specs_dir: list[Path] | None = field(default=None)


# Which engine takes which option: (option name, the engine's options field).
ENGINE_OPTIONS = {
    "llama.cpp": {"ubatch": "n_ubatch", "flash_attn": "flash_attn", "parallel": "parallel", "gpu_layers": "gpu_layers"},
    "ollama": {"ubatch": "num_batch", "flash_attn": "flash_attn", "parallel": "num_parallel", "gpu_layers": "num_gpu"},
    "whisper.cpp": {"flash_attn": "flash_attn"},
    "vllm": {"gpu_memory_utilization": "gpu_memory_utilization"},
}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _engine_options(a: EstimateArgs) -> dict[str, Any]:
    """The engine options given, parsed and bounded."""
    given = {"ubatch": parse.whole("--ubatch", a.ubatch), "flash_attn": a.flash_attn,
             "parallel": parse.whole("--parallel", a.parallel), "gpu_layers": parse.whole("--gpu-layers", a.gpu_layers),
             "gpu_memory_utilization": parse.decimal("--gpu-memory-utilization", a.gpu_memory_utilization)}
    return {k: v for k, v in given.items() if v is not None}


def _engines_taking(option: str) -> str:
    """'llama.cpp or ollama' for --ubatch; 'vllm' for --gpu-memory-utilization."""
    names = [e for e, opts in ENGINE_OPTIONS.items() if option in opts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def run_estimate(a: EstimateArgs) -> int:
    """Estimate, print as asked, and return the exit code (0 fits, 1 does not)."""
    from ..catalog import load_catalog
    from ..dtypes import default_engine

    engine = parse.engine(a.engine)
    engine_opts = _engine_options(a)
    system_bandwidth = parse.decimal("--system-bandwidth", a.system_bandwidth)
    cat = load_catalog(a.specs_dir)
    spec, weights = resolve_model_arg(a.model, cat)
    req = request(a.context, a.batch, a.beams, a.dtype, a.kv_dtype, a.images, a.image_size, a.encoder_tokens)
    device, device_name, vram_bytes, cards = devices(cat, a.gpu, a.vram, a.quiet or a.json_out)
    answers = {"split": a.split, "offload": a.offload or None, "speed": a.speed or None,
               "max_batch": a.max_batch or None, "system_bandwidth": system_bandwidth}
    # A GGUF type (given, or stored in an imported .gguf file) implies llama.cpp; the answers
    # (--offload, --speed, --max-batch, several cards) are computed on the transformers profile,
    # so when they are asked for and no engine is named, that profile answers.
    stored = weights.dtype if weights is not None else None
    wants_answers = any(v is not None for v in answers.values()) or len(cards) > 1
    eng = engine or ("transformers" if wants_answers else default_engine(a.dtype or stored))
    if eng != "transformers":
        asked = [_flag(k) for k, v in answers.items() if v is not None]
        if asked or len(cards) > 1:
            raise UsageError(f"{', '.join(asked) or 'several --gpu'}: answered with the transformers engine only "
                             "so far (add --engine transformers)")
        if req.dtype is None and stored:
            req = replace(req, dtype=stored)  # the engine sizes the file's own type
        return _run_engine(a, eng, engine_opts, spec, req, device, device_name, vram_bytes)
    if engine_opts:
        first = next(iter(engine_opts))
        engine_for = next(e for e, opts in ENGINE_OPTIONS.items() if first in opts)
        names = ", ".join(_flag(k) for k in engine_opts)
        raise UsageError(f"{names} {'applies' if len(engine_opts) == 1 else 'apply'} to "
                         f"{_engines_taking(first)}; add --engine {engine_for}")
    return _run_transformers(a, spec, req, weights, cat, device, device_name, vram_bytes, cards, system_bandwidth)


def _run_engine(a: EstimateArgs, engine: str, engine_opts: dict[str, Any], spec: Any, req: Any, device: str,
                device_name: str, vram_bytes: int) -> int:
    fit = engine_fit(spec, req, engine, engine_opts, vram_bytes)
    if not a.quiet:
        from ..render import engine_dict, print_engine_fit, print_json

        if a.json_out:
            print_json({**engine_dict(fit, device), "gpu_name": device_name})
        else:
            print_engine_fit(fit, spec.name, device_name)
    return int(ExitCode.FITS if fit.fits else ExitCode.DOES_NOT_FIT)


def _run_transformers(a: EstimateArgs, spec: Any, req: Any, weights: Any, cat: Any, device: str, device_name: str,
                      vram_bytes: int, cards: list[Any], system_bandwidth: float | None) -> int:
    from ..fit import check_fit
    from .extras import estimate_extras

    result = check_fit(spec, req, vram_bytes, device, weights)
    chart = not (a.no_chart or a.quiet or a.json_out) and sys.stdout.isatty()
    extras = estimate_extras(spec, req, result, cards, split=a.split, offload=a.offload, speed=a.speed,
                             max_batch=a.max_batch, system_bandwidth_gb_s=system_bandwidth, chart=chart,
                             device_name=device_name)
    if not a.quiet:
        from ..render import error, fit_dict, print_json

        for line in cat.shadowed:
            error(line, prefix="note")
        if a.json_out:
            print_json({**fit_dict(result), "gpu_name": device_name, **extras.data})
        else:
            from ..render import out, print_fit

            print_fit(result, spec.name, device_name, verdict=extras.fits is None, chart=extras.chart)
            for view in extras.views:
                out.print(view)
    fits = result.fits if extras.fits is None else extras.fits  # several cards: the split decides
    return int(ExitCode.FITS if fits else ExitCode.DOES_NOT_FIT)


def engine_fit(spec: Any, req: Any, engine: str, given: dict[str, Any], vram_bytes: int) -> Any:
    """Build the engine's options from the CLI's, refusing options the engine does not take."""
    from ..engines import LlamaCppOptions, OllamaOptions, VllmOptions, WhisperCppOptions
    from ..engines import engine_fit as fit

    accepted = ENGINE_OPTIONS.get(engine, {})
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{', '.join(_flag(k) for k in wrong)} does not apply to {engine} "
                         f"(only to {_engines_taking(wrong[0])})")
    if "parallel" in given:  # each of -np sequences gets n_ctx / np cells: at least one
        from ..memory import default_context, resolve

        context = req.context or default_context(resolve(spec, req))
        if given["parallel"] > context:
            raise UsageError(f"--parallel {given['parallel']} is more than the context ({context:,}): "
                             "each sequence needs at least one cell")
    kwargs = {accepted[k]: v for k, v in given.items()}
    options: Any
    try:
        if engine == "llama.cpp":
            options = LlamaCppOptions(**kwargs)
        elif engine == "ollama":
            options = OllamaOptions(**kwargs, vram_bytes=vram_bytes)
        elif engine == "whisper.cpp":
            options = WhisperCppOptions(**kwargs)
        else:
            options = VllmOptions(**kwargs, total_memory_bytes=vram_bytes)
        return fit(spec, req, engine, options, vram_bytes)
    except UsageError as exc:  # the options classes name their fields; the user typed flags
        message = str(exc)
        for flag, name in [*accepted.items(), *ENGINE_OPTIONS["llama.cpp"].items()]:  # ollama runs llama.cpp's
            message = re.sub(rf"\b{name}\b", _flag(flag), message)
        raise UsageError(message) from None
