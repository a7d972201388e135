"""The verdict against free memory (issue 19 §3): FITS, TIGHT (exit 5) and DOES NOT FIT, the engine's
reserve, vLLM's share of the total, --margin, the measured error band, and --offload's exit code."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.fixtures.detection import isolate_detection
from tests.fixtures.fake_nvml import FakeNVML
from willitrun.cli import app
from willitrun.errors import ExitCode
from willitrun.fit import DOES_NOT_FIT, ERROR_BANDS, FITS, TIGHT, ErrorBand, Memory, judge

GIB, MIB = 1 << 30, 1 << 20
RTX_4090_TOTAL = 24564 * MIB  # nvidia-smi's total for an RTX 4090 (hardware_specs/rtx4090.yaml)


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"})


# ---- the error band is data from the calibration comparisons ------------------------------------------
def test_error_bands_are_the_calibration_comparisons():
    """fit.ERROR_BANDS is generated from tests/engines/calibration.py (the rows of docs/accuracy.md): per
    engine, the largest sum of absolute buffer errors of one measured run. When the calibration data
    change, this prints the new table to paste."""
    from tests.engines.calibration import comparisons

    per_run: dict[str, int] = defaultdict(int)
    engine_of: dict[str, str] = {}
    for c in comparisons():
        if c.informational:
            continue
        engine = {"llama.cpp mtmd": "llama.cpp", "transformers profile (openai-whisper)": "transformers"}.get(
            c.engine, c.engine
        )
        per_run[c.entry] += abs(c.estimate_bytes - c.measured_bytes)
        engine_of[c.entry] = engine
    bands: dict[str, ErrorBand] = {}
    for entry, err in per_run.items():
        e = engine_of[entry]
        runs = sum(1 for x in engine_of.values() if x == e)
        if e not in bands or err >= bands[e].bytes:
            bands[e] = ErrorBand(err, runs, entry)
    assert bands == ERROR_BANDS, "\n".join(f"    {e!r}: {b!r}," for e, b in bands.items())
    # ollama's band comes from its own logs (calibration_extra.yaml: five runs of 0.7.0 to 0.32.13)
    assert ERROR_BANDS["ollama"].runs >= 5


# ---- judge: the rule, case by case ---------------------------------------------------------------------
def test_free_memory_makes_a_fit_tight():
    """Issue 19's case: with 7.98 GiB free of 19.98 GiB, a 16.2 GiB need printed FITS and exited 0."""
    v = judge(int(16.2 * GIB), Memory(int(19.98 * GIB), int(7.98 * GIB)), "transformers")
    assert v.status == TIGHT and v.exit_code == ExitCode.TIGHT == 5 and v.fits
    assert "free now" in v.reason and v.headroom_bytes < 0
    # the same need with the card idle fits; without a free figure (--gpu/--vram) the total decides
    assert judge(int(16.2 * GIB), Memory(int(19.98 * GIB), int(19.5 * GIB)), "transformers").status == FITS
    assert judge(int(16.2 * GIB), Memory(int(19.98 * GIB)), "transformers").status == FITS
    assert judge(int(20 * GIB), Memory(int(19.98 * GIB), int(19.98 * GIB)), "transformers").status == DOES_NOT_FIT


def test_llama_cpp_keeps_its_fit_target_free():
    """llama.cpp's --fit keeps 1024 MiB free per device (common/arg.cpp `--fit-target`, default 1024): a
    need 512 MiB below what is free is TIGHT on llama.cpp; on transformers (no reserve of its own; its
    band is 173 MiB) the same need FITS."""
    need, free = 5 * GIB, 5 * GIB + 512 * MIB
    memory = Memory(RTX_4090_TOTAL, free)
    assert judge(need, memory, "llama.cpp").status == TIGHT
    assert judge(need, memory, "llama.cpp").reserve_bytes == 1024 * MIB
    assert judge(need, memory, "transformers").status == FITS
    assert judge(need, Memory(RTX_4090_TOTAL, free + 1024 * MIB), "llama.cpp").status == FITS


def test_vllm_refuses_to_start_when_its_share_is_not_free():
    """vLLM V1 takes gpu_memory_utilization x the TOTAL and refuses to start when less is free
    (vllm/v1/worker/gpu_worker.py `init_device`: "Free memory on device (6.92/8.0 GiB) on startup is
    less than desired GPU memory utilization (0.9, 7.2 GiB)", the figures of a reported start-up)."""
    total = 8 * GIB
    share = int(0.9 * total)
    need = 5 * GIB
    tight = judge(need, Memory(total, int(6.92 * GIB)), "vllm", share_bytes=share, utilization=0.9)
    assert tight.status == TIGHT and "refuses to start" in tight.reason
    assert judge(need, Memory(total, int(7.5 * GIB)), "vllm", share_bytes=share, utilization=0.9).status == FITS
    over = judge(share + 1, Memory(total), "vllm", share_bytes=share, utilization=0.9)
    assert over.status == DOES_NOT_FIT and over.headroom_bytes == -1


def test_headroom_inside_the_measured_error_is_tight():
    band = ERROR_BANDS["llama.cpp"].bytes
    card = 8 * GIB
    assert judge(card - band + 1, Memory(card), "llama.cpp").status == TIGHT
    assert judge(card - band, Memory(card), "llama.cpp").status == FITS
    ollama = ERROR_BANDS["ollama"].bytes  # measured since session 5 (calibration_extra.yaml)
    assert judge(card - ollama, Memory(card), "ollama").status == FITS
    assert judge(card - ollama + 1, Memory(card), "ollama").status == TIGHT


def test_margin_comes_off_the_card():
    v = judge(15 * GIB, Memory(16 * GIB, None, 2 * GIB), "llama.cpp")
    assert v.status == DOES_NOT_FIT and v.available_bytes == 14 * GIB


# ---- the command line: a detected card's free memory ---------------------------------------------------
@pytest.fixture
def rtx4090(monkeypatch, tmp_path):
    """A detected RTX 4090 with `free` bytes free (NVML, through the fake pynvml module)."""
    isolate_detection(monkeypatch, tmp_path)

    def card(free: int) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", FakeNVML((("NVIDIA GeForce RTX 4090", RTX_4090_TOTAL, free),)))

    return card


def test_a_busy_detected_card_is_tight(rtx4090):
    rtx4090(int(7.98 * GIB))
    r = run("llama-3.1-8b", "-q")
    assert r.exit_code == 5
    r = run("llama-3.1-8b", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 5 and d["verdict"] == "tight" and d["free_bytes"] == int(7.98 * GIB)
    assert d["card_total_bytes"] == RTX_4090_TOTAL and d["fits"] is True  # fits the card, not what is free
    r = run("llama-3.1-8b")
    assert "TIGHT: 16.20 GiB of 7.98 GiB free now (23.99 GiB card)" in " ".join(r.stdout.split())


def test_an_idle_detected_card_fits_and_names_its_total(rtx4090):
    rtx4090(int(23.5 * GIB))
    r = run("llama-3.1-8b")
    assert r.exit_code == 0
    assert "FITS: 16.20 GiB of 23.50 GiB free now (23.99 GiB card)" in " ".join(r.stdout.split())
    r = run("llama-3.1-8b", "--dtype", "q4_k_m", "--json")  # llama.cpp: its 1024 MiB fit target is taken off
    d = json.loads(r.stdout)
    assert d["engine"] == "llama.cpp" and d["engine_reserve_bytes"] == 1024 * MIB
    assert d["available_bytes"] == int(23.5 * GIB) - 1024 * MIB
    text = " ".join(run("llama-3.1-8b", "--dtype", "q4_k_m").stdout.split())
    assert "of 22.50 GiB (23.50 GiB free now of the 23.99 GiB card, less 1.00 GiB the engine keeps free)" in text


def test_without_detection_there_is_no_free_figure():
    for dtype in ("bf16", "q4_k_m"):  # transformers, llama.cpp: its fit target applies to free memory only
        r = run("llama-3.1-8b", "--gpu", "rtx4090", "--dtype", dtype, "--json")
        d = json.loads(r.stdout)
        assert r.exit_code == 0 and d["verdict"] == "fits" and "free_bytes" not in d
        assert d["available_bytes"] == d["vram_bytes"] and d["engine_reserve_bytes"] == 0
    from willitrun.render import size

    text = " ".join(run("llama-3.1-8b", "--gpu", "rtx4090", "--dtype", "q4_k_m").stdout.split())
    assert f"FITS: {size(d['need_bytes'])} of 23.99 GiB, {size(d['verdict_headroom_bytes'])} headroom (" in text


# ---- --margin in every command --------------------------------------------------------------------------
def test_margin_in_every_command():
    # llama-3.1-8b in bf16 needs 16.20 GiB: 8 GiB off a 24 GiB card leaves 15.99 GiB
    assert run("llama-3.1-8b", "--gpu", "rtx4090", "--margin", "8GiB", "-q").exit_code == 1
    assert run("llama-3.1-8b", "--gpu", "rtx4090", "--margin", "2GiB", "-q").exit_code == 0
    r = run("ladder", "llama-3.1-8b", "--gpu", "rtx4090", "--margin", "8GiB", "--json")
    assert json.loads(r.stdout)["rows"][0]["verdict"] == "does_not_fit"
    r = run("gpus", "llama-3.1-8b", "--margin", "8GiB", "--json")
    row = next(x for x in json.loads(r.stdout)["rows"] if x["gpu"] == "rtx4090")
    assert row["verdict"] == "does_not_fit"
    # a split keeps the margin free on every card: Llama 2 70B in fp16 (128 GiB of weights) fits 2 x 80 GiB,
    # not 2 x 60 GiB
    assert run("llama-2-70b", "--gpu", "2xa100-80gb", "-q").exit_code == 0
    assert run("llama-2-70b", "--gpu", "2xa100-80gb", "--margin", "20GiB", "-q").exit_code == 1
    r = run("llama-3.1-8b", "--gpu", "rtx4090", "--margin", "30GiB")
    assert r.exit_code == 2 and "--margin" in r.stderr


# ---- --offload: the exit code follows the plan printed -------------------------------------------------
def test_an_offload_plan_that_fits_exits_as_fitting():
    r = run("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload", "--json")
    d = json.loads(r.stdout)
    plan = d["engine_offload"]
    assert r.exit_code == 0 and d["verdict"] == "fits" and d["fits"] is False  # the whole model does not
    assert d["need_bytes"] == plan["gpu_bytes"] <= d["vram_bytes"]
    r = run("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload")
    text = " ".join(r.stdout.split())
    assert (
        f"FITS with {plan['gpu_layers']} of {plan['n_layer'] + 1} layers on the GPU (-ngl {plan['gpu_layers']})" in text
    )


def test_when_nothing_single_fits_it_says_what_would():
    """70B on a 4090 at a context given (issue 19): offload, how many cards, or a smaller type. (Without one,
    --fit's own plan is the answer: tests/engines/test_llamacpp_fit_context.py.)"""
    r = run("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "-c", "4096", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 1 and d["verdict"] == "does_not_fit"
    hints = d["suggestions"]
    assert hints[0].startswith("--offload: ") and hints[1].startswith("--gpu 2xrtx4090")
    # each hint is an answer of its own: two cards fit as the main command says
    assert run("llama-3.1-70b", "--gpu", "2xrtx4090", "--dtype", "q4_k_m", "-q").exit_code == 0
    r = run("llama-3.1-8b", "--gpu", "rtx4090", "--engine", "vllm", "--json")  # bf16 at the 131,072 window
    d = json.loads(r.stdout)
    assert d["suggestions"][0] == f"--context {d['max_context_tokens']} fits (the largest that does)"
    assert run(
        "llama-3.1-8b", "--gpu", "rtx4090", "--engine", "vllm", "--context", str(d["max_context_tokens"]), "-q"
    ).exit_code in (0, 5)
    r = run("llama-3.1-8b", "--gpu", "rtx3060", "--engine", "vllm", "--context", "4096", "--json")
    hint = next(h for h in json.loads(r.stdout)["suggestions"] if h.startswith("--dtype "))
    dtype = hint.split()[1]
    assert run(
        "llama-3.1-8b", "--gpu", "rtx3060", "--engine", "vllm", "--context", "4096", "--dtype", dtype, "-q"
    ).exit_code in (0, 5)


def test_an_amd_card_is_judged_against_what_rocm_smi_reports_free(monkeypatch, tmp_path):
    """rocm-smi's recorded answer for an RX 7900 XT (tests/fixtures/detect/rocm_smi_rx7900xt.json:
    21,458,059,264 bytes total, 27,856,896 used): free is total less used, shown beside the total."""
    from pathlib import Path

    isolate_detection(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(init_error="Driver Not Loaded"))
    answer = (Path(__file__).parents[1] / "fixtures" / "detect" / "rocm_smi_rx7900xt.json").read_text()
    monkeypatch.setattr(
        "willitrun.detect.run.run_tool", lambda argv, timeout=5.0: answer if "rocm-smi" in argv[0] else None
    )
    r = run("llama-3.2-1b", "--json")
    d = json.loads(r.stdout)
    assert d["card_total_bytes"] == 21458059264 and d["free_bytes"] == 21458059264 - 27856896
    assert d["available_bytes"] == d["free_bytes"] and r.exit_code == 0


def test_sweep_takes_the_margin_as_the_main_command_does():
    main = json.loads(run("llama-3.1-8b", "--gpu", "rtx4090", "--margin", "8GiB", "--json").stdout)
    sw = json.loads(run("sweep", "llama-3.1-8b", "--gpu", "rtx4090", "--margin", "8GiB", "--json").stdout)
    assert sw["max_context_tokens"] == main["max_context_tokens"] < 4096


# ---- properties of the rule ------------------------------------------------------------------------------
RANK = {FITS: 0, TIGHT: 1, DOES_NOT_FIT: 2}
ENGINES = sorted({*ERROR_BANDS, "ollama"})
sizes = st.integers(min_value=1, max_value=1 << 40)


@settings(max_examples=300, deadline=None)
@given(
    need=sizes,
    extra=st.integers(min_value=0, max_value=1 << 36),
    total=sizes,
    free=st.one_of(st.none(), sizes),
    margin=st.integers(min_value=0, max_value=1 << 34),
    engine=st.sampled_from(ENGINES),
)
def test_more_need_never_judges_better_and_more_free_memory_never_worse(need, extra, total, free, margin, engine):
    memory = Memory(total, None if free is None else min(free, total), min(margin, total - 1))
    base = judge(need, memory, engine)
    assert RANK[judge(need + extra, memory, engine).status] >= RANK[base.status]
    if memory.free_bytes is not None:
        roomier = Memory(total, min(memory.free_bytes + extra, total), memory.margin_bytes)
        assert RANK[judge(need, roomier, engine).status] <= RANK[base.status]
    # the status and its exit code agree, and DOES NOT FIT is exactly "more than the card less the margin"
    assert base.exit_code == {FITS: 0, TIGHT: 5, DOES_NOT_FIT: 1}[base.status]
    assert (base.status == DOES_NOT_FIT) == (need > memory.card_bytes)


def test_transformers_says_what_would_fit_too():
    """Llama 3.1 70B in bf16 on one RTX 4090: no smaller setting on one card fits, so the answer names
    partial offload and the count of cards (`gpus --count rtx4090`, the same tensor-parallel search)."""
    r = run("llama-3.1-70b", "--gpu", "rtx4090", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 1
    count = json.loads(run("gpus", "llama-3.1-70b", "--count", "rtx4090", "--json").stdout)["cards"]
    assert d["suggestions"][-1].startswith(f"--gpu {count}xrtx4090: {count} of these cards fit")
    assert any(s.startswith("--offload: ") for s in d["suggestions"])
    assert run("llama-3.1-70b", "--gpu", f"{count}xrtx4090", "-q").exit_code == 0


def test_check_exits_5_when_a_row_is_tight_and_none_fails():
    """llama-3.1-8b in bf16 with a q8_0 cache on 16 GiB: 35 MiB left, inside the transformers profile's
    measured error (173 MiB): TIGHT, as the main command and the ladder's row say."""
    args = ("llama-3.1-8b", "--gpu", "rtx4060-ti-16gb", "--kv-dtype", "q8_0")
    assert run(*args, "-q").exit_code == 5
    r = run("check", *args)
    assert r.exit_code == 5 and "TIGHT" in r.stdout
    assert (
        run("check", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb", "--gpu", "rtx4090", "--kv-dtype", "q8_0").exit_code
        == 5
    )
    assert (
        run("check", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb", "--gpu", "rtx3060", "--kv-dtype", "q8_0").exit_code
        == 1
    )
