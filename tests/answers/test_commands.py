"""The answer commands and the estimate command's extra answers: exit code first, then the output."""

import io
import json
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.fixtures.fake_nvml import FakeNVML
from willitrun import Request, check_fit, load_catalog
from willitrun.cli import app
from willitrun.cli.extras import estimate_extras
from willitrun.cli.models import devices as estimate_devices
from willitrun.cli.parse import gpus as parse_gpus
from willitrun.errors import UsageError
from willitrun.memory import estimate
from willitrun.render_answers import MemoryBar

runner = CliRunner()
GiB = 1 << 30


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", **(env or {})})


# ---- ladder ------------------------------------------------------------------------------------
def test_ladder_table():
    r = run("ladder", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    # the GGUF rows (llama.cpp) answer at the context its --fit picks for this card (common/fit.cpp), the
    # transformers rows at 4,096: a context column
    assert lines[0] == (
        "Llama 3.1 8B (llama-3.1-8b) on NVIDIA GeForce RTX 4060 Ti 16GB (16.00 GiB), each row's default context, batch 1"
    )
    assert lines[1].split() == [
        "weights",
        "KV",
        "ctx",
        "weights",
        "size",
        "KV",
        "size",
        "total",
        "fits",
        "headroom",
        "max",
        "context",
        "max",
        "batch",
    ]
    assert lines[2].split() == [
        "bf16",
        "f16",
        "4,096",
        "14.96",
        "GiB",
        "512.0",
        "MiB",
        "16.20",
        "GiB",
        "no",
        "-205.0",
        "MiB",
        "3,175",
        "0",
    ]
    # + what the totals of the two engines hold (Engine.runtime_overhead) and where llama.cpp's contexts come from
    assert len(lines) == 2 + 30 + 2 + 3
    # 35 MiB of headroom: inside the transformers profile's measured error (fit.ERROR_BANDS), so tightly
    assert lines[-5] == (
        "Best that fits, tightly: bf16 weights with a q8_0 KV cache (15.97 GiB, largest context 4,309)."
    )
    assert lines[-4].startswith("bf16 to int8 on transformers: totals include a measured 360 MiB")
    assert lines[-3].startswith("q8_0 to q2_k on llama.cpp: totals are its printed buffers")
    assert lines[-2].startswith("llama.cpp rows: the context the engine's --fit picks for this card")
    assert lines[3].split()[9] == "tight"
    q8 = next(line.split() for line in lines if line.startswith("q8_0     f16"))
    assert int(q8[2].replace(",", "")) > 4096  # --fit's context for the 16 GiB card


def test_ladder_on_an_engine_that_refuses_the_model_says_why():
    # whisper-tiny on llama.cpp: the main command refuses ("llama.cpp does not run Whisper"); the ladder once had
    # no row at all and crashed on the empty table (StopIteration, exit 70). Now: the same one line, exit 2.
    main = run("whisper-tiny", "--gpu", "rtx3090", "--engine", "llama.cpp")
    for args in ((), ("--json",)):
        r = run("ladder", "whisper-tiny", "--gpu", "rtx3090", "--engine", "llama.cpp", *args)
        assert r.exit_code == 2 == main.exit_code, r.output
        assert "llama.cpp does not run Whisper" in r.output and "internal error" not in r.output


def test_ladder_json_and_exit_codes():
    r = run("ladder", "llama-3.1-8b", "--vram", "16", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["gpu"] == "vram" and d["vram_bytes"] == 16 * GiB and len(d["rows"]) == 30
    assert d["best"] == d["rows"][1]
    assert run("ladder", "llama-3.1-405b", "--gpu", "rtx4090", "-c", "8192").exit_code == 1  # nothing fits
    r = run("ladder", "llama-3.1-8b", "--gpu", "rtx4090", "--vram", "24")
    assert r.exit_code == 2 and r.stderr == "error: give --gpu or --vram, not both\n"


# ---- gpus --------------------------------------------------------------------------------------
def test_gpus_table_and_json():
    r = run("gpus", "llama-3.1-8b", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    mem = [row["vram_bytes"] for row in d["rows"]]
    assert mem == sorted(mem) and len(mem) >= 40
    r = run("gpus", "llama-3.1-8b", "--context", "8192")
    assert r.exit_code == 0
    assert r.stdout.startswith(
        "Llama 3.1 8B (llama-3.1-8b): 17.09 GiB at context 8,192, batch 1 (bf16 weights, bf16 KV cache)\n"
    )
    assert "GPUs fit it on one card." in r.stdout


def test_gpus_count():
    r = run("gpus", "llama-2-70b", "--count", "rtx3090")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(
        "Llama 2 70B needs 8 x NVIDIA GeForce RTX 3090 (tensor parallel): 17.35 GiB of 24.00 GiB per card.\n"
    )
    assert "skipped 3 cards: attention heads (64) not divisible by 3" in r.stdout
    d = json.loads(run("gpus", "llama-2-70b", "--count", "3090", "--json").stdout)
    assert d["cards"] == 8 and d["split"]["count"] == 8 and d["split"]["fits"] is True
    r = run("gpus", "llama-3.1-405b", "--count", "rtx2060")
    assert r.exit_code == 1 and "does not fit on up to 64 x" in r.stdout


# ---- sweep -------------------------------------------------------------------------------------
def test_sweep_table():
    r = run("sweep", "whisper-large-v3", "--gpu", "t4")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1].split() == [
        "context",
        "weights",
        "KV",
        "self",
        "KV",
        "cross",
        "activations",
        "overhead",
        "total",
        "fits",
    ]
    assert r.stdout.splitlines()[2].split()[0] == "448"


def test_sweep_json_without_a_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(init_error="Driver Not Loaded"))
    r = run("sweep", "llama-2-7b", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["vram_bytes"] is None and d["gpu"] is None and d["max_context_tokens"] is None
    assert [p["context_tokens"] for p in d["points"]] == [512, 1024, 2048, 4096]
    assert "no GPU detected: fits not shown" in r.stderr


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    r = run("sweep", "llama-2-7b", "--vram", "24", "--plot", tmp_path / "s.svg")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "error: --plot needs matplotlib: pip install 'willitrun[plot]'\n"
    r = run("sweep", "llama-2-7b", "--vram", "24", "--plot", tmp_path / "s.pdf")
    assert r.exit_code == 2 and "give a file ending in .svg or .png" in r.stderr


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_plot_writes_the_file(tmp_path, suffix):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"sweep.{suffix}"
    r = run("sweep", "llama-3.1-8b", "--gpu", "rtx4090", "--plot", path)
    assert r.exit_code == 0, r.output
    data = path.read_bytes()
    assert data.startswith(b"<?xml" if suffix == "svg" else b"\x89PNG")
    if suffix == "svg":
        text = data.decode()
        for label in ("weights", "KV self", "activations", "overhead", "memory 23.99 GiB"):
            assert label in text
        run("sweep", "llama-3.1-8b", "--gpu", "rtx4090", "--plot", tmp_path / "again.svg")
        assert (tmp_path / "again.svg").read_bytes() == data  # reproducible: no date, fixed ids


@pytest.mark.parametrize("command", ["ladder", "gpus", "sweep"])
def test_help(command):
    r = run(command, "--help")
    assert r.exit_code == 0 and "Usage" in r.stdout


# ---- the memory bar ----------------------------------------------------------------------------
def test_memory_bar_shows_the_recurrent_state():
    e = estimate(load_catalog().resolve("model", "mamba-2.8b"), context=4096)
    console = Console(file=io.StringIO(), width=200, no_color=True, legacy_windows=False)
    console.print(MemoryBar(e, 12 * GiB, "rtx3060"))
    bar, legend = console.file.getvalue().splitlines()
    # the parts' cells still end where the total does (state included: 64 x 5120 x 20 x 4 B = 25 MiB)
    assert len(bar.rstrip(" │")) == round(e.total_bytes / (12 * GiB) * 99)
    assert "▚ state 25.0 MiB" in legend and "KV self" not in legend


def test_memory_bar():
    e = estimate(load_catalog().resolve("model", "llama-2-7b"), context=4096)
    console = Console(file=io.StringIO(), width=200, no_color=True, legacy_windows=False)
    console.print(MemoryBar(e, 24 * GiB, "rtx3090"))
    bar, legend = console.file.getvalue().splitlines()
    # 99 cells for 24 GiB (the larger of total and memory): weights 12.55 GiB take 52 of them, the
    # total (15.22 GiB) ends at cell 63, and the memory mark closes the bar
    assert len(bar) == 100 and bar.endswith("│")
    assert bar.count("█") == round(e.weights_bytes / (24 * GiB) * 99) == 52
    assert len(bar.rstrip(" │")) == round(e.total_bytes / (24 * GiB) * 99) == 63
    assert legend.startswith("█ weights 12.55 GiB  ▓ KV self 2.00 GiB  ░ activations")
    assert legend.endswith("│ rtx3090 24.00 GiB")
    # over the memory: the bar spans the total and the mark stands inside it
    console = Console(file=io.StringIO(), width=200, no_color=True, legacy_windows=False)
    console.print(MemoryBar(e, 8 * GiB, "small"))
    bar = console.file.getvalue().splitlines()[0]
    assert bar.index("│") == round(8 * GiB / e.total_bytes * 99) and len(bar) == 100


# ---- extra answers of the estimate command -----------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["rtx3090"], ["rtx3090"]),
        (["2xrtx3090"], ["rtx3090", "rtx3090"]),
        (["3x3090", "rtx4090"], ["3090", "3090", "3090", "rtx4090"]),
        (["2 x a100-80gb"], ["a100-80gb", "a100-80gb"]),
    ],
)
def test_parse_gpus(values, expected):
    assert parse_gpus(values) == expected


def extras(model, gpus, vram=None, req=None, **kw):
    cat = load_catalog()
    spec = cat.resolve("model", model)
    req = req or Request()
    device, name, memory, cards = estimate_devices(cat, gpus, vram, True)
    fit = check_fit(spec, req, memory.card_bytes, device)
    return fit, estimate_extras(spec, req, fit, cards, device_name=name, **kw)


def test_extras_several_cards_decide_the_verdict():
    fit, x = extras("llama-2-70b", ["2xa100-80gb"], speed=True)
    assert not fit.fits and x.fits is True  # 130.9 GiB: not on one card, on two by tensor parallelism
    assert x.data["split"]["kind"] == "tensor" and x.data["split"]["count"] == 2
    assert x.data["decode_speed"]["terms"][0]["where"] == "each of 2 cards, in parallel"
    fit, x = extras("llama-2-70b", ["rtx3090", "rtx4060-ti-16gb"], split="layer")
    assert x.fits is False and x.data["split"]["kind"] == "layer"
    with pytest.raises(UsageError, match="identical cards"):
        extras("llama-2-7b", ["rtx3090", "rtx4060-ti-16gb"], split="tensor")


def test_extras_one_card():
    _, x = extras("llama-2-70b", ["rtx3090"], offload=True, speed=True, max_batch=True, system_bandwidth_gb_s=60)
    assert x.fits is None and set(x.data) == {"max_batch", "offload", "decode_speed"}
    assert x.data["offload"]["n_gpu_layers"] == 14 and x.data["max_batch"]["max_batch"] == 0
    assert x.data["decode_speed"]["terms"][1] == {
        "where": "system memory",
        "bytes": x.data["decode_speed"]["terms"][1]["bytes"],
        "bandwidth_bytes_s": 60 * 10**9,
    }
    _, x = extras("llama-2-7b", ["rtx3090"], chart=True)
    assert isinstance(x.chart, MemoryBar) and x.data == {} and x.views == []


@pytest.mark.parametrize(
    ("gpus", "vram", "kw", "message"),
    [
        (["rtx3090"], None, {"split": "tensor"}, "--split needs several cards"),
        (["2xrtx3090"], None, {"split": "pipe"}, "--split 'pipe': choose tensor or layer"),
        (["2xrtx3090"], None, {"offload": True}, "--offload is estimated for one card"),
        (None, "24", {"speed": True}, "--speed needs a catalog GPU"),
        (["rtx3090"], None, {"system_bandwidth_gb_s": 50.0}, "--system-bandwidth applies to --offload --speed"),
        (["65xrtx3090"], None, {}, "give 1 to 64 cards"),
        (["rtx3090"], "24", {}, "not both"),
    ],
)
def test_extras_usage_errors(gpus, vram, kw, message):
    with pytest.raises(UsageError, match=message):
        extras("llama-2-7b", gpus, vram, **kw)


def test_estimate_command_with_extras():
    r = run("llama-2-70b", "--gpu", "2xa100-80gb", "--speed", "--json")
    assert r.exit_code == 0  # the split fits, though one card does not
    d = json.loads(r.stdout)
    assert d["fits"] is False and d["split"]["fits"] is True and "decode_speed" in d
    r = run("llama-2-70b", "--gpu", "rtx3090", "--offload", "--speed", "--max-batch")
    # the exit code follows the plan printed: the offload fits (issue 19 §5), and the verdict says how
    assert r.exit_code == 0
    assert "FITS with 14 of 80 layers on the GPU (llama.cpp -ngl 14): 23.66 GiB of 24.00 GiB" in r.stdout
    assert "Partial offload (llama.cpp -ngl): 14 of 80 repeating layers on the GPU (-ngl 14" in r.stdout
    assert "Decode speed: at most" in r.stdout and "Largest batch at 4,096 tokens: none" in r.stdout
    r = run("llama-2-7b", "--gpu", "2x3090", "--split", "layer")
    assert r.exit_code == 0 and "Split over 2 x NVIDIA GeForce RTX 3090 (layer split, context 4,096):" in r.stdout
