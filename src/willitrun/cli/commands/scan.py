"""`willitrun scan [FOLDER]...`: the models already on this machine, each sized on its own engine
against the card: gather (sources.scan_places) → estimate each (engines.engine_fit) → print."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ...errors import ExitCode
from ..options import Gpu, SpecsDir, Vram, command_app, json_option

app = command_app()

SCHEMA_VERSION = 1
ScanJson = Annotated[bool, json_option("docs/scan.md")]
Folders = Annotated[
    Optional[list[Path]],
    typer.Argument(
        metavar="[FOLDER]...",
        show_default=False,
        help="Folders to scan (GGUF files, model folders with config.json, hub caches) instead of the places engines "
        "download to: the Hugging Face cache, ollama's store, LM Studio's and llama.cpp's folders.",
    ),
]


@dataclass(frozen=True)
class Row:
    """One model found, estimated at its engine's default context against the card."""

    name: str
    path: str
    place: str
    engine: str
    architecture: str
    parameters: int
    size_bytes: int
    fits: bool
    verdict: str  # fit.py's: fits, tight or does_not_fit (against the free memory of a detected card)
    context_tokens: int
    total_bytes: int
    max_context_tokens: int
    context_limit: int


@app.command("scan")
def scan_cmd(
    folders: Folders = None, gpu: Gpu = None, vram: Vram = None, json_out: ScanJson = False, specs_dir: SpecsDir = None
) -> None:
    """Find the models on this machine (HF cache, ollama, LM Studio, llama.cpp) or in FOLDERs, and which fit (exit 0 if any fits)."""
    from ...catalog import load_catalog
    from ...sources import Place, default_places, scan_places
    from ...sources.places import FOLDER
    from ..models import device_memory

    cat = load_catalog(specs_dir)
    dev, device_name, memory = device_memory(cat, gpu, vram, json_out)
    vram_bytes = memory.total_bytes
    places = [Place(FOLDER, p) for p in folders] if folders else default_places()
    progress = not json_out and sys.stderr.isatty()
    if progress:
        from ...render import err

        with err.status("Looking for models…"):
            result = scan_places(places)
    else:
        result = scan_places(places)
    rows, problems = _estimate_all(result.found, memory, progress)
    problems = [*result.problems, *problems]
    rows.sort(key=lambda r: (_RANK[r.verdict], -r.size_bytes, r.name))
    if json_out:
        from ...render import print_json

        print_json(
            {
                "schema_version": SCHEMA_VERSION,
                "gpu": dev,
                "gpu_name": device_name,
                "vram_bytes": vram_bytes,
                "models": [asdict(r) for r in rows],
                "truncated": result.truncated,
                "skipped": [{"path": p.path, "reason": p.reason} for p in problems],
            }
        )
    else:
        _print(rows, device_name, vram_bytes, [str(p.path) for p in places] if folders else None)
        from ...render import error

        for p in problems:
            error(f"{p.path}: {p.reason}", prefix="skipped")
        if result.truncated:
            error("the scan stopped at a limit: the list is incomplete (scan a narrower folder)", prefix="warning")
    raise typer.Exit(int(_exit_code(rows)))


_RANK = {"fits": 0, "tight": 1, "does_not_fit": 2}


def _exit_code(rows: list[Row]) -> ExitCode:
    """0 when a model FITS, 5 when the best is TIGHT, 1 when none fits (or none is found): the estimate's codes."""
    verdicts = {r.verdict for r in rows}
    if "fits" in verdicts:
        return ExitCode.FITS
    return ExitCode.TIGHT if "tight" in verdicts else ExitCode.DOES_NOT_FIT


def _estimate_all(found: list[Any], memory: Any, progress: bool) -> tuple[list[Row], list[Any]]:
    from ...sources import Problem

    rows: list[Row] = []
    problems: list[Problem] = []

    def one(f: Any) -> None:
        try:
            rows.append(_estimate(f, memory))
        except Exception as exc:  # one damaged or unsupported model never stops the scan
            if os.environ.get("WILLITRUN_DEBUG") and not _user_error(exc):
                raise
            first = (str(exc).splitlines() or [type(exc).__name__])[0].removeprefix(f"{f.path}: ")
            problems.append(Problem(str(f.path), first if _user_error(exc) else f"{type(exc).__name__}: {first}"))

    if not progress or len(found) < 2:
        for f in found:
            one(f)
        return rows, problems
    from rich.progress import Progress

    from ...render import err

    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("Estimating", total=len(found))
        for f in found:
            one(f)
            bar.advance(task)
    return rows, problems


def _user_error(exc: Exception) -> bool:
    from ...errors import WillItRunError

    return isinstance(exc, WillItRunError)


def _estimate(f: Any, memory: Any) -> Row:
    """Import the model from its files and fit it on its engine, as `willitrun MODEL --engine E` does, and
    judge it as that command does (fit.verdict: FITS, TIGHT within the engine's reserve or error band or
    the free memory of a detected card, DOES NOT FIT)."""
    from dataclasses import replace

    from ...dtypes import weight_dtype
    from ...engines import engine_class, engine_fit
    from ...fit import verdict
    from ...importers import spec_from_path
    from ...importers.configs import slug
    from ...memory import Request, weight_components

    short = f.name.rsplit("/", 1)[-1].removesuffix(".gguf")
    spec, weights = spec_from_path(f.path, model_id=slug(short), name=short)
    req = Request()
    if f.engine != "transformers" and weights is not None and weights.dtype:
        req = replace(req, dtype=weights.dtype)  # the engine sizes the file's own type
    vram = memory.card_bytes
    options = engine_class(f.engine).make_options({}, vram)  # the fields the engine takes from the card (ollama's tier)
    fit = engine_fit(spec, req, f.engine, options, vram, weights)
    judged = verdict(fit, memory)
    parameters = (
        weights.elements
        if weights is not None
        else sum(c.parameters for c in weight_components(spec, weight_dtype(spec.dtype)))
    )
    return Row(
        f.name,
        str(f.path),
        f.place,
        f.engine,
        spec.architecture,
        parameters,
        f.size_bytes,
        judged.fits,
        judged.status,
        fit.estimate.context_tokens,
        fit.total_bytes,
        fit.max_context_tokens,
        fit.context_limit,
    )


def _print(rows: list[Row], device_name: str, vram: int, folders: list[str] | None) -> None:
    from rich.table import Table

    from ...render import escape, out, size

    where = ", ".join(folders) if folders else "the Hugging Face cache, ollama, LM Studio and llama.cpp"
    if not rows:
        out.print(f"No model found in {escape(where)}.")
        return
    from rich import box

    table = Table(
        title=f"Models found on this machine, on {escape(device_name)} ({size(vram)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    wide = out.width >= 110  # a narrow terminal: the name, the engine and the answer; JSON has every field
    table.add_column("model", overflow="fold", min_width=16)
    columns = (
        ["engine", "arch", "params", "on disk", "fits", "needs", "context", "max context"]
        if wide
        else ["engine", "on disk", "fits", "needs", "ctx", "max ctx"]
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("engine", "arch", "fits") else "right", no_wrap=True)
    for r in rows:
        cells = [
            escape(r.name),
            r.engine,
            escape(r.architecture),
            _count(r.parameters),
            size(r.size_bytes),
            {"fits": "[green]FITS[/]", "tight": "[yellow]TIGHT[/]"}.get(r.verdict, "[red]no[/]"),
            size(r.total_bytes),
            f"{r.context_tokens:,}",
            f"{r.max_context_tokens:,}" if r.max_context_tokens else "none",
        ]
        table.add_row(*(cells if wide else cells[:2] + cells[4:]))
    out.print(table)
    fitting = sum(r.verdict == "fits" for r in rows)
    tight = sum(r.verdict == "tight" for r in rows)
    out.print(
        f"{fitting} of {len(rows)} models fit at their default context"
        + (f", {tight} more only tightly (TIGHT)." if tight else ".")
    )


def _count(n: int) -> str:
    """Parameters for people: 8.19B, 494M, 37,120."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n:,}"
