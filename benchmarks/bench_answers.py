"""Speed targets of the answers (answers.py, placement.py), measured, not asserted in tests:
run `python benchmarks/bench_answers.py` (exit 1 if a median misses its target).

Every answer must feel instant: the solvers (largest batch, splits, offload) a few milliseconds,
the 30-row ladder and the whole-catalog GPU table well under 0.1 s, a sweep of every catalog
model under half a second, and the `ladder` command under 0.5 s wall time with Python start-up.
"""

from __future__ import annotations

import subprocess
import sys

from timing import report

from willitrun import Request, load_catalog
from willitrun.answers import (
    cards_needed,
    decode_speed,
    device,
    layer_split,
    layout,
    max_batch,
    offload,
    quant_ladder,
    sweep,
    tensor_split,
    which_gpus,
)
from willitrun.memory import estimate_resolved, resolve

GiB = 1 << 30


def main() -> None:
    cat = load_catalog()
    m8, m70, m405 = (cat.resolve("model", m) for m in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"))
    r8, r70 = resolve(m8, Request()), resolve(m70, Request())
    rtx3090, a100 = device(cat.resolve("gpu", "rtx3090")), device(cat.resolve("gpu", "a100-80gb"))
    gpus = cat.gpus()
    models = cat.models()
    e8 = estimate_resolved(r8, 4096, 1, 1)

    def catalog_sweep() -> None:
        for m in models:
            sweep(m, Request(), 24 * GiB)

    cli = [sys.executable, "-m", "willitrun", "ladder", "llama-3.1-8b", "--gpu", "rtx4090", "--json"]
    report(
        [
            # (case, fn, repeat, target in ms)
            ("solver: largest batch, llama-3.1-8b at 4,096 on 24 GiB", lambda: max_batch(r8, 24 * GiB, 4096), 50, 5),
            (
                "solver: tensor split + max context, llama-3.1-70b on 2 x A100",
                lambda: tensor_split(r70, 4096, 1, 1, [a100] * 2),
                20,
                25,
            ),
            (
                "solver: layer split + max context, llama-3.1-70b on 4 x 3090",
                lambda: layer_split(r70, 4096, 1, 1, [rtx3090] * 4),
                20,
                25,
            ),
            ("solver: offload, llama-3.1-70b on a 3090", lambda: offload(r70, 4096, 1, 1, rtx3090.vram_bytes), 20, 10),
            (
                "solver: decode speed, llama-3.1-8b",
                lambda: decode_speed(layout(r8), e8, rtx3090.bandwidth_bytes_s or 1),
                50,
                5,
            ),
            ("solver: cards needed, llama-3.1-405b on 3090s", lambda: cards_needed(m405, Request(), rtx3090), 10, 30),
            (
                "ladder: llama-3.1-8b (30 rows: max context + max batch each)",
                lambda: quant_ladder(m8, Request(), 24 * GiB),
                10,
                50,
            ),
            (
                "ladder: llama-3.1-405b (126 layers, 1,134 tensors)",
                lambda: quant_ladder(m405, Request(), 80 * GiB),
                5,
                100,
            ),
            (
                f"gpus: llama-3.1-70b over the catalog ({len(gpus)} GPUs)",
                lambda: which_gpus(m70, Request(), gpus),
                10,
                50,
            ),
            (f"sweep: every catalog model ({len(models)}) on 24 GiB", catalog_sweep, 3, 500),
            (
                "CLI: willitrun ladder llama-3.1-8b --json (process)",
                lambda: subprocess.run(cli, check=True, capture_output=True),
                5,
                500,
            ),
        ]
    )


if __name__ == "__main__":
    main()
