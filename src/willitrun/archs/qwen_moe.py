"""Qwen2-MoE and Qwen3-MoE (Qwen2MoeForCausalLM, Qwen3MoeForCausalLM): Qwen2's / Qwen3's attention
with a routed feed-forward of `num_experts` experts of `moe_intermediate_size`, top
`num_experts_per_tok`, in layer i when i is not in `mlp_only_layers` and (i + 1) is a multiple of
`decoder_sparse_step` (a dense MLP of `intermediate_size` otherwise: transformers
models/qwen3_moe/modeling_qwen3_moe.py Qwen3MoeDecoderLayer). Qwen2-MoE adds a shared expert of
`shared_expert_intermediate_size` with a one-output sigmoid gate (Qwen2MoeSparseMoeBlock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, field_validator
from .base import Intermediate, LayerIndex, ModelSpecBase, Positions, Stage, Tensor, linear
from .family import ConfigClass, Family, GGUFMoe, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, gated_mlp, layer_window
from .mixtral import cross_source_tokens, image_tokens, moe_geometry
from .moe import Experts, MoeConfig, moe_decoder_lm, moe_stage
from .qwen2 import SlidingLayers

ARCHITECTURES = ("qwen2_moe", "qwen3_moe")


class QwenMoeFields(MoeConfig):
    num_experts: Experts
    moe_intermediate_size: Intermediate
    decoder_sparse_step: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 1
    mlp_only_layers: list[LayerIndex] = Field(default=[], max_length=L.MAX_LAYERS)
    norm_topk_prob: bool = False

    @property
    def n_experts(self) -> int:
        return self.num_experts

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size

    def is_moe(self, i: int) -> bool:
        return i not in self.mlp_only_layers and (i + 1) % self.decoder_sparse_step == 0


class Qwen3MoeConfig(QwenMoeFields):
    """Qwen3MoeConfig fields (transformers models/qwen3_moe/configuration_qwen3_moe.py): every layer
    slides when use_sliding_window (no released config sets it)."""

    model_type: Literal["qwen3_moe"] | None = None
    # Qwen3MoeConfig has no head_dim field: Qwen3MoeAttention reads getattr(config, "head_dim",
    # hidden_size // num_attention_heads), so an absent head_dim is hidden / heads (every released
    # config gives 128 explicitly).
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    use_sliding_window: bool = False
    sliding_window: Positions | None = 4096
    max_window_layers: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)] = 28  # read by no Qwen3-MoE module

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return layer_window(None, i, self.use_sliding_window, self.sliding_window)


class Qwen2MoeConfig(QwenMoeFields, SlidingLayers):
    """Qwen2MoeConfig fields (transformers models/qwen2_moe/configuration_qwen2_moe.py)."""

    model_type: Literal["qwen2_moe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    shared_expert_intermediate_size: Intermediate

    @field_validator("sliding_window", mode="before")
    @classmethod
    def _no_window(cls, value: object) -> object:
        """Qwen2MoeConfig.__post_init__ saves `sliding_window: 0` when use_sliding_window is false (no window)."""
        return None if value == 0 else value

    qkv_bias: bool = True

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.qkv_bias)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        """Qwen2MoeConfig.__post_init__: without layer_types, the odd-numbered layers (i + 1 odd) below
        max_window_layers slide when use_sliding_window."""
        rule = self.use_sliding_window and bool((i + 1) % 2) and i < self.max_window_layers
        return layer_window(self.layer_types, i, rule, self.sliding_window)

    @property
    def shared_width(self) -> int:
        return self.shared_expert_intermediate_size

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        h = self.hidden_size
        yield from gated_mlp(f"{prefix}.shexp", "decoder", h, self.shared_expert_intermediate_size, False, i)
        yield from linear(f"{prefix}.ffn_gate_inp_shexp", "decoder", 1, h, "ffn_gate_inp", False, i)


class Qwen3MoeSpec(ModelSpecBase):
    architecture: Literal["qwen3_moe"]
    config: Qwen3MoeConfig


class Qwen2MoeSpec(ModelSpecBase):
    architecture: Literal["qwen2_moe"]
    config: Qwen2MoeConfig


SPECS = {"qwen3_moe": Qwen3MoeSpec, "qwen2_moe": Qwen2MoeSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    return moe_decoder_lm(spec.config)  # type: ignore[attr-defined]


def geometry(spec: ModelSpecBase):  # type: ignore[no-untyped-def]
    return moe_geometry(
        spec.config,  # type: ignore[attr-defined]
        spec.architecture,  # type: ignore[attr-defined]
        gguf_architecture=spec.architecture.replace("_", ""),  # type: ignore[attr-defined]
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]  # type: ignore[attr-defined]


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
_MOE = {
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 768,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "norm_topk_prob": False,
}
QWEN3_MOE = ConfigClass(
    "Qwen3MoeConfig",
    "qwen3_moe/configuration_qwen3_moe.py",
    Qwen3MoeConfig,
    {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "num_experts": 128,
        **_MOE,
    },
    copied=("head_dim", "max_window_layers"),
    none_is_default=("mlp_only_layers",),
)
QWEN2_MOE = ConfigClass(
    "Qwen2MoeConfig",
    "qwen2_moe/configuration_qwen2_moe.py",
    Qwen2MoeConfig,
    {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
        "num_experts": 60,
        "shared_expert_intermediate_size": 5632,
        "qkv_bias": True,
        **_MOE,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 1408,
    },
    copied=("head_dim", "layer_types"),
    none_is_default=("mlp_only_layers",),
)

FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    gguf_architectures=("qwen2moe", "qwen3moe"),
    config_json={"qwen3_moe": QWEN3_MOE, "qwen2_moe": QWEN2_MOE},
    weight_rules=dict.fromkeys(ARCHITECTURES, LM_WEIGHT_RULES),
    gguf_rules={
        "qwen2moe": GGUFRules(moe=GGUFMoe("qwen2_moe", shared_width=True)),
        "qwen3moe": GGUFRules(
            moe=GGUFMoe("qwen3_moe", explicit_head_dim=True, flags={"attention_bias": "blk.0.attn_q.bias"})
        ),
    },
)
