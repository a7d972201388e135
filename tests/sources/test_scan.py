"""scan_places on real layouts in a temporary HOME (layouts.py): every place's models, the engine
each belongs to, sizes on disk, and damaged or hostile entries reported and skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from willitrun.sources import default_places, scan_places
from willitrun.sources.places import FOLDER, Place
from willitrun.sources.walk import Budget


def _by_name(result):
    return {f.name: f for f in result.found}


def test_every_place_is_found_with_its_engine(populated):
    _home, paths = populated
    result = scan_places(default_places())
    found = _by_name(result)
    assert {name: (f.place, f.engine, f.format) for name, f in found.items()} == {
        "Qwen/Qwen3-0.6B": ("hf-cache", "transformers", "safetensors"),
        "org/Tiny-GGUF/Tiny-Q8_0.gguf": ("hf-cache", "llama.cpp", "gguf"),
        "org/Tiny-GGUF/Tiny-Q4_0.gguf": ("hf-cache", "llama.cpp", "gguf"),
        "tiny:latest": ("ollama", "ollama", "gguf"),
        "hf.co/org/Tiny-GGUF:Q4_0": ("ollama", "ollama", "gguf"),
        "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf": ("lm-studio", "llama.cpp", "gguf"),
        # the truncated file is found; importing it fails later (the scan command reports it)
        "lmstudio-community/Tiny-GGUF/Tiny-trunc.gguf": ("lm-studio", "llama.cpp", "gguf"),
        "org_Tiny-GGUF_Tiny-Q4_0.gguf": ("llama.cpp", "llama.cpp", "gguf"),
    }
    # sizes on disk are the files' (through the HF cache's symlinks into blobs/)
    assert found["org/Tiny-GGUF/Tiny-Q8_0.gguf"].size_bytes == os.stat(paths["gguf_q8"]).st_size
    assert found["tiny:latest"].size_bytes == found["org/Tiny-GGUF/Tiny-Q8_0.gguf"].size_bytes
    assert found["Qwen/Qwen3-0.6B"].size_bytes == os.stat(paths["qwen"] / "config.json").st_size
    assert found["tiny:latest"].path.name.startswith("sha256-")
    reasons = {p.path: p.reason for p in result.problems}
    assert reasons[str(paths["broken"])] == "broken symlink"
    assert reasons[str(paths["bad_manifest"])] == "not an ollama manifest (not JSON)"
    assert not result.truncated


def test_an_empty_home_finds_nothing_and_complains_of_nothing(home):
    result = scan_places(default_places())
    assert result.found == [] and result.problems == []


def test_folders_given(populated, tmp_path):
    _home, paths = populated
    folder = tmp_path / "mine"
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "deep" / "er" / "a.gguf").write_bytes(paths["gguf_q8"].read_bytes())
    ckpt = folder / "qwen"
    ckpt.mkdir()
    (ckpt / "config.json").write_bytes((paths["qwen"] / "config.json").read_bytes())
    (folder / "deep" / "loop").symlink_to(folder)  # a symlink loop: never followed
    os.mkfifo(folder / "fifo.gguf")  # never opened
    single = tmp_path / "single.gguf"
    single.write_bytes(b"GGUF")
    result = scan_places([Place(FOLDER, folder), Place(FOLDER, tmp_path / "missing"), Place(FOLDER, single)])
    assert sorted(f.name for f in result.found) == sorted(
        [str(folder / "deep" / "er" / "a.gguf"), str(ckpt), str(single)]
    )
    reasons = {p.path: p.reason for p in result.problems}
    assert reasons[str(folder / "fifo.gguf")] == "not a regular file"
    assert reasons[str(tmp_path / "missing")] == "not a directory"


def test_a_hub_cache_given_as_a_folder_keeps_its_names(populated):
    home, _ = populated
    result = scan_places([Place(FOLDER, home / ".cache" / "huggingface" / "hub")])
    assert "Qwen/Qwen3-0.6B" in _by_name(result)
    assert len(result.found) == 3  # each file once, however it was reached


def test_caps_on_entries_and_depth(home, tmp_path):
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(50):
        (wide / f"m{i:02}.gguf").write_bytes(b"GGUF")
    result = scan_places([Place(FOLDER, wide)], Budget(entries=20))
    assert result.truncated and len(result.found) == 20
    assert "stopped: more than" in result.problems[-1].reason
    deep = tmp_path / "deep"
    level = deep
    for i in range(12):
        level = level / f"d{i}"
    level.mkdir(parents=True)
    (level / "x.gguf").write_bytes(b"GGUF")
    assert scan_places([Place(FOLDER, deep)]).found == []  # below MAX_DEPTH


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 directory anyway")
def test_an_unreadable_directory_is_a_problem(home, tmp_path):
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner").chmod(0)
    try:
        result = scan_places([Place(FOLDER, locked)])
    finally:
        (locked / "inner").chmod(0o755)
    assert result.problems[0].reason.startswith("cannot list")


def test_two_snapshots_without_refs_main_are_both_listed(home, tmp_path):
    import json

    from tests.sources.layouts import QWEN3_06B, hf_file

    hub = Path(os.environ["HOME"]) / ".cache" / "huggingface" / "hub"
    for rev in ("a" * 40, "b" * 40):
        hf_file(hub, "Qwen/Qwen3-0.6B", "config.json", json.dumps(QWEN3_06B).encode(), rev=rev)
    (hub / "models--Qwen--Qwen3-0.6B" / "refs" / "main").unlink()
    names = sorted(f.name for f in scan_places(default_places()).found)
    assert names == ["Qwen/Qwen3-0.6B@aaaaaaaaaaaa", "Qwen/Qwen3-0.6B@bbbbbbbbbbbb"]


def test_a_listing_that_fails_is_a_problem_not_an_exception(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)  # ELOOP when listed: the one failure root cannot read past
    budget = Budget()
    assert budget.listdir(loop) == []
    assert budget.problems[0].path == str(loop)
    assert budget.problems[0].reason == "cannot list: Too many levels of symbolic links"
    assert Budget().listdir(tmp_path / "missing") == []  # a place that is not there: quietly nothing
