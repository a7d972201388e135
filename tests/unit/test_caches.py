"""Layer caches are kinds, and kinds are data (archs/caches.py, issue 20 section 2).

Every decoder layer of a geometry declares its cache kinds; each kind sizes itself. The sizes are checked
from first principles here (the formulas' sources are in archs/caches.py) and against transformers'
measured caches in tests/reference (test_kv_cache_equals_what_transformers_holds, which the estimate now
computes from the kinds)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from willitrun import archs, estimate, load_catalog
from willitrun.archs.caches import (
    ChunkedAttention,
    CrossAttention,
    FullAttention,
    IndexerKeys,
    MambaState,
    MLALatent,
    ShortConvState,
    SlidingWindow,
    cache_bytes,
)
from willitrun.dtypes import BF16, F16, KV_DTYPES


def _kinds(model_id: str):
    return archs.geometry(load_catalog().resolve("model", model_id)).caches


def test_full_attention_is_two_tensors_per_position():
    # Llama 3 8B (model_specs/llama-3-8b.yaml: 8 KV heads of 128): K and V, 2 x 8 x 128 x 2 bytes per position
    # and layer in fp16, x 32 layers = 131,072 bytes (128 KiB) per token.
    kinds = _kinds("llama-3-8b")
    assert len(kinds) == 32 and all(k == (FullAttention(8, 128, 128),) for k in kinds)
    self_b, cross_b, state_b = cache_bytes(kinds, 1, 0, 1, F16)
    assert (self_b, cross_b, state_b) == (131_072, 0, 0)
    assert cache_bytes(kinds, 1000, 0, 3, F16)[0] == 131_072 * 1000 * 3


def test_sliding_layers_hold_the_prompt_at_the_peak_and_the_window_when_windowed():
    k = SlidingWindow(4, 256, 256, 512)
    assert k.held(4096) == 4096  # transformers right after a prefill (tests/reference sliding_window_4 cases)
    assert k.held(4096, windowed=True) == 512
    assert k.held(100, windowed=True) == 100
    assert k.bytes(4096, 1, BF16, windowed=True) == 2 * 4 * 256 * 512 * 2


def test_gemma3_declares_five_sliding_layers_to_each_full_one():
    kinds = [layer[0] for layer in _kinds("gemma-3-1b")]
    assert [type(k) for k in kinds[:6]] == [SlidingWindow] * 5 + [FullAttention]
    assert {k.window for k in kinds if isinstance(k, SlidingWindow)} == {512}


def test_latent_attention_keeps_the_latent_and_the_rope_key():
    # DeepSeek-V3 (model_specs/deepseek-v3.yaml): kv_lora_rank 512 + qk_rope_head_dim 64 per position and layer
    kinds = _kinds("deepseek-v3")
    assert all(layer == (MLALatent(512, 64),) for layer in kinds)
    assert MLALatent(512, 64).bytes(10, 2, BF16) == (512 + 64) * 10 * 2 * 2


def test_cross_attention_follows_the_source_not_the_context():
    kinds = _kinds("whisper-tiny")
    cross = [k for layer in kinds for k in layer if isinstance(k, CrossAttention)]
    assert len(cross) == len(kinds) == 4
    assert cross[0].bytes(448, 1, F16, source=0) == 0
    assert cross[0].bytes(1, 1, F16, source=1500) == cross[0].bytes(448, 1, F16, source=1500)


def test_state_space_layers_keep_a_constant_state():
    kinds = _kinds("jamba-mini-1.5")
    mamba = [k for layer in kinds for k in layer if isinstance(k, MambaState)]
    attention = [k for layer in kinds for k in layer if isinstance(k, FullAttention)]
    assert mamba and attention and len(mamba) + len(attention) == len(kinds)
    assert all(not k.grows_with_context for k in mamba)
    m = mamba[0]
    assert m.bytes(1, 1, BF16) == m.bytes(100_000, 1, BF16)
    # the SSM part stays float32 under a 16-bit cache (ssm_state_f32: Mamba's scan)
    assert m.ssm_f32 and m.bytes(1, 1, BF16) == 2 * m.conv + 4 * m.ssm


def test_the_kinds_that_no_geometry_uses_yet_size_themselves():
    assert ChunkedAttention(8, 128, 128, 8192).held(20_000, windowed=True) == 8192
    assert IndexerKeys(128).bytes(1000, 2, BF16) == 128 * 1000 * 2 * 2
    conv = ShortConvState(1024 * 3, 0)  # LFM2-style: channels x L_cache, no SSM part
    assert conv.bytes(5, 4, BF16) == conv.bytes(50_000, 4, BF16) == 3072 * 2 * 4


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(
        [
            "llama-3-8b",
            "gemma-3-1b",
            "deepseek-v2-lite",
            "jamba-mini-1.5",
            "mamba-2.8b",
            "whisper-tiny",
            "gpt-oss-20b",
            "llama-4-scout-text",
        ]
    ),
    context=st.integers(1, 200_000),
    more=st.integers(0, 50_000),
    sequences=st.integers(1, 8),
    kv=st.sampled_from(["f16", "bf16", "f32", "q8_0"]),
    windowed=st.booleans(),
)
def test_cache_bytes_never_shrink_as_the_context_grows(model, context, more, sequences, kv, windowed):
    """A longer context never needs a smaller cache, and the recurrent state does not change with it."""
    kinds, storage = _kinds(model), KV_DTYPES[kv]
    short = cache_bytes(kinds, context, 0, sequences, storage, windowed=windowed)
    long = cache_bytes(kinds, context + more, 0, sequences, storage, windowed=windowed)
    assert long[0] >= short[0] and long[2] == short[2]


def test_the_estimate_is_the_sum_of_the_kinds():
    spec = load_catalog().resolve("model", "gemma-3-1b")
    e = estimate(spec, context=3000, batch=2)
    self_b, cross_b, state_b = cache_bytes(archs.geometry(spec).caches, 3000, 0, 2, KV_DTYPES[e.kv_dtype])
    assert (e.kv_self_bytes, e.kv_cross_bytes, e.state_bytes) == (self_b, cross_b, state_b)
