"""What `willitrun check` does once its arguments are read: several model/GPU pairs, from arguments or
a rows file, printed as computed. No typer here: the typer command (cli/commands/check.py) and the
lean path (cli/lean.py) both fill a `CheckArgs` and call `run_check`, so they cannot disagree."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

from ..errors import UsageError, WillItRunError
from . import parse

MAX_LINE = 4096  # characters in one rows-file line; model and GPU names are far shorter
COLUMNS = ("model", "gpu", "context", "total", "memory", "verdict", "max context", "error")
LEFT = {"model", "gpu", "verdict", "error"}
HEADERS = (["model", "gpu"], ["model", "gpu", "context"])  # a CSV header line, skipped
# Memos of Checks, cleared when they reach this many entries: a rows file of 10^6 distinct rows
# streams in bounded memory; the catalog's every model x every GPU (~100 x ~60) stays within one memo.
MEMO = 1 << 15


@dataclass
class CheckArgs:
    """The check command's options as typed (text: cli/parse.py bounds the numbers)."""

    models: list[str] | None = None
    gpus: list[str] | None = None
    rows: Path | None = None
    context: str | None = None
    dtype: str | None = None
    kv_dtype: str | None = None
    engine: str | None = None
    json_out: bool = False
    quiet: bool = False
    specs_dir: list[Path] | None = None


class Row(NamedTuple):
    """One pair to check; `where` is `file:line` for a rows-file line (None for MODEL... --gpu)."""

    where: Optional[str]
    model: str
    gpu: str
    context: Optional[int]
    error: Optional[WillItRunError] = None  # a line that could not be read as a row


class Outcome(NamedTuple):
    """A row's answer: its fit, or the error that kept it from one (with where it was)."""

    row: Row
    spec: Any
    card: Any
    fit: Any
    error: Optional[WillItRunError] = None

    @property
    def message(self) -> str:
        from ..files import safe_text

        text = safe_text(self.error)
        return f"{self.row.where}: {text}" if self.row.where else text


def run_check(args: CheckArgs, records: bool = False) -> int:
    """Check every pair; the exit code: 0 only if all fit, 1 if any does not, 5 if any is tight, the
    first failed row's (2, or 3 for a spec error) if any row could not be checked (each says why).

    `records`: the spec classes are the pydantic-free stand-ins (willitrun/records.py), which raise
    NeedsPydantic when a spec must be validated after all (a spec not in the catalog cache yet). Rows
    stream, so some may have been printed by then: the exception carries how many characters
    (`printed`), and the command started again with pydantic skips that many (SKIP_ENV), which are the
    same characters (both modes answer byte for byte alike: tests/cli/test_records.py)."""
    import gc

    from ..catalog import load_catalog

    gc.freeze()  # main() starts with the collector off; a long rows file needs it, not for start-up's objects
    gc.enable()
    models, gpus, rows = args.models, args.gpus, args.rows
    ctx = parse.whole("--context", args.context)
    if (models or gpus) and not (models and gpus):
        raise UsageError("give MODEL... together with --gpu (or use --rows FILE)")
    if not models and rows is None:
        raise UsageError("nothing to check: give MODEL... --gpu GPU..., or --rows FILE")
    pairs = [Row(None, m, g, ctx) for m in models or [] for g in gpus or []]
    from ..dtypes import default_engine

    eng = parse.engine(args.engine) or default_engine(args.dtype)
    checks = Checks(load_catalog(args.specs_dir), args.dtype, args.kv_dtype, ctx, eng)
    outcomes: Any = checks.run(_chain(read_rows(rows, ctx), pairs) if rows is not None else iter(pairs))
    printer = (
        None
        if args.quiet
        else (
            RowPrinter() if args.json_out and rows is not None else JsonPrinter() if args.json_out else TablePrinter()
        )
    )
    output = None
    if printer is not None:
        import os

        output = printer.write = Output(printer.write, int(os.environ.pop(SKIP_ENV, "0") or 0))
    codes: dict[str, int] = {}
    code, failed, first = 0, 0, None  # fit.worst: 1 if any row does not fit, else 5 if any is tight, else 0
    try:
        for outcome in outcomes:
            if outcome.error is not None:
                failed += 1
                first = first or outcome
            else:
                status = verdict_of(outcome.fit).status
                row_code = codes.get(status)
                if row_code is None:  # Verdict.exit_code is a function of the status: one per status
                    row_code = codes[status] = verdict_of(outcome.fit).exit_code
                code = row_code if row_code == 1 or code == 0 else code
            if printer is not None:
                printer(outcome)
        if isinstance(printer, TablePrinter):
            printer.flush()
    except Exception as exc:
        from ..records import NeedsPydantic

        if records and isinstance(exc, NeedsPydantic):
            exc.printed = output.count if output is not None else 0  # type: ignore[attr-defined]
        raise
    checks.cat.keep_derived()  # the next command over these models skips their tensor inventories
    if first is not None:
        from ..render import error

        more = f" ({failed - 1:,} more rows could not be checked: see their error)" if failed > 1 else ""
        error(f"{first.message}{more}")
        return int(first.error.exit_code)
    return code


# "N": the first N characters of the output were printed by a run that had to start again with pydantic
SKIP_ENV = "_WILLITRUN_CHECK_PRINTED"


class Output:
    """A printer's writes, counted; the first `skip` characters (printed by the run this one replaces)
    are not written again."""

    def __init__(self, write: Any, skip: int = 0) -> None:
        self.base, self.skip, self.count = write, max(skip, 0), 0

    def __call__(self, text: str) -> None:
        self.count += len(text)
        if self.skip:
            if len(text) <= self.skip:
                self.skip -= len(text)
                return
            text, self.skip = text[self.skip :], 0
        self.base(text)


_VERDICTS: dict[int, Any] = {}  # id(fit) -> its verdict: identical rows share one fit object (Checks.fits)
# (total, memory) -> the verdict of a transformers Fit: fit.verdict(f) is judge(f.total_bytes,
# Memory(f.vram_bytes), "transformers"), a function of those two numbers, shared by every row that has them
_JUDGED: dict[tuple[int, int], Any] = {}


_FIT: list[Any] = []  # fit.Fit, imported at the first verdict (an import statement per row costs)


def verdict_of(f: Any) -> Any:
    """fit.verdict(f), judged once per distinct fit (a rows file repeats pairs; Checks keeps each fit
    alive), and once per (total, memory) for transformers."""
    if not _FIT:
        from ..fit import Fit

        _FIT.append(Fit)
    if type(f) is _FIT[0]:
        key = (f.estimate.total_bytes, f.vram_bytes)
        judged = _JUDGED.get(key)
        if judged is None:
            from ..fit import verdict

            if len(_JUDGED) >= MEMO:
                _JUDGED.clear()
            judged = _JUDGED[key] = verdict(f)
        return judged
    v = _VERDICTS.get(id(f))
    if v is None or v[0] is not f:
        from ..fit import verdict

        if len(_VERDICTS) >= MEMO:  # bounded, as Checks' memos are
            _VERDICTS.clear()
        v = _VERDICTS[id(f)] = (f, verdict(f))
    return v[1]


def _chain(first: Iterator[Row], then: list[Row]) -> Iterator[Row]:
    yield from first
    yield from then


class Checks:
    """check_fit for each row; specs, GPUs and identical rows are looked up once (in bounded memos)."""

    def __init__(
        self,
        cat: Any,
        dtype: Optional[str],
        kv_dtype: Optional[str],
        context: Optional[int],
        engine: str = "transformers",
    ) -> None:
        from ..fit import Fit
        from ..memory import Request, context_limit, default_context, estimate_resolved, max_context, resolve

        self.cat, self.dtype, self.kv_dtype, self.context, self.engine = cat, dtype, kv_dtype, context, engine
        # bound once: an import statement per row costs as much as the rest of a new row's lookups
        self._fit, self._request, self._resolve = Fit, Request, resolve
        self._default_context, self._context_limit = default_context, context_limit
        self._estimate, self._max_context = estimate_resolved, max_context
        self.specs: dict[tuple[str, str], Any] = {}
        self.resolved: dict[str, Any] = {}  # resolve() once per model: the type is the same for every row
        self.requests: dict[Optional[int], Any] = {}  # context -> Request (the other fields are the command's)
        self.capacity: dict[str, int] = {}  # card id -> its capacity_bytes
        self.defaults: dict[str, int] = {}  # model -> its default context
        self.searched: dict[tuple[str, int], tuple[int, int]] = {}
        self.fits: dict[tuple[str, str, Optional[int]], Any] = {}
        self.estimates: dict[tuple[str, int], tuple[Any, int]] = {}  # (model, context) -> (estimate, limit)
        self.largest: dict[tuple[str, int, int], int] = {}  # (model, memory, limit) -> largest context
        self.totals: dict[str, dict[int, int]] = {}  # model -> context -> total bytes (memory.max_context)

    def lookup(self, kind: str, name: str) -> Any:
        key = (kind, name)
        spec = self.specs.get(key)
        if spec is None:
            if len(self.specs) >= MEMO:
                self.specs.clear()
            spec = self.specs[key] = self.cat.resolve(kind, name)
        return spec

    def run(self, rows: Any) -> Iterator[Outcome]:
        """An Outcome per row, in order: a row's own error (unknown name, impossible context, a bad
        spec) is its answer, and the next row is checked."""
        for row in rows:
            if row.error is not None:
                yield Outcome(row, None, None, None, row.error)
                continue
            try:
                spec, card, fit = self.check(row)
            except WillItRunError as exc:
                yield Outcome(row, None, None, None, exc)
            else:
                yield Outcome(row, spec, card, fit)

    def transformers_fit(self, spec: Any, card: Any, req: Any, context: Optional[int]) -> Any:
        """fit.check_fit(spec, req, card's memory, card.id, suggest=False), its parts shared between rows:
        the estimate at a context does not depend on the card, and the largest context depends on the
        model and the card's memory only (not its name): each is computed once per command."""
        model = spec.id
        r = self.resolved[model]
        at = context
        if at is None:
            at = self.defaults.get(model)
            if at is None:
                if len(self.defaults) >= MEMO:
                    self.defaults.clear()
                at = self.defaults[model] = self._default_context(r)
        held = self.estimates.get((model, at))
        if held is None:
            if len(self.estimates) >= MEMO:
                self.estimates.clear()
            # an impossible context raises here (the row's own error) and is not kept
            held = self.estimates[model, at] = (
                self._estimate(r, at, req.batch, req.beams),
                self._context_limit(r, at),
            )
        est, limit = held
        memory = self.capacity.get(card.id)
        if memory is None:
            if len(self.capacity) >= MEMO:
                self.capacity.clear()
            memory = self.capacity[card.id] = card.capacity_bytes
        search = (model, memory, limit)
        n = self.largest.get(search)
        if n is None:
            if len(self.largest) >= MEMO:
                self.largest.clear()
            if len(self.totals) >= MEMO:
                self.totals.clear()
            totals = self.totals.setdefault(model, {})
            if len(totals) >= MEMO:
                totals.clear()
            n = self.largest[search] = self._max_context(r, memory, req.batch, req.beams, limit, totals)
        return self._fit(est, card.id, memory, n, limit, ())

    def check(self, row: Row) -> tuple[Any, Any, Any]:
        spec, card = self.lookup("model", row.model), self.lookup("gpu", row.gpu)
        context = row.context if row.context is not None else self.context
        key = (spec.id, card.id, context)
        f = self.fits.get(key)
        if f is not None:  # a repeated row costs two dict hits
            return spec, card, f
        if len(self.fits) >= MEMO:
            self.fits.clear()
        req = self.requests.get(context)
        if req is None:
            if len(self.requests) >= MEMO:
                self.requests.clear()
            req = self.requests[context] = self._request(context=context, dtype=self.dtype, kv_dtype=self.kv_dtype)
        if self.engine == "transformers":
            if spec.id not in self.resolved:
                if len(self.resolved) >= MEMO:
                    self.resolved.clear()
                self.resolved[spec.id] = self._resolve(spec, req)
            f = self.fits[key] = self.transformers_fit(spec, card, req, context)
            return spec, card, f
        # the largest context depends on the model and the memory only: searched once per pair
        from ..answers import engine_options
        from ..engines import EngineFit, engine_estimate, engine_fit
        from ..engines.registry import engine_class

        search = (spec.id, card.capacity_bytes)
        options = engine_options(self.engine, card.capacity_bytes, card.name)  # as the main command's
        # an engine that sizes itself from the card (vLLM) states its own largest context
        if search in self.searched and not engine_class(self.engine).sized_by_card:
            est = engine_estimate(spec, req, self.engine, options)
            f = self.fits[key] = EngineFit(est, card.capacity_bytes, *self.searched[search])
        else:
            f = self.fits[key] = engine_fit(spec, req, self.engine, options, card.capacity_bytes)
            self.searched[search] = (f.max_context_tokens, f.context_limit)
        return spec, card, f


def read_rows(path: Path, context: Optional[int] = None) -> Iterator[Row]:
    """Rows `model,gpu[,context]` from a regular file, a line at a time; blank lines, # comments and a
    header line (`model,gpu[,context]`) skipped. A line that is not a row is a Row carrying its error."""
    import io

    from ..files import open_regular
    from ..render import safe

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
                n += 1
                long = len(line) > MAX_LINE and not line.endswith("\n")
                while long and (rest := f.readline(MAX_LINE + 1)) and not rest.endswith("\n"):
                    pass  # the rest of an over-long line, read in bounded pieces and dropped
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--rows {shown}:{n}: cannot read: {exc}") from None
            if not line:
                break
            where = f"{shown}:{n}"
            if long:
                yield Row(where, "", "", None, UsageError(f"line longer than {MAX_LINE:,} characters"))
                seen = True
                continue
            try:
                row = _row(where, line, header=not seen)
            except UsageError as exc:
                row = Row(where, "", "", None, exc)
            if row is not None:
                seen = True
                yield (
                    row._replace(context=context)
                    if context is not None and row.context is None and row.error is None
                    else row
                )
    if not seen:
        raise UsageError(f"--rows {shown}: no rows")


def _row(where: str, line: str, header: bool = False) -> Optional[Row]:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    parts = [p.strip() for p in line.split(",")]
    if header and [p.lower() for p in parts] in HEADERS:
        return None
    if len(parts) not in (2, 3) or not all(parts):
        from ..errors import clip
        from ..render import safe

        raise UsageError(f"expected model,gpu[,context], got {clip(safe(repr(line)))}")
    if len(parts) == 2:
        return Row(where, parts[0], parts[1], None)
    bound = parse.BOUNDS["--context"]
    digits = parts[2]
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 12 and bound.low <= int(digits) <= bound.high):
        from ..errors import clip
        from ..render import safe

        return Row(
            where,
            parts[0],
            parts[1],
            None,
            UsageError(
                f"context {clip(safe(repr(digits)))} is not a whole number of at least 1 and at most {bound.high:,.0f}"
            ),
        )
    return Row(where, parts[0], parts[1], int(digits))


class JsonPrinter:
    """One JSON line per row. Identical rows share one fit object (Checks.fits), so its line is
    serialised once (~2 KB of JSON: most of a repeated row's cost otherwise)."""

    def __init__(self) -> None:
        from ..render import write

        self.write = write  # bound once: an import statement per row costs as much as a memo hit
        self.lines: dict[int, tuple[Any, str]] = {}  # id(fit) -> (fit, its line); the fit kept so its id stays its own

    def __call__(self, outcome: Outcome) -> None:
        write = self.write
        if outcome.error is not None:
            row = outcome.row
            data = {
                "model": row.model or None,
                "gpu": row.gpu or None,
                "context_tokens": row.context,
                "fits": None,
                "error": outcome.message,
                "exit_code": int(outcome.error.exit_code),
            }
            write(json.dumps(data) + "\n")
            return
        card, f = outcome.card, outcome.fit
        held = self.lines.get(id(f))
        if held is None or held[0] is not f:
            from ..render import answer_dict

            if len(self.lines) >= MEMO:
                self.lines.clear()
            d = answer_dict(f, card.id, judged=verdict_of(f))
            held = self.lines[id(f)] = (f, json.dumps({**d, "gpu_name": card.name}) + "\n")
        write(held[1])


ROW_SCHEMA_VERSION = 3  # docs/json-output.md, "check --rows --json": the compact row (2 is the whole object)


class RowPrinter:
    """`check --rows --json`: one compact JSON line per row (docs/json-output.md): the row's answer in
    eleven keys, ~250 bytes, where the whole estimate object is ~2 KB (10^6 rows printed 2.8 GB). The
    single pair (`check MODEL --gpu GPU --json`) keeps the whole object (JsonPrinter)."""

    def __init__(self) -> None:
        from ..render import write

        self.write = write
        self.lines: dict[int, tuple[Any, str]] = {}  # id(fit) -> (fit, its line), as JsonPrinter's

    def __call__(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            row = outcome.row
            self.write(
                json.dumps(
                    {
                        "schema_version": ROW_SCHEMA_VERSION,
                        "model": row.model or None,
                        "gpu": row.gpu or None,
                        "context_tokens": row.context,
                        "verdict": None,
                        "fits": None,
                        "total_bytes": None,
                        "headroom_bytes": None,
                        "max_context_tokens": None,
                        "error": outcome.message,
                        "exit_code": int(outcome.error.exit_code),
                    }
                )
                + "\n"
            )
            return
        f = outcome.fit
        held = self.lines.get(id(f))
        if held is None or held[0] is not f:
            if len(self.lines) >= MEMO:
                self.lines.clear()
            held = self.lines[id(f)] = (f, json.dumps(row_dict(outcome)) + "\n")
        self.write(held[1])


def row_dict(outcome: Outcome) -> dict[str, Any]:
    """A checked row's compact object: the keys of the whole object (render.answer_dict) that answer
    it, with the same values (tests/hostile/test_rows.py compares them for every catalog model)."""
    spec, card, f = outcome.spec, outcome.card, outcome.fit
    v = verdict_of(f)
    return {
        "schema_version": ROW_SCHEMA_VERSION,
        "model": spec.id,
        "gpu": card.id,
        "context_tokens": f.estimate.context_tokens,
        "verdict": v.status,
        "fits": f.fits,
        "total_bytes": f.total_bytes,
        "headroom_bytes": f.headroom_bytes,
        "max_context_tokens": f.max_context_tokens,
        "error": None,
        "exit_code": v.exit_code,
    }


class TablePrinter:
    """Aligned columns without rich: the first rows set the widths, then each row prints as computed
    (a rows file of 100,000 lines starts printing at once instead of after the last)."""

    HOLD = 200  # rows held back to measure the columns

    def __init__(self) -> None:
        from ..render import write

        self.write = write  # bound once, as JsonPrinter's
        self.held: list[list[str]] = []
        # id(fit) -> (fit, its cells): identical rows share one fit object (Checks.fits), so its cells are
        # made once; the fit is kept so its id stays its own
        self.cells: dict[int, tuple[Any, list[str]]] = {}
        self.widths: Optional[list[int]] = None
        self.line = ""  # the row's format once the widths are known
        # what a row's cells share with other rows: a model's id and cache kind, a card's id, a size's text
        self.models: dict[str, tuple[str, bool, bool]] = {}
        self.cards: dict[str, str] = {}
        self.sizes: dict[int, str] = {}

    def __call__(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            from ..errors import clip
            from ..render import safe

            row = outcome.row
            cells = [
                clip(safe(row.model), 40) or "-",
                clip(safe(row.gpu), 40) or "-",
                f"{row.context:,}" if row.context is not None else "-",
                "-",
                "-",
                "ERROR",
                "-",
                outcome.message,
            ]
        else:
            held = self.cells.get(id(outcome.fit))
            if held is None or held[0] is not outcome.fit:
                if len(self.cells) >= MEMO:
                    self.cells.clear()
                held = self.cells[id(outcome.fit)] = (outcome.fit, self._cells(outcome))
            cells = held[1]
        if self.widths is None:
            self.held.append(cells)
            if len(self.held) >= self.HOLD:
                self.flush()
        else:
            self._write(cells)

    def _size(self, n: int) -> str:
        text = self.sizes.get(n)
        if text is None:
            from ..render import size

            if len(self.sizes) >= MEMO:
                self.sizes.clear()
            text = self.sizes[n] = size(n)
        return text

    def _cells(self, outcome: Outcome) -> list[str]:
        """A checked row's cells: a function of its fit alone (the fit holds the card's id and memory)."""
        spec, card, f = outcome.spec, outcome.card, outcome.fit
        model = self.models.get(spec.id)
        if model is None:
            from ..archs import geometry
            from ..render import safe

            g = geometry(spec)
            if len(self.models) >= MEMO:
                self.models.clear()
            model = self.models[spec.id] = (safe(spec.id), g.encoder_only, g.cache_grows_with_context)
        card_id = self.cards.get(card.id)
        if card_id is None:
            from ..render import safe

            if len(self.cards) >= MEMO:
                self.cards.clear()
            card_id = self.cards[card.id] = safe(card.id)
        shown, encoder_only, grows = model
        # a pure state-space model: no KV cache grows, so memory does not bound the context; an encoder
        # used alone (CLIP, SigLIP) has no cache at all, so a largest context means nothing
        unbounded = f.fits and not grows
        v = verdict_of(f)
        return [
            shown,
            card_id,
            f"{f.estimate.context_tokens:,}",
            self._size(f.total_bytes),
            self._size(f.vram_bytes),
            {"fits": "fits", "tight": "TIGHT"}.get(v.status, "DOES NOT FIT"),
            "n/a (no KV cache)" if encoder_only else "unbounded" if unbounded else f"{f.max_context_tokens:,}",
            "",
        ]

    def flush(self) -> None:
        if self.widths is None:
            self.widths = [max(len(c) for c in col) for col in zip(COLUMNS, *self.held, strict=True)]
            self.widths[-1] = 0  # the error, last: never padded
            # str.ljust / str.rjust as one format: "{:<w}" pads as ljust(w) does, "{:>w}" as rjust(w)
            self.line = "  ".join(
                "{}" if name == COLUMNS[-1] else f"{{:{'<' if name in LEFT else '>'}{w}}}"
                for name, w in zip(COLUMNS, self.widths, strict=True)
            )
            self._write(list(COLUMNS))
            for cells in self.held:
                self._write(cells)
            self.held = []
        try:
            sys.stdout.flush()  # rows reach a reader (`| head`, a pager) as they are computed
        except BrokenPipeError:
            from ..render import silence_stdout

            silence_stdout()  # the reader is gone; the exit code still counts every row

    def _write(self, cells: list[str]) -> None:
        self.write(self.line.format(*cells).rstrip() + "\n")
