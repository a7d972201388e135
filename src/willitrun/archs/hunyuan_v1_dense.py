"""Hunyuan dense (HunYuanDenseV1ForCausalLM): Llama's layer with RMSNorms of each head's query and key
(query_layernorm, key_layernorm over head_dim) and q/k/v/o biases only when `attention_bias`
(transformers models/hunyuan_v1_dense/modeling_hunyuan_v1_dense.py)."""

from __future__ import annotations

from typing import Literal

from .base import HeadDim
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class HunYuanDenseV1Config(DecoderConfig):
    """HunYuanDenseV1Config fields (transformers models/hunyuan_v1_dense/configuration_hunyuan_v1_dense.py)."""

    model_type: Literal["hunyuan_v1_dense"] | None = None
    # required: HunYuanDenseV1Config defaults it to None and HunYuanDenseV1Attention then fails on
    # head_dim ** -0.5 (transformers 5.23 cannot build such a config), so no default is taken here
    head_dim: HeadDim
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True)


class HunYuanDenseV1Spec(DecoderSpec):
    architecture: Literal["hunyuan_v1_dense"]
    config: HunYuanDenseV1Config


FAMILY = decoder_family(
    __name__,
    "hunyuan_v1_dense",
    HunYuanDenseV1Spec,
    ConfigClass(
        "HunYuanDenseV1Config",
        "hunyuan_v1_dense/configuration_hunyuan_v1_dense.py",
        HunYuanDenseV1Config,
        {
            "vocab_size": 290943,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "head_dim": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
    ),
    gguf=("hunyuan-dense",),
)
