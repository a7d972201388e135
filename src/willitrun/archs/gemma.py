"""Gemma (GemmaForCausalLM) and the base of Gemma 2 / Gemma 3: Llama's layer with an explicit
head_dim (256: heads x head_dim need not be hidden_size), a GeGLU MLP, the embedding scaled by
sqrt(hidden_size) at run time (a constant, no tensor) and the LM head tied to it by default
(transformers models/gemma/modeling_gemma.py)."""

from __future__ import annotations

from typing import Literal

from . import llama
from .base import HeadDim, ModelSpecBase
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, DecoderConfig, stages, tensors

ARCHITECTURES = ("gemma",)
GemmaAct = Literal["gelu_pytorch_tanh", "gelu"]


class GemmaConfig(DecoderConfig):
    """GemmaConfig fields (transformers models/gemma/configuration_gemma.py)."""

    model_type: Literal["gemma"] | None = None
    head_dim: HeadDim = 256
    # GemmaConfig reads hidden_act, Gemma2/3 hidden_activation; configs often carry both (shapes do not care)
    hidden_act: GemmaAct | None = None
    hidden_activation: GemmaAct | None = None
    tie_word_embeddings: bool = True
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias)


class GemmaSpec(ModelSpecBase):
    architecture: Literal["gemma"]
    config: GemmaConfig


SPECS = {"gemma": GemmaSpec}
geometry = llama.geometry
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
_GEMMA_ACT = ("hidden_act", "hidden_activation")
GEMMA = ConfigClass(
    "GemmaConfig",
    "gemma/configuration_gemma.py",
    GemmaConfig,
    {
        "vocab_size": 256000,
        "hidden_size": 3072,
        "intermediate_size": 24576,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
        "attention_bias": False,
    },
    copied=_GEMMA_ACT,
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"gemma": GEMMA},
    gguf_architectures=("gemma",),
    weight_rules={"gemma": LM_WEIGHT_RULES},
    gguf_rules={
        "gemma": GGUFRules(
            decoder=GGUFDecoder("gemma", explicit_head_dim=True, flags={"attention_bias": "blk.0.attn_q.bias"})
        )
    },
)
