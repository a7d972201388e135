"""Granite 3.x (GraniteForCausalLM): Llama's layer; its four multipliers (embedding, attention,
residual, logits scaling) are constants of the forward pass and add no tensors
(transformers models/granite/modeling_granite.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from ..records import Field
from . import llama
from .base import ModelSpecBase
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, DecoderConfig, stages, tensors

ARCHITECTURES = ("granite",)
Multiplier = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


class GraniteConfig(DecoderConfig):
    """GraniteConfig fields (transformers models/granite/configuration_granite.py)."""

    model_type: Literal["granite"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    embedding_multiplier: Multiplier = 1.0
    logits_scaling: Multiplier = 1.0
    residual_multiplier: Multiplier = 1.0
    attention_multiplier: Multiplier = 1.0

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, mlp_bias=self.mlp_bias)


class GraniteSpec(ModelSpecBase):
    architecture: Literal["granite"]
    config: GraniteConfig


SPECS = {"granite": GraniteSpec}
geometry = llama.geometry
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
GRANITE = ConfigClass(
    "GraniteConfig",
    "granite/configuration_granite.py",
    GraniteConfig,
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
        "mlp_bias": False,
        "embedding_multiplier": 1.0,
        "logits_scaling": 1.0,
        "residual_multiplier": 1.0,
        "attention_multiplier": 1.0,
    },
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"granite": GRANITE},
    gguf_architectures=("granite",),
    weight_rules={"granite": LM_WEIGHT_RULES},
    gguf_rules={
        "granite": GGUFRules(
            decoder=GGUFDecoder(
                "granite",
                flags={"attention_bias": "blk.0.attn_q.bias", "mlp_bias": "blk.0.ffn_up.bias"},
                # llama.cpp LLM_KV_EMBEDDING_SCALE, RESIDUAL_SCALE, ATTENTION_SCALE, LOGIT_SCALE
                floats={
                    "embedding_multiplier": "embedding_scale",
                    "residual_multiplier": "residual_scale",
                    "attention_multiplier": "attention.scale",
                    "logits_scaling": "logit_scale",
                },
            )
        )
    },
)
