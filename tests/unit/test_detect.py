"""GPU detection without NVML: pure parsers on recorded tool output (tests/fixtures/detect/,
sources in its README), the runner's limits, and the WILLITRUN_GPU / config-file settings."""

import os
import sys
import time
from pathlib import Path

import pytest

from willitrun.detect.amd import (
    AMDCard,
    detect_amd,
    parse_rocm_smi_json,
    parse_sysfs,
    read_sysfs,
)
from willitrun.detect.apple import (
    AppleChip,
    chip_from,
    detect_apple,
    parse_sysctl,
    parse_system_profiler,
)
from willitrun.detect.config import (
    Setting,
    _parse_simple,
    config_path,
    from_config,
    from_env,
)
from willitrun.detect.run import read_small_file, run_tool
from willitrun.errors import UsageError
from willitrun.units import looks_like_size, parse_size

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detect"
GIB, MIB = 1 << 30, 1 << 20


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


# ---- rocm-smi and sysfs -----------------------------------------------------------------------
def test_rocm_smi_one_card():
    assert parse_rocm_smi_json(recorded("rocm_smi_rx7900xt.json")) == [
        AMDCard("card0", "Radeon RX 7900 XT", 21458059264, 27856896)
    ]


def test_rocm_smi_card_and_igpu():
    cards = parse_rocm_smi_json(recorded("rocm_smi_rx6800_raphael.json"))
    assert [(c.card, c.name, c.total_bytes) for c in cards] == [
        ("card0", "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]", 17163091968),
        ("card1", "Raphael", 64 * MIB),
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        # rocm-smi may print warnings before the JSON
        (
            "WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n"
            + '{"card0": {"VRAM Total Memory (B)": "1024", "Card series": "Fiji [Radeon R9 FURY / NANO Series]"}}',
            [AMDCard("card0", "Fiji [Radeon R9 FURY / NANO Series]", 1024)],
        ),  # older key spelling (easybuild#3978)
        (
            '{"card0": {"VRAM Total Memory (B)": "1024", "Card Model": "0x744c"}}',
            [AMDCard("card0", "AMD GPU 0x744c", 1024)],
        ),
        ('{"card0": {"VRAM Total Memory (B)": "N/A"}, "system": {"Driver version": "6.8"}}', []),
        ("ERROR: No AMD GPUs specified", []),
        ('{"card0": [1, 2]}', []),
        ("{not json", []),
        ("", []),
    ],
)
def test_rocm_smi_odd_output(text, expected):
    assert parse_rocm_smi_json(text) == expected


def test_sysfs_reads_cards_not_connectors():
    assert read_sysfs(str(FIXTURES / "sysfs_rx6800_raphael")) == [
        AMDCard("card0", "AMD GPU 0x73bf", 17163091968, 692142080),
        AMDCard("card1", "AMD GPU 0x164e", 64 * MIB, 26079232),
    ]


def test_sysfs_skips_other_vendors_and_uses_product_name():
    cards = {
        "card0": {"vendor": "0x10de\n", "mem_info_vram_total": "25769803776\n"},  # NVIDIA: not amdgpu
        "card1": {
            "vendor": "0x1002\n",
            "device": "0x74a1\n",
            "product_name": "AMD Instinct MI300X\n",
            "mem_info_vram_total": "206141652992\n",
            "mem_info_vram_used": None,
        },
    }
    assert parse_sysfs(cards) == [AMDCard("card1", "AMD Instinct MI300X", 206141652992)]


def test_sysfs_missing_directory():
    assert read_sysfs("/nonexistent/drm") == []


def test_detect_amd_prefers_rocm_smi_then_sysfs():
    sysfs = str(FIXTURES / "sysfs_rx6800_raphael")
    cards, how = detect_amd(lambda argv, timeout: recorded("rocm_smi_rx7900xt.json"), sysfs)
    assert how == "rocm-smi" and cards[0].name == "Radeon RX 7900 XT"
    cards, how = detect_amd(lambda argv, timeout: None, sysfs)
    assert how == sysfs and len(cards) == 2
    assert detect_amd(lambda argv, timeout: None, "/nonexistent") == ([], "no rocm-smi, no amdgpu card in /nonexistent")


# ---- Apple Silicon ----------------------------------------------------------------------------
def test_sysctl_lines():
    assert parse_sysctl(recorded("sysctl_m1_8gb.txt")) == {
        "hw.memsize": "8589934592",
        "machdep.cpu.brand_string": "Apple M1",
        "iogpu.wired_limit_mb": "0",
    }


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("system_profiler_m3_pro.json", "Apple M3 Pro"),  # only _name names the chip in this recording
        ("system_profiler_m1.json", "Apple M1"),  # _name is kHW_AppleM1Item; sppci_model names it
    ],
)
def test_system_profiler_names_the_chip(fixture, expected):
    assert parse_system_profiler(recorded(fixture)) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"SPDisplaysDataType": [{"_name": "Intel Iris Pro", "sppci_model": "Intel Iris Pro"}]}',  # an Intel Mac
        '{"SPDisplaysDataType": "x"}',
        "[]",
        "not json",
        "",
    ],
)
def test_system_profiler_without_apple_gpu(text):
    assert parse_system_profiler(text) is None


def test_apple_chip_default_share():
    m1 = chip_from(parse_sysctl(recorded("sysctl_m1_8gb.txt")))
    assert m1 == AppleChip("Apple M1", 8 * GIB, None)
    assert m1.gpu_bytes == int(8 * GIB * 2 / 3)  # 2/3 up to 36 GiB
    m2 = chip_from(parse_sysctl(recorded("sysctl_m2_max_96gb.txt")))
    assert m2.gpu_bytes == 72 * GIB  # 3/4: llama.cpp#3213 prints 73728 MiB on this Mac


def test_apple_chip_wired_limit():
    chip = chip_from(parse_sysctl(recorded("sysctl_m2_max_96gb_wired.txt")))
    assert chip.wired_limit_bytes == 88000 * MIB and chip.gpu_bytes == 88000 * MIB


def test_detect_apple_asks_system_profiler_when_sysctl_has_no_chip_name():
    calls = []

    def runner(argv, timeout):
        calls.append(argv[0])
        return recorded("sysctl_m1_macos11.txt") if argv[0] == "sysctl" else recorded("system_profiler_m1.json")

    assert detect_apple(runner) == AppleChip("Apple M1", 16 * GIB, None)
    assert calls == ["sysctl", "system_profiler"]


def test_detect_apple_not_a_mac():
    assert detect_apple(lambda argv, timeout: None) is None
    assert (
        detect_apple(
            lambda argv, timeout: (
                "hw.memsize: 17179869184\nmachdep.cpu.brand_string: Intel(R) Core(TM) i7\n"
                if argv[0] == "sysctl"
                else None
            )
        )
        is None
    )


# ---- the runner -------------------------------------------------------------------------------
def test_run_tool_missing_is_none():
    assert run_tool(["willitrun-no-such-tool-here"], 1.0) is None


def test_run_tool_output_whatever_the_exit_status():
    assert run_tool([sys.executable, "-c", "print('hw.memsize: 1'); raise SystemExit(1)"], 10.0) == "hw.memsize: 1\n"


def test_run_tool_timeout_kills_the_tool_and_its_children():
    # the child keeps our pipe open: without killing its process group, communicate() would wait 60 s
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    start = time.monotonic()
    assert run_tool([sys.executable, "-c", code], 0.5) is None
    assert time.monotonic() - start < 10


def test_run_tool_too_much_output():
    assert run_tool([sys.executable, "-c", "print('x' * (2 << 20))"], 10.0) is None


def test_read_small_file(tmp_path):
    (tmp_path / "ok").write_text("0x1002\n")
    (tmp_path / "big").write_text("x" * 5000)
    assert read_small_file(str(tmp_path / "ok")) == "0x1002\n"
    assert read_small_file(str(tmp_path / "big")) is None
    assert read_small_file(str(tmp_path)) is None  # a directory
    assert read_small_file(str(tmp_path / "absent")) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_read_small_file_does_not_block_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert read_small_file(str(tmp_path / "fifo")) is None


# ---- WILLITRUN_GPU and the config file ----------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ("rtx3090", Setting("gpu", "rtx3090", "WILLITRUN_GPU")),
        ("  NVIDIA GeForce RTX 3090 ", Setting("gpu", "NVIDIA GeForce RTX 3090", "WILLITRUN_GPU")),
        ("24GiB", Setting("vram", "24GiB", "WILLITRUN_GPU")),
        ("81920 MiB", Setting("vram", "81920 MiB", "WILLITRUN_GPU")),
        ("4090", Setting("vram", "4090", "WILLITRUN_GPU")),  # a bare number; default_gpu tries it as an alias first
        ("", None),
        ("   ", None),
    ],
)
def test_env_setting(value, expected):
    assert from_env({"WILLITRUN_GPU": value}) == expected


def test_env_unset():
    assert from_env({}) is None


@pytest.mark.parametrize(
    "text, ok",
    [
        ("24GiB", True),
        ("24 gb", True),
        ("0.5TB", True),
        ("24", True),
        ("a100", False),
        ("24 parsecs", False),
        ("2xrtx3090", False),
        ("", False),
    ],
)
def test_looks_like_size(text, ok):
    assert looks_like_size(text) is ok


def test_parse_size_names_the_setting():
    """One parser for --vram and the default GPU's size; the error names where the size came from."""
    assert parse_size("24GiB", "WILLITRUN_GPU=24GiB") == 24 * GIB == parse_size("24GiB")
    assert parse_size("24", "x") == 24 * GIB
    with pytest.raises(UsageError, match=r"^WILLITRUN_GPU=0\.1MB is too small"):
        parse_size("0.1MB", "WILLITRUN_GPU=0.1MB")
    with pytest.raises(UsageError, match="more than 1 PiB"):
        parse_size("2000TB", "x")
    with pytest.raises(UsageError, match=r"^--vram '24 parsecs': give a size"):
        parse_size("24 parsecs")
    long = "1" * 100_000  # refused by its length before the backtracking pattern reads it
    assert not looks_like_size(long)
    with pytest.raises(UsageError, match=r"^WILLITRUN_GPU=1+: give a size"):
        parse_size(long, f"WILLITRUN_GPU={long}")


def test_config_path_follows_xdg(tmp_path):
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == str(tmp_path / "willitrun" / "config.toml")
    home = os.path.expanduser("~")
    assert config_path({"XDG_CONFIG_HOME": "relative/dir"}) == os.path.join(home, ".config", "willitrun", "config.toml")
    assert config_path({}) == os.path.join(home, ".config", "willitrun", "config.toml")


def write_config(tmp_path, text):
    path = tmp_path / "willitrun" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return {"XDG_CONFIG_HOME": str(tmp_path)}, str(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('# my card\ngpu = "rtx3090"\n', ("gpu", "rtx3090")),
        ("vram = '24GiB'  # the A10G on the CI box\n", ("vram", "24GiB")),
        ("vram = 24\n", ("vram", "24")),
        ("", None),
    ],
)
def test_config_file(tmp_path, text, expected):
    env, path = write_config(tmp_path, text)
    setting = from_config(env)
    assert (setting and (setting.kind, setting.value)) == expected
    if setting:
        assert setting.origin == path


def test_config_file_absent(tmp_path):
    assert from_config({"XDG_CONFIG_HOME": str(tmp_path)}) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ('gpu = "rtx3090"\nvram = "24GiB"\n', "give gpu or vram, not both"),
        ('gpus = "rtx3090"\n', "unknown key gpus"),
        ("gpu = 3090\n", 'gpu must be a string, e.g. gpu = "rtx3090"'),
        ('gpu = ""\n', "gpu is empty"),
        ("gpu = rtx3090\n", "not valid TOML" if sys.version_info >= (3, 11) else "expected key"),
    ],
)
def test_config_file_errors_name_the_file(tmp_path, text, message):
    env, path = write_config(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        from_config(env)
    assert str(exc.value).startswith(path) and message in str(exc.value)


def test_config_file_must_be_a_small_regular_file(tmp_path):
    env, path = write_config(tmp_path, 'gpu = "rtx3090"\n' + "# padding\n" * 8000)
    with pytest.raises(UsageError, match="regular file of at most 64 KiB"):
        from_config(env)
    os.remove(path)
    os.mkdir(path)
    with pytest.raises(UsageError, match="regular file"):
        from_config(env)


def test_simple_reader_for_python_3_10():
    assert _parse_simple('# c\n\ngpu = "rtx3090"  # mine\nvram = 24.5\n', "f") == {"gpu": "rtx3090", "vram": 24.5}
    with pytest.raises(UsageError, match=r"^f:2: gpu is given twice"):
        _parse_simple('gpu = "a"\ngpu = "b"\n', "f")
    with pytest.raises(UsageError, match=r"^f:1: expected key"):
        _parse_simple("[section]\n", "f")


def test_saved_overheads_read_alike_by_both_readers(tmp_path):
    """What `explain --save` writes (quoted flat keys), and the same keys written bare and dotted (TOML reads
    those as nested tables), give one flat dict through tomllib (3.11+) and through the 3.10 line reader."""
    from willitrun.detect.config import SavedOverhead, parse_config, save_overhead, saved_overheads

    env, path = write_config(tmp_path, '# mine\ngpu = "rtx3090"\n')
    save_overhead(SavedOverhead("llama.cpp", "rtx4090", 3945 << 20, "2026-12-07", "server.log"), env)
    save_overhead(SavedOverhead("vllm", "any", 1921997373, "2026-12-07", "-"), env)
    written = Path(path).read_text()
    expected = {
        "gpu": "rtx3090",
        "overhead.llama.cpp.rtx4090.bytes": 3945 << 20,
        "overhead.llama.cpp.rtx4090.date": "2026-12-07",
        "overhead.llama.cpp.rtx4090.log": "server.log",
        "overhead.vllm.any.bytes": 1921997373,
        "overhead.vllm.any.date": "2026-12-07",
        "overhead.vllm.any.log": "-",
    }
    assert _parse_simple(written, "f") == parse_config(written, "f") == expected
    bare = written.replace('"overhead.', "overhead.").replace('" =', " =")
    assert bare != written and _parse_simple(bare, "f") == parse_config(bare, "f") == expected
    assert from_config(env) is not None and from_config(env).value == "rtx3090"  # type: ignore[union-attr]
    assert [(o.engine, o.card, o.bytes) for o in saved_overheads(env)] == [
        ("llama.cpp", "rtx4090", 3945 << 20),
        ("vllm", "any", 1921997373),
    ]
    # one key written both ways is given twice, whichever reader reads it
    twice = written + 'overhead.vllm.any.log = "x"\n'
    with pytest.raises(UsageError, match=r"overhead\.vllm\.any\.log is given twice"):
        _parse_simple(twice, "f")
    with pytest.raises(UsageError):
        parse_config(twice, "f")
