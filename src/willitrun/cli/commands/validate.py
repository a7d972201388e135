"""`willitrun validate`: check spec files the way the pre-commit hook and CI do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ...errors import SpecError
from ..options import SpecsDir, command_app

app = command_app()


@app.command("validate")
def validate_cmd(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(
            metavar="[PATH]...",
            show_default=False,
            help="Spec files or directories [default: ./model_specs and ./hardware_specs when here, else the catalog and user spec directories].",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on warnings too (e.g. a number without a source).")
    ] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Check spec files; print each problem as file:line: field: message (exit 0 only if all are valid)."""
    from ...render import error
    from ...validate import validate_paths

    errors, warnings, notes, checked = validate_paths(paths, specs_dir)
    for n in notes:
        error(n, prefix="note")
    if strict:
        errors = errors + warnings  # printed once, with the errors, by the error handler
    else:
        for w in warnings:
            error(w, prefix="warning")
    if errors:
        raise SpecError(errors[0], errors)
    typer.echo(f"{checked} spec files valid" + (f", {len(warnings)} warnings" if warnings else ""))
