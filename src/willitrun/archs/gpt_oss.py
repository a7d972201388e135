"""gpt-oss (GptOssForCausalLM): attention with biases on q/k/v/o and one learned "sink" logit per
head, on layers alternating sliding (window 128) and full attention from layer 0 (`layer_types`);
every layer a routed feed-forward of `num_local_experts` experts of `intermediate_size`, top
`num_experts_per_tok`, with a biased router and biased experts (transformers
models/gpt_oss/modeling_gpt_oss.py: GptOssAttention.sinks, GptOssTopKRouter, GptOssExperts).

The published checkpoints store the experts in MXFP4 (quantization_config quant_method mxfp4;
modules_to_not_convert keeps attention, router, embeddings and LM head in bf16) and name no dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, ModelSpecBase, Positions, Stage, Tensor, norm
from .family import ConfigClass, Family, GGUFRules, swa_period
from .llama import LM_WEIGHT_RULES, LayerType, attention_tensors, check_layer_types, layer_window
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig, expert_tensors, moe_stage

ARCHITECTURES = ("gpt_oss",)


class GptOssConfig(MoeConfig):
    """GptOssConfig fields (transformers models/gpt_oss/configuration_gpt_oss.py)."""

    model_type: Literal["gpt_oss"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = True
    num_local_experts: Experts = 128
    sliding_window: Positions = 128
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        """GptOssConfig.__post_init__: without layer_types, even layers slide and odd layers are full."""
        return layer_window(self.layer_types, i, i % 2 == 0, self.sliding_window)

    @model_validator(mode="after")
    def _check_layers(self) -> GptOssConfig:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class GptOssSpec(ModelSpecBase):
    architecture: Literal["gpt_oss"]
    config: GptOssConfig


SPECS = {"gpt_oss": GptOssSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: GptOssConfig = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield Tensor(f"{p}.attn_sinks.weight", "decoder", (c.num_attention_heads,), "other", i)
        yield from attention_tensors(
            p,
            "decoder",
            i,
            hidden=h,
            heads=c.num_attention_heads,
            kv_heads=c.kv_heads,
            head_dim=c.head_size,
            bias=c.attention_bias,
        )
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        yield from expert_tensors(
            p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts, router_bias=True, bias=True
        )
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    # llama.cpp runs gpt-oss with per-layer SWA caches (llama_kv_cache_iswa), architecture "gpt-oss"
    g = moe_geometry(
        spec.config,  # type: ignore[attr-defined]
        spec.architecture,  # type: ignore[attr-defined]
        llamacpp_swa=True,
        gguf_architecture="gpt-oss",
    )
    # GptOssPreTrainedModel._keep_in_fp32_modules = ["post_attention_layernorm", "input_layernorm", "norm"]
    # (transformers 5.23 models/gpt_oss/modeling_gpt_oss.py): every RMSNorm weight, the final one too,
    # stays float32 in a float16 load (measured: tests/reference keep_in_fp32, 141,120 parameters for 20b).
    return replace(
        g,
        keep_in_fp32_modules=("post_attention_layernorm", "input_layernorm", "norm"),
        keep_in_fp32_roles=frozenset({"norm"}),
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]  # type: ignore[attr-defined]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
GPT_OSS = ConfigClass(
    "GptOssConfig",
    "gpt_oss/configuration_gpt_oss.py",
    GptOssConfig,
    {
        "vocab_size": 201088,
        "hidden_size": 2880,
        "intermediate_size": 2880,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "num_local_experts": 128,
        "num_experts_per_tok": 4,
        "sliding_window": 128,
        "max_position_embeddings": 131072,
        "attention_bias": True,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
    },
    copied=("layer_types",),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    # llama.cpp LLM_ARCH_OPENAI_MOE ("gpt-oss"): set_swa_pattern(2), n_swa from the file
    gguf_architectures=("gpt-oss",),
    gguf_rules={"gpt-oss": GGUFRules(swa=swa_period(2))},
    config_json={"gpt_oss": GPT_OSS},
    weight_rules={"gpt_oss": LM_WEIGHT_RULES},
)
