"""Output: rich tables for people, plain JSON for programs. No arithmetic here.

rich is imported only when something is printed for people: `--json`, `-q` and error lines never
load it (start-up time, see benchmarks/startup.py). Text that comes from the user or from a file
(model and GPU names, notes, paths) goes through `safe()` so a terminal escape sequence in a spec's
`name:` is shown, not executed.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from .files import safe_text

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .engines import EngineFit
    from .fit import Fit, Verdict
    from .memory import Estimate

SCHEMA_VERSION = 2  # 2: engine JSON has total_bytes; ladder rows name their engine (docs/json-output.md)
GIB, MIB = 1 << 30, 1 << 20


# Control characters, escape sequences and bidi overrides in names from files or the command line are
# written as backslash escapes: one helper for the whole package (files.safe_text).
safe = safe_text


def escape(text: object) -> str:
    """`safe(text)` with rich markup escaped, for user text inside a rich markup string."""
    from rich.markup import escape as rich_escape

    return rich_escape(safe(text))


def write(text: str) -> None:
    """Text to stdout. A closed pipe (`willitrun check ... | head -1`) silences the rest of the output
    instead of failing: the command finishes and its own exit code stands (1 would read "does not fit")."""
    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at /dev/null: its reader has gone."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def error(line: str, prefix: str | None = "error") -> None:
    """One line to stderr, `prefix: line`, without rich (a usage error must not wait for it)."""
    from .errors import bounded

    line = bounded(safe(line))
    try:
        sys.stderr.write(f"{prefix}: {line}\n" if prefix else f"{line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or full stderr: the exit code still says it
        pass


_consoles: dict[str, Console] = {}


def _is_terminal() -> bool:
    """stdout is a terminal; False when it is a pipe, a file, closed or missing."""
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _console(name: str) -> Console:
    """One configured console each: results to stdout, warnings and errors to stderr. rich honours
    NO_COLOR and turns styling off when the stream is not a terminal. No emoji codes: a name with
    `:fire:` in it is printed as written (escape() leaves such codes alone), and rich's table of 4,000
    emoji (~3 ms to import) is never loaded; Text.from_markup takes emoji=False for the same reason."""
    if name not in _consoles:
        from rich.console import Console

        class _Out(Console):
            """rich's Console, except that a closed pipe (`willitrun ... | head -1`) silences further
            output instead of exiting 1, which scripts would read as "does not fit"."""

            def on_broken_pipe(self) -> None:
                self.quiet = True
                silence_stdout()

        if name == "out":  # piped output gets 120 columns (not rich's 80) so tables do not wrap in logs
            _consoles[name] = _Out(highlight=False, soft_wrap=False, emoji=False, width=None if _is_terminal() else 120)
        else:  # an error stays one line
            _consoles[name] = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    if name == "out" and not _is_terminal():
        # COLUMNS, when set, wins (a narrow terminal, a test asking for 80); read at each use, not when
        # the console was made, so one process (a test run) never keeps another command's width
        columns = os.environ.get("COLUMNS", "")
        _consoles[name].width = int(columns) if columns.isdigit() and 0 < int(columns) <= 10_000 else 120
    return _consoles[name]


def __getattr__(name: str) -> Any:
    """`render.out` and `render.err`: the consoles, created (and rich imported) on first use."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COMPONENT_LABELS = {
    "vision_tower": "vision tower",
    "audio_tower": "audio tower",
    "projector": "projector",
    "embeddings": "token embeddings",
    "encoder": "encoder",
    "decoder": "decoder layers",
    "lm_head": "LM head",
    "checkpoint": "all tensors (as stored)",
}


def size(n: int) -> str:
    """Bytes for display: GiB (2^30) from 1 GiB up, else MiB (2^20); never GB."""
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MIB:.1f} MiB"


def band_text(v: Verdict) -> str:
    """ "measured runs within ±X MiB" of the engine's accuracy table (fit.ERROR_BANDS), or ""."""
    if v.band is None:
        return ""
    runs = f"{v.band.runs} measured run{'s' if v.band.runs != 1 else ''}"
    return f"{runs} within ±{max(v.band.bytes / MIB, 0.1):,.1f} MiB"


def verdict_text(v: Verdict, how: str = "") -> str:
    """The verdict line, rich markup: FITS / TIGHT / DOES NOT FIT, the need against what it was judged
    against (free memory beside the card's total when the card was detected), headroom and the measured
    error band. `how` names the plan that fits ("with 46 of 80 layers on the GPU")."""
    band = band_text(v)
    tail = f"; {band}" if band else ""
    if v.status == "does_not_fit" and v.headroom_bytes >= 0 and v.reason:  # the card holds it, the host does not
        return f"[red bold]DOES NOT FIT[/]: {escape(v.reason)}."
    if v.status == "does_not_fit":
        what = size(v.total_bytes)
        if v.share_name:
            what = f"{v.share_name} of {what} ({size(v.available_bytes)})"
        elif v.margin_bytes:
            what += f" less the {size(v.margin_bytes)} --margin"
        return (
            f"[red bold]DOES NOT FIT[/]: needs {size(v.need_bytes)}, {size(-v.headroom_bytes)} more than {what}{tail}."
        )
    less = ([f"less {size(v.reserve_bytes)} the engine keeps free"] if v.reserve_bytes else []) + (
        [f"less the {size(v.margin_bytes)} --margin"] if v.margin_bytes else []
    )
    of = size(v.available_bytes)
    if v.share_name:  # its budget is its share of the card's total
        owner, _, word = v.share_name.partition(" ")
        of = (
            f"{owner} {of} {word} ({size(v.total_bytes)} card"
            + (f", {size(v.free_bytes)} free now" if v.free_bytes is not None else "")
            + ")"
        )
    elif v.free_bytes is not None and less:
        of += f" ({size(v.free_bytes)} free now of the {size(v.total_bytes)} card, {', '.join(less)})"
    elif v.free_bytes is not None:
        of += f" free now ({size(v.total_bytes)} card)"
    elif less:
        of += f" ({size(v.total_bytes)} {', '.join(less)})"
    label = "[green bold]FITS[/]" if v.status == "fits" else "[yellow bold]TIGHT[/]"
    head = f"{label}{' ' + how if how else ''}: {size(v.need_bytes)} of {of}, {size(v.headroom_bytes)} headroom"
    if v.available_bytes > 0 and v.headroom_bytes >= 0:
        head += f" ({v.headroom_bytes / v.available_bytes:.0%})"
    reason = f"; {v.reason}" if v.status == "tight" else ""
    return f"{head}{reason}{tail}."


def verdict_dict(v: Verdict) -> dict[str, Any]:
    """The verdict's JSON keys (docs/json-output.md, "The verdict")."""
    d: dict[str, Any] = {
        "verdict": v.status,
        "need_bytes": v.need_bytes,
        "card_total_bytes": v.total_bytes,
        "margin_bytes": v.margin_bytes,
        "engine_reserve_bytes": v.reserve_bytes,
        "available_bytes": v.available_bytes,
        "verdict_headroom_bytes": v.headroom_bytes,
        "error_band_bytes": v.band.bytes if v.band else 0,
        "error_band_runs": v.band.runs if v.band else 0,
        "verdict_reason": v.reason,
        "exit_code": v.exit_code,
    }
    if v.free_bytes is not None:  # a detected card only: every *_bytes key stays an int
        d["free_bytes"] = v.free_bytes
    return d


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
def estimate_dict(e: Estimate) -> dict[str, Any]:
    """An estimate as JSON data (docs/json-output.md)."""
    return {
        "model": e.model,
        "architecture": e.architecture,
        "context_tokens": e.context_tokens,
        "image_tokens": e.image_tokens,
        "text_tokens": e.text_tokens,
        "images": e.images,
        "batch_size": e.batch_size,
        "beams": e.beams,
        "dtype": e.dtype,
        "kv_dtype": e.kv_dtype,
        "parameters": e.parameters,
        "active_parameters": e.active_parameters,
        "components": [{"name": c.name, "parameters": c.parameters, "bytes": c.bytes} for c in e.components],
        "weights_bytes": e.weights_bytes,
        "kv_self_bytes": e.kv_self_bytes,
        "kv_self_layers": e.attention.self_layers,
        "image_kv_bytes": e.image_kv_bytes,
        "video_tokens": e.video_tokens,
        "audio_tokens": e.audio_tokens,
        "kv_cross_bytes": e.kv_cross_bytes,
        "kv_cross_layers": e.attention.cross_layers,
        "cross_source_tokens": e.cross_source_tokens,
        "state_bytes": e.state_bytes,
        "kv_cache": e.kv_cache,
        "activations_bytes": e.activations_bytes,
        "overhead_bytes": e.overhead_bytes,
        "total_bytes": e.total_bytes,
        "notes": list(e.notes),
        "warnings": list(e.warnings),
    }


def fit_dict(f: Fit, context_bound: bool = True, judged: Verdict | None = None) -> dict[str, Any]:
    """A fit as JSON data (docs/json-output.md); `context_bound` False for a pure state-space model."""
    d: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    d.update(estimate_dict(f.estimate))
    from .fit import estimate_facts, estimate_parts, verdict

    e = f.estimate
    d.update(
        {
            "engine": "transformers",
            "n_ctx": e.context_tokens,
            # an encoder used alone (kv_cache false) has no cache: no KV buffer rather than a zero-byte one
            "buffers": [
                {"name": name, "bytes": nbytes, "placement": "gpu", "device": 0, "kind": kind, "detail": detail}
                for name, nbytes, kind, detail in estimate_parts(e)
                if e.kv_cache or kind != "kv_self"
            ],
            "gpu_bytes": e.total_bytes,
            "host_bytes": 0,
            "max_device_bytes": e.total_bytes,
            "engine_facts": estimate_facts(e),
            "gpu": f.device,
            "vram_bytes": f.vram_bytes,
            "fits": f.fits,
            "headroom_bytes": f.headroom_bytes,
            "max_context_tokens": f.max_context_tokens,
            "context_limit_tokens": f.context_limit,
            "memory_bounds_context": context_bound and e.kv_cache,
            "context_applies": e.kv_cache,
            "suggestions": list(f.suggestions),
        }
    )
    d.update(verdict_dict(judged or verdict(f)))
    return d


def print_json(data: Any) -> None:
    """JSON straight to stdout, never through rich (it would wrap long lines)."""
    write(json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------
# People: one renderer for every engine (transformers included)
# --------------------------------------------------------------------------------------------------
UNBOUNDED_CONTEXT = (
    "Context: memory does not bound it. No layer caches keys and values; the recurrent state is "
    "fixed, and only the prefill's activations grow with the prompt."
)


NO_CONTEXT = (
    "Largest context: does not apply. This model is an encoder used alone: it keeps no KV cache, and its "
    "text input is capped by learned positions, not by memory; memory grows with --batch and --images "
    "(--max-batch finds the largest batch)."
)


def _transformers_rows(f: Fit) -> list[tuple[str, str, str, str]]:
    """The transformers breakdown as (part, parameters, memory, detail) rows: the parts of
    fit.estimate_parts (the `buffers` of its JSON) with the arithmetic a person reads beside them."""
    e = f.estimate
    rows = [
        (f"weights: {escape(COMPONENT_LABELS.get(c.name, c.name))}", f"{c.parameters:,}", size(c.bytes), "")
        for c in e.components
    ]
    att = e.attention
    seqs = e.batch_size * e.beams
    per = f" x {seqs} sequences" if seqs > 1 else ""
    if not e.kv_cache:  # an encoder used alone: no cache exists, so no size is printed for one
        rows.append(("KV cache", "", "none", att.no_cross_reason))
    else:
        rows.append(
            (
                "self-attention KV cache",
                "",
                size(e.kv_self_bytes),
                f"{att.self_layers} layers x {e.context_tokens:,} positions{per}"
                + (
                    " (prefill peak; see note on the sliding window)"
                    if att.sliding_window and e.context_tokens >= att.sliding_window
                    else ""
                ),
            )
        )
        if e.image_kv_bytes:  # a share of the line above, not a part of its own: the column still adds up
            what = "audio" if e.audio_tokens == e.image_tokens else "image"
            rows.append(
                ("", "", "", f"of which {what} tokens: {size(e.image_kv_bytes)} ({e.image_tokens:,} positions)")
            )
        if att.cross_layers:
            rows.append(
                (
                    "cross-attention KV cache",
                    "",
                    size(e.kv_cross_bytes),
                    f"{att.cross_layers} layers x {e.cross_source_tokens:,} {att.cross_source}{per}; "
                    "fixed, does not grow with output",
                )
            )
        else:
            rows.append(("cross-attention KV cache", "", "none", att.no_cross_reason))
    if e.state_bytes:
        rows.append(
            ("recurrent state (conv + SSM)", "", size(e.state_bytes), f"per sequence{per}, the same at every context")
        )
    rows.append(
        (
            "activations (prefill peak)" if e.kv_cache else "activations (one pass)",
            "",
            size(e.activations_bytes),
            "largest layer's temporaries + last logits" if e.kv_cache else "largest layer's temporaries (no logits)",
        )
    )
    rows.append(("runtime overhead", "", size(e.overhead_bytes), "CUDA context, cuBLAS, allocator (measured)"))
    return rows


def print_answer(
    f: Fit | EngineFit,
    model_name: str,
    device_name: str,
    *,
    context_bound: bool = True,
    judged: Verdict | None = None,
    how: str = "",
    verdict: bool = True,
    chart: RenderableType | None = None,
    suggestions: tuple[str, ...] | list[str] = (),
) -> None:
    """The one renderer for people, every engine: the header, the breakdown (transformers: its parts
    with their parameters; an engine: its buffers and where each lives), the total against the card,
    `chart` under it, then (unless `verdict` is off: several cards, whose split prints its own) the
    verdict (fit.verdict, or `judged`; `how` names a plan that fits), the largest context, what would
    fit, the notes and warnings. `context_bound` is False for a pure state-space model."""
    from rich.table import Table

    from .fit import Fit, budget_line
    from .fit import verdict as verdict_of

    out, err = _console("out"), _console("err")
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    if isinstance(f, Fit):
        e = f.estimate
        ctx = f"context {e.context_tokens:,} tokens"
        if e.image_tokens:
            still = e.image_tokens - e.video_tokens - e.audio_tokens
            parts = [f"{still:,} image from {e.images} image(s)"] if still else []
            parts += [f"{e.video_tokens:,} video"] if e.video_tokens else []
            parts += [f"{e.audio_tokens:,} audio"] if e.audio_tokens else []
            ctx += f" ({' + '.join(parts)} + {e.text_tokens:,} text)"
        out.print(
            f"[bold]{escape(model_name)}[/] ({escape(e.model)}) on [bold]{escape(device_name)}[/] ({size(f.vram_bytes)})"
        )
        beams = f", {e.beams} beams" if e.beams > 1 else ""
        out.print(
            f"{e.dtype} weights, {e.kv_dtype} KV cache, {ctx}, batch {e.batch_size}{beams}"
            if e.kv_cache
            else f"{e.dtype} weights, no KV cache, {e.context_tokens:,} text tokens and {e.images} image(s) per input, "
            f"batch {e.batch_size}"
        )
        for col in ("part", "parameters", "memory", "detail"):
            t.add_column(
                col,
                justify="right" if col in ("parameters", "memory") else "left",
                style="dim" if col == "detail" else None,
            )
        for row in _transformers_rows(f):
            t.add_row(*row)
        t.add_section()
        active = (
            f"; active per token: {e.active_parameters:,}"
            if e.active_parameters and e.active_parameters != e.parameters
            else ""
        )
        t.add_row(
            "[bold]total[/]", f"{e.parameters:,}", f"[bold]{size(e.total_bytes)}[/]", f"of {size(f.vram_bytes)}{active}"
        )
        kv_cache, notes, warnings = e.kv_cache, e.notes, e.warnings
        suggestions = tuple(suggestions) or f.suggestions
        footer = "Sizes in GiB = 2^30 bytes."
    else:
        g = f.estimate
        out.print(
            f"[bold]{escape(model_name)}[/] ({escape(g.model)}) with [bold]{escape(g.engine)}[/] on "
            f"[bold]{escape(device_name)}[/] ({size(f.vram_bytes)})"
        )
        out.print(
            f"{g.dtype} weights, {g.kv_dtype} KV cache, context {g.context_tokens:,} tokens (KV allocated for {g.n_ctx:,})"
        )
        for col in ("buffer", "where", "memory", "detail"):
            t.add_column(col, justify="right" if col == "memory" else "left", style="dim" if col == "detail" else None)
        for b in g.buffers:
            t.add_row(
                escape(b.name), f"GPU{b.device}" if b.placement == "gpu" else "host", size(b.bytes), escape(b.detail)
            )
        t.add_section()
        t.add_row(
            "[bold]GPU total[/]" if g.gpus <= 1 else "[bold]fullest GPU[/]",
            "",
            f"[bold]{size(g.max_device_bytes)}[/]",
            f"of {size(f.vram_bytes)}",
        )
        if g.host_bytes:
            t.add_row("host memory", "host", size(g.host_bytes), "system RAM, not GPU memory")
        kv_cache, notes, warnings = True, g.notes, g.warnings
        footer = "Sizes in GiB = 2^30 bytes, MiB = 2^20 bytes."
    out.print(t)
    if chart is not None:
        out.print(chart)
    if verdict:
        line = budget_line(f, size)
        if line:
            out.print(line)
        out.print(verdict_text(judged or verdict_of(f), how))
        if not kv_cache:
            out.print(NO_CONTEXT)
        elif not context_bound and f.fits:
            out.print(UNBOUNDED_CONTEXT)
        elif f.max_context_tokens:
            out.print(f"Largest context that fits: {f.max_context_tokens:,} tokens{_at_limit(f)}.")
        elif isinstance(f, Fit):
            out.print("No context length fits with these settings.")
        for hint in suggestions:
            out.print(f"  try {escape(hint)}")
    for n in notes:
        out.print(f"[dim]note: {escape(n)}[/]")
    for w in warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(f"[dim]{footer}[/]")


def print_fit(f: Fit, model_name: str, device_name: str, **kwargs: Any) -> None:
    """print_answer for a transformers fit (the name callers used before the renderers were one)."""
    print_answer(f, model_name, device_name, **kwargs)


def print_engine_fit(
    f: EngineFit,
    model_name: str,
    device_name: str,
    context_bound: bool = True,
    judged: Verdict | None = None,
    how: str = "",
) -> None:
    """print_answer for an engine profile's fit (the name callers used before the renderers were one)."""
    print_answer(f, model_name, device_name, context_bound=context_bound, judged=judged, how=how)


def _at_limit(f: Fit | EngineFit) -> str:
    """Why the largest context stops where it does, when it is the window itself (transformers)."""
    from .fit import Fit

    if not isinstance(f, Fit):
        return ""
    e = f.estimate
    att = e.attention
    window = att.hard_limit or att.context_window
    if f.max_context_tokens == f.context_limit == window:
        return " (the model's window)"
    if f.max_context_tokens == f.context_limit and window is not None and e.image_tokens >= window:
        return " (the images alone fill the model's window)"
    return ""


# --------------------------------------------------------------------------------------------------
# Engine profiles
# --------------------------------------------------------------------------------------------------
def engine_dict(f: EngineFit, device: str, context_bound: bool = True, judged: Verdict | None = None) -> dict[str, Any]:
    """An engine profile's fit as JSON data (docs/json-output.md, "With an engine profile")."""
    from .fit import verdict

    e = f.estimate
    return {
        "schema_version": SCHEMA_VERSION,
        "engine": e.engine,
        "model": e.model,
        "architecture": e.architecture,
        "gpu": device,
        "vram_bytes": f.vram_bytes,
        "context_tokens": e.context_tokens,
        "n_ctx": e.n_ctx,
        "dtype": e.dtype,
        "kv_dtype": e.kv_dtype,
        "buffers": [
            {
                "name": b.name,
                "bytes": b.bytes,
                "placement": b.placement,
                "device": b.device,
                "kind": b.kind,
                "detail": b.detail,
            }
            for b in e.buffers
        ],
        "gpu_bytes": e.gpu_bytes,
        "host_bytes": e.host_bytes,
        "max_device_bytes": e.max_device_bytes,
        "total_bytes": f.total_bytes,
        "engine_facts": dict(e.facts),
        "fits": f.fits,
        "headroom_bytes": f.headroom_bytes,
        "max_context_tokens": f.max_context_tokens,
        "context_limit_tokens": f.context_limit,
        "memory_bounds_context": context_bound,
        "notes": list(e.notes),
        "warnings": list(e.warnings),
        **verdict_dict(judged or verdict(f)),
    }


def answer_dict(
    f: Fit | EngineFit, device: str, context_bound: bool = True, judged: Verdict | None = None
) -> dict[str, Any]:
    """The one JSON writer for an answer (docs/json-output.md): every engine's object has the engine keys
    (`buffers`, `total_bytes`, `fits`, the verdict keys); transformers adds its breakdown keys."""
    from .fit import Fit, runtime_overhead

    d = fit_dict(f, context_bound, judged) if isinstance(f, Fit) else engine_dict(f, device, context_bound, judged)
    d["runtime_overhead"] = runtime_overhead(d["engine"])
    if not isinstance(f, Fit):  # an overhead `explain --save` measured replaces the engine's sentence
        from .units import MEASURED

        said = next(
            (b.detail for b in f.estimate.buffers if b.kind == "overhead" and b.detail.startswith(MEASURED)), ""
        )
        if said:
            d["runtime_overhead"] = f"totals include the runtime overhead {said}"
    return d


def print_launch(argv: list[str], session: list[str] | tuple[str, ...] = (), client: list[str] | None = None) -> None:
    """The command that runs the model as estimated (engines/registry.py builds the argv), every
    argument shell-quoted (shlex.join) on one unwrapped line so it can be copied as is; `session`:
    what to type inside it (ollama's /set parameter lines); `client`: the command that then talks to the
    launched server (ollama run NAME)."""
    import shlex

    console = _console("out")
    console.print("Run it:", style="bold")
    # safe_text: a control character in a path the user gave prints escaped, never raw to the terminal
    # (printable text is unchanged, so the line reads back with shlex.split; JSON keeps the exact argv)
    console.print(f"  {safe_text(shlex.join(argv))}", markup=False, soft_wrap=True)
    if client:
        console.print(f"  then: {safe_text(shlex.join(client))}", markup=False, soft_wrap=True)
    for line in session:
        console.print(f"  in the session: {safe_text(line)}", markup=False, soft_wrap=True)
