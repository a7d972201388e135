"""Orion-14B (OrionForCausalLM, remote code: transformers ships no Orion): Llama's layer with LayerNorms that
carry a bias (input_layernorm, post_attention_layernorm, the final norm) and bias-free q/k/v/o and SwiGLU
projections (OrionStarAI/Orion-14B-Base modeling_orion.py; vLLM's port vllm/model_executor/models/orion.py:
nn.LayerNorm, QKVParallelLinear(bias=False)). llama.cpp loads it as `orion` (src/llama-arch.cpp LLM_ARCH_ORION:
attn_norm and output_norm with weight and bias)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig


class OrionConfig(DecoderConfig):
    """OrionConfig fields (the Hub's configuration_orion.py, never executed)."""

    model_type: Literal["orion"] | None = None
    hidden_act: Literal["silu"] = "silu"

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(norm_bias=True)


class OrionSpec(DecoderSpec):
    architecture: Literal["orion"]
    config: OrionConfig


# Llama's names, the final LayerNorm's bias included
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|norm\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)

FAMILY = decoder_family(
    __name__,
    "orion",
    OrionSpec,
    ConfigClass(
        "OrionConfig",
        "orion/configuration_orion.py",
        OrionConfig,
        {
            "vocab_size": 84608,
            "hidden_size": 4096,
            "intermediate_size": 15360,
            "num_hidden_layers": 40,
            "num_attention_heads": 40,
            "num_key_value_heads": 40,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        remote="https://huggingface.co/OrionStarAI/Orion-14B-Base/blob/main/configuration_orion.py",
    ),
    gguf=("orion",),
    weight_rules=WEIGHT_RULES,
)
