"""Seed-OSS (SeedOssForCausalLM): Llama's layer with biased q/k/v projections (`attention_bias`, true by
default), an output projection biased only when `attention_out_bias`, and MLP biases when `mlp_bias`
(transformers models/seed_oss/modeling_seed_oss.py)."""

from __future__ import annotations

from typing import Literal

from .base import HeadDim
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class SeedOssConfig(DecoderConfig):
    """SeedOssConfig fields (transformers models/seed_oss/configuration_seed_oss.py)."""

    model_type: Literal["seed_oss"] | None = None
    head_dim: HeadDim | None = 128  # SeedOssConfig: 128; null -> hidden_size // num_attention_heads
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = True
    attention_out_bias: bool = False
    mlp_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_out_bias, mlp_bias=self.mlp_bias)


class SeedOssSpec(DecoderSpec):
    architecture: Literal["seed_oss"]
    config: SeedOssConfig


FAMILY = decoder_family(
    __name__,
    "seed_oss",
    SeedOssSpec,
    ConfigClass(
        "SeedOssConfig",
        "seed_oss/configuration_seed_oss.py",
        SeedOssConfig,
        {
            "vocab_size": 155136,
            "hidden_size": 4096,
            "intermediate_size": 27648,
            "num_hidden_layers": 64,
            "num_attention_heads": 80,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "max_position_embeddings": 524288,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": True,
            "attention_out_bias": False,
            "mlp_bias": False,
        },
        none_is_default=(),
    ),
    gguf=("seed_oss",),
)
