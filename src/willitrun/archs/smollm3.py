"""SmolLM3 (SmolLM3ForCausalLM): Llama's layer and weights (biases only when `attention_bias` /
`mlp_bias`); some layers skip the rotary embedding (`no_rope_layers`), which changes no tensor and no
cache, and layers slide only when `use_sliding_window` with a window, on the layers without RoPE, unless
`layer_types` says otherwise (SmolLM3Config.__post_init__); the LM head is tied by default (transformers
models/smollm3/configuration_smollm3.py, modeling_smollm3.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Positions
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig, LayerType, check_layer_types, layer_window


class SmolLM3Config(DecoderConfig):
    """SmolLM3Config fields (transformers models/smollm3/configuration_smollm3.py)."""

    model_type: Literal["smollm3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = True
    use_sliding_window: bool = False
    sliding_window: Positions | None = None
    no_rope_layers: list[Annotated[int, Field(ge=0, le=1)]] | None = Field(default=None, max_length=L.MAX_LAYERS)
    no_rope_layer_interval: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 4
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, mlp_bias=self.mlp_bias)

    def _has_rope(self, i: int) -> bool:
        if self.no_rope_layers is not None and i < len(self.no_rope_layers):
            return bool(self.no_rope_layers[i])
        return bool((i + 1) % self.no_rope_layer_interval)  # SmolLM3Config.__post_init__'s default list

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        window = self.sliding_window if self.use_sliding_window else None
        return layer_window(self.layer_types, i, not self._has_rope(i), window)

    @model_validator(mode="after")
    def _check_layers(self) -> SmolLM3Config:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class SmolLM3Spec(DecoderSpec):
    architecture: Literal["smollm3"]
    config: SmolLM3Config


FAMILY = decoder_family(
    __name__,
    "smollm3",
    SmolLM3Spec,
    ConfigClass(
        "SmolLM3Config",
        "smollm3/configuration_smollm3.py",
        SmolLM3Config,
        {
            "vocab_size": 128256,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 4,
            "max_position_embeddings": 32768,
            "hidden_act": "silu",
            "tie_word_embeddings": True,
            "attention_bias": False,
            "mlp_bias": False,
            "use_sliding_window": False,
            "sliding_window": None,
        },
        copied=("head_dim", "layer_types", "no_rope_layers", "no_rope_layer_interval"),
    ),
    gguf=("smollm3",),
)
