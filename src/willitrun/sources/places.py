"""The folders where engines and hubs keep the models they downloaded, from the environment each
project reads (the default paths below are those projects' own, cited beside each)."""

from __future__ import annotations

import json
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
    # how the place was found went partly wrong (a damaged settings file): (the file, one line); the scan
    # reports it among the skipped entries and goes on
    note: tuple[str, str] | None = None


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


# LM Studio keeps its data in a home folder: the path written in ~/.lmstudio-home-pointer, else ~/.lmstudio
# (older releases ~/.cache/lm-studio) (lmstudio-ai/lmstudio-bug-tracker#553, an LM Studio developer's steps to
# move it: "Edit %USERPROFILE%\.lmstudio-home-pointer ... paste in the path you chose"). The models folder set
# in "My Models" is the `downloadsFolder` key of a settings.json: in that home (bug-tracker#1601) and, in
# releases that kept it with the Electron app's data, in <app data>/LM Studio/settings.json (%APPDATA%\LM
# Studio\settings.json on Windows: v1ckxy/LMSPLS launchLMS.cmd @05cfd51 rewrites its "downloadsFolder" line).
LMSTUDIO_POINTER = ".lmstudio-home-pointer"
LMSTUDIO_SETTINGS_KEY = "downloadsFolder"
MAX_SETTINGS_BYTES = 1 << 20  # LM Studio's settings.json is a few KiB
MAX_POINTER_BYTES = 4096  # one path


def _app_data(env: Mapping[str, str]) -> Path:
    """Where an Electron app keeps its data (Electron's app.getPath("appData")): %APPDATA% on Windows,
    ~/Library/Application Support on macOS, $XDG_CONFIG_HOME or ~/.config elsewhere."""
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"])
    if sys.platform == "darwin":
        return _home(env) / "Library" / "Application Support"
    xdg = env.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else _home(env) / ".config"


def _small_text(path: Path, cap: int) -> str | None:
    """A regular file's text of at most `cap` bytes; None when absent; ValueError when it is something
    else (a folder, a FIFO, too long, unreadable)."""
    from ..detect.run import read_small_file

    if not os.path.lexists(path):
        return None
    text = read_small_file(str(path), cap)
    if text is None:
        raise ValueError(f"not read (it must be a readable regular file of at most {cap >> 10} KiB)")
    return text


def lmstudio_home(env: Mapping[str, str] | None = None) -> Path:
    """LM Studio's home folder: the absolute path in ~/.lmstudio-home-pointer when it names a folder,
    else ~/.lmstudio."""
    env = os.environ if env is None else env
    home = _home(env)
    try:
        text = _small_text(home / LMSTUDIO_POINTER, MAX_POINTER_BYTES)
    except ValueError:
        text = None
    named = text.strip().splitlines()[0].strip() if text and text.strip() else ""
    if named and os.path.isabs(named) and os.path.isdir(named):
        return Path(named)
    return home / ".lmstudio"


def lmstudio_settings_folder(env: Mapping[str, str] | None = None) -> tuple[Path | None, tuple[str, str] | None]:
    """The models folder LM Studio's settings name (`downloadsFolder`), and a note (the file, one line)
    when a settings file is damaged or names a folder that is not there; (None, None) when no settings
    file sets one (the usual case: the default folder)."""
    env = os.environ if env is None else env
    note = None
    for path in (lmstudio_home(env) / "settings.json", _app_data(env) / "LM Studio" / "settings.json"):
        try:
            text = _small_text(path, MAX_SETTINGS_BYTES)
            if text is None:
                continue
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) and str(exc).startswith("not read") else "not JSON"
            note = note or (str(path), f"LM Studio's settings {reason}: its models folder setting is ignored")
            continue
        value = data.get(LMSTUDIO_SETTINGS_KEY) if isinstance(data, dict) else None
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 4096 or "\x00" in value:
            note = note or (str(path), f"{LMSTUDIO_SETTINGS_KEY} is not a folder path: ignored")
            continue
        folder = _expand(value.strip(), env)
        if not folder.is_absolute():
            note = note or (str(path), f"{LMSTUDIO_SETTINGS_KEY} is not an absolute path: ignored")
            continue
        if not folder.is_dir():
            return None, (str(path), f"{LMSTUDIO_SETTINGS_KEY} names {folder}, which is not a folder here")
        return folder, None
    return None, note


def lmstudio_models(env: Mapping[str, str] | None = None) -> list[Path]:
    """LM Studio's models folders: the one its settings name (`downloadsFolder`, "My Models" moved),
    then <LM Studio home>/models (~/.lmstudio/models from 0.3) and the older ~/.cache/lm-studio/models,
    each laid out <publisher>/<repository>/<file>.gguf; each folder once."""
    env = os.environ if env is None else env
    home = _home(env)
    moved, _ = lmstudio_settings_folder(env)
    out: list[Path] = []
    for p in (
        moved,
        lmstudio_home(env) / "models",
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
    ):
        if p is not None and p not in out:
            out.append(p)
    return out


def default_places(env: Mapping[str, str] | None = None) -> list[Place]:
    """Every place a model may have been downloaded to on this machine (missing ones included:
    the scan skips them quietly)."""
    places = [Place(HF_CACHE, hf_hub_cache(env)), Place(OLLAMA, ollama_models(env))]
    lms = lmstudio_models(env)
    _, note = lmstudio_settings_folder(env)
    places += [Place(LM_STUDIO, p, note if n == 0 else None) for n, p in enumerate(lms)]
    places.append(Place(LLAMA_CPP, llamacpp_cache(env)))
    return places
