"""`willitrun show`: a model's spec and what willitrun derives from it."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import CatalogModel, SpecsDir, command_app

app = command_app()


@app.command("show")
def show_cmd(
    model: CatalogModel,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Show a model's spec and the parameter counts derived from it."""
    import yaml

    from ...catalog import load_catalog
    from ...dtypes import weight_dtype
    from ...memory import attention, weight_components
    from ...render import print_json, safe

    spec = load_catalog(specs_dir).resolve("model", model)
    comps = weight_components(spec, weight_dtype(spec.dtype))
    att = attention(spec)
    derived = {
        "parameters": sum(c.parameters for c in comps),
        "components": {c.name: c.parameters for c in comps},
        "self_attention_layers": att.self_layers,
        "cross_attention_layers": att.cross_layers,
        "kv_elements_per_position_per_layer": 2 * att.self_width,
    }
    data = spec.model_dump(mode="json", exclude_none=True)
    if json_out:
        print_json({"schema_version": 1, "spec": data, "derived": derived})
        return
    from ...render import out

    text = yaml.safe_dump(data, sort_keys=False)  # YAML quotes most control characters; safe() the rest
    out.print("\n".join(safe(line) for line in text.split("\n")), markup=False)
    out.print("# derived by willitrun", markup=False)
    out.print(yaml.safe_dump(derived, sort_keys=False), markup=False)
