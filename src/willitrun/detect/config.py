"""The user's default GPU: WILLITRUN_GPU, then the config file.

The config file is `$XDG_CONFIG_HOME/willitrun/config.toml` (`~/.config/willitrun/config.toml`
when XDG_CONFIG_HOME is unset or not absolute, as the XDG Base Directory spec says). It holds one
of two keys, named as the command-line options they stand for:

    gpu = "rtx3090"        # a catalog id, alias or NVML name
    vram = "24GiB"         # or a memory size, as --vram takes it

It is read only when it is a regular file of at most 64 KiB; Python 3.11+ parses it with tomllib,
3.10 with a reader of `key = "value"` lines (comments and blank lines allowed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UsageError
from ..units import looks_like_size
from .run import read_small_file

ENV_VAR = "WILLITRUN_GPU"
MAX_CONFIG_BYTES = 64 << 10
KEYS = ("gpu", "vram")


@dataclass(frozen=True)
class Setting:
    """What the user wrote, and where: `kind` is "gpu" or "vram" (a size)."""

    kind: str
    value: str
    origin: str  # "WILLITRUN_GPU" or the config file's path


def config_path(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "willitrun", "config.toml")


def from_env(env: Mapping[str, str]) -> Setting | None:
    """WILLITRUN_GPU as a size or a GPU name; None when unset or blank."""
    value = env.get(ENV_VAR, "").strip()
    if not value:
        return None
    return Setting("vram" if looks_like_size(value) else "gpu", value, ENV_VAR)


def parse_config(text: str, path: str) -> dict[str, object]:
    """The config's keys and values; UsageError naming the file (and line) when it is not TOML."""
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # Python 3.11+
    except ImportError:
        return _parse_simple(text, path)

    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses arrays and inline tables recursively: `gpu = [[[...]]]`
        raise UsageError(f'{path}: nested too deeply (this file takes gpu = "NAME" or vram = "SIZE")') from None


def _parse_simple(text: str, path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = re.fullmatch(
            r"""([A-Za-z0-9_-]+)\s*=\s*(?:"([^"\\]*)"|'([^']*)'|([0-9]+(?:\.[0-9]+)?))\s*(?:#.*)?""", stripped
        )
        if not m:
            raise UsageError(
                f'{path}:{n}: expected key = "value" (Python 3.10 reads only such lines; 3.11+ reads all TOML)'
            )
        key = m.group(1)
        if key in out:
            raise UsageError(f"{path}:{n}: {key} is given twice")
        number = m.group(4)
        out[key] = (
            (float(number) if "." in number else int(number))
            if number is not None
            else (m.group(2) if m.group(2) is not None else m.group(3))
        )
    return out


def from_config(env: Mapping[str, str], path: str | None = None) -> Setting | None:
    """The `gpu` or `vram` key of the config file; None when the file does not exist or sets neither."""
    path = path or config_path(env)
    if not os.path.lexists(path):
        return None
    text = read_small_file(path, MAX_CONFIG_BYTES)
    if text is None:
        raise UsageError(
            f"{path}: not read (it must be a readable regular file of at most {MAX_CONFIG_BYTES >> 10} KiB)"
        )
    data = parse_config(text, path)
    unknown = sorted(k for k in data if k not in KEYS)
    if unknown:
        raise UsageError(f'{path}: unknown key {", ".join(unknown)}; this file takes gpu = "NAME" or vram = "SIZE"')
    given = [k for k in KEYS if k in data]
    if len(given) > 1:
        raise UsageError(f"{path}: give gpu or vram, not both")
    if not given:
        return None
    key = given[0]
    value = data[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, int, float))
        or (key == "gpu" and not isinstance(value, str))
    ):
        raise UsageError(f'{path}: {key} must be a string, e.g. {key} = "{"rtx3090" if key == "gpu" else "24GiB"}"')
    text_value = str(value).strip()
    if not text_value:
        raise UsageError(f"{path}: {key} is empty")
    return Setting(key, text_value, path)
