"""Cohere / Command R (CohereForCausalLM): one LayerNorm without a bias (CohereLayerNorm: a weight only)
before attention and MLP, which run in parallel on it; q/k/v/o biased when `attention_bias`; with
`use_qk_norm`, LayerNorms of the queries and keys with a weight per head and position
(hidden_size=(heads, head_dim)); the LM head tied by default (transformers models/cohere/modeling_cohere.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class CohereConfig(DecoderConfig):
    """CohereConfig fields (transformers models/cohere/configuration_cohere.py)."""

    model_type: Literal["cohere"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    use_qk_norm: bool = False
    tie_word_embeddings: bool = True

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=self.use_qk_norm, qk_norm_full=True, parallel_block=True)


class CohereSpec(DecoderSpec):
    architecture: Literal["cohere"]
    config: CohereConfig


FAMILY = decoder_family(
    __name__,
    "cohere",
    CohereSpec,
    ConfigClass(
        "CohereConfig",
        "cohere/configuration_cohere.py",
        CohereConfig,
        {
            "vocab_size": 256000,
            "hidden_size": 8192,
            "intermediate_size": 22528,
            "num_hidden_layers": 40,
            "num_attention_heads": 64,
            "num_key_value_heads": None,
            "max_position_embeddings": 8192,
            "hidden_act": "silu",
            "tie_word_embeddings": True,
            "attention_bias": False,
            "use_qk_norm": False,
        },
        copied=("head_dim",),
    ),
    gguf=("command-r",),
)  # convert_hf_to_gguf.py: CohereForCausalLM -> MODEL_ARCH.COMMAND_R
