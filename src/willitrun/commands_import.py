"""`willitrun import`, and the model argument the estimate command shares with it.

A thin command layer over willitrun.importers: cli.py calls `register(app)` once. The annotations
here are evaluated when `register` runs (no `from __future__ import annotations`), because typer
reads them and `SpecsDir` comes from cli.py, imported inside the function to avoid an import cycle.
"""

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

SPEC_SUFFIXES = (".yaml", ".yml")


def resolve_model_arg(arg: str, catalog: Any) -> tuple[Any, Any]:
    """(spec, WeightsOverride or None) for a model argument.

    An existing path is imported (config.json, a model directory, a .gguf file) or, for a .yaml
    file, loaded as a spec; `hf:ORG/NAME` is fetched from the Hub; anything else is a catalog id or
    alias. A directory named like a catalog id wins over the catalog: write `./name` to be explicit.
    """
    path = Path(arg)
    if not arg.startswith("hf:") and path.is_file() and path.suffix in SPEC_SUFFIXES:
        from .catalog import load_spec

        return load_spec(path, "model"), None
    if arg.startswith("hf:") or path.exists():
        from .importers import import_model

        return import_model(arg)
    return catalog.resolve("model", arg), None


def _target(output: Optional[Path], specs_dir: Optional[list[Path]],
            model_id: Optional[str]) -> tuple[Optional[Path], Optional[str]]:
    """(a file or directory to write to, or None for stdout; the id the file name imposes)."""
    from .errors import UsageError
    from .importers.configs import check_id

    if output is not None and specs_dir:
        raise UsageError("give -o/--output or --specs-dir, not both")
    if specs_dir:
        if len(specs_dir) > 1:
            raise UsageError("import writes into one --specs-dir")
        return specs_dir[0] / "model_specs", model_id
    if output is None or output.is_dir() or not output.suffix:
        return output, model_id  # a directory, created if need be
    if output.suffix not in SPEC_SUFFIXES:
        raise UsageError(f"-o {output}: a spec file is named <id>.yaml (or give a directory)")
    stem = check_id(output.stem)
    if model_id and model_id != stem:
        raise UsageError(f"--id {model_id} and -o {output} disagree: a spec file is named after its id")
    return output, stem


def register(app: Any) -> None:
    """Add the `import` command to cli.py's typer app."""
    import typer

    from .cli import SpecsDir, fail
    from .errors import UsageError, WillItRunError

    @app.command("import")
    def import_cmd(
        source: Annotated[str, typer.Argument(help="A config.json, a model directory (config.json and *.safetensors), a .gguf file, or hf:ORG/NAME.")],
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the spec to this .yaml file (its name is the id) or into this directory (created if need be) [default: print it].")] = None,
        model_id: Annotated[Optional[str], typer.Option("--id", help="The spec's id [default: from the file, directory or repository name].")] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec file.")] = False,
        specs_dir: SpecsDir = None,
    ) -> None:
        """Write a model spec (YAML) from a config.json, a model directory, a GGUF file or hf:ORG/NAME."""
        from .importers import import_model, write_spec_yaml
        from .render import err

        try:
            target, model_id = _target(output, specs_dir, model_id)
            spec, weights = import_model(source, model_id=model_id)
            text = write_spec_yaml(spec, spec.sources["config"])
            if target is None:
                sys.stdout.write(text)
            else:
                if target.suffix not in SPEC_SUFFIXES:
                    target = target / f"{spec.id}.yaml"
                if target.exists() and not force:
                    raise UsageError(f"{target} exists; --force overwrites it")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
                except OSError as exc:
                    raise UsageError(f"{target}: cannot write: {exc.strerror or exc}") from None
        except WillItRunError as exc:
            raise fail(exc) from None
        for note in weights.notes if weights else ():
            err.print(f"note: {note}", markup=False, highlight=False)
        if target is None:
            return
        if target.parent.name == "model_specs":
            hint = f"willitrun {spec.id} --specs-dir {target.parent.parent}"
        else:
            hint = f"willitrun {target}"
        err.print(f"wrote {target} (id {spec.id}); estimate it with: {hint}", markup=False, highlight=False)
        if weights is not None:
            err.print(f"note: the spec sizes the weights from the architecture; `willitrun {source}` uses the "
                      f"{weights.total_bytes:,} bytes stored ({weights.storage})", markup=False, highlight=False)
