"""DeepSeek-V2 / V3 (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM; R1 is V3's shape): multi-head
latent attention and a routed feed-forward with shared experts after `first_k_dense_replace`
dense layers (transformers models/deepseek_v3/modeling_deepseek_v3.py).

Attention (DeepseekV3Attention): queries through q_a_proj (hidden -> q_lora_rank), an RMSNorm and
q_b_proj (-> heads x (qk_nope + qk_rope)), or one q_proj when q_lora_rank is null (V2-Lite);
keys and values through one kv_a_proj_with_mqa (hidden -> kv_lora_rank + qk_rope), an RMSNorm of
the latent, and kv_b_proj (kv_lora_rank -> heads x (qk_nope + v_head_dim)); o_proj from
heads x v_head_dim.

The cache: transformers 5.23 calls `past_key_values.update(kv_nope, k_rot)` on the *compressed*
latent (kv_lora_rank) and the shared rope key (qk_rope_head_dim), one "head" each, before
`expand_kv` decompresses them per step; so does vLLM's MLA backend (one 576-element entry) and
llama.cpp (K = kv_lora_rank + rope, V = kv_lora_rank per token, head_count_kv 1). transformers 4.x
cached the decompressed heads: heads x (qk_nope + qk_rope) keys and heads x v_head_dim values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import (
    Geometry,
    HeadDim,
    Intermediate,
    LayerKV,
    ModelSpecBase,
    Stage,
    Tensor,
    linear,
    norm,
)
from .decoder import NEXTN_WEIGHT_RULES
from .family import ConfigClass, ConfigReading, Family
from .llama import decoder_geometry, gated_mlp
from .moe import Experts, MoeConfig, expert_tensors

ARCHITECTURES = ("deepseek_v2", "deepseek_v3", "glm4_moe_lite")
Rank = Annotated[int, Field(gt=0, le=L.MAX_STATE)]


class DeepseekConfig(MoeConfig):
    """DeepseekV2Config / DeepseekV3Config fields (transformers models/deepseek_v3/configuration_deepseek_v3.py)."""

    model_type: Literal["deepseek_v2", "deepseek_v3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    moe_intermediate_size: Intermediate
    n_routed_experts: Experts
    n_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]
    first_k_dense_replace: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)]
    kv_lora_rank: Rank = 512
    q_lora_rank: Rank | None  # no default: V2Config fills 1536 when absent, V2-Lite's config says null
    qk_rope_head_dim: HeadDim = 64
    qk_nope_head_dim: HeadDim = 128
    v_head_dim: HeadDim = 128

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

    @model_validator(mode="after")
    def _check_dense(self) -> DeepseekConfig:
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ValueError(
                f"first_k_dense_replace ({self.first_k_dense_replace}) is more than the {self.num_hidden_layers} layers"
            )
        return self


class DeepseekSpec(ModelSpecBase):
    architecture: Literal["deepseek_v2", "deepseek_v3"]
    config: DeepseekConfig


class Glm4MoeLiteConfig(DeepseekConfig):
    """Glm4MoeLiteConfig fields (GLM-4.7-Flash; transformers models/glm4_moe_lite/configuration_glm4_moe_lite.py):
    DeepSeek-V3's layer (latent attention, routed and shared experts), but which layers are dense is
    `mlp_layer_types` (default: the first one), never `first_k_dense_replace`, which the class does not read
    (modeling_glm4_moe_lite.py: `Glm4MoeLiteMoE(config) if config.mlp_layer_types[layer_idx] == "sparse"`). The
    attention's widths are the latent dimensions, so hidden_size need not be a multiple of the heads (2048 / 20)."""

    model_type: Literal["glm4_moe_lite"] | None = None  # type: ignore[assignment]
    first_k_dense_replace: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)] = 0  # not read by the class
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = Field(default=None, max_length=L.MAX_LAYERS)
    floor_head_dim: ClassVar[bool] = True

    def is_moe(self, i: int) -> bool:
        if self.mlp_layer_types is not None:
            return self.mlp_layer_types[i] == "sparse"
        return i >= 1  # Glm4MoeLiteConfig.__post_init__: ["dense"] + ["sparse"] * (num_hidden_layers - 1)

    @model_validator(mode="after")
    def _check_types(self) -> Glm4MoeLiteConfig:
        if self.mlp_layer_types is not None and len(self.mlp_layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"mlp_layer_types has {len(self.mlp_layer_types)} entries for {self.num_hidden_layers} layers"
            )
        return self


class Glm4MoeLiteSpec(DeepseekSpec):
    architecture: Literal["glm4_moe_lite"]  # type: ignore[assignment]
    config: Glm4MoeLiteConfig


SPECS: dict[str, type[ModelSpecBase]] = {
    "deepseek_v2": DeepseekSpec,
    "deepseek_v3": DeepseekSpec,
    "glm4_moe_lite": Glm4MoeLiteSpec,
}


def mla_tensors(p: str, i: int, c: DeepseekConfig) -> Iterator[Tensor]:
    h, heads = c.hidden_size, c.num_attention_heads
    qk = c.qk_nope_head_dim + c.qk_rope_head_dim
    if c.q_lora_rank is None:
        yield from linear(f"{p}.attn_q", "decoder", heads * qk, h, "attn_q", False, i)
    else:
        yield from linear(f"{p}.attn_q_a", "decoder", c.q_lora_rank, h, "attn_q_a", c.attention_bias, i)
        yield from norm(f"{p}.attn_q_a_norm", "decoder", c.q_lora_rank, i)
        yield from linear(f"{p}.attn_q_b", "decoder", heads * qk, c.q_lora_rank, "attn_q_b", False, i)
    yield from linear(
        f"{p}.attn_kv_a_mqa", "decoder", c.kv_lora_rank + c.qk_rope_head_dim, h, "attn_kv_a_mqa", c.attention_bias, i
    )
    yield from norm(f"{p}.attn_kv_a_norm", "decoder", c.kv_lora_rank, i)
    yield from linear(
        f"{p}.attn_kv_b", "decoder", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, "attn_kv_b", False, i
    )
    yield from linear(f"{p}.attn_output", "decoder", h, heads * c.v_head_dim, "attn_output", c.attention_bias, i)


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: DeepseekConfig = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from mla_tensors(p, i, c)
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
            if c.n_shared_experts:
                yield from gated_mlp(f"{p}.shexp", "decoder", h, c.shared_width, False, i)
        else:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size, False, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: DeepseekConfig = spec.config  # type: ignore[attr-defined]
    heads = c.num_attention_heads
    latent = LayerKV("full", 1, c.kv_lora_rank, c.qk_rope_head_dim)
    return decoder_geometry(
        c,
        spec.architecture,  # type: ignore[attr-defined]
        self_kv=(latent,) * c.num_hidden_layers,
        experts=c.n_experts,
        experts_per_token=c.num_experts_per_tok,
        intermediate_size=max(c.active_ffn_width, c.intermediate_size),
        tp_constraints=(("attention heads", heads, False), ("moe_intermediate_size", c.expert_width, False)),
        tp_kv_heads=1,
        gguf_n_gqa=1,
        gguf_70b=False,
        gguf_architecture="deepseek2",
        mla=(c.kv_lora_rank, c.qk_rope_head_dim, heads, c.qk_nope_head_dim + c.qk_rope_head_dim, c.v_head_dim),
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    """Per step the latent is decompressed to every head's K (qk_nope + qk_rope) and V (v_head_dim)."""
    c: DeepseekConfig = spec.config  # type: ignore[attr-defined]
    heads = c.num_attention_heads
    qk = c.qk_nope_head_dim + c.qk_rope_head_dim
    return [
        Stage(
            context,
            c.hidden_size,
            heads * qk,
            heads * (qk + c.v_head_dim) // 2,
            max(c.active_ffn_width, c.intermediate_size),
            True,
            heads,
            context,
        )
    ]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
_MLA = {
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "qk_nope_head_dim": 128,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
}
DEEPSEEK_V2 = ConfigClass(
    "DeepseekV2Config",
    "deepseek_v2/configuration_deepseek_v2.py",
    DeepseekConfig,
    {
        "vocab_size": 102400,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "moe_intermediate_size": 1407,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "n_shared_experts": 2,
        "n_routed_experts": 64,
        "first_k_dense_replace": 0,
        "max_position_embeddings": 2048,
        **_MLA,
    },
    copied=("num_experts_per_tok",),
)  # num_experts_per_tok: DeepseekV2Config's is None (no default a model could use)
DEEPSEEK_V3 = ConfigClass(
    "DeepseekV3Config",
    "deepseek_v3/configuration_deepseek_v3.py",
    DeepseekConfig,
    {
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "n_shared_experts": 1,
        "n_routed_experts": 256,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "max_position_embeddings": 4096,
        **_MLA,
    },
)

# session 6 (sample): GLM-4.7-Flash, transformers 5.23's Glm4MoeLiteConfig defaults
GLM4_MOE_LITE = ConfigClass(
    "Glm4MoeLiteConfig",
    "glm4_moe_lite/configuration_glm4_moe_lite.py",
    Glm4MoeLiteConfig,
    {
        "vocab_size": 154880,
        "hidden_size": 2048,
        "intermediate_size": 10240,
        "moe_intermediate_size": 1536,
        "num_hidden_layers": 47,
        "num_attention_heads": 20,
        "num_key_value_heads": 20,
        "n_shared_experts": 1,
        "n_routed_experts": 64,
        "num_experts_per_tok": 4,
        "max_position_embeddings": 202752,
        "kv_lora_rank": 512,
        "q_lora_rank": 768,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 192,
        "v_head_dim": 256,
        "attention_bias": False,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
    },
    copied=("mlp_layer_types",),
)


def read_deepseek_v2(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """DeepseekV2Config's num_experts_per_tok default is None: the model builds, but its router's topk needs a
    k. Both releases route 6 experts per token (deepseek-ai/DeepSeek-V2 and DeepSeek-V2-Lite config.json)."""
    if "num_experts_per_tok" in cfg and cfg["num_experts_per_tok"] is None:
        cfg = {**cfg, "num_experts_per_tok": 6}
        reading.notes.append(
            "Warning: num_experts_per_tok is null, which DeepseekV2's router cannot use: 6 assumed "
            "(DeepSeek-V2 and V2-Lite)."
        )
    return reading.block(cfg, DEEPSEEK_V2, "config")


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    # DeepSeek-V3 / R1 store their multi-token-prediction module as model.layers.61.* (num_hidden_layers 61), which
    # DeepseekV3ForCausalLM never builds (_keys_to_ignore_on_load_unexpected = [r"model\.layers\.61.*"])
    weight_rules=dict.fromkeys(ARCHITECTURES, NEXTN_WEIGHT_RULES),
    gguf_architectures=("deepseek2",),
    config_json={"deepseek_v2": DEEPSEEK_V2, "deepseek_v3": DEEPSEEK_V3, "glm4_moe_lite": GLM4_MOE_LITE},
    read_config={"deepseek_v2": read_deepseek_v2},
)
