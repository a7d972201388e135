"""Multi-node plans (willitrun.cluster): vLLM TP x PP layouts with Ray, llama.cpp RPC, and their commands.
Expected numbers are worked out by hand from the configs (sources next to each)."""

from __future__ import annotations

import json

import pytest

from willitrun.cluster import (
    Cluster,
    Node,
    cluster_from_dict,
    plan_json,
    plan_llamacpp_rpc,
    plan_vllm,
    uniform_cluster,
)
from willitrun.engines import VllmOptions
from willitrun.engines.vllm import rank_weights
from willitrun.errors import UsageError
from willitrun.memory import Request, resolve
from willitrun.placement import device

GiB = 1 << 30


@pytest.fixture(scope="module")
def h100(catalog):
    return device(catalog.resolve("gpu", "h100-sxm"))


@pytest.fixture(scope="module")
def plan405(catalog, h100):
    return plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 16, 8))


@pytest.fixture(scope="module")
def catalog():
    from willitrun import load_catalog

    return load_catalog()


def test_405b_two_h100_nodes_prints_the_ray_commands(plan405):
    """Acceptance: Llama 3.1 405B over two 8 x H100 nodes: a valid layout that fits, and the commands of
    vLLM's multi-node docs (ray start on the head and the worker, vllm serve with TP and PP on the head)."""
    assert plan405.fits and plan405.best.valid and plan405.best.nodes == 2
    cmds = [(c.host, c.command) for c in plan405.commands]
    assert cmds[0] == ("<node0-ip>", "ray start --head --port=6379")
    assert cmds[1] == ("<node1-ip>", "ray start '--address=<node0-ip>:6379'")  # a placeholder, shell-quoted
    best = plan405.best
    assert cmds[2] == (
        "<node0-ip>",
        f"vllm serve meta-llama/Llama-3.1-405B --tensor-parallel-size {best.tp} "
        f"--pipeline-parallel-size {best.pp} --max-model-len 131072 "
        "--distributed-executor-backend ray",
    )
    assert best.tp * best.pp == 16 and best.tp <= 8
    assert best.kv_tokens >= 131072


def test_405b_tp8_pp2_ranks_by_hand(plan405, catalog):
    """TP 8 x PP 2 (the docs' layout): 63 layers a stage (get_pp_indices). Per layer and rank, bf16:
    q and o 16384 x 16384 / 8, k and v 1024 x 16384 / 8 (8 KV heads: one a rank), gate/up/down
    3 x 53248 x 16384 / 8, and two replicated 16384-wide norms: 398,491,648 params = 796,983,296 B.
    The embedding shard: 128256 / 8 = 16032 rows x 16384 x 2 B = 525,336,576 B."""
    layout = next(p for p in plan405.layouts if (p.tp, p.pp) == (8, 2))
    assert layout.valid and layout.fits
    s0, s1 = layout.stages
    assert (s0.layers, s1.layers) == ((0, 63), (63, 126))
    assert (s0.embeddings, s0.lm_head, s1.embeddings, s1.lm_head) == (True, False, False, True)
    assert (s0.host, s1.host) == ("<node0-ip>", "<node1-ip>") and s1.ranks == tuple(range(8, 16))
    per_layer = (2 * 16384 * 16384 + 2 * 1024 * 16384 + 3 * 53248 * 16384) // 8 * 2 + 2 * 16384 * 2
    assert per_layer == 796_983_296
    spec = catalog.resolve("model", "llama-3.1-405b")
    w0 = rank_weights(resolve(spec, Request()), 8, (0, 63), True, False)
    assert w0.tensor_bytes == 63 * per_layer + 16032 * 16384 * 2
    assert w0.rope_bytes == 131072 * 128 * 2  # llama3 rope: the cache spans max_position_embeddings
    assert s0.weights_bytes == w0.allocated_bytes
    # KV: 63 layers x K,V x 1 head x 128 x 2 B a token on each rank
    assert s0.kv_bytes_per_token == s1.kv_bytes_per_token == 63 * 2 * 128 * 2
    # one pool for every rank: the smallest rank's blocks; the last stage also runs the sampler
    assert layout.kv_tokens == min(s.kv_tokens_alone for s in layout.stages) == s1.kv_tokens_alone
    assert s1.activation_bytes > s0.activation_bytes
    assert all(s.fits for s in layout.stages)


def test_best_is_the_fitting_layout_with_most_kv(plan405):
    fitting = [p for p in plan405.layouts if p.fits]
    assert plan405.best.kv_tokens == max(p.kv_tokens for p in fitting)
    assert all(p.tp in (1, 2, 4, 8) for p in plan405.layouts)  # TP inside a node: divisors of 8
    if (plan405.best.tp, plan405.best.pp) != (8, 2):
        assert any("TP 8 x PP 2 also fits" in n for n in plan405.notes)


def test_one_node_cannot_hold_405b_in_bf16(catalog, h100):
    p = plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 8, 8))
    assert not p.fits and p.best is None and not p.commands
    assert "weights do not fit" in p.warnings[0]


def test_tp_must_divide_the_heads(catalog, h100):
    """Six GPUs a node: TP 3 and 6 do not divide Llama's 128 query heads (vLLM's divide() asserts)."""
    p = plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 12, 6))
    bad = [q for q in p.layouts if q.tp in (3, 6)]
    assert bad and all(not q.valid and "not divisible by" in q.problems[0] for q in bad)


def test_window_lowered_when_no_layout_holds_it(catalog):
    """Llama 3.1 8B on one RTX 4090: the pool is far below the 131,072-token window, so the command asks
    for what it holds (vLLM would refuse the window)."""
    gpu = device(catalog.resolve("gpu", "rtx4090"))
    p = plan_vllm(catalog.resolve("model", "llama-3.1-8b"), Request(), uniform_cluster(gpu, 1, 1))
    assert p.best is not None and p.best.fits and p.best.max_model_len == p.best.kv_tokens < 131072
    assert p.warnings and f"--max-model-len {p.best.kv_tokens}" in p.commands[-1].command
    assert p.commands[-1].command.startswith("vllm serve meta-llama/Llama-3.1-8B --tensor-parallel-size 1 ")
    assert "ray" not in p.commands[-1].command  # one node: no Ray


def test_options_reach_the_command(catalog, h100):
    p = plan_vllm(
        catalog.resolve("model", "llama-3.1-405b"),
        Request(context=32768),
        uniform_cluster(h100, 16, 8),
        VllmOptions(gpu_memory_utilization=0.95, max_num_seqs=256),
    )
    cmd = p.commands[-1].command
    assert "--max-model-len 32768" in cmd and "--gpu-memory-utilization 0.95" in cmd and "--max-num-seqs 256" in cmd


def test_plan_json(plan405):
    d = json.loads(json.dumps(plan_json(plan405)))
    assert d["schema_version"] == 1 and d["engine"] == "vllm" and d["fits"] is True
    assert d["cluster"]["total_gpus"] == 16 and len(d["cluster"]["nodes"]) == 2
    rank = d["best"]["ranks"][0]
    assert (
        rank["total_bytes"]
        == rank["weights_bytes"] + rank["activation_bytes"] + rank["overhead_bytes"] + rank["kv_bytes"]
    )
    assert isinstance(rank["weights_bytes"], int)
    assert d["commands"][0]["command"] == "ray start --head --port=6379"


# --------------------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------------------
def test_cluster_file(catalog):
    data = {
        "nodes": [{"host": "10.0.0.1", "gpu": "h100", "gpus": 8}, {"host": "10.0.0.2", "gpu": "h100-sxm", "gpus": 8}]
    }
    c = cluster_from_dict(data, lambda name: device(catalog.resolve("gpu", name)))
    assert c.total_gpus == 16 and c.head.host == "10.0.0.1" and c.nodes[1].gpu.gpu == "h100-sxm"
    p = plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), c)
    assert p.commands[1].command == "ray start --address=10.0.0.1:6379"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nodes": [{"host": "a", "gpu": "h100", "gpus": 8, "ram": 1}]}, "nodes.0.ram: Extra inputs"),
        ({"nodes": [{"host": "a", "gpu": "h100", "gpus": 0}]}, "nodes.0.gpus"),
        ({"nodes": [{"host": "a", "gpu": "h100", "gpus": "8"}]}, "nodes.0.gpus"),
        ({"nodes": []}, "nodes"),
    ],
)
def test_cluster_file_errors(catalog, data, message):
    with pytest.raises(UsageError, match=message):
        cluster_from_dict(data, lambda name: device(catalog.resolve("gpu", name)))


def test_uniform_cluster_needs_whole_nodes(h100):
    with pytest.raises(UsageError, match="whole nodes"):
        uniform_cluster(h100, 16, 6)
    assert uniform_cluster(h100, 16, 8).describe() == "2 nodes of 8xh100-sxm"


# --------------------------------------------------------------------------------------------------
# llama.cpp RPC
# --------------------------------------------------------------------------------------------------
def test_rpc_plan_405b_q4km(catalog, h100):
    """RPC devices first, the head's own GPUs last (llama.cpp src/llama.cpp: 'add RPC servers at the
    front of the list'); one rpc-server per remote GPU; --tensor-split in layers, the last count with the
    output layer (126 layers + 1)."""
    p = plan_llamacpp_rpc(
        catalog.resolve("model", "llama-3.1-405b"), Request(dtype="q4_k_m", context=8192), uniform_cluster(h100, 16, 8)
    )
    rpc = [c for c in p.commands if c.role == "rpc"]
    assert [c.command for c in rpc[:2]] == [
        "CUDA_VISIBLE_DEVICES=0 rpc-server -H 0.0.0.0 -p 50052",
        "CUDA_VISIBLE_DEVICES=1 rpc-server -H 0.0.0.0 -p 50053",
    ]
    assert len(rpc) == 8 and all(c.host == "<node1-ip>" for c in rpc)
    main = p.commands[-1]
    assert main.host == "<node0-ip>" and main.command.startswith(
        "llama-server -m llama-3.1-405b-q4_k_m.gguf -ngl 127 -c 8192 --rpc '<node1-ip>:50052,"
    )
    split = [int(x) for x in main.command.split("--tensor-split ")[1].split(",")]
    assert len(split) == 16 and sum(split) == 127
    stages = p.best.stages
    assert stages[0].host == "<node1-ip>" and stages[-1].host == "<node0-ip>" and stages[-1].lm_head
    assert sum(s.layers[1] - s.layers[0] for s in stages) == 126
    assert p.fits and all(s.total_bytes < 80 * GiB for s in stages)


def test_rpc_needs_identical_cards(catalog, h100):
    c = Cluster((Node("a", h100, 8), Node("b", device(catalog.resolve("gpu", "rtx4090")), 2)))
    with pytest.raises(UsageError, match="identical cards"):
        plan_llamacpp_rpc(catalog.resolve("model", "llama-3-8b"), Request(dtype="q4_k_m"), c)


def test_layout_can_be_forced(catalog, h100):
    p = plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 16, 8), tp=8, pp=2)
    assert [(q.tp, q.pp) for q in p.layouts] == [(8, 2)] and p.fits
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in p.commands[-1].command
    bad = plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 16, 8), tp=8, pp=3)
    assert bad.best is None and "do not fit in the nodes" in bad.layouts[0].problems[0] and bad.warnings
    with pytest.raises(UsageError, match="inside a node"):
        plan_vllm(catalog.resolve("model", "llama-3.1-405b"), Request(), uniform_cluster(h100, 16, 8), tp=16)
