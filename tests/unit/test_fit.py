"""Verdict, headroom and the largest context that fits."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import llama
from willitrun import Request, check_fit, estimate
from willitrun.memory import estimate_resolved, resolve

GiB = 1 << 30


def test_total_is_the_sum_of_parts(catalog):
    for spec in catalog.models():
        e = estimate(spec)
        assert (
            e.total_bytes
            == sum(c.bytes for c in e.components)
            + e.kv_self_bytes
            + e.kv_cross_bytes
            + e.state_bytes
            + e.activations_bytes
            + e.overhead_bytes
        )


def test_max_context_fits_and_one_more_does_not(catalog):
    spec = catalog.resolve("model", "llama-3.1-8b")
    f = check_fit(spec, Request(), 24 * GiB, "test")
    n = f.max_context_tokens
    assert 0 < n < f.context_limit
    r = resolve(spec, Request())
    assert estimate_resolved(r, n, 1, 1).total_bytes <= 24 * GiB < estimate_resolved(r, n + 1, 1, 1).total_bytes


def test_max_context_with_images_and_beams(catalog):
    spec = catalog.resolve("model", "llava-1.5-7b")
    req = Request(images=3, beams=2)
    vram = 16 * GiB
    f = check_fit(spec, req, vram, "test")
    r = resolve(spec, req)
    n = f.max_context_tokens
    assert n > 3 * 576
    assert estimate_resolved(r, n, 1, 2).total_bytes <= vram
    assert n == f.context_limit or estimate_resolved(r, n + 1, 1, 2).total_bytes > vram


def test_max_context_capped_by_window(catalog):
    f = check_fit(catalog.resolve("model", "whisper-tiny"), Request(), 80 * GiB, "test")
    assert f.max_context_tokens == f.context_limit == 448


def test_nothing_fits_gives_zero_and_suggestions(catalog):
    f = check_fit(catalog.resolve("model", "llama-2-13b"), Request(), 16 * GiB, "test")
    assert not f.fits and f.max_context_tokens == 0
    assert any(s.startswith("--dtype") for s in f.suggestions)
    assert f.headroom_bytes < 0


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(1, 20000),
    b=st.integers(1, 20000),
    batch=st.integers(1, 4),
    kv=st.sampled_from(["f16", "q8_0", "q4_0"]),
)
def test_more_context_never_needs_less(a, b, batch, kv):
    spec = llama(num_key_value_heads=8, max_position_embeddings=32768)
    lo, hi = sorted((a, b))
    assert (
        estimate(spec, context=lo, batch=batch, kv_dtype=kv).total_bytes
        <= estimate(spec, context=hi, batch=batch, kv_dtype=kv).total_bytes
    )


@settings(max_examples=30, deadline=None)
@given(context=st.integers(1, 8000))
def test_smaller_dtype_never_needs_more(context):
    spec = llama()
    order = ["fp32", "fp16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k"]
    totals = [estimate(spec, context=context, dtype=d, kv_dtype="f16").total_bytes for d in order]
    assert totals == sorted(totals, reverse=True)


# ---- the one search (fit.largest) behind every "largest" answer ----------------------------------
@settings(max_examples=400, deadline=None)
@given(
    lo=st.integers(0, 1 << 30), span=st.integers(0, 1 << 30), offset=st.integers(-5, (1 << 30) + 5), grow=st.booleans()
)
def test_largest_finds_the_threshold_of_a_monotone_predicate(lo, span, offset, grow):
    """For fits(n) = n <= t, largest returns min(t, hi) when t >= lo, else 0, probes only [lo, hi]
    and at most 2 x bit_length(hi - lo + 1) + 2 times (doubling, then bisection; plain bisection)."""
    from willitrun.fit import largest

    hi, t = lo + span, lo + offset
    probes: list[int] = []

    def fits(n: int) -> bool:
        probes.append(n)
        return n <= t

    expected = min(t, hi) if t >= lo else 0
    assert largest(fits, lo, hi, grow=grow) == expected
    assert all(lo <= n <= hi for n in probes)
    assert len(probes) <= 2 * (hi - lo + 1).bit_length() + 2


def test_largest_of_an_empty_range_probes_nothing():
    from willitrun.fit import largest

    assert largest(lambda n: (_ for _ in ()).throw(AssertionError(n)), 5, 4) == 0
