"""What `willitrun ladder` does once its arguments are read. No typer here: the typer command
(cli/commands/ladder.py) and the lean path (cli/lean.py parse_ladder) both fill a `LadderArgs` and
call `run_ladder`, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class LadderArgs:
    """The ladder command's options as typed (text: cli/parse.py bounds the numbers)."""

    model: str
    gpu: str | None = None
    vram: str | None = None
    context: str | None = None
    batch: str = "1"
    beams: str = "1"
    images: str | None = None
    image_size: str | None = None
    encoder_tokens: str | None = None
    engine: str | None = None
    margin: str | None = None
    json_out: bool = False
    quiet: bool = False
    specs_dir: list[Path] | None = None


def run_ladder(a: LadderArgs) -> int:
    """Which weight and KV-cache types fit; the exit code: 0 if one fits, 5 if only tightly, else 1."""
    from ..answers import quant_ladder
    from ..catalog import load_catalog
    from ..render import print_json, safe, size
    from .models import device_memory, request
    from .parse import engine as parse_engine

    cat = load_catalog(a.specs_dir)
    spec = cat.resolve("model", a.model)
    req = request(a.context, a.batch, a.beams, None, None, a.images, a.image_size, a.encoder_tokens)
    dev, device_name, memory = device_memory(cat, a.gpu, a.vram, a.json_out or a.quiet, a.margin)
    vram_bytes = memory.total_bytes
    ladder = quant_ladder(spec, req, memory, parse_engine(a.engine), device_name)
    if a.quiet:
        pass  # -q: the exit code alone answers
    elif a.json_out:
        from ..render_answers import ladder_dict

        print_json(ladder_dict(ladder, dev, device_name))
    else:
        from ..render import out
        from ..render_answers import ladder_view

        out.print(ladder_view(ladder, safe(f"{spec.name} ({spec.id}) on {device_name} ({size(vram_bytes)})")))
    return int(ladder.exit_code)
