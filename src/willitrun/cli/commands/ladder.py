"""`willitrun ladder`: which weight and KV-cache types fit one card."""

from __future__ import annotations

import typer

from ..ladders import LadderArgs, run_ladder
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
    args = LadderArgs(
        model,
        gpu,
        vram,
        context,
        batch,
        beams,
        images,
        image_size,
        encoder_tokens,
        engine,
        margin,
        json_out,
        quiet,
        specs_dir,
    )
    raise typer.Exit(run_ladder(args))
