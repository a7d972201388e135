"""Donut-style vision encoder-decoders (Swin + MBart/BART) against transformers itself, built here from
small configs: no catalog model of this family has a verbatim-sourced config yet, so reference.json
has no entry for one (see docs/research/issue11). Every expected number below is read from the
transformers model: its parameters (meta device) and the EncoderDecoderCache a forward pass returns.
Needs torch and transformers (tests/reference/requirements.txt); skipped without them."""

from __future__ import annotations

import pytest

from willitrun import estimate
from willitrun.specs import parse_model_spec

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.reference.build_reference import describe_cache  # noqa: E402  (needs torch)

# Swin shapes that exercise what the arithmetic must get right: a page whose sides are no multiple of
# the patch or of 2 at some merge (odd sides are padded), three stages, a window of 4
ENCODERS = [
    {
        "model_type": "donut-swin",
        "image_size": [250, 190],
        "patch_size": 4,
        "embed_dim": 32,
        "depths": [1, 2, 1],
        "num_heads": [2, 4, 8],
        "window_size": 4,
    },
    {
        "model_type": "swin",
        "image_size": [96, 64],
        "patch_size": 4,
        "embed_dim": 32,
        "depths": [2, 1, 1],
        "num_heads": [2, 2, 4],
        "window_size": 4,
    },
]
DECODERS = [
    {
        "model_type": "mbart",
        "vocab_size": 512,
        "d_model": 128,
        "decoder_layers": 2,
        "decoder_attention_heads": 4,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 64,
        "scale_embedding": True,
    },
    {
        "model_type": "bart",
        "vocab_size": 512,
        "d_model": 128,
        "decoder_layers": 3,
        "decoder_attention_heads": 8,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 64,
        "tie_word_embeddings": False,
    },
]
CASES = [(e, d) for e in ENCODERS for d in DECODERS]
BATCH, DECODER_TOKENS = 2, 5


def build(enc: dict, dec: dict, device: str):
    from transformers import (
        AutoConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
    )

    e = {k: v for k, v in enc.items() if k != "model_type"}
    d = {k: v for k, v in dec.items() if k != "model_type"}
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        AutoConfig.for_model(enc["model_type"], **e),
        AutoConfig.for_model(dec["model_type"], **d, is_decoder=True, add_cross_attention=True),
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = VisionEncoderDecoderModel(config)
    return model.eval(), config


def spec(enc: dict, dec: dict):
    return parse_model_spec(
        {
            "id": "small",
            "name": "small",
            "architecture": "vision-encoder-decoder",
            "dtype": "float32",
            "sources": {"config": "this test"},
            "config": {"encoder": enc, "decoder": dec},
        }
    )


COMPONENTS = (
    ("encoder.", "encoder"),
    ("decoder.model.decoder.embed_tokens.", "embeddings"),
    ("decoder.lm_head.", "lm_head"),
    ("decoder.", "decoder"),
)


@pytest.mark.parametrize(("enc", "dec"), CASES)
def test_parameters_equal_transformers(enc, dec):
    model, _ = build(enc, dec, "meta")
    expected: dict[str, int] = {}
    for name, p in model.named_parameters():  # a tied lm_head appears once, under the embedding
        comp = next(c for prefix, c in COMPONENTS if name.startswith(prefix))
        expected[comp] = expected.get(comp, 0) + p.numel()
    e = estimate(spec(enc, dec))
    assert {c.name: c.parameters for c in e.components} == expected
    assert e.parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("enc", "dec"), CASES)
def test_cross_cache_covers_the_encoder_output(enc, dec):
    model, _ = build(enc, dec, "cpu")
    h, w = enc["image_size"]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(BATCH, 3, h, w, generator=gen)
    ids = torch.randint(4, 500, (BATCH, DECODER_TOKENS), generator=gen)
    with torch.no_grad():
        out = model(pixel_values=pixels, decoder_input_ids=ids, use_cache=True)
    cache = describe_cache(out.past_key_values, set())
    e = estimate(spec(enc, dec), context=DECODER_TOKENS, batch=BATCH, dtype="fp32", kv_dtype="f32")
    assert e.cross_source_tokens == cache["cross_positions"] == out.encoder_last_hidden_state.shape[1]
    assert e.attention.cross_layers == cache["cross_layers"] == dec["decoder_layers"]
    assert e.kv_cross_bytes == cache["kv_cross_storage_elements"] * 4
    assert e.kv_self_bytes == cache["kv_self_storage_elements"] * 4
