"""Phi-1 / Phi-1.5 / Phi-2 (PhiForCausalLM): one LayerNorm with a bias before attention and MLP, which run
in parallel; q/k/v and the output projection (dense) biased; a plain MLP (fc1, fc2) with biases; with
`qk_layernorm`, LayerNorms (weight and bias) over head_dim of the queries and keys; final_layernorm, and
an LM head with a bias (transformers models/phi/modeling_phi.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import LM_WEIGHT_RULES, DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class PhiConfig(DecoderConfig):
    """PhiConfig fields (transformers models/phi/configuration_phi.py)."""

    model_type: Literal["phi"] | None = None
    hidden_act: Literal["gelu_new", "gelu", "gelu_pytorch_tanh"] = "gelu_new"
    qk_layernorm: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(
            qkv_bias=True,
            o_bias=True,
            qk_norm=self.qk_layernorm,
            qk_norm_bias=True,
            norm_bias=True,
            gated=False,
            mlp_bias=True,
            parallel_block=True,
            lm_head_bias=True,
        )


class PhiSpec(DecoderSpec):
    architecture: Literal["phi"]
    config: PhiConfig


FAMILY = decoder_family(
    __name__,
    "phi",
    PhiSpec,
    ConfigClass(
        "PhiConfig",
        "phi/configuration_phi.py",
        PhiConfig,
        {
            "vocab_size": 51200,
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 24,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "gelu_new",
            "tie_word_embeddings": False,
            "qk_layernorm": False,
        },
        copied=("head_dim",),
    ),
    gguf=("phi2",),  # convert_hf_to_gguf.py: PhiForCausalLM -> MODEL_ARCH.PHI2
    # PhiModel names its final norm final_layernorm, and the LM head has a bias
    weight_rules=(
        *LM_WEIGHT_RULES,
        (r"(?:model\.)?final_layernorm\.(?:weight|bias)", "decoder"),
        (r"lm_head\.bias", "lm_head"),
    ),
)
