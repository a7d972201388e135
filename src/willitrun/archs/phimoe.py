"""Phi-3.5-MoE (PhimoeForCausalLM): Mixtral's routed feed-forward in every layer (`num_local_experts`
experts of `intermediate_size`, top `num_experts_per_tok`, a bias-free router, no shared expert) with
LayerNorms that hold a bias instead of RMSNorms (input, post-attention and final norm), q/k/v/o biased
when `attention_bias`, an LM head biased when `lm_head_bias`, and every layer sliding over
`sliding_window` positions when one is set (transformers models/phimoe/modeling_phimoe.py: PhimoeAttention,
PhimoeTopKRouter, PhimoeExperts' gate_up_proj / down_proj, PhimoeDecoderLayer's nn.LayerNorm,
PhimoeForCausalLM's lm_head; cache_utils.py get_layer_types_and_kwargs: a config with a sliding_window
and no layer_types caches every layer as sliding_attention)."""

from __future__ import annotations

from typing import Literal

from .base import Positions
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy
from .moe import Experts, MoeConfig


class PhimoeConfig(MoeConfig):
    """PhimoeConfig fields (transformers models/phimoe/configuration_phimoe.py)."""

    model_type: Literal["phimoe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    lm_head_bias: bool = False
    sliding_window: Positions | None = None
    num_local_experts: Experts
    num_experts_per_tok: Experts

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, norm_bias=True, lm_head_bias=self.lm_head_bias)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class PhimoeSpec(DecoderSpec):
    architecture: Literal["phimoe"]
    config: PhimoeConfig


# Llama's names plus the biases of the final LayerNorm and of the LM head (PhimoeModel.norm, lm_head)
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|norm\.(?:weight|bias))", "decoder"),
    (r"lm_head\.(?:weight|bias)", "lm_head"),
)


# head_dim: PhimoeAttention reads getattr(config, "head_dim", hidden_size // num_attention_heads)
FAMILY = moe_family(
    __name__,
    "phimoe",
    PhimoeSpec,
    ConfigClass(
        "PhimoeConfig",
        "phimoe/configuration_phimoe.py",
        PhimoeConfig,
        {
            "vocab_size": 32064,
            "hidden_size": 4096,
            "intermediate_size": 6400,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "lm_head_bias": False,
            "sliding_window": None,
            "num_local_experts": 16,
            "num_experts_per_tok": 2,
        },
        copied=("head_dim",),
    ),
    gguf=("phimoe",),
    weight_rules=WEIGHT_RULES,
)  # convert_hf_to_gguf.py: PhiMoEForCausalLM -> MODEL_ARCH.PHIMOE
