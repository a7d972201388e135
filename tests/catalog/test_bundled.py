"""The bundled catalog validated ahead of time (catalog/bundled.py): the first run after install
answers from it without parsing YAML or importing pydantic, and exactly as validating would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import willitrun.catalog.bundled as bundled
from willitrun.catalog import load_catalog, load_spec

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_file_equals_a_rebuild():
    """After changing a bundled spec or a spec class: python scripts/bundled_catalog.py."""
    assert bundled.BUNDLED.read_text(encoding="utf-8") == bundled.text(bundled.build()), (
        "src/willitrun/catalog/bundled.json is stale: run python scripts/bundled_catalog.py"
    )
    files = json.loads(bundled.BUNDLED.read_text())["files"]
    assert {n for n in files if n.startswith("model_specs/")} == {
        f"model_specs/{p.name}" for p in (ROOT / "model_specs").glob("*.yaml")
    }


def test_prebuilt_specs_equal_validated_ones(tmp_path, monkeypatch):
    """Every bundled spec through the prebuilt entry (a cold cache) equals the file validated."""
    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(tmp_path / "cold"))
    monkeypatch.delenv("WILLITRUN_NO_CACHE", raising=False)
    cat = load_catalog()
    for kind in ("model", "gpu"):
        for spec_id, path in cat.files(kind).items():
            assert bundled.entry(path, kind) is not None, spec_id
            got, fresh = cat.get(kind, spec_id), load_spec(path, kind)
            assert got == fresh and got.model_fields_set == fresh.model_fields_set, spec_id


def test_an_entry_answers_only_for_the_same_bytes(tmp_path, monkeypatch):
    import willitrun.catalog as catalog

    root = tmp_path / "root"
    shutil.copytree(ROOT / "model_specs", root / "model_specs")
    monkeypatch.setattr(catalog, "bundled_root", lambda: root)
    same, changed = root / "model_specs" / "llama-2-7b.yaml", root / "model_specs" / "mistral-7b.yaml"
    assert bundled.entry(same, "model") is not None
    changed.write_text(changed.read_text() + "# a comment\n")
    assert bundled.entry(changed, "model") is None
    assert bundled.entry(ROOT / "README.md", "model") is None  # not a bundled spec file
    monkeypatch.setenv("WILLITRUN_NO_CACHE", "1")
    assert bundled.entry(same, "model") is None  # every file validated


@pytest.mark.parametrize("damage", [b"", b"not json", b'{"format": 99, "files": {}}', b'{"format": 1, "files": []}'])
def test_a_damaged_file_is_no_entry(tmp_path, monkeypatch, damage):
    f = tmp_path / "bundled.json"
    f.write_bytes(damage)
    monkeypatch.setattr(bundled, "BUNDLED", f)
    bundled._table.cache_clear()
    try:
        assert bundled._table() == {}
        assert bundled.entry(ROOT / "model_specs" / "llama-2-7b.yaml", "model") is None
    finally:
        bundled._table.cache_clear()


def test_the_first_run_after_install_needs_no_pydantic(tmp_path):
    """A cold cache: no pydantic imported, no rerun, the same answer as validating with pydantic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_") or k == "WILLITRUN_RAM"}
    env.update(NO_COLOR="1", PYTHONPATH=str(ROOT / "src"))

    def run(cache: str, *extra: str, **more: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, *extra, "-m", "willitrun", "llava-7b", "--gpu", "rtx3090"]
        e = {**env, "WILLITRUN_CACHE_DIR": str(tmp_path / cache), **more}
        return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=120, check=False)

    cold = run("cold", "-X", "importtime", WILLITRUN_RECORDS="1")  # "1": a needed rerun would fail
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in cold.stderr.splitlines() if ln.startswith("import time:")]
    assert cold.returncode == 0 and "willitrun.catalog.bundled" in imported
    assert not [m for m in imported if m.split(".")[0] in ("pydantic", "yaml")]
    validated = run("other", WILLITRUN_RECORDS="0", WILLITRUN_NO_CACHE="1")
    assert cold.stdout == validated.stdout and validated.returncode == 0


def test_prebuilt_index_entries_are_kept_in_the_cache(tmp_path, monkeypatch):
    """The index entries a cold run took from bundled.json are kept in the user's cache like parsed ones:
    a warm lookup by alias reads no spec file (before: every bundled file read and its CRC-32 taken again
    on every run, ~20 ms of `willitrun llava-7b --gpu rtx3090`, benchmarks/vs_llmfit.py)."""
    import willitrun.catalog as catalog

    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WILLITRUN_NO_CACHE", raising=False)
    cold = load_catalog()  # the first run: index entries and specs from bundled.json
    assert cold.resolve("model", "llava-7b").id == "llava-1.5-7b"
    assert cold.resolve("gpu", "3090").id == "rtx3090"
    seen: list[str] = []
    real_entry, real_parse = bundled.entry, catalog.read_yaml_mapping
    monkeypatch.setattr(bundled, "entry", lambda path, kind: seen.append(path.name) or real_entry(path, kind))
    monkeypatch.setattr(catalog, "read_yaml_mapping", lambda path: seen.append(path.name) or real_parse(path))
    cat = load_catalog()
    assert cat.resolve("model", "llava-7b").id == "llava-1.5-7b"
    assert cat.resolve("gpu", "3090").id == "rtx3090"
    assert seen == []
