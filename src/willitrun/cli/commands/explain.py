"""`willitrun explain LOG`: what an engine printed, beside the estimate of the same run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..options import SpecsDir, Vram, command_app

if TYPE_CHECKING:
    from ...engines.logs import LogRun
    from ...explain import Explanation

app = command_app()


@app.command("explain")
def explain_cmd(
    log: Annotated[
        Optional[str],
        typer.Argument(
            metavar="LOG",
            show_default=False,
            help="A log file of llama.cpp / llama-server, ollama's server, vLLM or whisper.cpp, "
            "or nvidia-smi / `ollama ps` output; - reads standard input.",
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            show_default=False,
            help="The model that ran (an id, a config.json, a .gguf, a spec .yaml) [default: the one the log names].",
        ),
    ] = None,
    gpu: Annotated[
        Optional[str],
        typer.Option(
            "--gpu",
            "-g",
            metavar="GPU",
            show_default=False,
            help="The card it ran on (vLLM and ollama size their pools from it).",
        ),
    ] = None,
    vram: Vram = None,
    engine: Annotated[
        Optional[str],
        typer.Option(
            "--engine",
            metavar="ENGINE",
            show_default=False,
            help="The engine, where the output does not say (nvidia-smi).",
        ),
    ] = None,
    context: Annotated[
        Optional[str],
        typer.Option(
            "--context", "-c", metavar="N", show_default=False, help="The context, where the log does not print it."
        ),
    ] = None,
    dtype: Annotated[
        Optional[str],
        typer.Option(
            "--dtype", metavar="TYPE", show_default=False, help="The weight type, where the log does not print it."
        ),
    ] = None,
    engine_version: Annotated[
        Optional[str],
        typer.Option(
            "--engine-version",
            metavar="KEY",
            show_default=False,
            help="The engine's version key (--llamacpp-version / --vllm-version / --whisper-version values) "
            "[default: from the log].",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (docs/json-output.md, explain).")] = False,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Keep the overhead the log measured (llama.cpp's exit memory breakdown, vLLM's non_torch_memory) "
            "in the user config: later estimates for that engine and card use it.",
        ),
    ] = False,
    saved: Annotated[bool, typer.Option("--saved", help="List the overheads --save kept (no LOG needed).")] = False,
    forget: Annotated[
        bool,
        typer.Option(
            "--forget", help="Remove the overheads --save kept (all, or those of --engine / --gpu; no LOG needed)."
        ),
    ] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Set what an engine's log printed beside willitrun's estimate of the same run."""
    from ...catalog import load_catalog
    from ...engines.logs import LOG_CAP, read_log
    from ...errors import UsageError
    from ...explain import explain, to_json
    from .. import parse
    from ..models import request as make_request

    if saved or forget:
        if log is not None or save:
            raise UsageError("--saved and --forget take no LOG and no --save")
        _saved(forget, engine, gpu, json_out, specs_dir)
        return
    if log is None:
        raise UsageError("give a LOG (a file, or - for standard input), or --saved / --forget")
    if log == "-":
        data = sys.stdin.buffer.read(LOG_CAP + 1)
        if len(data) > LOG_CAP:
            raise UsageError(f"standard input: more than {LOG_CAP:,} bytes is too large for a log")
        text = data.decode("utf-8", errors="replace")
    else:
        text = _read_log(log, LOG_CAP)
    run = read_log(text)
    if run is None:
        raise UsageError(
            f"{parse._show(log)}: not a log willitrun reads (llama.cpp, llama-server, ollama, vLLM, "
            "whisper.cpp, CTranslate2 with CT2_VERBOSE=1, nvidia-smi, ollama ps)"
        )
    cat = load_catalog(specs_dir)
    kept = _save(run, log, gpu, cat, json_out) if save else None
    try:
        spec = _model(run, model, cat)
    except UsageError as exc:
        if kept is None:
            raise
        from ...render import error

        error(f"no comparison: {exc}", prefix="note")  # the overhead is saved: that was the question
        if json_out:
            from ...render import print_json

            print_json({"schema_version": 1, "saved": kept})
        return
    vram_bytes = None
    if gpu is not None or vram is not None:
        from ..models import device

        vram_bytes = device(cat, gpu, vram, True)[2]
    req = make_request(context=context, dtype=dtype)
    x = explain(
        run, spec, req, engine=parse.engine(engine) if engine else None, version=engine_version, vram_bytes=vram_bytes
    )
    from ...render import print_json

    if json_out:
        print_json({**to_json(x), **({"saved": kept} if kept is not None else {})})
        return
    _print(x, spec.name)


def _read_log(path: str, cap: int) -> str:
    """A regular file's first `cap` bytes as text (a log may hold any bytes: they are replaced, not refused)."""
    import os

    from ...errors import UsageError
    from ...files import open_regular, safe_path

    with open_regular(path, "log", UsageError) as f:
        try:
            data = f.read(cap)
        except OSError as exc:
            raise UsageError(f"{safe_path(path)}: cannot read: {exc.strerror or exc}") from None
        truncated = os.fstat(f.fileno()).st_size > cap
    text = data.decode("utf-8", errors="replace")
    if truncated:
        from ...render import error

        error(f"{safe_path(path)}: only the first {cap >> 20} MiB are read", prefix="warning")
    return text


def _model(run: LogRun, model: str | None, cat: Any) -> Any:
    """The model: --model, else the one the log names if the catalog knows it."""
    from ...errors import UsageError, WillItRunError
    from ..models import resolve_model_arg

    if model is not None:
        return resolve_model_arg(model, cat)[0]
    facts = run.facts
    named = [str(facts[k]) for k in ("general_name", "model") if isinstance(facts.get(k), str)]
    for name in named:
        for candidate in (name, name.rsplit("/", 1)[-1]):
            try:
                return cat.resolve("model", candidate.lower())
            except WillItRunError:
                continue
    said = f" (it names {named[0][:80]!r})" if named else ""
    raise UsageError(f"the log does not name a model willitrun knows{said}: give --model")


def _print(x: Explanation, model_name: str) -> None:
    from ...render import out, safe, size

    run, est = x.run, x.estimate
    era = f", {run.facts['log_era']} format" if "log_era" in run.facts else ""
    out.print(
        safe(f"{run.engine} log{era}: {len(run.buffers)} figures printed; estimated as {est.engine} runs {model_name}"),
        markup=False,
    )
    said = ", ".join(f"{k} {v['value']} ({v['from']})" for k, v in x.settings.items())
    if said:
        out.print(safe(f"settings: {said}"), markup=False)
    rows = x.rows
    width = max([len(r.part) for r in rows] + [4])
    out.print(f"{'part':<{width}}  {'printed':>11}  {'estimate':>11}  difference", markup=False)
    for r in rows:
        rel = f" ({r.relative:+.1%})" if r.relative is not None else ""
        line = f"line {', '.join(map(str, r.lines[:4]))}"
        out.print(
            safe(
                f"{r.part:<{width}}  {size(r.printed_bytes):>11}  {size(r.estimated_bytes):>11}  "
                f"{'-' if r.difference_bytes < 0 else '+'}{size(abs(r.difference_bytes))}{rel}  [{line}]"
            ),
            markup=False,
        )
    if not rows:
        out.print("no buffer sizes in the log to compare", markup=False)
    for note in x.notes:
        out.print(safe(f"note: {note}"), markup=False)
    out.print("Sizes in GiB = 2^30 bytes, MiB = 2^20 bytes.", markup=False)


def _card_of(run: LogRun, gpu: str | None, cat: Any) -> str:
    """The catalog id of the card the overhead was measured on: --gpu, else the card the log names (llama.cpp's
    breakdown strips "NVIDIA ", "GeForce ", "Tesla ", "AMD ", "Radeon ", "Instinct " from the name), else "any"."""
    from ...detect.config import ANY_CARD
    from ...errors import WillItRunError
    from ...gpu_names import match_gpu

    if gpu is not None:
        return str(cat.resolve("gpu", gpu).id)
    measured = [p for p in run.buffers if p.kind == "overhead" and p.placement == "gpu"]
    device = max(measured, key=lambda p: p.bytes).device if measured else 0
    name, total = run.facts.get(f"gpu{device}_name"), run.facts.get(f"gpu{device}_total_bytes")
    if not isinstance(name, str):
        return ANY_CARD
    size = total if isinstance(total, int) and not isinstance(total, bool) else None
    for prefix in ("", "NVIDIA GeForce ", "NVIDIA ", "NVIDIA Tesla ", "AMD Radeon ", "AMD Instinct ", "AMD "):
        try:
            card = match_gpu(prefix + name, cat.gpus(), size)
        except WillItRunError:
            card = None
        if card is not None:
            return str(card.id)
    return ANY_CARD


def _save(run: LogRun, log: str, gpu: str | None, cat: Any, json_out: bool) -> dict[str, Any]:
    """Keep the overhead `run` measured in the user config (detect/config.py); what was saved, as JSON."""
    import datetime
    import os

    from ...detect.config import ANY_CARD, SavedOverhead, save_overhead
    from ...explain import measured_overhead
    from ...render import error, size

    m = measured_overhead(run)
    card = _card_of(run, gpu, cat)
    name = "-" if log == "-" else os.path.basename(log)
    # the name as the config keeps it: no control character, quote or backslash (detect/config.py checks it)
    name = "".join(c if c >= " " and c not in '\x7f"\\' else "_" for c in name)[:255] or "-"
    entry = SavedOverhead(m.engine, card, m.bytes, datetime.date.today().isoformat(), name)
    path = save_overhead(entry, os.environ)
    on = "any card" if card == ANY_CARD else card
    if m.card_total_bytes and m.bytes * 4 > m.card_total_bytes:  # the breakdown counts other programs too
        error(
            f"{size(m.bytes)} is more than a quarter of the card's {size(m.card_total_bytes)}: other programs may "
            "have held memory then; save a log of a run on an otherwise idle card",
            prefix="warning",
        )
    error(
        f"saved {size(m.bytes)} of {m.engine} overhead on {on} ({m.where}) in {path}; "
        f"estimates for {m.engine} on {on} use it (`willitrun explain --forget` removes it)",
        prefix="note",
    )
    return {"engine": m.engine, "card": card, "bytes": m.bytes, "date": entry.date, "log": name, "config": path}


def _saved(forget: bool, engine: str | None, gpu: str | None, json_out: bool, specs_dir: Any) -> None:
    """--saved lists the kept overheads; --forget removes them (those of --engine / --gpu only, when given)."""
    import os
    from dataclasses import asdict

    from ...detect.config import config_path, forget_overheads, saved_overheads
    from ...render import out, print_json, safe, size
    from .. import parse

    eng = parse.engine(engine) if engine else None
    card = None
    if gpu is not None:
        from ...catalog import load_catalog

        card = str(load_catalog(specs_dir).resolve("gpu", gpu).id)
    if forget:
        rows = forget_overheads(os.environ, eng, card)
    else:
        rows = [o for o in saved_overheads(os.environ) if eng in (None, o.engine) and card in (None, o.card)]
    if json_out:
        print_json(
            {
                "schema_version": 1,
                "config": config_path(os.environ),
                "forgotten" if forget else "saved": [asdict(o) for o in rows],
            }
        )
        return
    if not rows:
        out.print(f"no saved overhead{' removed' if forget else ''} ({config_path(os.environ)})", markup=False)
    for o in rows:
        out.print(
            safe(f"{'removed: ' if forget else ''}{o.engine} on {o.card}: {size(o.bytes)}, {o.detail}"), markup=False
        )
