"""GPU detection through NVML, kept behind one function, and pure name matching.

`pynvml` (package nvidia-ml-py) is imported inside `detect_gpus` only: the CLI never pays for it
when --gpu or --vram is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import GPUDetectionError
from .specs import GPUSpec

NO_DRIVER = "no NVIDIA GPU found ({why}); give the card with --gpu NAME (see `willitrun list gpus`) or its memory with --vram, e.g. --vram 24GiB"


@dataclass(frozen=True)
class DetectedGPU:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_gpus(nvml: Any = None) -> list[DetectedGPU]:
    """Every GPU NVML reports, with total and free memory; GPUDetectionError when there is none.

    `nvml` is the pynvml module; tests pass a fake with the same functions.
    """
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - heavy and often absent: imported only here
        except ImportError:
            raise GPUDetectionError(NO_DRIVER.format(why="the nvidia-ml-py package is not installed")) from None
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses, or OSError-like failures to load the library
        raise GPUDetectionError(NO_DRIVER.format(why=f"NVML could not start: {_text(exc) or type(exc).__name__}")) from None
    try:
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(DetectedGPU(i, _text(nvml.nvmlDeviceGetName(handle)), int(mem.total), int(mem.free)))
    except Exception as exc:
        raise GPUDetectionError(NO_DRIVER.format(why=f"NVML query failed: {_text(exc) or type(exc).__name__}")) from None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: S110 - shutting down a half-started NVML cannot be helped
            pass
    if not gpus:
        raise GPUDetectionError(NO_DRIVER.format(why="NVML reports 0 devices"))
    return gpus


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_gpu(name: str, gpus: list[GPUSpec], total_bytes: int | None = None) -> GPUSpec | None:
    """The catalog card whose NVML name (or display name) equals `name`, ignoring case and
    punctuation. Some cards share one NVML name across memory sizes ("NVIDIA GeForce RTX 3080" is
    10 GB or 12 GB): then the one whose memory is closest to `total_bytes` wins, and without a
    memory size the name is refused as ambiguous."""
    key = _norm(name)
    found = [s for s in gpus if any(_norm(n) == key for n in s.nvml_names)] or \
        [s for s in gpus if _norm(s.name) == key]
    if not found:
        return None
    if total_bytes is None:
        if len({g.capacity_bytes for g in found}) > 1:
            from .errors import UsageError

            raise UsageError(f"{name!r} names several cards: {', '.join(g.id for g in found)}; give one of these ids")
        return found[0]
    return min(found, key=lambda s: abs(s.capacity_bytes - total_bytes))
