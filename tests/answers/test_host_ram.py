"""The host side of an offload plan against this machine's memory (issue 18 §5): --ram SIZE, else
detect/host.py (faked here at its one entry point, host_memory), and nothing to check on a
unified-memory card. The host bytes themselves are the plan's own (tested with the offload answers);
these tests check that they are put against the RAM figure, that a plan spilling past it does not fit
and that the answer names where the figure came from."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.detect import host
from willitrun.detect.host import HostMemory
from willitrun.placement import host_room

GiB = 1 << 30
runner = CliRunner()
# llama-3.1-70b q4_k_m on a 24 GiB card: --offload puts 47 of 81 layers on the GPU, ~17.4 GiB on the host
PLAN = ("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload")


@pytest.fixture(autouse=True)
def _no_fixed_ram(monkeypatch):
    monkeypatch.delenv("WILLITRUN_RAM", raising=False)  # tests/conftest.py fixes it for the rest of the suite


def run(*args):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def as_json(*args):
    r = run(*args, "--json")
    assert r.exit_code in (0, 1, 5), r.output
    return r.exit_code, json.loads(r.stdout)


def test_host_room_compares_need_with_ram():
    assert host_room(10 * GiB, (16 * GiB, "--ram")).fits
    assert host_room(16 * GiB, (16 * GiB, "--ram")).fits  # exactly full still holds it
    spill = host_room(16 * GiB + 1, (16 * GiB, "--ram"))
    assert not spill.fits and "spills past RAM" in spill.line and "(--ram)" in spill.line
    unknown = host_room(10 * GiB, None, "could not be read")
    assert unknown.fits and "not checked (could not be read)" in unknown.line


def test_an_offload_plan_that_spills_past_ram_does_not_fit():
    code, plan = as_json(*PLAN, "--ram", "64GiB")
    need = plan["engine_offload"]["host_bytes"]
    assert code == 0 and plan["host_memory"] == {
        "need_bytes": need,
        "ram_bytes": 64 * GiB,
        "source": "--ram",
        "fits": True,
    }
    mib = 1 << 20
    assert as_json(*PLAN, "--ram", f"{-(-need // mib)}MiB")[0] == 0  # the plan's host side rounded up: fits
    code, d = as_json(*PLAN, "--ram", f"{(need - 1) // mib}MiB")  # rounded down, below it: does not
    assert code == 1 and d["verdict"] == "does_not_fit" and not d["host_memory"]["fits"]
    assert "host side needs" in d["verdict_reason"] and "(--ram)" in d["verdict_reason"]
    r = run(*PLAN, "--ram", "16GiB")
    assert r.exit_code == 1
    assert "DOES NOT FIT: with 47 of 81 layers on the GPU" in r.stdout and "spills past RAM" in r.stdout
    assert "Run it" not in r.stdout  # no launch line for a plan that does not fit


def test_the_detected_figure_is_what_can_be_allocated_now_else_the_total(monkeypatch):
    monkeypatch.setattr(host, "host_memory", lambda: HostMemory(64 * GiB, 8 * GiB, "/proc/meminfo"))
    code, d = as_json(*PLAN)
    assert code == 1 and d["host_memory"]["ram_bytes"] == 8 * GiB
    assert d["host_memory"]["source"] == "available now, /proc/meminfo"
    monkeypatch.setattr(host, "host_memory", lambda: HostMemory(64 * GiB, None, "sysctl hw.memsize"))
    code, d = as_json(*PLAN)
    assert (
        code == 0
        and d["host_memory"]["ram_bytes"] == 64 * GiB
        and d["host_memory"]["source"] == "total, sysctl hw.memsize"
    )
    monkeypatch.setattr(host, "host_memory", lambda: None)
    code, d = as_json(*PLAN)
    assert code == 0 and d["host_memory"]["ram_bytes"] is None and "give --ram" in d["host_memory"]["source"]


def test_expert_offload_and_the_transformers_plan_are_checked_too(monkeypatch):
    monkeypatch.setattr(host, "host_memory", lambda: pytest.fail("--ram given: nothing is detected"))
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--cpu-moe", "--ram", "8GiB")
    assert code == 1 and d["host_memory"]["need_bytes"] == d["host_bytes"] > 8 * GiB
    code, d = as_json("llama-3.1-70b", "--gpu", "rtx4090", "--offload", "--ram", "16GiB")
    assert code == 1 and d["host_memory"]["need_bytes"] == d["offload"]["system_bytes"]


def test_unified_memory_has_nothing_else_to_check(monkeypatch):
    monkeypatch.setattr(host, "host_memory", lambda: pytest.fail("a unified-memory card is the machine's memory"))
    code, d = as_json("llama-3.1-70b", "--gpu", "m3-ultra-96gb", "--dtype", "q4_k_m", "--offload")
    assert code == 0 and d["host_memory"]["ram_bytes"] is None and "unified memory" in d["host_memory"]["source"]


def test_willitrun_ram_stands_for_ram(monkeypatch):
    monkeypatch.setenv("WILLITRUN_RAM", "16GiB")
    code, d = as_json(*PLAN)
    assert code == 1 and d["host_memory"]["ram_bytes"] == 16 * GiB and d["host_memory"]["source"] == "WILLITRUN_RAM"
    assert as_json(*PLAN, "--ram", "64GiB")[0] == 0  # the flag wins


def test_ram_without_a_host_plan_is_one_usage_line():
    r = run("llama-3.1-8b", "--gpu", "rtx4090", "--ram", "32GiB")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--ram applies to" in r.output
    r = run(*PLAN, "--ram", "lots")
    assert r.exit_code == 2 and "--ram 'lots'" in r.output
