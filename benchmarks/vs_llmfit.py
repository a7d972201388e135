"""willitrun against llmfit, measured side by side in one run: `python benchmarks/vs_llmfit.py`.

Issue 17 §3 sets the targets as ratios to the Rust peer llmfit (`pip install llmfit`), each measured
here, on this machine, in the same run (A B A B ..., so a drift of the machine's speed hits both):

| willitrun                                          | llmfit                                   | target |
|----------------------------------------------------|------------------------------------------|--------|
| `check --rows` of 10,000 rows (every catalog model | `fit --csv` (its whole catalog)           | <= 1.0 |
|  x every catalog GPU, at the model's default context) |                                       |        |
| `llava-7b --gpu rtx3090` (the table)               | `plan llava-hf/llava-1.5-7b-hf -c 4096`  | <= 0.5 |
| the same, first run after install (cold cache)     | the same `plan`                          | <= 1.0 |
| `check llava-7b --gpu rtx3090` (one row)           | the same `plan`                          | <= 1.0 |
| `ladder llava-7b --gpu rtx3090` (one model)        | the same `plan`                          | <= 1.0 |

Both tools are told the card (llmfit `--memory 24G`, willitrun `--gpu rtx3090`), so neither spends
time on a driver that is not there. The ratio of each pair is willitrun's wall time over llmfit's;
the median of the pairs is reported with its min and max. Nothing but the standard library is used.

    python benchmarks/vs_llmfit.py                   # 7 pairs per row
    python benchmarks/vs_llmfit.py --runs 15 --llmfit /path/to/llmfit
    python benchmarks/vs_llmfit.py --record benchmarks/vs-llmfit-results.md
    python benchmarks/vs_llmfit.py --only ladder     # the cases whose label contains "ladder"
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = 10_000
PEER_PLAN = ["--memory", "24G", "plan", "llava-hf/llava-1.5-7b-hf", "--context", "4096"]


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def paired(a: list[str], b: list[str], runs: int, env_a, env_b) -> tuple[float, float, list[float]]:
    """Median wall times of A and B over `runs` alternating pairs (after one warm-up each), and each pair's A/B."""
    wall(a, env_a()), wall(b, env_b())
    ta, tb, ratios = [], [], []
    for _ in range(runs):
        x, y = wall(a, env_a()), wall(b, env_b())
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    return statistics.median(ta), statistics.median(tb), ratios


def rows_file(path: Path, willitrun: list[str], env: dict[str, str]) -> int:
    """ROWS lines `model,gpu`: every catalog model x every catalog GPU once, the rest drawn from those pairs."""
    code = (
        "from willitrun import load_catalog; c = load_catalog(); "
        "print(' '.join(c.files('model'))); print(' '.join(g.id for g in c.gpus()))"
    )
    out = subprocess.run([willitrun[0], "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    models, gpus = (line.split() for line in out.splitlines()[:2])
    pairs = [f"{m},{g}" for m in models for g in gpus]
    rng = random.Random(17)
    rows = pairs[:ROWS] + [rng.choice(pairs) for _ in range(ROWS - len(pairs))]
    rng.shuffle(rows)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="pairs per row (default 7)")
    parser.add_argument("--llmfit", help="the llmfit binary [default: llmfit on PATH]")
    parser.add_argument("--record", type=Path, help="also write the table (with the machine) to this file")
    parser.add_argument("--only", metavar="TEXT", help="time only the cases whose label contains TEXT (e.g. ladder)")
    opts = parser.parse_args()
    peer = opts.llmfit or shutil.which("llmfit")
    if not peer:
        print("llmfit not found: pip install llmfit (or --llmfit PATH); nothing to compare with", file=sys.stderr)
        return 2

    # wall() ignores exit codes: a peer that cannot run (a binary built against a newer glibc than the
    # machine's, "GLIBC_2.39 not found") would time its own failure, and the ratios would mean nothing
    trial = subprocess.run([peer, *PEER_PLAN], capture_output=True, text=True, check=False)
    if trial.returncode != 0:
        why = (trial.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"llmfit does not run here (exit {trial.returncode}: {why}); nothing to compare with", file=sys.stderr)
        return 2

    env = {**os.environ, "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    willitrun = [sys.executable, "-m", "willitrun"]
    work = Path(tempfile.mkdtemp(prefix="willitrun-vs-llmfit-"))
    # willitrun's modules are byte-compiled once, as `pip install` compiles an installed package: a caller
    # with PYTHONDONTWRITEBYTECODE set would otherwise time the compiling of every module on every run
    # (~50 ms); the bytecode goes to the work folder, not the source tree
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    warm_cache = work / "warm-cache"
    env["WILLITRUN_CACHE_DIR"] = str(warm_cache)
    rows = work / "rows.csv"
    n_pairs = rows_file(rows, willitrun, env)

    def warm() -> dict[str, str]:
        return env

    def cold() -> dict[str, str]:  # a new, empty catalog cache for every run: the first run after install
        return {**env, "WILLITRUN_CACHE_DIR": tempfile.mkdtemp(dir=work, prefix="cold-")}

    main_cmd = [*willitrun, "llava-7b", "--gpu", "rtx3090"]
    cases = [
        (
            f"check --rows, {ROWS:,} rows ({n_pairs:,} model x GPU pairs) vs fit --csv",
            [*willitrun, "check", "--rows", str(rows)],
            [peer, "--memory", "24G", "fit", "--csv"],
            warm,
            1.0,
        ),
        ("llava-7b --gpu rtx3090 (table) vs plan", main_cmd, [peer, *PEER_PLAN], warm, 0.5),
        ("the same, cold catalog cache vs plan", main_cmd, [peer, *PEER_PLAN], cold, 1.0),
        (
            "check llava-7b --gpu rtx3090 vs plan",
            [*willitrun, "check", "llava-7b", "--gpu", "rtx3090"],
            [peer, *PEER_PLAN],
            warm,
            1.0,
        ),
        (
            "ladder llava-7b --gpu rtx3090 vs plan",
            [*willitrun, "ladder", "llava-7b", "--gpu", "rtx3090"],
            [peer, *PEER_PLAN],
            warm,
            1.0,
        ),
    ]
    if opts.only:
        cases = [c for c in cases if opts.only in c[0]]
    lines = [
        f"median wall time of {opts.runs} alternating pairs (willitrun, llmfit); ratio = willitrun / llmfit",
        f"{'case':<68} {'willitrun':>9} {'llmfit':>8} {'ratio (min-max)':>20} {'target':>7}",
    ]
    print("\n".join(lines), flush=True)
    missed = 0
    for label, a, b, env_a, target in cases:
        ta, tb, ratios = paired(a, b, opts.runs, env_a, warm)
        r = statistics.median(ratios)
        ok = r <= target
        missed += not ok
        line = (
            f"{label:<68} {ta * 1000:>7.0f}ms {tb * 1000:>6.0f}ms "
            f"{r:>6.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) {target:>5.1f}x {'ok' if ok else 'MISSED'}"
        )
        print(line, flush=True)
        lines.append(line)
    shutil.rmtree(work, ignore_errors=True)
    if opts.record:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        head = (
            f"# willitrun vs llmfit\n\n*Written by `python benchmarks/vs_llmfit.py --record`; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python {platform.python_version()} on "
            f"{platform.machine()}, {os.cpu_count()} cores, load average {load}.*\n\n"
        )
        note = (
            "\nwillitrun's modules byte-compiled once before timing (as `pip install` does; PYTHONPYCACHEPREFIX "
            "in the work folder). Medians on a shared machine: the load average above moves the ratios.\n"
        )
        opts.record.write_text(head + "```\n" + "\n".join(lines) + "\n```\n" + note, encoding="utf-8")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
