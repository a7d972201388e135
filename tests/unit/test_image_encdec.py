"""Image encoder-decoders: Pix2Struct, Florence-2 and Donut-style vision encoder-decoders. The cross
cache covers the encoder's positions, computed here by hand from the configs (the small copies'
measured caches are in tests/reference)."""

from __future__ import annotations

import pytest

from willitrun import estimate, load_catalog
from willitrun.errors import UsageError
from willitrun.specs import parse_model_spec

F16 = 2


def spec(model_id: str):
    return load_catalog().resolve("model", model_id)


def cross(layers: int, width: int, positions: int, sequences: int = 1, nbytes: int = F16) -> int:
    """2 (K, V) x layers x width x source positions x sequences x bytes."""
    return 2 * layers * width * positions * sequences * nbytes


# ---- Pix2Struct ------------------------------------------------------------------------------------
def test_pix2struct_cross_cache_is_max_patches():
    # pix2struct-base: 12 decoder layers x 12 heads x d_kv 64 = 768 wide; Pix2StructImageProcessor's
    # default max_patches 2048, all of them kept (padding is masked, not dropped)
    s = spec("pix2struct-base")
    e = estimate(s, kv_dtype="f16", context=100)
    assert e.cross_source_tokens == 2048
    assert e.kv_cross_bytes == cross(12, 768, 2048) == 72 << 20
    assert e.kv_self_bytes == cross(12, 768, 100)
    doc = estimate(s, kv_dtype="f16", context=100, encoder_tokens=4096)  # docvqa-style max_patches
    assert doc.kv_cross_bytes == 2 * e.kv_cross_bytes


def test_pix2struct_batch_and_beams_multiply_the_cross_cache():
    s = spec("pix2struct-base")
    one = estimate(s, kv_dtype="f16", context=64)
    assert estimate(s, kv_dtype="f16", context=64, batch=3, beams=2).kv_cross_bytes == 6 * one.kv_cross_bytes


# ---- Florence-2 ------------------------------------------------------------------------------------
def test_florence2_image_and_prompt_share_the_encoder():
    # florence-2-base: 6 decoder layers x d_model 768; one 768 px image is 1 + 24 x 24 = 577 tokens
    s = spec("florence-2-base")
    e = estimate(s, kv_dtype="f16", context=64, encoder_tokens=20)
    assert e.cross_source_tokens == 577 + 20
    assert e.kv_cross_bytes == cross(6, 768, 597)
    assert e.image_tokens == 0  # nothing of the image sits in the decoder's own context
    # without --encoder-tokens: the longest prompt that fits beside the image, 1024 - 577
    assert estimate(s, kv_dtype="f16", context=64).cross_source_tokens == 1024
    assert estimate(s, kv_dtype="f16", context=64, images=0, encoder_tokens=20).cross_source_tokens == 20
    # without the image the prompt may fill all 1024 positions
    assert estimate(s, kv_dtype="f16", context=64, images=0, encoder_tokens=1024).cross_source_tokens == 1024


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder_tokens": 448}, "learned positions for 1024 tokens: 577 image tokens \\+ --encoder-tokens 448"),
        ({"encoder_tokens": 1025, "images": 0}, "learned positions for 1024 tokens: --encoder-tokens 1025"),
        ({"images": 2}, "one image per prompt"),
        ({"context": 1025}, "learned positions for 1024"),
    ],
)
def test_florence2_limits(kwargs, message):
    with pytest.raises(UsageError, match=message):
        estimate(spec("florence-2-base"), **kwargs)


def test_florence2_image_size_sets_the_tokens():
    base = spec("florence-2-base").model_dump()
    base.update(id="florence-small-image", preprocessor={"image_size": 384})
    s = parse_model_spec(base)
    # 384 px: 96 -> 48 -> 24 -> 12 after the four patch convolutions: 1 + 12 x 12
    assert estimate(s, encoder_tokens=10).cross_source_tokens == 1 + 144 + 10


# ---- Donut (vision-encoder-decoder) ------------------------------------------------------------------
DONUT_SHAPE = {
    "encoder": {
        "model_type": "donut-swin",
        "image_size": [2560, 1920],
        "patch_size": 4,
        "embed_dim": 128,
        "depths": [2, 2, 14, 2],
        "num_heads": [4, 8, 16, 32],
        "window_size": 10,
    },
    "decoder": {
        "model_type": "mbart",
        "vocab_size": 57525,
        "d_model": 1024,
        "decoder_layers": 4,
        "decoder_attention_heads": 16,
        "decoder_ffn_dim": 4096,
        "max_position_embeddings": 1536,
        "scale_embedding": True,
    },
}


def donut():
    # the shape the Donut paper and the donut-base fine-tunes' config.json describe; a test input, not a
    # catalog model (see docs/research/issue11 for why there is none)
    return parse_model_spec(
        {
            "id": "donut-shape",
            "name": "Donut-shaped",
            "architecture": "vision-encoder-decoder",
            "dtype": "float32",
            "sources": {"config": "this test"},
            "config": DONUT_SHAPE,
        }
    )


def test_donut_cross_cache_is_the_last_swin_grid():
    # 2560 x 1920 / patch 4 = 640 x 480, halved by three merges: 80 x 60 = 4,800 positions
    e = estimate(donut(), kv_dtype="f16", context=512)
    assert e.cross_source_tokens == 80 * 60
    assert e.kv_cross_bytes == cross(4, 1024, 4800) == 75 << 20
    assert e.kv_self_bytes == cross(4, 1024, 512)


def test_donut_refuses_encoder_tokens_and_long_outputs():
    with pytest.raises(UsageError, match="--encoder-tokens"):
        estimate(donut(), encoder_tokens=100)
    with pytest.raises(UsageError, match="learned positions for 1536"):
        estimate(donut(), context=1537)


def test_donut_encoder_width_must_meet_the_decoder():
    bad = {**DONUT_SHAPE, "encoder": {**DONUT_SHAPE["encoder"], "embed_dim": 64}}
    with pytest.raises(ValueError, match="enc_to_dec_proj"):
        parse_model_spec(
            {
                "id": "x",
                "name": "x",
                "architecture": "vision-encoder-decoder",
                "dtype": "float32",
                "sources": {"config": "t"},
                "config": bad,
            }
        )
