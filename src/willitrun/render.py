"""Output: rich tables for people, plain JSON for programs. No arithmetic here.

rich is imported only when something is printed for people: `--json`, `-q` and error lines never
load it (start-up time, see benchmarks/startup.py). Text that comes from the user or from a file
(model and GPU names, notes, paths) goes through `safe()` so a terminal escape sequence in a spec's
`name:` is shown, not executed.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from .files import safe_text

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .engines import EngineFit
    from .fit import Fit
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


def _console(name: str) -> Console:
    """One configured console each: results to stdout, warnings and errors to stderr. rich honours
    NO_COLOR and turns styling off when the stream is not a terminal."""
    if name not in _consoles:
        from rich.console import Console

        class _Out(Console):
            """rich's Console, except that a closed pipe (`willitrun ... | head -1`) silences further
            output instead of exiting 1, which scripts would read as "does not fit"."""

            def on_broken_pipe(self) -> None:
                self.quiet = True
                silence_stdout()

        if name == "out":  # piped output gets 120 columns instead of rich's 80 so tables do not wrap in logs
            _consoles[name] = _Out(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 120)
        else:  # an error stays one line
            _consoles[name] = Console(stderr=True, highlight=False, soft_wrap=True)
    return _consoles[name]


def __getattr__(name: str) -> Any:
    """`render.out` and `render.err`: the consoles, created (and rich imported) on first use."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COMPONENT_LABELS = {
    "vision_tower": "vision tower",
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


def fit_dict(f: Fit, context_bound: bool = True) -> dict[str, Any]:
    """A fit as JSON data (docs/json-output.md); `context_bound` False for a pure state-space model."""
    d: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    d.update(estimate_dict(f.estimate))
    from .fit import estimate_facts, estimate_parts

    e = f.estimate
    d.update({
        "engine": "transformers",
        "n_ctx": e.context_tokens,
        # an encoder used alone (kv_cache false) has no cache: no KV buffer rather than a zero-byte one
        "buffers": [{"name": name, "bytes": nbytes, "placement": "gpu", "device": 0, "kind": kind, "detail": detail}
                    for name, nbytes, kind, detail in estimate_parts(e) if e.kv_cache or kind != "kv_self"],
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
    })
    return d


def print_json(data: Any) -> None:
    """JSON straight to stdout, never through rich (it would wrap long lines)."""
    write(json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------------
def print_fit(f: Fit, model_name: str, device_name: str, *, verdict: bool = True,
              chart: RenderableType | None = None, context_bound: bool = True) -> None:
    """The estimate's table; `chart` right under it; then (unless `verdict` is off: several cards,
    whose split prints its own) the verdict, the largest context and the suggestions.
    `context_bound` is False for a pure state-space model (archs Geometry.cache_grows_with_context)."""
    from rich.table import Table

    out, err = _console("out"), _console("err")
    e = f.estimate
    ctx = f"context {e.context_tokens:,} tokens"
    if e.image_tokens:
        still = e.image_tokens - e.video_tokens
        parts = [f"{still:,} image from {e.images} image(s)"] if still else []
        parts += [f"{e.video_tokens:,} video"] if e.video_tokens else []
        ctx += f" ({' + '.join(parts)} + {e.text_tokens:,} text)"
    out.print(f"[bold]{escape(model_name)}[/] ({escape(e.model)}) on [bold]{escape(device_name)}[/] ({size(f.vram_bytes)})")
    beams = f", {e.beams} beams" if e.beams > 1 else ""
    if e.kv_cache:
        out.print(f"{e.dtype} weights, {e.kv_dtype} KV cache, {ctx}, batch {e.batch_size}{beams}")
    else:
        out.print(f"{e.dtype} weights, no KV cache, {e.context_tokens:,} text tokens and {e.images} image(s) per input, "
                  f"batch {e.batch_size}")

    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    t.add_column("part")
    t.add_column("parameters", justify="right")
    t.add_column("memory", justify="right")
    t.add_column("detail", style="dim")
    for c in e.components:
        t.add_row(f"weights: {escape(COMPONENT_LABELS.get(c.name, c.name))}", f"{c.parameters:,}", size(c.bytes), "")
    att = e.attention
    seqs = e.batch_size * e.beams
    per = f" x {seqs} sequences" if seqs > 1 else ""
    if not e.kv_cache:  # an encoder used alone: no cache exists, so no size is printed for one
        t.add_row("KV cache", "", "none", att.no_cross_reason)
    else:
        t.add_row("self-attention KV cache", "", size(e.kv_self_bytes),
                  f"{att.self_layers} layers x {e.context_tokens:,} positions{per}"
                  + (" (prefill peak; see note on the sliding window)" if att.sliding_window
                     and e.context_tokens >= att.sliding_window else ""))
        if e.image_kv_bytes:  # a share of the line above, not a part of its own: the column still adds up
            t.add_row("", "", "", f"of which image tokens: {size(e.image_kv_bytes)} ({e.image_tokens:,} positions)")
        if att.cross_layers:
            t.add_row("cross-attention KV cache", "", size(e.kv_cross_bytes),
                      f"{att.cross_layers} layers x {e.cross_source_tokens:,} {att.cross_source}{per}; "
                      "fixed, does not grow with output")
        else:
            t.add_row("cross-attention KV cache", "", "none", att.no_cross_reason)
    if e.state_bytes:
        t.add_row("recurrent state (conv + SSM)", "", size(e.state_bytes),
                  f"per sequence{per}, the same at every context")
    t.add_row("activations (prefill peak)" if e.kv_cache else "activations (one pass)", "", size(e.activations_bytes),
              "largest layer's temporaries + last logits" if e.kv_cache else "largest layer's temporaries (no logits)")
    t.add_row("runtime overhead", "", size(e.overhead_bytes), "CUDA context, cuBLAS, allocator (measured)")
    t.add_section()
    active = (f"; active per token: {e.active_parameters:,}"
              if e.active_parameters and e.active_parameters != e.parameters else "")
    t.add_row("[bold]total[/]", f"{e.parameters:,}", f"[bold]{size(e.total_bytes)}[/]", f"of {size(f.vram_bytes)}{active}")
    out.print(t)
    if chart is not None:
        out.print(chart)
    if verdict:
        print_verdict(f, context_bound)
    for n in e.notes:
        out.print(f"[dim]note: {escape(n)}[/]")
    for w in e.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    out.print("[dim]Sizes in GiB = 2^30 bytes.[/]")


UNBOUNDED_CONTEXT = ("Context: memory does not bound it. No layer caches keys and values; the recurrent state is "
                     "fixed, and only the prefill's activations grow with the prompt.")


NO_CONTEXT = ("Largest context: does not apply. This model is an encoder used alone: it keeps no KV cache, and its "
              "text input is capped by learned positions, not by memory; memory grows with --batch and --images "
              "(--max-batch finds the largest batch).")


def print_verdict(f: Fit, context_bound: bool = True) -> None:
    """FITS or DOES NOT FIT, the largest context that fits and the suggestions."""
    out = _console("out")
    e = f.estimate
    if f.fits:
        out.print(f"[green bold]FITS[/]: {size(e.total_bytes)} of {size(f.vram_bytes)}, {size(f.headroom_bytes)} headroom "
                  f"({f.headroom_bytes / f.vram_bytes:.0%}).")
    else:
        out.print(f"[red bold]DOES NOT FIT[/]: needs {size(e.total_bytes)}, {size(-f.headroom_bytes)} more than {size(f.vram_bytes)}.")
    if not e.kv_cache:
        out.print(NO_CONTEXT)
    elif not context_bound and f.fits:
        out.print(UNBOUNDED_CONTEXT)
    elif f.max_context_tokens:
        att = e.attention
        window = att.hard_limit or att.context_window
        at_limit = (" (the model's window)" if f.max_context_tokens == f.context_limit == window
                    else " (the images alone fill the model's window)" if f.max_context_tokens == f.context_limit
                    and window is not None and e.image_tokens >= window else "")
        out.print(f"Largest context that fits: {f.max_context_tokens:,} tokens{at_limit}.")
    else:
        out.print("No context length fits with these settings.")
    for s in f.suggestions:
        out.print(f"  try {escape(s)}")



# --------------------------------------------------------------------------------------------------
# Engine profiles
# --------------------------------------------------------------------------------------------------
def engine_dict(f: EngineFit, device: str, context_bound: bool = True) -> dict[str, Any]:
    """An engine profile's fit as JSON data (docs/json-output.md, "With an engine profile")."""
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
        "buffers": [{"name": b.name, "bytes": b.bytes, "placement": b.placement, "device": b.device, "kind": b.kind,
                     "detail": b.detail} for b in e.buffers],
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
    }


def print_engine_fit(f: EngineFit, model_name: str, device_name: str, context_bound: bool = True) -> None:
    """An engine profile's buffers, where each lives, and the verdict (`context_bound` as print_fit's)."""
    from rich.table import Table

    out, err = _console("out"), _console("err")
    e = f.estimate
    out.print(f"[bold]{escape(model_name)}[/] ({escape(e.model)}) with [bold]{escape(e.engine)}[/] on "
              f"[bold]{escape(device_name)}[/] ({size(f.vram_bytes)})")
    out.print(f"{e.dtype} weights, {e.kv_dtype} KV cache, context {e.context_tokens:,} tokens (KV allocated for {e.n_ctx:,})")
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col, just in (("buffer", "left"), ("where", "left"), ("memory", "right"), ("detail", "left")):
        t.add_column(col, justify=just, style="dim" if col == "detail" else None)  # type: ignore[arg-type]
    for b in e.buffers:
        where = f"GPU{b.device}" if b.placement == "gpu" else "host"
        t.add_row(escape(b.name), where, size(b.bytes), escape(b.detail))
    t.add_section()
    t.add_row("[bold]GPU total[/]" if e.gpus <= 1 else "[bold]fullest GPU[/]", "", f"[bold]{size(e.max_device_bytes)}[/]",
              f"of {size(f.vram_bytes)}")
    if e.host_bytes:
        t.add_row("host memory", "host", size(e.host_bytes), "system RAM, not GPU memory")
    out.print(t)
    if e.engine == "vllm":
        facts = e.facts
        verdict = (f"vLLM's KV pool holds {int(facts['kv_tokens']):,} tokens; the model's window "
                   f"({int(facts['max_model_len']):,}) {'fits' if f.fits else 'does NOT fit: vLLM refuses to start'}")
        out.print(("[green bold]FITS[/]: " if f.fits else "[red bold]DOES NOT FIT[/]: ") + verdict + ".")
    elif f.fits:
        out.print(f"[green bold]FITS[/]: {size(e.max_device_bytes)} of {size(f.vram_bytes)}, {size(f.headroom_bytes)} headroom.")
    else:
        out.print(f"[red bold]DOES NOT FIT[/]: needs {size(e.max_device_bytes)}, {size(-f.headroom_bytes)} more than {size(f.vram_bytes)}.")
    if not context_bound and f.fits:
        out.print(UNBOUNDED_CONTEXT)
    elif f.max_context_tokens and e.engine != "vllm":
        out.print(f"Largest context that fits: {f.max_context_tokens:,} tokens.")
    for n in e.notes:
        out.print(f"[dim]note: {escape(n)}[/]")
    for w in e.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    out.print("[dim]Sizes in GiB = 2^30 bytes, MiB = 2^20 bytes.[/]")
