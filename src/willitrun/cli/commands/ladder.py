"""`willitrun ladder`: which weight and KV-cache types fit one card."""

from __future__ import annotations

import typer

from ...errors import ExitCode
from ..models import device, request
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
    Quiet,
    SpecsDir,
    Vram,
    command_app,
)

app = command_app()


@app.command("ladder")
def ladder_cmd(model: CatalogModel, gpu: Gpu = None, vram: Vram = None, context: Context = None, batch: Batch = "1",
               beams: Beams = "1", images: Images = None, image_size: ImageSize = None,
               encoder_tokens: EncoderTokens = None, engine: Engine = None, json_out: AnswersJson = False,
               quiet: Quiet = False, specs_dir: SpecsDir = None) -> None:
    """Which weight and KV-cache types fit, with the largest context and batch each allows (exit 0 if any fits)."""
    from ...answers import quant_ladder
    from ...catalog import load_catalog
    from ...render import print_json, safe, size

    cat = load_catalog(specs_dir)
    spec = cat.resolve("model", model)
    req = request(context, batch, beams, None, None, images, image_size, encoder_tokens)
    dev, device_name, vram_bytes = device(cat, gpu, vram, json_out or quiet)
    from ..parse import engine as parse_engine

    ladder = quant_ladder(spec, req, vram_bytes, parse_engine(engine))
    if quiet:
        pass  # -q: the exit code alone answers
    elif json_out:
        from ...render_answers import ladder_dict

        print_json(ladder_dict(ladder, dev, device_name))
    else:
        from ...render import out
        from ...render_answers import ladder_view

        out.print(ladder_view(ladder, safe(f"{spec.name} ({spec.id}) on {device_name} ({size(vram_bytes)})")))
    raise typer.Exit(int(ExitCode.FITS if ladder.best is not None else ExitCode.DOES_NOT_FIT))
