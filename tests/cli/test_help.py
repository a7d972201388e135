"""Every command has -h and --help, and what the help says is what the command does."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.cli.parse import BOUNDS
from willitrun.cli.registry import COMMANDS

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def help_of(*args: str) -> str:
    r = runner.invoke(app, [*args], prog_name="willitrun", env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.mark.parametrize("command", [None, *COMMANDS])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_has_help(command, flag):
    text = help_of(*([command] if command else []), flag)
    assert text.startswith(f"Usage: willitrun {command or ''}".rstrip())
    # readable metavars: no typer type labels, no {required} braces
    assert not re.search(r"\{[A-Za-z_]+\}|<[a-z\[\]]+>|\b(TEXT|INTEGER|FLOAT|BOOLEAN)\b", text), text


def test_root_help_lists_every_command_with_its_docstring():
    text = " ".join(help_of("--help").split())
    for name, line in COMMANDS.items():
        module = importlib.import_module(f"willitrun.cli.commands.{name.replace('import', 'import_')}")
        (info,) = module.app.registered_commands
        assert info.name == name
        assert " ".join(info.callback.__doc__.split("\n\n")[0].split()) == line, name
        assert f"{name} {line}" in text


def test_options_before_the_model():
    assert help_of("-q", "llava-7b", "-h") == help_of("estimate", "-h")


def test_bounds_in_help_are_the_bounds_enforced():
    text = " ".join(help_of("estimate", "-h").split())
    shown = {
        "--context": "1 to 2^24",
        "--batch": "1 to 2^20",
        "--beams": "1 to 1024",
        "--images": "0 to 1024",
        "--encoder-tokens": "1 to 2^20",
        "--parallel": "1 to 4096",
        "--gpu-memory-utilization": "0.01 to 1",
    }
    for option, words in shown.items():
        low, high = words.split(" to ")
        value = 2 ** int(high[2:]) if high.startswith("2^") else float(high)
        assert (BOUNDS[option].low, BOUNDS[option].high) == (float(low), value), option
        # the option may be followed by the engines' own spellings (-c, --context, --max-model-len, ... N)
        assert re.search(rf"{option}(?:, -[\w-]+)* \S+ [^[]{{0,120}}?{re.escape(words)}", text), option


def test_readme_names_every_estimate_option():
    readme = (ROOT / "README.md").read_text()
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_of("estimate", "-h")))
    missing = sorted(o for o in options - {"--help", "--no-flash-attn"} if o not in readme)
    assert not missing, missing


def test_version_short_and_long():
    for flag in ("-V", "--version"):
        assert help_of(flag).startswith("willitrun ")


def test_docs_command_points_at_files_that_exist():
    lines = help_of("docs").splitlines()
    paths = [Path(line.split("  (")[0]) for line in lines if "  (" in line]
    assert len(paths) >= 4 and all(p.is_file() for p in paths), paths


def test_no_arguments_prints_the_help():
    r = runner.invoke(app, [], prog_name="willitrun", env={"NO_COLOR": "1"})
    assert r.exit_code == 2
    assert r.stderr.startswith("Usage: willitrun [OPTIONS] COMMAND") and "Commands:" in r.stderr


def test_shell_completion_knows_commands_and_options():
    env = {**os.environ, "_WILLITRUN_COMPLETE": "complete_bash", "COMP_WORDS": "willitrun ch", "COMP_CWORD": "1"}
    p = subprocess.run([sys.executable, "-m", "willitrun"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.split() == ["check"]
    env.update(COMP_WORDS="willitrun llava-7b --con", COMP_CWORD="2")
    p = subprocess.run([sys.executable, "-m", "willitrun"], capture_output=True, text=True, env=env)
    assert p.stdout.split() == ["--context"]
