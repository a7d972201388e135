"""The estimate command's extra answers (multi-GPU split, --offload, --speed, --max-batch, the memory bar)
and the suggestions beside a verdict that does not fit, on either arithmetic of the one estimate: the
transformers breakdown (answers.py over memory's layout: `estimate_extras`, `more_cards_and_offload`) or an
engine profile's buffers (`engine_extras`, `engine_suggestions`: every search is fit.largest over the
engine's estimate alone, engine_fit(search=False), no context search per probe). Each returns JSON data
and views; the views are drawn by render_answers.py alone. No typer here; the answers and rich are
imported only when one is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from ..engines.registry import engine_class
from ..errors import UsageError
from .parse import BOUNDS

_MAX_BATCH = int(BOUNDS["--parallel"].high)  # llama.cpp's -np bound, as answers.engine_max_batch


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


def engine_extras(
    spec: Any,
    req: Any,
    engine: str,
    given: dict[str, Any],
    fit: Any,
    cards: list[Any],
    *,
    offload: bool,
    speed: bool,
    max_batch: bool,
    system_bandwidth_gb_s: float | None,
) -> Extras:
    """--offload (llama.cpp -ngl: the most layers that fit), --max-batch (the most sequences that fit
    at the context) and --speed (the decode bound) on `engine`'s buffers (estimate_extras answers them on
    the transformers breakdown)."""
    from ..memory import largest
    from ..speed import SYSTEM_BANDWIDTH_BYTES_S, engine_speed
    from .engine_options import engine_fit

    cls = engine_class(engine)
    x = Extras()
    moe = int(given.get("n_cpu_moe") or 0)
    if system_bandwidth_gb_s is not None and not ((offload or moe) and speed):
        raise UsageError(
            "--system-bandwidth applies to --offload --speed or --n-cpu-moe N --speed "
            "(the layers or experts read from system memory)"
        )
    if speed and not cards:
        raise UsageError("--speed needs a catalog GPU (--gpu) for its memory bandwidth")
    vram = fit.vram_bytes
    est = fit.estimate
    plan = None if fit.fits else cls.plan(est)  # the engine's own plan (llama.cpp's --fit moving layers to the host)
    if plan is not None and not offload:
        from ..render import size

        gpu, host, how = plan
        # the plan's own buffers (its -ngl / --n-cpu-moe at --fit's context), for --speed and --max-batch
        placed = {k: est.facts[f"fit_{k}"] for k in ("gpu_layers", "n_cpu_moe") if f"fit_{k}" in est.facts}
        est = engine_fit(
            spec, replace(req, context=est.context_tokens), engine, {**given, **placed}, vram, search=False
        )
        moe = int(placed.get("n_cpu_moe", moe))
        x.data["engine_plan"] = {"how": how, "gpu_bytes": gpu, "host_bytes": host}
        x.views.append(
            f"Plan: {how}: {size(gpu)} on the GPU of {size(vram)}, {size(host)} in system memory "
            "(the table is every layer on the GPU)."
        )
    if offload:
        if not cls.places_layers:
            raise UsageError(f"--offload places layers as llama.cpp's -ngl does: use --engine llama.cpp, not {engine}")
        if "gpu_layers" in given:
            raise UsageError("--offload searches --gpu-layers itself: give one or the other")
        from ..render_answers import engine_offload_view

        n_layer = int(est.facts["n_layer"])

        def at_layers(n: int) -> Any:
            return engine_fit(spec, req, engine, {**given, "gpu_layers": n}, vram, search=False)

        ngl = largest(lambda n: at_layers(n).max_device_bytes <= vram, 0, n_layer + 1)
        at = at_layers(ngl)
        x.data["engine_offload"] = {
            "gpu_layers": ngl,
            "n_layer": n_layer,
            "output_on_gpu": bool(at.facts["output_on_gpu"]),
            "gpu_bytes": at.max_device_bytes,
            "host_bytes": at.host_bytes,
            "fits": ngl > 0 or at.max_device_bytes <= vram,
        }
        x.views.append(
            engine_offload_view(
                ngl, n_layer, at.max_device_bytes, at.host_bytes, vram, cls.layers_flag, bool(at.facts["output_on_gpu"])
            )
        )
        if not fit.fits and at.max_device_bytes <= vram:  # the plan printed is the answer (issue 19 §5)
            x.plan_need = at.max_device_bytes
            x.plan_how = f"with {ngl} of {n_layer + 1} layers on the GPU ({cls.layers_flag} {ngl})"
        est = at
    if (
        "n_cpu_moe" in cls.takes
        and not fit.fits
        and plan is None
        and len(cards) <= 1
        and not offload
        and "n_cpu_moe" not in given
        and "gpu_layers" not in given
    ):
        _expert_offload(spec, req, engine, given, vram, x)
    if max_batch:
        if not cls.places_layers:
            raise UsageError(
                f"--max-batch: {engine} sizes its own batch"
                + (" (give --max-num-seqs)" if "max_num_seqs" in cls.takes else "")
            )
        context = est.context_tokens // max(req.batch, 1)
        opts = {k: v for k, v in given.items() if k != "parallel"}

        def total(b: int) -> int:
            return int(
                engine_fit(
                    spec, replace(req, batch=b, context=context), engine, opts, vram, search=False
                ).max_device_bytes
            )

        from ..render_answers import engine_batch_view

        n = largest(lambda b: total(b) <= vram, 1, _MAX_BATCH, grow=True)
        at = max(n, 1)
        after = total(at + 1)
        x.data["max_batch"] = {
            "context_tokens": context,
            "beams": 1,
            "vram_bytes": vram,
            "max_batch": n,
            "total_bytes": total(at),
            "next_total_bytes": after if n else total(at),
            "per_sequence_bytes": after - total(at),
        }
        x.views.append(engine_batch_view(n, context))
    if speed:
        from ..answers import device
        from ..render_answers import speed_view

        gpu_bw = device(cards[0]).bandwidth_bytes_s
        if gpu_bw is None:
            raise UsageError(f"--speed needs the GPU's memory bandwidth; the spec of {cards[0].id} gives none")
        sys_bw = round(system_bandwidth_gb_s * 10**9) if system_bandwidth_gb_s else SYSTEM_BANDWIDTH_BYTES_S
        from ..archs import geometry

        # a token reads only its routed experts, not every buffer byte: llama.cpp on one card with every
        # layer on it (--n-cpu-moe moves only experts); other layouts keep the buffer-by-buffer bound
        if (
            cls.places_layers
            and len(cards) == 1
            and not offload
            and "gpu_layers" not in given
            and "fit_gpu_layers" not in est.facts
            and geometry(spec).experts
        ):
            from ..layers import layout
            from ..memory import estimate, resolve
            from ..speed import moe_offload_speed

            sp = moe_offload_speed(layout(resolve(spec, req)), estimate(spec, req), moe, gpu_bw, sys_bw)
        else:
            sp = engine_speed(
                [(b.name, b.placement, b.kind, b.bytes) for b in est.buffers],
                est.context_tokens,
                est.n_ctx,
                req.batch,
                gpu_bw,
                sys_bw,
            )
        x.data["decode_speed"] = as_plain(sp)
        x.views.append(speed_view(sp, fits=fit.fits or offload or plan is not None))
    return x


def _expert_offload(spec: Any, req: Any, engine: str, given: dict[str, Any], vram: int, x: Extras) -> None:
    """A mixture-of-experts model that does not fit: the fewest --n-cpu-moe layers that make it fit
    (bisection: moving more layers' experts to host memory never adds GPU bytes)."""
    from ..archs import geometry
    from ..memory import largest
    from .engine_options import engine_fit

    g = geometry(spec)
    if not g.experts:
        return
    from ..render_answers import expert_offload_view  # rich: only when there is a plan to print

    n_layer = g.decoder_layers

    def at_layers(n: int) -> Any:
        return engine_fit(spec, req, engine, {**given, "n_cpu_moe": n}, vram, search=False)

    last_over = largest(lambda n: at_layers(n).max_device_bytes > vram, 0, n_layer)
    n = last_over + 1
    if n > n_layer:
        x.data["expert_offload"] = {"n_cpu_moe": None, "n_layer": n_layer, "gpu_bytes": None, "host_bytes": None}
        x.views.append(expert_offload_view(None, n_layer))
        return
    at = at_layers(n)
    x.data["expert_offload"] = {
        "n_cpu_moe": n,
        "n_layer": n_layer,
        "gpu_bytes": at.max_device_bytes,
        "host_bytes": at.host_bytes,
    }
    x.views.append(expert_offload_view(n, n_layer, at.max_device_bytes, at.host_bytes))


def engine_suggestions(spec: Any, req: Any, engine: str, given: dict[str, Any], vram: int, device: str) -> list[str]:
    """What would make an engine answer that does not fit one card fit (issue 19 §5: "when no single
    change fits, say what would"): partial offload (llama.cpp, ollama), more of the same card
    (llama.cpp's layer split, vLLM's tensor parallelism), a smaller weight type. Each is a probe of the
    same estimate with one setting changed (engine_fit(search=False)), the first that fits."""
    from ..fit import ladder_dtypes, largest
    from ..limits import MAX_CARDS
    from .engine_options import engine_fit

    def need(opts: dict[str, Any], r: Any = req) -> int:
        return int(engine_fit(spec, r, engine, opts, vram, search=False).need_bytes)

    def fits(opts: dict[str, Any], r: Any = req) -> bool:
        try:
            e = engine_fit(spec, r, engine, opts, vram, search=False)
        except UsageError:
            return False
        return cls.fits_estimate(e, vram)

    cls = engine_class(engine)
    out: list[str] = []
    base = engine_fit(spec, req, engine, given, vram, search=False)
    if cls.places_layers and "gpu_layers" not in given and given.get("gpus", 1) == 1:
        layers = int(base.facts.get("n_layer", 0))
        ngl = largest(lambda n: need({**given, "gpu_layers": n}) <= vram, 0, layers) if layers else 0
        if ngl:
            out.append(
                f"--offload: {ngl} of {layers + 1} layers on the GPU fit "
                f"({cls.layers_flag} {ngl}), the rest in system memory"
            )
    cards_opt = {"layers": "gpus", "tensor": "tensor_parallel_size", None: None}[cls.multi_card]
    if cards_opt and cards_opt not in given and given.get("gpus", 1) == 1:
        n = next((k for k in range(2, MAX_CARDS + 1) if fits({**given, cards_opt: k})), 0)
        card = device if device not in ("vram", "") and ":" not in device else "CARD"
        if n:
            out.append(f"--gpu {n}x{card}: {n} of these cards fit ({cls.cards_note(n)})")
        else:
            out.append(f"no count of these cards up to {MAX_CARDS} fits")
    from ..dtypes import WEIGHT_DTYPES

    dtype = req.dtype or base.dtype
    current = WEIGHT_DTYPES.get(dtype)
    for name in ladder_dtypes(spec):
        cand = WEIGHT_DTYPES[name]
        if name == dtype or (current is not None and cand.storage.bits_per_element >= current.storage.bits_per_element):
            continue
        # the types the engine loads: GGUF files on llama.cpp and ollama, checkpoints on vLLM; the speech
        # engines' types are their own options (--compute-type, the ggml file)
        if not cls.loads_dtype(name):
            continue
        if fits(given, replace(req, dtype=name)):
            out.append(f"--dtype {name} fits on one card")
            break
    return out
