"""`check --rows` shares work between rows (issue 17 §3): the estimate at a context once per model, the
largest context once per (model, memory), the search solved by interpolation. None of it may change an
answer: every row equals the answer computed alone, and the interpolated search equals the bisection."""

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from willitrun import load_catalog
from willitrun.cli import app
from willitrun.cli.checks import Checks, Row
from willitrun.fit import check_fit
from willitrun.memory import Request, context_limit, default_context, largest, largest_within, resolve

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


def _cards(cat, n):
    """n catalog GPUs of distinct memory, smallest to largest (so some rows fit and some do not)."""
    by_memory = {g.capacity_bytes: g for g in cat.gpus()}
    sizes = sorted(by_memory)
    return [by_memory[sizes[i * (len(sizes) - 1) // (n - 1)]] for i in range(n)]


def test_every_row_equals_check_fit_alone():
    """Every catalog model on GPUs from the smallest to the largest memory, shuffled, repeated and at a
    few contexts, through one Checks (its memos shared): each fit equals fit.check_fit of that row alone."""
    cat = load_catalog()
    cards = _cards(cat, 6)
    rng = random.Random(17)
    rows = [Row(None, m.id, g.id, None) for m in cat.models() for g in cards]
    rows += [r._replace(context=rng.choice([512, 4096, 32768])) for r in rng.sample(rows, 80)]
    rows += rng.sample(rows, 60)  # repeated rows: answered from the memo
    rng.shuffle(rows)
    checks = Checks(cat, None, None, None)
    compared = errors = 0
    for outcome in checks.run(rows):
        row = outcome.row
        spec, card = cat.resolve("model", row.model), cat.resolve("gpu", row.gpu)
        req = Request(context=row.context)
        try:
            alone = check_fit(spec, req, card.capacity_bytes, card.id, suggest=False)
        except Exception as exc:  # an impossible context: the row carries the same error
            assert outcome.error is not None and str(exc) in str(outcome.error), row
            errors += 1
            continue
        assert outcome.error is None, (row, outcome.error)
        assert outcome.fit == alone, row
        compared += 1
    assert compared > 600 and errors < 80  # the rows were really answered, not all refused


def test_rows_file_prints_what_each_check_prints(tmp_path):
    """A rows file's JSON lines and table rows are, line for line, what `check MODEL --gpu G` prints alone."""
    cat = load_catalog()
    cards = _cards(cat, 4)
    rng = random.Random(3)
    models = [m.id for m in cat.models()]
    pairs = [(m, cards[i % len(cards)].id, None) for i, m in enumerate(rng.sample(models, 24))]
    pairs += [(m, g, 2048) for m, g, _ in pairs[:4]] + pairs[:6]  # a context of its own; repeats
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"{m},{g}" + (f",{c}" if c else "") + "\n" for m, g, c in pairs))
    together = run("check", "--rows", rows, "--json")
    assert together.exit_code in (0, 1, 2, 5), together.stderr  # 2: a context too short for a model's images
    lines = together.stdout.splitlines()
    assert len(lines) == len(pairs)
    for line, (m, g, c) in zip(lines, pairs, strict=True):
        alone = run("check", m, "--gpu", g, "--json", *(["--context", c] if c else []))
        mine, its = json.loads(line), json.loads(alone.stdout)
        # a rows file prints the compact row (schema_version 3): the whole object's values of its keys
        assert mine.pop("schema_version") == 3 and its.pop("schema_version", 2) == 2
        if mine["error"] is not None:  # the rows file's error names file:line; the rest is the same
            assert mine.pop("error").endswith(its.pop("error")), (m, g, c)
        assert mine == {k: its.get(k) for k in mine}, (m, g, c)
    table = run("check", "--rows", rows).stdout.splitlines()[1:]
    for line, (m, g, c) in zip(table, pairs, strict=True):
        alone = run("check", m, "--gpu", g, *(["--context", c] if c else [])).stdout.splitlines()[1]
        mine, its = line.split(), alone.split()
        if "ERROR" in mine:  # file:line before the same message
            mine.pop(7)
        assert mine == its, (m, g, c)


def test_interpolated_search_equals_bisection_on_the_catalog():
    """memory.max_context (largest_within) against largest()'s bisection for every catalog model on
    cards from 2 GB to the largest catalog GPU: the same largest context."""
    cat = load_catalog()
    budgets = [2 << 30, 7 << 30] + [g.capacity_bytes for g in _cards(cat, 4)]
    for spec in cat.models():
        r = resolve(spec, Request())
        limit = context_limit(r, default_context(r))

        def total(n, r=r):
            from willitrun.memory import _total

            return _total(r, n, 1, 1)

        for budget in budgets:
            bisected = largest(lambda n, b=budget: total(n) <= b, r.image_tokens + 1, limit)
            assert largest_within(total, budget, r.image_tokens + 1, limit) == bisected, (spec.id, budget)


@st.composite
def _monotone(draw):
    """A total that never falls as n grows: affine pieces (some flat), steps and rounding, as engines' are."""
    pieces = draw(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 10**6)), min_size=1, max_size=5))
    base = draw(st.integers(0, 10**9))
    step = draw(st.integers(1, 4096))

    def total(n: int) -> int:
        t, start = base, 0
        for width, slope in pieces:
            t += slope * max(0, min(n, start + width) - start)
            start += width
        return t + pieces[-1][1] * max(0, n - start) + (n // step) * step  # the last piece goes on

    return total


@settings(max_examples=300, deadline=None)
@given(
    _monotone(),
    st.integers(0, 2 * 10**10),
    st.integers(1, 100),
    st.integers(0, 20000),
)
def test_interpolated_search_equals_bisection(total, budget, lo, span):
    """For any total that never falls as n grows, the interpolated search answers as the bisection."""
    hi = lo + span
    assert largest_within(total, budget, lo, hi) == largest(lambda n: total(n) <= budget, lo, hi)


def test_interpolated_search_is_few_probes_when_affine():
    """An affine total (a full-attention KV cache) is answered in at most four estimates, not ~30."""
    calls = []

    def total(n: int) -> int:
        calls.append(n)
        return 15 * 2**30 + 131072 * n

    n = largest_within(total, 24 * 2**30, 1, 1 << 20)
    assert total(n) <= 24 * 2**30 < total(n + 1)
    assert len(calls) <= 4 + 2
