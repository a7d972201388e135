"""NVML detection at its narrowest boundary: a fake pynvml module with recorded answers."""

import pytest

from tests.fixtures.fake_nvml import FakeNVML
from willitrun import GPUDetectionError
from willitrun.gpu import detect_gpus, match_gpu


def test_detects_devices():
    nvml = FakeNVML()
    (gpu,) = detect_gpus(nvml)
    assert gpu.name == "NVIDIA GeForce RTX 3090" and gpu.total_bytes == 24576 << 20
    assert nvml.shutdown_called


def test_no_driver_is_one_clear_error():
    with pytest.raises(GPUDetectionError, match=r"no NVIDIA GPU found \(NVML could not start: Driver Not Loaded\); give the card with --gpu"):
        detect_gpus(FakeNVML(init_error="Driver Not Loaded"))


def test_zero_devices():
    with pytest.raises(GPUDetectionError, match="0 devices"):
        detect_gpus(FakeNVML(devices=[]))


def test_bytes_names_are_decoded():
    (gpu,) = detect_gpus(FakeNVML(devices=[(b"Tesla T4", 15360 << 20, 15000 << 20)]))
    assert gpu.name == "Tesla T4"


def test_match_by_nvml_name(catalog):
    assert match_gpu("NVIDIA GeForce RTX 3090", catalog.gpus()).id == "rtx3090"
    assert match_gpu("nvidia geforce rtx 3090", catalog.gpus()).id == "rtx3090"
    assert match_gpu("Some Future GPU", catalog.gpus()) is None


def test_shared_nvml_name_picks_by_memory(catalog):
    gpus = catalog.gpus()
    assert match_gpu("NVIDIA GeForce RTX 4060 Ti", gpus, 16 << 30).id == "rtx4060-ti-16gb"
    assert match_gpu("NVIDIA GeForce RTX 4060 Ti", gpus, 8 << 30).id == "rtx4060-ti"
