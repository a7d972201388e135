"""OLMo 2 (Olmo2ForCausalLM): Llama's layer with the norms after the blocks instead of before
(post_attention_layernorm, post_feedforward_layernorm; no input_layernorm) and RMSNorms of the
queries and keys over every head at once (q_norm over heads x head_dim, k_norm over KV heads x
head_dim), biases on q/k/v/o only when `attention_bias` (transformers models/olmo2/modeling_olmo2.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class Olmo2Config(DecoderConfig):
    """Olmo2Config fields (transformers models/olmo2/configuration_olmo2.py)."""

    model_type: Literal["olmo2"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True, qk_norm_full=True, pre_norms=False, sandwich_norms=True)


class Olmo2Spec(DecoderSpec):
    architecture: Literal["olmo2"]
    config: Olmo2Config


FAMILY = decoder_family(
    __name__,
    "olmo2",
    Olmo2Spec,
    ConfigClass(
        "Olmo2Config",
        "olmo2/configuration_olmo2.py",
        Olmo2Config,
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
    gguf=("olmo2",),
)  # Olmo2Attention: getattr(config, "head_dim", hidden // heads)
