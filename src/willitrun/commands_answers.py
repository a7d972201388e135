"""The answer commands (`ladder`, `gpus`, `sweep`) and the extra answers of the estimate command
(multi-GPU split, offload, decode speed, largest batch, memory bar).

`register(app)` adds the commands to the app of cli.py. Heavy imports (the answers, rich) happen
inside the command bodies, so `willitrun --help` stays fast.
"""

# No `from __future__ import annotations`: typer reads these annotations at registration, inside
# register(), where SpecsDir (from cli.py) is a local name.
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import ExitCode, GPUDetectionError, UsageError, WillItRunError

Gpu = Annotated[Optional[str], typer.Option("--gpu", "-g", help="GPU id, alias or NVML name, e.g. rtx3090 [default: the detected GPU].")]
Vram = Annotated[Optional[str], typer.Option(help="Memory to fit into instead of a GPU: 24GiB, 24GB, 81920MiB (bare number = GiB).")]
Context = Annotated[Optional[int], typer.Option("--context", "-c", help="Positions in the self-attention cache, image tokens included [default: min(4096, model window)].")]
Batch = Annotated[int, typer.Option("--batch", "-b", help="Sequences processed together.")]
Beams = Annotated[int, typer.Option(help="Beam search width; multiplies KV caches and activations.")]
Dtype = Annotated[Optional[str], typer.Option(help="Weight type [default: the checkpoint's].")]
KvDtype = Annotated[Optional[str], typer.Option("--kv-dtype", help="KV cache type [default: the compute type].")]
Images = Annotated[Optional[int], typer.Option(help="Images per sequence (LLaVA, Llama 3.2 Vision) [default: 1].")]
ImageSize = Annotated[Optional[str], typer.Option("--image-size", help="HEIGHTxWIDTH of the image for LLaVA-NeXT's anyres tiling.")]
EncoderTokens = Annotated[Optional[int], typer.Option("--encoder-tokens", help="Encoder input tokens for T5-style models [default: 512].")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object (docs/answers-json.md) instead of a table.")]
Model = Annotated[str, typer.Argument(help="Model id or alias, e.g. llama-3.1-8b (see `willitrun list models`).")]


def _request(context: Optional[int], batch: int, beams: int, dtype: Optional[str], kv_dtype: Optional[str],
             images: Optional[int], image_size: Optional[str], encoder_tokens: Optional[int]) -> Any:
    from .cli import parse_image_size
    from .memory import Request

    return Request(context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype, images=images,
                   encoder_tokens=encoder_tokens, beams=beams,
                   image_size=parse_image_size(image_size) if image_size else None)


def _exit(fits: bool) -> typer.Exit:
    return typer.Exit(int(ExitCode.FITS if fits else ExitCode.DOES_NOT_FIT))


def register(app: typer.Typer) -> None:
    """Add `ladder`, `gpus` and `sweep` to the willitrun app (once)."""
    if any(c.name == "ladder" for c in app.registered_commands):
        return
    from .cli import SpecsDir, _device, fail

    @app.command("ladder")
    def ladder_cmd(model: Model, gpu: Gpu = None, vram: Vram = None, context: Context = None, batch: Batch = 1,
                   beams: Beams = 1, images: Images = None, image_size: ImageSize = None,
                   encoder_tokens: EncoderTokens = None, json_out: Json = False, specs_dir: SpecsDir = None) -> None:
        """Which weight and KV-cache types fit, with the largest context and batch each allows (exit 0 if any fits)."""
        from .answers import quant_ladder
        from .catalog import load_catalog

        try:
            cat = load_catalog(specs_dir)
            spec = cat.resolve("model", model)
            req = _request(context, batch, beams, None, None, images, image_size, encoder_tokens)
            device, device_name, vram_bytes = _device(cat, gpu, vram, json_out)
            ladder = quant_ladder(spec, req, vram_bytes)
        except WillItRunError as exc:
            raise fail(exc) from None
        from .render import out, print_json
        from .render_answers import ladder_dict, ladder_view

        if json_out:
            print_json(ladder_dict(ladder, device, device_name))
        else:
            out.print(ladder_view(ladder, f"{spec.name} ({spec.id}) on {device_name} ({_size(vram_bytes)})"))
        raise _exit(ladder.best is not None)

    @app.command("gpus")
    def gpus_cmd(model: Model, context: Context = None, batch: Batch = 1, beams: Beams = 1, dtype: Dtype = None,
                 kv_dtype: KvDtype = None, images: Images = None, image_size: ImageSize = None,
                 encoder_tokens: EncoderTokens = None,
                 count: Annotated[Optional[str], typer.Option("--count", help="How many of this GPU the model needs (tensor parallel).")] = None,
                 json_out: Json = False, specs_dir: SpecsDir = None) -> None:
        """Every catalog GPU: fit, headroom, largest context, cards needed; --count GPU: how many of one card (exit 0 if any fits)."""
        from .answers import cards_needed, device, which_gpus
        from .catalog import load_catalog
        from .memory import estimate

        try:
            cat = load_catalog(specs_dir)
            spec = cat.resolve("model", model)
            req = _request(context, batch, beams, dtype, kv_dtype, images, image_size, encoder_tokens)
            if count:
                card = cat.resolve("gpu", count)
                answer = cards_needed(spec, req, device(card))
                est = estimate(spec, req)
            else:
                table = which_gpus(spec, req, cat.gpus())
        except WillItRunError as exc:
            raise fail(exc) from None
        from .render import out, print_json
        from .render_answers import count_dict, count_view, gpus_dict, gpus_view

        if count:
            if json_out:
                print_json(count_dict(answer, spec.id, est))
            else:
                out.print(count_view(answer, spec.name, card.name))
            raise _exit(answer.cards > 0)
        if json_out:
            print_json(gpus_dict(table))
        else:
            out.print(gpus_view(table, spec.name))
        raise _exit(any(r.fits for r in table.rows))

    @app.command("sweep")
    def sweep_cmd(model: Model, gpu: Gpu = None, vram: Vram = None, batch: Batch = 1, beams: Beams = 1,
                  dtype: Dtype = None, kv_dtype: KvDtype = None, images: Images = None, image_size: ImageSize = None,
                  encoder_tokens: EncoderTokens = None,
                  plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw the sweep to FILE.svg or FILE.png (needs `pip install 'willitrun[plot]'`).")] = None,
                  json_out: Json = False, specs_dir: SpecsDir = None) -> None:
        """Memory by component at context 512, 1024, ... up to the model's window (exit 0 if any context fits)."""
        from .answers import sweep
        from .catalog import load_catalog
        from .render import err, out, print_json
        from .render_answers import plot_sweep, sweep_dict, sweep_view

        try:
            cat = load_catalog(specs_dir)
            spec = cat.resolve("model", model)
            req = _request(None, batch, beams, dtype, kv_dtype, images, image_size, encoder_tokens)
            try:
                device, device_name, vram_bytes = _device(cat, gpu, vram, json_out)
            except GPUDetectionError:
                device = device_name = vram_bytes = None
                err.print("note: no --gpu or --vram given and no GPU detected: fits not shown", markup=False)
            sw = sweep(spec, req, vram_bytes)
            title = f"{spec.name} ({spec.id}), {sw.dtype} weights, {sw.kv_dtype} KV cache, batch {sw.batch_size}"
            if device_name:
                title += f", on {device_name}"
            if plot is not None:
                plot_sweep(sw, plot, title)
        except WillItRunError as exc:
            raise fail(exc) from None
        if json_out:
            print_json(sweep_dict(sw, device, device_name))
        else:
            out.print(sweep_view(sw, title))
            if plot is not None:
                err.print(f"wrote {plot}", markup=False)
        raise _exit(vram_bytes is None or any(p.fits for p in sw.points))


def _size(n: int) -> str:
    from .render import size

    return size(n)


# --------------------------------------------------------------------------------------------------
# Extra answers of the estimate command
# --------------------------------------------------------------------------------------------------
_COUNT = re.compile(r"\s*(\d+)\s*[x×*]\s*(.+)")


def parse_gpus(values: list[str]) -> list[str]:
    """`--gpu rtx3090 --gpu rtx3090` or `--gpu 2xrtx3090` (also `2x3090`, `2*rtx3090`) -> one name per card."""
    out: list[str] = []
    for v in values:
        m = _COUNT.fullmatch(v)
        if m:
            n = int(m.group(1))
            if not 1 <= n <= 64:
                raise UsageError(f"--gpu {v!r}: give 1 to 64 cards")
            out += [m.group(2).strip()] * n
        else:
            out.append(v)
    return out


def estimate_devices(cat: Any, gpu: Optional[list[str]], vram: Optional[str],
                     quiet: bool) -> tuple[str, str, int, list[Any]]:
    """(device id, display name, bytes of one card, catalog GPUs) for the estimate command: cli._device
    for the first card, plus every card given (or the detected one when it is in the catalog)."""
    from .cli import _device

    names = parse_gpus(gpu or [])
    cards = [cat.resolve("gpu", n) for n in names]
    device, device_name, vram_bytes = _device(cat, names[0] if names else None, vram, quiet)
    if not names and not vram and device in cat.files("gpu"):
        cards = [cat.get("gpu", device)]
    if len(cards) > 1:
        runs: list[list[Any]] = []  # consecutive cards of one model: "2 x RTX 3090 + RTX 4090"
        for c in cards:
            if runs and runs[-1][0].id == c.id:
                runs[-1].append(c)
            else:
                runs.append([c])
        device_name = " + ".join(f"{len(r)} x {r[0].name}" if len(r) > 1 else r[0].name for r in runs)
    return device, device_name, vram_bytes, cards


@dataclass
class Extras:
    data: dict[str, Any] = field(default_factory=dict)  # keys added to --json (docs/answers-json.md)
    views: list[Any] = field(default_factory=list)  # rich renderables printed after the estimate
    chart: Any = None  # the memory bar (a rich renderable), printed under the estimate's table
    fits: Optional[bool] = None  # the verdict of the split when several cards are given, else None


def estimate_extras(spec: Any, req: Any, fit: Any, cards: list[Any], *, split: Optional[str] = None,
                    offload: bool = False, speed: bool = False, max_batch: bool = False,
                    system_bandwidth_gb_s: Optional[float] = None, chart: bool = False,
                    device_name: str = "") -> Extras:
    """The answers the estimate command was asked for, as JSON data and rich renderables."""
    est = fit.estimate
    several = len(cards) > 1
    if split is not None and not several:
        raise UsageError("--split needs several cards: --gpu 2xrtx3090, or --gpu A --gpu B")
    if split not in (None, "tensor", "layer"):
        raise UsageError(f"--split {split!r}: choose tensor or layer")
    if several and (offload or max_batch):
        raise UsageError(f"{'--offload' if offload else '--max-batch'} is estimated for one card, not a split")
    if system_bandwidth_gb_s is not None and not (offload and speed):
        raise UsageError("--system-bandwidth applies to --offload --speed (the layers read from system memory)")
    if system_bandwidth_gb_s is not None and system_bandwidth_gb_s <= 0:
        raise UsageError(f"--system-bandwidth must be positive (got {system_bandwidth_gb_s})")
    if speed and not cards:
        raise UsageError("--speed needs a catalog GPU (--gpu) for its memory bandwidth")
    x = Extras()
    if not (several or offload or speed or max_batch or chart):
        return x  # a plain estimate imports none of the answers
    from . import answers as A
    from .memory import resolve
    from .render_answers import MemoryBar, as_dict, batch_view, offload_view, speed_view, split_view

    r = resolve(spec, req) if (several or offload or speed or max_batch) else None
    lay = A.layout(r) if (several or offload or speed) else None
    ctx, batch, beams = est.context_tokens, est.batch_size, est.beams
    if chart and not several:
        x.chart = MemoryBar(est, fit.vram_bytes, device_name or fit.device)
    if max_batch:
        b = A.max_batch(r, fit.vram_bytes, ctx, beams)
        x.data["max_batch"] = as_dict(b)
        x.views.append(batch_view(b))
    if several:
        devices = [A.device(c) for c in cards]
        s = A.split(r, ctx, batch, beams, devices, split, lay)
        x.data["split"] = as_dict(s)
        x.views.append(split_view(s, device_name))
        x.fits = s.fits
        if speed:
            sp = A.split_speed(lay, est, s, devices)
            x.data["decode_speed"] = as_dict(sp)
            x.views.append(speed_view(sp))
        return x
    if offload:
        o = A.offload(r, ctx, batch, beams, fit.vram_bytes, lay)
        x.data["offload"] = as_dict(o)
        x.views.append(offload_view(o))
    if speed:
        gpu_bw = A.device(cards[0]).bandwidth_bytes_s
        if offload:
            sys_bw = round(system_bandwidth_gb_s * 10**9) if system_bandwidth_gb_s else A.SYSTEM_BANDWIDTH_BYTES_S
            sp = A.offload_speed(lay, est, o, gpu_bw, sys_bw)
        else:
            sp = A.decode_speed(lay, est, gpu_bw)
        x.data["decode_speed"] = as_dict(sp)
        x.views.append(speed_view(sp, fits=fit.fits or offload))
    return x
