"""Granite MoE (GraniteMoeForCausalLM: Granite 3.0/3.1 1B-A400M, 3B-A800M): Granite's attention (q/k/v/o
biased when `attention_bias`; the multipliers scale activations and hold no weights) and a routed
feed-forward in every layer: `num_local_experts` experts of `intermediate_size`, top `num_experts_per_tok`,
a bias-free router, no shared expert (transformers models/granitemoe/modeling_granitemoe.py:
GraniteMoeTopKRouter, GraniteMoeExperts' gate_up_proj / down_proj)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .granite import Multiplier
from .llama import Anatomy
from .moe import Experts, MoeConfig


class GraniteMoeConfig(MoeConfig):
    """GraniteMoeConfig fields (transformers models/granitemoe/configuration_granitemoe.py)."""

    model_type: Literal["granitemoe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    num_local_experts: Experts
    num_experts_per_tok: Experts
    embedding_multiplier: Multiplier = 1.0
    logits_scaling: Multiplier = 1.0
    residual_multiplier: Multiplier = 1.0
    attention_multiplier: Multiplier = 1.0

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b)


class GraniteMoeSpec(DecoderSpec):
    architecture: Literal["granitemoe"]
    config: GraniteMoeConfig


FAMILY = moe_family(
    __name__,
    "granitemoe",
    GraniteMoeSpec,
    ConfigClass(
        "GraniteMoeConfig",
        "granitemoe/configuration_granitemoe.py",
        GraniteMoeConfig,
        {
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "embedding_multiplier": 1.0,
            "logits_scaling": 1.0,
            "residual_multiplier": 1.0,
            "attention_multiplier": 1.0,
        },
        copied=("head_dim",),
    ),
    gguf=("granitemoe",),
)
