"""Every catalog model through every single-model command, with a cold and a warm catalog cache.

Issue 17: `willitrun florence-2-base --gpu t4` answered on the first run and exited 70 on every run
after it: the warm run builds specs with the pydantic-free stand-ins (willitrun/records.py), which
had no `model_copy`. Nothing but the whole catalog through the whole command set, cold and warm,
finds such a thing before a user does.

Affordable on two cores: the command lines run in a few real processes (tests/hostile/catalog_driver.py
runs many lines in one process exactly as the entry point runs one), not one process per line; a
sample runs as separate `python -m willitrun` processes as well.

What must hold, for every model and command:
- no internal error: the exit code is a verdict (0, 1, 5) or a documented user error, never 70;
- the warm answer is the cold answer, byte for byte (the cache changes speed, not answers);
- the plain estimate from the pydantic-free stand-ins is the pydantic answer, byte for byte;
- `--json` output parses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("catalog_driver.py")
MODELS = sorted(p.stem for p in (ROOT / "model_specs").glob("*.yaml"))
GPU = "t4"
# Exit codes an answer may have (README "Exit codes"): 0 fits, 1 does not fit, 5 tight, 2 the command
# does not apply to this model (e.g. a speech model with an option it lacks). Never 70.
VERDICTS = {0, 1, 5}
ANSWERS = {*VERDICTS, 2}


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_")}
    return {
        **env,
        "WILLITRUN_CACHE_DIR": str(cache),
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        **extra,
    }


class Drive:
    """The driver in its own process, started at once (two passes run side by side on two cores)."""

    def __init__(self, lines: list[list[str]], cache: Path, *, records: bool, cold: bool) -> None:
        env = _env(cache, WILLITRUN_RECORDS="1" if records else "0")
        self.process = subprocess.Popen(
            [sys.executable, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"lines": lines, "records": records, "cold": cold}))  # read at once
        self.process.stdin.close()
        self.process.stdin = None  # communicate() would flush it

    def results(self) -> list[tuple[int, str, str]]:
        try:
            out, err = self.process.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert self.process.returncode == 0, err[-3000:]
        return [tuple(r) for r in json.loads(out)]


def drive(lines: list[list[str]], cache: Path, *, records: bool, cold: bool) -> list[tuple[int, str, str]]:
    return Drive(lines, cache, records=records, cold=cold).results()


def _estimate_lines() -> list[list[str]]:
    return [[m, "--gpu", GPU, *extra] for m in MODELS for extra in ([], ["--json"])]


def _command_lines() -> list[list[str]]:
    lines = _estimate_lines()
    for m in MODELS:
        for extra in ([], ["--json"]):
            lines += [
                ["ladder", m, "--gpu", GPU, *extra],
                ["gpus", m, *extra],
                ["gpus", m, "--count", GPU, *extra],
                ["sweep", m, "--gpu", GPU, *extra],
                ["show", m, *extra],
            ]
    for extra in ([], ["--json"]):
        lines.append(["check", *MODELS, "--gpu", GPU, *extra])
    return lines


def _wait_out_racy_timestamps() -> None:
    """The cache keeps no entry for a file changed in the last 2 s (catalog/cache.py RACY_NS): in a
    fresh checkout the warm pass would silently be a second cold one."""
    newest = max(p.stat().st_mtime for p in (ROOT / "model_specs").glob("*.yaml"))
    newest = max(newest, *(p.stat().st_mtime for p in (ROOT / "hardware_specs").glob("*.yaml")))
    time.sleep(max(0.0, newest + 3 - time.time()))


def _check(lines: list[list[str]], results: list[tuple[int, str, str]]) -> None:
    bad = [
        (" ".join(a), code, err.strip()[-300:])
        for a, (code, _, err) in zip(lines, results, strict=True)
        if code not in ANSWERS
    ]
    assert not bad, bad[:10]
    for args, (code, out, err) in zip(lines, results, strict=True):
        if "--json" in args and code in VERDICTS:
            for line in out.splitlines() if args[0] == "check" else [out]:
                json.loads(line)
        if code == 2:  # a user error: one line, no traceback
            assert err.startswith("error: ") and "Traceback" not in err, (args, err)


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory: pytest.TempPathFactory):
    _wait_out_racy_timestamps()
    lines = _command_lines()
    cold_pass = Drive(lines, tmp_path_factory.mktemp("cold"), records=False, cold=True)
    warm_dir = tmp_path_factory.mktemp("warm")
    # `show` validates and stores each model spec, `gpus` each GPU spec: the cache is then warm
    drive([["show", m] for m in MODELS] + [["gpus", MODELS[0]]], warm_dir, records=False, cold=False)
    warm = drive(lines, warm_dir, records=False, cold=False)
    return lines, cold_pass.results(), warm, warm_dir


def test_no_command_crashes_on_any_catalog_model_cold(cold_and_warm) -> None:
    lines, cold, _, _ = cold_and_warm
    _check(lines, cold)
    # Most of the catalog fits a T4 at its default context with some command: the test ran answers.
    assert sum(code == 0 for code, _, _ in cold) > len(lines) // 4


def test_warm_answers_are_the_cold_answers(cold_and_warm) -> None:
    lines, cold, warm, warm_dir = cold_and_warm
    _check(lines, warm)
    differ = [" ".join(a) for a, c, w in zip(lines, cold, warm, strict=True) if c != w]
    assert not differ, differ[:10]
    cache = json.loads(next(warm_dir.glob("catalog-*.json")).read_bytes().partition(b"\n")[2])
    cached = {(Path(k).parent.name, Path(k).stem) for k, v in cache.items() if "spec" in v}
    # the warm pass really read every spec from the cache
    assert {m for d, m in cached if d == "model_specs"} == set(MODELS)
    assert {g for d, g in cached if d == "hardware_specs"} == {p.stem for p in (ROOT / "hardware_specs").glob("*.yaml")}


def test_the_pydantic_free_estimate_answers_as_pydantic_for_every_model(cold_and_warm) -> None:
    """The warm plain estimate without pydantic (WILLITRUN_RECORDS=1: a needed fallback fails)."""
    all_lines, _, warm, warm_dir = cold_and_warm
    lines = _estimate_lines()
    with_pydantic = warm[: len(lines)]  # the warm pass starts with these lines, run with pydantic
    assert all_lines[: len(lines)] == lines
    # and `check` of every model (cli/lean.py parse_check: its pairs use the stand-ins too)
    checks = [(a, w) for a, w in zip(all_lines, warm, strict=True) if a[0] == "check"]
    lines += [a for a, _ in checks]
    with_pydantic += [w for _, w in checks]
    without = drive(lines, warm_dir, records=True, cold=False)
    _check(lines, without)
    differ = [(" ".join(a), w[2][-300:]) for a, p, w in zip(lines, with_pydantic, without, strict=True) if p != w]
    assert not differ, differ[:10]


def _main(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "willitrun", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.parametrize("model", ["florence-2-base", "llava-7b", "whisper-large-v3", "jamba-mini-1.5"])
def test_real_processes_cold_then_warm(tmp_path: Path, model: str) -> None:
    """The issue's report as it was made: the same command twice in real processes."""
    _wait_out_racy_timestamps()
    env = _env(tmp_path)
    first, second = _main([model, "--gpu", GPU], env), _main([model, "--gpu", GPU], env)
    assert first.returncode in VERDICTS and "internal error" not in first.stderr, first.stderr
    assert (second.returncode, second.stdout, second.stderr) == (first.returncode, first.stdout, first.stderr)


def test_an_internal_error_never_exits_with_a_verdict(tmp_path: Path) -> None:
    """With WILLITRUN_DEBUG the traceback is printed, and the code is still 70 (1 reads "does not fit")."""
    code = (
        "import willitrun.cli as c, willitrun.cli.estimation as e\n"
        "def boom(a): raise RuntimeError('a bug')\n"
        "e.run_estimate = boom\n"
        "c.main()\n"
    )
    for debug in ("", "1"):
        env = _env(tmp_path, WILLITRUN_DEBUG=debug) if debug else _env(tmp_path)
        p = subprocess.run(
            [sys.executable, "-c", code, "llava-7b", "--gpu", GPU],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert p.returncode == 70, (debug, p.returncode, p.stderr)
        assert p.stderr.splitlines()[-1].startswith("internal error: RuntimeError: a bug")
        assert ("Traceback" in p.stderr) == bool(debug)
