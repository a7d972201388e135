"""Multi-node mode of the estimate command: `--gpu 16xh100-sxm --gpus-per-node 8` or `--cluster FILE`
plans the model over the nodes with willitrun.cluster (docs/cluster.md): vLLM with Ray (the default
there, `--engine vllm`) or llama.cpp RPC (`--engine llama.cpp`). Exit 0 if the best plan fits, else 1."""

from __future__ import annotations

from typing import Any

from ..errors import ExitCode, UsageError
from . import parse


def _cluster(a: Any, cat: Any) -> Any:
    from ..cluster import cluster_from_dict, uniform_cluster
    from ..placement import device

    if a.cluster is not None:
        if a.gpus_per_node is not None or a.gpu:
            raise UsageError("--cluster FILE names the nodes and their GPUs: leave out --gpu and --gpus-per-node")
        from ..errors import SpecError
        from ..files import CLUSTER_CAP, parse_yaml, read_text, safe_path

        where = safe_path(a.cluster)
        try:  # a regular file only, capped, through the same hostile-input-proof YAML reader as the specs
            data = parse_yaml(read_text(a.cluster, CLUSTER_CAP, "--cluster file", UsageError), where).data
        except SpecError as exc:
            raise UsageError(f"--cluster {exc}") from None
        return cluster_from_dict(data, lambda name: device(cat.resolve("gpu", name)), where)
    per_node = parse.whole("--gpus-per-node", a.gpus_per_node)
    names = parse.gpus(a.gpu or [])
    if not names or len(set(names)) != 1:
        raise UsageError("--gpus-per-node needs one kind of card: --gpu 16xh100-sxm --gpus-per-node 8")
    assert per_node is not None
    if len(names) % per_node:
        raise UsageError(f"--gpu {len(names)} cards do not make whole nodes of {per_node}")
    return uniform_cluster(device(cat.resolve("gpu", names[0])), len(names), per_node)


def run_cluster(a: Any, engine: str | None, given: dict[str, Any], spec: Any, req: Any, cat: Any) -> int:
    """Plan, print (or --json: cluster.plan_json) and return the exit code."""
    from ..cluster import plan_json, plan_llamacpp_rpc, plan_vllm
    from ..engines.registry import engine_class
    from .engine_options import _flag

    cls = engine_class(engine or "vllm")
    eng = cls.name
    if cls.multi_card is None:  # tensor-parallel shards (vLLM: Ray) or whole layers per host (llama.cpp: RPC)
        raise UsageError(f"several nodes are planned for vllm (Ray) or llama.cpp (RPC), not {eng}")
    for flag, value in (
        ("--offload", a.offload),
        ("--speed", a.speed),
        ("--max-batch", a.max_batch),
        ("--split", a.split),
        ("--vram", a.vram),
    ):
        if value:
            raise UsageError(f"{flag} does not apply to a multi-node plan")
    accepted = cls.takes
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{', '.join(_flag(k) for k in wrong)} does not apply to {eng}")
    from .engine_options import check_versions

    check_versions(given)
    cluster = _cluster(a, cat)
    if cls.multi_card == "tensor":
        tp, pp = given.get("tensor_parallel_size"), given.get("pipeline_parallel_size")
        rest = {k: v for k, v in given.items() if k not in ("tensor_parallel_size", "pipeline_parallel_size")}
        plan = plan_vllm(spec, req, cluster, cls.make_options(rest), tp=tp, pp=pp)
    else:
        from .engine_options import with_files

        plan = plan_llamacpp_rpc(spec, req, cluster, cls.make_options(with_files(given)))
    if not a.quiet:
        if a.json_out:
            from ..render import print_json

            print_json(plan_json(plan))
        else:
            print_plan(plan, spec.name)
    return int(ExitCode.FITS if plan.fits else ExitCode.DOES_NOT_FIT)


def print_plan(plan: Any, model_name: str) -> None:
    """The layouts, the best plan's ranks, and the commands by host."""
    from rich.table import Table

    from ..render import _console, escape, size
    from ..table_width import Narrowable

    out, err = _console("out"), _console("err")
    c = plan.cluster
    nodes = ", ".join(f"{n.host}: {n.gpus} x {escape(n.gpu.gpu)}" for n in c.nodes)
    out.print(
        f"[bold]{escape(model_name)}[/] ({escape(plan.model)}) with [bold]{plan.engine}[/] on "
        f"{len(c.nodes)} nodes ({nodes})"
    )
    out.print(f"{plan.dtype} weights, {plan.kv_dtype} KV cache, max model length {plan.max_model_len:,}")
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold", title="layouts", title_justify="left")
    for col in ("TP", "PP", "GPUs", "nodes", "KV tokens", "fits", "why not"):
        t.add_column(col, justify="left" if col in ("fits", "why not") else "right")
    shown = 12  # valid layouts come first, most KV tokens first
    for lay in plan.layouts[:shown]:
        t.add_row(
            str(lay.tp),
            str(lay.pp),
            str(lay.gpus),
            str(lay.nodes),
            f"{lay.kv_tokens:,}",
            "yes" if lay.fits else "no",
            escape("; ".join(lay.problems)),
        )
    out.print(Narrowable(t))
    if len(plan.layouts) > shown:
        out.print(f"[dim]... {len(plan.layouts) - shown} more layouts (--json lists every one)[/]")
    best = plan.best
    if best is not None:
        budgets = {s.budget_bytes for s in best.stages}
        uniform = len(budgets) == 1  # one budget for every rank: said in the title, not on every row
        title = f"TP {best.tp} x PP {best.pp}: memory per rank" + (
            f" (budget {size(budgets.pop())})" if uniform else ""
        )
        r = Table(show_edge=False, pad_edge=False, box=None, header_style="bold", title=title, title_justify="left")
        cols = (
            "stage (ranks)",
            "host",
            "layers",
            "weights",
            "activation",
            "overhead",
            "KV cache",
            "total",
            *(() if uniform else ("budget",)),
        )
        for col in cols:
            r.add_column(col, justify="left" if col in ("stage (ranks)", "host") else "right")
        for s in best.stages:
            ranks = f"{s.ranks[0]}-{s.ranks[-1]}" if len(s.ranks) > 1 else str(s.ranks[0])
            r.add_row(
                f"{s.stage} ({ranks})",
                escape(s.host),
                f"{s.layers[0]}-{s.layers[1] - 1}",
                size(s.weights_bytes),
                size(s.activation_bytes),
                size(s.overhead_bytes),
                size(s.kv_bytes),
                size(s.total_bytes),
                *(() if uniform else (size(s.budget_bytes),)),
            )
        out.print(Narrowable(r))
    if plan.fits:
        out.print(f"[green bold]FITS[/]: TP {best.tp} x PP {best.pp}, a KV pool of {best.kv_tokens:,} tokens.")
    else:
        out.print("[red bold]DOES NOT FIT[/]: no layout holds the model on these nodes.")
    if plan.commands:
        out.print("[bold]commands[/] (by host, in order):")
        for cmd in plan.commands:
            out.print(f"  [bold]{escape(cmd.host)}[/] ({cmd.role}): {escape(cmd.command)}", soft_wrap=True)
            if cmd.note:
                out.print(f"    [dim]{escape(cmd.note)}[/]", soft_wrap=True)
    for n in plan.notes:
        out.print(f"[dim]note: {escape(n)}[/]")
    for w in plan.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    out.print("[dim]Sizes in GiB = 2^30 bytes (docs/cluster.md).[/]")
