"""Shell completion (issue 17 §2): `--install-completion zsh` installs zsh's script whatever shell
runs the command, and completion offers catalog model ids, GPU ids (keeping a `2x` count) and
engine names, on every command. Run as a process, as the shell runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from willitrun import load_catalog
from willitrun.dtypes import ENGINE_ALIASES, ENGINES

SRC = Path(__file__).resolve().parents[2] / "src"


def run(*args: str, home: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1", "SHELL": "/bin/bash", **env}
    if home is not None:
        full["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "willitrun", *args], capture_output=True, text=True, env=full, timeout=120
    )


def completions(line: str) -> list[str]:
    """What zsh is offered for the last word of `line` (typer's zsh protocol: `_arguments` with the
    values quoted, or `_files` when there is nothing)."""
    r = run(_WILLITRUN_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS=line)
    assert r.returncode == 0, r.stderr
    return re.findall(r'"([^"]*)"', r.stdout)


@pytest.mark.parametrize(
    "shell,path,marker",
    [
        ("zsh", ".zfunc/_willitrun", "#compdef willitrun"),
        ("fish", ".config/fish/completions/willitrun.fish", "complete --command willitrun"),
        ("bash", ".bash_completions/willitrun.sh", "_willitrun_completion"),
    ],
)
def test_install_completion_installs_the_shell_named(shell: str, path: str, marker: str, tmp_path: Path) -> None:
    """The shell running the command is bash (SHELL=/bin/bash): the one named still wins."""
    r = run("--install-completion", shell, home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{shell} completion installed in {tmp_path / path}" in r.stdout
    assert marker in (tmp_path / path).read_text()
    others = {".zfunc", ".bash_completions", ".config"} - {Path(path).parts[0]}
    assert not any((tmp_path / o).exists() for o in others)


def test_show_completion_prints_the_shell_named(tmp_path: Path) -> None:
    r = run("--show-completion", "zsh", home=tmp_path)
    assert r.returncode == 0 and "#compdef willitrun" in r.stdout
    assert list(tmp_path.iterdir()) == []  # shown, not installed


def test_completion_offers_model_ids() -> None:
    ids = sorted(i for i in load_catalog().files("model") if i.startswith("llava-1.5"))
    assert ids  # the catalog's LLaVA 1.5 models (model_specs/llava-1.5-*.yaml)
    for line in (
        "willitrun llava-1.5",
        "willitrun ladder llava-1.5",
        "willitrun sweep llava-1.5",
        "willitrun check llava-1.5",
        "willitrun gpus llava-1.5",
    ):
        assert completions(line) == ids, line


def test_completion_offers_gpu_ids_with_the_count_kept() -> None:
    ids = sorted(i for i in load_catalog().files("gpu") if i.startswith("rtx40"))
    assert "rtx4090" in ids
    assert completions("willitrun llava-7b --gpu rtx40") == ids
    assert completions("willitrun ladder llama-3.1-8b -g 2xrtx40") == [f"2x{i}" for i in ids]
    assert completions("willitrun gpus llama-3.1-70b --count rtx40") == ids


def test_completion_offers_engine_names() -> None:
    names = [*ENGINES, *ENGINE_ALIASES]
    assert completions("willitrun llava-7b --engine ") == names
    assert completions("willitrun llava-7b --engine ll") == ["llama.cpp"]
    assert completions("willitrun ladder llama-3.1-8b -e f") == ["faster-whisper"]
