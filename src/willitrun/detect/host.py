"""This machine's own memory (RAM), for answers that put layers, experts or a KV cache in host memory.

Linux: /proc/meminfo's MemTotal and MemAvailable (the kernel's estimate of what can be allocated without
swapping, proc(5)), bounded by the cgroup a container runs in (v2 `memory.max` less `memory.current`; v1
`memory.limit_in_bytes` less `memory.usage_in_bytes`): a 16 GiB container on a 256 GiB host has 16 GiB.
macOS: `sysctl hw.memsize` (unified memory: the GPU's share is the chip's, detect/apple.py). Elsewhere, or
when nothing can be read: None, and the answers say host memory was not checked.

Every file is read with a cap (it is one line or a few dozen), every number bounded; nothing here raises.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

from .run import Runner, run_tool

MAX_BYTES = 1 << 60  # larger than any machine's memory; cgroup's "no limit" is 2^63 - 4096 on v1
READ_CAP = 1 << 16


@dataclass(frozen=True)
class HostMemory:
    """Host memory in bytes: all of it, and what can be allocated now (None when unknown)."""

    total_bytes: int
    available_bytes: int | None
    source: str  # where the figures come from, for the line that says so


def _read(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:  # proc and cgroup files are not regular (size 0): read a bounded block
            return f.read(READ_CAP).decode("ascii", errors="replace")
    except OSError:
        return None


def _bounded(text: str | None) -> int | None:
    if text is None or not re.fullmatch(r"\s*\d{1,19}\s*", text):
        return None
    value = int(text)
    return value if 0 < value < MAX_BYTES else None


def parse_meminfo(text: str) -> tuple[int, int | None] | None:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo ("MemTotal:       32768000 kB")."""
    fields = {}
    for m in re.finditer(r"^(MemTotal|MemAvailable):\s+(\d{1,16}) kB\s*$", text[:READ_CAP], re.MULTILINE):
        fields[m.group(1)] = int(m.group(2)) * 1024
    total = fields.get("MemTotal")
    if not total or total >= MAX_BYTES:
        return None
    return total, fields.get("MemAvailable")


def cgroup_limit(root: Path) -> tuple[int, int | None] | None:
    """(limit, in use) of the memory cgroup this process runs in, or None without a limit."""
    own = _read(root / "proc" / "self" / "cgroup") or ""
    # v2: "0::/user.slice/..." -> /sys/fs/cgroup/<path>/memory.max ("max" when unlimited)
    for line in own.splitlines()[:64]:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].strip().lstrip("/")
        if ".." in rel.split("/"):
            continue
        if parts[0] == "0" and parts[1] == "":
            base = root / "sys" / "fs" / "cgroup" / rel
            limit = _bounded(_read(base / "memory.max"))
            if limit is not None:
                return limit, _bounded(_read(base / "memory.current"))
        elif "memory" in parts[1].split(","):
            base = root / "sys" / "fs" / "cgroup" / "memory" / rel
            limit = _bounded(_read(base / "memory.limit_in_bytes"))
            if limit is not None and limit < (1 << 62):  # v1 "unlimited" is a page-rounded 2^63
                return limit, _bounded(_read(base / "memory.usage_in_bytes"))
    return None


def linux_memory(root: Path = Path("/")) -> HostMemory | None:
    """Linux host memory under `root` (the tests give a directory laid out like /proc and /sys)."""
    text = _read(root / "proc" / "meminfo")
    parsed = parse_meminfo(text) if text else None
    if parsed is None:
        return None
    total, available = parsed
    source = "/proc/meminfo"
    limited = cgroup_limit(root)
    if limited is not None and limited[0] < total:
        limit, used = limited
        total = limit
        free_in_cgroup = limit - used if used is not None else None
        if free_in_cgroup is not None:
            available = min(available, free_in_cgroup) if available is not None else free_in_cgroup
        source = "the container's memory cgroup limit"
    return HostMemory(total, available, source)


def mac_memory(runner: Runner = run_tool) -> HostMemory | None:
    out = runner(("sysctl", "-n", "hw.memsize"), 5.0)
    total = _bounded(out)
    return HostMemory(total, None, "sysctl hw.memsize") if total is not None else None


def host_memory(runner: Runner = run_tool, system: str | None = None) -> HostMemory | None:
    """This machine's memory, or None where it cannot be read (then nothing is checked against it).
    `system` is platform.system()'s answer (tests give it)."""
    system = platform.system() if system is None else system
    if system == "Linux":
        return linux_memory()
    if system == "Darwin":
        return mac_memory(runner)
    if system == "Windows":
        return _windows_memory()
    return None


def _windows_memory() -> HostMemory | None:  # pragma: no cover - exercised on Windows only
    import ctypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("sullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    try:
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return None
    except (AttributeError, OSError):
        return None
    return HostMemory(int(status.ullTotalPhys), int(status.ullAvailPhys), "GlobalMemoryStatusEx")
