"""AMD GPUs from rocm-smi's JSON, or from the amdgpu driver's sysfs files when rocm-smi is absent.

rocm-smi --showproductname --showmeminfo vram --json prints one object per card:
  {"card0": {"VRAM Total Memory (B)": "21458059264", "VRAM Total Used Memory (B)": "27856896",
             "Card Series": "Radeon RX 7900 XT", "Card Model": "0x744c", ...}}
(recorded in marimo-team/marimo#9237; older releases spell the keys "Card series", "Card model",
easybuilders/easybuild-framework#3978). The same totals come from the amdgpu driver's
/sys/class/drm/cardN/device/mem_info_vram_total, which rocm-smi itself reads.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from .run import Runner, read_small_file, run_tool

ROCM_SMI = ("rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json")
AMD_PCI_VENDOR = "0x1002"  # PCI vendor id of ATI/AMD graphics (pci.ids)
SYSFS_ROOT = "/sys/class/drm"


@dataclass(frozen=True)
class AMDCard:
    card: str  # "card0", as rocm-smi and /sys/class/drm name it
    name: str
    total_bytes: int
    used_bytes: int | None = None


def _field(entry: dict[object, object], *names: str) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in entry.items()}
    for n in names:
        v = lowered.get(n.lower())
        if isinstance(v, (str, int)) and str(v).strip() not in ("", "N/A"):
            return str(v).strip()
    return None


def _is_pci_id(text: str) -> bool:
    return re.fullmatch(r"0x[0-9a-fA-F]{1,4}", text) is not None


def parse_rocm_smi_json(text: str) -> list[AMDCard]:
    """Cards with a VRAM total from rocm-smi's --json output; [] for anything else. Warnings printed
    before the JSON are skipped."""
    start = text.find("{")
    if start < 0:
        return []
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    cards = []
    for card, entry in data.items():
        if not isinstance(entry, dict):
            continue
        total = _field(entry, "VRAM Total Memory (B)")
        if total is None or not total.isdigit() or int(total) == 0:
            continue
        used = _field(entry, "VRAM Total Used Memory (B)")
        model = _field(entry, "Card Model")
        # The series is pci.ids' name ("Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]"); newer releases
        # may only give "Device Name" ("Phoenix3"); the model is a PCI id on most releases.
        name = (
            _field(entry, "Card Series", "Device Name")
            or (model if model and not _is_pci_id(model) else None)
            or f"AMD GPU {model or card}"
        )
        cards.append(AMDCard(str(card), name, int(total), int(used) if used and used.isdigit() else None))
    return cards


def parse_sysfs(cards: dict[str, dict[str, str | None]]) -> list[AMDCard]:
    """AMD cards from the text of each card's device/ files: {"card0": {"vendor": "0x1002\\n",
    "device": "0x744c\\n", "mem_info_vram_total": "21458059264\\n", "product_name": None, ...}}."""
    found = []
    for card in sorted(cards, key=lambda c: int(c[4:]) if c[4:].isdigit() else 1 << 30):
        files = {k: (v or "").strip() for k, v in cards[card].items()}
        if files.get("vendor", "").lower() != AMD_PCI_VENDOR:
            continue
        total = files.get("mem_info_vram_total", "")
        if not total.isdigit() or int(total) == 0:
            continue
        used = files.get("mem_info_vram_used", "")
        name = files.get("product_name") or f"AMD GPU {files.get('device') or card}"
        found.append(AMDCard(card, name, int(total), int(used) if used.isdigit() else None))
    return found


SYSFS_FILES = ("vendor", "device", "product_name", "mem_info_vram_total", "mem_info_vram_used")


def read_sysfs(root: str = SYSFS_ROOT) -> list[AMDCard]:
    """The amdgpu cards under `root`; [] when there is none or the directory cannot be read."""
    try:
        names = [n for n in os.listdir(root) if re.fullmatch(r"card\d+", n)]  # not card0-DP-1 connectors
    except OSError:
        return []
    return parse_sysfs(
        {n: {f: read_small_file(os.path.join(root, n, "device", f)) for f in SYSFS_FILES} for n in names}
    )


def detect_amd(runner: Runner = run_tool, sysfs_root: str = SYSFS_ROOT) -> tuple[list[AMDCard], str]:
    """AMD cards and how they were found ("rocm-smi" or the sysfs directory); ([], why) when none."""
    text = runner(ROCM_SMI, 10.0)
    if text is not None:
        cards = parse_rocm_smi_json(text)
        if cards:
            return cards, "rocm-smi"
    cards = read_sysfs(sysfs_root)
    if cards:
        return cards, sysfs_root
    why = "rocm-smi gave no card" if text is not None else "no rocm-smi"
    return [], f"{why}, no amdgpu card in {sysfs_root}"
