"""ERNIE 4.5 dense (Ernie4_5ForCausalLM): Llama's layer with every projection biased when `use_bias`
(q/k/v/o and the MLP's gate/up/down), an explicit head_dim (128 by default) and a tied LM head by default
(transformers models/ernie4_5/modeling_ernie4_5.py)."""

from __future__ import annotations

from typing import Literal

from .base import HeadDim
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class Ernie4_5Config(DecoderConfig):
    """Ernie4_5Config fields (transformers models/ernie4_5/configuration_ernie4_5.py)."""

    model_type: Literal["ernie4_5"] | None = None
    head_dim: HeadDim | None = 128  # Ernie4_5Config: 128; null -> hidden_size // num_attention_heads
    hidden_act: Literal["silu"] = "silu"
    use_bias: bool = False
    tie_word_embeddings: bool = True

    @property
    def anatomy(self) -> Anatomy:
        b = self.use_bias
        return Anatomy(qkv_bias=b, o_bias=b, mlp_bias=b)


class Ernie4_5Spec(DecoderSpec):
    architecture: Literal["ernie4_5"]
    config: Ernie4_5Config


FAMILY = decoder_family(
    __name__,
    "ernie4_5",
    Ernie4_5Spec,
    ConfigClass(
        "Ernie4_5Config",
        "ernie4_5/configuration_ernie4_5.py",
        Ernie4_5Config,
        {
            "vocab_size": 103424,
            "hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 18,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "head_dim": 128,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": True,
            "use_bias": False,
        },
    ),
    gguf=("ernie4_5",),
)
