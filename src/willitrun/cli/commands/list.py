"""`willitrun list`: the catalog's models and GPUs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...errors import UsageError
from ..options import SpecsDir, command_app

app = command_app()


@app.command("list")
def list_cmd(
    what: Annotated[str, typer.Argument(metavar="[models|gpus|all]", help="What to list.")] = "all",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """List the models and GPUs in the catalog."""
    from ...catalog import load_catalog
    from ...render import print_json

    if what not in ("models", "gpus", "all"):
        raise UsageError(f"list what? {what!r}: choose models, gpus or all")
    cat = load_catalog(specs_dir)
    models: list[Any] = cat.models() if what in ("models", "all") else []
    gpus = cat.gpus() if what in ("gpus", "all") else []
    if json_out:
        print_json({
            "schema_version": 1,
            "models": [{"id": m.id, "name": m.name, "architecture": m.architecture, "aliases": m.aliases} for m in models],
            "gpus": [{"id": g.id, "name": g.name, "vendor": g.vendor, "memory_bytes": g.capacity_bytes,
                      "bandwidth_gb_s": g.bandwidth_gb_s} for g in gpus],
        })
        return
    _print_tables(models, gpus)


def _print_tables(models: list[Any], gpus: list[Any]) -> None:
    from rich.table import Table

    from ...render import escape, out, size

    if models:
        t = Table(title="models", box=None, header_style="bold")
        for col in ("id", "name", "architecture", "aliases"):
            t.add_column(col)
        for m in models:
            t.add_row(escape(m.id), escape(m.name), escape(m.architecture), escape(", ".join(m.aliases)))
        out.print(t)
    if gpus:
        t = Table(title="GPUs", box=None, header_style="bold")
        for col in ("id", "name", "memory", "bandwidth"):
            t.add_column(col, justify="right" if col in ("memory", "bandwidth") else "left")
        for g in sorted(gpus, key=lambda g: (g.vendor, g.capacity_bytes, g.id)):
            t.add_row(escape(g.id), escape(g.name), size(g.capacity_bytes), f"{g.bandwidth_gb_s:g} GB/s")
        out.print(t)
