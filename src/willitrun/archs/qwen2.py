"""Qwen2 / Qwen2.5 (Qwen2ForCausalLM): Llama's layer with biased q/k/v projections (o_proj has
none, transformers models/qwen2/modeling_qwen2.py Qwen2Attention), and optional sliding windows
on the layers from `max_window_layers` on when `use_sliding_window` is set (Qwen2Config.__post_init__;
every released Qwen2.5 config sets it false)."""

from __future__ import annotations

from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import ModelSpecBase, Positions
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import (  # noqa: F401
    LM_WEIGHT_RULES,
    Anatomy,
    DecoderConfig,
    LayerType,
    check_layer_types,
    decoder_geometry,
    layer_window,
    stages,
    tensors,
)

ARCHITECTURES = ("qwen2",)


class SlidingLayers(DecoderConfig):
    """Qwen2Config / Qwen3Config's windows: `layer_types` when given, else sliding from layer
    `max_window_layers` on when `use_sliding_window` (sliding_window is None otherwise)."""

    use_sliding_window: bool = False
    sliding_window: Positions | None = 4096  # transformers' default; inert unless use_sliding_window
    max_window_layers: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)] = 28
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        window = self.sliding_window if self.use_sliding_window else None
        return layer_window(self.layer_types, i, i >= self.max_window_layers, window)

    @model_validator(mode="after")
    def _check_layers(self) -> SlidingLayers:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class Qwen2Config(SlidingLayers):
    """Qwen2Config fields (transformers models/qwen2/configuration_qwen2.py)."""

    model_type: Literal["qwen2"] | None = None
    hidden_act: Literal["silu"] = "silu"

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=True)


class Qwen2Spec(ModelSpecBase):
    architecture: Literal["qwen2"]
    config: Qwen2Config


SPECS = {"qwen2": Qwen2Spec}
geometry = llama.geometry
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
_QWEN_WINDOWS = {"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28}
QWEN2 = ConfigClass(
    "Qwen2Config",
    "qwen2/configuration_qwen2.py",
    Qwen2Config,
    {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        **_QWEN_WINDOWS,
    },
    copied=("head_dim", "layer_types"),
)  # Qwen2Attention reads head_dim when a config sets it

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"qwen2": QWEN2},
    gguf_architectures=("qwen2",),
    weight_rules={"qwen2": LM_WEIGHT_RULES},
    gguf_rules={"qwen2": GGUFRules(decoder=GGUFDecoder("qwen2"))},
)
