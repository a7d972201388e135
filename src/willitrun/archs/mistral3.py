"""Mistral Small 3.1 (Mistral3ForConditionalGeneration): a Pixtral vision tower (native resolution,
2D RoPE, no position weights), a projector that merges 2x2 patches (RMSNorm, a bias-free merging
layer, two linears) and a Mistral language model whose input holds the image tokens (self-attention
context, no cross-attention).

Image tokens (transformers models/pixtral/image_processing_pixtral.py get_resize_output_image_size and
processing_pixtral.py): the image is shrunk (floor) to fit longest_edge, each side rounded up to a
multiple of patch_size x spatial_merge_size (28); it then costs rows x cols [IMG] tokens plus one
[IMG_BREAK] per row (the last one is [IMG_END]): rows x (cols + 1) positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ..records import Field, model_validator
from . import llama, llava
from .base import (
    Channels,
    FeatureLayer,
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    ImageSide,
    Intermediate,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    TokenId,
    linear,
    norm,
)
from .family import ConfigClass, ConfigReading, Family
from .llama import LlamaConfig
from .ministral3 import CONFIG as MINISTRAL3_TEXT
from .ministral3 import Ministral3Config

ARCHITECTURES = ("mistral3",)
STAGES_TAKE_IMAGE_SIZE = True


class PixtralVisionConfig(Strict):
    """PixtralVisionConfig fields (transformers models/pixtral/configuration_pixtral.py), its defaults."""

    model_type: Literal["pixtral"] | None = None
    hidden_size: Hidden = 1024
    intermediate_size: Intermediate = 4096
    num_hidden_layers: Layers = 24
    num_attention_heads: Heads = 16
    head_dim: HeadDim | None = None
    num_channels: Channels = 3
    image_size: ImageSide = 1024
    patch_size: ImageSide = 16
    hidden_act: Literal["gelu", "silu"] = "gelu"


class Preprocessor(Strict):
    """preprocessor_config.json's size.longest_edge (PixtralImageProcessor); None: vision_config.image_size."""

    longest_edge: ImageSide | None = None


class Mistral3Config(Strict):
    """Mistral3Config fields (transformers models/mistral3/configuration_mistral3.py)."""

    # a Mistral / Llama text model (Mistral Small 3.1 / 3.2), or Ministral 3's (Devstral Small 2, Ministral 3)
    text_config: LlamaConfig | Ministral3Config
    vision_config: PixtralVisionConfig
    spatial_merge_size: ImageSide = 2
    multimodal_projector_bias: bool = False
    projector_hidden_act: Literal["gelu"] = "gelu"
    vision_feature_layer: FeatureLayer | list[FeatureLayer] = Field(default=-1)
    image_token_index: TokenId | None = None
    tie_word_embeddings: bool = (
        True  # Mistral3Config's (PreTrainedConfig's) default; the checkpoints store a separate head
    )

    @model_validator(mode="after")
    def _check(self) -> Mistral3Config:
        if self.text_config.model_type == "mistral" and "sliding_window" not in self.text_config.model_fields_set:
            raise ValueError("text_config.sliding_window: give it explicitly for mistral (null for no window)")
        return self


class Mistral3Spec(ModelSpecBase):
    architecture: Literal["mistral3"]
    config: Mistral3Config
    preprocessor: Preprocessor = Preprocessor()


SPECS = {"mistral3": Mistral3Spec}


def _tied(c: Mistral3Config) -> bool:
    return c.tie_word_embeddings


def tensors(spec: Mistral3Spec) -> Iterator[Tensor]:
    c, v = spec.config, spec.config.vision_config
    h, comp = v.hidden_size, "vision_tower"
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield from norm("vision.ln_pre", comp, h, None)
    for i in range(v.num_hidden_layers):
        p = f"vision.{i}"
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from linear(f"{p}.attn_k", comp, h, h, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", comp, h, h, "attn_v", False, i)
        yield from linear(f"{p}.attn_q", comp, h, h, "attn_q", False, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", False, i)
        yield from llama.gated_mlp(p, comp, h, v.intermediate_size, False, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
    t = c.text_config
    layers = len(c.vision_feature_layer) if isinstance(c.vision_feature_layer, list) else 1
    m = c.spatial_merge_size
    yield from norm("projector.norm", "projector", h, None)
    yield from linear("projector.patch_merger", "projector", h, h * m * m, "projector", False, None)
    yield from linear(
        "projector.linear_1", "projector", t.hidden_size, h * layers, "projector", c.multimodal_projector_bias, None
    )
    yield from linear(
        "projector.linear_2", "projector", t.hidden_size, t.hidden_size, "projector", c.multimodal_projector_bias, None
    )
    yield from llama.decoder_lm(t, tied=_tied(c))


def geometry(spec: Mistral3Spec) -> Geometry:
    c = spec.config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="Mistral 3 has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(
            *llama.lm_tp_constraints(c.text_config),
            ("vision tower attention heads", c.vision_config.num_attention_heads, False),
        ),
        takes_images=True,
        image_size_option=True,
        refusals={"ollama": "ollama's Mistral 3 vision runner is not modelled yet"},
    )


def resized(spec: Mistral3Spec, height: int, width: int) -> tuple[int, int]:
    """PixtralImageProcessor with patch_size x spatial_merge_size: shrink to longest_edge (floor), then
    round each side up to a multiple of that unit."""
    c = spec.config
    edge = spec.preprocessor.longest_edge or c.vision_config.image_size
    unit = c.vision_config.patch_size * c.spatial_merge_size
    ratio = max(height / edge, width / edge)
    if ratio > 1:
        height, width = math.floor(height / ratio), math.floor(width / ratio)
    return ((height - 1) // unit + 1) * unit, ((width - 1) // unit + 1) * unit


def _grid(spec: Mistral3Spec, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """(rows, cols) of merged tokens; the largest (a square at longest_edge) without a size."""
    c = spec.config
    edge = spec.preprocessor.longest_edge or c.vision_config.image_size
    h, w = resized(spec, *(image_size or (edge, edge)))
    unit = c.vision_config.patch_size * c.spatial_merge_size
    return h // unit, w // unit


def image_tokens(spec: Mistral3Spec, image_size: tuple[int, int] | None) -> int:
    rows, cols = _grid(spec, image_size)
    return rows * (cols + 1)  # [IMG] x cols and one [IMG_BREAK] / [IMG_END] per row


def stages(
    spec: Mistral3Spec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        v, m = spec.config.vision_config, spec.config.spatial_merge_size
        rows, cols = _grid(spec, image_size)
        patches = rows * cols * m * m
        h = v.hidden_size
        out.append(
            Stage(patches * images, h, h, h, v.intermediate_size, True, v.num_attention_heads, patches, per_input=True)
        )
    return out


def cross_source_tokens(spec: Mistral3Spec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
PIXTRAL_VISION = ConfigClass(
    "PixtralVisionConfig",
    "pixtral/configuration_pixtral.py",
    PixtralVisionConfig,
    {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_channels": 3,
        "image_size": 1024,
        "patch_size": 16,
        "hidden_act": "gelu",
    },
)  # head_dim: PixtralVisionConfig.__post_init__ always sets hidden_size // num_attention_heads
MISTRAL3 = ConfigClass(
    "Mistral3Config",
    "mistral3/configuration_mistral3.py",
    Mistral3Config,
    {
        "spatial_merge_size": 2,
        "multimodal_projector_bias": False,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
        "tie_word_embeddings": True,
    },
    copied=("image_token_index",),
)
# The sub-configs' init_kwargs (used when config.json has no text_config / vision_config at all).
_MISTRAL3_TEXT_INIT = {
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 5120,
    "intermediate_size": 32768,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "sliding_window": None,
    "vocab_size": 131072,
}
_MISTRAL3_VISION_INIT = {
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 1540,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
}


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Mistral3Config: a Mistral or Llama text_config, a Pixtral vision_config (SubConfigSpec.create_subconfig)."""
    text = reading.sub_config(
        reading.sub(cfg, "text_config"),
        "text_config",
        "mistral",
        {**llava.TEXT_MODELS, "ministral3": MINISTRAL3_TEXT},  # Devstral Small 2: Ministral 3's text model
        _MISTRAL3_TEXT_INIT,
        MISTRAL3,
    )
    vision = reading.sub_config(
        reading.sub(cfg, "vision_config"),
        "vision_config",
        "pixtral",
        {"pixtral": PIXTRAL_VISION},
        _MISTRAL3_VISION_INIT,
        MISTRAL3,
    )
    out = {"text_config": text, "vision_config": vision, **reading.block(cfg, MISTRAL3, "config")}
    if "tie_word_embeddings" not in cfg:
        reading.notes.append(
            "tie_word_embeddings: not in config.json, so Mistral3Config's default (true) ties the LM head "
            "to the embedding; Mistral Small 3.1 / 3.2 checkpoints store a separate lm_head.weight "
            "(the catalog's mistral-small-3.1-24b sets it false): set it false for those."
        )
    return out


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    weight_rules={
        "mistral3": llava.WEIGHT_RULES
    },  # LLaVA's names: vision_tower.*, multi_modal_projector.*, language_model.*,
    read_config={"mistral3": read_config},
)
