"""StableLM (StableLmForCausalLM: StableLM 2, StableLM 3B 4E1T, Zephyr): LayerNorms with a bias before
attention and MLP (one for both when `use_parallel_residual`), q/k/v biased when `use_qkv_bias` (o_proj
never), with `qk_layernorm` a bias-free LayerNorm per head of the queries and keys (StableLmLayerNormPerHead:
heads x head_dim weights), head_dim always hidden_size // num_attention_heads (transformers
models/stablelm/modeling_stablelm.py)."""

from __future__ import annotations

from typing import Literal

from ..records import model_validator
from .decoder import LM_WEIGHT_RULES, DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class StableLmConfig(DecoderConfig):
    """StableLmConfig fields (transformers models/stablelm/configuration_stablelm.py)."""

    model_type: Literal["stablelm"] | None = None
    hidden_act: Literal["silu"] = "silu"
    use_qkv_bias: bool = False
    qk_layernorm: bool = False
    use_parallel_residual: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(
            qkv_bias=self.use_qkv_bias,
            qk_norm=self.qk_layernorm,
            qk_norm_full=True,
            norm_bias=True,
            parallel_block=self.use_parallel_residual,
        )

    @model_validator(mode="after")
    def _no_head_dim(self) -> StableLmConfig:
        if self.head_dim is not None:  # StableLmAttention: head_dim = hidden_size // num_heads, always
            raise ValueError("head_dim: StableLM has none (hidden_size / num_attention_heads)")
        return self


class StableLmSpec(DecoderSpec):
    architecture: Literal["stablelm"]
    config: StableLmConfig


FAMILY = decoder_family(
    __name__,
    "stablelm",
    StableLmSpec,
    ConfigClass(
        "StableLmConfig",
        "stablelm/configuration_stablelm.py",
        StableLmConfig,
        {
            "vocab_size": 50304,
            "hidden_size": 2560,
            "intermediate_size": 6912,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "use_qkv_bias": False,
            "qk_layernorm": False,
            "use_parallel_residual": False,
        },
    ),
    gguf=("stablelm",),
    weight_rules=(*LM_WEIGHT_RULES, (r"(?:model\.)?norm\.bias", "decoder")),
)  # the final LayerNorm's bias
