"""Hostile command lines: each answers at once with exit 2 and one line naming the option, never a
traceback, and nothing a user typed or a file holds reaches the terminal as a raw control sequence."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.errors import ExitCode

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


ESTIMATE = ("llama-2-7b", "--gpu", "rtx3090")
LLAMA_CPP = (*ESTIMATE, "--engine", "llama.cpp")
OFFLOAD = ("llama-2-70b", "--gpu", "rtx3090", "--offload", "--speed")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ((*ESTIMATE, "--context", str(10**400)), "--context"),  # an int beyond float range
        ((*ESTIMATE, "--context", "99999999999"), "--context"),
        ((*ESTIMATE, "--context", "²"), "--context"),  # a digit int() accepts
        ((*ESTIMATE, "--context", "٣"), "--context"),
        ((*ESTIMATE, "--context", "1e3"), "--context"),
        ((*ESTIMATE, "--batch", "0"), "--batch"),
        ((*ESTIMATE, "--batch", "4.5"), "--batch"),
        ((*ESTIMATE, "--beams", "-1"), "--beams"),
        ((*ESTIMATE, "--images", "-1"), "--images"),
        ((*ESTIMATE, "--encoder-tokens", "nan"), "--encoder-tokens"),
        (("llama-2-7b", "--gpu", "9" * 5000 + "xrtx3090"), "--gpu"),
        (("llama-2-7b", "--gpu", "65xrtx3090"), "--gpu"),
        (("llama-2-7b", "--gpu", "0xrtx3090"), "--gpu"),
        ((*LLAMA_CPP, "--parallel", "1000000000"), "--parallel"),
        ((*LLAMA_CPP, "--parallel", "4096", "--context", "8"), "--parallel"),
        ((*LLAMA_CPP, "--ubatch", "0"), "--ubatch"),
        ((*LLAMA_CPP, "--gpu-layers", "-3"), "--gpu-layers"),
        ((*ESTIMATE, "--engine", "vllm", "--gpu-memory-utilization", "1.5"), "--gpu-memory-utilization"),
        ((*ESTIMATE, "--engine", "vllm", "--gpu-memory-utilization", "inf"), "--gpu-memory-utilization"),
        ((*OFFLOAD, "--system-bandwidth", "nan"), "--system-bandwidth"),
        ((*OFFLOAD, "--system-bandwidth", "inf"), "--system-bandwidth"),
        ((*OFFLOAD, "--system-bandwidth", "-5"), "--system-bandwidth"),
        ((*OFFLOAD, "--system-bandwidth", "0"), "--system-bandwidth"),
        ((*OFFLOAD, "--system-bandwidth", "1e-300"), "--system-bandwidth"),
        (("llama-2-7b", "--vram", ""), "--vram"),
        (("llama-2-7b", "--vram", "9" * 5000), "--vram"),
        ((*ESTIMATE, "--image-size", "9999999x9999999"), "--image-size"),
        (("ladder", "llama-2-7b", "--vram", "24", "--context", str(2**64)), "--context"),
        (("gpus", "llama-2-7b", "--batch", "²"), "--batch"),
        (("sweep", "llama-2-7b", "--vram", "24", "--beams", "0"), "--beams"),
        (("check", "llama-2-7b", "--gpu", "rtx3090", "--context", "-1"), "--context"),
        ((*ESTIMATE, "--engine", "llamacpp"), "did you mean llama.cpp?"),
        ((*ESTIMATE, "--engine", ""), "unknown engine"),
        ((*ESTIMATE, "--ubatch", "64"), "--ubatch applies to llama.cpp or ollama; add --engine llama.cpp"),
        ((*ESTIMATE, "--gpu-memory-utilization", "0.5"), "applies to vllm; add --engine vllm"),
        ((*ESTIMATE, "--engine", "whisper.cpp", "--gpu-layers", "3"), "--gpu-layers does not apply to whisper.cpp"),
    ],
)
def test_bad_numbers_are_one_line_and_exit_2(args, names):
    start = time.perf_counter()
    r = run(*args)
    assert time.perf_counter() - start < 1.0
    assert r.exit_code == ExitCode.USAGE, (r.exit_code, r.output)
    assert r.stdout == "" and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert names in r.stderr
    assert len(r.stderr) < 300  # a 5,000-digit value is cut, not echoed


def test_engine_names_ignore_case():
    assert run(*ESTIMATE, "--engine", "VLLM", "-q").exit_code in (0, 1)
    assert run(*ESTIMATE, "--engine", "Llama.CPP", "-q").exit_code in (0, 1)


def test_long_model_name_is_not_a_crash():
    r = run("a" * 256, "--gpu", "rtx3090")  # probed as a path: ENAMETOOLONG
    assert r.exit_code == ExitCode.USAGE and "unknown model" in r.stderr


@pytest.mark.parametrize("name", ["\x1b[31mred", "\x1b]0;title\x07", "a\u202eb", "x\x9b2J"])
def test_control_characters_are_never_printed_raw(name):
    for args in ((name, "--gpu", "rtx3090"), ("llama-2-7b", "--gpu", name), ("llama-2-7b", "--vram", name)):
        r = run(*args)
        assert r.exit_code == ExitCode.USAGE
        assert not any(c in r.stderr for c in "\x1b\x07\u202e\x9b"), r.stderr


def test_spec_names_with_escapes_are_shown_escaped(tmp_path):
    """A name read from a spec file never reaches the terminal raw, whichever command prints it."""
    (tmp_path / "model_specs").mkdir()
    (tmp_path / "hardware_specs").mkdir()
    model = (ROOT / "model_specs" / "llama-2-7b.yaml").read_text()
    (tmp_path / "model_specs" / "evil.yaml").write_text(
        model.replace("id: llama-2-7b", "id: evil").replace(
            "name: Llama 2 7B", 'name: "Llama \\e[2J\\e]0;owned\\a [bold]"'
        )
    )
    gpu = (ROOT / "hardware_specs" / "rtx3090.yaml").read_text()
    (tmp_path / "hardware_specs" / "evil-gpu.yaml").write_text(
        gpu.replace('id: "rtx3090"', "id: evil-gpu").replace(
            'name: "NVIDIA GeForce RTX 3090"', 'name: "RTX \\e[31m\\u202e [red]"'
        )
    )
    for args in (
        ["evil", "--gpu", "evil-gpu"],
        ["evil", "--gpu", "2xevil-gpu"],
        ["list"],
        ["show", "evil"],
        ["ladder", "evil", "--gpu", "evil-gpu"],
        ["gpus", "evil"],
        ["gpus", "evil", "--count", "evil-gpu"],
        ["sweep", "evil", "--gpu", "evil-gpu"],
        ["check", "evil", "--gpu", "evil-gpu"],
    ):
        r = run(*args, "--specs-dir", tmp_path)
        assert r.exit_code in (0, 1), (args, r.output)
        assert not any(c in r.output for c in "\x1b\x07\u202e"), (args, r.output)
    r = run("evil", "--gpu", "evil-gpu", "--specs-dir", tmp_path)
    assert "Llama \\x1b[2J\\x1b]0;owned\\x07 [bold]" in r.stdout and "RTX \\x1b[31m\\u202e [red]" in r.stdout


def test_rows_file_hostile(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("llama-2-7b,rtx3090,²\n")
    r = run("check", "--rows", rows)
    assert r.exit_code == 2 and "rows.csv:1: context '²'" in r.stderr
    rows.write_text("x" * 10_000 + "\n")
    r = run("check", "--rows", rows)
    assert r.exit_code == 2 and "longer than 4,096 characters" in r.stderr
    for path in (tmp_path, Path(os.devnull)):
        r = run("check", "--rows", path)
        assert r.exit_code == 2 and "not a regular file" in r.stderr
    r = run("check", "--rows", tmp_path / "missing.csv")  # files.open_regular names it (was "not a regular file")
    assert r.exit_code == 2 and r.stderr.strip().endswith("missing.csv: no such file"), r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_rows_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run("check", "--rows", fifo)
    assert r.exit_code == 2 and "not a regular file" in r.stderr


def test_rows_file_of_100k_lines_streams(tmp_path):
    """Rows print as they are computed; identical rows and names are looked up once."""
    rows = tmp_path / "rows.csv"
    lines = [f"{m},{g},{c}" for m in ("llama-2-7b", "whisper-tiny") for g in ("rtx3090", "t4") for c in (256, 448)]
    rows.write_text("\n".join(lines * 12_500) + "\n")  # 100,000 lines
    start = time.perf_counter()
    r = run("check", "--rows", rows)
    elapsed = time.perf_counter() - start
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    assert len(out) == 100_001 and out[0].split() == [
        "model",
        "gpu",
        "context",
        "total",
        "memory",
        "verdict",
        "max",
        "context",
        "error",
    ]
    assert elapsed < 10, elapsed


def test_process_exit_codes_for_hostile_input():
    """Through the real entry point (the lean path included): exit 2, one line, well under a second."""
    env = {**os.environ, "NO_COLOR": "1"}
    for args in (
        ["llava-7b", "--gpu", "rtx3090", "--context", str(10**400)],
        ["llama-2-7b", "--vram", ""],
        ["-q", "a" * 256, "--gpu", "rtx3090"],
        ["llama-2-7b", "--gpu", "9" * 5000 + "xrtx3090"],
    ):
        p = subprocess.run([sys.executable, "-m", "willitrun", *args], capture_output=True, text=True, env=env)
        assert p.returncode == 2, (args[:2], p.stderr)
        assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_closed_pipe_keeps_the_exit_code(tmp_path, extra):
    """`willitrun check --rows FILE | head -1`: the reader leaves; the answer (all fit: 0) stands, not 1."""
    rows = tmp_path / "rows.csv"
    # up to 2,000 tokens: every row FITS (from about 2,950 the headroom is inside the measured error: TIGHT)
    rows.write_text("".join(f"llama-2-7b,t4,{n}\n" for n in range(1, 2001)))
    with subprocess.Popen(
        [sys.executable, "-m", "willitrun", "check", "--rows", str(rows), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as p:
        assert p.stdout is not None and p.stderr is not None
        p.stdout.readline()
        p.stdout.close()
        assert p.wait(timeout=60) == 0
        assert b"Traceback" not in p.stderr.read()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["llama-2-7b", "--dtype", "q4_0", "--vram", "8", "--llamacpp-version", "bogus"],
            "error: --llamacpp-version 'bogus': choose one of 2023-12,",
        ),
        (
            ["llama-2-7b", "--vram", "80", "-e", "vllm", "--vllm-version", "bogus"],
            "error: --vllm-version 'bogus': choose one of",
        ),
        (
            ["llama-2-7b", "--vram", "8", "-e", "vllm", "-tp", "3"],
            "error: --tensor-parallel-size 3: attention heads (32)",
        ),
        (
            ["llama-2-7b", "--vram", "80", "--max-num-seqs", "4"],
            "error: --max-num-seqs applies to vllm; add --engine vllm",
        ),
    ],
)
def test_engine_option_errors_name_the_flag(args, expected):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and r.stderr.startswith(expected), r.stderr
