"""GPTBigCode (GPTBigCodeForCausalLM: StarCoder 1, SantaCoder): GPT-2's layer (archs/gpt2.py: learned
positions, biased LayerNorms, biased fused c_attn and c_proj, plain biased MLP, tied LM head) with
multi-query attention when `multi_query` (the default): c_attn projects to n_embd + 2 x head_dim and every
layer caches one key and one value head (transformers models/gpt_bigcode/modeling_gpt_bigcode.py:
GPTBigCodeAttention.kv_heads = 1 if multi_query else num_heads). `add_cross_attention` is refused."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .gpt2 import WEIGHT_RULES, Gpt2LikeConfig, learned_position_geometry, learned_position_tensors


class GptBigCodeConfig(Gpt2LikeConfig):
    """GPTBigCodeConfig fields (transformers models/gpt_bigcode/configuration_gpt_bigcode.py)."""

    model_type: Literal["gpt_bigcode"] | None = None
    multi_query: bool = True

    @property
    def kv_heads(self) -> int:
        return 1 if self.multi_query else self.num_attention_heads


class GptBigCodeSpec(DecoderSpec):
    architecture: Literal["gpt_bigcode"]
    config: GptBigCodeConfig


FAMILY = decoder_family(
    __name__,
    "gpt_bigcode",
    GptBigCodeSpec,
    ConfigClass(
        "GPTBigCodeConfig",
        "gpt_bigcode/configuration_gpt_bigcode.py",
        GptBigCodeConfig,
        {
            "vocab_size": 50257,
            "n_positions": 1024,
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "n_inner": None,
            "tie_word_embeddings": True,
            "add_cross_attention": False,
            "multi_query": True,
        },
    ),
    gguf=("starcoder",),
    tensors=learned_position_tensors,
    geometry=learned_position_geometry,
    weight_rules=WEIGHT_RULES,
)  # convert_hf_to_gguf.py: GPTBigCodeForCausalLM -> MODEL_ARCH.STARCODER ("starcoder")
