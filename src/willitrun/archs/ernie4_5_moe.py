"""ERNIE 4.5 MoE (Ernie4_5_MoeForCausalLM: ERNIE-4.5-21B-A3B, 300B-A47B): ERNIE 4.5's attention (q/k/v/o
biased when `use_bias`, head_dim = hidden_size // num_attention_heads unless config.json gives one), dense
MLPs (intermediate_size, biased when `use_bias`) outside the sparse layers, and in layer i a routed
feed-forward when (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i <= moe_layer_end_index
(-1: the last layer): `moe_num_experts` bias-free experts of `moe_intermediate_size`, top `moe_k`, a router
weight and its 1 x experts `e_score_correction_bias` (moe_statics, a parameter), and a shared expert of
moe_num_shared_experts x moe_intermediate_size (biased when `use_bias`); the LM head is biased when
`use_bias` (transformers models/ernie4_5_moe/modeling_ernie4_5_moe.py: Ernie4_5_MoeDecoderLayer,
Ernie4_5_MoeSparseMoeBlock, Ernie4_5_MoeTopKRouter, Ernie4_5_MoeStatics, Ernie4_5_MoeForCausalLM).

The router and its statics are `_keep_in_fp32_modules_strict = ["gate.weight", "moe_statics"]`, created as
float32 parameters: they stay float32 under float16 and bfloat16 loads (modeling_utils.py _get_dtype_plan)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, Intermediate, Tensor
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, gated_mlp
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig

LayerIndex = Annotated[int, Field(ge=-1, le=L.MAX_LAYERS)]


class Ernie4_5_MoeConfig(MoeConfig):
    """Ernie4_5_MoeConfig fields (transformers models/ernie4_5_moe/configuration_ernie4_5_moe.py).

    config.json names the routed experts per token `moe_k` (attribute_map: num_experts_per_tok)."""

    model_type: Literal["ernie4_5_moe"] | None = None
    hidden_act: Literal["silu"] = "silu"
    tie_word_embeddings: bool = True
    use_bias: bool = False
    moe_intermediate_size: Intermediate
    moe_num_experts: Experts
    moe_k: Experts | None = None  # config.json's name; num_experts_per_tok follows it
    num_experts_per_tok: Experts
    moe_num_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]
    moe_layer_start_index: LayerIndex = 1
    moe_layer_end_index: LayerIndex = -1
    moe_layer_interval: Annotated[int, Field(ge=1, le=L.MAX_LAYERS)] = 1

    @model_validator(mode="before")
    @classmethod
    def _moe_k(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("moe_k") is not None:
            data = dict(data)
            k = data["moe_k"]
            if data.setdefault("num_experts_per_tok", k) != k:
                raise ValueError(f"moe_k ({k}) and num_experts_per_tok ({data['num_experts_per_tok']}) differ")
        return data

    @property
    def n_experts(self) -> int:
        return self.moe_num_experts

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size

    @property
    def shared_width(self) -> int:
        return self.moe_num_shared_experts * self.moe_intermediate_size

    def is_moe(self, i: int) -> bool:
        end = self.num_hidden_layers - 1 if self.moe_layer_end_index == -1 else self.moe_layer_end_index
        return (i + 1) % self.moe_layer_interval == 0 and self.moe_layer_start_index <= i <= end

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        # moe_statics.e_score_correction_bias: (1, experts), float32 like the router ("other": nothing else
        # in this model has that role, so the fp32 rule names only it and the router)
        yield Tensor(f"{prefix}.exp_probs_b", "decoder", (1, self.moe_num_experts), "other", i)
        if self.moe_num_shared_experts:
            yield from gated_mlp(f"{prefix}.shexp", "decoder", self.hidden_size, self.shared_width, self.use_bias, i)

    @property
    def anatomy(self) -> Anatomy:
        b = self.use_bias
        return Anatomy(qkv_bias=b, o_bias=b, mlp_bias=b, lm_head_bias=b)


class Ernie4_5_MoeSpec(DecoderSpec):
    architecture: Literal["ernie4_5_moe"]
    config: Ernie4_5_MoeConfig


def geometry(spec: Ernie4_5_MoeSpec) -> Geometry:
    return moe_geometry(
        spec.config,
        spec.architecture,
        keep_in_fp32_modules=("gate.weight", "moe_statics"),
        keep_in_fp32_roles=frozenset({"ffn_gate_inp", "other"}),
        keep_in_fp32_strict=True,
    )


# Llama's names plus the LM head's bias (use_bias)
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"lm_head\.(?:weight|bias)", "lm_head"),
)


FAMILY = moe_family(
    __name__,
    "ernie4_5_moe",
    Ernie4_5_MoeSpec,
    ConfigClass(
        "Ernie4_5_MoeConfig",
        "ernie4_5_moe/configuration_ernie4_5_moe.py",
        Ernie4_5_MoeConfig,
        {
            "vocab_size": 103424,
            "hidden_size": 2560,
            "intermediate_size": 12288,
            "num_hidden_layers": 28,
            "num_attention_heads": 20,
            "num_key_value_heads": 4,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": True,
            "use_bias": False,
            "moe_intermediate_size": 1536,
            "moe_k": 6,
            "moe_num_experts": 64,
            "moe_num_shared_experts": 2,
            "moe_layer_start_index": 1,
            "moe_layer_interval": 1,
        },
        # moe_layer_end_index: -1 (the last layer), which __post_init__ turns into num_hidden_layers - 1
        copied=("head_dim", "moe_layer_end_index"),
    ),
    gguf=("ernie4_5-moe",),
    geometry=geometry,
    weight_rules=WEIGHT_RULES,
)  # convert_hf_to_gguf.py: Ernie4_5_MoeForCausalLM -> MODEL_ARCH.ERNIE4_5_MOE
