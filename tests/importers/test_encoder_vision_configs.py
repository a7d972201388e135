"""config.json import of CLIP, SigLIP, Pix2Struct and Donut-style vision encoder-decoders: the
parameter count equals the one transformers builds from the same file (meta device), the filled-in
defaults are transformers' own, and Florence-2 is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.importers.helpers import write_config
from willitrun import UsageError, estimate
from willitrun.archs import clip, pix2struct, vision_encoder_decoder
from willitrun.importers import spec_from_config, spec_from_path

# every config class the encoder-vision families read (their modules declare them)
ENCODER_VISION = {
    **clip.CLASSES,
    **pix2struct.CLASSES,
    **vision_encoder_decoder.ENCODERS,
    **{f"decoder:{t}": c for t, c in vision_encoder_decoder.DECODERS.items()},
}

CASES = [
    # sparse files, as transformers writes them (only what differs from the class defaults)
    (
        "clip-sparse",
        {
            "model_type": "clip",
            "projection_dim": 64,
            "text_config": {
                "hidden_size": 64,
                "intermediate_size": 96,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "vocab_size": 300,
            },
            "vision_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_attention_heads": 2,
                "num_hidden_layers": 2,
                "patch_size": 14,
            },
        },
    ),
    (
        "siglip",
        {
            "model_type": "siglip",
            "text_config": {
                "hidden_size": 48,
                "intermediate_size": 96,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "vocab_size": 300,
            },
            "vision_config": {
                "hidden_size": 48,
                "intermediate_size": 64,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "image_size": 60,
                "patch_size": 14,
            },
        },
    ),
    (
        "pix2struct",
        {
            "model_type": "pix2struct",
            "tie_word_embeddings": False,
            "text_config": {
                "vocab_size": 300,
                "hidden_size": 64,
                "d_ff": 96,
                "num_layers": 2,
                "num_heads": 4,
                "d_kv": 16,
            },
            "vision_config": {
                "hidden_size": 64,
                "d_ff": 96,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "d_kv": 16,
                "seq_len": 128,
            },
        },
    ),
    (
        "donut",
        {
            "model_type": "vision-encoder-decoder",
            "encoder": {
                "model_type": "donut-swin",
                "image_size": [128, 96],
                "embed_dim": 32,
                "depths": [1, 1, 1],
                "num_heads": [2, 2, 4],
                "window_size": 4,
                "hidden_size": 128,
            },
            "decoder": {
                "model_type": "mbart",
                "vocab_size": 300,
                "d_model": 128,
                "decoder_layers": 2,
                "decoder_attention_heads": 4,
                "decoder_ffn_dim": 64,
                "max_position_embeddings": 64,
                "is_decoder": True,
                "add_cross_attention": True,
                "pad_token_id": 1,
            },
        },
    ),
]
MODEL_CLASSES = {
    "clip": "CLIPModel",
    "siglip": "SiglipModel",
    "pix2struct": "Pix2StructForConditionalGeneration",
    "vision-encoder-decoder": "VisionEncoderDecoderModel",
}


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_equal_transformers(tmp_path: Path, case_id: str, config: dict) -> None:
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = getattr(tf, MODEL_CLASSES[config["model_type"]])(hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key", sorted(ENCODER_VISION))
def test_default_tables_equal_transformers(key: str) -> None:
    tf = pytest.importorskip("transformers")
    table = ENCODER_VISION[key]
    config = getattr(tf, table.name)()
    for field, default in table.defaults.items():
        got = getattr(config, field)
        got = list(got) if isinstance(got, tuple) else got
        assert got == default, f"{table.name}.{field}"


def test_an_encoder_used_alone_imports_with_no_cache() -> None:
    spec = spec_from_config(CASES[0][1], "test:clip")
    e = estimate(spec)
    assert not e.kv_cache and e.kv_self_bytes == 0
    # CLIPVisionConfig's image_size 224 filled in and cited (the spec requires it); the text tower's 77
    # positions are CLIPTextConfig's default, which the spec class shares
    assert spec.sources["config.vision_config.image_size"].endswith("clip/configuration_clip.py")
    assert spec.config.vision_config.image_size == 224 and spec.config.text_config.max_position_embeddings == 77


def test_florence2_is_refused_with_the_reason() -> None:
    with pytest.raises(UsageError, match=r"preprocessor_config\.json"):
        spec_from_config({"model_type": "florence2"}, "test:florence2")


def test_an_unsupported_encoder_is_refused_by_name() -> None:
    config = {
        "model_type": "vision-encoder-decoder",
        "encoder": {"model_type": "vit"},
        "decoder": {"model_type": "mbart"},
    }
    with pytest.raises(UsageError, match=r"encoder\.model_type 'vit' is not supported"):
        spec_from_config(config, "test:ved")


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_stored_weights_land_in_the_computed_components(tmp_path: Path, case_id: str, config: dict) -> None:
    """save_pretrained() a small copy; its safetensors header, read per component with the family's
    naming rules, equals what willitrun computes from the architecture (plain float32 weights)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    from willitrun.dtypes import weight_dtype
    from willitrun.memory import weight_components

    src = write_config(tmp_path / "src", config)
    torch.manual_seed(0)
    model = getattr(tf, MODEL_CLASSES[config["model_type"]])(tf.AutoConfig.from_pretrained(src.parent))
    model.save_pretrained(tmp_path / "model")
    spec, weights = spec_from_path(tmp_path / "model")
    assert weights is not None
    computed = weight_components(spec, weight_dtype("fp32"))
    assert weights.apply(computed) == computed
    assert weights.elements == estimate(spec).parameters
