"""LLaVA-OneVision: image tokens per image size (transformers 5.23 processing_llava_onevision.py
`_get_number_of_features` / `_get_unpadded_features`, worked by hand below), the worst case, the image
tokens' share of the self-attention cache, the config.json import and the engines that refuse it."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from willitrun import estimate, load_catalog
from willitrun.archs import llava_onevision
from willitrun.engines import engine_estimate
from willitrun.errors import UsageError
from willitrun.memory import Request, image_tokens_per_image
from willitrun.specs import parse_model_spec

# LLaVA-OneVision 7B: 28 layers x 4 KV heads x head_dim 3584 / 28 = 128 x 2 (K and V) x 2 bytes (fp16)
KV_TOKEN_FP16 = 28 * 4 * 128 * 2 * 2  # 57,344
BASE = 27 * 27  # the base view: (384 // 14)^2 SigLIP features, no class token


SPEC = load_catalog().resolve("model", "llava-onevision-7b")


def spec():
    return SPEC


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        # 384 x 384 picks the [384, 384] pinpoint: a 1 x 1 grid of 27 x 27, nothing to unpad; 27 newlines
        ((384, 384), 27 * 27 + 27 + BASE),
        # 899 x 1024 (the conversion script's test image): [1152, 1152] is the smallest pinpoint holding it whole,
        # 3 x 3 tiles = 81 x 81; wider than square, so rows unpad: int(round(899 x 81 / 1024)) = 71 (81 - 2 x 5)
        ((899, 1024), 71 * 81 + 71 + BASE),
        # 1335 x 1098: [1536, 1152], 108 x 81; rows unpad to 98 (int(98.48) = 98, 108 - 2 x 5); 98 x 81 = 7,938
        # is sqrt(7938 / (9 x 729)) = 1.09995 of the anyres_max_9 budget, under the 1.1 cap: kept whole
        ((1335, 1098), 98 * 81 + 98 + BASE),
        # 2304 x 2304: [2304, 2304], 162 x 162; ratio sqrt(26244 / 6561) = 2.0 > 1.1: resized to 81 x 81, 81 newlines
        ((2304, 2304), 81 * 81 + 81 + BASE),
    ],
)
def test_image_tokens_worked_by_hand(size, tokens):
    assert image_tokens_per_image(spec(), size) == tokens


def test_worst_case_is_just_under_the_cap():
    """No --image-size: the most any image gets, 8,765 (1335 x 1098 above). A sweep of transformers' own
    arithmetic over 200,000 random sizes and a grid up to 2400 px found no larger count (and this one)."""
    s = spec()
    assert image_tokens_per_image(s) == 98 * 81 + 98 + BASE == 8765
    rng = random.Random(0)
    assert all(image_tokens_per_image(s, (rng.randint(1, 6000), rng.randint(1, 6000))) <= 8765 for _ in range(2000))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 16384), st.integers(1, 16384))
def test_no_image_exceeds_the_worst_case(h, w):
    assert image_tokens_per_image(spec(), (h, w)) <= image_tokens_per_image(spec())


def test_counts_equal_transformers_processor():
    """willitrun's count against LlavaOnevisionProcessor._get_number_of_features itself, on random sizes."""
    pytest.importorskip("transformers")
    from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

    s = spec()
    processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)

    class ImageProcessor:
        image_grid_pinpoints = [list(p) for p in s.config.image_grid_pinpoints]

    processor.image_processor = ImageProcessor()
    processor.num_image_tokens, processor.vision_aspect_ratio = BASE, "anyres_max_9"
    rng = random.Random(1)
    for _ in range(3000):
        h, w = rng.randint(1, 5000), rng.randint(1, 5000)
        assert image_tokens_per_image(s, (h, w)) == processor._get_number_of_features(h, w, 384, 384), (h, w)


def test_a_smaller_cap_downsamples_sooner():
    data = spec().model_dump(exclude_none=True)
    data["config"]["vision_aspect_ratio"] = "anyres_max_4"
    small = parse_model_spec(data)
    # 899 x 1024 unpads to 71 x 81 = 5,751: sqrt(5751 / (4 x 729)) = 1.404 > 1.1, floor(71 / 1.404) = 50,
    # floor(81 / 1.404) = 57
    ratio = math.sqrt(71 * 81 / (4 * BASE))
    assert (int(71 // ratio), int(81 // ratio)) == (50, 57)
    assert image_tokens_per_image(small, (899, 1024)) == 50 * 57 + 50 + BASE


def test_image_kv_share_and_components():
    e = estimate(spec(), images=2, image_size=(899, 1024), context=16384)
    assert e.image_tokens == 2 * 6551
    assert e.image_kv_bytes == 2 * 6551 * KV_TOKEN_FP16
    assert e.kv_self_bytes == 16384 * KV_TOKEN_FP16
    assert {"vision_tower", "projector"} <= {c.name for c in e.components}
    assert e.kv_cross_bytes == 0


def test_the_tower_runs_every_crop():
    assert llava_onevision.crops(spec(), (384, 384)) == 2  # base view + 1 tile
    assert llava_onevision.crops(spec(), (2304, 2304)) == 37  # base view + 6 x 6 tiles
    tower = llava_onevision.stages(spec(), 8192, 0, 2, image_size=(2304, 2304))[1]
    assert (tower.tokens, tower.kv_tokens, tower.hidden) == (2 * 37 * BASE, BASE, 1152)


@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
def test_gguf_engines_refuse_by_name(engine):
    with pytest.raises(UsageError, match="LLaVA-OneVision"):
        engine_estimate(spec(), Request(), engine)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vision_feature_select_strategy", "default"),
        ("vision_aspect_ratio", "anyres_9"),
        ("image_grid_pinpoints", [[384, 500]]),
    ],
)
def test_invalid_configs_are_refused(field, value):
    data = spec().model_dump(exclude_none=True)
    data["config"][field] = value
    with pytest.raises(ValidationError, match=field):
        parse_model_spec(data)


def test_config_json_import_equals_transformers():
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers import spec_from_config

    cfg = {
        "model_type": "llava_onevision",
        "torch_dtype": "float16",
        "image_token_index": 250,
        "video_token_index": 251,
        "text_config": {
            "model_type": "qwen2",
            "vocab_size": 256,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 384,
            "patch_size": 14,
            "vision_use_head": False,
        },
    }
    s = spec_from_config(cfg, "x/config.json")
    with torch.device("meta"):
        model = tf.LlavaOnevisionForConditionalGeneration(
            tf.LlavaOnevisionConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "torch_dtype")})
        )
    assert estimate(s).parameters == sum(p.numel() for p in model.parameters())
    # transformers' Qwen2Config default, cited
    assert s.config.text_config.max_position_embeddings == 32768
    assert "config.text_config.max_position_embeddings" in s.sources
    assert len(s.config.image_grid_pinpoints) == 36  # LlavaOnevisionConfig's default grid


def exhaustive_largest(s) -> int:
    """The search _largest replaced (commit e9915cd): every (pinpoint, rows) and (pinpoint, columns) size,
    each through onevision_image_tokens (select_best_resolution over every pinpoint)."""
    c, v = s.config, s.config.vision_config
    side = v.image_size // v.patch_size
    best = 0
    for h, w in c.image_grid_pinpoints:
        gh, gw = side * (h // v.image_size), side * (w // v.image_size)
        sizes = [(h, w)] + [(r * h // gh, w) for r in range(1, gh)] + [(h, k * w // gw) for k in range(1, gw)]
        best = max([best] + [llava_onevision.onevision_image_tokens(s, x) for x in sizes if min(x) > 0])
    return best


def variant(pinpoints, max_tiles, image_size=384, patch_size=14):
    """The catalog spec with other pinpoints, cap and tower geometry (not validated: the validator's
    rules hold by construction, pinpoints are multiples of image_size)."""
    c = SPEC.config
    vision = c.vision_config.model_copy(update={"image_size": image_size, "patch_size": patch_size})
    config = c.model_copy(
        update={
            "image_grid_pinpoints": [(image_size * i, image_size * j) for i, j in pinpoints],
            "vision_aspect_ratio": f"anyres_max_{max_tiles}",
            "vision_config": vision,
        }
    )
    return SPEC.model_copy(update={"config": config})


def test_largest_equals_the_exhaustive_search_for_every_catalog_config():
    specs = [s for s in load_catalog().models() if s.architecture == "llava_onevision"]
    assert specs
    for s in specs:
        assert llava_onevision._largest(s) == exhaustive_largest(s) == image_tokens_per_image(s)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=12),
    st.integers(1, 40),
    st.sampled_from([(384, 14), (336, 14), (224, 16), (448, 14), (378, 14)]),
)
def test_largest_equals_the_exhaustive_search(pinpoints, max_tiles, geometry):
    s = variant(pinpoints, max_tiles, *geometry)
    assert llava_onevision._largest(s) == exhaustive_largest(s)
