"""Apertus (ApertusForCausalLM, Swiss AI): Llama's attention with RMSNorms of each head's query and key
(q_norm, k_norm over head_dim), q/k/v/o biased when `attention_bias`, norms before attention and MLP
(attention_layernorm, feedforward_layernorm), and a plain two-matrix MLP (up_proj, down_proj) whose
activation, xIELU when `hidden_act` is "xielu", holds two learnable scalars per layer (alpha_p, alpha_n:
transformers activations.py XIELUActivation) (transformers models/apertus/modeling_apertus.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class ApertusConfig(DecoderConfig):
    """ApertusConfig fields (transformers models/apertus/configuration_apertus.py)."""

    model_type: Literal["apertus"] | None = None
    hidden_act: Literal["xielu", "silu", "gelu", "relu", "gelu_pytorch_tanh"] = "xielu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(
            qkv_bias=b, o_bias=b, qk_norm=True, gated=False, act_params=2 if self.hidden_act == "xielu" else 0
        )


class ApertusSpec(DecoderSpec):
    architecture: Literal["apertus"]
    config: ApertusConfig


FAMILY = decoder_family(
    __name__,
    "apertus",
    ApertusSpec,
    ConfigClass(
        "ApertusConfig",
        "apertus/configuration_apertus.py",
        ApertusConfig,
        {
            "vocab_size": 131072,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 65536,
            "hidden_act": "xielu",
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
        copied=("head_dim",),
    ),
    gguf=("apertus",),
)
