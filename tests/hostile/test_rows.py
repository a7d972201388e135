"""`check --rows` (issue 17 section 1): one bad row no longer aborts the batch.

Before: the first row with an impossible context stopped 10,000 rows with exit 2. Now every row is
answered: a row that cannot be checked says why in its own row (the `error` column of the table, an
`error` field in its JSON line), naming `file:line:`; the exit code is 0 if every row fits, 1 if some
do not, and the first failed row's code (2, or 3 for a bad spec) if any row could not be checked.
A CSV header line is skipped. Rows stream: memos are bounded, so 10^6 distinct rows need no more memory
than 10^4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from willitrun import load_catalog
from willitrun.cli import app
from willitrun.cli import checks as check
from willitrun.errors import ExitCode

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


BAD = [
    ("nope,t4", "unknown model 'nope'"),
    ("llama-2-7b,nope-gpu", "unknown GPU 'nope-gpu'"),
    ("whisper-tiny,t4,1024", "whisper-tiny has learned positions for 448 tokens: --context 1024 is impossible"),
    ("llama-2-7b", "expected model,gpu[,context], got 'llama-2-7b'"),
    ("llama-2-7b,t4,\u00b2", "context '\u00b2' is not a whole number"),
    ("llama-2-7b,t4,0", "context '0' is not a whole number of at least 1"),
    ("x" * 10_000, "line longer than 4,096 characters"),
    ("a,b,c,d", "expected model,gpu[,context]"),
]


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A good row, every kind of bad row, a good row after them."""
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "\n".join(
            ["model,gpu,context", "llama-3.2-1b,rtx3090,4096", *(b for b, _ in BAD), "# a comment", "llama-2-70b,t4"]
        )
        + "\n"
    )
    return rows


def test_every_row_is_answered_in_the_table(mixed):
    r = run("check", "--rows", mixed)
    assert r.exit_code == ExitCode.USAGE, r.output
    out = r.stdout.splitlines()
    assert out[0].split()[-1] == "error"
    assert len(out) == 1 + 1 + len(BAD) + 1  # header, every row, the last good one too
    assert out[1].split()[:2] == ["llama-3.2-1b", "rtx3090"] and "fits" in out[1]
    for n, (line, (_, says)) in enumerate(zip(out[2:-1], BAD, strict=True), start=3):
        assert " ERROR " in line and f"rows.csv:{n}: {says}" in line, line
        assert len(line) < 300
    assert out[-1].split()[:2] == ["llama-2-70b", "t4"] and "DOES NOT FIT" in out[-1]
    assert (
        r.stderr == f"error: {mixed}:3: unknown model 'nope'; see `willitrun list` ({len(BAD) - 1} more rows "
        "could not be checked: see their error)\n"
    )


def test_every_row_is_answered_in_json_lines(mixed):
    r = run("check", "--rows", mixed, "--json")
    assert r.exit_code == ExitCode.USAGE
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(BAD) + 2
    assert lines[0]["fits"] is True and lines[0]["error"] is None and lines[-1]["fits"] is False
    for n, (d, (_, says)) in enumerate(zip(lines[1:-1], BAD, strict=True), start=3):
        assert (
            d["fits"] is None and d["exit_code"] == 2 and d["error"].startswith(f"{mixed}:{n}: ") and says in d["error"]
        )
    assert (lines[1]["model"], lines[1]["gpu"]) == ("nope", "t4")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("llama-3.2-1b,rtx3090\nwhisper-tiny,t4\n", ExitCode.FITS),
        ("llama-3.2-1b,rtx3090\nllama-2-70b,t4\n", ExitCode.DOES_NOT_FIT),
        ("llama-2-70b,t4\nnope,t4\n", ExitCode.USAGE),
        ("Model, GPU\nllama-3.2-1b,rtx3090\n", ExitCode.FITS),  # a header, any case and spacing
        ("# comment first\nmodel,gpu,context\nllama-3.2-1b,rtx3090,512\n", ExitCode.FITS),
        ("llama-3.2-1b,rtx3090\nmodel,gpu\n", ExitCode.USAGE),  # only the first row may be a header
    ],
)
def test_exit_codes(tmp_path, text, code):
    rows = tmp_path / "rows.csv"
    rows.write_text(text)
    r = run("check", "--rows", rows, "-q")
    assert r.exit_code == code, r.output


def test_a_bad_user_spec_is_its_row_with_exit_3(tmp_path):
    (tmp_path / "model_specs").mkdir()
    (tmp_path / "model_specs" / "broken.yaml").write_text("id: broken\narchitecture: llama\n")
    rows = tmp_path / "rows.csv"
    rows.write_text("broken,t4\nllama-3.2-1b,rtx3090\n")
    r = run("check", "--rows", rows, "--specs-dir", tmp_path, "--json")
    assert r.exit_code == ExitCode.SPEC
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert first["exit_code"] == 3 and "broken.yaml" in first["error"] and second["fits"] is True


def test_command_line_pairs_report_errors_without_a_file(tmp_path):
    r = run("check", "llama-3.2-1b", "nope", "--gpu", "rtx3090", "--json")
    assert r.exit_code == ExitCode.USAGE
    good, bad = (json.loads(x) for x in r.stdout.splitlines())
    assert good["fits"] is True and bad["error"] == "unknown model 'nope'; see `willitrun list`"


def test_memos_are_bounded(monkeypatch, capsys):
    """Distinct rows do not pile up: every memo is cleared at check.MEMO entries (a 10^6-row file of
    distinct contexts held every Fit before)."""
    monkeypatch.setattr(check, "MEMO", 8)
    checks = check.Checks(load_catalog(), None, None, None)
    printer = check.JsonPrinter()
    rows = (check.Row(f"r:{n}", "llama-3.2-1b", "rtx3090", n) for n in range(1, 60))
    contexts = []
    for outcome in checks.run(rows):
        assert outcome.error is None
        printer(outcome)
        assert len(checks.fits) <= 8 and len(checks.specs) <= 8 and len(printer.lines) <= 8
    for line in capsys.readouterr().out.splitlines():
        contexts.append(json.loads(line)["context_tokens"])
    assert contexts == list(range(1, 60))


def test_identical_rows_print_identical_lines(tmp_path, monkeypatch):
    """The JSON line of a fit is serialised once and reused; it is the line a fresh run prints."""
    monkeypatch.setattr(check, "MEMO", 3)  # evictions happen: a reused id must never print another fit
    rows = tmp_path / "rows.csv"
    pairs = [
        "llama-3.2-1b,rtx3090,512",
        "llama-3.2-1b,t4,1024",
        "whisper-tiny,t4",
        "llava-7b,rtx4090,2048",
        "mistral-7b,a100-80gb,4096",
    ]
    rows.write_text("\n".join(pairs * 20) + "\n")
    r = run("check", "--rows", rows, "--json")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 100 and lines == lines[:5] * 20
    for pair, line in zip(pairs, lines[:5], strict=True):
        model, gpu, *ctx = pair.split(",")
        alone = run("check", model, "--gpu", gpu, *(["--context", ctx[0]] if ctx else []), "--json")
        its, mine = json.loads(alone.stdout), json.loads(line)
        assert mine == {**{k: its.get(k) for k in mine}, "schema_version": 3}


ROW_KEYS = [
    "schema_version",
    "model",
    "gpu",
    "context_tokens",
    "verdict",
    "fits",
    "total_bytes",
    "headroom_bytes",
    "max_context_tokens",
    "error",
    "exit_code",
]


@pytest.mark.parametrize("engine", ["transformers", "llama.cpp"])
def test_the_compact_row_has_the_whole_objects_values_for_every_catalog_model(engine):
    """`check --rows --json` prints a compact row (docs/json-output.md, schema_version 3): for every
    catalog model on a card it fits and one it does not, its keys hold the values of the whole object
    (render.answer_dict, what `check MODEL --gpu GPU --json` prints)."""
    from willitrun.render import answer_dict

    cat = load_catalog()
    checks = check.Checks(cat, None, None, None, engine)
    rows = [check.Row(None, m, g, None) for m in cat.files("model") for g in ("h100-80gb", "t4")]
    seen = set()
    for outcome in checks.run(rows):
        if outcome.error is not None:  # an engine that refuses the model: the same error object either way
            continue
        row = check.row_dict(outcome)
        assert list(row) == ROW_KEYS and row["schema_version"] == 3 and row["error"] is None
        whole = answer_dict(outcome.fit, outcome.card.id, judged=check.verdict_of(outcome.fit))
        assert {k: row[k] for k in ROW_KEYS[1:-2]} == {k: whole[k] for k in ROW_KEYS[1:-2]}, outcome.row
        assert row["exit_code"] == whole["exit_code"]
        seen.add((row["verdict"], outcome.row.model))
    assert {"fits", "does_not_fit"} <= {v for v, _ in seen} and len({m for _, m in seen}) > 100


def test_json_rows_are_bounded(tmp_path):
    """10,000 rows of --json print ~250 bytes each (the whole object, ~2 KB a row, made 10^6 rows 2.8 GB)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"llama-3.2-1b,rtx3090,{n}\n" for n in range(1, 10_001)))
    r = run("check", "--rows", rows, "--json")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 10_000 and len(r.stdout) < 300 * 10_000
    assert [json.loads(x)["context_tokens"] for x in lines[:3]] == [1, 2, 3]
