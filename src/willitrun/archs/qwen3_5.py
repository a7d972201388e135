"""Qwen3.5's language models (Qwen3_5ForCausalLM, Qwen3_5MoeForCausalLM): Qwen3-Next's hybrid of Gated
DeltaNet and gated full attention (archs/qwen3_next.py) with the Gated DeltaNet's input projections split
(in_proj_qkv, in_proj_z, in_proj_b, in_proj_a: the elements of Qwen3-Next's in_proj_qkvz and in_proj_ba)
(transformers models/qwen3_5/modular_qwen3_5.py, models/qwen3_5_moe/modular_qwen3_5_moe.py).

- qwen3_5_text (Qwen3_5TextConfig): a dense SwiGLU of intermediate_size in every layer.
- qwen3_5_moe_text (Qwen3_5MoeTextConfig): Qwen3-Next's sparse block (router, experts of
  moe_intermediate_size, a shared expert and its gate) in every layer: no dense layers, no sparse step.

The checkpoints people download (Qwen/Qwen3.5-*) are the multimodal `qwen3_5` / `qwen3_5_moe`
(Qwen3_5ForConditionalGeneration: a vision tower beside this language model, whose config.json holds it
as `text_config`); this module is the language model alone, the model_type of that text_config.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ..records import model_validator
from .base import Geometry, Heads, Intermediate, ModelSpecBase, Stage, Tensor
from .decoder import LM_WEIGHT_RULES, MTP_IGNORED
from .family import ConfigClass, Family
from .llama import gated_mlp
from .moe import Experts, check_experts
from .qwen3_next import (
    GATED_DELTANET_DEFAULTS,
    GatedDeltaNetConfig,
    hybrid_geometry,
    hybrid_stage,
    lm_tensors,
    moe_block,
    no_cross_source,
    no_image_tokens,
)


class Qwen3_5TextConfig(GatedDeltaNetConfig):
    """Qwen3_5TextConfig fields (transformers models/qwen3_5/configuration_qwen3_5.py)."""

    model_type: Literal["qwen3_5_text"] | None = None
    num_key_value_heads: Heads = 4
    intermediate_size: Intermediate = 12288

    @property
    def ffn_width(self) -> int:
        return self.intermediate_size


class Qwen3_5MoeTextConfig(GatedDeltaNetConfig):
    """Qwen3_5MoeTextConfig fields (transformers models/qwen3_5_moe/configuration_qwen3_5_moe.py)."""

    model_type: Literal["qwen3_5_moe_text"] | None = None
    num_key_value_heads: Heads = 2
    moe_intermediate_size: Intermediate = 512
    shared_expert_intermediate_size: Intermediate = 512
    num_experts_per_tok: Experts = 8
    num_experts: Experts = 256

    @property
    def ffn_width(self) -> int:
        return self.num_experts_per_tok * self.moe_intermediate_size + self.shared_expert_intermediate_size

    @model_validator(mode="after")
    def _check_experts(self) -> Qwen3_5MoeTextConfig:
        check_experts(self.num_experts, self.num_experts_per_tok)
        return self


class Qwen3_5TextSpec(ModelSpecBase):
    architecture: Literal["qwen3_5_text"]
    config: Qwen3_5TextConfig


class Qwen3_5MoeTextSpec(ModelSpecBase):
    architecture: Literal["qwen3_5_moe_text"]
    config: Qwen3_5MoeTextConfig


Spec = Qwen3_5TextSpec | Qwen3_5MoeTextSpec


def text_tensors(c: Qwen3_5TextConfig | Qwen3_5MoeTextConfig) -> Iterator[Tensor]:
    """The language model's tensors (also the multimodal families', archs/qwen3_5_vl.py)."""
    if isinstance(c, Qwen3_5MoeTextConfig):
        moe = c
        return lm_tensors(c, lambda p, i: moe_block(moe, p, i))
    return lm_tensors(c, lambda p, i: gated_mlp(p, "decoder", c.hidden_size, c.intermediate_size, False, i))


def text_geometry(c: Qwen3_5TextConfig | Qwen3_5MoeTextConfig, architecture: str) -> Geometry:
    """The language model's geometry (also the multimodal families', archs/qwen3_5_vl.py)."""
    if isinstance(c, Qwen3_5MoeTextConfig):
        return hybrid_geometry(
            c,
            architecture,
            experts=c.num_experts,
            experts_per_token=c.num_experts_per_tok,
            ffn=("moe_intermediate_size", c.moe_intermediate_size),
            gguf_architecture="qwen35moe",
        )
    return hybrid_geometry(
        c,
        architecture,
        experts=0,
        experts_per_token=0,
        ffn=("intermediate_size", c.intermediate_size),
        gguf_architecture="qwen35",
    )


def _tensors(spec: Spec) -> Iterator[Tensor]:
    return text_tensors(spec.config)


def _geometry(spec: Spec) -> Geometry:
    return text_geometry(spec.config, spec.architecture)


def _stages(spec: Spec, context: int, source: int, images: int) -> list[Stage]:
    return [hybrid_stage(spec.config, context)]


TEXT_CONFIG_CLASS = ConfigClass(
    "Qwen3_5TextConfig",
    "qwen3_5/configuration_qwen3_5.py",
    Qwen3_5TextConfig,
    {
        "vocab_size": 248320,
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 32,
        "num_key_value_heads": 4,
        **GATED_DELTANET_DEFAULTS,
    },
    copied=("layer_types", "full_attention_interval"),
)
MOE_TEXT_CONFIG_CLASS = ConfigClass(
    "Qwen3_5MoeTextConfig",
    "qwen3_5_moe/configuration_qwen3_5_moe.py",
    Qwen3_5MoeTextConfig,
    {
        "vocab_size": 248320,
        "hidden_size": 2048,
        "num_hidden_layers": 40,
        "num_key_value_heads": 2,
        **GATED_DELTANET_DEFAULTS,
        "moe_intermediate_size": 512,
        "shared_expert_intermediate_size": 512,
        "num_experts_per_tok": 8,
        "num_experts": 256,
    },
    copied=("layer_types", "full_attention_interval"),
)


FAMILY = Family(
    __name__,
    {"qwen3_5_text": Qwen3_5TextSpec, "qwen3_5_moe_text": Qwen3_5MoeTextSpec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={"qwen3_5_text": TEXT_CONFIG_CLASS, "qwen3_5_moe_text": MOE_TEXT_CONFIG_CLASS},
    # mtp.* is not built: Qwen3_5ForCausalLM / Qwen3_5MoeForCausalLM _keys_to_ignore_on_load_unexpected [r"^mtp.*", ...]
    weight_rules=dict.fromkeys(("qwen3_5_text", "qwen3_5_moe_text"), (MTP_IGNORED, *LM_WEIGHT_RULES)),
    # llama.cpp src/llama-arch.cpp: LLM_ARCH_QWEN35 "qwen35", LLM_ARCH_QWEN35MOE "qwen35moe"
    gguf_architectures=("qwen35", "qwen35moe"),
)
