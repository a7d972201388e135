"""`willitrun sweep`: memory by component over context lengths, optionally plotted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ...errors import ExitCode, GPUDetectionError
from ..models import device_memory, request
from ..options import (
    AnswersJson,
    Batch,
    Beams,
    Dtype,
    EncoderTokens,
    Engine,
    Gpu,
    Images,
    ImageSize,
    KvDtype,
    Margin,
    Model,
    Quiet,
    SpecsDir,
    Vram,
    command_app,
)

app = command_app()


@app.command("sweep")
def sweep_cmd(
    model: Model,
    gpu: Gpu = None,
    vram: Vram = None,
    batch: Batch = "1",
    beams: Beams = "1",
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    images: Images = None,
    image_size: ImageSize = None,
    encoder_tokens: EncoderTokens = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            metavar="FILE",
            show_default=False,
            help="Also draw the sweep to FILE.svg or FILE.png (needs `pip install 'willitrun[plot]'`).",
        ),
    ] = None,
    engine: Engine = None,
    margin: Margin = None,
    json_out: AnswersJson = False,
    quiet: Quiet = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Memory by component at context 512, 1024, ... up to the model's window (exit 0 if any context fits)."""
    from ...answers import sweep
    from ...catalog import load_catalog
    from ...render import error, print_json, safe

    cat = load_catalog(specs_dir)
    from ..models import resolve_model_arg

    spec, weights = resolve_model_arg(model, cat)
    req = request(None, batch, beams, dtype, kv_dtype, images, image_size, encoder_tokens)
    dev, device_name, vram_bytes = _device_or_none(cat, gpu, vram, json_out or quiet, margin)
    from ..parse import engine as parse_engine

    sw = sweep(spec, req, vram_bytes, parse_engine(engine), weights, device_name)
    title = f"{spec.name} ({spec.id}), {sw.dtype} weights, {sw.kv_dtype} KV cache, batch {sw.batch_size}"
    if device_name:
        title += f", on {device_name}"
    if plot is not None:
        from ...render_answers import plot_sweep

        plot_sweep(sw, plot, title)
    if quiet:
        pass  # -q: the exit code alone answers
    elif json_out:
        from ...render_answers import sweep_dict

        print_json(sweep_dict(sw, dev, device_name))
    else:
        from ...render import out
        from ...render_answers import sweep_view

        out.print(sweep_view(sw, safe(title)))
        if plot is not None:
            error(f"wrote {plot}", prefix=None)
    raise typer.Exit(
        int(ExitCode.FITS if vram_bytes is None or any(p.fits for p in sw.points) else ExitCode.DOES_NOT_FIT)
    )


def _device_or_none(
    cat: Any, gpu: Optional[str], vram: Optional[str], quiet: bool, margin: Optional[str] = None
) -> tuple[Any, Any, Any]:
    """The device and the bytes every point is checked against (the card less --margin), or (None, None,
    None) with a note when nothing is given and no GPU is detected."""
    try:
        dev, name, memory = device_memory(cat, gpu, vram, quiet, margin)
        return dev, name, memory.card_bytes
    except GPUDetectionError:
        from ...render import error

        error("no --gpu or --vram given and no GPU detected: fits not shown", prefix="note")
        return None, None, None
