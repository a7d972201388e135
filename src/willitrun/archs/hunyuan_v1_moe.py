"""Hunyuan MoE (HunYuanMoEV1ForCausalLM: Hunyuan-A13B): HunYuan dense's attention (RMSNorms of each head's
query and key, q/k/v/o biased when `attention_bias`) and in every layer a routed feed-forward of
`num_experts` experts of `intermediate_size`, top `moe_topk`, plus an always-on shared MLP of
intermediate_size; the router `gate.wg` is an nn.Linear created with dtype=torch.float32, so the model
holds it in float32 whatever dtype it is built in (transformers models/hunyuan_v1_moe/modeling_hunyuan_v1_moe.py:
HunYuanMoEV1Gate, HunYuanMoEV1Experts, HunYuanMoEV1Moe.shared_mlp, HunYuanMoEV1DecoderLayer).
Per-layer lists of num_experts / moe_topk (which the config class allows) are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from ..records import model_validator
from .base import Geometry, HeadDim, Tensor
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .llama import Anatomy, gated_mlp
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig


class HunYuanMoEV1Config(MoeConfig):
    """HunYuanMoEV1Config fields (transformers models/hunyuan_v1_moe/configuration_hunyuan_v1_moe.py).

    config.json names the routed experts per token `moe_topk` (attribute_map: num_experts_per_tok)."""

    model_type: Literal["hunyuan_v1_moe"] | None = None
    # required: HunYuanMoEV1Config defaults it to None and HunYuanMoEV1Attention then fails on
    # head_dim ** -0.5 (transformers 5.23 cannot build such a config), as HunYuan dense
    head_dim: HeadDim
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    num_experts: Experts
    moe_topk: Experts | None = None  # config.json's name; num_experts_per_tok follows it
    num_experts_per_tok: Experts

    @model_validator(mode="before")
    @classmethod
    def _moe_topk(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("moe_topk") is not None:
            data = dict(data)
            k = data["moe_topk"]
            if data.setdefault("num_experts_per_tok", k) != k:
                raise ValueError(f"moe_topk ({k}) and num_experts_per_tok ({data['num_experts_per_tok']}) differ")
        return data

    @property
    def n_experts(self) -> int:
        return self.num_experts

    @property
    def shared_width(self) -> int:
        return self.intermediate_size

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        yield from gated_mlp(f"{prefix}.shexp", "decoder", self.hidden_size, self.intermediate_size, False, i)

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True)


class HunYuanMoEV1Spec(DecoderSpec):
    architecture: Literal["hunyuan_v1_moe"]
    config: HunYuanMoEV1Config


def geometry(spec: HunYuanMoEV1Spec) -> Geometry:
    # not a _keep_in_fp32_modules entry: nn.Linear(..., dtype=torch.float32) in HunYuanMoEV1Gate, which a bf16 or
    # fp16 model built by transformers 5.23 still holds in float32 (tests/importers/test_declared_families.py)
    return moe_geometry(
        spec.config,
        spec.architecture,
        keep_in_fp32_modules=("gate.wg",),
        keep_in_fp32_roles=frozenset({"ffn_gate_inp"}),
        keep_in_fp32_strict=True,
    )


FAMILY = moe_family(
    __name__,
    "hunyuan_v1_moe",
    HunYuanMoEV1Spec,
    ConfigClass(
        "HunYuanMoEV1Config",
        "hunyuan_v1_moe/configuration_hunyuan_v1_moe.py",
        HunYuanMoEV1Config,
        {
            "vocab_size": 290943,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "head_dim": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "num_experts": 1,
            "moe_topk": 1,
        },
    ),
    gguf=("hunyuan-moe",),
    geometry=geometry,
)  # convert_hf_to_gguf.py: HunYuanMoEV1ForCausalLM -> MODEL_ARCH.HUNYUAN_MOE
