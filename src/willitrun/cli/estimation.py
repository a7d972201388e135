"""What the estimate command does once its arguments are read. No typer here: the typer command
(cli/commands/estimate.py) and the lean path (cli/lean.py) both fill an `EstimateArgs` and call
`run_estimate`, so they cannot disagree."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engines.options import OPTIONS, option_echo
from ..errors import ExitCode, UsageError
from . import parse
from .engine_options import (
    _engines_taking,
    _flags,
    engine_fit_options,
    engine_options_table,
)
from .models import devices, request, resolve_model_arg


@dataclass
class EstimateArgs:
    """The estimate command's options as typed (text, so cli/parse.py bounds every number); the
    engine options are declared once in engines/registry.py and arrive in `options`."""

    model: str
    gpu: list[str] | None = None
    vram: str | None = None
    margin: str | None = None
    ram: str | None = None  # --ram SIZE: this machine's memory for the host side of an offload plan
    context: str | None = None
    batch: str = "1"
    dtype: str | None = None
    kv_dtype: str | None = None
    images: str | None = None
    image_size: str | None = None
    encoder_tokens: str | None = None
    video_frames: str | None = None
    audio_seconds: str | None = None
    beams: str | None = None  # None: 1, and the speech engines' own beam default
    split: str | None = None
    offload: bool = False
    speed: bool = False
    system_bandwidth: str | None = None
    max_batch: bool = False
    no_chart: bool = False
    engine: str | None = None
    # the engine options as typed, keyed by engines/registry.py Option.key (None or absent: not given)
    options: dict[str, Any] = field(default_factory=dict)
    gpus_per_node: str | None = None
    cluster: Path | None = None
    json_out: bool = False
    quiet: bool = False
    specs_dir: list[Path] | None = field(default=None)


def _engine_options(a: EstimateArgs) -> dict[str, Any]:
    """The engine options given, parsed and bounded as their declarations say, in declared order."""
    given: dict[str, Any] = {}
    for o in OPTIONS:
        raw = a.options.get(o.key)
        if raw is None or (raw is False and o.kind == "switch"):
            continue
        if o.kind == "int":
            given[o.key] = parse.whole(o.flag, raw)
        elif o.kind == "decimal":
            given[o.key] = parse.decimal(o.flag, raw)
        elif o.choices:
            given[o.key] = _choice(o, raw)
        else:
            given[o.key] = raw
    if given.get("cpu_moe"):
        if given.get("n_cpu_moe") is not None:
            raise UsageError(
                "--cpu-moe keeps the experts of every layer in host memory: give it or --n-cpu-moe N, not both"
            )
        given["n_cpu_moe"] = CPU_MOE_ALL
        del given["cpu_moe"]
    return given


# --cpu-moe: every layer's experts (llama.cpp -cmoe); LlamaCppOptions.n_cpu_moe counts min(N, layers),
# and run_estimate turns this into the model's own layer count before anything prints it.
CPU_MOE_ALL = 1 << 30


def _choice(o: Any, text: str) -> int | str:
    """A text option limited to its declared choices (--cuda 11 or 12: the CUDA major version a
    CTranslate2 build was made for); a number when the choices are numbers."""
    value = str(text).strip()
    if value not in o.choices:
        raise UsageError(f"{o.flag} {parse._show(text)}: choose {' or '.join(o.choices)} (see willitrun estimate -h)")
    return int(value) if value.isdigit() else value


def run_estimate(a: EstimateArgs) -> int:
    """Estimate, print as asked, and return the exit code (0 fits, 1 does not)."""
    from ..catalog import load_catalog
    from ..dtypes import default_engine

    engine = parse.engine(a.engine)
    engine_opts = _engine_options(a)
    system_bandwidth = parse.decimal("--system-bandwidth", a.system_bandwidth)
    cat = load_catalog(a.specs_dir)
    spec, weights = resolve_model_arg(a.model, cat)
    if not a.quiet:
        spec_warnings(spec)
    req = request(
        a.context,
        a.batch,
        "1" if a.beams is None else a.beams,
        a.dtype,
        a.kv_dtype,
        a.images,
        a.image_size,
        a.encoder_tokens,
        a.video_frames,
        a.audio_seconds,
    )
    if a.speed or a.offload or a.split is not None or (a.gpu and len(a.gpu) > 1):
        _refuse_layer_answers(spec, a)
    if engine_opts.get("n_cpu_moe") == CPU_MOE_ALL:
        from ..archs import geometry

        g = geometry(spec)
        if not g.experts:
            raise UsageError(f"--cpu-moe applies to mixture-of-experts models; {spec.id} has no experts")
        engine_opts["n_cpu_moe"] = g.decoder_layers
        engine_opts["cpu_moe"] = True  # so the answer names --cpu-moe, the flag given
    if a.gpus_per_node is not None or a.cluster is not None:
        from .cluster import run_cluster

        return run_cluster(a, engine, engine_opts, spec, req, cat)
    # memory: the card's total, what is free on it (detected) and --margin; estimates fit its card_bytes
    device, device_name, memory, cards = devices(cat, a.gpu, a.vram, a.quiet or a.json_out, a.margin)
    # One default everywhere (main command, check, ladder, gpus, sweep): a GGUF type (given, or stored
    # in an imported .gguf file) is llama.cpp, anything else transformers; the answers (--offload,
    # --speed, --max-batch, several cards) follow the engine instead of switching it.
    stored = weights.dtype if weights is not None else None
    # a model named from ollama's store (`qwen3:8b`) is sized as ollama runs it unless --engine says otherwise
    eng = engine or (weights.engine if weights is not None else None) or default_engine(a.dtype or stored)
    from ..archs import SPEECH_ONLY

    if eng in SPEECH_ONLY and a.beams is not None:  # beam_size only when given: None is the engine's default
        engine_opts["beams"] = (
            req.beams
        )  # (whisper.cpp: the request's beams; ctranslate2: 5). The batch is the request's.
    if eng != "transformers":
        if req.dtype is None and stored:
            req = replace(req, dtype=stored)  # the engine sizes the file's own type
        return _run_engine(
            a, eng, engine_opts, spec, req, device, device_name, memory, cards, weights, system_bandwidth
        )
    if engine_opts:
        first = next(iter(engine_opts))
        engine_for = next(e for e, opts in engine_options_table().items() if first in opts)
        names = _flags(engine_opts)
        raise UsageError(
            f"{names} {'applies' if ',' not in names else 'apply'} to "
            f"{_engines_taking(first)}; add --engine {engine_for}"
        )
    return _run_transformers(a, spec, req, weights, cat, device, device_name, memory, cards, system_bandwidth)


def saved_overhead(cls: Any, cards: list[Any]) -> Any:
    """The overhead `explain --save` measured for this engine on this card (or on any card), from the user
    config (detect/config.py); None when the engine takes none or none was saved."""
    if cls.measured_overhead is None:
        return None
    import os

    from ..detect.config import overhead_for

    return overhead_for(cls.name, cards[0].id if cards else None, os.environ)


def spec_warnings(spec: Any) -> None:
    """The sentences of a spec's notes that start with "Warning:" (importers/configs.py writes one
    when a config.json omits shape fields and transformers' defaults are taken), on stderr."""
    notes = getattr(spec, "notes", None)
    if not notes:
        return
    from ..render import error

    for sentence in re.findall(r"Warning:.*?\.(?=\s|$)", notes, flags=re.DOTALL):
        error(sentence.removeprefix("Warning:").strip(), prefix="warning")


def _judged(fit: Any, memory: Any, extras: Any, engine: str) -> tuple[Any, str]:
    """The verdict and how it fits: the estimate's, or the offload plan's when the command printed one
    that fits where the estimate does not (its exit code follows the plan printed, issue 19 §5). A plan
    whose host side does not fit this machine's memory (extras.host) does not fit."""
    from ..fit import DOES_NOT_FIT, judge, verdict

    judged = verdict(fit, memory)
    how = judged.how  # the engine's own plan (llama.cpp's --fit moving layers), when the estimate does not fit
    if extras.plan_need is not None and (not judged.fits or judged.how):  # --offload asked: its plan is the answer
        judged, how = judge(extras.plan_need, memory, engine), extras.plan_how
    room = extras.host
    if room is not None and not room.fits and judged.fits:
        gib = 1 << 30
        reason = (
            (f"{how}: " if how else "")
            + f"the GPU part fits ({judged.need_bytes / gib:.2f} GiB), but the host side needs "
            f"{room.need_bytes / gib:.2f} GiB of system memory, more than the {room.ram_bytes / gib:.2f} GiB "
            f"({room.source})"
        )
        judged, how = replace(judged, status=DOES_NOT_FIT, reason=reason), ""
    return judged, how


# ollama and llama.cpp options that leave layers, experts or tensors in host memory
_HOST_PLACING = ("gpu_layers", "n_cpu_moe", "cpu_moe", "override_tensor")


def host_ram(ram_text: str | None, cards: list[Any]) -> tuple[tuple[int, str] | None, str]:
    """This machine's memory for the host side of a plan: --ram SIZE, else WILLITRUN_RAM, else detect/host.py (what can be
    allocated now when known, else the total); on a unified-memory card (Apple) the card is this
    machine's memory, already the budget, so there is nothing else to check. Returns ((bytes, source) or None, why not checked)."""
    if ram_text is not None:
        return (parse.size(ram_text, f"--ram {parse._show(ram_text)}"), "--ram"), ""
    env = os.environ.get("WILLITRUN_RAM")
    if env:  # as WILLITRUN_GPU stands for --gpu: a machine's (or a test suite's) fixed figure
        return (parse.size(env, f"WILLITRUN_RAM={parse._show(env)}"), "WILLITRUN_RAM"), ""
    if cards and getattr(cards[0], "unified", False):  # Apple, Ryzen AI Max: one memory, GPU and CPU
        return None, "unified memory: the card's memory is this machine's, checked above"
    from ..detect.host import host_memory

    mem = host_memory()
    if mem is None:
        return None, "this machine's memory could not be read; give --ram SIZE"
    if mem.available_bytes is not None:
        return (mem.available_bytes, f"available now, {mem.source}"), ""
    return (mem.total_bytes, f"total, {mem.source}"), ""


def _check_host(a: EstimateArgs, extras: Any, need: int | None, cards: list[Any]) -> None:
    """Put the host side of the plan printed (need bytes; None: no plan leaves weights in host memory)
    against this machine's memory: a line under the answer, `host_memory` in --json, the verdict."""
    if need is None:
        if a.ram is not None:
            raise UsageError(
                "--ram applies to plans that leave weights in host memory: --offload, --gpu-layers, --n-cpu-moe, "
                "--cpu-moe or -ot"
            )
        return
    from ..placement import host_room

    ram, why = host_ram(a.ram, cards)
    room = host_room(need, ram, why)
    extras.host = room
    extras.data["host_memory"] = {
        "need_bytes": room.need_bytes,
        "ram_bytes": room.ram_bytes,
        "source": room.source,
        "fits": room.fits,
    }
    # under the plan, before the decode speed (always the last view when asked for)
    extras.views.insert(len(extras.views) - ("decode_speed" in extras.data), room.line)


def _run_engine(
    a: EstimateArgs,
    engine: str,
    engine_opts: dict[str, Any],
    spec: Any,
    req: Any,
    device: str,
    device_name: str,
    memory: Any,
    cards: list[Any],
    weights: Any,
    system_bandwidth: float | None,
) -> int:
    from ..engines.registry import engine_class

    vram_bytes = memory.card_bytes
    cls = engine_class(engine)
    if a.split is not None and not cls.places_layers:
        raise UsageError(f"--split applies to the transformers and llama.cpp engines, not {engine}")
    if a.split == "tensor":
        raise UsageError("llama.cpp splits whole layers over the cards (-sm layer): use --split layer or leave it out")
    if len(cards) > 1 and cls.multi_card == "tensor":
        # vLLM on N identical cards of one node: tensor parallel over all of them (vllm serve -tp N),
        # unless -tp/-pp say how; each rank is sized against one card
        n = len(cards)
        if len({c.id for c in cards}) > 1:
            raise UsageError("vLLM shards over identical cards: --gpu 8xh200 (mixed cards: --engine transformers)")
        tp, pp = engine_opts.get("tensor_parallel_size"), engine_opts.get("pipeline_parallel_size", 1)
        if tp is None and n % pp == 0:
            engine_opts = {**engine_opts, "tensor_parallel_size": n // pp}
        elif (tp or 1) * pp != n:
            raise UsageError(f"--gpu gives {n} cards but -tp {tp or 1} x -pp {pp} = {(tp or 1) * pp} ranks")
        cards = cards[:1]
    if len(cards) > 1:
        if cls.multi_card != "layers":
            raise UsageError(f"several --gpu: {engine} answers for one card")
        if len({c.id for c in cards}) > 1:
            raise UsageError(
                "llama.cpp's layer split is estimated for identical cards (--gpu 2xrtx3090); "
                "--engine transformers splits mixed cards"
            )
        engine_opts = {**engine_opts, "gpus": len(cards)}
    measured = saved_overhead(cls, cards)
    if measured is not None:
        from .engine_options import MEASURED

        engine_opts = {**engine_opts, MEASURED: measured}
    fit, options = engine_fit_options(spec, req, engine, engine_opts, vram_bytes, device_name, weights)
    from .extras import engine_extras

    extras = engine_extras(
        spec,
        req,
        engine,
        engine_opts,
        fit,
        cards,
        offload=a.offload,
        speed=a.speed,
        max_batch=a.max_batch,
        system_bandwidth_gb_s=system_bandwidth,
    )
    host_need = None
    plan = None if fit.fits else cls.plan(fit.estimate)  # what the build does by itself (llama.cpp's --fit)
    if "engine_offload" in extras.data:
        host_need = int(extras.data["engine_offload"]["host_bytes"])
    elif any(k in engine_opts for k in _HOST_PLACING):
        host_need = int(fit.estimate.host_bytes)
    elif plan is not None:
        host_need = plan[1]
    _check_host(a, extras, host_need, cards)
    judged, how = _judged(fit, memory, extras, engine)
    hints: list[str] = []
    if not a.quiet and not judged.fits and not (a.offload or "n_cpu_moe" in engine_opts):
        from .extras import engine_suggestions

        hints = engine_suggestions(spec, req, engine, engine_opts, vram_bytes, device)
        if 0 < fit.max_context_tokens < fit.estimate.context_tokens:  # as the transformers suggestions start
            hints.insert(0, f"--context {fit.max_context_tokens} fits (the largest that does)")
    launch = None
    if not a.quiet and judged.fits:  # the command that runs the answer printed (engines/registry.py)
        argv, session = _launch(cls, spec, req, engine_opts, fit, options, extras.data, vram_bytes, device_name, a)
        launch = {
            "launch": argv,
            "launch_client": cls.client(spec, a.model) if argv else None,
            "launch_session": session,
        }
    _print(
        a,
        fit,
        spec,
        device,
        device_name,
        judged,
        how,
        extras,
        suggestions=hints,
        launch=launch or {"launch": None, "launch_client": None, "launch_session": []},
        engine_options=option_echo(engine_opts),
    )
    return int(judged.exit_code)


def _print(
    a: EstimateArgs,
    fit: Any,
    spec: Any,
    device: str,
    device_name: str,
    judged: Any,
    how: str,
    extras: Any,
    suggestions: list[str] | None = None,
    launch: dict[str, Any] | None = None,
    engine_options: dict[str, Any] | None = None,
) -> None:
    """The answer for people (render.print_answer, one renderer for every engine) or programs
    (render.answer_dict, one JSON writer), then the extra answers asked for, then the launch line
    (`launch`: the keys docs/json-output.md documents; an engine profile also echoes its options)."""
    if a.quiet:
        return
    from ..render import answer_dict, print_json

    if a.json_out:
        data = answer_dict(fit, device, _context_bound(spec), judged)
        if suggestions is not None:
            data["suggestions"] = suggestions
        extra = {"engine_options": engine_options} if engine_options is not None else {}
        print_json({**data, "gpu_name": device_name, **extras.data, **extra, **(launch or {})})
        return
    from ..render import out, print_answer

    print_answer(
        fit,
        spec.name,
        device_name,
        context_bound=_context_bound(spec),
        judged=judged,
        how=how,
        verdict=extras.fits is None,
        chart=extras.chart,
        suggestions=suggestions or (),
    )
    for view in extras.views:
        out.print(view)
    if launch and launch.get("launch"):
        from ..render import print_launch

        print_launch(launch["launch"], launch.get("launch_session", ()), launch.get("launch_client"))


def _launch(
    cls: Any,
    spec: Any,
    req: Any,
    engine_opts: dict[str, Any],
    fit: Any,
    options: Any,
    data: dict[str, Any],
    vram_bytes: int,
    device_name: str,
    a: EstimateArgs,
) -> tuple[list[str] | None, list[str]]:
    """The command that runs the answer printed: the estimate when it fits, else the --offload plan
    when that fits (its -ngl / num_gpu); none when nothing printed fits."""
    plan = data.get("engine_offload")
    facts = fit.estimate.facts
    if not fit.fits and not plan and cls.plan(fit.estimate) is not None:
        # llama.cpp's --fit plan: its least context and the layers (or experts) it moves, said on the line
        placed = {"gpu_layers": facts["fit_gpu_layers"]} if "fit_gpu_layers" in facts else {}
        placed |= {"n_cpu_moe": facts["fit_n_cpu_moe"]} if "fit_n_cpu_moe" in facts else {}
        est, options = engine_fit_options(
            spec,
            replace(req, context=fit.estimate.context_tokens),
            cls.name,
            {**engine_opts, **placed},
            vram_bytes,
            device_name,
            search=False,
        )
    elif not fit.fits and plan and plan.get("fits"):
        est, options = engine_fit_options(
            spec,
            req,
            cls.name,
            {**engine_opts, "gpu_layers": plan["gpu_layers"]},
            vram_bytes,
            device_name,
            search=False,
        )
    elif fit.fits:
        est = fit.estimate
    else:
        return None, []
    return cls.launch(spec, est, options, a.model), cls.session_lines(est, options)


def _run_transformers(
    a: EstimateArgs,
    spec: Any,
    req: Any,
    weights: Any,
    cat: Any,
    device: str,
    device_name: str,
    memory: Any,
    cards: list[Any],
    system_bandwidth: float | None,
) -> int:
    from ..fit import check_fit
    from .extras import estimate_extras

    vram_bytes = memory.card_bytes

    result = check_fit(spec, req, vram_bytes, device, weights)
    chart = not (a.no_chart or a.quiet or a.json_out) and sys.stdout.isatty()
    extras = estimate_extras(
        spec,
        req,
        result,
        cards,
        split=a.split,
        offload=a.offload,
        speed=a.speed,
        max_batch=a.max_batch,
        system_bandwidth_gb_s=system_bandwidth,
        chart=chart,
        device_name=device_name,
        margin=memory.margin_bytes,
    )
    offloaded = extras.data.get("offload")
    _check_host(a, extras, int(offloaded["system_bytes"]) if offloaded else None, cards)
    judged, how = _judged(result, memory, extras, "transformers")
    hints = None
    if not a.quiet and not judged.fits and extras.fits is None:
        from .extras import more_cards_and_offload

        hints = [*result.suggestions, *more_cards_and_offload(spec, req, result, cards)]
    if not a.quiet:
        from ..render import error

        for line in cat.shadowed:
            error(line, prefix="note")
    fits = judged.fits if extras.fits is None else extras.fits  # several cards: the split decides
    launch = None
    if not a.quiet:
        from ..engines.registry import Transformers

        launch = {"launch": Transformers.launch(spec, result.estimate, None, a.model) if fits else None}
    _print(a, result, spec, device, device_name, judged, how, extras, suggestions=hints, launch=launch)
    if extras.fits is not None:  # several cards: the split decides
        return int(ExitCode.FITS if extras.fits else ExitCode.DOES_NOT_FIT)
    return int(judged.exit_code)


def _refuse_layer_answers(spec: Any, a: EstimateArgs) -> None:
    """Decode speed, layer offload and multi-card splits are about a decoder's layers and tokens: an
    encoder used alone (CLIP, SigLIP) has neither, so those answers would be numbers about nothing."""
    from ..archs import geometry

    if geometry(spec).encoder_only:
        asked = (
            "--speed"
            if a.speed
            else "--offload"
            if a.offload
            else "--split"
            if a.split is not None
            else "several --gpu"
        )
        raise UsageError(
            f"{asked} does not apply to {spec.id}: an encoder used alone has no decoder layers "
            "and generates no tokens (try --batch, --images or --max-batch)"
        )


def _context_bound(spec: Any) -> bool:
    """False for a pure state-space model: no KV cache, so memory does not bound the context."""
    from ..archs import geometry

    return geometry(spec).cache_grows_with_context
