"""`willitrun schema`: the JSON Schema of the spec files, for editors."""

from __future__ import annotations

from typing import Annotated

import typer

from ...errors import UsageError
from ..options import command_app

app = command_app()


@app.command("schema")
def schema_cmd(kind: Annotated[str, typer.Argument(metavar="model|gpu", help="Which spec file.")]) -> None:
    """Print the JSON Schema of a model or GPU spec file."""
    from ...render import print_json
    from ...specs import gpu_spec_schema, model_spec_schema

    if kind not in ("model", "gpu"):
        raise UsageError(f"schema of what? {kind!r}: choose model or gpu")
    print_json(model_spec_schema() if kind == "model" else gpu_spec_schema())
