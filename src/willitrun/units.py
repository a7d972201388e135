"""Memory sizes as people write them ("24GiB", "24 GB", "80000MiB", "24") -> bytes; the one table.

A floor module: the command line (`--vram`, cli/parse.py), `WILLITRUN_GPU` and the config file's
`vram` (detect/config.py, gpu.py) all read sizes here, so they accept and refuse the same text with
the same one-line message. No typer, no catalog: detection must not import the CLI to read a size.
"""

from __future__ import annotations

import re

from .errors import UsageError

GIB = 1 << 30

# The units --vram takes; a bare number is GiB. GiB (2^30) and GB (10^9) are kept apart; "g" and "m"
# are the binary units, as nvidia-smi and `free -g` print them.
UNITS: dict[str, int] = {
    "": GIB,
    "gib": GIB,
    "gb": 10**9,
    "mib": 1 << 20,
    "mb": 10**6,
    "tib": 1 << 40,
    "tb": 10**12,
    "g": GIB,
    "m": 1 << 20,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")
MIN_SIZE = 1 << 20  # below one MiB nothing fits
MAX_SIZE = 1 << 50  # one card's memory; 1 PiB is far beyond any


def show(text: str, limit: int = 40) -> str:
    """A user's value inside an error line: quoted, control characters escaped, long ones cut."""
    shown = repr(text[:limit])  # repr escapes control and format characters (ESC, CSI, bidi overrides)
    return shown if len(text) <= limit else f"{shown}... ({len(text):,} characters)"


def _size_match(text: str) -> re.Match[str] | None:
    m = _SIZE.fullmatch(text) if len(text) <= 64 else None  # the length first: the pattern backtracks
    return m if m and m.group(2).lower() in UNITS else None


def looks_like_size(text: str) -> bool:
    """ "24GiB", "24 GB", "80000MiB", "24": a number and a unit of UNITS (no catalog id is one)."""
    return _size_match(text) is not None


def parse_size(text: str, what: str | None = None) -> int:
    """'24GiB', '24 GB', '80000MiB', '24' (GiB) -> bytes; errors name `what` (default `--vram` and
    the text; e.g. "WILLITRUN_GPU=24")."""
    what = what or f"--vram {show(text)}"
    m = _size_match(text)
    if not m:
        raise UsageError(f"{what}: give a size such as 24GiB, 24GB or 24576MiB (a bare number is GiB)")
    value = float(m.group(1)) * UNITS[m.group(2).lower()]
    if value < MIN_SIZE:
        raise UsageError(f"{what} is too small to hold anything")
    if value > MAX_SIZE:
        raise UsageError(f"{what} is more than 1 PiB; give one card's memory")
    return int(value)


# How a buffer's detail begins when `explain --save` measured it (detect/config.py writes it, render.py reads it):
# here, in a leaf both may import, so rendering never imports detection (shared/house.json: never Render -> Gpu).
MEASURED = "measured on this machine by `explain --save`"
