"""The estimate command's extra answers: multi-GPU split, offload, decode speed, largest batch and
the memory bar, as JSON data and rich renderables. No typer here; the answers and rich are imported
only when one is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ..errors import UsageError


@dataclass
class Extras:
    data: dict[str, Any] = field(default_factory=dict)  # keys added to --json (docs/answers-json.md)
    views: list[Any] = field(default_factory=list)  # rich renderables printed after the estimate
    chart: Any = None  # the memory bar (a rich renderable), printed under the estimate's table
    fits: bool | None = None  # the verdict of the split when several cards are given, else None
    plan_need: int | None = None  # GPU bytes of the offload plan printed (--offload), judged as the answer
    plan_how: str = ""  # how the plan fits, for the verdict line: "with 46 of 81 layers on the GPU"
    host: Any = None  # placement.HostRoom: the plan's host side against this machine's memory (--ram)


def estimate_extras(
    spec: Any,
    req: Any,
    fit: Any,
    cards: list[Any],
    *,
    split: str | None = None,
    offload: bool = False,
    speed: bool = False,
    max_batch: bool = False,
    system_bandwidth_gb_s: float | None = None,
    chart: bool = False,
    device_name: str = "",
    margin: int = 0,
) -> Extras:
    """The answers the estimate command was asked for, as JSON data and rich renderables; `margin`
    (--margin) is kept free of every card of a split, as of the one card."""
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
    if speed and not cards:
        raise UsageError("--speed needs a catalog GPU (--gpu) for its memory bandwidth")
    x = Extras()
    if not (several or offload or speed or max_batch or chart):
        return x  # a plain estimate imports none of the answers
    from .. import answers as A
    from ..memory import resolve
    from ..render_answers import MemoryBar, as_dict, batch_view, offload_view, speed_view, split_view

    r: Any = resolve(spec, req) if (several or offload or speed or max_batch) else None
    lay: Any = A.layout(r) if (several or offload or speed) else None
    ctx, batch, beams = est.context_tokens, est.batch_size, est.beams
    if chart and not several:
        x.chart = MemoryBar(est, fit.vram_bytes, device_name or fit.device)
    if max_batch:
        b = A.max_batch(r, fit.vram_bytes, ctx, beams)
        x.data["max_batch"] = as_dict(b)
        x.views.append(batch_view(b))
    if several:
        from dataclasses import replace

        devices = [replace(d, vram_bytes=d.vram_bytes - margin) for d in (A.device(c) for c in cards)]
        s = A.split(r, ctx, batch, beams, devices, cast(Literal["tensor", "layer"], split), lay)
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
        if o.gpu_fits and not fit.fits:  # the plan printed is the answer: its exit code is the plan's
            x.plan_need = o.gpu_total_bytes
            x.plan_how = f"with {o.gpu_layers} of {o.layers} layers on the GPU (llama.cpp -ngl {o.n_gpu_layers})"
    if speed:
        gpu_bw = A.device(cards[0]).bandwidth_bytes_s
        if gpu_bw is None:
            raise UsageError(f"--speed needs the GPU's memory bandwidth; the spec of {cards[0].id} gives none")
        if offload:
            sys_bw = round(system_bandwidth_gb_s * 10**9) if system_bandwidth_gb_s else A.SYSTEM_BANDWIDTH_BYTES_S
            sp = A.offload_speed(lay, est, o, gpu_bw, sys_bw)
        else:
            sp = A.decode_speed(lay, est, gpu_bw)
        x.data["decode_speed"] = as_dict(sp)
        x.views.append(speed_view(sp, fits=fit.fits or offload))
    return x


def as_plain(obj: Any) -> dict[str, Any]:
    """A dataclass answer as JSON data (render_answers.as_dict)."""
    from ..render_answers import as_dict

    return as_dict(obj)


def more_cards_and_offload(spec: Any, req: Any, fit: Any, cards: list[Any]) -> list[str]:
    """What would make a transformers estimate that does not fit one card fit, beyond fit.suggestions'
    smaller settings (issue 19 §5): the fewest of the same card under tensor parallelism
    (answers.cards_needed, `gpus --count`) and llama.cpp-style partial offload (answers.offload)."""
    if fit.fits or len(cards) > 1:
        return []
    from .. import answers as A
    from ..archs import geometry
    from ..limits import MAX_CARDS
    from ..memory import resolve

    out: list[str] = []
    if not geometry(spec).encoder_only:
        r = resolve(spec, req)
        est = fit.estimate
        o = A.offload(r, est.context_tokens, est.batch_size, est.beams, fit.vram_bytes, A.layout(r))
        if o.gpu_fits and o.gpu_layers:
            out.append(
                f"--offload: {o.gpu_layers} of {o.layers} layers on the GPU fit (llama.cpp -ngl {o.n_gpu_layers}), "
                "the rest in system memory"
            )
    if cards and cards[0].vendor != "apple":
        n = A.cards_needed(spec, req, A.device(cards[0])).cards
        out.append(
            f"--gpu {n}x{cards[0].id}: {n} of these cards fit (tensor parallel)"
            if n
            else f"no count of these cards up to {MAX_CARDS} fits by tensor parallelism"
        )
    return out
