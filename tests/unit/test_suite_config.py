"""The suite stays lean (issue 17 §2): the tests that rebuild the transformers reference take
minutes, so they carry the `rebuild` marker, the default run deselects it, and CI selects it."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest_options() -> Any:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]


def _runs_build_reference(fn: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Constant) and n.value == "build_reference.py" for n in ast.walk(fn))


def _marked_rebuild(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d) == "pytest.mark.rebuild" for d in fn.decorator_list)


def test_every_test_that_runs_the_reference_builder_is_marked_rebuild() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and _runs_build_reference(node):
                found.append((f"{path.relative_to(ROOT)}::{node.name}", _marked_rebuild(node)))
    assert found, "the rebuild tests were not found"
    assert [name for name, marked in found if not marked] == []


def test_the_default_run_deselects_rebuild_and_ci_selects_it() -> None:
    options = _pytest_options()
    assert any(m.startswith("rebuild:") for m in options["markers"])
    assert re.search(r"-m\s+['\"]not rebuild['\"]", str(options["addopts"]))
    assert re.search(r"^pytest -m rebuild$", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.MULTILINE)


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_quick_start_verbatim() -> None:
    """.ci/run says it runs the README's Quick start commands verbatim: hold it to that."""
    commands = _quick_start_commands()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in commands:
        assert command in ci.splitlines(), command


def test_the_test_install_takes_torch_from_the_cpu_index() -> None:
    """A newcomer's test command must not pull the CUDA build of torch (gigabytes of nvidia-* wheels):
    the CPU index's 2.13.0+cpu satisfies the pin and sorts above PyPI's 2.13.0 (PEP 440 local version)."""
    install = next(c for c in _quick_start_commands() if "tests/reference/requirements.txt" in c)
    # torch first, from PyPI and PyTorch's CPU index (tests/reference/torch-cpu.txt); the rest from PyPI alone
    assert install.index("pip install -r tests/reference/torch-cpu.txt") < install.index(
        "tests/reference/requirements.txt"
    )
    cpu = (ROOT / "tests" / "reference" / "torch-cpu.txt").read_text(encoding="utf-8").splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in cpu and "-c ../constraints.txt" in cpu
    assert "torch" in cpu
    pins = (ROOT / "tests" / "reference" / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\d+\.\d+\.\d+$", pins, re.MULTILINE)
