"""DeepSeek-MoE v1 (DeepseekForCausalLM, model_type `deepseek`, remote code: transformers ships DeepSeek V2 and V3
only): Llama's attention (q/k/v/o biased when `attention_bias`), dense SwiGLU MLPs (intermediate_size) in the
first `first_k_dense_replace` layers and in layers off `moe_layer_freq`, elsewhere `n_routed_experts` experts of
`moe_intermediate_size`, top `num_experts_per_tok`, a bias-free router and an always-on shared MLP of
n_shared_experts x moe_intermediate_size (deepseek-ai/deepseek-moe-16b-base modeling_deepseek.py: DeepseekMoE,
MoEGate, DeepseekMLP). llama.cpp loads it as `deepseek` (src/llama-arch.cpp LLM_ARCH_DEEPSEEK: ffn_gate_inp,
ffn_{gate,up,down}_exps, ffn_{gate,up,down}_shexp; leading_dense_block_count dense layers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Intermediate, Tensor
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .llama import Anatomy, gated_mlp
from .moe import Experts, MoeConfig


class DeepseekMoeConfig(MoeConfig):
    """DeepseekConfig fields (the Hub's configuration_deepseek.py, never executed)."""

    model_type: Literal["deepseek"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    moe_intermediate_size: Intermediate
    n_routed_experts: Experts
    n_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]
    first_k_dense_replace: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)]
    moe_layer_freq: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 1

    @property
    def n_experts(self) -> int:
        return self.n_routed_experts

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size

    @property
    def shared_width(self) -> int:
        return self.n_shared_experts * self.moe_intermediate_size

    def is_moe(self, i: int) -> bool:
        # DeepseekDecoderLayer: n_routed_experts is not None and layer_idx >= first_k_dense_replace and
        # layer_idx % moe_layer_freq == 0
        return i >= self.first_k_dense_replace and i % self.moe_layer_freq == 0

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        if self.n_shared_experts:
            yield from gated_mlp(f"{prefix}.shexp", "decoder", self.hidden_size, self.shared_width, False, i)

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b)

    @model_validator(mode="after")
    def _check_dense(self) -> DeepseekMoeConfig:
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ValueError(
                f"first_k_dense_replace ({self.first_k_dense_replace}) is more than the {self.num_hidden_layers} layers"
            )
        return self


class DeepseekMoeSpec(DecoderSpec):
    architecture: Literal["deepseek"]
    config: DeepseekMoeConfig


FAMILY = moe_family(
    __name__,
    "deepseek",
    DeepseekMoeSpec,
    ConfigClass(
        "DeepseekConfig",
        "deepseek/configuration_deepseek.py",
        DeepseekMoeConfig,
        {
            "vocab_size": 102400,
            "hidden_size": 2048,
            "intermediate_size": 10944,
            "moe_intermediate_size": 1408,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "n_shared_experts": 2,
            "n_routed_experts": 64,
            "num_experts_per_tok": 6,
            "moe_layer_freq": 1,
            "first_k_dense_replace": 0,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
        remote="https://huggingface.co/deepseek-ai/deepseek-moe-16b-base/blob/main/configuration_deepseek.py",
    ),
    gguf=("deepseek",),
)
