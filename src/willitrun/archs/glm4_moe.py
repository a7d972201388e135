"""GLM-4.5 / GLM-4.6 (Glm4MoeForCausalLM): Llama's attention with q/k/v biased when `attention_bias`
(o_proj never), RMSNorms of each head's query and key when `use_qk_norm`, dense MLPs (intermediate_size)
in the first `first_k_dense_replace` layers and after them a routed feed-forward: `n_routed_experts`
experts of `moe_intermediate_size`, top `num_experts_per_tok`, a bias-free router (its
e_score_correction_bias is a buffer, not a parameter) and a shared expert of n_shared_experts x
moe_intermediate_size (transformers models/glm4_moe/modeling_glm4_moe.py: Glm4MoeMoE, Glm4MoeTopkRouter,
Glm4MoeExperts). The multi-token-prediction layers (num_nextn_predict_layers) are not built by transformers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Intermediate, Tensor
from .decoder import NEXTN_WEIGHT_RULES, DecoderSpec, moe_family
from .family import ConfigClass, GGUFRules
from .llama import Anatomy, gated_mlp
from .moe import Experts, MoeConfig


class Glm4MoeConfig(MoeConfig):
    """Glm4MoeConfig fields (transformers models/glm4_moe/configuration_glm4_moe.py)."""

    model_type: Literal["glm4_moe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    use_qk_norm: bool = False
    moe_intermediate_size: Intermediate
    n_routed_experts: Experts
    n_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]
    first_k_dense_replace: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)]
    # Glm4MoeAttention: getattr(config, "head_dim", hidden_size // num_attention_heads), and the class's own
    # defaults (4096 wide, 96 heads) do not divide: transformers builds 42-wide heads
    floor_head_dim: ClassVar[bool] = True

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
        return i >= self.first_k_dense_replace

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        if self.n_shared_experts:
            yield from gated_mlp(f"{prefix}.shexp", "decoder", self.hidden_size, self.shared_width, False, i)

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, qk_norm=self.use_qk_norm)

    @model_validator(mode="after")
    def _check_dense(self) -> Glm4MoeConfig:
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ValueError(
                f"first_k_dense_replace ({self.first_k_dense_replace}) is more than the {self.num_hidden_layers} layers"
            )
        return self


class Glm4MoeSpec(DecoderSpec):
    architecture: Literal["glm4_moe"]
    config: Glm4MoeConfig


FAMILY = moe_family(
    __name__,
    "glm4_moe",
    Glm4MoeSpec,
    ConfigClass(
        "Glm4MoeConfig",
        "glm4_moe/configuration_glm4_moe.py",
        Glm4MoeConfig,
        {
            "vocab_size": 151552,
            "hidden_size": 4096,
            "intermediate_size": 10944,
            "num_hidden_layers": 46,
            "num_attention_heads": 96,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "use_qk_norm": False,
            "moe_intermediate_size": 1408,
            "num_experts_per_tok": 8,
            "n_shared_experts": 1,
            "n_routed_experts": 128,
            "first_k_dense_replace": 1,
        },
        copied=("head_dim",),
    ),
    gguf=("glm4moe",),
    # the nextn layer GLM-4.5 / 4.6 store at index num_hidden_layers is not built: Glm4MoeForCausalLM
    # [r"model\.layers\.92.*", r"model\.layers\.46.*"]
    weight_rules=NEXTN_WEIGHT_RULES,
    # llama.cpp LLM_ARCH_GLM4_MOE: n_layer_kv_from_start = n_layer - nextn_predict_layers (no cache for MTP layers)
    gguf_rules={"glm4moe": GGUFRules(kv_free_tail="nextn_predict_layers", skips_tail=True)},
)  # convert_hf_to_gguf.py: Glm4MoeForCausalLM -> MODEL_ARCH.GLM4_MOE
