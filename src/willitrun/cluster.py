"""Beyond one machine: plan a model over several nodes the way it is run, and the commands that do it.

- vLLM with Ray (`plan_vllm`): tensor parallel inside a node, pipeline parallel across nodes. Every
  TP x PP layout the model and the cluster allow is costed rank by rank with the vLLM profile
  (engines/vllm.py: the stage's layers' weights / tp, the embedding on the first stage, the LM head and
  the sampler on the last, activation and non-torch memory on every rank, the KV blocks left, unified to
  the smallest rank); the plan is the layout that fits with the most KV tokens.
- llama.cpp RPC (`plan_llamacpp_rpc`): one `rpc-server` per remote GPU, llama-server on the first node;
  llama.cpp puts RPC devices first and the local GPUs last (they get the last layers and the output
  layer), each device holding its layers' weights, KV cache and its own compute buffer.

Pure library: no typer, no rich, nothing printed. Every size is an int of bytes. `plan_json` gives the
JSON object; the dataclasses are what a table renderer reads.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import archs
from .engines.llamacpp import LlamaCppOptions, llamacpp_estimate
from .engines.vllm import VllmOptions, budgets, tp_problems, unified_blocks
from .errors import UsageError, clip
from .limits import MAX_CARDS
from .memory import AnySpec, Request, default_context, resolve
from .placement import Device

CLUSTER_SCHEMA_VERSION = 1
RAY_PORT = 6379  # examples/online_serving/multi-node-serving.sh: ray_port=6379
RPC_PORT = 50052  # llama.cpp tools/rpc/rpc-server.cpp: default port 50052
MAX_NODES = 64
MAX_GPUS_PER_NODE = MAX_CARDS


# --------------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------------
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_host(host: str) -> str:
    """`host` if it is a host name (RFC 1123: dot-separated labels of letters, digits and inner
    hyphens, 1-63 characters each, 253 in all; not all-numeric, RFC 3696 2), an IPv4 or an IPv6 address,
    else UsageError. Host names go into printed shell commands: nothing else may reach them."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return host.lower()  # DNS names are case-insensitive
    raise UsageError(f"host {clip(repr(host))} is not a host name or an IP address")


def _endpoint(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Node:
    """One machine: `gpus` identical cards. `host` is an address, or a placeholder such as <node1-ip>."""

    host: str
    gpu: Device
    gpus: int


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        if not self.nodes:
            raise UsageError("a cluster needs at least one node")
        if len(self.nodes) > MAX_NODES:
            raise UsageError(f"{len(self.nodes)} nodes: at most {MAX_NODES} are supported")
        seen: set[str] = set()
        for n in self.nodes:
            if not 1 <= n.gpus <= MAX_GPUS_PER_NODE:
                raise UsageError(f"node {n.host}: gpus must be 1 to {MAX_GPUS_PER_NODE} (got {n.gpus})")
            if n.host.lower() in seen:  # its GPUs would count twice
                raise UsageError(f"node {n.host} is listed twice: list each machine once, with all its GPUs")
            seen.add(n.host.lower())

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @property
    def head(self) -> Node:
        return self.nodes[0]

    def describe(self) -> str:
        groups: list[str] = []
        for n in self.nodes:
            groups.append(f"{n.gpus}x{n.gpu.gpu}")
        same = len(set(groups)) == 1
        count = len(self.nodes)
        return f"{count} node{'s' if count > 1 else ''} of {groups[0]}" if same else " + ".join(groups)


def uniform_cluster(gpu: Device, total_gpus: int, gpus_per_node: int, hosts: Sequence[str] | None = None) -> Cluster:
    """`total_gpus` cards of one type, `gpus_per_node` a node (`--gpu 16xh100-sxm --gpus-per-node 8`)."""
    if gpus_per_node < 1 or total_gpus < 1:
        raise UsageError("--gpus-per-node and the GPU count must be at least 1")
    if total_gpus % gpus_per_node:
        raise UsageError(f"{total_gpus} GPUs do not make whole nodes of {gpus_per_node}")
    count = total_gpus // gpus_per_node
    names = [check_host(h) for h in hosts] if hosts else [f"<node{i}-ip>" for i in range(count)]
    if len(names) != count:
        raise UsageError(f"{len(names)} hosts given for {count} nodes")
    return Cluster(tuple(Node(h, gpu, gpus_per_node) for h in names))


class _NodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    host: str = Field(min_length=1, max_length=253)
    gpu: str = Field(min_length=1, max_length=100)
    gpus: int = Field(ge=1, le=MAX_GPUS_PER_NODE)


class ClusterFile(BaseModel):
    """A cluster file: `nodes: [{host: 10.0.0.1, gpu: h100-sxm, gpus: 8}, ...]`, the head node first."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    nodes: list[_NodeEntry] = Field(min_length=1, max_length=MAX_NODES)


def cluster_from_dict(data: Any, gpu: Callable[[str], Device], where: str = "cluster file") -> Cluster:
    """A Cluster from a cluster file's parsed YAML; `gpu` turns a GPU id or alias into a Device
    (e.g. `lambda name: placement.device(catalog.resolve("gpu", name))`). Errors name the field."""
    try:
        f = ClusterFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise UsageError("\n".join(lines)) from None
    nodes = []
    for i, n in enumerate(f.nodes):
        try:
            host = check_host(n.host)
        except UsageError as exc:
            raise UsageError(f"{where}: nodes.{i}.host: {exc}") from None
        nodes.append(Node(host, gpu(n.gpu), n.gpus))
    return Cluster(tuple(nodes))


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankMemory:
    """One pipeline stage's ranks (its tp GPUs hold the same bytes) on one node."""

    stage: int
    host: str
    gpu: str
    ranks: tuple[int, ...]  # global ranks (vLLM) or device indices (llama.cpp)
    layers: tuple[int, int]  # [first, last) decoder layers
    embeddings: bool
    lm_head: bool
    vram_bytes: int
    budget_bytes: int  # vLLM: vram x gpu_memory_utilization; llama.cpp: vram
    weights_bytes: int
    activation_bytes: int
    overhead_bytes: int  # vLLM non-torch memory; llama.cpp: 0 (the CUDA context is not printed)
    kv_bytes: int  # the KV cache this rank allocates
    kv_bytes_per_token: int
    kv_tokens_alone: int  # tokens this rank's own budget would hold (vLLM; the pool is the smallest)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes + self.overhead_bytes + self.kv_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes


@dataclass(frozen=True)
class LayoutPlan:
    tp: int
    pp: int
    gpus: int
    nodes: int  # nodes used
    valid: bool
    problems: tuple[str, ...]
    fits: bool  # valid, every rank has room, and the pool holds max_model_len
    kv_tokens: int  # the pool every rank allocates (vLLM: unified blocks x block size)
    max_model_len: int
    stages: tuple[RankMemory, ...]

    @property
    def tightest(self) -> RankMemory | None:
        """The rank that sets the pool (fewest tokens of its own)."""
        return min(self.stages, key=lambda s: s.kv_tokens_alone, default=None)


@dataclass(frozen=True)
class Command:
    host: str
    role: Literal["head", "worker", "rpc", "main"]
    command: str
    note: str = ""


@dataclass(frozen=True)
class ClusterPlan:
    engine: Literal["vllm", "llama.cpp"]
    model: str
    hf_id: str | None
    dtype: str
    kv_dtype: str
    cluster: Cluster
    max_model_len: int
    layouts: tuple[LayoutPlan, ...]  # every layout considered, valid ones first, most KV tokens first
    best: LayoutPlan | None  # the one to run (None: nothing fits)
    commands: tuple[Command, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.best is not None and self.best.fits


# --------------------------------------------------------------------------------------------------
# vLLM with Ray
# --------------------------------------------------------------------------------------------------
VLLM_SOURCES = (
    "vLLM docs/serving/parallelism_scaling.md (vllm-project/vllm 096bd6a4a109b13698ab85782cc1a3630aa002ee): "
    "'Set tensor_parallel_size to the number of GPUs per node and pipeline_parallel_size to the number of nodes'; "
    "vllm serve ... --tensor-parallel-size 8 --pipeline-parallel-size 2 --distributed-executor-backend ray",
    "vllm-project/vllm examples/online_serving/multi-node-serving.sh (2584e94b): "
    "ray start --head --port=$ray_port; ray start --address=$ray_address:$ray_port --block",
)


def _stage_nodes(cluster: Cluster, tp: int, pp: int) -> list[int] | None:
    """Node of each pipeline stage: a TP group stays inside one node, stages fill the nodes in order
    (the head first: rank 0 is the driver's); None when the nodes cannot hold pp groups of tp."""
    out: list[int] = []
    for i, n in enumerate(cluster.nodes):
        out += [i] * (n.gpus // tp)
        if len(out) >= pp:
            return out[:pp]
    return None


def _vllm_layout(
    spec: AnySpec, req: Request, opt: VllmOptions, cluster: Cluster, tp: int, pp: int, max_model_len: int
) -> LayoutPlan:
    layers = archs.geometry(spec).decoder_layers
    problems = list(tp_problems(spec, tp)) if tp > 1 else []
    if pp > layers:
        problems.append(f"pipeline_parallel {pp} exceeds the {layers} layers")
    homes = _stage_nodes(cluster, tp, pp)
    if homes is None:
        problems.append(f"{pp} stages of {tp} GPUs do not fit in the nodes (a TP group stays inside a node)")
    if problems or homes is None:
        return LayoutPlan(tp, pp, tp * pp, 0, False, tuple(problems), False, 0, max_model_len, ())
    head = cluster.nodes[homes[0]].gpu
    o = replace(
        opt,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        total_memory_bytes=head.vram_bytes,
        gpu_name=opt.gpu_name or head.name,
        max_model_len=max_model_len,
    )
    _, _, _, _, ranks = budgets(spec, req, o, [cluster.nodes[h].gpu.vram_bytes for h in homes])
    blocks = unified_blocks(ranks, o.kv_block_size)
    tokens = blocks * o.kv_block_size
    stages = []
    for b, h in zip(ranks, homes, strict=True):
        node = cluster.nodes[h]
        alone = (
            max(b.available_bytes, 0) // (b.kv_bytes_per_token * o.kv_block_size) * o.kv_block_size
            if b.kv_bytes_per_token
            else 0
        )
        stages.append(
            RankMemory(
                b.stage,
                node.host,
                node.gpu.gpu,
                tuple(range(b.stage * tp, (b.stage + 1) * tp)),
                b.layers,
                b.weights.embeddings,
                b.weights.lm_head,
                b.total_memory_bytes,
                b.usable_bytes,
                b.weights.allocated_bytes,
                b.activation_bytes,
                b.non_torch_bytes,
                tokens * b.kv_bytes_per_token,
                b.kv_bytes_per_token,
                alone,
            )
        )
    room = all(b.available_bytes > 0 for b in ranks)
    return LayoutPlan(
        tp,
        pp,
        tp * pp,
        len(set(homes)),
        True,
        (),
        room and tokens >= max_model_len,
        tokens,
        max_model_len,
        tuple(stages),
    )


def _rank_key(p: LayoutPlan) -> tuple[bool, bool, int, int, int]:
    # valid first; then fits; then the most KV tokens; then fewer GPUs; then larger TP (fewer pipeline
    # bubbles, and what vLLM's docs recommend: TP = GPUs per node)
    return (not p.valid, not p.fits, -p.kv_tokens, p.gpus, -p.tp)


def _vllm_flags(spec: AnySpec, req: Request, opt: VllmOptions, best: LayoutPlan, ray: bool) -> list[str]:
    """`vllm serve`'s arguments after the model, one list item per shell word."""
    flags = ["--tensor-parallel-size", str(best.tp)]
    if best.pp > 1:
        flags += ["--pipeline-parallel-size", str(best.pp)]
    flags += ["--max-model-len", str(best.max_model_len)]
    if opt.gpu_memory_utilization is not None:
        flags += ["--gpu-memory-utilization", str(opt.gpu_memory_utilization)]
    if opt.max_num_seqs is not None:
        flags += ["--max-num-seqs", str(opt.max_num_seqs)]
    if opt.max_num_batched_tokens is not None:
        flags += ["--max-num-batched-tokens", str(opt.max_num_batched_tokens)]
    dtype = resolve(spec, req).dtype.name
    if dtype == "fp8":
        flags += ["--quantization", "fp8"]
    elif dtype in ("fp16", "bf16") and dtype != {"bfloat16": "bf16", "float16": "fp16"}.get(spec.dtype, dtype):
        flags += ["--dtype", "float16" if dtype == "fp16" else "bfloat16"]
    if ray:
        flags += ["--distributed-executor-backend", "ray"]
    return flags


def plan_vllm(
    spec: AnySpec,
    request: Request | None,
    cluster: Cluster,
    options: VllmOptions | None = None,
    model_path: str | None = None,
    tp: int | None = None,
    pp: int | None = None,
) -> ClusterPlan:
    """Every TP x PP layout of `spec` on `cluster` under vLLM, costed rank by rank; the best is the one
    that fits with the most KV tokens (ties: fewer GPUs, then larger TP), with the commands that run it.
    `tp` / `pp` restrict the search to that tensor / pipeline size (the user's own choice).
    When no layout holds max_model_len, the best pool is proposed with --max-model-len lowered to it."""
    req = request or Request()
    opt = options or VllmOptions()
    g = archs.geometry(spec)
    if g.refusals.get("vllm"):
        raise UsageError(g.refusals["vllm"])
    r = resolve(spec, req)
    max_model_len = opt.max_model_len or req.context or g.context_window or default_context(r)
    per_node = max(n.gpus for n in cluster.nodes)
    layouts = []
    if tp is not None and not 1 <= tp <= per_node:
        raise UsageError(f"tensor parallel size {tp}: TP stays inside a node of at most {per_node} GPUs")
    for t in [tp] if tp else range(1, per_node + 1):
        if tp is None and per_node % t and t != per_node:
            continue
        max_pp = sum(n.gpus // t for n in cluster.nodes)
        for p in [pp] if pp else range(1, min(max_pp, g.decoder_layers) + 1):
            layouts.append(_vllm_layout(spec, req, opt, cluster, t, p, max_model_len))
    layouts.sort(key=_rank_key)
    best = layouts[0] if layouts and layouts[0].valid else None
    warnings: list[str] = []
    if best is None:
        why = "; ".join(f"TP {q.tp} x PP {q.pp}: {q.problems[0]}" for q in layouts[:3] if q.problems)
        warnings.append(f"no valid layout on {cluster.describe()}" + (f" ({why})" if why else ""))
    if best is not None and not best.fits:
        if best.kv_tokens > 0 and all(s.kv_tokens_alone > 0 for s in best.stages):
            shorter = best.kv_tokens
            warnings.append(
                f"no layout holds max_model_len {max_model_len}: the largest pool is {shorter} tokens "
                f"(TP {best.tp} x PP {best.pp}); the commands ask for --max-model-len {shorter}"
            )
            best = _vllm_layout(spec, req, opt, cluster, best.tp, best.pp, shorter)
        else:
            warnings.append(f"the weights do not fit: no layout of {cluster.describe()} leaves room for the KV cache")
            best = None
    commands: list[Command] = []
    model = model_path or spec.hf_id or spec.id
    notes = []
    if best is not None:
        used = cluster.nodes[: best.nodes]
        ray = len(used) > 1
        # Every printed command is shell words joined by shlex.join: a model path or host that a shell
        # would read as syntax is quoted, never run.
        serve = shlex.join(["vllm", "serve", model, *_vllm_flags(spec, req, opt, best, ray)])
        if ray:
            head = used[0]
            commands.append(
                Command(
                    head.host,
                    "head",
                    shlex.join(["ray", "start", "--head", f"--port={RAY_PORT}"]),
                    "on the head node (set VLLM_HOST_IP to this node's address)",
                )
            )
            for n in used[1:]:
                start = shlex.join(["ray", "start", f"--address={_endpoint(head.host, RAY_PORT)}"])
                commands.append(
                    Command(n.host, "worker", start, "on every other node; then `ray status` shows all nodes and GPUs")
                )
            commands.append(Command(head.host, "head", serve, "on the head node, once Ray sees every GPU"))
            notes.append(
                "every node needs the same vLLM version and the model at the same path (or HF cache); "
                "over InfiniBand add NCCL_IB_HCA (vLLM docs, parallelism_scaling.md)"
            )
        else:
            commands.append(Command(used[0].host, "head", serve, "one node: no Ray needed"))
        docs = next((p for p in layouts if p.valid and p.tp == per_node and p.pp == len(cluster.nodes)), None)
        if docs is not None and (docs.tp, docs.pp) != (best.tp, best.pp) and docs.fits:
            notes.append(
                f"vLLM's docs suggest TP = GPUs per node, PP = nodes: TP {docs.tp} x PP {docs.pp} also fits, "
                f"with {docs.kv_tokens} KV tokens against {best.kv_tokens} (all-reduce stays on NVLink, "
                f"fewer pipeline stages)"
            )
        if best.gpus < cluster.total_gpus:
            notes.append(f"the plan uses {best.gpus} of the {cluster.total_gpus} GPUs: more would not hold more KV")
    notes.append(
        f"each rank: its stage's layers / tp (KV heads replicated when tp exceeds them), the embedding on "
        f"stage 0, the LM head and the sampler on the last stage; the pool is the smallest rank's "
        f"(vLLM {opt.info.since}, engines/vllm.py)"
    )
    return ClusterPlan(
        "vllm",
        spec.id,
        spec.hf_id,
        r.dtype.name,
        r.kv.name,
        cluster,
        max_model_len,
        tuple(layouts),
        best,
        tuple(commands),
        tuple(notes),
        tuple(warnings),
        VLLM_SOURCES,
    )


# --------------------------------------------------------------------------------------------------
# llama.cpp RPC
# --------------------------------------------------------------------------------------------------
LLAMACPP_RPC_SOURCES = (
    "ggml-org/llama.cpp tools/rpc/README.md (0c1e5709): rpc-server (ggml-rpc-server in current builds) on each "
    "remote host, `llama-cli ... -ngl 99 --rpc 192.168.88.10:50052,192.168.88.11:50052`; -H defaults to 127.0.0.1; "
    "'Never run the RPC server on an open network'",
    "ggml-org/llama.cpp src/llama.cpp (0c1e5709): 'add RPC servers at the front of the list to minimize network "
    "transfers'; src/llama-model.cpp: layers split by --tensor-split (else free memory), output layer on the last device",
)


def plan_llamacpp_rpc(
    spec: AnySpec,
    request: Request | None,
    cluster: Cluster,
    options: LlamaCppOptions | None = None,
    model_path: str | None = None,
) -> ClusterPlan:
    """The model over every GPU of `cluster` with llama.cpp's RPC backend: one rpc-server per remote GPU,
    llama-server on the head node. Device order is llama.cpp's: the remote GPUs (node by node), then
    the head node's own. Layers are split evenly (identical cards) and the split is written out as
    --tensor-split so llama.cpp reproduces it; each device holds its layers' weights and KV cache and a
    compute buffer, the last one the output layer too; the token embedding stays in the head's RAM."""
    req = request or Request()
    if len({n.gpu.vram_bytes for n in cluster.nodes}) > 1:
        raise UsageError("the RPC plan splits layers evenly: it needs identical cards (give --tensor-split yourself)")
    ipv6 = [n.host for n in cluster.nodes[1:] if ":" in n.host]
    if ipv6:  # ggml-org/llama.cpp ggml/src/ggml-rpc/ggml-rpc.cpp parse_endpoint: host is the text before the first ':'
        raise UsageError(f"llama.cpp's --rpc cannot take an IPv6 address ({ipv6[0]}): give the node a host name")
    order = [*cluster.nodes[1:], cluster.head]
    devices: list[tuple[Node, int]] = [(n, i) for n in order for i in range(n.gpus)]
    count = len(devices)
    opt = replace(options or LlamaCppOptions(), gpus=count, gpu_layers=None)
    est = llamacpp_estimate(spec, req, opt)
    n_layer = int(est.facts["n_layer"])
    layers_of = [0] * count
    for i in range(n_layer):
        layers_of[min(i * count // n_layer, count - 1)] += 1
    vram = cluster.head.gpu.vram_bytes
    stages, start = [], 0
    for d, ((node, _local), k) in enumerate(zip(devices, layers_of, strict=True)):
        dev_bufs = [b for b in est.buffers if b.placement == "gpu" and b.device == d]
        w = sum(b.bytes for b in dev_bufs if b.kind == "weights")
        kv = sum(b.bytes for b in dev_bufs if b.kind in ("kv_self", "kv_cross"))
        comp = sum(b.bytes for b in dev_bufs if b.kind == "compute")
        other = sum(b.bytes for b in dev_bufs if b.kind in ("overhead", "other"))
        stages.append(
            RankMemory(
                d,
                node.host,
                node.gpu.gpu,
                (d,),
                (start, start + k),
                False,
                d == count - 1,
                vram,
                vram,
                w,
                comp,
                other,
                kv,
                kv // max(int(est.n_ctx), 1),
                0,
            )
        )
        start += k
    fits = all(s.fits for s in stages)
    layout = LayoutPlan(
        1, count, count, len(cluster.nodes), True, (), fits, int(est.n_ctx), int(est.n_ctx), tuple(stages)
    )
    split = ",".join(str(k + (d == count - 1)) for d, k in enumerate(layers_of))
    commands = []
    port_of: dict[tuple[str, int], int] = {}
    for node in cluster.nodes[1:]:
        for i in range(node.gpus):
            port = RPC_PORT + i
            port_of[(node.host, i)] = port
            server = shlex.join([f"CUDA_VISIBLE_DEVICES={i}", "rpc-server", "-H", "0.0.0.0", "-p", str(port)])
            commands.append(Command(node.host, "rpc", server, "one server per GPU; bind to a private network only"))
    rpc = ",".join(f"{n.host}:{port_of[(n.host, i)]}" for n, i in devices if n is not cluster.head)
    path = model_path or f"{spec.id}-{est.dtype}.gguf"
    main = ["llama-server", "-m", path, "-ngl", str(n_layer + 1), "-c", str(est.n_ctx)]
    if rpc:
        main += ["--rpc", rpc]
    main += ["--tensor-split", split]
    commands.append(
        Command(
            cluster.head.host,
            "main",
            shlex.join(main),
            "on the head node: its own GPUs come last and hold the output layer",
        )
    )
    notes = [
        "the CUDA context of every rpc-server and of llama-server (a few hundred MiB each) is not in llama.cpp's "
        "printed buffers",
        "the token embedding stays in the head node's RAM",
        "newer builds name the server ggml-rpc-server and can expose all of a host's GPUs from one process",
    ]
    warnings = [] if fits else [f"a device needs more than its {vram / 2**30:.1f} GiB at context {est.n_ctx}"]
    return ClusterPlan(
        "llama.cpp",
        spec.id,
        spec.hf_id,
        est.dtype,
        est.kv_dtype,
        cluster,
        int(est.n_ctx),
        (layout,),
        layout,
        tuple(commands),
        tuple(notes),
        tuple(warnings),
        LLAMACPP_RPC_SOURCES,
    )


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------
def _rank_json(s: RankMemory) -> dict[str, Any]:
    return {
        "stage": s.stage,
        "host": s.host,
        "gpu": s.gpu,
        "ranks": list(s.ranks),
        "first_layer": s.layers[0],
        "last_layer": s.layers[1] - 1,
        "embeddings": s.embeddings,
        "lm_head": s.lm_head,
        "vram_bytes": s.vram_bytes,
        "budget_bytes": s.budget_bytes,
        "weights_bytes": s.weights_bytes,
        "activation_bytes": s.activation_bytes,
        "overhead_bytes": s.overhead_bytes,
        "kv_bytes": s.kv_bytes,
        "kv_bytes_per_token": s.kv_bytes_per_token,
        "kv_tokens_alone": s.kv_tokens_alone,
        "total_bytes": s.total_bytes,
        "fits": s.fits,
    }


def _layout_json(p: LayoutPlan) -> dict[str, Any]:
    return {
        "tp": p.tp,
        "pp": p.pp,
        "gpus": p.gpus,
        "nodes": p.nodes,
        "valid": p.valid,
        "problems": list(p.problems),
        "fits": p.fits,
        "kv_tokens": p.kv_tokens,
        "max_model_len": p.max_model_len,
        "ranks": [_rank_json(s) for s in p.stages],
    }


def plan_json(plan: ClusterPlan) -> dict[str, Any]:
    """The plan as a JSON object: integer bytes, snake_case keys, a schema_version."""
    return {
        "schema_version": CLUSTER_SCHEMA_VERSION,
        "engine": plan.engine,
        "model": plan.model,
        "hf_id": plan.hf_id,
        "dtype": plan.dtype,
        "kv_dtype": plan.kv_dtype,
        "fits": plan.fits,
        "max_model_len": plan.max_model_len,
        "cluster": {
            "nodes": [
                {"host": n.host, "gpu": n.gpu.gpu, "gpus": n.gpus, "vram_bytes": n.gpu.vram_bytes}
                for n in plan.cluster.nodes
            ],
            "total_gpus": plan.cluster.total_gpus,
        },
        "best": _layout_json(plan.best) if plan.best else None,
        "layouts": [_layout_json(p) for p in plan.layouts],
        "commands": [{"host": c.host, "role": c.role, "command": c.command, "note": c.note} for c in plan.commands],
        "notes": list(plan.notes),
        "warnings": list(plan.warnings),
        "sources": list(plan.sources),
    }


__all__ = [
    "CLUSTER_SCHEMA_VERSION",
    "Cluster",
    "ClusterFile",
    "ClusterPlan",
    "Command",
    "LayoutPlan",
    "Node",
    "RankMemory",
    "cluster_from_dict",
    "plan_json",
    "plan_llamacpp_rpc",
    "plan_vllm",
    "uniform_cluster",
]
