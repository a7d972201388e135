"""The folders where engines and hubs keep the models they downloaded, from the environment each
project reads (the default paths below are those projects' own, cited beside each)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The kinds of place a model is found in; each decides the engine a model there belongs to.
HF_CACHE, OLLAMA, LM_STUDIO, LLAMA_CPP, FOLDER = "hf-cache", "ollama", "lm-studio", "llama.cpp", "folder"


@dataclass(frozen=True)
class Place:
    """A folder to look in and how it is laid out (`kind`: one of the constants above)."""

    kind: str
    path: Path


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else Path.home()


def _expand(value: str, env: Mapping[str, str]) -> Path:
    if value.startswith("~"):
        value = str(_home(env)) + value[1:]
    return Path(value)


def hf_hub_cache(env: Mapping[str, str] | None = None) -> Path:
    """huggingface_hub's cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface/huggingface_hub
    src/huggingface_hub/constants.py @03333b6: HF_HOME, default_cache_path, HF_HUB_CACHE)."""
    env = os.environ if env is None else env
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return _expand(env[key], env)
    if env.get("HF_HOME"):
        return _expand(env["HF_HOME"], env) / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    return (_expand(xdg, env) if xdg else _home(env) / ".cache") / "huggingface" / "hub"


def ollama_models(env: Mapping[str, str] | None = None) -> Path:
    """ollama's store: OLLAMA_MODELS, else ~/.ollama/models (ollama/ollama envconfig/config.go
    Models(); envconfig.Var trims spaces and quotes around the value)."""
    env = os.environ if env is None else env
    value = env.get("OLLAMA_MODELS", "").strip().strip("\"'")
    return _expand(value, env) if value else _home(env) / ".ollama" / "models"


def llamacpp_cache(env: Mapping[str, str] | None = None) -> Path:
    """llama.cpp's download cache: LLAMA_CACHE, else $XDG_CACHE_HOME/llama.cpp or ~/.cache/llama.cpp
    on Linux, ~/Library/Caches/llama.cpp on macOS, %LOCALAPPDATA%\\llama.cpp on Windows
    (ggml-org/llama.cpp common/common.cpp fs_get_cache_directory @00758e0)."""
    env = os.environ if env is None else env
    if env.get("LLAMA_CACHE"):
        return _expand(env["LLAMA_CACHE"], env)
    if sys.platform == "darwin":
        return _home(env) / "Library" / "Caches" / "llama.cpp"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "llama.cpp"
    xdg = env.get("XDG_CACHE_HOME")
    return (_expand(xdg, env) if xdg else _home(env) / ".cache") / "llama.cpp"


def lmstudio_models(env: Mapping[str, str] | None = None) -> list[Path]:
    """LM Studio's models folders: ~/.lmstudio/models (0.3 and later) and the older
    ~/.cache/lm-studio/models, both laid out <publisher>/<repository>/<file>.gguf."""
    home = _home(os.environ if env is None else env)
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def default_places(env: Mapping[str, str] | None = None) -> list[Place]:
    """Every place a model may have been downloaded to on this machine (missing ones included:
    the scan skips them quietly)."""
    places = [Place(HF_CACHE, hf_hub_cache(env)), Place(OLLAMA, ollama_models(env))]
    places += [Place(LM_STUDIO, p) for p in lmstudio_models(env)]
    places.append(Place(LLAMA_CPP, llamacpp_cache(env)))
    return places
