"""Intel Arc cards from a sysfs tree built in tmp (detect/intel.py's root parameter), the real parsing and
matching code on it, and the detection order of gpu.default_gpu (NVML, AMD, then Intel).

The trees hold what the drivers publish: the PCI vendor and device files of every DRM card (0x8086 Intel;
device ids of the kernel's include/drm/intel/pciids.h: 0x56A0 in INTEL_DG2_G10_D_IDS, 0xE20B in
INTEL_BMG_G21_IDS, 0x46A6 in INTEL_ADLP_IDS), Intel's out-of-tree i915 `lmem_total_bytes` /
`lmem_avail_bytes` on the DRM minor (intel-gpu-i915-backports i915_sysfs.c), and Linux 6.8 xe's per-tile
`device/tileN/physical_vram_size_bytes` (xe_tile_sysfs.c; igt tests/intel/xe_sysfs_tile.c).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.fake_nvml import FakeNVML
from willitrun.detect.intel import detect_intel, read_card
from willitrun.errors import GPUDetectionError
from willitrun.gpu import default_gpu

GIB = 1 << 30


def card(root: Path, name: str, vendor: str, device: str, files: dict[str, str] | None = None) -> None:
    d = root / name / "device"
    d.mkdir(parents=True)
    (d / "vendor").write_text(vendor + "\n")
    (d / "device").write_text(device + "\n")
    for rel, text in (files or {}).items():
        p = root / name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")


def pick(catalog, tmp_path, root):
    return default_gpu(
        catalog,
        env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")},
        nvml=FakeNVML(init_error="Driver Not Loaded"),
        runner=lambda argv, t: None,
        system="Linux",
        sysfs_root=str(root),
    )


def test_b580_on_xe_with_its_tile_size(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0x46a6")  # the laptop's integrated Alder Lake-P graphics
    card(root, "card1", "0x8086", "0xe20b", {"device/tile0/physical_vram_size_bytes": str(12 * GIB + (64 << 20))})
    (root / "card1-DP-1").mkdir()  # a connector, not a card
    got = pick(catalog, tmp_path, root)
    assert (got.device_id, got.name, got.total_bytes, got.source) == (
        "arc-b580",
        "Intel Arc B580",
        12 * GIB + (64 << 20),
        "sysfs",
    )
    assert got.explanation == (
        "detected through sysfs: Intel Arc B580 (card1, PCI id 0xe20b), 12.06 GiB total (xe physical_vram_size_bytes)"
    )


def test_a770_size_from_i915_decides_the_catalog_card(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0x56a0", {"lmem_total_bytes": str(16 * GIB), "lmem_avail_bytes": str(15 * GIB)})
    got = pick(catalog, tmp_path, root)
    assert (got.device_id, got.total_bytes, got.free_bytes) == ("arc-a770-16gb", 16 * GIB, 15 * GIB)
    root8 = tmp_path / "drm8"
    card(root8, "card0", "0x8086", "0x56a0", {"lmem_total_bytes": str(8 * GIB)})
    got = pick(catalog, tmp_path, root8)  # the 8 GB A770 is not the catalog's 16 GB card: its own figure
    assert (got.device_id, got.name, got.total_bytes, got.spec) == ("intel:card0", "Intel Arc A770", 8 * GIB, None)


def test_a_card_with_one_size_needs_no_published_figure(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0xe20b")  # mainline xe: no size file
    got = pick(catalog, tmp_path, root)
    assert (got.device_id, got.total_bytes) == ("arc-b580", 12 * GIB)
    assert got.explanation.endswith("12.00 GiB total (its one memory size)")


def test_an_unknown_intel_card_with_a_published_size_is_taken_as_reported(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card2", "0x8086", "0x56c0", {"lmem_total_bytes": str(16 * GIB)})  # Data Center Flex 170
    got = pick(catalog, tmp_path, root)
    assert (got.device_id, got.name, got.total_bytes, got.spec) == ("intel:card2", "Intel GPU 0x56c0", 16 * GIB, None)


def test_no_card_to_answer_for_says_why(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0x46a6")
    card(root, "card1", "0x8086", "0x56a0")  # an A770 on mainline i915: 8 or 16 GB, nothing says which
    card(root, "card2", "0x10de", "0x2684")  # an NVIDIA card NVML did not answer for: not Intel's to read
    cards, why = detect_intel(str(root))
    assert cards == [] and why == (
        "Intel GPU 0x46a6 (card0) is integrated graphics (system memory); "
        "Intel Arc A770 (card1) comes with 8 GB or 16 GB and its driver publishes no size"
    )
    with pytest.raises(GPUDetectionError, match=r"Intel: Intel GPU 0x46a6 \(card0\) is integrated graphics"):
        pick(catalog, tmp_path, root)


@pytest.mark.parametrize(
    "text",
    ["", "-1", "0", "12 GiB", "9" * 40, "\x00\x01", "1" * 5000],
)
def test_damaged_size_files_are_not_sizes(tmp_path, text):
    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0x56c0", {"lmem_total_bytes": text, "device/tile0/physical_vram_size_bytes": text})
    got = read_card(str(root), "card0")
    assert got is not None and got.total_bytes is None


def test_a_fifo_or_folder_in_place_of_a_file_is_not_read(tmp_path):
    import os

    root = tmp_path / "drm"
    card(root, "card0", "0x8086", "0x56c0")
    os.mkfifo(root / "card0" / "lmem_total_bytes")  # would block an open() without O_NONBLOCK
    (root / "card0" / "device" / "tile0" / "physical_vram_size_bytes").mkdir(parents=True)
    got = read_card(str(root), "card0")
    assert got is not None and got.total_bytes is None


def test_amd_before_intel(catalog, tmp_path):
    root = tmp_path / "drm"
    card(root, "card0", "0x1002", "0x744c", {"device/mem_info_vram_total": str(20 * GIB)})
    card(root, "card1", "0x8086", "0xe20b", {"lmem_total_bytes": str(12 * GIB)})
    assert pick(catalog, tmp_path, root).device_id == "amd:card0"
