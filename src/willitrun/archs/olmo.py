"""OLMo (OlmoForCausalLM: OLMo 1, OLMo 1.7): Llama's layer with LayerNorms that hold no parameters
(OlmoLayerNorm: no weight, no bias, before attention, MLP and after the last layer), q/k/v/o biased when
`attention_bias`; `clip_qkv` clamps activations and holds no weights (transformers
models/olmo/modeling_olmo.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class OlmoConfig(DecoderConfig):
    """OlmoConfig fields (transformers models/olmo/configuration_olmo.py)."""

    model_type: Literal["olmo"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, norm_weights=False)


class OlmoSpec(DecoderSpec):
    architecture: Literal["olmo"]
    config: OlmoConfig


FAMILY = decoder_family(
    __name__,
    "olmo",
    OlmoSpec,
    ConfigClass(
        "OlmoConfig",
        "olmo/configuration_olmo.py",
        OlmoConfig,
        {
            "vocab_size": 50304,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
        copied=("head_dim",),
    ),
    gguf=("olmo",),
)
