"""`willitrun check`: several model/GPU pairs, from arguments or a rows file (cli/checks.py does it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..checks import CheckArgs, run_check
from ..options import Context, Dtype, Engine, KvDtype, SpecsDir, command_app

app = command_app()


@app.command("check")
def check_cmd(
    models: Annotated[
        Optional[list[str]], typer.Argument(metavar="[MODEL]...", show_default=False, help="Model ids or aliases.")
    ] = None,
    gpus: Annotated[
        Optional[list[str]],
        typer.Option(
            "--gpu",
            "-g",
            metavar="GPU",
            show_default=False,
            help="GPU id (repeatable); every model is checked on every GPU.",
        ),
    ] = None,
    rows: Annotated[
        Optional[Path],
        typer.Option(
            "--rows",
            metavar="FILE",
            show_default=False,
            help="File of `model,gpu[,context]` lines to check (a header line and # comments allowed), read and printed a line at a time; a line that cannot be checked says why in its row.",
        ),
    ] = None,
    context: Context = None,
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    engine: Engine = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per line: the --json object of an estimate for MODEL... --gpu GPU...; with --rows, a compact line per row (docs/json-output.md). A row that could not be checked has `error`.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing; exit 0 only if every check fits.")
    ] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Check several model/GPU pairs at once; exit 0 only if all fit, 1 if any does not, 5 if any is tight,
    2 (3: a spec error) if any row could not be checked (each such row says why)."""
    args = CheckArgs(models, gpus, rows, context, dtype, kv_dtype, engine, json_out, quiet, specs_dir)
    raise typer.Exit(run_check(args))
