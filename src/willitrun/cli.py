"""The `willitrun` command: parse arguments, call the core, choose a renderer, map errors to exit codes.

Only this module imports typer.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from .errors import ExitCode, GPUDetectionError, SpecError, UsageError, WillItRunError

DEFAULT_COMMAND = "estimate"


class DefaultCommandGroup(TyperGroup):
    """`willitrun llava-7b ...` runs the `estimate` command when the first word is not a command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Will this model run on this GPU? Memory for weights, KV cache (self and cross attention), "
    "activations and overhead, with the verdict and the largest context that fits.\n\n"
    "Run `willitrun MODEL --gpu GPU`; see `willitrun estimate --help` for every option.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

def _version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"willitrun {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Will this model run on this GPU? Memory for weights, KV cache (self and cross attention),
    activations and overhead, with the verdict and the largest context that fits.

    Run `willitrun MODEL --gpu GPU`; see `willitrun estimate --help` for every option."""


SpecsDir = Annotated[
    Optional[list[Path]],
    typer.Option("--specs-dir", help="Extra directory with model_specs/ and/or hardware_specs/ (repeatable); "
                 "adds to or overrides the bundled catalog. Also read from WILLITRUN_SPECS_PATH."),
]


def fail(exc: WillItRunError) -> typer.Exit:
    from .render import err

    lines = exc.problems if isinstance(exc, SpecError) else [str(exc)]
    for line in lines:
        err.print(f"error: {line}", markup=False, highlight=False)
    return typer.Exit(int(exc.exit_code))


_UNITS = {"": 1 << 30, "gib": 1 << 30, "gb": 10**9, "mib": 1 << 20, "mb": 10**6, "tib": 1 << 40, "tb": 10**12,
          "g": 1 << 30, "m": 1 << 20}


def parse_size(text: str) -> int:
    """'24GiB', '24 GB', '80000MiB', '24' (GiB) -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"--vram {text!r}: give a size such as 24GiB, 24GB or 24576MiB (a bare number is GiB)")
    value = float(m.group(1)) * _UNITS[unit]
    if value < 1 << 20:
        raise UsageError(f"--vram {text!r} is too small to hold anything")
    if value > 1 << 50:
        raise UsageError(f"--vram {text!r} is more than 1 PiB; give one card's memory")
    return int(value)


def parse_image_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--image-size {text!r}: give HEIGHTxWIDTH in pixels, e.g. 672x672")
    return int(m.group(1)), int(m.group(2))


@app.command(DEFAULT_COMMAND)
def estimate_cmd(
    model: Annotated[str, typer.Argument(help="Model id or alias, e.g. llava-7b (see `willitrun list models`); or a config.json, a model directory, a .gguf file, a spec .yaml or hf:ORG/NAME.")],
    gpu: Annotated[Optional[list[str]], typer.Option("--gpu", "-g", help="GPU id, alias or NVML name, e.g. rtx3090; several cards: repeat it or write 2xrtx3090.")] = None,
    vram: Annotated[Optional[str], typer.Option(help="Memory to fit into instead of a GPU: 24GiB, 24GB, 81920MiB (bare number = GiB).")] = None,
    context: Annotated[Optional[int], typer.Option("--context", "-c", help="Positions in the self-attention cache, image tokens included [default: min(4096, model window)].")] = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Sequences processed together.")] = 1,
    dtype: Annotated[Optional[str], typer.Option(help="Weight type: fp32 fp16 bf16 fp8 int8 int4 q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k [default: the checkpoint's].")] = None,
    kv_dtype: Annotated[Optional[str], typer.Option("--kv-dtype", help="KV cache type: f32 f16 bf16 fp8 q8_0 q4_0 [default: the compute type].")] = None,
    images: Annotated[Optional[int], typer.Option(help="Images per sequence (LLaVA, Llama 3.2 Vision) [default: 1].")] = None,
    image_size: Annotated[Optional[str], typer.Option("--image-size", help="HEIGHTxWIDTH of the image for LLaVA-NeXT's anyres tiling [default: the largest token count].")] = None,
    encoder_tokens: Annotated[Optional[int], typer.Option("--encoder-tokens", help="Encoder input tokens for T5-style models [default: 512].")] = None,
    beams: Annotated[int, typer.Option(help="Beam search width; multiplies KV caches and activations.")] = 1,
    split: Annotated[Optional[str], typer.Option(help="Several cards: tensor (tensor parallel; the default for identical cards) or layer (whole layers per card; the default for mixed cards).")] = None,
    offload: Annotated[bool, typer.Option("--offload", help="How many layers stay on the GPU when it does not fit (llama.cpp -ngl) and the system memory for the rest.")] = False,
    speed: Annotated[bool, typer.Option("--speed", help="Upper bound on decode tokens/s: memory bandwidth / bytes read per token.")] = False,
    system_bandwidth: Annotated[Optional[float], typer.Option("--system-bandwidth", help="System-memory bandwidth in GB/s for --offload --speed [default: 89.6, dual-channel DDR5-5600].")] = None,
    max_batch: Annotated[bool, typer.Option("--max-batch", help="Also the largest batch that fits at this context.")] = False,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="No bar of the memory parts against the card (it is shown only in a terminal).")] = False,
    engine: Annotated[Optional[str], typer.Option("--engine", "-e", help="transformers, llama.cpp, ollama, whisper.cpp or vllm [default: llama.cpp for GGUF --dtype, else transformers].")] = None,
    ubatch: Annotated[Optional[int], typer.Option("--ubatch", help="llama.cpp -ub / ollama num_batch [default: 512].")] = None,
    flash_attn: Annotated[Optional[bool], typer.Option("--flash-attn/--no-flash-attn", help="llama.cpp, ollama, whisper.cpp [default: the engine's].")] = None,
    parallel: Annotated[Optional[int], typer.Option("--parallel", help="llama.cpp -np / OLLAMA_NUM_PARALLEL [default: 1].")] = None,
    gpu_layers: Annotated[Optional[int], typer.Option("--gpu-layers", help="llama.cpp -ngl / ollama num_gpu [default: all].")] = None,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option("--gpu-memory-utilization", help="vLLM's share of the card [default: 0.9].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (docs/json-output.md) instead of a table.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; only the exit code tells (0 fits, 1 does not).")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Estimate the memory MODEL needs and whether it fits the GPU (exit 0 fits, 1 does not)."""
    from .catalog import load_catalog
    from .commands_answers import estimate_devices, estimate_extras
    from .fit import check_fit
    from .memory import Request

    try:
        from .commands_import import resolve_model_arg

        cat = load_catalog(specs_dir)
        spec, weights = resolve_model_arg(model, cat)
        req = Request(context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype, images=images,
                      encoder_tokens=encoder_tokens, beams=beams,
                      image_size=parse_image_size(image_size) if image_size else None)
        device, device_name, vram_bytes, cards = estimate_devices(cat, gpu, vram, quiet or json_out)
        from .dtypes import default_engine

        engine_opts = dict(ubatch=ubatch, flash_attn=flash_attn, parallel=parallel, gpu_layers=gpu_layers,
                           gpu_memory_utilization=gpu_memory_utilization)
        answers = dict(split=split, offload=offload or None, speed=speed or None, max_batch=max_batch or None,
                       system_bandwidth=system_bandwidth)
        # A GGUF type (given, or stored in an imported .gguf file) implies llama.cpp; the answers
        # (--offload, --speed, --max-batch, several cards) are computed on the transformers profile,
        # so when they are asked for and no engine is named, that profile answers.
        stored = weights.dtype if weights is not None else None
        implied = default_engine(dtype or stored)
        wants_answers = any(v is not None for v in answers.values()) or len(cards) > 1
        eng = engine or ("transformers" if wants_answers else implied)
        if eng != "transformers" and req.dtype is None and stored:
            from dataclasses import replace

            req = replace(req, dtype=stored)  # the engine sizes the file's own type
        if eng != "transformers":
            asked = [f"--{k.replace('_', '-')}" for k, v in answers.items() if v is not None]
            if asked or len(cards) > 1:
                raise UsageError(f"{', '.join(asked) or 'several --gpu'}: answered with the transformers engine only so far (add --engine transformers)")
            result_e = _engine_fit(spec, req, eng, engine_opts, vram_bytes)
        else:
            given = [f"--{k.replace('_', '-')}" for k, v in engine_opts.items() if v is not None]
            if given:
                raise UsageError(f"{', '.join(given)} apply to llama.cpp, ollama, whisper.cpp or vllm; add --engine")
            result = check_fit(spec, req, vram_bytes, device, weights)
            extras = estimate_extras(spec, req, result, cards, split=split, offload=offload, speed=speed,
                                     max_batch=max_batch, system_bandwidth_gb_s=system_bandwidth,
                                     chart=not (no_chart or quiet or json_out) and sys.stdout.isatty(),
                                     device_name=device_name)
    except WillItRunError as exc:
        raise fail(exc) from None
    if eng != "transformers":
        if not quiet:
            from .render import engine_dict, print_engine_fit, print_json

            if json_out:
                print_json({**engine_dict(result_e, device), "gpu_name": device_name})
            else:
                print_engine_fit(result_e, spec.name, device_name)
        raise typer.Exit(int(ExitCode.FITS if result_e.fits else ExitCode.DOES_NOT_FIT))
    if not quiet:
        from .render import err, fit_dict, out, print_fit, print_json

        for line in cat.shadowed:
            err.print(f"note: {line}", markup=False)
        if json_out:
            data = fit_dict(result)
            data["gpu_name"] = device_name
            data.update(extras.data)
            print_json(data)
        else:
            print_fit(result, spec.name, device_name, verdict=extras.fits is None, chart=extras.chart)
            for view in extras.views:
                out.print(view)
    fits = result.fits if extras.fits is None else extras.fits  # several cards: the split decides
    raise typer.Exit(int(ExitCode.FITS if fits else ExitCode.DOES_NOT_FIT))


# Which engine takes which option: (option name, the engine's options field).
_ENGINE_OPTIONS = {
    "llama.cpp": {"ubatch": "n_ubatch", "flash_attn": "flash_attn", "parallel": "parallel", "gpu_layers": "gpu_layers"},
    "ollama": {"ubatch": "num_batch", "flash_attn": "flash_attn", "parallel": "num_parallel", "gpu_layers": "num_gpu"},
    "whisper.cpp": {"flash_attn": "flash_attn"},
    "vllm": {"gpu_memory_utilization": "gpu_memory_utilization"},
}


def _engine_fit(spec: Any, req: Any, engine: str, given: dict[str, Any], vram_bytes: int) -> Any:
    """Build the engine's options from the CLI's, refusing options the engine does not take."""
    from .engines import ENGINES, LlamaCppOptions, OllamaOptions, VllmOptions, WhisperCppOptions, engine_fit

    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    accepted = _ENGINE_OPTIONS[engine]
    wrong = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None and k not in accepted]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} does not apply to {engine}")
    kwargs = {accepted[k]: v for k, v in given.items() if v is not None}
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
        return engine_fit(spec, req, engine, options, vram_bytes)
    except UsageError as exc:  # the options classes name their fields; the user typed flags
        message = str(exc)
        for flag, field in [*accepted.items(), *_ENGINE_OPTIONS["llama.cpp"].items()]:  # ollama runs llama.cpp's
            message = re.sub(rf"\b{field}\b", f"--{flag.replace('_', '-')}", message)
        raise UsageError(message) from None


def _device(cat: Any, gpu: str | None, vram: str | None, quiet: bool) -> tuple[str, str, int]:
    """(device id, display name, bytes available) from --gpu, --vram, or NVML detection."""
    if gpu and vram:
        raise UsageError("give --gpu or --vram, not both")
    if vram:
        n = parse_size(vram)
        return "vram", f"--vram {vram.strip()}", n
    if gpu:
        spec = cat.resolve("gpu", gpu)
        return spec.id, spec.name, spec.capacity_bytes
    from .gpu import detect_gpus, match_gpu

    found = detect_gpus()
    first = found[0]
    known = match_gpu(first.name, cat.gpus(), first.total_bytes)
    if not quiet:
        from .render import err

        extra = f" (+{len(found) - 1} more: --gpu {len(found)}xGPU estimates a split)" if len(found) > 1 else ""
        err.print(f"detected GPU 0: {first.name}, {first.total_bytes / (1 << 30):.2f} GiB total, "
                  f"{first.free_bytes / (1 << 30):.2f} GiB free{extra}", markup=False)
    return (known.id if known else f"nvml:{first.index}"), first.name, first.total_bytes


def _read_rows(path: Path) -> list[tuple[str, str, int | None]]:
    """Rows `model,gpu[,context]` from a file; blank lines and # comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--rows {path}: cannot read: {exc}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"{path}:{n}: expected model,gpu[,context], got {line!r}")
        context = None
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise UsageError(f"{path}:{n}: context {parts[2]!r} is not a whole number of at least 1")
            context = int(parts[2])
        rows.append((parts[0], parts[1], context))
    if not rows:
        raise UsageError(f"--rows {path}: no rows")
    return rows


@app.command("check")
def check_cmd(
    models: Annotated[Optional[list[str]], typer.Argument(help="Model ids or aliases.")] = None,
    gpus: Annotated[Optional[list[str]], typer.Option("--gpu", "-g", help="GPU id (repeatable); every model is checked on every GPU.")] = None,
    rows: Annotated[Optional[Path], typer.Option("--rows", help="File of `model,gpu[,context]` lines to check (# comments allowed).")] = None,
    context: Annotated[Optional[int], typer.Option("--context", "-c", help="Context for every check without its own.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="Weight type for every check.")] = None,
    kv_dtype: Annotated[Optional[str], typer.Option("--kv-dtype", help="KV cache type for every check.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line (the --json schema of an estimate).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; exit 0 only if every check fits.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Check several model/GPU pairs at once; exit 0 only if all fit, 1 if any does not."""
    from .catalog import load_catalog
    from .fit import check_fit
    from .memory import Request

    try:
        pairs: list[tuple[str, str, int | None]] = []
        if rows is not None:
            pairs += _read_rows(rows)
        if models or gpus:
            if not models or not gpus:
                raise UsageError("give MODEL... together with --gpu (or use --rows FILE)")
            pairs += [(m, g, context) for m in models for g in gpus]
        if not pairs:
            raise UsageError("nothing to check: give MODEL... --gpu GPU..., or --rows FILE")
        cat = load_catalog(specs_dir)
        results = []
        for model, gpu, ctx in pairs:
            spec = cat.resolve("model", model)
            card = cat.resolve("gpu", gpu)
            req = Request(context=ctx if ctx is not None else context, dtype=dtype, kv_dtype=kv_dtype)
            results.append((spec, card, check_fit(spec, req, card.capacity_bytes, card.id)))
    except WillItRunError as exc:
        raise fail(exc) from None
    if not quiet:
        import json

        from .render import fit_dict, out, size

        if json_out:
            for spec, card, f in results:
                sys.stdout.write(json.dumps({**fit_dict(f), "gpu_name": card.name}) + "\n")
        else:
            from rich.table import Table

            t = Table(box=None, header_style="bold")
            for col in ("model", "gpu", "context", "total", "memory", "verdict", "max context"):
                t.add_column(col, justify="left" if col in ("model", "gpu", "verdict") else "right")
            for spec, card, f in results:
                t.add_row(spec.id, card.id, f"{f.estimate.context_tokens:,}", size(f.estimate.total_bytes),
                          size(f.vram_bytes), "fits" if f.fits else "DOES NOT FIT", f"{f.max_context_tokens:,}")
            out.print(t)
    all_fit = all(f.fits for _, _, f in results)
    raise typer.Exit(int(ExitCode.FITS if all_fit else ExitCode.DOES_NOT_FIT))


@app.command("list")
def list_cmd(
    what: Annotated[str, typer.Argument(help="models, gpus or all.")] = "all",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """List the models and GPUs in the catalog."""
    from rich.table import Table

    from .catalog import load_catalog
    from .render import out, print_json, size

    if what not in ("models", "gpus", "all"):
        raise fail(UsageError(f"list what? {what!r}: choose models, gpus or all"))
    try:
        cat = load_catalog(specs_dir)
        models = cat.models() if what in ("models", "all") else []
        gpus = cat.gpus() if what in ("gpus", "all") else []
    except WillItRunError as exc:
        raise fail(exc) from None
    if json_out:
        print_json({
            "schema_version": 1,
            "models": [{"id": m.id, "name": m.name, "architecture": m.architecture, "aliases": m.aliases} for m in models],
            "gpus": [{"id": g.id, "name": g.name, "vendor": g.vendor, "memory_bytes": g.capacity_bytes,
                      "bandwidth_gb_s": g.bandwidth_gb_s} for g in gpus],
        })
        return
    if models:
        t = Table(title="models", box=None, header_style="bold")
        for col in ("id", "name", "architecture", "aliases"):
            t.add_column(col)
        for m in models:
            t.add_row(m.id, m.name, m.architecture, ", ".join(m.aliases))
        out.print(t)
    if gpus:
        t = Table(title="GPUs", box=None, header_style="bold")
        for col in ("id", "name", "memory", "bandwidth"):
            t.add_column(col, justify="right" if col in ("memory", "bandwidth") else "left")
        for g in sorted(gpus, key=lambda g: (g.vendor, g.capacity_bytes, g.id)):
            t.add_row(g.id, g.name, size(g.capacity_bytes), f"{g.bandwidth_gb_s:g} GB/s")
        out.print(t)


@app.command("show")
def show_cmd(
    model: Annotated[str, typer.Argument(help="Model id or alias.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Show a model's spec and the parameter counts derived from it."""
    import yaml

    from .catalog import load_catalog
    from .memory import attention, weight_components
    from .dtypes import weight_dtype
    from .render import out, print_json

    try:
        spec = load_catalog(specs_dir).resolve("model", model)
    except WillItRunError as exc:
        raise fail(exc) from None
    comps = weight_components(spec, weight_dtype(spec.dtype))
    att = attention(spec)
    derived = {
        "parameters": sum(c.parameters for c in comps),
        "components": {c.name: c.parameters for c in comps},
        "self_attention_layers": att.self_layers,
        "cross_attention_layers": att.cross_layers,
        "kv_elements_per_position_per_layer": 2 * att.self_width,
    }
    if json_out:
        print_json({"schema_version": 1, "spec": spec.model_dump(mode="json", exclude_none=True), "derived": derived})
        return
    out.print(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False), markup=False)
    out.print("# derived by willitrun", markup=False)
    out.print(yaml.safe_dump(derived, sort_keys=False), markup=False)


@app.command("validate")
def validate_cmd(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Spec files or directories [default: the catalog and user spec directories].")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too (e.g. a number without a source).")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Check spec files; print each problem as file:line: field: message (exit 0 only if all are valid)."""
    from .render import err, out
    from .validate import validate_paths

    try:
        errors, warnings, notes, checked = validate_paths(paths, specs_dir)
    except WillItRunError as exc:
        raise fail(exc) from None
    for n in notes:
        err.print(f"note: {n}", markup=False)
    for w in warnings:
        err.print(f"{'error' if strict else 'warning'}: {w}", markup=False)
    if strict:
        errors = errors + warnings
    if errors:
        raise fail(SpecError(errors[0], errors))
    out.print(f"{checked} spec files valid" + (f", {len(warnings)} warnings" if warnings else ""), markup=False)


@app.command("schema")
def schema_cmd(kind: Annotated[str, typer.Argument(help="model or gpu.")]) -> None:
    """Print the JSON Schema of a model or GPU spec file."""
    from .render import print_json
    from .specs import GPUSpec, model_spec_schema

    if kind not in ("model", "gpu"):
        raise fail(UsageError(f"schema of what? {kind!r}: choose model or gpu"))
    print_json(model_spec_schema() if kind == "model" else GPUSpec.model_json_schema())


from .commands_answers import register as _register_answers  # noqa: E402 - needs SpecsDir and fail above
from .commands_import import register as _register_import  # noqa: E402

_register_answers(app)
_register_import(app)


def main() -> None:
    """Console entry point: no exception leaves as a traceback unless WILLITRUN_DEBUG is set."""
    try:
        app(prog_name="willitrun")
    except WillItRunError as exc:  # raised outside a command body
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: never exit 1, which scripts read as "does not fit"
        if os.environ.get("WILLITRUN_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc} (set WILLITRUN_DEBUG=1 for a traceback)\n")
        sys.exit(int(ExitCode.INTERNAL))


__all__ = ["app", "main", "GPUDetectionError"]
