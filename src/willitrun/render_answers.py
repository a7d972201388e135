"""Output of the answers (answers.py, placement.py): rich renderables for people, plain dicts for
--json, and the optional matplotlib plot of a sweep. No arithmetic here."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from .errors import UsageError
from .limits import MAX_CARDS
from .render import SCHEMA_VERSION, escape, safe, size
from .table_width import Narrowable

if TYPE_CHECKING:  # annotations only: the ladder's view does not load placement.py and speed.py
    from .answers import BatchAnswer, CardCount, DecodeSpeed, GpuTable, Ladder, Offload, Split, Sweep
    from .memory import Estimate

# --------------------------------------------------------------------------------------------------
# JSON (docs/answers-json.md): the dataclasses' fields, integer bytes, snake_case keys
# --------------------------------------------------------------------------------------------------


def as_dict(obj: Any) -> dict[str, Any]:
    """A result dataclass as JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(obj)


def ladder_dict(ladder: Ladder, gpu: str, gpu_name: str) -> dict[str, Any]:
    from .fit import runtime_overhead

    d = {"schema_version": SCHEMA_VERSION, "gpu": gpu, "gpu_name": gpu_name, **as_dict(ladder)}
    d["best"] = as_dict(ladder.best) if ladder.best else None
    d["runtime_overhead"] = {
        e: runtime_overhead(e) for e in dict.fromkeys(r.engine for r in ladder.rows) if runtime_overhead(e)
    }
    return d


def gpus_dict(table: GpuTable) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **as_dict(table)}


def count_dict(count: CardCount, model: str, est: Estimate) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "context_tokens": est.context_tokens,
        "batch_size": est.batch_size,
        "beams": est.beams,
        "dtype": est.dtype,
        "kv_dtype": est.kv_dtype,
        **as_dict(count),
    }


def sweep_dict(sw: Sweep, gpu: str | None, gpu_name: str | None) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "gpu": gpu, "gpu_name": gpu_name, **as_dict(sw)}


# --------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------
def _table(*columns: str, right: Iterable[str] = ()) -> Table:
    t = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    right = set(right)
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left")
    return t


def _no_context(where: str) -> str:
    return f"No context length fits {where}."


def _yes(fits: bool, verdict: str = "") -> str:
    """yes / tight / no: a row's verdict (fit.judge) as the main command would give it."""
    if verdict == "tight":
        return "[yellow]tight[/]"
    return "[green]yes[/]" if fits else "[red]no[/]"


def _ctx(n: int | None) -> str:
    return "-" if n is None else f"{n:,}" if n else "none"


# --------------------------------------------------------------------------------------------------
# The memory bar
# --------------------------------------------------------------------------------------------------
# (label, character, style): characters differ so the bar reads without colour (NO_COLOR, a log)
BAR_PARTS = (
    ("weights", "█", "blue"),
    ("KV self", "▓", "magenta"),
    ("KV cross", "▒", "cyan"),
    ("state", "▚", "green"),
    ("activations", "░", "yellow"),
    ("overhead", "▪", "bright_black"),
)


class MemoryBar:
    """A stacked bar of the estimate's parts against the card's memory (a `│` marks the memory):
    one character per (width / the larger of total and memory) of bytes, a legend below."""

    def __init__(self, est: Estimate, vram: int, label: str) -> None:
        self.parts = [
            est.weights_bytes,
            est.kv_self_bytes,
            est.kv_cross_bytes,
            est.state_bytes,
            est.activations_bytes,
            est.overhead_bytes,
        ]
        self.vram, self.label, self.total = vram, label, est.total_bytes

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, min(options.max_width, 100) - 1)
        scale = max(self.total, self.vram)
        marker = min(width, round(self.vram / scale * width))
        cells: list[tuple[str, str]] = []
        done = acc = 0
        for (_, char, style), nbytes in zip(BAR_PARTS, self.parts, strict=True):
            acc += nbytes
            end = round(acc / scale * width)  # cumulative rounding: the cells add up to the total
            cells += [(char, style)] * (end - done)
            done = end
        cells += [(" ", "")] * (width - len(cells))
        bar = Text()
        for i, (char, style) in enumerate(cells):
            if i == marker:
                bar.append("│", style="bold")
            over = i >= marker
            bar.append(char, style=f"{style} {'reverse' if over and char != ' ' else ''}".strip())
        if marker >= width:
            bar.append("│", style="bold")
        yield bar
        legend = Text()
        for (name, char, style), nbytes in zip(BAR_PARTS, self.parts, strict=True):
            if nbytes:
                legend.append(char, style=style)
                legend.append(f" {name} {size(nbytes)}  ")
        legend.append(f"│ {safe(self.label)} {size(self.vram)}", style="bold")
        yield legend


# --------------------------------------------------------------------------------------------------
# Estimate extras
# --------------------------------------------------------------------------------------------------
def batch_view(b: BatchAnswer) -> RenderableType:
    if not b.max_batch:
        return Text.from_markup(
            f"Largest batch at {b.context_tokens:,} tokens: [red]none[/] "
            f"(one sequence needs {size(b.total_bytes)} of {size(b.vram_bytes)}).",
            emoji=False,
        )
    return Text.from_markup(
        f"Largest batch at {b.context_tokens:,} tokens: [bold]{b.max_batch:,}[/] sequences ({size(b.total_bytes)}; "
        f"{b.max_batch + 1:,} would need {size(b.next_total_bytes)}); each sequence adds {size(b.per_sequence_bytes)}.",
        emoji=False,
    )


def split_view(s: Split, names: str) -> RenderableType:
    how = "tensor parallel" if s.kind == "tensor" else "layer split"
    # identical cards: their name is in the heading and their memory in the verdict below, not in two
    # columns repeated on every row (which made the table 95 columns wide)
    mixed = len({(c.gpu, c.vram_bytes) for c in s.cards}) > 1
    t = _table(
        "card",
        *(["gpu"] if mixed else []),
        "layers",
        "weights",
        "KV cache",
        "activations",
        "overhead",
        "total",
        *(["of"] if mixed else []),
        "fits",
        right=("layers", "weights", "KV cache", "activations", "overhead", "total", "of"),
    )
    for c in s.cards:
        if s.kind == "tensor":
            layers = f"1/{s.count} of {c.layers}"
        else:
            layers = f"{c.first_layer}..{(c.last_layer or '').split('.')[-1]}" if c.layers else "-"
            layers += " + output" if c.holds_output else ""
        t.add_row(
            str(c.index),
            *([escape(c.gpu)] if mixed else []),
            layers,
            size(c.weights_bytes),
            size(c.kv_bytes),
            size(c.activations_bytes),
            size(c.overhead_bytes),
            size(c.total_bytes),
            *([size(c.vram_bytes)] if mixed else []),
            _yes(c.fits),
        )
    head = Text.from_markup(f"[bold]Split over {escape(names)}[/] ({how}, context {s.context_tokens:,}):", emoji=False)
    if not s.valid:  # per-card figures would be meaningless
        lines: list[RenderableType] = [
            head,
            Text.from_markup(f"[red bold]CANNOT SPLIT[/] {how} over {s.count} cards:", emoji=False),
        ]
        lines += [Text(f"  {safe(p)}") for p in s.problems]
        return Group(*lines)
    lines = [head, Narrowable(t)]
    worst = max(s.cards, key=lambda c: c.total_bytes / c.vram_bytes)
    if s.fits:
        lines.append(
            Text.from_markup(
                f"[green bold]FITS[/] {how}: the fullest card holds {size(worst.total_bytes)} "
                f"of {size(worst.vram_bytes)}.",
                emoji=False,
            )
        )
    elif s.valid:
        lines.append(
            Text.from_markup(
                f"[red bold]DOES NOT FIT[/] {how}: card {worst.index} needs "
                f"{size(worst.total_bytes)} of {size(worst.vram_bytes)}.",
                emoji=False,
            )
        )
    if s.valid:
        at_limit = " (the model's window)" if s.max_context_tokens == s.context_limit_tokens else ""
        lines.append(
            Text(
                f"Largest context that fits on every card: {s.max_context_tokens:,} tokens{at_limit}."
                if s.max_context_tokens
                else _no_context("on every card")
            )
        )
    for n in s.notes:
        lines.append(Text(f"note: {safe(n)}", style="dim"))
    return Group(*lines)


def offload_view(o: Offload) -> RenderableType:
    lines: list[RenderableType] = []
    if not o.gpu_fits:
        lines.append(
            Text.from_markup(
                f"[red]Partial offload:[/] not even the part that stays on the GPU fits "
                f"({size(o.gpu_total_bytes)} of {size(o.vram_bytes)}: activations, runtime overhead and the weights "
                "outside the layers).",
                emoji=False,
            )
        )
        return Group(*lines)
    if o.output_on_gpu:
        head = (
            f"Offload (llama.cpp -ngl): every layer fits on the GPU ([bold]-ngl {o.n_gpu_layers}[/]); "
            f"only the token embeddings ({size(o.embeddings_bytes)}) stay in system memory, as llama.cpp "
            "keeps them."
        )
    else:
        head = (
            f"Partial offload (llama.cpp -ngl): [bold]{o.gpu_layers} of {o.layers}[/] repeating layers on the GPU "
            f"([bold]-ngl {o.n_gpu_layers}[/], the last layers), {o.layers - o.gpu_layers} and the output layer "
            "in system memory."
        )
    lines.append(Text.from_markup(head, emoji=False))
    more = f"; one more layer would add {size(o.next_bytes)}" if o.next_bytes else ""
    lines.append(
        Text(
            f"  GPU: {size(o.gpu_total_bytes)} of {size(o.vram_bytes)} (weights {size(o.gpu_weights_bytes)}, "
            f"KV {size(o.gpu_kv_bytes)}, activations {size(o.gpu_activations_bytes)}, overhead "
            f"{size(o.gpu_overhead_bytes)}){more}"
        )
    )
    lines.append(
        Text(
            f"  system memory: {size(o.system_bytes)} (weights {size(o.system_weights_bytes)}, "
            f"KV {size(o.system_kv_bytes)}), besides what the OS and the runtime use"
        )
    )
    return Group(*lines)


def speed_view(s: DecodeSpeed, fits: bool = True) -> RenderableType:
    """`fits` false: the model is not on the card, so the bound is for a card that would hold it."""
    batch = f"; batch {s.batch_size}: {s.tokens_per_s_batch:,.1f} tokens/s in all" if s.batch_size > 1 else ""
    caveat = (
        []
        if fits
        else [
            Text(
                "  it does not fit: this is for a card with this bandwidth and enough memory; "
                "--offload --speed counts the layers read from system memory",
                style="dim",
            )
        ]
    )
    return Group(
        Text.from_markup(
            f"Decode speed: at most [bold]{s.tokens_per_s:,.1f} tokens/s[/] per sequence (upper bound: "
            f"memory bandwidth / bytes read per token){batch}.",
            emoji=False,
        ),
        Text(f"  {s.formula}", style="dim"),
        Text(
            f"  per token: {s.weights_read_bytes / 10**9:.2f} GB of weights + {s.kv_read_bytes / 10**9:.2f} GB of "
            "KV cache; compute, kernel launches and communication only make it slower",
            style="dim",
        ),
        *caveat,
    )


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------
def engine_offload_view(
    ngl: int, n_layer: int, gpu: int, host: int, vram: int, flag: str, output_on_gpu: bool = False
) -> str:
    """--offload on an engine that places whole layers (llama.cpp -ngl, ollama num_gpu): the most that fit."""
    if ngl > n_layer:
        return f"Offload: everything fits on the GPU ({flag} {ngl}: {n_layer} layers and the output layer)."
    if ngl == 0 and gpu > vram:
        return f"Offload: not even {flag} 0 fits: the KV cache and compute buffers alone need {size(gpu)}."
    # which layers: since llama.cpp PR #18148 the output layer goes first, then ngl - 1 repeating layers
    on_gpu = (
        f"the output layer and the last {ngl - 1} repeating layers"
        if output_on_gpu
        else f"the last {ngl} repeating layers"
    )
    return (
        f"Offload: {flag} {ngl} of {n_layer + 1} fits ({on_gpu}): {size(gpu)} on the GPU of {size(vram)}, "
        f"{size(host)} in system memory."
    )


def engine_batch_view(n: int, context: int) -> str:
    """--max-batch on an engine's buffers: the most sequences of `context` positions (llama.cpp -np)."""
    if n:
        return f"Largest batch at context {context:,}: {n:,} sequences (llama.cpp -np {n} -c {n * context:,})"
    return f"Not even one sequence of {context:,} positions fits."


def expert_offload_view(n: int | None, n_layer: int, gpu: int = 0, host: int = 0) -> str:
    """The fewest --n-cpu-moe layers that make a mixture-of-experts model fit (None: not even --cpu-moe)."""
    if n is None:
        return f"Expert offload: even --cpu-moe (the experts of all {n_layer} layers in host memory) does not fit."
    return (
        f"  try --n-cpu-moe {n} (the experts of layers 0..{n - 1} in host memory): {size(gpu)} "
        f"on the GPU, {size(host)} in system memory."
    )


def ladder_view(ladder: Ladder, title: str) -> RenderableType:
    from .fit import runtime_overhead

    contexts = {row.context_tokens or ladder.context_tokens for row in ladder.rows}
    engines = list(dict.fromkeys(row.engine for row in ladder.rows))
    per_row = len(contexts) > 1
    cols = [
        "weights",
        "KV",
        *(["context"] if per_row else []),
        "weights size",
        "KV size",
        "total",
        "fits",
        "headroom",
        "max context",
        "max batch",
    ]
    t = _table(*cols, right=("context", "weights size", "KV size", "total", "headroom", "max context", "max batch"))
    for row in ladder.rows:
        t.add_row(
            row.dtype,
            row.kv_dtype,
            *([f"{row.context_tokens or ladder.context_tokens:,}"] if per_row else []),
            size(row.weights_bytes),
            size(row.kv_bytes),
            size(row.total_bytes),
            _yes(row.fits, row.verdict),
            size(row.headroom_bytes),
            _ctx(row.max_context_tokens),
            f"{row.max_batch:,}",
            style=None if row.fits else "dim",
        )
    best = ladder.best
    if best:
        label = (
            "[green bold]Best that fits[/]" if best.verdict != "tight" else "[yellow bold]Best that fits, tightly[/]"
        )
        verdict = (
            f"{label}: {best.dtype} weights with a {best.kv_dtype} KV cache "
            f"({size(best.total_bytes)}, largest context {_ctx(best.max_context_tokens)})."
        )
    else:
        verdict = "[red bold]Nothing on the ladder fits[/] at this context and batch."
    context = f"context {next(iter(contexts)):,}" if not per_row else "each engine's default context"
    head = f"{title}, {context}, batch {ladder.batch_size}" + (f", {ladder.beams} beams" if ladder.beams > 1 else "")

    # rows of several engines (GGUF types answer on llama.cpp): say which and what each total holds
    def types(engine: str) -> str:
        names = list(dict.fromkeys(r.dtype for r in ladder.rows if r.engine == engine))
        return ", ".join(names) if len(names) < 3 else f"{names[0]} to {names[-1]}"

    notes = [
        Text(f"{types(e)} on {e}: {runtime_overhead(e)}.", style="dim")
        for e in engines
        if len(engines) > 1 and runtime_overhead(e)
    ]
    return Group(
        Text(safe(head)),
        Narrowable(t),
        Text.from_markup(verdict, emoji=False),
        *notes,
        Text("Sizes in GiB = 2^30 bytes.", style="dim"),
    )


def gpus_view(table: GpuTable, model_name: str) -> RenderableType:
    t = _table(
        "gpu",
        "memory",
        "fits",
        "headroom",
        "max context",
        "cards (tensor parallel)",
        right=("memory", "headroom", "max context", "cards (tensor parallel)"),
    )
    for row in table.rows:
        t.add_row(
            escape(row.gpu),
            size(row.vram_bytes),
            _yes(row.fits, row.verdict),
            size(row.headroom_bytes),
            _ctx(row.max_context_tokens),
            str(row.cards_needed)
            if row.cards_needed
            else (
                "one Mac only"
                if "Apple" in row.name
                else f"more than {MAX_CARDS}"
                if table.engine in ("transformers", "llama.cpp", "vllm")
                else f"{table.engine}: one card"
            ),
            style=None if row.fits else "dim",
        )
    fitting = sum(r.fits for r in table.rows)
    head = (
        f"{model_name} ({table.model}): {size(table.total_bytes)} at context {table.context_tokens:,}, batch "
        f"{table.batch_size} ({table.dtype} weights, {table.kv_dtype} KV cache)"
    )
    return Group(
        Text(safe(head)),
        Narrowable(t),
        Text(f"{fitting} of {len(table.rows)} GPUs fit it on one card."),
        Text("Sizes in GiB = 2^30 bytes.", style="dim"),
    )


def count_view(c: CardCount, model_name: str, gpu_name: str) -> RenderableType:
    lines: list[RenderableType] = []
    if c.cards and c.split:
        worst = max(c.split.cards, key=lambda x: x.total_bytes)
        lines.append(
            Text.from_markup(
                f"{escape(model_name)} needs [bold]{c.cards} x {escape(gpu_name)}[/] (tensor parallel): "
                f"{size(worst.total_bytes)} of {size(c.vram_bytes)} per card.",
                emoji=False,
            )
        )
        lines.append(split_view(c.split, f"{c.cards} x {c.gpu}"))
    else:
        lines.append(
            Text.from_markup(
                f"[red bold]{escape(model_name)} does not fit[/] on up to {c.max_cards} x "
                f"{escape(gpu_name)} by tensor parallelism.",
                emoji=False,
            )
        )
    for s in c.skipped:
        lines.append(Text(f"skipped {s.replace(': ', ' cards: ', 1)}", style="dim"))
    return Group(*lines)


def sweep_view(sw: Sweep, title: str) -> RenderableType:
    cross = any(p.kv_cross_bytes for p in sw.points)
    state = any(p.state_bytes for p in sw.points)
    # an encoder used alone (CLIP, SigLIP) has no cache: no column of zeros as if it had an empty one
    no_cache = not (cross or state or any(p.kv_self_bytes for p in sw.points))
    cols = [
        "context",
        "weights",
        *([] if no_cache else ["KV self"]),
        *(["KV cross"] if cross else []),
        *(["state"] if state else []),
        "activations",
        "overhead",
        "total",
    ]
    if sw.vram_bytes is not None:
        cols.append("fits")
    t = _table(*cols, right=[c for c in cols if c != "fits"])
    for p in sw.points:
        row = [
            f"{p.context_tokens:,}",
            size(p.weights_bytes),
            *([] if no_cache else [size(p.kv_self_bytes)]),
            *([size(p.kv_cross_bytes)] if cross else []),
            *([size(p.state_bytes)] if state else []),
            size(p.activations_bytes),
            size(p.overhead_bytes),
            size(p.total_bytes),
        ]
        if p.fits is not None:
            row.append(_yes(p.fits))
        t.add_row(*row)
    lines: list[RenderableType] = [Text(safe(title)), Narrowable(t)]
    if no_cache:
        lines.append(
            Text(
                "No KV cache: the model is an encoder run once per input; a largest context does not "
                "apply (memory grows with --batch and --images)."
            )
        )
    elif sw.vram_bytes is not None and not sw.memory_bounds_context and sw.max_context_tokens:
        lines.append(
            Text(
                "Memory does not bound the context: no layer caches keys and values; the recurrent state "
                "is fixed, and only the prefill's activations grow with the prompt."
            )
        )
    elif sw.vram_bytes is not None:
        lines.append(
            Text(
                f"Largest context that fits in {size(sw.vram_bytes)}: {sw.max_context_tokens:,} tokens."
                if sw.max_context_tokens
                else _no_context(f"in {size(sw.vram_bytes)}")
            )
        )
    lines.append(Text("Sizes in GiB = 2^30 bytes.", style="dim"))
    return Group(*lines)


# --------------------------------------------------------------------------------------------------
# The plot (optional: pip install 'willitrun[plot]')
# --------------------------------------------------------------------------------------------------
PLOT_FORMATS = ("svg", "png")


def plot_sweep(sw: Sweep, path: Path, title: str) -> None:
    """A stacked area per component over the context (log2 axis) and the card's memory as a line."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise UsageError(f"--plot {path}: give a file ending in .svg or .png")
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'willitrun[plot]'") from None
    gib = float(1 << 30)
    xs = [p.context_tokens for p in sw.points]
    parts = [
        ("weights", [p.weights_bytes for p in sw.points]),
        ("KV self", [p.kv_self_bytes for p in sw.points]),
        ("KV cross", [p.kv_cross_bytes for p in sw.points]),
        ("activations", [p.activations_bytes for p in sw.points]),
        ("overhead", [p.overhead_bytes for p in sw.points]),
    ]
    shown = [(name, [v / gib for v in values]) for name, values in parts if any(values)]
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.stackplot(xs, *[v for _, v in shown], labels=[n for n, _ in shown], alpha=0.85)
    if sw.vram_bytes is not None:
        ax.axhline(sw.vram_bytes / gib, color="black", linestyle="--", label=f"memory {sw.vram_bytes / gib:.2f} GiB")
    if len(xs) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:,}" for x in xs], rotation=45)
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("memory (GiB = 2^30 bytes)")
    # Two lines: long GPU names fit. parse_math=False: a `$...$` in a model's name is text, not
    # matplotlib math (whose parser fails on it, or renders it as a formula).
    ax.set_title(safe(title).replace(", on ", ",\non "), fontsize="medium", parse_math=False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the plot, not over it
    ax.margins(x=0)
    # A fixed hash salt and no date: the same sweep writes the same SVG. Drawn in memory, then written
    # atomically (files.write_atomic): a full disk leaves no empty or half-written plot.
    import io

    from .files import write_atomic

    drawn = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "willitrun"}):
        fig.savefig(drawn, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    write_atomic(path, drawn.getvalue(), "plot")
