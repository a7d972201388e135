"""GLM-4 (Glm4ForCausalLM, GLM-4-0414): Llama's layer with biased q/k/v projections (`attention_bias`,
true by default; o_proj has none), one fused gate_up_proj, and two more norms per layer, after the attention
and after the MLP (post_self_attn_layernorm, post_mlp_layernorm) besides the two before them (transformers
models/glm4/modeling_glm4.py)."""

from __future__ import annotations

from typing import Literal

from .base import HeadDim
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class Glm4Config(DecoderConfig):
    """Glm4Config fields (transformers models/glm4/configuration_glm4.py)."""

    model_type: Literal["glm4"] | None = None
    head_dim: HeadDim = 128  # Glm4Config default; Glm4Attention reads it
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = True

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, fused_gate_up=True, sandwich_norms=True)


class Glm4Spec(DecoderSpec):
    architecture: Literal["glm4"]
    config: Glm4Config


FAMILY = decoder_family(
    __name__,
    "glm4",
    Glm4Spec,
    ConfigClass(
        "Glm4Config",
        "glm4/configuration_glm4.py",
        Glm4Config,
        {
            "vocab_size": 151552,
            "hidden_size": 4096,
            "intermediate_size": 13696,
            "num_hidden_layers": 40,
            "num_attention_heads": 32,
            "num_key_value_heads": 2,
            "head_dim": 128,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": True,
        },
    ),
    gguf=("glm4",),
)
