"""docs/scan.md documents every key of `scan --json`, with its type, and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from willitrun.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "scan.md"
TYPES = {str: "str", int: "int", bool: "bool", list: "list"}


def documented() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    path = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^### `([a-z_\[\]]+)`$", line)
        if m:
            path = m.group(1)
            out[path] = {}
            continue
        m = re.match(r"^\| `([a-z_]+)` \| ([a-z]+) \|", line)
        if m and path:
            out[path][m.group(1)] = m.group(2)
    return out


def keys(obj: dict) -> dict[str, str]:
    return {k: TYPES[type(v)] for k, v in obj.items()}


def test_every_key_is_documented_with_its_type(populated):
    data = json.loads(CliRunner().invoke(app, ["scan", "--vram", "24", "--json"]).stdout)
    doc = documented()
    assert keys(data) == doc["scan"]
    for row in data["models"]:
        assert keys(row) == doc["models[]"]
    assert data["skipped"]
    for row in data["skipped"]:
        assert keys(row) == doc["skipped[]"]
