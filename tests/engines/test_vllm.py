"""vLLM profile: hand-checkable arithmetic for per-rank weights, the caching allocator, V1 batch defaults,
pipeline stages and the KV pool. Sources are named next to each expectation."""

from __future__ import annotations

import pytest

from willitrun import archs
from willitrun.engines import VllmOptions, engine_estimate
from willitrun.engines.vllm import (
    batch_defaults,
    kv_heads_per_rank,
    pp_partition,
    rank_weights,
    torch_allocated,
    tp_problems,
    vllm_estimate,
)
from willitrun.errors import UsageError
from willitrun.memory import Request, resolve

MiB, GiB = 1 << 20, 1 << 30


def _weights(catalog, model: str, tp: int) -> object:
    spec = catalog.resolve("model", model)
    return rank_weights(resolve(spec, Request(dtype="bf16")), tp, (0, archs.geometry(spec).decoder_layers), True, True)


# --------------------------------------------------------------------------------------------------
# Per-rank weights against printed "Model loading took" figures (calibration_extra.yaml)
# --------------------------------------------------------------------------------------------------
def test_llama3_8b_tp2_terms(catalog):
    """PR #10511 prints 7.48 GiB per rank at TP 2. Terms: Llama-3-8B has 8,030,261,248 parameters
    (bf16: 16,060,522,496 B = 15,316.51 MiB); 266,240 of them are RMSNorm weights (32 x 2 x 4096 + 4096),
    replicated; the rotary cache is 8192 x 128 x 2 B = 2 MiB; the 501 MiB embedding and LM head shards
    each take a 502 MiB allocator block."""
    w = _weights(catalog, "llama-3-8b", 2)
    assert w.tensor_bytes == (8_030_261_248 - 266_240) // 2 * 2 + 266_240 * 2
    assert w.rope_bytes == 8192 * 128 * 2 == 2 * MiB
    assert w.allocated_bytes == w.tensor_bytes + w.rope_bytes + 2 * MiB
    assert round(w.allocated_bytes / GiB, 2) == 7.48  # the printed figure
    assert round(w.allocated_bytes / MiB, 2) == 7662.51


def test_llama31_8b_tp1_is_exact_to_four_decimals(catalog):
    """vLLM 0.8.1 prints 'Model loading took 14.9888 GB' for Llama-Guard-3-8B (issue #12568): 15,316.51 MiB
    of parameters + the 131,072 x 128 x bf16 rotary cache (32 MiB); every block a multiple of 2 MiB."""
    w = _weights(catalog, "llama-3.1-8b", 1)
    assert w.rope_bytes == 32 * MiB
    assert w.allocated_bytes == w.tensor_bytes + w.rope_bytes
    assert f"{w.allocated_bytes / GiB:.4f}" == "14.9888"


def test_qwen25_14b_tp2_allocator_rounding(catalog):
    """issue #13061 prints 13.9476 GiB per rank (DeepSeek-R1-Distill-Qwen-14B, Qwen2.5-14B shapes, TP 2).
    The shards are not multiples of 2 MiB: q/k/v 35 MiB, o_proj 25 MiB, gate_up 135 MiB, down 67.5 MiB."""
    w = _weights(catalog, "qwen2.5-14b", 2)
    assert abs(w.allocated_bytes / GiB - 13.9476) < 0.0002
    assert w.allocated_bytes - w.tensor_bytes - w.rope_bytes == 164 * MiB


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([("alloc", "a", 501 * MiB)], 502 * MiB),  # a 502 MiB segment, 1 MiB left: not split (not > 1 MiB)
        ([("alloc", "a", 500 * MiB)], 500 * MiB),
        ([("alloc", "a", 67 * MiB + 512 * 1024)], 68 * MiB),  # 0.5 MiB left: counted whole
        ([("alloc", "a", 3 * MiB)], 3 * MiB),  # a 20 MiB segment, 17 MiB left: split
        ([("alloc", "a", 1000)], 1024),  # small pool: rounded to 512 B
        ([("alloc", "a", 64 * MiB), ("free", "a", 0), ("alloc", "b", 35 * MiB)], 35 * MiB),  # reuses the 64, splits
        ([("alloc", "a", 36 * MiB), ("free", "a", 0), ("alloc", "b", 35 * MiB)], 36 * MiB),  # reuses the 36 whole
    ],
)
def test_torch_allocated(events, expected):
    """c10/cuda/CUDACachingAllocator.cpp: round_size, get_allocation_size, should_split."""
    assert torch_allocated(events) == expected


# --------------------------------------------------------------------------------------------------
# Tensor / pipeline parallel rules
# --------------------------------------------------------------------------------------------------
def test_pp_partition_matches_get_pp_indices():
    # vllm/distributed/utils.py get_pp_indices: the remainder goes to the stages before the last
    assert pp_partition(80, 3) == (27, 27, 26)
    assert pp_partition(126, 2) == (63, 63)
    assert pp_partition(32, 5) == (6, 6, 7, 7, 6)  # a remainder up to pp - 2 goes to the middle stages
    with pytest.raises(UsageError):
        pp_partition(4, 5)


def test_kv_heads_replicated_past_tp():
    assert [kv_heads_per_rank(8, tp) for tp in (1, 2, 4, 8, 16)] == [8, 4, 2, 1, 1]


def test_tp_problems(catalog):
    spec = catalog.resolve("model", "llama-3.1-405b")  # 128 heads, 8 KV heads, 53248 MLP, vocab 128256
    assert tp_problems(spec, 8) == [] and tp_problems(spec, 16) == []
    assert any("attention heads (128) not divisible by 3" in p for p in tp_problems(spec, 3))
    assert any("KV heads (8)" in p for p in tp_problems(spec, 12))


# --------------------------------------------------------------------------------------------------
# V1 batch defaults and the profile run
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "memory", "name", "usage", "expected"),
    [
        ("0.10", 79 * GiB, "NVIDIA H100 80GB HBM3", "serve", (8192, 1024)),  # >= 70 GiB
        ("0.10", 79 * GiB, "NVIDIA H100 80GB HBM3", "llm", (16384, 1024)),
        ("0.10", 79 * GiB, "NVIDIA A100-SXM4-80GB", "serve", (2048, 256)),  # A100 exception (PR #17885)
        ("0.8", 79 * GiB, "NVIDIA A100-SXM4-80GB", "serve", (8192, 1024)),  # 0.8.5 had none
        ("0.9", 79 * GiB, "NVIDIA A100-SXM4-80GB", "serve", (2048, 256)),  # vllm==0.9.1 arg_utils.py:1554 has it
        ("0.10", 24 * GiB, "NVIDIA GeForce RTX 4090", "serve", (2048, 256)),
        ("0.33", 178 * GiB, "NVIDIA B200", "serve", (16384, 1024)),  # 0.33.0 >= 160 GiB tier
        ("0.10", 178 * GiB, "NVIDIA B200", "serve", (8192, 1024)),
        ("0.6", 79 * GiB, None, "serve", (2048, 256)),  # V0 chunks beyond 32K too
    ],
)
def test_batch_defaults(version, memory, name, usage, expected):
    opt = VllmOptions(total_memory_bytes=memory, gpu_name=name, usage=usage, version=version)
    assert batch_defaults(opt, 131072) == expected


def test_v0_batch_without_chunked_prefill():
    """vllm==0.8.5 _set_default_args_v0: chunked prefill only beyond 32K (not with a sliding window or a
    multimodal model): otherwise max(max_model_len, 2048), at least 5120 for a multimodal model."""
    opt = VllmOptions(total_memory_bytes=80 * GiB, version="0.6")
    assert batch_defaults(opt, 8192) == (8192, 256)
    assert batch_defaults(opt, 1024) == (2048, 256)
    assert batch_defaults(opt, 32768) == (32768, 256)
    assert batch_defaults(opt, 131072, sliding=True) == (131072, 256)
    assert batch_defaults(opt, 4096, multimodal=True) == (5120, 256)


def test_no_131k_token_profile_batch(catalog):
    """The profile once ran 131,072 tokens for Llama 3.1 8B (12.5 GiB of temporaries); V0 chunks beyond
    32K (2048 tokens: the 256-row sampler decides) and V1 always (8192 tokens on an H100 with
    `vllm serve`: the sampler on 1024 rows decides). Asked for explicitly, the long batch is still there."""
    spec = catalog.resolve("model", "llama-3.1-8b")
    v0 = engine_estimate(spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB, version="0.6"))
    v1 = engine_estimate(spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB))
    assert v0.find("activation peak (profile run)").bytes == int(10.3 * 256 * 128256 * 4)
    long = engine_estimate(
        spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB, version="0.6", max_num_batched_tokens=131072)
    )
    assert long.find("activation peak (profile run)").bytes > 12 * GiB
    # The dummy run's hidden states stay alive through the sampler (vllm==0.11.0 gpu_model_runner.py `profile_run`
    # holds `hidden_states`; `_dummy_run` returns `hidden_states[logit_indices]`; `_dummy_sampler_run` takes a
    # `torch.rand_like` of those rows): (8192 + 2 x 1024) x 4096 hidden x 2 B.
    held = (8192 + 2 * 1024) * 4096 * 2
    # 0.33 (the default) runs the Triton top-k/top-p on 8 rows or more (vllm==0.19.1 topk_topp_sampler.py
    # `apply_top_k_top_p`, PR #33538): bf16 logits 2 + float32 copy 4 + softmax 4 + random_sample's q 4 = 14 B
    assert v1.find("activation peak (profile run)").bytes == 1024 * 128256 * 14 + held
    assert v1.facts["max_num_batched_tokens"] == 8192 and v1.facts["max_num_seqs"] == 1024
    # 0.10 (to 0.16) sorts (vllm==0.11.0 topk_topp_sampler.py `apply_top_k_top_p`: `logits.sort`): bf16 logits 2 +
    # float32 copy 4 + sorted values 4 + int64 indices 8, and inside the sort of >= 128 rows (PyTorch Sort.cu
    # `segmented_sort_pairs`) int64 reverse indices 8 + cub's third key/value buffers 4 + 8 = 38 B per logit
    v10 = engine_estimate(spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB, version="0.10"))
    assert v10.find("activation peak (profile run)").bytes == 1024 * 128256 * 38 + held
    small = engine_estimate(
        spec, Request(), "vllm", VllmOptions(total_memory_bytes=80 * GiB, max_num_seqs=256, version="0.10")
    )
    assert small.find("activation peak (profile run)").bytes == 256 * 128256 * 38 + (8192 + 512) * 4096 * 2
    # fewer than 128 rows: `segmented_sort_pairs_by_full_sort`: two int2 arrays 8 + 8, the keys output cub.cuh's
    # `radix_sort_pairs` allocates 4, cub's third buffers 4 + 8 -> 2 + 4 + 12 + 32 = 50 B
    few = engine_estimate(
        spec,
        Request(),
        "vllm",
        VllmOptions(total_memory_bytes=80 * GiB, max_num_seqs=64, max_num_batched_tokens=2048, version="0.10"),
    )
    assert few.find("activation peak (profile run)").bytes == 64 * 128256 * 50 + (2048 + 128) * 4096 * 2
    assert "x (2 + 48) B (torch.sort" in few.find("activation peak (profile run)").detail
    # 0.17 on: Triton from 8 rows, the sort below (`logits.shape[0] >= 8`)
    for version, rows, per_logit in (("0.17", 64, 14), ("0.17", 4, 50), ("0.10", 64, 50)):
        e = engine_estimate(
            spec,
            Request(),
            "vllm",
            VllmOptions(total_memory_bytes=80 * GiB, max_num_seqs=rows, max_num_batched_tokens=2048, version=version),
        )
        assert e.find("activation peak (profile run)").bytes >= rows * 128256 * per_logit
        assert f"x (2 + {per_logit - 2}) B" in e.find("activation peak (profile run)").detail


def test_v1_util_default_follows_the_version(catalog):
    spec = catalog.resolve("model", "llama-3-8b")
    assert (
        vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, version="0.10")).facts[
            "gpu_memory_utilization_pct"
        ]
        == 90
    )
    # the default is the newest release line, 0.34: 1.0 with the extensible KV cache (vllm==0.34.0 config/cache.py
    # `resolved_gpu_memory_utilization`)
    assert (
        vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB)).facts["gpu_memory_utilization_pct"]
        == 100
    )
    assert (
        vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, version="0.33")).facts[
            "gpu_memory_utilization_pct"
        ]
        == 92
    )


# --------------------------------------------------------------------------------------------------
# TP x PP estimate: KV per rank, unified blocks, sampler on the last stage
# --------------------------------------------------------------------------------------------------
def test_tp2_kv_per_rank(catalog):
    spec = catalog.resolve("model", "llama-3-8b")
    e = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, tensor_parallel=2))
    # 32 layers x K,V x 4 KV heads x 128 x 2 B per token, 64 tokens a block (vllm==0.34.0 DEFAULT_BLOCK_SIZE)
    per_block = 64 * 32 * 2 * 4 * 128 * 2
    assert e.find("KV cache blocks").bytes == e.facts["kv_blocks"] * per_block


def test_pp2_stages(catalog):
    spec = catalog.resolve("model", "llama-3-8b")
    e = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, tensor_parallel=2, pipeline_parallel=2))
    s0, s1 = e.find("weights [stage 0]"), e.find("weights [stage 1]")
    assert (s0.device, s1.device) == (0, 2)  # global rank of each stage's first GPU
    assert "layers 0-15" in s0.detail and "layers 16-31" in s1.detail
    assert (
        e.find("activation peak (profile run) [stage 0]").bytes
        < e.find("activation peak (profile run) [stage 1]").bytes
    )
    kv0, kv1 = e.find("KV cache blocks [stage 0]").bytes, e.find("KV cache blocks [stage 1]").bytes
    assert kv0 == kv1 == e.facts["kv_blocks"] * 64 * 16 * 2 * 4 * 128 * 2  # same blocks on every rank (64 a block)


def test_tp_refused_when_heads_do_not_divide(catalog):
    with pytest.raises(UsageError, match="not divisible by 3"):
        vllm_estimate(
            catalog.resolve("model", "llama-3-8b"),
            Request(),
            VllmOptions(total_memory_bytes=80 * GiB, tensor_parallel=3),
        )


def test_options_checked():
    with pytest.raises(UsageError, match="unknown vLLM version"):
        VllmOptions(version="0.1")
    with pytest.raises(UsageError, match="max_num_seqs"):
        VllmOptions(max_num_seqs=0)


# --------------------------------------------------------------------------------------------------
# MXFP4 experts padded per MoE backend (vllm mxfp4.py Mxfp4MoEMethod.create_weights)
# --------------------------------------------------------------------------------------------------
def _expert_bytes(i: int, h: int, experts: int = 32, layers: int = 24) -> int:
    """gpt-oss-20b (config.json: 24 layers, 32 experts, hidden 2880, intermediate 2880): MXFP4 weights at
    17 B per 32 elements (16 B of 4-bit values + 1 E8M0 scale), bf16 biases; gate+up (2 x i x h), down (h x i)."""
    weights = experts * 3 * i * h * 17 // 32
    biases = experts * (2 * i + h) * 2
    return layers * (weights + biases)


@pytest.mark.parametrize(
    ("gpu", "backend", "tp", "inter", "hidden"),
    [
        ("NVIDIA A100-SXM4-80GB", "marlin", 1, 2944, 3072),  # round_up(2880, 128), round_up(2880, 256)
        ("NVIDIA A100-SXM4-80GB", "marlin", 2, 1536, 3072),  # 1440 -> 1536 per partition, 2880 -> 3072
        ("NVIDIA H100 80GB HBM3", "triton", 1, 2880, 2880),  # round_up(2880, 64); hidden as is
        ("NVIDIA B200", "flashinfer-sm100", 1, 3072, 3072),  # round_up(_, 256) both
    ],
)
def test_mxfp4_experts_are_padded_per_backend(catalog, gpu, backend, tp, inter, hidden):
    from willitrun.engines.vllm import MXFP4_PADDING, MoeSplit, mxfp4_backend, rank_weights
    from willitrun.memory import resolve

    assert mxfp4_backend(gpu) == backend
    spec = catalog.resolve("model", "gpt-oss-20b")
    r = resolve(spec, Request())
    moe = MoeSplit(tp) if tp > 1 else None
    plain = rank_weights(r, tp, (0, 24), True, True, moe)
    padded = rank_weights(r, tp, (0, 24), True, True, moe, MXFP4_PADDING[backend])
    # per rank: the intermediate size split by TP (the down bias, hidden wide, is whole on every rank)
    assert padded.tensor_bytes - plain.tensor_bytes == _expert_bytes(inter, hidden) - _expert_bytes(2880 // tp, 2880)


def test_mxfp4_padding_is_on_from_0_22_and_noted(catalog):
    spec = catalog.resolve("model", "gpt-oss-20b")
    new = vllm_estimate(spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, gpu_name="NVIDIA A100-SXM4-80GB"))
    old = vllm_estimate(
        spec, Request(), VllmOptions(total_memory_bytes=80 * GiB, gpu_name="NVIDIA A100-SXM4-80GB", version="0.10")
    )
    assert any("MXFP4 experts on the marlin MoE backend" in n for n in new.notes)
    assert not any("MXFP4" in n for n in old.notes)


def test_vllm_use_v1_0_inside_0_9_is_the_v0_profile(catalog):
    """vllm==0.9.x: VLLM_USE_V1=0 selects V0 (envs.py), whose profile runs max(max_model_len, 2048) tokens over
    256 sequences (arg_utils.py `_set_default_args_v0`) instead of V1's 0.9 batch defaults."""
    spec = catalog.resolve("model", "llama-3-8b")
    v0 = vllm_estimate(spec, Request(context=8192), VllmOptions(total_memory_bytes=80 * GiB, version="0.9-v0"))
    v1 = vllm_estimate(spec, Request(context=8192), VllmOptions(total_memory_bytes=80 * GiB, version="0.9"))
    assert "profile run: 8192 tokens" in v0.notes[1] and "(max_num_seqs 256)" in v0.notes[1]
    assert "V0:" in v0.notes[1] and "V0:" not in v1.notes[1]
