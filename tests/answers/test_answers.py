"""Largest batch, quantization ladder, which GPUs and how many, context sweep: each answer against
arithmetic shown here or against the estimate it is built on."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import llama
from willitrun import Request, check_fit, estimate
from willitrun.answers import (
    LADDER_KV,
    cards_needed,
    device,
    layout,
    max_batch,
    quant_ladder,
    sweep,
    sweep_contexts,
    tensor_split,
    which_gpus,
)
from willitrun.fit import TIGHT, verdict
from willitrun.memory import attention, estimate_resolved, resolve

GiB, MiB = 1 << 30, 1 << 20
# Llama-2-7B in fp16, by hand (config.json: 32 layers, 4096 hidden, 11008 intermediate, 32000 vocab):
EMB = 32000 * 4096 * 2  # token embeddings = LM head: 262,144,000 B
LAYER = (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) * 2  # q, k, v, o, gate, up, down, 2 norms: 404,766,720 B
W7B = 2 * EMB + 32 * LAYER + 4096 * 2  # + the final norm = 13,476,831,232 B
KV_TOKEN = 2 * 32 * 4096 * 2  # K and V x 32 layers x 32 heads x 128 x 2 B = 524,288 B per token
OVERHEAD = 360 * MiB


def test_hand_numbers_are_the_estimate():
    e = estimate(llama(), context=4096)
    assert W7B == 13_476_831_232 == e.weights_bytes
    assert e.kv_self_bytes == 4096 * KV_TOKEN == 2 * GiB


# ---- largest batch -----------------------------------------------------------------------------
def test_max_batch_by_hand():
    # Caches and activations are per sequence, so total(b) = weights + overhead + b x per-sequence
    # bytes; on 24 GiB at 4,096 tokens: (24 GiB - W - 360 MiB) // (2 GiB + activations of one).
    r = resolve(llama(), Request())
    act1 = estimate(llama(), context=4096).activations_bytes
    per_seq = 2 * GiB + act1
    expected = (24 * GiB - W7B - OVERHEAD) // per_seq
    b = max_batch(r, 24 * GiB, 4096)
    assert b.max_batch == expected == 4
    assert b.per_sequence_bytes == per_seq
    assert b.total_bytes == W7B + OVERHEAD + 4 * per_seq <= 24 * GiB < b.next_total_bytes


@pytest.mark.parametrize(
    ("model", "vram_gib", "context"),
    [
        ("llama-3.1-8b", 24, 8192),
        ("llava-1.5-7b", 16, 4096),
        ("whisper-large-v3", 8, 448),
        ("flan-t5-xl", 40, 512),
        ("llama-3.2-11b-vision", 48, 2048),
        ("mistral-7b", 80, 32768),
    ],
)
def test_max_batch_fits_and_one_more_does_not(catalog, model, vram_gib, context):
    r = resolve(catalog.resolve("model", model), Request())
    b = max_batch(r, vram_gib * GiB, context)
    assert b.max_batch > 0
    assert estimate_resolved(r, context, b.max_batch, 1).total_bytes <= vram_gib * GiB
    assert estimate_resolved(r, context, b.max_batch + 1, 1).total_bytes > vram_gib * GiB


def test_max_batch_zero_when_one_sequence_does_not_fit(catalog):
    r = resolve(catalog.resolve("model", "llama-2-13b"), Request())
    b = max_batch(r, 16 * GiB, 4096)
    assert b.max_batch == 0 and b.total_bytes == b.next_total_bytes > 16 * GiB


@settings(max_examples=40, deadline=None)
@given(vram_mib=st.integers(14_000, 200_000), context=st.integers(1, 4096), beams=st.integers(1, 4))
def test_max_batch_is_exact(vram_mib, context, beams):
    r = resolve(llama(), Request())
    vram = vram_mib * MiB
    n = max_batch(r, vram, context, beams).max_batch
    assert n == 0 or estimate_resolved(r, context, n, beams).total_bytes <= vram
    assert estimate_resolved(r, context, n + 1, beams).total_bytes > vram


# ---- quantization ladder -----------------------------------------------------------------------
def test_ladder_rows_are_full_estimates(catalog):
    spec = catalog.resolve("model", "llama-3.1-8b")
    vram = catalog.resolve("gpu", "rtx4060-ti-16gb").capacity_bytes
    lad = quant_ladder(spec, Request(), vram, "transformers")
    assert [r.dtype for r in lad.rows[::3]] == [
        "bf16",
        "fp8",
        "int8",
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q4_k_m",
        "q4_0",
        "q3_k_m",
        "q2_k",
    ]
    assert [r.kv_dtype for r in lad.rows[:3]] == list(LADDER_KV)
    for row in lad.rows:
        # the ladder swaps types into one resolved estimate; a fresh estimate must agree to the byte
        e = estimate(spec, context=lad.context_tokens, dtype=row.dtype, kv_dtype=row.kv_dtype)
        assert (row.weights_bytes, row.kv_bytes, row.total_bytes) == (e.weights_bytes, e.kv_bytes, e.total_bytes)
        assert row.fits == (row.total_bytes <= vram) and row.headroom_bytes == vram - row.total_bytes
        f = check_fit(spec, Request(dtype=row.dtype, kv_dtype=row.kv_dtype), vram, "t")
        assert row.max_context_tokens == f.max_context_tokens
        assert row.verdict == verdict(f).status  # the main command's verdict for this type
    # bf16 with an f16 cache is 205 MiB too big for 16 GiB; an 8-bit cache makes it fit, with 35 MiB left:
    # inside the transformers profile's measured error (fit.ERROR_BANDS: 173 MiB), so TIGHT
    assert not lad.rows[0].fits and lad.best is lad.rows[1]
    assert lad.rows[1].verdict == TIGHT and lad.rows[1].headroom_bytes == 36703232 and lad.exit_code == 0


def test_ladder_max_context_and_batch_are_exact(catalog):
    spec = catalog.resolve("model", "llama-3-70b")
    vram = 48 * GiB
    lad = quant_ladder(spec, Request(), vram, "transformers")
    for row in lad.rows:
        r = resolve(spec, Request(dtype=row.dtype, kv_dtype=row.kv_dtype))
        n = row.max_context_tokens
        if n:
            assert estimate_resolved(r, n, 1, 1).total_bytes <= vram
        if n < lad.context_limit_tokens:
            assert estimate_resolved(r, n + 1, 1, 1).total_bytes > vram
        assert row.max_batch == max_batch(r, vram, lad.context_tokens).max_batch
    # the most bits that fit 48 GiB at 4,096 tokens: q5_k_m weights (46.5 GiB) with a q4_0 cache, 3 MiB to spare
    best = lad.best
    assert best is not None and (best.dtype, best.kv_dtype) == ("q5_k_m", "q4_0") and best.headroom_bytes < 4 * MiB
    assert not any(row.fits for row in lad.rows[: lad.rows.index(best)])


@pytest.mark.parametrize(
    ("model", "engine", "dtype", "kv", "gpu", "context"),
    [
        ("llava-1.5-7b", "llama.cpp", "q4_k_m", "f16", "rtx3090", 4096),  # the ladder of benchmarks/vs_llmfit.py
        ("llava-1.5-7b", "llama.cpp", "q8_0", "q4_0", "rtx3090", 4096),
        ("gemma-3-4b", "llama.cpp", "q4_0", "q8_0", "rtx4060", 8192),  # sliding-window cells padded to 256
        ("falcon-h1-7b", "llama.cpp", "q4_k_m", "f16", "rtx3090", 4096),  # recurrent state per sequence
        ("qwen3-30b-a3b", "llama.cpp", "q2_k", "q4_0", "a100-80gb", 32768),  # experts
        ("llama-3.1-8b", "ollama", "q4_k_m", "f16", "rtx3090", 2048),
        ("llama-2-13b", "llama.cpp", "q8_0", "f16", "rtx4060", 4096),  # not one sequence fits: 0
    ],
)
def test_engine_max_batch_is_the_scan_of_every_batch(catalog, model, engine, dtype, kv, gpu, context):
    """engine_max_batch interpolates (memory.largest_within, ~4 estimates; 2 from a right guess): the answer
    of trying every batch from 1 up, as the doubling and bisection it replaced gave."""
    from willitrun.answers import engine_max_batch
    from willitrun.engines import engine_estimate

    spec, vram = catalog.resolve("model", model), catalog.resolve("gpu", gpu).capacity_bytes
    req = Request(dtype=dtype, kv_dtype=kv, context=context)
    n = 0
    while engine_estimate(spec, dataclasses.replace(req, batch=n + 1), engine).max_device_bytes <= vram:
        n += 1
    assert engine_max_batch(spec, req, engine, vram, context) == n
    # the ladder's guess from the previous row: right, short, long or out of range, the answer is the same
    for guess in {n, n + 1, max(n - 1, 1), 1, 4095, 0, 5000}:
        assert engine_max_batch(spec, req, engine, vram, context, guess) == n, guess


def test_ladder_batches_are_each_rows_own_search(catalog, monkeypatch):
    """The ladder carries each row's batch search to the next (answers._BatchHint): every llama.cpp row's
    largest batch is still engine_max_batch of that row alone, in ~2 estimates for all but the first row
    of each KV type (261 llama.cpp estimates before, benchmarks/vs_llmfit.py's ladder)."""
    import willitrun.engines as engines
    from willitrun.answers import engine_max_batch
    from willitrun.fit import Memory

    spec, gpu = catalog.resolve("model", "llava-1.5-7b"), catalog.resolve("gpu", "rtx3090")
    calls = []
    real = engines.engine_estimate
    monkeypatch.setattr(engines, "engine_estimate", lambda *a, **k: calls.append(1) or real(*a, **k))
    lad = quant_ladder(spec, Request(), Memory(gpu.capacity_bytes), None, gpu.name)
    rows = [r for r in lad.rows if r.engine == "llama.cpp"]
    assert len(rows) == 21 and len(calls) == 3 * 4 + 18 * 2  # the batch searches' estimates
    monkeypatch.setattr(engines, "engine_estimate", real)
    for row in rows:
        req = Request(dtype=row.dtype, kv_dtype=row.kv_dtype, context=row.context_tokens)
        assert row.max_batch == engine_max_batch(spec, req, "llama.cpp", gpu.capacity_bytes, row.context_tokens)


def test_engine_max_batch_stops_at_the_np_bound(catalog):
    from willitrun.answers import engine_max_batch

    spec = catalog.resolve("model", "smollm-135m")
    assert engine_max_batch(spec, Request(dtype="q4_0", kv_dtype="q4_0"), "llama.cpp", 1 << 50, 16) == 4096


def test_ladder_nothing_fits(catalog):
    lad = quant_ladder(catalog.resolve("model", "llama-3.1-405b"), Request(), 80 * GiB)
    assert lad.best is None and all(r.max_context_tokens == 0 and r.max_batch == 0 for r in lad.rows)


# ---- which GPUs, how many ----------------------------------------------------------------------
def test_gpus_sorted_by_memory_and_consistent(catalog):
    spec = catalog.resolve("model", "llama-3.1-8b")
    table = which_gpus(spec, Request(context=8192), catalog.gpus())
    assert len(table.rows) == len(catalog.gpus())
    mem = [r.vram_bytes for r in table.rows]
    assert mem == sorted(mem)
    total = estimate(spec, context=8192).total_bytes
    assert table.total_bytes == total
    for row in table.rows:
        assert row.fits == (total <= row.vram_bytes) and row.headroom_bytes == row.vram_bytes - total
        assert row.max_context_tokens == check_fit(spec, Request(context=8192), row.vram_bytes, "t").max_context_tokens
        assert (row.cards_needed == 1) == row.fits


def test_cards_needed_llama_2_70b_on_3090s(catalog):
    # 130.9 GiB in fp16: 64 heads and 8 KV heads; 3, 5, 6 and 7 do not divide them; 4 x 24 GiB is too
    # little ((W + KV) / 4 = 32.4 GiB per card), 8 x 24 GiB holds W / 8 = 16.06 GiB per card.
    spec = catalog.resolve("model", "llama-2-70b")
    gpu = device(catalog.resolve("gpu", "rtx3090"))
    c = cards_needed(spec, Request(), gpu)
    assert c.cards == 8 and c.split is not None and c.split.fits
    assert [s.split(":")[0] for s in c.skipped] == ["3", "5", "6", "7"]
    assert "attention heads (64) not divisible by 3" in c.skipped[0]
    r = resolve(spec, Request())
    assert not tensor_split(r, 4096, 1, 1, [gpu] * 4).fits
    assert which_gpus(spec, Request(), [catalog.resolve("gpu", "rtx3090")]).rows[0].cards_needed == 8


def test_llama_cpp_cards_needed_searched_to_the_card_limit(catalog):
    """llama.cpp's layer split of Llama 3.1 405B q4_k_m needs more than 16 8-GiB cards: the table
    searches up to limits.MAX_CARDS as the transformers one does (it stopped at 16 and printed "more
    than 64"). The answer is the first N whose fullest card fits, checked on the estimates at N - 1, N."""
    from willitrun.engines import LlamaCppOptions, engine_estimate
    from willitrun.limits import MAX_CARDS

    spec, req = catalog.resolve("model", "llama-3.1-405b"), Request(dtype="q4_k_m")
    gpu = catalog.resolve("gpu", "rtx4060")
    n = which_gpus(spec, req, [gpu], engine="llama.cpp").rows[0].cards_needed
    assert 16 < n <= MAX_CARDS

    def fullest(k: int) -> int:
        return engine_estimate(spec, req, "llama.cpp", LlamaCppOptions(gpus=k)).max_device_bytes

    assert fullest(n) <= gpu.capacity_bytes
    assert all(fullest(k) > gpu.capacity_bytes for k in range(1, n))


def test_cards_needed_none(catalog):
    c = cards_needed(catalog.resolve("model", "llama-3.1-405b"), Request(), device(catalog.resolve("gpu", "rtx2060")))
    assert c.cards == 0 and c.split is None


# ---- context sweep -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "image_tokens", "expected"),
    [
        (4096, 0, [512, 1024, 2048, 4096]),
        (131072, 0, [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]),
        (448, 0, [448]),  # Whisper: the window is below 512
        (512, 0, [512]),  # T5
        (4096, 576, [1024, 2048, 4096]),  # LLaVA 1.5: 576 image tokens leave no text at 512
        (6000, 0, [512, 1024, 2048, 4096, 6000]),
    ],
)
def test_sweep_contexts(limit, image_tokens, expected):
    assert sweep_contexts(limit, image_tokens) == expected


@pytest.mark.parametrize(
    "model", ["llama-3.1-8b", "llava-1.5-7b", "whisper-large-v3", "t5-11b", "llama-3.2-11b-vision", "mistral-7b"]
)
def test_sweep_is_monotonic_and_adds_up(catalog, model):
    spec = catalog.resolve("model", model)
    sw = sweep(spec, Request(), 24 * GiB)
    totals = [p.total_bytes for p in sw.points]
    assert totals == sorted(totals)
    for p in sw.points:
        assert (
            p.total_bytes
            == p.weights_bytes + p.kv_self_bytes + p.kv_cross_bytes + p.activations_bytes + p.overhead_bytes
        )
        assert p.total_bytes == estimate(spec, context=p.context_tokens).total_bytes
        assert p.fits == (p.total_bytes <= 24 * GiB)
        # a point fits exactly when it is within the largest context that fits
        assert p.fits == (p.context_tokens <= sw.max_context_tokens)
    assert sw.points[-1].context_tokens == sw.context_limit_tokens


def test_sweep_without_memory(catalog):
    sw = sweep(catalog.resolve("model", "llama-2-7b"), Request())
    assert sw.vram_bytes is None and sw.max_context_tokens is None
    assert all(p.fits is None for p in sw.points)
    assert [p.kv_self_bytes for p in sw.points] == [c * KV_TOKEN for c in (512, 1024, 2048, 4096)]


# ---- the layer view every placement answer uses -------------------------------------------------
@pytest.mark.parametrize(("dtype", "kv"), [(None, None), ("q4_k_m", "q8_0"), ("int4", "q4_0")])
def test_layout_adds_up_for_every_model(catalog, dtype, kv):
    from willitrun.memory import default_context
    from willitrun.speed import cache_read

    for spec in catalog.models():
        r = resolve(spec, Request(dtype=dtype, kv_dtype=kv, batch=2))
        lay = layout(r)
        att = attention(spec)
        assert lay.weights_bytes == sum(c.bytes for c in r.components), spec.id
        assert (lay.self_layers, lay.cross_layers) == (att.self_layers, att.cross_layers), spec.id
        # the model's default context: within a hard limit (Whisper 448, BART 1024), holding the images
        # (a Qwen2-VL image may take up to 16,384 positions)
        e = (
            estimate_resolved(r, default_context(r), 2, 1)
            if spec.architecture != "t5"
            else estimate_resolved(r, 512, 2, 1)
        )
        # per layer from the geometry, the caches add up to the estimate's (KV and recurrent state),
        # and what a decoding step reads to speed.cache_read (sliding layers: their window)
        assert sum(lay.kv_per_layer(e)) == e.kv_bytes + e.state_bytes, spec.id
        assert sum(lay.kv_per_layer(e, read=True)) == cache_read(e), spec.id
