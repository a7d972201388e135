"""Where each project keeps its downloads, as its own source computes it (places.py cites each)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from willitrun.sources.places import (
    default_places,
    hf_hub_cache,
    llamacpp_cache,
    lmstudio_home,
    lmstudio_models,
    lmstudio_settings_folder,
    ollama_models,
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HOME": "/h"}, "/h/.cache/huggingface/hub"),
        ({"HOME": "/h", "XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"),
        ({"HOME": "/h", "XDG_CACHE_HOME": "/x", "HF_HOME": "/hf"}, "/hf/hub"),
        ({"HOME": "/h", "HF_HOME": "~/hf"}, "/h/hf/hub"),
        ({"HOME": "/h", "HF_HOME": "/hf", "HUGGINGFACE_HUB_CACHE": "/legacy"}, "/legacy"),
        ({"HOME": "/h", "HF_HOME": "/hf", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_CACHE": "/new"}, "/new"),
    ],
)
def test_hf_hub_cache_follows_huggingface_hub_constants(env, expected):
    assert hf_hub_cache(env) == Path(expected)


def test_ollama_models_env_and_default():
    assert ollama_models({"HOME": "/h"}) == Path("/h/.ollama/models")
    assert ollama_models({"HOME": "/h", "OLLAMA_MODELS": ' "/data/ollama" '}) == Path(
        "/data/ollama"
    )  # envconfig.Var trims


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux branch of fs_get_cache_directory")
def test_llamacpp_cache_on_linux():
    assert llamacpp_cache({"HOME": "/h"}) == Path("/h/.cache/llama.cpp")
    assert llamacpp_cache({"HOME": "/h", "XDG_CACHE_HOME": "/x"}) == Path("/x/llama.cpp")
    assert llamacpp_cache({"HOME": "/h", "LLAMA_CACHE": "/l"}) == Path("/l")


def test_every_place_is_listed():
    places = default_places({"HOME": "/h"})
    assert [p.kind for p in places] == ["hf-cache", "ollama", "lm-studio", "lm-studio", "llama.cpp"]
    assert lmstudio_models({"HOME": "/h"}) == [Path("/h/.lmstudio/models"), Path("/h/.cache/lm-studio/models")]


# LM Studio's moved models folder: "downloadsFolder" in settings.json (lmstudio-ai/lmstudio-bug-tracker#1601;
# v1ckxy/LMSPLS launchLMS.cmd writes `"downloadsFolder": "...\\models"`), its home moved by
# ~/.lmstudio-home-pointer (lmstudio-bug-tracker#553)
def _settings(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(body)
    return folder / "settings.json"


def test_lmstudio_moved_models_folder_comes_first(tmp_path):
    home, moved = tmp_path / "h", tmp_path / "big-disk" / "models"
    moved.mkdir(parents=True)
    _settings(home / ".lmstudio", json.dumps({"downloadsFolder": str(moved), "defaultContextLength": {}}))
    env = {"HOME": str(home)}
    assert lmstudio_models(env) == [moved, home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]
    assert [p.note for p in default_places(env)] == [None] * 6


@pytest.mark.skipif(sys.platform != "linux", reason="Electron's appData on Linux: $XDG_CONFIG_HOME or ~/.config")
def test_lmstudio_settings_of_the_electron_app_data(tmp_path):
    home, moved = tmp_path / "h", tmp_path / "models"
    moved.mkdir()
    _settings(home / ".config" / "LM Studio", json.dumps({"downloadsFolder": str(moved)}))
    assert lmstudio_models({"HOME": str(home)})[0] == moved
    xdg = tmp_path / "xdg"
    _settings(xdg / "LM Studio", json.dumps({"downloadsFolder": str(home)}))
    assert lmstudio_models({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)})[0] == home


def test_lmstudio_home_pointer(tmp_path):
    home, data = tmp_path / "h", tmp_path / "elsewhere" / "lmstudio"
    data.mkdir(parents=True)
    home.mkdir()
    (home / ".lmstudio-home-pointer").write_text(f"{data}\n")
    assert lmstudio_home({"HOME": str(home)}) == data
    assert lmstudio_models({"HOME": str(home)})[0] == data / "models"
    (home / ".lmstudio-home-pointer").write_text("relative/path")  # not absolute: the default
    assert lmstudio_home({"HOME": str(home)}) == home / ".lmstudio"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{not json", "LM Studio's settings not JSON"),
        ("[" * 100_000 + "]" * 100_000, "LM Studio's settings not JSON"),
        (json.dumps({"downloadsFolder": 7}), "downloadsFolder is not a folder path"),
        (json.dumps({"downloadsFolder": "models"}), "downloadsFolder is not an absolute path"),
        (json.dumps({"downloadsFolder": "/nowhere/at/all"}), "names /nowhere/at/all, which is not a folder here"),
        ("x" * ((1 << 20) + 1), "not read (it must be a readable regular file of at most 1024 KiB)"),
    ],
)
def test_lmstudio_damaged_settings_are_ignored_with_a_note(tmp_path, body, says):
    home = tmp_path / "h"
    path = _settings(home / ".lmstudio", body)
    folder, note = lmstudio_settings_folder({"HOME": str(home)})
    assert folder is None and note is not None
    assert note[0] == str(path) and says in note[1]
    places = default_places({"HOME": str(home)})
    assert [p.path for p in places if p.kind == "lm-studio"] == [
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
    ]
    assert [p.note for p in places if p.note] == [note]


def test_lmstudio_settings_that_is_not_a_file_is_ignored(tmp_path):
    home = tmp_path / "h"
    (home / ".lmstudio" / "settings.json").mkdir(parents=True)
    folder, note = lmstudio_settings_folder({"HOME": str(home)})
    assert folder is None and note is not None and "regular file" in note[1]
    assert lmstudio_settings_folder({"HOME": str(tmp_path / "nobody")}) == (None, None)  # no LM Studio: no note
