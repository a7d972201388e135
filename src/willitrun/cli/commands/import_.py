"""`willitrun import`: write a model spec from a config.json, a model directory, a GGUF file or the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ...errors import UsageError
from ..models import SPEC_SUFFIXES
from ..options import SpecsDir, command_app

app = command_app()


@app.command("import")
def import_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            show_default=False,
            help="A config.json, a model directory (config.json and *.safetensors), a .gguf file, or hf:ORG/NAME; also ORG/NAME[:QUANT] from the local Hugging Face cache, an ollama name, or a remote .gguf (hf:ORG/NAME/FILE.gguf, an https URL).",
        ),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            show_default=False,
            help="Write the spec to this .yaml file (its name is the id) or into this directory (created if need be) [default: print it].",
        ),
    ] = None,
    model_id: Annotated[
        Optional[str],
        typer.Option(
            "--id",
            metavar="ID",
            show_default=False,
            help="The spec's id [default: from the file, directory or repository name].",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec file.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Write a model spec (YAML) from a config.json, a model directory, a GGUF file or hf:ORG/NAME."""
    from ...importers import write_spec_yaml
    from ...render import error

    target, model_id = target_path(output, specs_dir, model_id)
    spec, weights = _import(source, model_id)
    text = write_spec_yaml(spec, spec.sources["config"])
    if target is None:
        typer.echo(text, nl=False)
    else:
        target = _write(target, spec.id, text, force)
    for note in weights.notes if weights else ():
        error(note, prefix="note")
    if target is not None:
        _hints(target, spec, weights, source)


def _import(source: str, model_id: Optional[str]) -> tuple[Any, Any]:
    """A path or hf:ORG/NAME through the importers; a remote GGUF, or a name found in the HF cache or
    ollama's store, through sources/ (as the estimate's MODEL)."""
    from ...files import path_type
    from ...importers import import_model
    from ...sources.names import resolve_name
    from ...sources.remote import is_remote_gguf

    if not is_remote_gguf(source) and (source.startswith("hf:") or path_type(source).kind != "missing"):
        return import_model(source, model_id=model_id)
    found = resolve_name(source, model_id=model_id, hub=False)
    return found if found is not None else import_model(source, model_id=model_id)  # its "no such file" line


def _write(target: Path, spec_id: str, text: str, force: bool) -> Path:
    """Write the spec atomically (files.write_atomic): on a full disk an existing spec stays whole."""
    from ...files import path_type, safe_path, write_atomic

    if target.suffix not in SPEC_SUFFIXES:
        target = target / f"{spec_id}.yaml"
    kind = path_type(target)
    if kind.kind == "directory":
        raise UsageError(f"{safe_path(target)} is a directory")
    if kind.kind != "missing" and not force:
        raise UsageError(f"{safe_path(target)} exists; --force overwrites it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{safe_path(target.parent)}: cannot create the folder: {exc.strerror or exc}") from None
    write_atomic(target, text.encode("utf-8"), "spec file")
    return target


def _hints(target: Path, spec: Any, weights: Any, source: str) -> None:
    from ...render import error

    if target.parent.name == "model_specs":
        hint = f"willitrun {spec.id} --specs-dir {target.parent.parent}"
    else:
        hint = f"willitrun {target}"
    error(f"wrote {target} (id {spec.id}); estimate it with: {hint}", prefix=None)
    if weights is not None:
        error(
            f"the spec sizes the weights from the architecture; `willitrun {source}` uses the "
            f"{weights.total_bytes:,} bytes stored ({weights.storage})",
            prefix="note",
        )


def target_path(
    output: Optional[Path], specs_dir: Optional[list[Path]], model_id: Optional[str]
) -> tuple[Optional[Path], Optional[str]]:
    """(a file or directory to write to, or None for stdout; the id the file name imposes)."""
    from ...files import path_type
    from ...importers.configs import check_id

    if output is not None and specs_dir:
        raise UsageError("give -o/--output or --specs-dir, not both")
    if specs_dir:
        if len(specs_dir) > 1:
            raise UsageError("import writes into one --specs-dir")
        return specs_dir[0] / "model_specs", model_id
    if output is None or path_type(output).kind == "directory" or not output.suffix:
        return output, model_id  # a directory, created if need be
    if output.suffix not in SPEC_SUFFIXES:
        raise UsageError(f"-o {output}: a spec file is named <id>.yaml (or give a directory)")
    stem = check_id(output.stem)
    if model_id and model_id != stem:
        raise UsageError(f"--id {model_id} and -o {output} disagree: a spec file is named after its id")
    return output, stem
