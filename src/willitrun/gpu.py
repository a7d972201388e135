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


def match_gpu(name: str, gpus: list[GPUSpec]) -> GPUSpec | None:
    """The catalog card whose NVML name (or display name) equals `name`, ignoring case and punctuation."""
    key = _norm(name)
    for spec in gpus:
        if any(_norm(n) == key for n in spec.nvml_names):
            return spec
    for spec in gpus:
        if _norm(spec.name) == key:
            return spec
    return None
