"""Vision-language models whose image tokens sit in the self-attention context: hand-computed numbers."""

from __future__ import annotations

import pytest

from willitrun import estimate, load_catalog
from willitrun.archs import qwen2_vl
from willitrun.errors import UsageError
from willitrun.memory import image_tokens_per_image

MIB = 1 << 20
# Qwen2.5-VL-7B: 28 layers x 4 KV heads x 128 x 2 (K and V) x 2 bytes (bf16)
QWEN25_VL_7B_KV_TOKEN = 28 * 4 * 128 * 2 * 2  # 57,344


def spec(model_id: str):
    return load_catalog().resolve("model", model_id)


@pytest.mark.parametrize(
    ("size", "resized", "tokens"),
    [
        ((1024, 768), (1036, 756), 37 * 27),  # round(1024/28) = 37, round(768/28) = 27: 999
        ((224, 336), (224, 336), 8 * 12),  # already multiples of 28: 96
        ((10, 10), (56, 56), 4),  # below min_pixels 3136: scaled up to 56 x 56
        ((8192, 8192), (3584, 3584), 128 * 128),  # above max_pixels 12845056: floor(8192 / sqrt(...) / 28) x 28
    ],
)
def test_qwen_vl_image_tokens(size, resized, tokens):
    s = spec("qwen2.5-vl-7b")
    assert qwen2_vl.smart_resize(s, *size) == resized
    assert image_tokens_per_image(s, size) == tokens


def test_qwen_vl_worst_case_is_max_pixels():
    # the spec's preprocessor max_pixels 12,845,056 (preprocessor_config.json) / (28 x 28) pixels per token
    assert image_tokens_per_image(spec("qwen2.5-vl-7b")) == 16384


def test_qwen_vl_video_merges_two_frames():
    s = spec("qwen2.5-vl-7b")
    # 224 x 336 = 75,264 px is below the video minimum 128 x 28 x 28 = 100,352: scaled by sqrt(100352 / 75264)
    # and rounded up to 28s, 280 x 392 -> 10 x 14 = 140 tokens per group of 2 frames
    assert qwen2_vl.smart_resize(s, 224, 336, video=True) == (280, 392)
    assert qwen2_vl.video_tokens(s, 16, (224, 336)) == 8 * 140
    assert qwen2_vl.video_tokens(s, 15, (224, 336)) == 8 * 140  # padded to a multiple of 2


def test_acceptance_two_images_in_the_context():
    e = estimate(spec("qwen2.5-vl-7b"), images=2, image_size=(1024, 768))
    assert e.image_tokens == 2 * 999
    assert e.image_kv_bytes == 1998 * QWEN25_VL_7B_KV_TOKEN
    assert e.kv_self_bytes == e.context_tokens * QWEN25_VL_7B_KV_TOKEN
    assert {"vision_tower", "projector"} <= {c.name for c in e.components}
    assert e.kv_cross_bytes == 0


def test_image_size_changes_the_vision_activations():
    small = estimate(spec("qwen2.5-vl-7b"), images=8, image_size=(224, 336), context=8192)
    large = estimate(spec("qwen2.5-vl-7b"), images=8, image_size=(2048, 2048), context=65536)
    assert large.activations_bytes > small.activations_bytes


def test_llava_image_kv_share():
    """DOMAIN.md: 576 LLaVA-1.5 image tokens cost 576 x 0.5 MiB = 288 MiB of a 7B model's cache at fp16."""
    e = estimate(spec("llava-1.5-7b"), images=1, dtype="fp16")
    assert e.image_kv_bytes == 288 * MIB


def test_image_size_refused_for_fixed_size_towers():
    with pytest.raises(UsageError, match="LLaVA-NeXT, Qwen2-VL"):
        estimate(spec("llava-1.5-7b"), images=1, image_size=(336, 336))


# ---- config.json import ---------------------------------------------------------------------------
SMALL_QWEN_TEXT = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}
SMALL_QWEN_VISION = {
    "qwen2_vl": {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2},
    "qwen2_5_vl": {
        "depth": 2,
        "hidden_size": 32,
        "out_hidden_size": 64,
        "intermediate_size": 48,
        "num_heads": 2,
        "fullatt_block_indexes": [1],
    },
}


@pytest.mark.parametrize("nested", [False, True], ids=["flat-hub-file", "nested"])
@pytest.mark.parametrize("model_type", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_import_equals_transformers(model_type, nested):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers import spec_from_config

    text = {**SMALL_QWEN_TEXT, "tie_word_embeddings": True} if nested else SMALL_QWEN_TEXT
    cfg = {
        "model_type": model_type,
        "vision_config": SMALL_QWEN_VISION[model_type],
        "torch_dtype": "bfloat16",
        "image_token_id": 250,
        "video_token_id": 251,
        "vision_start_token_id": 252,
        "vision_end_token_id": 253,
        **({"text_config": text} if nested else text),
    }
    spec = spec_from_config(cfg, "x/config.json")
    cls = {
        "qwen2_vl": (tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration),
        "qwen2_5_vl": (tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration),
    }[model_type]
    with torch.device("meta"):
        model = cls[1](cls[0](**{k: v for k, v in cfg.items() if k not in ("model_type", "torch_dtype")}))
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    assert "preprocessor" in spec.notes


@pytest.mark.parametrize("name", ["QWEN2_VL_TEXT", "QWEN2_5_VL_TEXT", "QWEN2_VL_VISION", "QWEN2_5_VL_VISION"])
def test_qwen_vl_default_tables_equal_transformers(name):
    tf = pytest.importorskip("transformers")
    from willitrun.archs import qwen2_vl

    table = getattr(qwen2_vl, name)
    config = getattr(tf, table.name)(**({"use_sliding_window": True} if "TEXT" in name else {}))
    for field, default in table.defaults.items():
        if field == "use_sliding_window":
            assert getattr(tf, table.name)().use_sliding_window is default
            continue
        got = getattr(config, field)
        assert (list(got) if isinstance(got, tuple) else got) == default, f"{table.name}.{field}"


# ---- Mistral 3 / Pixtral --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "resized", "tokens"),
    [
        ((1024, 768), (1036, 784), 37 * (28 + 1)),  # sides rounded up to 28: 37 rows of 28 [IMG] + a break
        ((3080, 1540), (1540, 784), 55 * (28 + 1)),  # shrunk (floor) to the 1540 longest edge first
    ],
)
def test_pixtral_image_tokens(size, resized, tokens):
    from willitrun.archs import mistral3

    s = spec("mistral-small-3.1-24b")
    assert mistral3.resized(s, *size) == resized
    assert image_tokens_per_image(s, size) == tokens


def test_mistral_small_parameters_equal_the_declared_count():
    e = estimate(spec("mistral-small-3.1-24b"))
    assert e.parameters == 24_011_361_280
    assert image_tokens_per_image(spec("mistral-small-3.1-24b")) == 55 * 56  # a 1540 px square


# ---- video (Qwen2-VL) -----------------------------------------------------------------------------
def test_video_frames_in_the_context():
    s = spec("qwen2.5-vl-7b")
    # 16 frames of 448 x 448 (within the per-frame bounds 100,352..602,112 px): 8 groups x 16 x 16 tokens
    e = estimate(s, video_frames=16, image_size=(448, 448))
    assert e.images == 0 and e.video_tokens == e.image_tokens == 8 * 256
    assert e.image_kv_bytes == 8 * 256 * QWEN25_VL_7B_KV_TOKEN
    # no frame size: the largest frame the video processor keeps (28 x 28 x 768 px: 768 tokens per group)
    assert estimate(s, video_frames=4).video_tokens == 2 * 768
    both = estimate(s, images=1, video_frames=4, image_size=(448, 448))
    assert both.image_tokens == 256 + 2 * 256


def test_video_refused_where_unsupported():
    with pytest.raises(UsageError, match="takes no video"):
        estimate(spec("gemma-3-4b"), video_frames=8)
