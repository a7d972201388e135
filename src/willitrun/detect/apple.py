"""Apple Silicon: the chip's name and its unified memory, from sysctl (and system_profiler).

`sysctl hw.memsize machdep.cpu.brand_string iogpu.wired_limit_mb` prints `name: value` lines
("machdep.cpu.brand_string: Apple M1", GuillaumeGomez/sysinfo#497). The brand string is not always
the chip: early macOS 11 printed "Apple processor" (archspec/archspec#38) and Rosetta prints
"VirtualApple ...", so the GPU's own name is then taken from `system_profiler SPDisplaysDataType
-json` (its "sppci_model", else "_name" when it reads "Apple M...": timmo001/system-bridge#3408).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .run import Runner, run_tool

SYSCTL = ("sysctl", "hw.memsize", "machdep.cpu.brand_string", "iogpu.wired_limit_mb")
SYSTEM_PROFILER = ("system_profiler", "SPDisplaysDataType", "-json")
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class AppleChip:
    name: str  # "Apple M2 Max"
    memory_bytes: int  # all of the unified memory (hw.memsize)
    wired_limit_bytes: int | None  # iogpu.wired_limit_mb when the user raised it; None at the default (0)

    @property
    def gpu_bytes(self) -> int:
        """What Metal lets the GPU keep resident: the wired limit when set, else the default share."""
        return self.wired_limit_bytes or int(self.memory_bytes * default_gpu_fraction(self.memory_bytes))


def default_gpu_fraction(memory_bytes: int) -> float:
    """Metal's default recommendedMaxWorkingSetSize over total memory: 3/4 above 36 GiB (llama.cpp
    logs: 49152 MiB of 64 GiB, ggml-org/llama.cpp#1870; 73728 MiB of 96 GiB, #3213), 2/3 up to it
    (10922.67 MiB of 16 GiB, abetlen/llama-cpp-python#687)."""
    return 0.75 if memory_bytes > 36 * GIB else 2 / 3


def parse_sysctl(text: str) -> dict[str, str]:
    """`name: value` lines into a dict (lines sysctl could not answer are absent)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
    return out


def is_apple_chip(name: str | None) -> bool:
    return bool(name) and re.match(r"Apple M\d", name or "") is not None


def parse_system_profiler(text: str) -> str | None:
    """The first Apple GPU's name ("Apple M3 Pro") in SPDisplaysDataType JSON; None otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    items = data.get("SPDisplaysDataType") if isinstance(data, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        for key in ("sppci_model", "_name"):  # M1 on macOS 11 gave _name "kHW_AppleM1Item" (exelban/stats#394)
            value = item.get(key)
            if isinstance(value, str) and is_apple_chip(value.strip()):
                return value.strip()
    return None


def chip_from(sysctl: dict[str, str], profiler_name: str | None = None) -> AppleChip | None:
    """An AppleChip from parsed sysctl values (and the system_profiler name); None if not Apple Silicon."""
    memsize = sysctl.get("hw.memsize", "")
    brand = sysctl.get("machdep.cpu.brand_string")
    name = brand if is_apple_chip(brand) else profiler_name
    if not memsize.isdigit() or int(memsize) == 0 or not is_apple_chip(name):
        return None
    wired = sysctl.get("iogpu.wired_limit_mb", "")
    wired_bytes = int(wired) * MIB if wired.isdigit() and int(wired) > 0 else None
    return AppleChip(str(name), int(memsize), wired_bytes)


def detect_apple(runner: Runner = run_tool) -> AppleChip | None:
    """The Apple Silicon chip this Mac runs on, or None (not a Mac, an Intel Mac, tools missing)."""
    text = runner(SYSCTL, 5.0)
    if text is None:
        return None
    values = parse_sysctl(text)
    profiler = None
    if not is_apple_chip(values.get("machdep.cpu.brand_string")):
        out = runner(SYSTEM_PROFILER, 15.0)  # slow (about a second), so only when sysctl has no chip name
        profiler = parse_system_profiler(out) if out is not None else None
    return chip_from(values, profiler)
