"""Where each project keeps its downloads, as its own source computes it (places.py cites each)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from willitrun.sources.places import default_places, hf_hub_cache, llamacpp_cache, lmstudio_models, ollama_models


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
