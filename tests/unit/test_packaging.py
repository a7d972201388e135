"""Packaging as people expect it: the LICENSE file says what the metadata says, and what the tests and linters need
is a dependency group of the project, not an extra users could install by accident."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def project_file() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def project() -> dict:
    return project_file()["project"]


def test_license_file_matches_the_metadata():
    meta = project()
    assert meta["license"] == "MIT"
    assert meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    # PEP 639: with a license expression, a "License ::" classifier is an error for build backends
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]


def test_classifiers_name_the_supported_pythons():
    meta = project()
    assert meta["requires-python"] == ">=3.10"
    assert "Programming Language :: Python :: 3.10" in meta["classifiers"]
    assert "Typing :: Typed" in meta["classifiers"]
    assert (ROOT / "src" / "willitrun" / "py.typed").is_file()


def test_test_and_lint_are_dependency_groups_not_extras():
    """What the tests and linters need is for developers (PEP 735 groups, `pip install --group test`), not an
    extra a user could install with the tool."""
    data = project_file()
    assert {"test", "lint"} <= set(data["dependency-groups"])
    assert not {"test", "lint"} & set(data["project"]["optional-dependencies"])
