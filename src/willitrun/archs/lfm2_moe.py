"""LFM2-MoE (Lfm2MoeForCausalLM, Liquid AI: LFM2-8B-A1B): LFM2's hybrid of attention and gated
short-convolution layers (archs/lfm2.py) whose feed-forward is a dense SwiGLU of `intermediate_size` in the
first `num_dense_layers` layers (no LFM2 width adjustment) and after them a routed feed-forward:
`num_experts` experts of `moe_intermediate_size`, top `num_experts_per_tok`, a bias-free router; its
`expert_bias` (use_expert_bias) is a buffer, not a parameter; no shared expert (transformers
models/lfm2_moe/modeling_lfm2_moe.py: Lfm2MoeDecoderLayer, Lfm2MoeMLP, Lfm2MoeSparseMoeBlock,
Lfm2MoeTopKRouter, Lfm2MoeExperts, Lfm2MoeShortConv, Lfm2MoeAttention).

`layer_types` ("full_attention" / "conv") is required: Lfm2MoeConfig does not fill it and
Lfm2MoeDecoderLayer indexes it, so transformers 5.23 cannot build a config without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import Geometry, Intermediate, Stage, Tensor, norm
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .lfm2 import ENGINE_REFUSAL, Lfm2LayerType, mixer_tensors, with_short_conv_caches
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig, expert_tensors, moe_stage


class Lfm2MoeConfig(MoeConfig):
    """Lfm2MoeConfig fields (transformers models/lfm2_moe/configuration_lfm2_moe.py)."""

    model_type: Literal["lfm2_moe"] | None = None
    tie_word_embeddings: bool = True
    tie_embedding: bool | None = None  # read as tie_word_embeddings (Lfm2MoeConfig.__post_init__)
    conv_bias: bool = False
    conv_L_cache: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 3
    moe_intermediate_size: Intermediate
    num_experts: Experts
    num_experts_per_tok: Experts
    num_dense_layers: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)]
    use_expert_bias: bool = True  # a buffer: no parameter
    layer_types: list[Lfm2LayerType] = Field(max_length=L.MAX_LAYERS)

    @property
    def tied(self) -> bool:
        return self.tie_word_embeddings if self.tie_embedding is None else self.tie_embedding

    @property
    def n_experts(self) -> int:
        return self.num_experts

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size

    def is_moe(self, i: int) -> bool:
        return i >= self.num_dense_layers

    def attends(self, i: int) -> bool:
        return self.layer_types[i] != "conv"

    @model_validator(mode="after")
    def _check_layers(self) -> Lfm2MoeConfig:
        llama.check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class Lfm2MoeSpec(DecoderSpec):
    architecture: Literal["lfm2_moe"]
    config: Lfm2MoeConfig


def _tensors(spec: Lfm2MoeSpec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from mixer_tensors(c, p, i)
        if c.is_moe(i):
            yield from expert_tensors(p, comp, i, hidden=h, inter=c.moe_intermediate_size, experts=c.num_experts)
        else:
            yield from llama.gated_mlp(p, comp, h, c.intermediate_size, False, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
    yield from norm("decoder.output_norm", comp, h, None)  # embedding_norm, after the layers
    if not c.tied:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: Lfm2MoeSpec) -> Geometry:
    c = spec.config
    g = moe_geometry(
        c,
        spec.architecture,
        tied_embeddings=c.tied,
        refusals={"llama.cpp": ENGINE_REFUSAL, "ollama": ENGINE_REFUSAL, "vllm": ENGINE_REFUSAL},
    )
    return with_short_conv_caches(g, c)


def _stages(spec: Lfm2MoeSpec, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]


FAMILY = moe_family(
    __name__,
    "lfm2_moe",
    Lfm2MoeSpec,
    ConfigClass(
        "Lfm2MoeConfig",
        "lfm2_moe/configuration_lfm2_moe.py",
        Lfm2MoeConfig,
        {
            "vocab_size": 65536,
            "hidden_size": 2048,
            "intermediate_size": 7168,
            "moe_intermediate_size": 1792,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 128_000,
            "tie_word_embeddings": True,
            "conv_bias": False,
            "conv_L_cache": 3,
            "num_dense_layers": 2,
            "num_experts_per_tok": 4,
            "num_experts": 32,
            "use_expert_bias": True,
        },
        copied=("head_dim", "layer_types", "tie_embedding"),
    ),
    gguf=("lfm2moe",),
    tensors=_tensors,
    geometry=_geometry,
    stages=_stages,
    # Lfm2MoeModel: model.layers.N.{self_attn, conv, feed_forward, operator_norm, ffn_norm}, model.embedding_norm
    weight_rules=(
        (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
        (r"(?:model\.)?(?:layers\.\d+\..+|embedding_norm\.weight)", "decoder"),
        (r"lm_head\.weight", "lm_head"),
    ),
)  # convert_hf_to_gguf.py: LFM2MoeForCausalLM -> MODEL_ARCH.LFM2MOE
