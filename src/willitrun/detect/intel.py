"""Intel discrete GPUs (Arc) from the kernel's sysfs files: no tool is run.

Each /sys/class/drm/cardN/device names its PCI vendor (0x8086 for Intel) and device id. The device id
says which card it is (the kernel's include/drm/intel/pciids.h groups the ids, INTEL_DG2_G10_D_IDS
0x56A0-0x56A2 for Alchemist ACM-G10, INTEL_BMG_G21_IDS 0xE202-0xE216 for Battlemage G21; the card names are
pci.ids'). The memory is published only by some drivers:

- Intel's out-of-tree i915 (intel-gpu/intel-gpu-i915-backports, drivers/gpu/drm/i915/i915_sysfs.c
  `lmem_total_bytes_show`, `lmem_avail_bytes_show`) puts `lmem_total_bytes` and `lmem_avail_bytes` on the
  DRM minor: /sys/class/drm/cardN/; mainline i915 publishes no such file.
- The xe driver of Linux 6.8 had `device/tileN/physical_vram_size_bytes` per tile (drivers/gpu/drm/xe/
  xe_tile_sysfs.c then; igt's tests/intel/xe_sysfs_tile.c reads it; it counts reserved pages, a little more
  than what can be allocated); later xe_tile_sysfs.c (torvalds/linux@f057b57) no longer has it.

So the memory is the driver's figure where one is published, else the catalog card's the device id names
when that card ships with one size; an Arc A770 (8 or 16 GB on one device id) without a published size, or
an integrated GPU (it shares system memory), is not a card to answer for, and the reason says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .run import read_small_file

INTEL_PCI_VENDOR = "0x8086"  # pci.ids: Intel Corporation
SYSFS_ROOT = "/sys/class/drm"
MAX_TILES = 8  # Ponte Vecchio has 2 tiles; a sysfs tree with more is not a card's
MAX_CARDS = 64

# PCI device id -> (pci.ids name, the catalog id of the card, the memory sizes it ships with in GiB)
ARC_CARDS: dict[str, tuple[str, str | None, tuple[int, ...]]] = {
    "0x56a0": ("Intel Arc A770", "arc-a770-16gb", (8, 16)),  # one id, two sizes: only a published size tells
    "0x56a1": ("Intel Arc A750", None, (8,)),
    "0x56a5": ("Intel Arc A380", None, (6,)),
    "0x56a6": ("Intel Arc A310", None, (4,)),
    "0xe20b": ("Intel Arc B580", "arc-b580", (12,)),
    "0xe20c": ("Intel Arc B570", None, (10,)),
}


@dataclass(frozen=True)
class IntelCard:
    card: str  # "card1", as /sys/class/drm names it
    device_id: str  # "0xe20b"
    name: str
    total_bytes: int | None  # the driver's figure; None: not published
    free_bytes: int | None = None
    how: str = ""  # which file gave the total


MAX_BYTES = 1 << 44  # 16 TiB: no card's memory is more


def _int(text: str | None) -> int | None:
    """A size in bytes from a sysfs attribute; None for anything else (empty, 0, signed, a unit, too big)."""
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        return None
    return int(value) if 0 < int(value) <= MAX_BYTES else None


def read_card(root: str, card: str) -> IntelCard | None:
    """An Intel card's id, name and published memory; None when `card` is not an Intel device."""
    base = os.path.join(root, card)
    vendor = (read_small_file(os.path.join(base, "device", "vendor")) or "").strip().lower()
    if vendor != INTEL_PCI_VENDOR:
        return None
    device_id = (read_small_file(os.path.join(base, "device", "device")) or "").strip().lower()
    if not re.fullmatch(r"0x[0-9a-f]{4}", device_id):
        device_id = "unknown"
    name = ARC_CARDS[device_id][0] if device_id in ARC_CARDS else f"Intel GPU {device_id}"
    total = _int(read_small_file(os.path.join(base, "lmem_total_bytes")))
    if total is not None:
        free = _int(read_small_file(os.path.join(base, "lmem_avail_bytes")))
        return IntelCard(card, device_id, name, total, free, "i915 lmem_total_bytes")
    tiles = 0
    for n in range(MAX_TILES):
        size = _int(read_small_file(os.path.join(base, "device", f"tile{n}", "physical_vram_size_bytes")))
        if size is None:
            break
        tiles += size
    if tiles:
        return IntelCard(card, device_id, name, tiles, None, "xe physical_vram_size_bytes")
    return IntelCard(card, device_id, name, None)


def detect_intel(root: str = SYSFS_ROOT) -> tuple[list[IntelCard], str]:
    """The Intel discrete cards under `root` whose memory is known (published, or the one size their device
    id ships with), and why none is when the list is empty ("" when there is no Intel GPU at all: the
    no-GPU message, one bounded line, stays about the cards there are)."""
    try:
        names = sorted((n for n in os.listdir(root) if re.fullmatch(r"card\d+", n)), key=lambda n: int(n[4:]))
    except OSError:
        return [], ""
    found, skipped = [], []
    for card in names[:MAX_CARDS]:
        c = read_card(root, card)
        if c is None:
            continue
        known = ARC_CARDS.get(c.device_id)
        if c.total_bytes is None and known is not None and len(known[2]) == 1:
            c = IntelCard(c.card, c.device_id, c.name, known[2][0] << 30, None, "its one memory size")
        if c.total_bytes is not None:
            found.append(c)
        elif known is not None:
            sizes = " or ".join(f"{g} GB" for g in known[2])
            skipped.append(f"{c.name} ({card}) comes with {sizes} and its driver publishes no size")
        else:
            skipped.append(f"{c.name} ({card}) is integrated graphics (system memory)")
    if found:
        return found, root
    return [], "; ".join(skipped)
