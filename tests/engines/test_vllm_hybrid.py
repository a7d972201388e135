"""vLLM V1 KV cache groups: sliding-window layers (hybrid KV cache manager) and Mamba state pools.

Every expectation is derived by hand from the vLLM source the engine profile cites (the PyPI wheels'
Python files, "vllm==X path"):
- vllm==0.10.1 vllm/v1/kv_cache_interface.py: FullAttentionSpec.max_memory_usage_bytes =
  cdiv(max_model_len, block_size) x page; SlidingWindowSpec = (cdiv(min(window - 1 +
  max_num_batched_tokens, max_model_len), block_size) + 1) x page; MambaSpec = one page; AttentionSpec
  page = 2 x block_size x kv_heads x head_size x dtype bytes.
- vllm==0.10.1 vllm/v1/core/kv_cache_utils.py `_get_kv_cache_config_uniform_page_size`: group_size =
  the smallest layer count of a type, num_blocks = available // page // group_size, "GPU KV cache size" =
  num_blocks // groups x block_size, `get_max_concurrency_for_kv_cache_config` = num_blocks / the
  blocks one request needs over the groups; `check_enough_kv_cache_memory` sums each layer's usage.
- vllm==0.22.0 the same file: group_size = the largest count when under 1.5 x the smallest, the check
  counts padding (`_max_memory_usage_bytes_from_groups`), tokens = int(concurrency x max_model_len).
- vllm==0.10.1 vllm/model_executor/models/config.py HybridAttentionMambaModelConfig: attention block
  size 16 x cdiv(mamba_page, 16 x attention bytes per token), mamba page padded to the attention page.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from willitrun import archs
from willitrun.engines.vllm import VllmOptions, kv_layout, vllm_estimate
from willitrun.errors import UsageError
from willitrun.memory import Request, resolve

GiB = 1 << 30


def _layout(catalog, model: str, mml: int, batched: int, **opts):
    spec = catalog.resolve("model", model)
    r = resolve(spec, Request())
    layers = (0, archs.geometry(spec).decoder_layers)
    opts.setdefault("version", "0.10")  # these layouts are 0.10's (0.33 adds in-flight batches, hybrid prefix caching)
    return kv_layout(r, VllmOptions(total_memory_bytes=80 * GiB, **opts), layers, mml, batched)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------------------------------
# Gemma 3 27B: 62 layers, every 6th global (sliding_window_pattern 6: 10 full, 52 sliding of 1024),
# 16 KV heads x head_dim 128, bf16: page = 2 x 16 x 16 x 128 x 2 = 131,072 B
# --------------------------------------------------------------------------------------------------
def test_gemma3_groups_0_10(catalog):
    lay = _layout(catalog, "gemma-3-27b-text", 131072, 8192)
    page = 2 * 16 * 16 * 128 * 2
    assert page == 131072 and lay.page_bytes == page
    assert lay.group_size == 10  # min(52 sliding, 10 full)
    kinds = sorted((g.spec.kind, g.layers) for g in lay.groups)
    assert kinds == [("full", 10)] + [("sliding", 2)] + [("sliding", 10)] * 5  # 52 = 5 x 10 + 2 (8 padding)
    sliding = cdiv(min(1024 - 1 + 8192, 131072), 16) + 1
    assert sliding == 577
    full = cdiv(131072, 16)
    assert lay.blocks_per_request == 6 * sliding + full == 11654
    available = 40 * GiB
    blocks = available // page // 10
    assert lay.num_blocks(available) == blocks == 32768
    info = VllmOptions(version="0.10").info
    assert lay.printed_tokens(blocks, 131072, info) == blocks // 7 * 16 == 74896
    assert lay.concurrency(blocks, 131072, info) == pytest.approx(32768 / 11654)
    # check_enough_kv_cache_memory (0.10.1): each layer's own usage, padding not counted
    assert lay.needed_bytes == (52 * sliding + 10 * full) * page


def test_gemma3_0_22_counts_padding_and_prints_concurrency_tokens(catalog):
    lay = _layout(catalog, "gemma-3-27b-text", 131072, 8192, version="0.22")
    page, sliding, full = 131072, 577, 8192
    assert lay.group_size == 10  # 52 >= 1.5 x 10: the smallest count stays
    # layers[i::6] to sliding group i (PP-friendly interleaving): 9, 9, 9, 9, 8, 8
    assert sorted(g.layers for g in lay.groups if g.spec.kind == "sliding") == [8, 8, 9, 9, 9, 9]
    assert lay.needed_bytes == 10 * page * (6 * sliding + full)
    info = VllmOptions(version="0.22").info
    assert lay.printed_tokens(32768, 131072, info) == int(32768 / 11654 * 131072)


def test_0_33_reserves_two_batches_in_flight(catalog):
    """vllm==0.33.0 SlidingWindowSpec: window - 1 + max_in_flight_tokens, = 2 x max_num_batched_tokens with
    async scheduling at PP 1 (vllm/config/vllm.py `max_concurrent_batches`)."""
    lay = _layout(catalog, "gemma-3-27b-text", 131072, 8192, version="0.33")
    sliding = next(g for g in lay.groups if g.spec.kind == "sliding")
    assert sliding.blocks_per_request == cdiv(1023 + 2 * 8192, 16) + 1 == 1089


def test_short_context_caps_the_window_at_max_model_len(catalog):
    lay = _layout(catalog, "gemma-3-27b-text", 4096, 8192)
    sliding = next(g for g in lay.groups if g.spec.kind == "sliding")
    assert sliding.blocks_per_request == cdiv(4096, 16) + 1 == 257


# --------------------------------------------------------------------------------------------------
# gpt-oss-20b: 24 layers alternating sliding 128 / full, 8 KV heads x 64, page 2 x 16 x 8 x 64 x 2 = 32,768
# --------------------------------------------------------------------------------------------------
def test_gpt_oss_two_groups(catalog):
    lay = _layout(catalog, "gpt-oss-20b", 131072, 8192)
    assert lay.page_bytes == 2 * 16 * 8 * 64 * 2 == 32768
    assert lay.group_size == 12 and len(lay.groups) == 2
    assert lay.blocks_per_request == (cdiv(127 + 8192, 16) + 1) + cdiv(131072, 16) == 521 + 8192
    # num_blocks = available // page // 12: each block id costs one page in each of the 12 pools
    assert lay.pool_block_bytes == 12 * 32768


# --------------------------------------------------------------------------------------------------
# Without the hybrid manager every layer is full attention (one group, the old formula)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts", [{"version": "0.8"}, {"disable_hybrid_kv_cache_manager": True}])
def test_without_hybrid_manager_sliding_layers_are_full(catalog, opts):
    """vllm==0.8.5 kv_cache_utils.py `unify_hybrid_kv_cache_specs` converts every SlidingWindowSpec to
    FullAttentionSpec when both are present; 0.10.1 does the same under --disable-hybrid-kv-cache-manager."""
    lay = _layout(catalog, "gemma-2-9b", 8192, 8192, **opts)
    assert len(lay.groups) == 1 and lay.groups[0].spec.kind == "full"
    per_token = 42 * 2 * 8 * 256 * 2  # 42 layers x K,V x 8 heads x 256 x bf16
    assert lay.pool_block_bytes == 16 * per_token
    assert lay.needed_bytes == cdiv(8192, 16) * 16 * per_token


def test_hybrid_pool_gain_depends_on_the_scheduled_tokens(catalog):
    """Gemma 2 9B (42 layers, 21 sliding of 4096) at 8,192 tokens. On an H100 `vllm serve` schedules 8,192
    tokens per step, so a sliding layer may hold min(4095 + 8192, 8192) = 8,192 tokens: 513 blocks, one
    more than a full layer's 512 -- the hybrid manager saves nothing there. On a 48 GiB card (2,048
    tokens, arg_utils.py batch defaults) it holds cdiv(4095 + 2048, 16) + 1 = 385 blocks per request."""
    spec = catalog.resolve("model", "gemma-2-9b")
    for memory, sliding in ((80 * GiB, 513), (48 * GiB, 385)):
        on = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=memory, version="0.10"))
        off = vllm_estimate(
            spec,
            Request(),
            VllmOptions(total_memory_bytes=memory, disable_hybrid_kv_cache_manager=True, version="0.10"),
        )
        assert on.facts["kv_groups"] == 2 and off.facts["kv_groups"] == 1
        blocks_on, blocks_off = on.facts["kv_blocks"], off.facts["kv_blocks"]
        # same budget: one block id costs 21 pages with the groups, 42 without -> twice the block ids
        assert blocks_on // 2 <= blocks_off <= blocks_on // 2 + 1
        assert on.facts["max_concurrency_pct"] == round(blocks_on / (sliding + 512) * 100)
        assert off.facts["max_concurrency_pct"] == round(blocks_off / 512 * 100)


# --------------------------------------------------------------------------------------------------
# Mamba state pools
# --------------------------------------------------------------------------------------------------
def test_falcon_mamba_state_pool(catalog):
    """Falcon Mamba 7B (64 layers, intermediate 8192, d_state 16, d_conv 4), bf16: vLLM's conv state keeps
    d_conv - 1 = 3 columns (mamba_utils.py `mamba1_state_shape`), so one layer's state is
    (3 x 8192 + 8192 x 16) x 2 B = 311,296 B; one block (a whole sequence's state) per layer and request."""
    lay = _layout(catalog, "falcon-mamba-7b", 4096, 8192)
    assert lay.uniform_type and lay.groups[0].spec.kind == "mamba"
    assert lay.page_bytes == (3 * 8192 + 8192 * 16) * 2 == 311296
    assert lay.pool_block_bytes == 64 * 311296
    assert lay.blocks_per_request == 1
    assert lay.concurrency(100, 4096, VllmOptions(version="0.10").info) == 100  # one state per running sequence


def test_jamba_attention_block_raised_to_the_mamba_page(catalog):
    """Jamba 1.5 Mini: 4 attention layers (8 KV heads x 128, bf16: 4,096 B per token) and 28 Mamba layers
    (d_inner 8192, d_state 16, d_conv 4: 311,296 B). HybridAttentionMambaModelConfig: block size
    16 x cdiv(311,296, 16 x 4,096) = 80, page 80 x 4,096 = 327,680 B, mamba pages padded to it; groups of
    min(4, 28) = 4 layers: 1 attention group and 7 mamba groups."""
    lay = _layout(catalog, "jamba-mini-1.5", 262144, 8192)
    assert lay.block_size == 16 * cdiv(311296, 16 * 4096) == 80
    assert lay.page_bytes == 80 * 4096 == 327680
    assert lay.group_size == 4 and len(lay.groups) == 8
    assert lay.blocks_per_request == cdiv(262144, 80) + 7
    blocks = lay.num_blocks(20 * GiB)
    assert blocks == 20 * GiB // 327680 // 4
    # "GPU KV cache size": num_blocks // 8 groups x the smallest block size (80; the mamba groups' is max_model_len)
    assert lay.printed_tokens(blocks, 262144, VllmOptions(version="0.10").info) == blocks // 8 * 80


@pytest.mark.parametrize("model_id", ["mamba-2.8b", "jamba-mini-1.5", "falcon-h1-7b"])
def test_state_models_need_0_10(catalog, model_id):
    spec = catalog.resolve("model", model_id)
    with pytest.raises(UsageError, match=r"0\.10 or later"):
        vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, version="0.8"))
    e = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=192 * GiB))  # Jamba Mini: 96 GiB of bf16
    assert e.facts["kv_blocks"] > 0


def test_uniform_models_unchanged(catalog):
    """A full-attention model keeps the one-group arithmetic: available // (block_size x bytes per token)."""
    lay = _layout(catalog, "llama-3.1-8b", 131072, 8192)
    assert len(lay.groups) == 1 and lay.pool_block_bytes == 16 * 32 * 2 * 8 * 128 * 2
    assert lay.printed_tokens(1000, 131072, VllmOptions(version="0.10").info) == 16000


# --------------------------------------------------------------------------------------------------
# Expert parallel (vllm==0.10.1 fused_moe/config.py FusedMoEParallelConfig.make, layer.py determine_expert_map)
# --------------------------------------------------------------------------------------------------
def _bytes(catalog, model: str, tp: int, moe) -> tuple[int, int, int]:
    """(rank-0 tensor bytes, expert tensor bytes of the whole model, other tensor bytes) in bf16."""
    from willitrun.archs.base import EXPERT_ROLES
    from willitrun.engines.vllm import rank_weights

    spec = catalog.resolve("model", model)
    r = resolve(spec, Request(dtype="bf16"))
    w = rank_weights(r, tp, (0, archs.geometry(spec).decoder_layers), True, True, moe)
    experts = sum(t.numel * 2 for t in archs.model_tensors(spec) if t.role in EXPERT_ROLES)
    others = sum(t.numel * 2 for t in archs.model_tensors(spec) if t.role not in EXPERT_ROLES)
    return w.tensor_bytes, experts, others


def test_expert_parallel_gives_rank0_whole_experts(catalog):
    """Mixtral 8x7B over DP 3 with --enable-expert-parallel: ep_size = TP x DP = 3, the MoE layer has
    tp_size 1; determine_expert_map gives ranks 0 and 1 8 // 3 + 1 = 3 experts, rank 2 two. With TP 1 the
    attention, router, norms and embeddings are whole on every rank."""
    from willitrun.engines.vllm import MoeSplit

    rank0, experts, others = _bytes(catalog, "mixtral-8x7b", 1, MoeSplit(3, True))
    assert MoeSplit(3, True).experts_on_rank0(8) == 3
    assert rank0 == others + experts * 3 // 8


def test_without_expert_parallel_experts_split_over_tp_times_dp(catalog):
    """Qwen3-30B-A3B (128 experts, moe_intermediate 768) at TP 1, DP 2: `flatten_tp_across_dp` shards every
    expert over the 2 devices; with EP each holds 64 whole experts -- the same bytes when the count divides."""
    from willitrun.engines.vllm import MoeSplit

    tp_split, experts, others = _bytes(catalog, "qwen3-30b-a3b", 1, MoeSplit(2, False))
    ep_split, _, _ = _bytes(catalog, "qwen3-30b-a3b", 1, MoeSplit(2, True))
    assert tp_split == ep_split == others + experts // 2


def test_expert_parallel_option_reaches_the_estimate(catalog):
    spec = catalog.resolve("model", "mixtral-8x7b")
    e = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, data_parallel=3, expert_parallel=True))
    assert e.facts["expert_parallel"] is True and e.facts["data_parallel"] == 3
    _, experts, others = _bytes(catalog, "mixtral-8x7b", 1, None)
    w = e.find("weights")
    assert w.bytes >= others + experts * 3 // 8
    assert "3 whole experts of 8" in w.detail


# --------------------------------------------------------------------------------------------------
# The options from the command line
# --------------------------------------------------------------------------------------------------
def test_cli_flags_reach_the_profile():
    import json

    from typer.testing import CliRunner

    from willitrun.cli import app

    runner = CliRunner()

    def run(*args: str) -> dict:
        r = runner.invoke(app, ["--engine", "vllm", "--json", *args], env={"NO_COLOR": "1"})
        assert r.exit_code in (0, 1), r.output
        return json.loads(r.stdout)["engine_facts"]

    on = run("gemma-2-9b", "--gpu", "rtx4090", "--context", "4096")
    off = run("gemma-2-9b", "--gpu", "rtx4090", "--context", "4096", "--disable-hybrid-kv-cache-manager")
    assert (on["kv_groups"], off["kv_groups"]) == (2, 1)
    ep = run("mixtral-8x7b", "--gpu", "h100-sxm", "--data-parallel-size", "3", "--enable-expert-parallel")
    assert ep["expert_parallel"] is True and ep["data_parallel"] == 3
    r = runner.invoke(app, ["llama-3-8b", "--gpu", "rtx3090", "--enable-expert-parallel"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2 and "add --engine vllm" in r.stderr
    r = runner.invoke(app, ["llama-3-8b", "--gpu", "rtx3090", "--engine", "vllm", "-dp", "0"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2 and "--data-parallel-size must be at least 1" in r.stderr


@pytest.mark.parametrize(("model_id", "states"), [("jamba-mini-1.5", 2), ("falcon-h1-7b", 3)])
def test_0_33_hybrid_models_keep_prefix_caching_states(catalog, model_id, states):
    """vllm==0.33.0: prefix caching is on for generative hybrid models (config/model.py
    `is_prefix_caching_supported`), so mamba_cache_mode is 'align' (models/config.py MambaModelConfig) and
    MambaSpec.max_memory_usage_bytes = page x (2 + num_prefill_checkpoint_blocks): Jamba's Mamba1 mixer
    declares none, Falcon-H1's MambaMixer2 one (layers/mamba/mamba_mixer2.py `get_kv_cache_spec`).
    0.22.0 keeps one state per request ("Hybrid models do not support prefix caching")."""
    spec = catalog.resolve("model", model_id)
    mml = archs.geometry(spec).context_window
    for version, expected in (("0.22", 1), ("0.33", states)):
        lay = _layout(catalog, model_id, mml, 8192, version=version)
        mamba = [g for g in lay.groups if g.spec.kind == "mamba"]
        assert mamba and all(g.blocks_per_request == expected for g in mamba)
        full = next(g for g in lay.groups if g.spec.kind == "full")
        assert lay.blocks_per_request == cdiv(mml, lay.block_size) * (len(lay.groups) - len(mamba)) + expected * len(
            mamba
        )
        assert full.blocks_per_request == cdiv(mml, lay.block_size)


def test_falcon_h1_every_layer_has_both(catalog):
    """Falcon-H1 runs attention and a Mamba2 mixer side by side in each of its 44 layers: vLLM gives each
    its own spec, so 44 full-attention layers and 44 mamba layers -> group_size 44, 2 groups."""
    lay = _layout(catalog, "falcon-h1-7b", 262144, 8192)
    assert lay.group_size == 44 and sorted(g.spec.kind for g in lay.groups) == ["full", "mamba"]


# --------------------------------------------------------------------------------------------------
# A real log: gpt-oss-120b on an H100 (calibration_extra.yaml vllm-issue27508-gpt-oss-120b-mxfp4-h100-tp1)
# --------------------------------------------------------------------------------------------------
def _entry(entry_id: str) -> dict:
    from tests.engines.calibration import EXTRA, load

    return next(e for e in load(EXTRA) if e["id"] == entry_id)


def test_gpt_oss_120b_needed_kv_matches_the_log(catalog):
    """vllm-project/vllm issue #27508: `--max-num-batched-tokens 1024`, max_model_len 131,072 ->
    "(4.54 GiB KV cache is needed ...)". 18 full layers x 8,192 blocks + 18 sliding layers x (cdiv(127 + 1024,
    16) + 1) = 73 blocks, x 32,768 B a page."""
    e = _entry("vllm-issue27508-gpt-oss-120b-mxfp4-h100-tp1")
    spec = catalog.resolve("model", e["model"])
    est = vllm_estimate(
        spec,
        Request(),
        VllmOptions(
            total_memory_bytes=80 * GiB,
            gpu_memory_utilization=e["gpu_memory_utilization"],
            version=e["version_key"],
            max_model_len=e["max_model_len"],
            max_num_batched_tokens=e["max_num_batched_tokens"],
        ),
    )
    needed = int(est.facts["kv_needed_bytes"])
    assert needed == (18 * 8192 + 18 * 73) * 32768
    assert round(needed / GiB, 2) == e["kv_needed_gib"] == 4.54
    off = vllm_estimate(
        spec,
        Request(),
        VllmOptions(
            total_memory_bytes=80 * GiB,
            version=e["version_key"],
            max_model_len=e["max_model_len"],
            max_num_batched_tokens=e["max_num_batched_tokens"],
            disable_hybrid_kv_cache_manager=True,
        ),
    )
    assert int(off.facts["kv_needed_bytes"]) == 36 * 8192 * 32768 == 9 * GiB


def test_expert_width_must_divide_tp_times_dp_without_ep(catalog):
    """vllm==0.10.1 fused_moe/layer.py FusedMoE: `assert intermediate_size % self.tp_size == 0` with tp_size =
    TP x DP without expert parallel (Mixtral's 14,336 over 3 fails); with EP the MoE layer's tp_size is 1."""
    spec = catalog.resolve("model", "mixtral-8x7b")
    with pytest.raises(UsageError, match=r"moe_intermediate_size \(14336\) not divisible by TP x DP = 3"):
        vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, data_parallel=3))
    vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, data_parallel=3, expert_parallel=True))


# --------------------------------------------------------------------------------------------------
# "Based on the available memory, the estimated maximum model length is N"
# --------------------------------------------------------------------------------------------------
def _ranks(catalog, model: str, memory: int, **opts):
    from willitrun.engines.vllm import budgets

    spec = catalog.resolve("model", model)
    opt = VllmOptions(total_memory_bytes=memory, **opts)
    r, mml, batched, _, ranks = budgets(spec, Request(), opt)
    return r, opt, mml, batched, ranks


def test_estimated_max_model_len_full_attention(catalog):
    """Full attention only: the binary search lands on whole blocks, floor(available / (layers x page)) x 16.
    The shape is the one two vLLM errors show for Qwen3-Coder-480B (62 layers x 65,536 B pages; vllm-project/
    recipes PR #12): 48.66 GiB -> 205,728 = 12,858 x 16 and 55.65 GiB -> 235,296 = 14,706 x 16."""
    from willitrun.engines.vllm import estimate_max_model_len

    # 0.33: the 16-token blocks of those logs (0.34 has 64)
    r, opt, mml, batched, ranks = _ranks(catalog, "llama-3.1-8b", 24 * GiB, version="0.33")
    available = ranks[0].available_bytes
    assert 0 < available < 16 * GiB  # 131,072 tokens need 16 GiB: it does not fit
    assert estimate_max_model_len(r, opt, ranks, batched, mml) == available // (32 * 16 * 4096) * 16
    page = 62 * 16 * 2 * 8 * 128 * 2
    for printed_gib, printed_len in ((48.66, 205728), (55.65, 235296)):  # GiB printed with two decimals
        lo, hi = int((printed_gib - 0.005) * GiB) // page * 16, int((printed_gib + 0.005) * GiB) // page * 16
        assert lo <= printed_len <= hi


def test_estimated_max_model_len_with_sliding_groups(catalog):
    """Gemma 3 27B on a 48 GiB card: the longest length whose one-request KV (sliding groups capped at their
    window) fits, and one token more does not."""
    from willitrun.engines.vllm import estimate_max_model_len

    r, opt, mml, batched, ranks = _ranks(catalog, "gemma-3-27b-text", 64 * GiB)
    available = ranks[0].available_bytes
    longest = estimate_max_model_len(r, opt, ranks, batched, mml)
    assert 0 < longest < mml
    assert kv_layout(r, opt, ranks[0].layers, longest, batched).needed_bytes <= available
    assert kv_layout(r, opt, ranks[0].layers, longest + 1, batched).needed_bytes > available


# --------------------------------------------------------------------------------------------------
# Properties the binary search relies on (run with several seeds: pytest -p hypothesis --hypothesis-seed=N)
# --------------------------------------------------------------------------------------------------
HYBRID_MODELS = [
    "gemma-2-9b",
    "gemma-3-27b-text",
    "gpt-oss-20b",
    "jamba-mini-1.5",
    "falcon-h1-7b",
    "falcon-mamba-7b",
    "llama-3.1-8b",
    "mistral-7b",
    "llama-4-scout-text",
]


@settings(max_examples=80, deadline=None)
@given(
    model=st.sampled_from(HYBRID_MODELS),
    a=st.integers(1, 300_000),
    b=st.integers(1, 300_000),
    batched=st.integers(1, 32768),
    version=st.sampled_from(["0.8", "0.9", "0.10", "0.22", "0.33"]),
)
def test_a_longer_request_never_needs_less_kv(catalog, model, a, b, batched, version):
    """Every spec's blocks per request (full: cdiv(len, bs); sliding: cdiv(min(window - 1 + tokens, len), bs)
    + 1; mamba: fixed) grow with max_model_len, so the one-request KV does: what makes vLLM's binary search
    (and estimate_max_model_len) valid."""
    spec = catalog.resolve("model", model)
    if archs.geometry(spec).ssm_state and version in ("0.8", "0.9"):
        return  # refused before 0.10
    lo, hi = sorted((a, b))
    short = _layout(catalog, model, lo, batched, version=version)
    long = _layout(catalog, model, hi, batched, version=version)
    assert short.needed_bytes <= long.needed_bytes
    assert short.blocks_per_request <= long.blocks_per_request


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(HYBRID_MODELS), mml=st.integers(1, 300_000), gib=st.integers(1, 200))
def test_blocks_never_cost_more_than_the_memory(catalog, model, mml, gib):
    """num_blocks x the bytes of one block id over all pools never exceeds the available memory, and one
    block more would (get_num_blocks floors available // page // group_size)."""
    lay = _layout(catalog, model, mml, 8192)
    available = gib * GiB
    n = lay.num_blocks(available)
    assert n * lay.pool_block_bytes <= available < (n + 1) * lay.pool_block_bytes


@pytest.mark.parametrize("version", ["0.9", "0.10", "0.22", "0.33"])
def test_llama4_chunked_attention_cached_in_full(catalog, version):
    """Llama 4 Scout: 36 chunked-local (8,192) + 12 full layers. 0.9.x has no ChunkedLocalAttentionSpec;
    from 0.10.1 the hybrid manager is turned off for chunked local attention unless
    VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1 (vllm==0.10.1 config/__init__.py, 0.19.1 and 0.22.0
    config/vllm.py): one group, every layer a full cache of cdiv(max_model_len, 16) blocks."""
    lay = _layout(catalog, "llama-4-scout-text", 65536, 8192, version=version)
    assert len(lay.groups) == 1 and lay.groups[0].spec.kind == "full" and lay.groups[0].layers == 48
    assert lay.blocks_per_request == 65536 // 16
    assert any("chunked local attention" in n for n in lay.notes)
