"""Speed targets for willitrun, measured (not asserted in tests): run `python benchmarks/bench.py`.

Targets: the CLI answers in well under 0.5 s wall time including Python start-up; one estimate,
and one max-context solve, take milliseconds; a full pass over the catalog (every model, its
estimate and max context on a 24 GiB card) stays under a second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from willitrun import Request, check_fit, estimate, load_catalog

GiB = 1 << 30


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main() -> None:
    rows = []
    cmd = [sys.executable, "-m", "willitrun", "llava-7b", "--gpu", "rtx3090", "-q"]
    rows.append(("CLI: willitrun llava-7b --gpu rtx3090 (process)", *timed(lambda: subprocess.run(cmd, check=True), 10), 0.5))
    rows.append(("CLI: python -c 'import willitrun' (process)",
                 *timed(lambda: subprocess.run([sys.executable, "-c", "import willitrun"], check=True), 10), 0.3))
    cat = load_catalog()
    spec = cat.resolve("model", "llama-3.1-405b")
    rows.append(("estimate llama-3.1-405b (1,134 tensors)", *timed(lambda: estimate(spec), 20), 0.05))
    req = Request()
    rows.append(("estimate + max context, llama-3.1-8b on 24 GiB",
                 *timed(lambda: check_fit(cat.resolve("model", "llama-3.1-8b"), req, 24 * GiB, "x"), 20), 0.05))

    def catalog_pass() -> None:
        fresh = load_catalog()
        for m in fresh.models():
            check_fit(m, req, 24 * GiB, "x")

    rows.append(("load catalog + estimate and max context for every model", *timed(catalog_pass, 3), 5.0))
    print(f"{'case':60} {'median':>9} {'max':>9} {'target':>8}")
    failed = False
    for name, median, worst, target in rows:
        ok = median <= target
        failed |= not ok
        print(f"{name:60} {median * 1000:7.1f}ms {worst * 1000:7.1f}ms {target * 1000:6.0f}ms {'ok' if ok else 'SLOW'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
