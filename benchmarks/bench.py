"""Speed targets for willitrun, measured (not asserted in tests): run `python benchmarks/bench.py`.

Targets: the CLI answers in well under 0.5 s wall time including Python start-up; one estimate,
and one max-context solve, take milliseconds; a full pass over the catalog (every model, its
estimate and max context on a 24 GiB card) stays under a second.
"""

from __future__ import annotations

import subprocess
import sys

from timing import report

from willitrun import Request, check_fit, estimate, load_catalog

GiB = 1 << 30


def main() -> None:
    cmd = [sys.executable, "-m", "willitrun", "llava-7b", "--gpu", "rtx3090", "-q"]
    cat = load_catalog()
    spec = cat.resolve("model", "llama-3.1-405b")
    req = Request()

    def catalog_pass() -> None:
        fresh = load_catalog()
        for m in fresh.models():
            check_fit(m, req, 24 * GiB, "x")

    report(
        [
            ("CLI: willitrun llava-7b --gpu rtx3090 (process)", lambda: subprocess.run(cmd, check=True), 10, 500),
            (
                "CLI: python -c 'import willitrun' (process)",
                lambda: subprocess.run([sys.executable, "-c", "import willitrun"], check=True),
                10,
                300,
            ),
            ("estimate llama-3.1-405b (1,134 tensors)", lambda: estimate(spec), 20, 50),
            (
                "estimate + max context, llama-3.1-8b on 24 GiB",
                lambda: check_fit(cat.resolve("model", "llama-3.1-8b"), req, 24 * GiB, "x"),
                20,
                50,
            ),
            ("load catalog + estimate and max context for every model", catalog_pass, 3, 5000),
        ]
    )


if __name__ == "__main__":
    main()
