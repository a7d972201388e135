"""MiniCPM 1/2/4 (MiniCPMForCausalLM, remote code: transformers ships no MiniCPM): Llama's layer (q/k/v/o biased
when `attention_bias`), with scale_emb / dim_model_base / scale_depth multipliers that hold no parameter
(openbmb/MiniCPM-2B-sft-bf16 modeling_minicpm.py). llama.cpp loads it as `minicpm` (src/llama-arch.cpp
LLM_ARCH_MINICPM) and MiniCPM3's latent attention as `minicpm3` (LLM_ARCH_MINICPM3), read from its GGUF's
metadata: its graph (src/models/minicpm3.cpp) expands the kv_lora_rank latent and caches every head's keys
(qk_nope + qk_rope) and values, so the family declares that (GGUFRules latent_cache=False)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, GGUFRules
from .llama import Anatomy, DecoderConfig


class MiniCPMConfig(DecoderConfig):
    """MiniCPMConfig fields (the Hub's configuration_minicpm.py, never executed)."""

    model_type: Literal["minicpm"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b)


class MiniCPMSpec(DecoderSpec):
    architecture: Literal["minicpm"]
    config: MiniCPMConfig


FAMILY = decoder_family(
    __name__,
    "minicpm",
    MiniCPMSpec,
    ConfigClass(
        "MiniCPMConfig",
        "minicpm/configuration_minicpm.py",
        MiniCPMConfig,
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
        },
        remote="https://huggingface.co/openbmb/MiniCPM-2B-sft-bf16/blob/main/configuration_minicpm.py",
    ),
    gguf=("minicpm", "minicpm3"),
    gguf_rules={"minicpm3": GGUFRules(latent_cache=False)},
)
