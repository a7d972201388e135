"""Pix2Struct (Pix2StructForConditionalGeneration): a ViT-like encoder over variable-resolution image
patches and a T5-like decoder whose every layer cross-attends to the encoder output.

The image processor (Pix2StructImageProcessor) rescales each image so that at most `max_patches`
patches of patch_size x patch_size pixels cover it, then pads the sequence to exactly `max_patches`
rows (row and column ids 0 for padding). The encoder runs over all `max_patches` positions and the
decoder's cross-attention keeps keys and values for all of them (padding is masked, not dropped), so
the cross cache is `2 x layers x num_heads x d_kv x max_patches` per sequence, whatever the image.
`max_patches` is the processor's argument (default 2048, image_processing_pix2struct.py): give it
as `--encoder-tokens`.

Tensors (transformers 5.23 models/pix2struct/modeling_pix2struct.py): the encoder's patch projection
(biased, patch_embed_hidden_size -> hidden_size), row and column embeddings of seq_len rows each, layers
with bias-free q/k/v/output (num_attention_heads x d_kv wide), a gated-GELU MLP (wi_0, wi_1, wo) and
two weight-only RMS norms, a final norm; the decoder's token embedding, layers with self-attention
(the first with a relative-position bias table of buckets x heads), cross-attention and the gated
MLP, each with a weight-only norm, a final norm and an untied lm_head (tie_word_embeddings false).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from .base import (
    Buckets,
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, ConfigReading, Family, WeightRules

ARCHITECTURES = ("pix2struct",)
DEFAULT_MAX_PATCHES = 2048  # Pix2StructImageProcessor.max_patches (transformers 5.23 image_processing_pix2struct.py)


class Pix2StructTextConfig(Strict):
    """Pix2StructTextConfig fields with its defaults (configuration_pix2struct.py)."""

    model_type: Literal["pix2struct_text_model"] | None = None
    vocab_size: Vocab = 50244
    hidden_size: Hidden = 768
    d_kv: HeadDim = 64
    d_ff: Intermediate = 2048
    num_layers: Layers = 12
    num_heads: Heads = 12
    relative_attention_num_buckets: Buckets = 32
    dense_act_fn: Literal["gelu_new"] = "gelu_new"


class Pix2StructVisionConfig(Strict):
    """Pix2StructVisionConfig fields with its defaults (configuration_pix2struct.py)."""

    model_type: Literal["pix2struct_vision_model"] | None = None
    hidden_size: Hidden = 768
    patch_embed_hidden_size: Hidden = 768  # patch_size^2 x channels (16 x 16 x 3)
    d_ff: Intermediate = 2048
    d_kv: HeadDim = 64
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 12
    seq_len: Positions = 4096  # rows of the row and column embeddings
    dense_act_fn: Literal["gelu_new"] = "gelu_new"


class Pix2StructConfig(Strict):
    text_config: Pix2StructTextConfig = Pix2StructTextConfig()
    vision_config: Pix2StructVisionConfig = Pix2StructVisionConfig()
    tie_word_embeddings: bool = False  # Pix2StructConfig default; forwarded to text_config


class Pix2StructSpec(ModelSpecBase):
    architecture: Literal["pix2struct"]
    config: Pix2StructConfig


SPECS = {"pix2struct": Pix2StructSpec}


def _attention(p: str, comp: str, hidden: int, inner: int, i: int) -> Iterator[Tensor]:
    yield from linear(f"{p}.attn_q", comp, inner, hidden, "attn_q", False, i)
    yield from linear(f"{p}.attn_k", comp, inner, hidden, "attn_k", False, i)
    yield from linear(f"{p}.attn_v", comp, inner, hidden, "attn_v", False, i)
    yield from linear(f"{p}.attn_output", comp, hidden, inner, "attn_output", False, i)


def _gated_mlp(p: str, comp: str, hidden: int, ff: int, i: int) -> Iterator[Tensor]:
    yield from linear(f"{p}.ffn_gate", comp, ff, hidden, "ffn_gate", False, i)
    yield from linear(f"{p}.ffn_up", comp, ff, hidden, "ffn_up", False, i)
    yield from linear(f"{p}.ffn_down", comp, hidden, ff, "ffn_down", False, i)


def tensors(spec: Pix2StructSpec) -> Iterator[Tensor]:
    c = spec.config
    v, t = c.vision_config, c.text_config
    h = v.hidden_size
    yield from linear("encoder.patch_projection", "encoder", h, v.patch_embed_hidden_size, "conv", True, None)
    yield Tensor("encoder.row_embd.weight", "encoder", (v.seq_len, h), "pos_embd")
    yield Tensor("encoder.column_embd.weight", "encoder", (v.seq_len, h), "pos_embd")
    for i in range(v.num_hidden_layers):
        p = f"encoder.{i}"
        yield from _attention(p, "encoder", h, v.num_attention_heads * v.d_kv, i)
        yield from _gated_mlp(p, "encoder", h, v.d_ff, i)
        yield from norm(f"{p}.ffn_norm", "encoder", h, i)
        yield from norm(f"{p}.attn_norm", "encoder", h, i)
    yield from norm("encoder.output_norm", "encoder", h, None)

    d, inner = t.hidden_size, t.num_heads * t.d_kv
    yield Tensor("token_embd.weight", "embeddings", (t.vocab_size, d), "token_embd")
    for i in range(t.num_layers):
        p = f"decoder.{i}"
        yield from _attention(p, "decoder", d, inner, i)
        if i == 0:
            yield Tensor(
                f"{p}.attn_rel_b.weight", "decoder", (t.relative_attention_num_buckets, t.num_heads), "rel_bias", i
            )
        yield from norm(f"{p}.attn_norm", "decoder", d, i)
        yield from _attention(f"{p}.cross", "decoder", d, inner, i)
        yield from norm(f"{p}.cross_attn_norm", "decoder", d, i)
        yield from _gated_mlp(p, "decoder", d, t.d_ff, i)
        yield from norm(f"{p}.ffn_norm", "decoder", d, i)
    yield from norm("decoder.output_norm", "decoder", d, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (t.vocab_size, d), "output")


def geometry(spec: Pix2StructSpec) -> Geometry:
    c = spec.config
    t, v = c.text_config, c.vision_config
    n = t.num_layers
    return Geometry(
        architecture=spec.architecture,
        self_kv=(LayerKV("full", t.num_heads, t.d_kv, t.d_kv),) * n,
        cross_kv=(LayerKV("cross", t.num_heads, t.d_kv, t.d_kv),) * n,
        vocab_size=t.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=t.hidden_size,
        num_attention_heads=t.num_heads,
        intermediate_size=t.d_ff,
        # relative position buckets: no learned decoder positions, so no hard limit and no trained
        # window in the config (generation_config's max_length is not a property of the model)
        context_window=None,
        tp_constraints=(
            ("decoder attention heads", t.num_heads, False),
            ("encoder attention heads", v.num_attention_heads, False),
            ("d_ff", t.d_ff, False),
        ),
        tp_kv_heads=t.num_heads,
        relative_position_bias=True,
        cross_source="image patches (max_patches, padded: --encoder-tokens)",
        encoder_tokens_option=True,
        encoder_tokens_default=DEFAULT_MAX_PATCHES,
        refusals={
            "ollama": "ollama runs no Pix2Struct models",
            "llama.cpp": "llama.cpp has no Pix2Struct architecture",
            "vllm": "the vLLM profile covers decoder LMs, LLaVA and Llama 3.2 Vision; not pix2struct",
        },
    )


def stages(spec: Pix2StructSpec, context: int, source: int, images: int) -> list[Stage]:
    """The encoder over max_patches positions once per input (SDPA), then the decoder over the prompt;
    its attention adds a relative-position bias of the score matrix's shape (as T5's: eager)."""
    t, v = spec.config.text_config, spec.config.vision_config
    inner_v, inner_t = v.num_attention_heads * v.d_kv, t.num_heads * t.d_kv
    return [
        Stage(source, v.hidden_size, inner_v, inner_v, v.d_ff, True, v.num_attention_heads, source, per_input=True),
        Stage(
            context, t.hidden_size, inner_t, inner_t, t.d_ff, True, t.num_heads, max(context, source), eager_scores=True
        ),
    ]


def image_tokens(spec: Pix2StructSpec, image_size: tuple[int, int] | None) -> int:
    return 0  # the image is the encoder's input, never part of the decoder's context


def cross_source_tokens(spec: Pix2StructSpec, images: int, encoder_tokens: int) -> int:
    return encoder_tokens


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
PIX2STRUCT_TEXT = ConfigClass(
    "Pix2StructTextConfig",
    "pix2struct/configuration_pix2struct.py",
    Pix2StructTextConfig,
    {
        "vocab_size": 50244,
        "hidden_size": 768,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 12,
        "num_heads": 12,
        "relative_attention_num_buckets": 32,
        "dense_act_fn": "gelu_new",
    },
)
PIX2STRUCT_VISION = ConfigClass(
    "Pix2StructVisionConfig",
    "pix2struct/configuration_pix2struct.py",
    Pix2StructVisionConfig,
    {
        "hidden_size": 768,
        "patch_embed_hidden_size": 768,
        "d_ff": 2048,
        "d_kv": 64,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "seq_len": 4096,
        "dense_act_fn": "gelu_new",
    },
)
PIX2STRUCT = ConfigClass(
    "Pix2StructConfig",
    "pix2struct/configuration_pix2struct.py",
    Pix2StructConfig,
    {"tie_word_embeddings": False},
)
CLASSES = {
    "pix2struct_text_model": PIX2STRUCT_TEXT,
    "pix2struct_vision_model": PIX2STRUCT_VISION,
    "pix2struct": PIX2STRUCT,
}
# Pix2StructForConditionalGeneration: encoder.*, decoder.* with the decoder's token embedding and lm_head inside it
WEIGHT_RULES: WeightRules = (
    (r"encoder\..+", "encoder"),
    (r"decoder\.embed_tokens\.weight", "embeddings"),
    (r"decoder\.lm_head\.weight", "lm_head"),
    (r"decoder\..+", "decoder"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Pix2StructConfig: its text_config and vision_config (each its class's defaults), its own keys."""
    text = reading.typed(
        reading.sub(cfg, "text_config"),
        "config.text_config",
        {"pix2struct_text_model": PIX2STRUCT_TEXT},
        "pix2struct_text_model",
    )
    vision = reading.typed(
        reading.sub(cfg, "vision_config"),
        "config.vision_config",
        {"pix2struct_vision_model": PIX2STRUCT_VISION},
        "pix2struct_vision_model",
    )
    return {"text_config": text, "vision_config": vision, **reading.block(cfg, PIX2STRUCT, "config")}


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    read_config={"pix2struct": read_config},
    weight_rules={"pix2struct": WEIGHT_RULES},
)
