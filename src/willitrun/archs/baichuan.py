"""Baichuan / Baichuan 2 (BaichuanForCausalLM, remote code: transformers ships no Baichuan): Llama's layer with
one fused, bias-free `W_pack` projection (3 x hidden_size rows) and a bias-free SwiGLU feed-forward, RMSNorms,
an untied head (Baichuan 2's NormHead normalises the same vocab x hidden weight); the 13B models use ALiBi
instead of rotary positions, which holds no parameter (baichuan-inc/Baichuan2-13B-Chat modeling_baichuan.py).
llama.cpp loads both as `baichuan` (src/llama-arch.cpp LLM_ARCH_BAICHUAN; convert_hf_to_gguf.py BaichuanModel
splits W_pack into attn_q / attn_k / attn_v)."""

from __future__ import annotations

from typing import Any, Literal

from ..records import model_validator
from .base import Positions
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class BaichuanConfig(DecoderConfig):
    """BaichuanConfig fields (the Hub's configuration_baichuan.py, never executed). The 13B class names its
    context `model_max_length` (no max_position_embeddings), the 7B class `max_position_embeddings`."""

    model_type: Literal["baichuan"] | None = None
    hidden_act: Literal["silu"] = "silu"
    model_max_length: Positions | None = None

    @model_validator(mode="before")
    @classmethod
    def _context(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_position_embeddings") is None and data.get("model_max_length"):
            return {**data, "max_position_embeddings": data["model_max_length"]}
        return data

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(fused_qkv=True)


class BaichuanSpec(DecoderSpec):
    architecture: Literal["baichuan"]
    config: BaichuanConfig


FAMILY = decoder_family(
    __name__,
    "baichuan",
    BaichuanSpec,
    ConfigClass(
        "BaichuanConfig",
        "baichuan/configuration_baichuan.py",
        BaichuanConfig,
        {
            "vocab_size": 64000,
            "hidden_size": 5120,
            "intermediate_size": 13696,
            "num_hidden_layers": 40,
            "num_attention_heads": 40,
            "max_position_embeddings": None,  # the 7B class's; the 13B's is model_max_length
            "model_max_length": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        remote="https://huggingface.co/baichuan-inc/Baichuan2-13B-Chat/blob/main/configuration_baichuan.py",
    ),
    gguf=("baichuan",),
)
