"""The hostile cases of issue 13 section 2 that reach files.py, catalog.py, validate.py and the
importers, through the real entry point: exit 2 or 3, one line naming the file, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    env.pop("WILLITRUN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "willitrun", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_error(r: subprocess.CompletedProcess[str], code: int, *says: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    line = r.stderr.strip()
    assert line.startswith("error: ") and all(s in line for s in says), line
    return line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_model_or_import_source(tmp_path, fifo):
    one_error(run(fifo, "--vram", "24"), 2, str(fifo), "is a FIFO, not a regular file")
    one_error(run("import", fifo), 2, str(fifo), "is a FIFO")
    link = tmp_path / "config.json"
    link.symlink_to(fifo)
    one_error(run(link, "--vram", "24"), 2, "is a FIFO")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_model_or_import_source(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    one_error(run(device, "--vram", "24"), 2, device, "is a character device, not a regular file")
    one_error(run("import", device), 2, device)


def test_hostile_files_inside_specs_dir(tmp_path, fifo):
    d = tmp_path / "model_specs"
    d.mkdir()
    os.rename(fifo, d / "piped.yaml")
    (d / "bomb.yaml").write_text("id: bomb\na: &a [x, x]\nb: &b [*a, *a]\naliases: [*b]\n")
    (d / "dup.yml").write_text("id: dup\nid: dup\n")
    assert run("llama-2-7b", "--vram", "24", "-q", "--specs-dir", tmp_path).returncode == 0
    one_error(run("piped", "--vram", "24", "--specs-dir", tmp_path), 3, "piped.yaml: is a FIFO")
    one_error(run("bomb", "--vram", "24", "--specs-dir", tmp_path), 3, "bomb.yaml:2: YAML anchors and aliases")
    one_error(run("dup", "--vram", "24", "--specs-dir", tmp_path), 3, "dup.yml:2: duplicate key 'id'")


def test_validate_reports_every_hostile_file_once(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "big.yaml").write_text(f"id: big\nvocab_size: {'9' * 5000}\n")
    (d / "deep.yaml").write_text("[" * 100_000 + "]" * 100_000)
    (d / "float.yaml").write_text("memory_gib: 1.0e+400\n")
    r = run("validate", tmp_path)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == len(set(lines)) == 3
    assert "big.yaml:2: an integer of 5,000 digits (more than 4,300)" in lines[0]
    assert "deep.yaml:1: nested deeper than 32 levels" in lines[1]
    assert "float.yaml:1: '1.0e+400' is beyond the float range" in lines[2]


def test_validate_strict_prints_each_problem_once(tmp_path):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    text = (ROOT / "hardware_specs" / "rtx3090.yaml").read_text()
    (d / "rtx3090.yaml").write_text(
        "".join(x for x in text.splitlines(keepends=True) if not x.startswith("  bandwidth_gb_s:"))
    )
    r = run("validate", "--strict", tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and any("bandwidth_gb_s: number without a source" in x for x in lines)
    assert len(lines) == len({x.split(": ", 1)[1] for x in lines}), lines


def test_validate_with_no_path_in_a_spec_repository(tmp_path):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    (d / "mine.yml").write_text(
        (ROOT / "hardware_specs" / "rtx3090.yaml").read_text().replace('id: "rtx3090"', "id: mine")
    )
    r = run("validate", cwd=tmp_path)
    assert r.returncode == 0 and "1 spec files valid" in r.stdout, r.stderr


def test_a_model_name_too_long_for_a_file_name():
    r = run("a" * 256, "--vram", "24")
    one_error(r, 2, "unknown model")


def test_escape_sequences_in_a_spec_name_are_not_printed_raw(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    text = (ROOT / "model_specs" / "llama-2-7b.yaml").read_text().replace("id: llama-2-7b", "id: evil")
    (d / "evil.yaml").write_text(text.replace("\nconfig:", '\n"\\e]0;pwned\\a": 1\nconfig:', 1))
    r = run("evil", "--vram", "24", "--specs-dir", tmp_path)
    one_error(r, 3, "\\x1b]0;pwned\\x07: unknown field")
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_cluster_file_that_is_not_a_regular_file_or_holds_aliases(tmp_path, fifo):
    """--cluster FILE goes through the same reader as the specs: a FIFO never blocks, a device is not
    read until memory runs out, and YAML aliases are refused."""
    one_error(run("llama-3.1-8b", "--cluster", fifo, "-q"), 2, str(fifo), "is a FIFO, not a regular file")
    if os.path.exists("/dev/zero"):
        one_error(run("llama-3.1-8b", "--cluster", "/dev/zero", "-q"), 2, "/dev/zero", "is a character device")
    bomb = tmp_path / "cluster.yaml"
    bomb.write_text("a: &x [1]\nb: *x\n")
    one_error(run("llama-3.1-8b", "--cluster", bomb, "-q"), 2, "anchors and aliases")
