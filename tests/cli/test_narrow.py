"""What people see at 80 columns (issue 17 §2): `ladder`, `gpus`, `gpus --count` and the cluster
tables keep every value whole on one line, nothing is cut off with an ellipsis, and no sentence
says "none tokens". Run as a process with COLUMNS=80, as a terminal of that width would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SIZE = re.compile(r"-?\d[\d,]*\.\d+ (GiB|MiB)")
# the context column: llama.cpp's rows answer at the context its --fit picks for the card, the others at 4,096
ONE_LINE_HEADER = r"^weights +KV +ctx +weights size +KV size +total +fits +headroom +max context +max batch$"


def run(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "willitrun", *args], capture_output=True, text=True, env=env, timeout=120
    )


def assert_narrow(lines: list[str], rows: list[str], sizes_per_row: int) -> None:
    """Every line within 80 columns, no cell cut short, and each row of the table on one line with
    its sizes whole ("14.96 GiB", never "14.96" over "GiB")."""
    assert [line for line in lines if len(line.rstrip()) > 80] == []
    assert not any("…" in line for line in lines)
    assert rows, "no table rows found"
    for row in rows:
        assert len(SIZE.findall(row)) >= sizes_per_row, row
    assert not any(line.strip() in ("GiB", "MiB") or re.fullmatch(r"[\sGiMB]+", line) for line in lines if line.strip())


@pytest.mark.parametrize("model,gpu", [("llama-3.1-8b", "rtx4060-ti-16gb"), ("llama-3.1-405b", "h100-sxm")])
def test_ladder_at_80_columns(model: str, gpu: str) -> None:
    r = run("ladder", model, "--gpu", gpu)
    assert r.returncode in (0, 1), r.stderr
    lines = r.stdout.splitlines()
    rows = [line for line in lines if re.match(r"(bf16|fp16|fp8|int8|q\d\w*)\s+(f16|q8_0|q4_0)\s", line)]
    assert len(rows) == 30  # 10 weight types x 3 KV types (fit.LADDER_WEIGHTS, KV f16/q8_0/q4_0)
    assert_narrow(lines, rows, sizes_per_row=4)  # weights, KV, total, headroom


def test_gpus_and_gpus_count_at_80_columns() -> None:
    r = run("gpus", "llama-3.1-8b")
    assert r.returncode in (0, 1), r.stderr
    lines = r.stdout.splitlines()
    assert_narrow(lines, [line for line in lines if re.match(r"rtx|h100|a100", line)], sizes_per_row=2)
    r = run("gpus", "llama-3.1-70b", "--count", "rtx4090")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    table = [line for line in lines if re.match(r"\d+\s+1/8 of 80", line)]
    assert len(table) == 8  # the eight cards tensor parallelism needs (80 layers, 64 heads, 8 KV heads)
    # notes below the table are sentences, wrapped at spaces; the table is what must stay whole
    assert_narrow(lines, table, sizes_per_row=5)  # weights, KV cache, activations, overhead, total


def test_cluster_tables_at_80_columns() -> None:
    r = run("llama-3.1-405b", "--gpu", "16xh100-sxm", "--gpus-per-node", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # the commands are printed whole, on purpose, to be copied: the tables are what must fit
    start = next(i for i, line in enumerate(lines) if line.startswith("layouts"))
    end = next(i for i, line in enumerate(lines) if line.startswith("FITS"))
    tables = lines[start:end]
    ranks = [line for line in tables if re.match(r"\d+ \(\d+(-\d+)?\)", line)]
    # one row per pipeline stage of the plan with the most KV tokens: PP 4 at 0.33 (its Triton sampler is 2 GiB on
    # the last stage; 0.10's sorting one, 4.96 GiB, favours PP 8: docs/cluster.md)
    assert len(ranks) == 4
    assert_narrow(tables, ranks, sizes_per_row=5)


def test_wide_terminals_keep_the_one_line_headers() -> None:
    r = run("ladder", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb", columns=120)
    assert re.search(ONE_LINE_HEADER, r.stdout, re.MULTILINE)


@pytest.mark.parametrize(
    "args,sentence",
    [
        (("sweep", "llama-3.1-70b", "--gpu", "rtx3060"), "No context length fits in 12.00 GiB."),
        (("llama-3.1-70b", "--gpu", "rtx3060", "--gpu", "rtx3090"), "No context length fits on every card."),
    ],
)
def test_no_none_tokens(args: tuple[str, ...], sentence: str) -> None:
    """70B in bf16 (131 GiB of weights) fits no context on a 12 GiB card nor on 12 + 24 GiB."""
    r = run(*args, columns=120)
    assert r.returncode == 1, r.stderr
    assert sentence in r.stdout
    assert "none tokens" not in r.stdout


def test_columns_is_read_at_each_command_not_once_per_process() -> None:
    """A command run with COLUMNS=80 and then one without it in the same process (a test session, a
    library caller): the second gets the 120 columns of piped output again."""
    from typer.testing import CliRunner

    from willitrun.cli import app

    runner = CliRunner()
    args = ["ladder", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb"]
    narrow = runner.invoke(app, args, env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    wide = runner.invoke(app, args, env={"NO_COLOR": "1", "COLUMNS": None})
    assert re.search(ONE_LINE_HEADER, wide.stdout, re.MULTILINE)
