"""Command-line values to numbers and names, with the bounds every command shares.

No typer here: the lean path of the estimate command (cli/lean.py) and the typer commands parse
with the same functions, so both accept and refuse the same input with the same one-line message.
Numbers arrive as text and are checked before Python converts them: `int()` accepts `²` and `٣`,
refuses more than 4,300 digits with a ValueError, and `float()` turns `1e999` into inf.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from ..dtypes import ENGINE_ALIASES, ENGINES
from ..engines.options import bounds as engine_bounds
from ..errors import UsageError
from ..limits import MAX_CARDS

_WHOLE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")  # no exponent, no inf/nan


@dataclass(frozen=True)
class Bound:
    """The smallest and largest value an option accepts; documented in the README."""

    low: float
    high: float


# Upper bounds keep the arithmetic exact and fast; each is far beyond any real deployment.
# Context 2^32 tokens is 1,000x the longest window in the catalog (Llama 4 Scout: 10M).
BOUNDS: dict[str, Bound] = {
    "--context": Bound(1, 1 << 32),
    "--batch": Bound(1, 1 << 20),
    "--beams": Bound(1, 1024),
    "--video-frames": Bound(1, 1 << 16),  # limits.MAX_VIDEO_FRAMES
    "--images": Bound(0, 1024),
    "--encoder-tokens": Bound(1, 1 << 20),
    "--system-bandwidth": Bound(0.001, 1_000_000),  # GB/s
    "--gpus-per-node": Bound(1, MAX_CARDS),
    # the engine options' bounds, from their one declaration (engines/options.py OPTIONS)
    **{flag: Bound(low, high) for flag, (low, high) in engine_bounds().items()},
}


def whole(option: str, text: str | int | None) -> int | None:
    """A whole number within the option's bound; one line naming the option otherwise."""
    if text is None:
        return None
    bound = BOUNDS[option]
    raw = str(text).strip()
    if not _WHOLE.fullmatch(raw) or len(raw) > 24:
        raise UsageError(f"{option} {_show(raw)}: give a whole number from {bound.low:,.0f} to {bound.high:,.0f}")
    value = int(raw)
    if value < bound.low:
        raise UsageError(f"{option} must be at least {bound.low:,.0f} (got {value})")
    if value > bound.high:
        raise UsageError(f"{option} must be at most {bound.high:,.0f} (got {value:,})")
    return value


def decimal(option: str, text: str | float | None) -> float | None:
    """A finite decimal number within the option's bound (no exponent, no nan or inf)."""
    if text is None:
        return None
    bound = BOUNDS[option]
    raw = str(text).strip()
    if not _DECIMAL.fullmatch(raw) or len(raw) > 32:
        raise UsageError(f"{option} {_show(raw)}: give a number from {bound.low:g} to {bound.high:g}")
    value = float(raw)
    if not math.isfinite(value) or (value <= 0 and bound.low > 0):
        raise UsageError(f"{option} must be positive (got {_show(raw)})")
    if not bound.low <= value <= bound.high:
        raise UsageError(f"{option} must be from {bound.low:g} to {bound.high:g} (got {value:g})")
    return value


# The units --vram takes (also WILLITRUN_GPU and the config file's vram, detect/config.py); a bare number is GiB.
_UNITS = {"": 1 << 30, "gib": 1 << 30, "gb": 10**9, "mib": 1 << 20, "mb": 10**6, "tib": 1 << 40, "tb": 10**12,
          "g": 1 << 30, "m": 1 << 20}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")


def _size_match(text: str) -> re.Match[str] | None:
    m = _SIZE.fullmatch(text) if len(text) <= 64 else None  # the length first: the pattern backtracks
    return m if m and m.group(2).lower() in _UNITS else None


def looks_like_size(text: str) -> bool:
    """"24GiB", "24 GB", "80000MiB", "24": a number and a --vram unit (no catalog id is one)."""
    return _size_match(text) is not None


def size(text: str, what: str | None = None) -> int:
    """'24GiB', '24 GB', '80000MiB', '24' (GiB) -> bytes, for --vram; errors name `what` (default
    `--vram` and the text; e.g. "WILLITRUN_GPU=24")."""
    what = what or f"--vram {_show(text)}"
    m = _size_match(text)
    if not m:
        raise UsageError(f"{what}: give a size such as 24GiB, 24GB or 24576MiB (a bare number is GiB)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1 << 20:
        raise UsageError(f"{what} is too small to hold anything")
    if value > 1 << 50:
        raise UsageError(f"{what} is more than 1 PiB; give one card's memory")
    return int(value)


def image_size(text: str | None) -> tuple[int, int] | None:
    """'672x672' -> (height, width) in pixels, for --image-size."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]{1,6})\s*[xX×]\s*([0-9]{1,6})\s*", text)
    if not m:
        raise UsageError(f"--image-size {_show(text)}: give HEIGHTxWIDTH in pixels, e.g. 672x672")
    return int(m.group(1)), int(m.group(2))


_COUNT = re.compile(r"\s*([0-9]+)\s*[x×*]\s*(.+)", re.DOTALL)


def gpus(values: list[str]) -> list[str]:
    """`--gpu rtx3090 --gpu rtx3090` or `--gpu 2xrtx3090` (also `2x3090`, `2*rtx3090`) -> one name per card."""
    names: list[str] = []
    for v in values:
        m = _COUNT.fullmatch(v)
        if m:
            digits = m.group(1).lstrip("0") or "0"
            if len(digits) > 2 or not 1 <= int(digits) <= MAX_CARDS:
                raise UsageError(f"--gpu {_show(v)}: give 1 to {MAX_CARDS} cards")
            names += [m.group(2).strip()] * int(digits)
        else:
            names.append(v)
        if len(names) > MAX_CARDS:
            raise UsageError(f"--gpu: give 1 to {MAX_CARDS} cards")
    return names


ENGINE_NAMES = (*ENGINES, *ENGINE_ALIASES)


def engine(text: str | None) -> str | None:
    """An engine name, case-insensitively; an unknown one names the closest (`llamacpp` -> llama.cpp)."""
    if text is None:
        return None
    name = text.strip().lower()
    if name in ENGINE_NAMES:
        return ENGINE_ALIASES.get(name, name)
    squashed = {re.sub(r"[^a-z0-9]", "", e): e for e in ENGINE_NAMES}
    close = squashed.get(re.sub(r"[^a-z0-9]", "", name)) or next(
        iter(difflib.get_close_matches(name, ENGINE_NAMES, n=1, cutoff=0.6)), None)
    hint = f"; did you mean {close}?" if close else f"; choose one of {', '.join(ENGINE_NAMES)}"
    raise UsageError(f"unknown engine {_show(text)}{hint}")


def _show(text: str, limit: int = 40) -> str:
    """A user's value inside an error line: quoted, control characters escaped, long ones cut."""
    shown = repr(text[:limit])  # repr escapes control and format characters (ESC, CSI, bidi overrides)
    return shown if len(text) <= limit else f"{shown}... ({len(text):,} characters)"
