"""OLMoE (OlmoeForCausalLM): OLMo's attention with RMSNorms of the queries and keys over every head
(q_norm over hidden_size, k_norm over KV heads x head_dim), norms before attention and MLP, and a routed
feed-forward in every layer: `num_experts` experts of `intermediate_size`, top `num_experts_per_tok`, a
bias-free router, no shared expert (transformers models/olmoe/modeling_olmoe.py: OlmoeSparseMoeBlock,
OlmoeTopKRouter, OlmoeExperts' gate_up_proj / down_proj)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .llama import Anatomy
from .moe import Experts, MoeConfig


class OlmoeConfig(MoeConfig):
    """OlmoeConfig fields (transformers models/olmoe/configuration_olmoe.py)."""

    model_type: Literal["olmoe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    num_experts: Experts
    num_experts_per_tok: Experts

    @property
    def n_experts(self) -> int:
        return self.num_experts

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True, qk_norm_full=True)


class OlmoeSpec(DecoderSpec):
    architecture: Literal["olmoe"]
    config: OlmoeConfig


# head_dim is not read: OlmoeAttention's q_norm spans hidden_size, which is heads x head_dim only without one
FAMILY = moe_family(
    __name__,
    "olmoe",
    OlmoeSpec,
    ConfigClass(
        "OlmoeConfig",
        "olmoe/configuration_olmoe.py",
        OlmoeConfig,
        {
            "vocab_size": 50304,
            "hidden_size": 2048,
            "intermediate_size": 2048,
            "num_hidden_layers": 16,
            "num_attention_heads": 16,
            "num_key_value_heads": None,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "num_experts": 64,
            "num_experts_per_tok": 8,
        },
    ),
    gguf=("olmoe",),
)
