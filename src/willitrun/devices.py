"""One card as the answers see it: its id, name, memory in bytes and bandwidth in bytes per second.

A floor module: placement and the other answers size against a `Device`, and `validate` checks a
GPU spec with the same conversion (memory and bandwidth must not round to zero) without importing
the verdict layer (shared/house.json: specs know no verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .specs import GPUSpec


@dataclass(frozen=True)
class Device:
    """One card: what the split and speed answers need of it."""

    gpu: str
    name: str
    vram_bytes: int
    bandwidth_bytes_s: int | None = None  # None when unknown (--vram, a detected card not in the catalog)


def device(g: GPUSpec) -> Device:
    """A catalog card as the answers size against it (bandwidth GB/s -> whole bytes per second)."""
    return Device(g.id, g.name, g.capacity_bytes, round(g.bandwidth_gb_s * 10**9))
