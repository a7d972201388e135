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
from ..limits import MAX_CARDS, MAX_CONTEXT
from ..units import parse_size, show

_show = show  # a user's value in an error line (units.show); cli/models and cli/estimation use parse._show

_WHOLE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")  # no exponent, no inf/nan


@dataclass(frozen=True)
class Bound:
    """The smallest and largest value an option accepts; documented in the README."""

    low: float
    high: float


# Upper bounds keep the arithmetic exact and fast; each is far beyond any real deployment.
# The context is bounded where the request is checked (limits.MAX_CONTEXT, 2^24: 1.6x the longest
# window in the catalog, Llama 4 Scout's 10M); one number, so --help, the README and the check agree.
BOUNDS: dict[str, Bound] = {
    "--context": Bound(1, MAX_CONTEXT),
    "--batch": Bound(1, 1 << 20),
    "--beams": Bound(1, 1024),
    "--video-frames": Bound(1, 1 << 16),  # limits.MAX_VIDEO_FRAMES
    "--audio-seconds": Bound(1, MAX_CONTEXT),  # memory.Request checks the same bound
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


# --vram's sizes live low (units.py), one table shared with WILLITRUN_GPU and the config file.
size = parse_size


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
        iter(difflib.get_close_matches(name, ENGINE_NAMES, n=1, cutoff=0.6)), None
    )
    hint = f"; did you mean {close}?" if close else f"; choose one of {', '.join(ENGINE_NAMES)}"
    raise UsageError(f"unknown engine {_show(text)}{hint}")
