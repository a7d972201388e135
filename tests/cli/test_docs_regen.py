"""README's ladder and offload examples and docs/cluster.md's table and commands are what the code
prints today: benchmarks/regen_docs.py rewrites them, and this test fails when one has drifted
(run `python benchmarks/regen_docs.py` and commit the result)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regen_docs", ROOT / "benchmarks" / "regen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_the_marked_examples_are_what_the_code_prints() -> None:
    assert _regen().run(check=True) == []


def test_a_drifted_block_is_found_and_rewritten() -> None:
    """The checker is not vacuous: a stale block is named, and rewriting restores the made text."""
    regen = _regen()
    text = "intro\n<!-- regen:demo -->\n```console\nold output\n```\nafter\n\n<!-- regen:table -->\n| a |\n|---|\n| 1 |\n\nend"
    made = {"demo": "```console\nnew output\n```", "table": "| a |\n|---|\n| 1 |"}
    new, changed = regen.regenerate(text, made)
    assert changed == ["demo"]
    assert new == text.replace("old output", "new output")
    assert regen.regenerate(new, made) == (new, [])


def test_every_block_has_its_marker() -> None:
    regen = _regen()
    for name, block in regen.BLOCKS.items():
        assert f"<!-- regen:{name} -->" in (ROOT / block.file).read_text(encoding="utf-8"), name
