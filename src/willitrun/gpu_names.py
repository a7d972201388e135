"""A GPU's name as NVML, rocm-smi or a user writes it -> the catalog card: pure matching, no probing.

A floor module: the catalog (resolving `--gpu "NVIDIA GeForce RTX 3090"`) and detection (gpu.py,
naming the card NVML reports) match names with the same rule, and the catalog never imports the
detection module that talks to hardware.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .specs import GPUSpec


def norm_name(name: str) -> str:
    """The name lower-cased with everything but letters and digits removed ("RTX-3090 Ti" -> "rtx3090ti")."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_gpu(name: str, gpus: list[GPUSpec], total_bytes: int | None = None) -> GPUSpec | None:
    """The catalog card whose NVML name (or display name) equals `name`, ignoring case and
    punctuation. Some cards share one NVML name across memory sizes ("NVIDIA GeForce RTX 3080" is
    10 GB or 12 GB): then the one whose memory is closest to `total_bytes` wins, and without a
    memory size the name is refused as ambiguous."""
    key = norm_name(name)
    found = [s for s in gpus if any(norm_name(n) == key for n in s.nvml_names)] or [
        s for s in gpus if norm_name(s.name) == key
    ]
    if not found:
        return None
    if total_bytes is None:
        if len({g.capacity_bytes for g in found}) > 1:
            raise UsageError(f"{name!r} names several cards: {', '.join(g.id for g in found)}; give one of these ids")
        return found[0]
    return min(found, key=lambda s: abs(s.capacity_bytes - total_bytes))
