"""What people see, true and usable (issue 17 §2): `-q` on the answer commands, a missing path
named as missing, and `--context`'s documented bound equal to the enforced one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.cli.parse import BOUNDS

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"


def run(*args: str):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1"})


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("ladder", "llama-3.1-8b", "--gpu", "rtx4090"), 0),
        # 405B fits no rung on 12 GiB at a context given (without one, llama.cpp's --fit rows run it offloaded)
        (("ladder", "llama-3.1-405b", "--gpu", "rtx3060", "-c", "4096"), 1),
        (("ladder", "llama-3.1-405b", "--gpu", "rtx3060"), 0),
        (("gpus", "llama-3.1-8b"), 0),
        (("gpus", "llama-3.1-70b", "--count", "rtx4090"), 0),
        (("sweep", "llama-3.1-8b", "--gpu", "rtx4090"), 0),
        (("sweep", "llama-3.1-70b", "--gpu", "rtx3060"), 1),  # 131 GiB of bf16 weights on 12 GiB
    ],
)
def test_quiet_prints_nothing_and_the_exit_code_answers(args: tuple[str, ...], code: int) -> None:
    loud = run(*args)
    assert loud.exit_code == code and loud.stdout
    for flag in ("-q", "--quiet"):
        r = run(*args, flag)
        assert r.exit_code == code
        assert r.stdout == ""


@pytest.mark.parametrize("model", ["./nope.gguf", "nope/config.json", "missing.gguf", "./models/", "/no/such/dir"])
@pytest.mark.parametrize(
    ("command", "options"), [((), ("--gpu", "rtx4090")), (("gpus",), ()), (("sweep",), ("--gpu", "rtx4090"))]
)
def test_a_missing_path_is_no_such_file(
    model: str, command: tuple[str, ...], options: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = run(*command, model, *options)
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {model!r}: no such file or directory"


def test_an_unknown_catalog_name_is_still_unknown_model() -> None:
    r = run("llama-3.1-9b", "--gpu", "rtx4090")  # dots, but a catalog-looking name, not a path
    assert r.exit_code == 2
    assert r.stderr.startswith("error: unknown model 'llama-3.1-9b'")


def _readme_bound(option: str) -> str:
    row = next(line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{option}`"))
    return row.rsplit("|", 2)[-2].strip()


def _spelled(n: float) -> str:
    """A power of two from 2^16 up as the README and --help write it (2^24); others with thousands separators."""
    n = int(n)
    if n >= 1 << 16 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return f"{n:,}"


def test_the_documented_context_bound_is_the_enforced_one() -> None:
    bound = BOUNDS["--context"]
    expected = f"whole number, {_spelled(bound.low)} to {_spelled(bound.high)}"
    assert _readme_bound("--context") == expected
    help_text = run("estimate", "--help").stdout
    assert re.search(rf"1 to\s+{re.escape(_spelled(bound.high))}", help_text)
    over = run("llama-3.1-8b", "--gpu", "rtx4090", "--context", str(int(bound.high) + 1))
    assert over.exit_code == 2 and f"at most {int(bound.high):,}" in over.stderr
    at = run("llama-3.1-8b", "--gpu", "rtx4090", "--context", str(int(bound.high)), "--json")
    assert at.exit_code in (0, 1), at.stderr  # the bound itself is accepted


@pytest.mark.parametrize(
    ("arg", "path"),
    [
        ("./x.gguf", True),
        ("../x", True),
        ("/models/x", True),
        ("~/x", True),
        ("dir/", True),
        ("x.gguf", True),
        ("config.json", True),
        ("dir/config.json", True),
        ("x.yaml", True),
        ("llama-3.1-8b", False),
        ("qwen3:8b", False),
        ("Qwen/Qwen3-8B", False),
        ("Qwen/Qwen3-8B-GGUF:Q4_K_M", False),
        ("Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf", False),
        ("hf:ORG/NAME", False),
        ("https://host/x.gguf", False),
    ],
)
def test_what_is_written_as_a_path(arg: str, path: bool) -> None:
    """A path is reported missing; a catalog id, an ollama name, an HF name (sources/names.py forms)
    or a URL goes on to be resolved and says what is missing itself."""
    from willitrun.cli.models import _path_like

    assert _path_like(arg) is path
