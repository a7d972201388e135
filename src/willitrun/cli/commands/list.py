"""`willitrun list`: the catalog's models and GPUs, and the architectures willitrun supports."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...errors import UsageError
from ..options import SpecsDir, command_app

app = command_app()


@app.command("list")
def list_cmd(
    what: Annotated[str, typer.Argument(metavar="[models|gpus|architectures|all]", help="What to list.")] = "all",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """List the models and GPUs in the catalog, or the supported architectures."""
    from ...catalog import load_catalog
    from ...render import print_json

    if what not in ("models", "gpus", "architectures", "archs", "all"):
        raise UsageError(f"list what? {what!r}: choose models, gpus, architectures or all")
    cat = load_catalog(specs_dir)
    if what in ("architectures", "archs"):
        rows = architecture_rows(cat.models())
        if json_out:
            print_json({"schema_version": 1, "architectures": rows, "new_architecture": NEW_ARCHITECTURE})
        else:
            _print_architectures(rows)
        return
    models: list[Any] = cat.models() if what in ("models", "all") else []
    gpus = cat.gpus() if what in ("gpus", "all") else []
    if json_out:
        print_json(
            {
                "schema_version": 1,
                "models": [
                    {"id": m.id, "name": m.name, "architecture": m.architecture, "aliases": m.aliases} for m in models
                ],
                "gpus": [
                    {
                        "id": g.id,
                        "name": g.name,
                        "vendor": g.vendor,
                        "memory_bytes": g.capacity_bytes,
                        "bandwidth_gb_s": g.bandwidth_gb_s,
                    }
                    for g in gpus
                ],
            }
        )
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


# No public address to link yet (pyproject.toml has no [project.urls]); `willitrun docs` finds the docs.
NEW_ARCHITECTURE = (
    "Missing one? docs/adding-an-architecture.md (`willitrun docs` says where it is) walks through "
    "adding it; or open an issue with the model's config.json."
)


def architecture_rows(models: list[Any]) -> list[dict[str, Any]]:
    """Per architecture (archs.ARCHITECTURES): the config.json model_type and GGUF architecture that
    `willitrun import` reads, the catalog models of it, and the engines that refuse it (from the
    geometry of its catalog models; null when the catalog has none to ask)."""
    from ... import archs
    from ...importers.configs import importable
    from ...importers.gguf_file import read_names

    configs = importable()

    rows = []
    for arch in archs.ARCHITECTURES:
        mine = [m for m in models if m.architecture == arch]
        refused: list[str] | None = None
        if mine:
            names: set[str] = set()
            for m in mine:
                names.update(archs.geometry(m).refusals)
            refused = sorted(names)
        rows.append(
            {
                "architecture": arch,
                "family_module": f"willitrun.archs.{archs.FAMILIES[arch]}",
                "config_model_type": arch if arch in configs else None,
                "gguf_architectures": read_names(arch),
                # what llama.cpp writes as general.architecture for the family (archs/family.py: gguf_architectures)
                "gguf_declared": list(archs.family(arch).gguf_architectures),
                "models": [m.id for m in mine],
                "refused_by": refused,
            }
        )
    return rows


def _print_architectures(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from ...archs import SPEECH_ONLY  # Whisper only: said once under the table, not on every row
    from ...render import escape, out

    t = Table(title="architectures", box=None, header_style="bold")
    for col in ("architecture", "config.json", "GGUF", "catalog models", "refused by"):
        t.add_column(col)
    for r in rows:
        refused = r["refused_by"]
        shown = "?" if refused is None else ", ".join(e for e in refused if e not in SPEECH_ONLY) or "-"
        read = {g for row in rows for g in row["gguf_architectures"]}  # a sibling architecture may read it
        unread = [f"{g} (declared, not read yet)" for g in r["gguf_declared"] if g not in read]
        t.add_row(
            escape(r["architecture"]),
            "yes" if r["config_model_type"] else "-",
            escape(", ".join(r["gguf_architectures"] + unread)) or "-",
            escape(", ".join(r["models"])) or "-",
            escape(shown),
        )
    out.print(t)
    out.print(
        "config.json: `willitrun import` reads a config.json of this model_type; GGUF: the general.architecture "
        "values it reads from a .gguf file; ?: no catalog model to ask. whisper.cpp and ctranslate2 "
        "(faster-whisper) run Whisper models only."
    )
    out.print(NEW_ARCHITECTURE)
