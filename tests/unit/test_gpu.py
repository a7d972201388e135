"""NVML detection at its narrowest boundary: a fake pynvml module with recorded answers."""

from pathlib import Path

import pytest

from tests.fixtures.fake_nvml import (
    A100_80GB_UUID,
    MIG_2G_20GB,
    MIG_3G_40GB,
    FakeDevice,
    FakeNVML,
    a100_mig,
)
from willitrun import GPUDetectionError, UsageError
from willitrun.gpu import (
    default_gpu,
    detect_gpus,
    match_gpu,
    parse_cuda_visible_devices,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detect"
GIB, MIB = 1 << 30, 1 << 20
RTX3090 = FakeDevice("NVIDIA GeForce RTX 3090", 24576 << 20, 20000 << 20, "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6")
RTX4090 = FakeDevice("NVIDIA GeForce RTX 4090", 24564 << 20, 24000 << 20, "GPU-5a1f7ca4-3c2e-6a4b-1f4e-7b0c2d9e8a11")


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_detects_devices():
    nvml = FakeNVML()
    (gpu,) = detect_gpus(nvml)
    assert gpu.name == "NVIDIA GeForce RTX 3090" and gpu.total_bytes == 24576 << 20
    assert nvml.shutdown_called


def test_no_driver_is_one_clear_error():
    with pytest.raises(
        GPUDetectionError,
        match=r"no NVIDIA GPU found \(NVML could not start: Driver Not Loaded\); give the card with --gpu",
    ):
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


# ---- MIG and CUDA_VISIBLE_DEVICES ---------------------------------------------------------------
def test_mig_instance_not_the_whole_card():
    (first, second) = detect_gpus(FakeNVML([a100_mig(MIG_3G_40GB, MIG_2G_20GB)]))
    assert (first.name, first.total_bytes, first.mig_profile) == (
        "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
        40192 * MIB,
        "3g.40gb",
    )
    assert first.parent_name == "NVIDIA A100-SXM4-80GB" and first.index == 0
    assert second.total_bytes == 19968 * MIB


def test_mig_empty_slots_are_skipped():
    (only,) = detect_gpus(FakeNVML([a100_mig(slots={3: MIG_2G_20GB})]))
    assert only.mig_profile == "2g.20gb"


def test_mig_capable_card_with_mig_off_is_whole():
    dev = a100_mig(MIG_3G_40GB)
    dev.mig_enabled = False
    (whole,) = detect_gpus(FakeNVML([dev]))
    assert whole.total_bytes == 81920 * MIB and whole.mig_profile is None


def test_mig_on_without_instances():
    with pytest.raises(GPUDetectionError, match="MIG mode is on and no MIG instance exists"):
        detect_gpus(FakeNVML([a100_mig()]))


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", []),
        ("-1", []),
        ("0", ["0"]),
        ("1,0", ["1", "0"]),
        (" 0 , 2 ", ["0", "2"]),
        ("0,2,-1,1", ["0", "2"]),  # CUDA stops at the first invalid entry
        ("GPU-8932f937", ["GPU-8932f937"]),
        ("MIG-c788539f-c1ea-5a36-8b4d-9b07d024b1bb", ["MIG-c788539f-c1ea-5a36-8b4d-9b07d024b1bb"]),
        ("nvidia0", []),
    ],
)
def test_parse_cuda_visible_devices(value, expected):
    assert parse_cuda_visible_devices(value) == expected


@pytest.mark.parametrize(
    "cvd, names",
    [
        ("1", ["NVIDIA GeForce RTX 4090"]),
        ("1,0", ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]),
        ("GPU-5a1f", ["NVIDIA GeForce RTX 4090"]),  # a unique UUID prefix, as CUDA takes it
        ("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6,1", ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 4090"]),
        ("0,7,1", ["NVIDIA GeForce RTX 3090"]),  # index 7 does not exist: CUDA stops there
        ("0,0", ["NVIDIA GeForce RTX 3090"]),
    ],
)
def test_cuda_visible_devices_selects_and_orders(cvd, names):
    gpus = detect_gpus(FakeNVML([RTX3090, RTX4090]), env={"CUDA_VISIBLE_DEVICES": cvd})
    assert [g.name for g in gpus] == names


@pytest.mark.parametrize("cvd", ["", "-1", "7", "GPU-ffff", "GPU-"])
def test_cuda_visible_devices_hides_everything(cvd):
    with pytest.raises(GPUDetectionError, match=f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU"):
        detect_gpus(FakeNVML([RTX3090, RTX4090]), env={"CUDA_VISIBLE_DEVICES": cvd})


def test_cuda_visible_devices_picks_a_mig_instance():
    nvml = FakeNVML([RTX3090, a100_mig(MIG_3G_40GB, MIG_2G_20GB)])
    (mig,) = detect_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": MIG_2G_20GB.uuid})
    assert mig.mig_profile == "2g.20gb" and mig.index == 1
    gpus = detect_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": "1"})  # the MIG GPU by index: its instances
    assert [g.mig_profile for g in gpus] == ["3g.40gb", "2g.20gb"]
    gpus = detect_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": A100_80GB_UUID[:12]})
    assert [g.mig_profile for g in gpus] == ["3g.40gb", "2g.20gb"]
    # the R450/R460 form names the parent GPU and the GPU/compute instance ids
    (legacy,) = detect_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": f"MIG-{A100_80GB_UUID}/3/0"})
    assert legacy.mig_profile == "2g.20gb" and legacy.mig_instance == (3, 0)


# ---- the default GPU ----------------------------------------------------------------------------
def no_tools(argv, timeout):
    return None


def pick(catalog, tmp_path, env=None, **kw):
    kw.setdefault("nvml", FakeNVML(init_error="Driver Not Loaded"))
    kw.setdefault("runner", no_tools)
    kw.setdefault("system", "Linux")
    kw.setdefault("sysfs_root", str(tmp_path / "no-drm"))
    return default_gpu(catalog, env={"XDG_CONFIG_HOME": str(tmp_path), **(env or {})}, **kw)


def test_env_beats_config_and_detection(catalog, tmp_path):
    (tmp_path / "willitrun").mkdir()
    (tmp_path / "willitrun" / "config.toml").write_text('gpu = "t4"\n')
    got = pick(catalog, tmp_path, {"WILLITRUN_GPU": "rtx4090"}, nvml=FakeNVML())
    assert (got.device_id, got.source, got.spec.id) == ("rtx4090", "WILLITRUN_GPU", "rtx4090")
    assert got.total_bytes == got.spec.capacity_bytes
    assert got.explanation == "GPU from WILLITRUN_GPU=rtx4090: NVIDIA GeForce RTX 4090"


def test_config_beats_detection(catalog, tmp_path):
    (tmp_path / "willitrun").mkdir()
    path = tmp_path / "willitrun" / "config.toml"
    path.write_text('gpu = "t4"\n')
    got = pick(catalog, tmp_path, nvml=FakeNVML())
    assert (got.device_id, got.source) == ("t4", "config")
    assert got.explanation == f"GPU from {path}: gpu = 't4': {got.spec.name}"


@pytest.mark.parametrize(
    "value, device_id, total",
    [
        ("24GiB", "vram", 24 * GIB),
        ("81920MiB", "vram", 80 * GIB),
        ("24", "vram", 24 * GIB),
        ("3090", "rtx3090", 24576 * MIB),  # a bare number that is an alias is the card
        ("NVIDIA A100-SXM4-80GB", "a100-80gb", 80 * GIB),  # an NVML name
    ],
)
def test_env_names_a_card_or_a_size(catalog, tmp_path, value, device_id, total):
    got = pick(catalog, tmp_path, {"WILLITRUN_GPU": value})
    assert (got.device_id, got.total_bytes) == (device_id, total)


@pytest.mark.parametrize(
    "value, message",
    [
        ("rtx9999", r"^WILLITRUN_GPU=rtx9999: unknown GPU 'rtx9999'"),
        ("2xrtx3090", r"^WILLITRUN_GPU=2xrtx3090: names one card; give several with --gpu"),
        ("0.5MB", r"^WILLITRUN_GPU=0.5MB is too small"),
    ],
)
def test_env_errors_name_the_variable(catalog, tmp_path, value, message):
    with pytest.raises(UsageError, match=message):
        pick(catalog, tmp_path, {"WILLITRUN_GPU": value})


def test_nvml_card_matched_to_the_catalog(catalog, tmp_path):
    got = pick(catalog, tmp_path, nvml=FakeNVML([RTX3090, RTX3090]))
    assert (got.device_id, got.total_bytes, got.free_bytes, got.others) == ("rtx3090", 24576 * MIB, 20000 * MIB, 1)
    assert got.explanation == (
        "detected through NVML: GPU 0, NVIDIA GeForce RTX 3090, 24.00 GiB total, 19.53 GiB free; "
        "1 more visible (--gpu 2xrtx3090 estimates a split)"
    )


def test_mixed_cards_warn_about_cuda_order(catalog, tmp_path):
    got = pick(catalog, tmp_path, nvml=FakeNVML([RTX3090, RTX4090]))
    assert got.explanation.endswith(
        "; GPUs of different kinds: this is the first in PCI bus order, "
        "CUDA's device 0 only with CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )
    got = pick(catalog, tmp_path, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, nvml=FakeNVML([RTX3090, RTX4090]))
    assert "different kinds" not in got.explanation


def test_nvml_unknown_card_keeps_its_name_and_memory(catalog, tmp_path):
    got = pick(catalog, tmp_path, nvml=FakeNVML([("NVIDIA Some Future GPU", 48 * GIB, 47 * GIB)]))
    assert (got.device_id, got.name, got.total_bytes, got.spec) == ("nvml:0", "NVIDIA Some Future GPU", 48 * GIB, None)


def test_nvml_mig_slice(catalog, tmp_path):
    got = pick(catalog, tmp_path, nvml=FakeNVML([a100_mig(MIG_3G_40GB)]))
    assert (got.device_id, got.total_bytes, got.spec) == ("nvml:0/3g.40gb", 40192 * MIB, None)
    assert (
        got.explanation
        == "detected through NVML: MIG 3g.40gb on NVIDIA A100 80GB SXM (GPU 0), 39.25 GiB total, 39.03 GiB free"
    )


def test_nvml_respects_cuda_visible_devices(catalog, tmp_path):
    got = pick(catalog, tmp_path, {"CUDA_VISIBLE_DEVICES": "1"}, nvml=FakeNVML([RTX3090, RTX4090]))
    assert got.device_id == "rtx4090" and "(CUDA_VISIBLE_DEVICES=1)" in got.explanation and got.others == 0


def test_hidden_gpus_are_not_looked_for_elsewhere(catalog, tmp_path):
    with pytest.raises(GPUDetectionError, match=r"^no GPU visible: CUDA_VISIBLE_DEVICES='' hides every GPU; unset it"):
        pick(
            catalog,
            tmp_path,
            {"CUDA_VISIBLE_DEVICES": ""},
            nvml=FakeNVML(),
            runner=lambda argv, t: (FIXTURES / "rocm_smi_rx7900xt.json").read_text(),
        )


def test_amd_after_nvml(catalog, tmp_path):
    got = pick(catalog, tmp_path, runner=lambda argv, t: (FIXTURES / "rocm_smi_rx6800_raphael.json").read_text())
    assert (got.device_id, got.total_bytes, got.source, got.others) == ("amd:card0", 17163091968, "rocm-smi", 1)
    assert got.explanation == (
        "detected through rocm-smi: Navi 21 [Radeon RX 6800/6800 XT / 6900 XT] (card0), "
        "15.98 GiB total, 15.34 GiB free; the largest of 2 AMD GPUs"
    )


def test_amd_card_matched_to_the_catalog(catalog, tmp_path):
    text = '{"card0": {"VRAM Total Memory (B)": "25753026560", "Card Series": "Navi 31 [Radeon RX 7900 XTX]"}}'
    got = pick(catalog, tmp_path, runner=lambda argv, t: text)
    assert got.device_id == "rx-7900-xtx" and got.total_bytes == 25753026560


def test_amd_from_sysfs(catalog, tmp_path):
    got = pick(catalog, tmp_path, sysfs_root=str(FIXTURES / "sysfs_rx6800_raphael"))
    assert (got.device_id, got.name, got.source) == ("amd:card0", "AMD GPU 0x73bf", "sysfs")


def test_apple_on_darwin(catalog, tmp_path):
    sysctl = (FIXTURES / "sysctl_m2_max_96gb.txt").read_text()
    got = pick(catalog, tmp_path, system="Darwin", runner=lambda argv, t: sysctl if argv[0] == "sysctl" else None)
    assert (got.device_id, got.total_bytes) == ("m2-max-96gb", 72 * GIB)
    assert got.explanation == (
        "detected through sysctl: Apple M2 Max with 96 GiB of unified memory, "
        "72.00 GiB usable by the GPU (Metal's default share, 75%)"
    )


def test_apple_wired_limit_and_unknown_mac(catalog, tmp_path):
    sysctl = (FIXTURES / "sysctl_m2_max_96gb_wired.txt").read_text()
    got = pick(catalog, tmp_path, system="Darwin", runner=lambda argv, t: sysctl if argv[0] == "sysctl" else None)
    assert (got.device_id, got.total_bytes) == ("m2-max-96gb", 88000 * MIB)
    sysctl = (FIXTURES / "sysctl_m1_8gb.txt").read_text()
    got = pick(catalog, tmp_path, system="Darwin", runner=lambda argv, t: sysctl if argv[0] == "sysctl" else None)
    assert (got.device_id, got.name, got.total_bytes) == ("apple", "Apple M1 (8GB)", int(8 * GIB * 2 / 3))


def test_nothing_found_is_one_plain_message(catalog, tmp_path):
    with pytest.raises(GPUDetectionError) as exc:
        pick(catalog, tmp_path)
    assert str(exc.value) == (
        f"no GPU found (NVML could not start: Driver Not Loaded; AMD: no rocm-smi, no amdgpu card in {tmp_path}/no-drm); "
        "give the card with --gpu NAME (see `willitrun list gpus`) or its memory with --vram, e.g. --vram 24GiB, "
        f"or set a default in WILLITRUN_GPU or {tmp_path}/willitrun/config.toml"
    )
    with pytest.raises(GPUDetectionError, match=r"^no GPU found \(sysctl: not an Apple Silicon Mac\)"):
        pick(catalog, tmp_path, system="Darwin")
