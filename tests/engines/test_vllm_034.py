"""vLLM 0.34: the extensible KV cache, read from the vllm==0.34.0 wheel on PyPI.

- vllm/config/cache.py: DEFAULT_BLOCK_SIZE = 64 (16 in 0.33.0); gpu_memory_utilization None resolves to 1.0 with
  enable_extensible_kv_cache (on by default on CUDA, vllm/config/vllm.py) and 0.92 otherwise.
- vllm/v1/worker/extensible_kv_cache.py `measure_kv_cache_bytes`:
  available = min(requested - non_kv_used, headroom - margin) - transient_peak,
  margin = max(KV_CACHE_MARGIN_FLOOR_BYTES = 1 GiB, KV_CACHE_MARGIN_FRACTION 0.75 x transient_peak).
- vllm/v1/worker/utils.py `request_memory`: no "Free memory on device ... less than desired GPU memory
  utilization" refusal with the extensible KV cache.
- engine/arg_utils.py `get_batch_defaults` and config/scheduler.py defaults: unchanged from 0.33.0.
"""

from __future__ import annotations

import pytest

from willitrun.engines.vllm import (
    VLLM_CUDA_CONTEXT_BYTES,
    VLLM_DEFAULT_VERSION,
    VLLM_VERSIONS,
    VllmOptions,
    batch_defaults,
    version_for_release,
    vllm_estimate,
)
from willitrun.memory import Request

GiB = 2**30


def _est(catalog, model="llama-3-8b", **opts):
    return vllm_estimate(catalog.resolve("model", model), Request(), VllmOptions(**opts))


def _margin_rows(e):
    return [b for b in e.buffers if b.name == "kept free (KV sizing margin)"]


def _budget_parts(e):
    return sum(
        e.find(n).bytes
        for n in (
            "weights",
            "non-torch memory",
            "activation peak (profile run)",
            "kept free (KV sizing margin)",
            "CUDA context (before the snapshot)",
        )
    )


def test_034_is_the_default_and_releases_map_to_it():
    assert VLLM_DEFAULT_VERSION == "0.34"
    assert version_for_release("0.34.0") == "0.34"
    assert version_for_release("0.33.0") == "0.33"


def test_pool_is_the_card_less_the_margin_and_the_rest(catalog):
    """Whole card (utilization 1.0): the pool is what is left after the CUDA context held at the init snapshot and
    the 1 GiB floor of the margin (the activation peak of Llama 3 8B at 2048 tokens is well under 1/0.75 GiB), in
    64-token blocks."""
    total = 24 * GiB
    e = _est(catalog, total_memory_bytes=total)
    assert e.facts["gpu_memory_utilization_pct"] == 100
    assert e.find("kept free (KV sizing margin)").bytes == GiB
    assert e.find("CUDA context (before the snapshot)").bytes == VLLM_CUDA_CONTEXT_BYTES
    assert e.find("activation peak (profile run)").bytes < GiB / 0.75
    per_block = 64 * 2 * 32 * 8 * 128 * 2  # 64 tokens x K,V x 32 layers x 8 KV heads x 128 x bf16
    assert e.find("KV cache blocks").bytes == e.facts["kv_blocks"] * per_block
    assert e.facts["kv_blocks"] == (total - _budget_parts(e)) // per_block
    assert e.facts["kv_tokens"] == 64 * e.facts["kv_blocks"]


def test_margin_grows_with_a_large_peak(catalog):
    """0.75 x the transient peak once that is over 4/3 GiB: a 65,536-token profile batch."""
    e = _est(catalog, total_memory_bytes=80 * GiB, max_num_batched_tokens=65536)
    peak = e.find("activation peak (profile run)").bytes
    assert peak > GiB / 0.75
    assert e.find("kept free (KV sizing margin)").bytes == int(peak * 0.75)


def test_a_lower_utilization_leaves_the_margin_free_already(catalog):
    """min(requested - non_kv_used, headroom - margin): 0.9 of 80 GiB leaves 8 GiB free, more than the 1 GiB
    margin, so the budget binds and no margin row is taken off it."""
    e = _est(catalog, total_memory_bytes=80 * GiB, gpu_memory_utilization=0.9)
    assert not _margin_rows(e)
    # 0.99 of 80 GiB leaves 0.8 GiB: the margin takes the rest of max(1 GiB, 0.75 x peak)
    e = _est(catalog, total_memory_bytes=80 * GiB, gpu_memory_utilization=0.99)
    margin = max(GiB, int(e.find("activation peak (profile run)").bytes * 0.75))
    assert e.find("kept free (KV sizing margin)").bytes == margin - (80 * GiB - int(80 * GiB * 0.99)) > 0


def test_033_is_unchanged(catalog):
    e = _est(catalog, total_memory_bytes=24 * GiB, version="0.33")
    assert e.facts["gpu_memory_utilization_pct"] == 92
    assert not _margin_rows(e)
    assert "16 tokens" in e.find("KV cache blocks").detail


@pytest.mark.parametrize("gib", [24, 80, 192])
def test_batch_defaults_as_033(gib):
    """engine/arg_utils.py `get_batch_defaults` is the same in vllm==0.33.0 and 0.34.0."""
    a = batch_defaults(VllmOptions(total_memory_bytes=gib * GiB, version="0.33"), 8192)
    b = batch_defaults(VllmOptions(total_memory_bytes=gib * GiB, version="0.34"), 8192)
    assert a == b


def test_block_size_option_overrides_the_version(catalog):
    e = _est(catalog, total_memory_bytes=24 * GiB, block_size=16)
    assert e.facts["kv_tokens"] == 16 * e.facts["kv_blocks"]
    assert VLLM_VERSIONS["0.34"].block_size == 64 and VLLM_VERSIONS["0.33"].block_size == 16


def test_verdict_against_free_memory(catalog):
    """0.33 refuses to start when less than its share is free; 0.34 sizes the pool from what is free, so the
    same need on the same card with the same free memory is judged against the free memory."""
    from willitrun.engines import engine_fit
    from willitrun.fit import DOES_NOT_FIT, FITS, TIGHT, Memory, verdict

    spec = catalog.resolve("model", "llama-3-8b")
    total = 24 * GiB
    new = engine_fit(spec, Request(context=8192), "vllm", VllmOptions(total_memory_bytes=total), total)
    old = engine_fit(spec, Request(context=8192), "vllm", VllmOptions(total_memory_bytes=total, version="0.33"), total)
    need = new.estimate.need_bytes
    free = need + GiB  # room to spare for the need, but under 0.33's 0.92 share
    assert free < int(total * 0.92)
    assert verdict(new, Memory(total, free)).status == FITS
    assert verdict(old, Memory(total, free)).status == TIGHT
    # less free than the need: 0.34 cannot grow its pool to one request
    assert verdict(new, Memory(total, need - GiB)).status in (TIGHT, DOES_NOT_FIT)


def _measure_kv_cache_bytes(init_free, free, committed, requested, transient, floor=GiB, fraction=0.75):
    """vllm==0.34.0 vllm/v1/worker/extensible_kv_cache.py `measure_kv_cache_bytes`, transcribed (torch's reservation
    growth taken as 0: it is below the transient peak in the path modelled)."""
    non_kv_used = init_free - free - committed
    headroom = free + committed
    margin = max(floor, int(transient * fraction))
    return max(min(requested - non_kv_used, headroom - margin) - transient, 0)


@pytest.mark.parametrize(
    ("gib", "util", "context_mib"), [(24, None, None), (80, None, 555), (80, 0.9, 107), (24, 0.97, 360)]
)
def test_pool_is_vllms_own_sizing(catalog, gib, util, context_mib):
    """The estimate's pool equals vLLM 0.34's own `measure_kv_cache_bytes` fed with what the worker would see: an
    init snapshot taken after the CUDA context (init free = total - context), weights + non-torch memory used after
    it, no KV committed yet, the profiled activation peak as the transient."""
    total = gib * GiB
    opts = {"total_memory_bytes": total}
    if util is not None:
        opts["gpu_memory_utilization"] = util
    if context_mib is not None:
        opts["cuda_context_bytes"] = context_mib << 20
    e = _est(catalog, **opts)
    context = (context_mib << 20) if context_mib is not None else VLLM_CUDA_CONTEXT_BYTES
    init_free = total - context
    used = e.find("weights").bytes + e.find("non-torch memory").bytes
    peak = e.find("activation peak (profile run)").bytes
    requested = -(-total * (util or 1.0) // 1)  # math.ceil(total x utilization), v1/worker/utils.py `request_memory`
    pool = _measure_kv_cache_bytes(init_free, init_free - used, 0, int(requested), peak)
    per_block = 64 * 2 * 32 * 8 * 128 * 2
    assert e.facts["kv_blocks"] == pool // per_block


def test_context_sits_in_the_headroom_before_034(catalog):
    """Before the extensible KV cache the budget is utilization x total, measured from a snapshot taken after the
    context: no context row, and the given context changes nothing."""
    a = _est(catalog, total_memory_bytes=24 * GiB, version="0.33")
    b = _est(catalog, total_memory_bytes=24 * GiB, version="0.33", cuda_context_bytes=2 * GiB)
    assert a.facts["kv_blocks"] == b.facts["kv_blocks"]
    assert not [x for x in a.buffers if x.name.startswith("CUDA context")]


@pytest.mark.parametrize(("version", "counted"), [("0.34", True), ("0.22", True), ("0.17", False)])
def test_given_cudagraph_memory_comes_off_the_pool_from_021(catalog, version, counted):
    """From 0.21 the graphs' estimate is taken off the KV budget (gpu_worker.py `determine_available_memory`); 0.34
    captures them before sizing its pool; earlier releases capture after the pool, in the headroom."""
    graphs = GiB // 2
    a = _est(catalog, total_memory_bytes=24 * GiB, version=version)
    b = _est(catalog, total_memory_bytes=24 * GiB, version=version, cudagraph_bytes=graphs)
    per_block = a.find("KV cache blocks").bytes // a.facts["kv_blocks"]
    lost = a.facts["kv_blocks"] - b.facts["kv_blocks"]
    if counted:
        assert b.find("CUDA graphs").bytes == graphs
        assert graphs // per_block <= lost <= graphs // per_block + 1
    else:
        assert lost == 0 and not [x for x in b.buffers if x.name == "CUDA graphs"]


def test_rocm_keeps_a_3_gib_floor(catalog):
    """extensible_kv_cache.py `KV_CACHE_MARGIN_FLOOR_BYTES = (3 if current_platform.is_rocm() else 1) << 30`."""
    amd = _est(catalog, total_memory_bytes=192 * GiB, gpu_name="AMD Instinct MI300X")
    nv = _est(catalog, total_memory_bytes=192 * GiB, gpu_name="NVIDIA B200")
    assert amd.find("kept free (KV sizing margin)").bytes == 3 * GiB
    peak = nv.find("activation peak (profile run)").bytes  # 16384 tokens on a >= 160 GiB card: 0.75 x peak > 1 GiB
    assert GiB < nv.find("kept free (KV sizing margin)").bytes == int(0.75 * peak) < 3 * GiB
