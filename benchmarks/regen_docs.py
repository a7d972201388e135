"""Rewrite the examples in README.md and docs/cluster.md from what the code prints today.

A block to regenerate is marked by an HTML comment on the line before it, `<!-- regen:NAME -->`;
NAME is a key of BLOCKS. A fenced block (```) after the marker is replaced whole; otherwise the
lines up to the next blank line (a Markdown table). tests/cli/test_docs_regen.py fails when a
marked block differs from what this script would write, so an example cannot drift from the code.

    python benchmarks/regen_docs.py          # rewrite the marked blocks
    python benchmarks/regen_docs.py --check  # exit 1 and name the stale blocks, writing nothing

Commands run as `python -m willitrun` with COLUMNS=120 (what piped output gets), NO_COLOR, and no WILLITRUN_GPU / WILLITRUN_SPECS_PATH / config file of the caller.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = 120
MARKER = re.compile(r"<!-- regen:([a-z0-9-]+) -->")


def willitrun(*args: str) -> str:
    """What `willitrun ARGS` prints on stdout (any exit code: "does not fit" is an answer too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_")}
    env.update(
        COLUMNS=str(COLUMNS),
        NO_COLOR="1",
        PYTHONPATH=str(ROOT / "src"),
        XDG_CONFIG_HOME=tempfile.gettempdir() + "/willitrun-regen-no-config",
    )
    r = subprocess.run(
        [sys.executable, "-m", "willitrun", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if r.returncode not in (0, 1):
        raise SystemExit(f"willitrun {shlex.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return "\n".join(line.rstrip() for line in r.stdout.splitlines())


def console(args: list[str], keep: Callable[[list[str]], list[str]] = lambda lines: lines) -> str:
    """A ```console block: the command line, then (part of) its output."""
    lines = willitrun(*args).splitlines()
    return "\n".join(["```console", f"$ willitrun {shlex.join(args)}", *keep(lines), "```"])


def _ladder_rows(lines: list[str]) -> list[str]:
    """The ladder's heading, its first two rows, `...`, its last row, and the lines after the table."""
    rows = [
        i
        for i, line in enumerate(lines)
        if re.match(r"(bf16|fp16|fp32|fp8|int8|q\d\w*)\s+(f16|bf16|f32|fp8|q8_0|q4_0)\s", line)
    ]
    return [*lines[: rows[2]], "...", *lines[rows[-1] :]]


def _from_offload(lines: list[str]) -> list[str]:
    """`...` for the engine's table, the verdict line, `...`, then the offload plan and the decode speed."""
    start = next(i for i, line in enumerate(lines) if re.match(r"(Partial offload|Offload)\b", line))
    verdict = next((i for i, line in enumerate(lines) if re.match(r"(FITS|TIGHT|DOES NOT FIT)\b", line)), None)
    if verdict is None:
        return ["...", *lines[start:]]
    end = next(
        i for i in range(verdict + 1, len(lines)) if re.match(r"(note:|Sizes|  try|Offload|Largest|Partial)", lines[i])
    )
    return ["...", *lines[verdict:end], "...", *lines[start:]]


def _cluster_plan(version: str | None = None) -> Any:
    sys.path.insert(0, str(ROOT / "src"))
    from willitrun import load_catalog
    from willitrun.cluster import plan_vllm, uniform_cluster
    from willitrun.engines import VllmOptions
    from willitrun.memory import Request
    from willitrun.placement import device

    cat = load_catalog()
    cluster = uniform_cluster(device(cat.resolve("gpu", "h100-sxm")), total_gpus=16, gpus_per_node=8)
    options = VllmOptions(version=version) if version else None
    return plan_vllm(cat.resolve("model", "llama-3.1-405b"), Request(), cluster, options)


def cluster_table() -> str:
    """docs/cluster.md: Llama 3.1 405B bf16 on 2 x 8 H100 SXM (vLLM 0.10), the layouts that use every GPU and fit."""
    plan = _cluster_plan("0.10")  # vLLM 0.10's defaults (8192 batched tokens, 1024 sequences, 0.90), as the doc says
    gib = 1 << 30
    rows = [
        "| TP | PP | KV tokens | weights first / last stage (GiB) | activation first / last (GiB) |",
        "|---|---|---|---|---|",
    ]
    layouts = [lay for lay in plan.layouts if lay.fits and lay.gpus == 16]
    for lay in sorted(layouts, key=lambda x: -x.kv_tokens):
        first, last = lay.stages[0], lay.stages[-1]
        rows.append(
            f"| {lay.tp} | {lay.pp} | {lay.kv_tokens:,} | {first.weights_bytes / gib:.2f} / "
            f"{last.weights_bytes / gib:.2f} | {first.activation_bytes / gib:.2f} / "
            f"{last.activation_bytes / gib:.2f} |"
        )
    return "\n".join(rows)


def cluster_commands() -> str:
    """docs/cluster.md: what the Python example above it prints (host, command), default options."""
    plan = _cluster_plan()
    return "\n".join(["```", *(f"{c.host} {c.command}" for c in plan.commands), "```"])


@dataclass(frozen=True)
class Block:
    file: str
    make: Callable[[], str]


BLOCKS: dict[str, Block] = {
    "ladder": Block("README.md", lambda: console(["ladder", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb"], _ladder_rows)),
    "offload": Block(
        "README.md",
        lambda: console(
            ["llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload", "--ram", "64GiB", "--speed"],
            _from_offload,
        ),
    ),
    "cluster-table": Block("docs/cluster.md", cluster_table),
    "cluster-commands": Block("docs/cluster.md", cluster_commands),
}


def _block_end(lines: list[str], start: int) -> int:
    """The index after the block that starts at `start` (a fence to its closing fence, else to a blank line)."""
    if lines[start].startswith("```"):
        return next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```")) + 1
    return next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))


def regenerate(text: str, made: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with every marked block replaced by `made[name]`, and the names of the blocks that changed."""
    lines = text.split("\n")
    out: list[str] = []
    changed: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        m = MARKER.fullmatch(lines[i].strip())
        if m:
            name = m.group(1)
            if name not in made:
                raise SystemExit(f"unknown block <!-- regen:{name} --> (known: {', '.join(BLOCKS)})")
            end = _block_end(lines, i + 1)
            old = "\n".join(lines[i + 1 : end])
            if old != made[name]:
                changed.append(name)
            out.extend(made[name].split("\n"))
            i = end
            continue
        i += 1
    return "\n".join(out), changed


def run(check: bool, only: str | None = None) -> list[str]:
    """Regenerate (or with `check`, compare) every file with marked blocks; the stale `file: block`s."""
    stale: list[str] = []
    for file in sorted({b.file for b in BLOCKS.values()}):
        if only and file != only:
            continue
        path = ROOT / file
        text = path.read_text(encoding="utf-8")
        names = set(MARKER.findall(text))
        missing = {n for n, b in BLOCKS.items() if b.file == file} - names
        if missing:
            raise SystemExit(f"{file}: no <!-- regen:NAME --> marker for {', '.join(sorted(missing))}")
        made = {n: BLOCKS[n].make() for n in names if n in BLOCKS}
        new, changed = regenerate(text, made)
        stale += [f"{file}: {n}" for n in changed]
        if changed and not check:
            path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    stale = run(args.check)
    for s in stale:
        print(f"{'stale' if args.check else 'rewrote'} {s}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
