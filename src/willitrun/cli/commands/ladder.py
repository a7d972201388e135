"""`willitrun ladder`: which weight and KV-cache types fit one card."""

from __future__ import annotations

import typer

from ..models import device_memory, request
from ..options import (
    AnswersJson,
    Batch,
    Beams,
    CatalogModel,
    Context,
    EncoderTokens,
    Engine,
    Gpu,
    Images,
    ImageSize,
    Margin,
    Quiet,
    SpecsDir,
    Vram,
    command_app,
)

app = command_app()


@app.command("ladder")
def ladder_cmd(
    model: CatalogModel,
    gpu: Gpu = None,
    vram: Vram = None,
    context: Context = None,
    batch: Batch = "1",
    beams: Beams = "1",
    images: Images = None,
    image_size: ImageSize = None,
    encoder_tokens: EncoderTokens = None,
    engine: Engine = None,
    margin: Margin = None,
    json_out: AnswersJson = False,
    quiet: Quiet = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Which weight and KV-cache types fit, with the largest context and batch each allows (exit 0 if one fits, 5 if only tightly)."""
    from ...answers import quant_ladder
    from ...catalog import load_catalog
    from ...render import print_json, safe, size

    cat = load_catalog(specs_dir)
    spec = cat.resolve("model", model)
    req = request(context, batch, beams, None, None, images, image_size, encoder_tokens)
    dev, device_name, memory = device_memory(cat, gpu, vram, json_out or quiet, margin)
    vram_bytes = memory.total_bytes
    from ..parse import engine as parse_engine

    ladder = quant_ladder(spec, req, memory, parse_engine(engine), device_name)
    if quiet:
        pass  # -q: the exit code alone answers
    elif json_out:
        from ...render_answers import ladder_dict

        print_json(ladder_dict(ladder, dev, device_name))
    else:
        from ...render import out
        from ...render_answers import ladder_view

        out.print(ladder_view(ladder, safe(f"{spec.name} ({spec.id}) on {device_name} ({size(vram_bytes)})")))
    raise typer.Exit(ladder.exit_code)
