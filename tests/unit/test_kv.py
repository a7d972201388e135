"""KV-cache arithmetic against numbers anyone can check by hand."""

import pytest

from tests.conftest import llama
from willitrun import Request, estimate
from willitrun.memory import image_tokens_per_image

MiB, GiB = 1 << 20, 1 << 30


def test_llama2_7b_anchor():
    # 32 layers x 32 KV heads x head_dim 128 x 2 (K and V) x 2 bytes = 524,288 bytes per token
    assert estimate(llama(), context=1, kv_dtype="f16").kv_self_bytes == 32 * 32 * 128 * 2 * 2 == 524_288
    # ... exactly 2 GiB at 4,096 tokens
    assert estimate(llama(), context=4096, kv_dtype="f16").kv_self_bytes == 2 * GiB


def test_gqa_divides_by_the_group():
    # Llama 3 8B: 8 KV heads of 32: a quarter of the MHA cache
    full = estimate(llama(), context=4096, kv_dtype="f16").kv_self_bytes
    gqa = estimate(llama(num_key_value_heads=8), context=4096, kv_dtype="f16").kv_self_bytes
    assert gqa * 4 == full


def test_explicit_head_dim_wins():
    # head_dim 64 with 32 heads (Llama 3.2 1B style): width 8 x 64, not hidden/heads
    spec = llama(num_key_value_heads=8, head_dim=64)
    assert estimate(spec, context=10, kv_dtype="f16").kv_self_bytes == 2 * 32 * 8 * 64 * 10 * 2


@pytest.mark.parametrize(
    ("kv", "per_32_elements"), [("f32", 128), ("f16", 64), ("fp8", 32), ("q8_0", 34), ("q4_0", 18)]
)
def test_kv_dtypes(kv, per_32_elements):
    # One token: 32 layers x 2 x 4096 elements = 8192 blocks of 32 elements
    assert estimate(llama(), context=1, kv_dtype=kv).kv_self_bytes == 32 * 2 * (4096 // 32) * per_32_elements


def test_batch_and_beams_multiply_kv():
    one = estimate(llama(), context=100)
    assert estimate(llama(), context=100, batch=3).kv_self_bytes == 3 * one.kv_self_bytes
    assert estimate(llama(), context=100, batch=3, beams=2).kv_self_bytes == 6 * one.kv_self_bytes


def test_sliding_window_does_not_lower_the_prefill_peak():
    # transformers' sliding-window cache is a view that keeps the whole prompt's storage alive after
    # prefill (tests/reference: kv_self_storage_elements), so the peak is every position
    spec = llama(num_key_value_heads=8, sliding_window=4096, max_position_embeddings=32768)
    assert estimate(spec, context=16384).kv_self_bytes == 4 * estimate(spec, context=4096).kv_self_bytes
    assert any("sliding window 4096" in n for n in estimate(spec, context=16384).notes)


def test_llava_image_tokens_in_self_cache(catalog):
    spec = catalog.resolve("model", "llava-7b")
    assert spec.id == "llava-1.5-7b"
    # CLIP ViT-L/14 at 336 px: (336/14)^2 = 576 patches; the "default" strategy drops CLS
    assert image_tokens_per_image(spec) == 576
    with_image = estimate(spec, context=1000, images=1)
    assert with_image.image_tokens == 576 and with_image.text_tokens == 424
    assert with_image.kv_cross_bytes == 0
    # 576 tokens x 0.5 MiB per token (the Llama-2-7B anchor) = 288 MiB, not "~2 GB"
    no_image = estimate(spec, context=1000 - 576, images=0)
    assert with_image.kv_self_bytes - no_image.kv_self_bytes == 288 * MiB


def test_llava_next_anyres_tokens(catalog):
    spec = catalog.resolve("model", "llava-1.6-mistral-7b")
    # 672x672 -> 2x2 grid of 24x24 patches = 48x48 features, + 48 newline tokens, + 576 base view
    assert image_tokens_per_image(spec, (672, 672)) == 48 * 48 + 48 + 576
    # 336x1008 (h x w) -> 1x3 grid = 24 rows x 72 columns, + 24 newlines, + 576
    assert image_tokens_per_image(spec, (336, 1008)) == 24 * 72 + 24 + 576
    # Worst case over the pinpoints is the 2x2 grid
    assert image_tokens_per_image(spec) == 2928


def test_whisper_cross_kv(catalog):
    spec = catalog.resolve("model", "whisper-large-v3")
    e = estimate(spec, context=448, kv_dtype="f16")
    # 32 decoder layers x 2 x 1500 frames x d_model 1280 x 2 bytes
    assert e.kv_cross_bytes == 32 * 2 * 1500 * 1280 * 2
    assert e.kv_self_bytes == 32 * 2 * 448 * 1280 * 2
    # cross KV does not grow with the number of decoded tokens
    assert estimate(spec, context=10, kv_dtype="f16").kv_cross_bytes == e.kv_cross_bytes


def test_t5_attention_width_is_heads_times_d_kv(catalog):
    spec = catalog.resolve("model", "t5-3b")
    e = estimate(spec, context=100, encoder_tokens=300, kv_dtype="f16")
    # t5-3b: 24 decoder layers, 32 heads x d_kv 128 = 4096 wide (d_model is 1024)
    assert e.kv_self_bytes == 24 * 2 * 4096 * 100 * 2
    assert e.kv_cross_bytes == 24 * 2 * 4096 * 300 * 2


def test_mllama_cross_layers_only(catalog):
    spec = catalog.resolve("model", "llama-3.2-11b-vision")
    e = estimate(spec, context=1000, images=2, kv_dtype="bf16")
    # 40 layers, 8 of them cross-attention: 32 self layers x 8 KV heads x 128 x 2 x 2 bytes per token
    assert e.kv_self_bytes == 32 * 2 * 8 * 128 * 1000 * 2
    # 8 cross layers x 2 images x 4 tiles x 1601 positions (40x40 patches + CLS) x 8 x 128 x 2 x 2 bytes
    assert e.kv_cross_bytes == 8 * 2 * (2 * 4 * 1601) * 8 * 128 * 2
    assert e.image_tokens == 0  # images are not in the self-attention context


def test_decoder_only_has_no_cross(catalog):
    e = estimate(catalog.resolve("model", "llama-3-8b"), context=100)
    assert e.kv_cross_bytes == 0 and e.attention.cross_layers == 0


def test_request_validation():
    from willitrun import UsageError

    for bad in ({"context": -1}, {"context": 0}, {"batch": 0}, {"beams": 0}, {"images": -1}):
        with pytest.raises(UsageError):
            Request(**bad)
