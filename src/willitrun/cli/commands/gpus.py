"""`willitrun gpus`: every catalog GPU for one model, or how many of one card it needs."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ...errors import ExitCode, UsageError
from ..models import request
from ..options import (
    AnswersJson,
    Batch,
    Beams,
    Context,
    Dtype,
    EncoderTokens,
    Engine,
    Images,
    ImageSize,
    KvDtype,
    Margin,
    Model,
    Quiet,
    SpecsDir,
    command_app,
)

app = command_app()


@app.command("gpus")
def gpus_cmd(
    model: Model,
    context: Context = None,
    batch: Batch = "1",
    beams: Beams = "1",
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    images: Images = None,
    image_size: ImageSize = None,
    encoder_tokens: EncoderTokens = None,
    count: Annotated[
        Optional[str],
        typer.Option(
            "--count", metavar="GPU", show_default=False, help="How many of this GPU the model needs (tensor parallel)."
        ),
    ] = None,
    engine: Engine = None,
    margin: Margin = None,
    json_out: AnswersJson = False,
    quiet: Quiet = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Every catalog GPU: fit, headroom, largest context, cards needed; --count GPU: how many of one card (exit 0 if one fits, 5 if only tightly)."""
    from ...catalog import load_catalog

    cat = load_catalog(specs_dir)
    from ..models import resolve_model_arg

    spec, weights = resolve_model_arg(model, cat)
    req = request(context, batch, beams, dtype, kv_dtype, images, image_size, encoder_tokens)
    from ..parse import engine as parse_engine

    eng = parse_engine(engine)
    if count and (eng or "transformers") != "transformers":
        raise UsageError("--count is a tensor-parallel split, answered with the transformers engine")
    from ..models import margin as parse_margin

    keep = parse_margin(margin)
    if count:
        raise typer.Exit(
            int(ExitCode.FITS if _count(cat, spec, req, count, json_out, quiet) else ExitCode.DOES_NOT_FIT)
        )
    raise typer.Exit(_table(cat, spec, req, json_out, eng, weights, keep, quiet))


def _count(cat: Any, spec: Any, req: Any, count: str, json_out: bool, quiet: bool = False) -> bool:
    from ...answers import cards_needed, device
    from ...memory import estimate
    from ...render import print_json
    from ...render_answers import count_dict, count_view

    card = cat.resolve("gpu", count)
    answer = cards_needed(spec, req, device(card))
    if quiet:
        pass  # -q: the exit code alone answers
    elif json_out:
        print_json(count_dict(answer, spec.id, estimate(spec, req)))
    else:
        from ...render import out, safe

        out.print(count_view(answer, safe(spec.name), safe(card.name)))
    return answer.cards > 0


def _table(
    cat: Any,
    spec: Any,
    req: Any,
    json_out: bool,
    engine: str | None,
    weights: Any = None,
    margin: int = 0,
    quiet: bool = False,
) -> int:
    """Print the table; the exit code: 0 if a card FITS, 5 if cards fit only tightly, 1 if none fits."""
    from ...answers import which_gpus
    from ...render import print_json
    from ...render_answers import gpus_dict, gpus_view

    table = which_gpus(spec, req, cat.gpus(), engine, weights, margin)
    if quiet:
        pass  # -q: the exit code alone answers
    elif json_out:
        print_json(gpus_dict(table))
    else:
        from ...render import out, safe

        out.print(gpus_view(table, safe(spec.name)))
    from ...fit import FITS

    return 0 if any(r.verdict == FITS for r in table.rows) else 5 if any(r.fits for r in table.rows) else 1
