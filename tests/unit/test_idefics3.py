"""Idefics3 and SmolVLM: crops and image tokens per image size (transformers 5.23
image_processing_idefics3.py resize / resize_for_vision_encoder / split_images and processing_idefics3.py's
prompt, worked by hand below), tokens per crop from the pixel shuffle, the KV share, the config.json
import and the engines that refuse them. No catalog model: the specs here are test geometries (an
Idefics3-8B-shaped tower, 364 px / patch 14 / scale_factor 2; a SmolVLM2-shaped one, 512 / 16 / 4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from willitrun import estimate
from willitrun.archs import idefics3
from willitrun.engines import engine_estimate
from willitrun.errors import UsageError
from willitrun.memory import Request, image_tokens_per_image
from willitrun.specs import parse_model_spec

TEXT = {
    "model_type": "llama",
    "vocab_size": 1024,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
}
# per token: 4 layers x 2 KV heads x head_dim 256 / 8 = 32 x 2 (K and V) x 2 bytes (bf16)
KV_TOKEN = 4 * 2 * 32 * 2 * 2


def make(arch: str, vision: dict, scale: int, preprocessor: dict | None = None, **top):
    return parse_model_spec(
        {
            "id": f"{arch}-test",
            "name": "test",
            "architecture": arch,
            "dtype": "bfloat16",
            "sources": {"config": "test"},
            "config": {"text_config": TEXT, "vision_config": vision, "scale_factor": scale, **top},
            **({"preprocessor": preprocessor} if preprocessor is not None else {}),
        }
    )


IDEFICS3 = make("idefics3", {"image_size": 364, "patch_size": 14}, 2)  # processor defaults: 4 x 364, 364
SMOLVLM = make(
    "smolvlm",
    {"hidden_size": 768, "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
    4,
    {"longest_edge": 2048, "max_image_size": 512},
)


def prompt_tokens(seq: int, rows: int, cols: int) -> int:
    """processing_idefics3.py `_get_num_multimodal_tokens` with "\\n\\n" one token: seq + 3 for the global
    view (<fake> <global-img> ... <fake>), (seq + 2) per crop (<fake> <row_r_col_c> ...), 1 newline per row."""
    return seq + 3 + rows * (cols * (seq + 2) + 1)


def test_tokens_per_crop_follow_the_pixel_shuffle():
    # Idefics3Model.image_seq_len = (image_size // patch_size)^2 / scale_factor^2
    assert IDEFICS3.config.image_seq_len == (364 // 14) ** 2 // 4 == 169
    assert SMOLVLM.config.image_seq_len == (512 // 16) ** 2 // 16 == 64


@pytest.mark.parametrize(
    ("model", "size", "resized", "grid"),
    [
        # 1024 x 768: taller, height to 1456, width int(1456 x 0.75) = 1092; 1092 = 3 x 364: 4 rows, 3 cols
        ("idefics3", (1024, 768), (1456, 1092), (4, 3)),
        # 200 x 700: wider, width 1456, height int(1456 / 3.5) = 416 (even); 416 -> 728: 2 rows, 4 cols
        ("idefics3", (200, 700), (416, 1456), (2, 4)),
        # 300 x 300 is upscaled too: the longest edge always goes to size.longest_edge
        ("idefics3", (300, 300), (1456, 1456), (4, 4)),
        ("smolvlm", (1024, 768), (2048, 1536), (4, 3)),
        ("smolvlm", (100, 2000), (102, 2048), (1, 4)),  # int(2048 / 20) = 102 (even): one row of 4
    ],
)
def test_crops_worked_by_hand(model, size, resized, grid):
    s = IDEFICS3 if model == "idefics3" else SMOLVLM
    assert idefics3.resized(s, *size) == resized
    assert idefics3.grid(s, size) == grid
    assert idefics3.crops(s, size) == grid[0] * grid[1] + 1
    assert image_tokens_per_image(s, size) == prompt_tokens(s.config.image_seq_len, *grid)


def test_reference_counts():
    # tests/reference/families.json (transformers' image processor and prompt): 2228 and 863 for 1024 x 768
    assert image_tokens_per_image(IDEFICS3, (1024, 768)) == 4 * (3 * 171 + 1) + 172 == 2228
    assert image_tokens_per_image(SMOLVLM, (1024, 768)) == 4 * (3 * 66 + 1) + 67 == 863


def test_worst_case_is_a_square_image():
    # 4 x 4 crops + the global view: Idefics3 17 x 169 features, SmolVLM2 17 x 64 = 1088, plus the markers
    assert image_tokens_per_image(IDEFICS3) == prompt_tokens(169, 4, 4) == 2912
    assert image_tokens_per_image(SMOLVLM) == prompt_tokens(64, 4, 4) == 1127
    rng = random.Random(0)
    for s in (IDEFICS3, SMOLVLM):
        worst = image_tokens_per_image(s)
        assert all(
            image_tokens_per_image(s, (rng.randint(1, 9000), rng.randint(1, 9000))) <= worst for _ in range(2000)
        )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 16384), st.integers(1, 16384))
def test_no_image_exceeds_the_worst_case(h, w):
    for s in (IDEFICS3, SMOLVLM):
        assert image_tokens_per_image(s, (h, w)) <= image_tokens_per_image(s)


def test_the_4k_cap_and_no_splitting():
    # a longest_edge above MAX_IMAGE_SIZE (4096) is capped: ceil(4096 / 512) = 8 crops a side
    big = make(
        "smolvlm",
        {"image_size": 512, "patch_size": 16, "hidden_size": 768, "num_attention_heads": 12},
        4,
        {"longest_edge": 6000, "max_image_size": 512},
    )
    assert idefics3.grid(big, (5000, 5000)) == (8, 8)
    assert idefics3.grid(big, None) == (8, 8)
    whole = make("idefics3", {"image_size": 364, "patch_size": 14}, 2, {"do_image_splitting": False})
    assert image_tokens_per_image(whole, (1024, 768)) == 169 + 3  # one view, squared to 364
    assert idefics3.crops(whole, (1024, 768)) == 1


def test_counts_equal_transformers_image_processor():
    pytest.importorskip("transformers")
    np = pytest.importorskip("numpy")
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    processors = [
        (IDEFICS3, Idefics3ImageProcessorPil()),
        (SMOLVLM, SmolVLMImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512})),
    ]
    for s, processor in processors:
        for h, w in [(1024, 768), (200, 700), (37, 1900), (1456, 729), (729, 1456), (3000, 3000)]:
            out = processor(images=[[np.zeros((h, w, 3), dtype=np.uint8)]], return_row_col_info=True)
            assert idefics3.grid(s, (h, w)) == (out["rows"][0][0], out["cols"][0][0]), (s.architecture, h, w)
            assert idefics3.crops(s, (h, w)) == len(out["pixel_values"][0]), (s.architecture, h, w)


def test_image_kv_share_and_components():
    e = estimate(IDEFICS3, images=2, image_size=(1024, 768), context=8192)
    assert e.image_tokens == 2 * 2228
    assert e.image_kv_bytes == 2 * 2228 * KV_TOKEN
    assert e.kv_self_bytes == 8192 * KV_TOKEN
    assert {"vision_tower", "projector"} <= {c.name for c in e.components}
    # the connector: one bias-free (vision hidden x scale^2) -> text hidden matrix
    assert next(c for c in e.components if c.name == "projector").parameters == 1152 * 4 * 256


@pytest.mark.parametrize(("model", "name"), [(IDEFICS3, "Idefics3"), (SMOLVLM, "SmolVLM")])
@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
def test_gguf_engines_refuse_by_name(model, name, engine):
    with pytest.raises(UsageError, match=name):
        engine_estimate(model, Request(), engine)


def test_inconsistent_geometry_is_refused():
    # 26 patches a side, not a multiple of 4: transformers builds it (only the pixel shuffle of a forward pass
    # fails), so it is a warning, not a refusal (issue 20)
    from willitrun.importers.configs import unusable_values

    spec = make("idefics3", {"image_size": 364, "patch_size": 14}, 4)
    assert unusable_values(spec) == [
        "Warning: scale_factor (4) does not divide the 26 patches per side: the "
        "connector's pixel shuffle would fail in a forward pass; sized as written."
    ]
    with pytest.raises(ValidationError, match="max_image_size"):
        make("smolvlm", {"image_size": 512, "patch_size": 16}, 4)  # the processor's default 364 px crops


@pytest.mark.parametrize("model_type", ["idefics3", "smolvlm"])
def test_config_json_import_equals_transformers(model_type):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers import spec_from_config

    cfg = {
        "model_type": model_type,
        "torch_dtype": "bfloat16",
        "image_token_id": 1000,
        "scale_factor": 4,
        "text_config": {k: v for k, v in TEXT.items() if k != "max_position_embeddings"},
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 512,
            "patch_size": 16,
        },
    }
    s = spec_from_config(cfg, "x/config.json")
    classes = {
        "idefics3": (tf.Idefics3Config, tf.Idefics3ForConditionalGeneration),
        "smolvlm": (tf.SmolVLMConfig, tf.SmolVLMForConditionalGeneration),
    }[model_type]
    with torch.device("meta"):
        model = classes[1](classes[0](**{k: v for k, v in cfg.items() if k not in ("model_type", "torch_dtype")}))
    assert estimate(s).parameters == sum(p.numel() for p in model.parameters())
    assert s.config.text_config.max_position_embeddings == 2048  # LlamaConfig's default, cited
    assert s.preprocessor.max_image_size == 512 and s.preprocessor.longest_edge == 2048
    assert "preprocessor_config.json" in (s.notes or "")
