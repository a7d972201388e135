"""Tables that stay readable on a narrow terminal: one wrapper any rich table can go through.

rich fits a too-wide table by narrowing its widest columns first, so "14.96 GiB" breaks over two
lines or a last column is cut to "max"; `Narrowable` keeps short values whole and lets the headers
wrap instead. Used by the answers' tables (render_answers.py) and the multi-node plan (cli/cluster.py).
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

SHORT_CELL = 12  # "14.96 GiB", "-205.0 MiB", "1/8 of 80", "more than 64": values, never broken


class Narrowable:
    """A table that stays readable on a narrow terminal (80 columns). rich narrows the widest columns
    first and breaks "14.96 GiB" over two lines, or cuts a column off. When the table is wider than
    the terminal, each column whose cells are all short values is set to its longest value (and its
    header's longest word), so the headers wrap at their spaces ("weights" over "size"), each row
    stays one line, and only columns of running text wrap. Wide terminals see the table unchanged."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        t = self.table
        cells: list[list[RenderableType]] = [
            [Text.from_markup(c, emoji=False) if isinstance(c, str) else c for c in col.cells] for col in t.columns
        ]
        for col, parsed in zip(t.columns, cells, strict=True):
            # the cells as parsed here: rich would parse each markup string again to measure it and again to
            # render it (the same Text: Table.highlight is off, and a Text is never highlighted); ~15 % of a
            # 30-row ladder's rendering
            col._cells = parsed
        lengths = [[c.cell_len if isinstance(c, Text) else options.max_width for c in col] for col in cells]
        headers = [Text.from_markup(str(col.header), emoji=False).plain for col in t.columns]
        natural = sum(max([len(h), *ls]) for h, ls in zip(headers, lengths, strict=True)) + 2 * (len(t.columns) - 1)
        if natural > options.max_width:
            compact = 0
            for col, header, ls in zip(t.columns, headers, lengths, strict=True):
                words = max((len(w) for w in header.split()), default=0)
                if ls and max(ls) <= SHORT_CELL:
                    col.width = max(*ls, words)
                compact += col.width or words
            if compact + 2 * (len(t.columns) - 1) > options.max_width:
                t.padding = (0, 1, 0, 0)  # still too wide: one space between columns instead of two
        yield t
