"""`willitrun check`: several model/GPU pairs, from arguments or a rows file, printed as computed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ...errors import UsageError
from .. import parse
from ..options import Context, Dtype, Engine, KvDtype, SpecsDir, command_app

app = command_app()
Row = tuple[str, str, Optional[int]]
MAX_LINE = 4096  # characters in one rows-file line; model and GPU names are far shorter
COLUMNS = ("model", "gpu", "context", "total", "memory", "verdict", "max context")
LEFT = {"model", "gpu", "verdict"}


@app.command("check")
def check_cmd(
    models: Annotated[Optional[list[str]], typer.Argument(metavar="[MODEL]...", show_default=False, help="Model ids or aliases.")] = None,
    gpus: Annotated[Optional[list[str]], typer.Option("--gpu", "-g", metavar="GPU", show_default=False, help="GPU id (repeatable); every model is checked on every GPU.")] = None,
    rows: Annotated[Optional[Path], typer.Option("--rows", metavar="FILE", show_default=False, help="File of `model,gpu[,context]` lines to check (# comments allowed), read and printed a line at a time.")] = None,
    context: Context = None,
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    engine: Engine = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line (the --json schema of an estimate).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; exit 0 only if every check fits.")] = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Check several model/GPU pairs at once; exit 0 only if all fit, 1 if any does not, 5 if any is tight."""
    import gc

    from ...catalog import load_catalog

    gc.freeze()  # main() starts with the collector off; a long rows file needs it, not for start-up's objects
    gc.enable()
    ctx = parse.whole("--context", context)
    if (models or gpus) and not (models and gpus):
        raise UsageError("give MODEL... together with --gpu (or use --rows FILE)")
    if not models and rows is None:
        raise UsageError("nothing to check: give MODEL... --gpu GPU..., or --rows FILE")
    pairs: list[Row] = [(m, g, ctx) for m in models or [] for g in gpus or []]
    from ...dtypes import default_engine

    eng = parse.engine(engine) or default_engine(dtype)
    checks = Checks(load_catalog(specs_dir), dtype, kv_dtype, ctx, eng)
    results = checks.run(_chain(read_rows(rows), pairs) if rows is not None else iter(pairs))
    printer = None if quiet else (_print_json if json_out else TablePrinter())
    code = 0  # fit.worst: 1 if any row does not fit, else 5 if any is tight, else 0
    for result in results:
        row_code = verdict_of(result[2]).exit_code
        code = row_code if row_code == 1 or code == 0 else code
        if printer is not None:
            printer(result)
    if isinstance(printer, TablePrinter):
        printer.flush()
    raise typer.Exit(code)


_VERDICTS: dict[int, Any] = {}  # id(fit) -> its verdict: identical rows share one fit object (Checks.fits)


def verdict_of(f: Any) -> Any:
    """fit.verdict(f), judged once per distinct fit (a rows file repeats pairs; Checks keeps each fit alive)."""
    v = _VERDICTS.get(id(f))
    if v is None or v[0] is not f:
        from ...fit import verdict

        v = _VERDICTS[id(f)] = (f, verdict(f))
    return v[1]


def _chain(first: Iterator[Row], then: list[Row]) -> Iterator[Row]:
    yield from first
    yield from then


class Checks:
    """check_fit for each row; specs, GPUs and identical rows are looked up once."""

    def __init__(self, cat: Any, dtype: Optional[str], kv_dtype: Optional[str], context: Optional[int],
                 engine: str = "transformers") -> None:
        self.cat, self.dtype, self.kv_dtype, self.context, self.engine = cat, dtype, kv_dtype, context, engine
        self.specs: dict[tuple[str, str], Any] = {}
        self.resolved: dict[str, Any] = {}  # resolve() once per model: the type is the same for every row
        self.searched: dict[tuple[str, int], tuple[int, int]] = {}
        self.fits: dict[tuple[str, str, Optional[int]], Any] = {}

    def lookup(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self.specs:
            self.specs[key] = self.cat.resolve(kind, name)
        return self.specs[key]

    def run(self, rows: Any) -> Iterator[tuple[Any, Any, Any]]:
        from ...engines import EngineFit, engine_estimate, engine_fit
        from ...fit import check_fit
        from ...memory import Request, resolve

        for model, gpu, ctx in rows:
            spec, card = self.lookup("model", model), self.lookup("gpu", gpu)
            key = (spec.id, card.id, ctx if ctx is not None else self.context)
            if key not in self.fits:
                req = Request(context=key[2], dtype=self.dtype, kv_dtype=self.kv_dtype)
                if self.engine == "transformers":
                    if spec.id not in self.resolved:
                        self.resolved[spec.id] = resolve(spec, req)
                    self.fits[key] = check_fit(spec, req, card.capacity_bytes, card.id, suggest=False,
                                               resolved=self.resolved[spec.id])
                else:  # the largest context depends on the model and the memory only: searched once per pair
                    from ...answers import engine_options
                    from ...engines.registry import engine_class

                    search = (spec.id, card.capacity_bytes)
                    options = engine_options(self.engine, card.capacity_bytes, card.name)  # as the main command's
                    # an engine that sizes itself from the card (vLLM) states its own largest context
                    if search in self.searched and not engine_class(self.engine).sized_by_card:
                        est = engine_estimate(spec, req, self.engine, options)
                        self.fits[key] = EngineFit(est, card.capacity_bytes, *self.searched[search])
                    else:
                        f = engine_fit(spec, req, self.engine, options, card.capacity_bytes)
                        self.searched[search] = (f.max_context_tokens, f.context_limit)
                        self.fits[key] = f
            yield spec, card, self.fits[key]


def read_rows(path: Path) -> Iterator[Row]:
    """Rows `model,gpu[,context]` from a regular file, a line at a time; blank lines and # comments skipped."""
    import io

    from ...files import open_regular
    from ...render import safe

    shown = safe(str(path))
    try:  # files.open_regular: regular files only, checked on the descriptor read (a FIFO never blocks)
        f = io.TextIOWrapper(open_regular(path, "rows file", UsageError), encoding="utf-8", newline=None)
    except UsageError as exc:
        raise UsageError(f"--rows {exc}") from None
    seen = False
    with f:
        n = 0
        while True:
            try:
                line = f.readline(MAX_LINE + 1)
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--rows {shown}: cannot read: {exc}") from None
            if not line:
                break
            n += 1
            if len(line) > MAX_LINE:
                raise UsageError(f"{shown}:{n}: line longer than {MAX_LINE:,} characters")
            row = _row(shown, n, line)
            if row is not None:
                seen = True
                yield row
    if not seen:
        raise UsageError(f"--rows {shown}: no rows")


def _row(shown: str, n: int, line: str) -> Optional[Row]:
    from ...render import safe

    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    parts = [p.strip() for p in line.split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"{shown}:{n}: expected model,gpu[,context], got {safe(line)!r}")
    if len(parts) == 2:
        return parts[0], parts[1], None
    bound = parse.BOUNDS["--context"]
    digits = parts[2]
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 12 and bound.low <= int(digits) <= bound.high):
        raise UsageError(f"{shown}:{n}: context {safe(digits)!r} is not a whole number of at least 1 "
                         f"and at most {bound.high:,.0f}")
    return parts[0], parts[1], int(digits)


def _print_json(result: tuple[Any, Any, Any]) -> None:
    from ...render import answer_dict, write

    _, card, f = result
    data = answer_dict(f, card.id, judged=verdict_of(f))
    write(json.dumps({**data, "gpu_name": card.name}) + "\n")


class TablePrinter:
    """Aligned columns without rich: the first rows set the widths, then each row prints as computed
    (a rows file of 100,000 lines starts printing at once instead of after the last)."""

    HOLD = 200  # rows held back to measure the columns

    def __init__(self) -> None:
        self.held: list[list[str]] = []
        self.widths: Optional[list[int]] = None

    def __call__(self, result: tuple[Any, Any, Any]) -> None:
        from ...archs import geometry
        from ...render import safe, size

        spec, card, f = result
        # a pure state-space model: no KV cache grows, so memory does not bound the context; an encoder
        # used alone (CLIP, SigLIP) has no cache at all, so a largest context means nothing
        g = geometry(spec)
        unbounded = f.fits and not g.cache_grows_with_context
        v = verdict_of(f)
        cells = [safe(spec.id), safe(card.id), f"{f.estimate.context_tokens:,}", size(f.total_bytes),
                 size(f.vram_bytes), {"fits": "fits", "tight": "TIGHT"}.get(v.status, "DOES NOT FIT"),
                 "n/a (no KV cache)" if g.encoder_only else "unbounded" if unbounded else f"{f.max_context_tokens:,}"]
        if self.widths is None:
            self.held.append(cells)
            if len(self.held) >= self.HOLD:
                self.flush()
        else:
            self._write(cells)

    def flush(self) -> None:
        if self.widths is None:
            self.widths = [max(len(c) for c in col) for col in zip(COLUMNS, *self.held, strict=True)]
            self._write(list(COLUMNS))
            for cells in self.held:
                self._write(cells)
            self.held = []
        try:
            sys.stdout.flush()  # rows reach a reader (`| head`, a pager) as they are computed
        except BrokenPipeError:
            from ...render import silence_stdout

            silence_stdout()  # the reader is gone; the exit code still counts every row

    def _write(self, cells: list[str]) -> None:
        from ...render import write

        assert self.widths is not None
        text = "  ".join(c.ljust(w) if name in LEFT else c.rjust(w)
                         for name, c, w in zip(COLUMNS, cells, self.widths, strict=True))
        write(text.rstrip() + "\n")
