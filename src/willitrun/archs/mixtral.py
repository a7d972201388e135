"""Mixtral (MixtralForCausalLM): Mistral's attention with a routed feed-forward in every layer:
`num_local_experts` experts of `intermediate_size` (there is no moe_intermediate_size), top
`num_experts_per_tok`, no shared expert, no biases (transformers models/mixtral/modeling_mixtral.py:
MixtralSparseMoeBlock with `gate` (n_expert x hidden) and MixtralExperts' gate_up_proj / down_proj)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from .base import Geometry, ModelSpecBase, Positions, Stage, Tensor
from .family import ConfigClass, Family
from .llama import LM_WEIGHT_RULES, decoder_geometry
from .moe import Experts, MoeConfig, moe_decoder_lm, moe_stage

ARCHITECTURES = ("mixtral",)


class MixtralConfig(MoeConfig):
    """MixtralConfig fields (transformers models/mixtral/configuration_mixtral.py)."""

    model_type: Literal["mixtral"] | None = None
    hidden_act: Literal["silu"] = "silu"
    sliding_window: Positions | None = None  # MixtralConfig default None; v0.1 configs say null
    num_local_experts: Experts = 8

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class MixtralSpec(ModelSpecBase):
    architecture: Literal["mixtral"]
    config: MixtralConfig


SPECS = {"mixtral": MixtralSpec}


def moe_geometry(c: MoeConfig, architecture: str, **extra: object) -> Geometry:
    """A llama-like geometry with the expert counts and the per-token feed-forward width."""
    fields: dict[str, object] = {
        "experts": c.n_experts,
        "experts_per_token": c.num_experts_per_tok,
        "intermediate_size": c.active_ffn_width,
        "tp_constraints": (
            ("attention heads", c.num_attention_heads, False),
            ("KV heads", c.kv_heads, True),
            ("moe_intermediate_size", c.expert_width, False),
        ),
    }
    fields.update(extra)
    return decoder_geometry(c, architecture, **fields)


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    return moe_decoder_lm(spec.config)  # type: ignore[attr-defined]


def geometry(spec: ModelSpecBase) -> Geometry:
    return moe_geometry(spec.config, spec.architecture)  # type: ignore[attr-defined]


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]  # type: ignore[attr-defined]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
MIXTRAL = ConfigClass(
    "MixtralConfig",
    "mixtral/configuration_mixtral.py",
    MixtralConfig,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "max_position_embeddings": 131072,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "sliding_window": None,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"mixtral": MIXTRAL},
    weight_rules={"mixtral": LM_WEIGHT_RULES},
)
