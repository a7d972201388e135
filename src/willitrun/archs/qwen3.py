"""Qwen3 (Qwen3ForCausalLM): Llama's layer with an explicit head_dim (128 by default, which need
not be hidden_size / heads), RMSNorms of each head's query and key (q_norm, k_norm over head_dim),
and attention biases only when `attention_bias` (transformers models/qwen3/modeling_qwen3.py)."""

from __future__ import annotations

from typing import Literal

from . import llama
from .base import HeadDim, ModelSpecBase
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, stages, tensors
from .qwen2 import _QWEN_WINDOWS, SlidingLayers

ARCHITECTURES = ("qwen3",)


class Qwen3Config(SlidingLayers):
    """Qwen3Config fields (transformers models/qwen3/configuration_qwen3.py)."""

    model_type: Literal["qwen3"] | None = None
    head_dim: HeadDim = 128  # Qwen3Config default; explicit in every released config
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True)


class Qwen3Spec(ModelSpecBase):
    architecture: Literal["qwen3"]
    config: Qwen3Config


SPECS = {"qwen3": Qwen3Spec}
geometry = llama.geometry
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
QWEN3 = ConfigClass(
    "Qwen3Config",
    "qwen3/configuration_qwen3.py",
    Qwen3Config,
    {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 128,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        **_QWEN_WINDOWS,
    },
    copied=("layer_types",),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"qwen3": QWEN3},
    gguf_architectures=("qwen3",),
    weight_rules={"qwen3": LM_WEIGHT_RULES},
    gguf_rules={
        "qwen3": GGUFRules(
            decoder=GGUFDecoder("qwen3", explicit_head_dim=True, flags={"attention_bias": "blk.0.attn_q.bias"})
        )
    },
)
