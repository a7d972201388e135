"""DBRX (DbrxForCausalLM: dbrx-base, dbrx-instruct): a fused bias-free Wqkv (hidden + 2 x kv_n_heads x
head_dim, head_dim = d_model / n_heads) and out_proj, LayerNorms without a bias (norm_1, norm_2, norm_f),
and a routed feed-forward in every layer: `moe_num_experts` GLU experts of `ffn_hidden_size` (w1, v1 and
w2, each experts x ffn_hidden_size rows of d_model), top `moe_top_k`, a bias-free router; the LM head is
never tied (DbrxConfig.validate_architecture refuses tie_word_embeddings) (transformers
models/dbrx/modeling_dbrx.py: DbrxAttention, DbrxExpertGLU, DbrxRouter, DbrxNormAttentionNorm, DbrxModel).

config.json names the widths d_model, n_heads, n_layers and max_seq_len (DbrxConfig.attribute_map) and keeps
the attention and feed-forward fields in `attn_config` (kv_n_heads, clip_qkv) and `ffn_config`
(ffn_hidden_size, moe_num_experts, moe_top_k); the spec reads them as the generic decoder's fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from ..records import model_validator
from .base import Heads, Hidden, Layers, Positions, Tensor, linear, norm
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy
from .moe import Experts, MoeConfig, expert_tensors

# DbrxConfig.attribute_map: config.json's name -> the generic decoder's field
RENAMED = {
    "d_model": "hidden_size",
    "n_heads": "num_attention_heads",
    "n_layers": "num_hidden_layers",
    "max_seq_len": "max_position_embeddings",
}
# DbrxAttentionConfig / DbrxFFNConfig defaults (configuration_dbrx.py): what an absent key in attn_config or
# ffn_config means
ATTN_DEFAULTS = {"kv_n_heads": 1}
FFN_DEFAULTS = {"ffn_hidden_size": 3584, "moe_num_experts": 4, "moe_top_k": 1}


class DbrxConfig(MoeConfig):
    """DbrxConfig fields (transformers models/dbrx/configuration_dbrx.py)."""

    model_type: Literal["dbrx"] | None = None
    d_model: Hidden | None = None
    n_heads: Heads | None = None
    n_layers: Layers | None = None
    max_seq_len: Positions | None = None
    # kept as config.json has them; the spec reads kv_n_heads, ffn_hidden_size, moe_num_experts and moe_top_k
    # (the rest: dropout, clipping, rope_theta, activation, loss weights, their model_type "")
    attn_config: dict[str, Any] | None = None
    ffn_config: dict[str, Any] | None = None
    moe_num_experts: Experts

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, field in RENAMED.items():
            if data.get(name) is not None:
                data[field] = data[name]
        for key, defaults in (("attn_config", ATTN_DEFAULTS), ("ffn_config", FFN_DEFAULTS)):
            sub = data.get(key)
            if sub is not None and not isinstance(sub, dict):
                raise ValueError(f"{key}: must be a mapping")
            values = {**defaults, **{k: v for k, v in (sub or {}).items() if k in defaults}}
            # the sub-config decides (DbrxConfig.__post_init__: num_key_value_heads = attn_config.kv_n_heads)
            if key == "attn_config":
                data["num_key_value_heads"] = values["kv_n_heads"]
            else:
                data["intermediate_size"] = values["ffn_hidden_size"]
                data["moe_num_experts"] = values["moe_num_experts"]
                data["num_experts_per_tok"] = values["moe_top_k"]
        return data

    @model_validator(mode="after")
    def _untied(self) -> DbrxConfig:
        if self.tie_word_embeddings:
            raise ValueError("tie_word_embeddings: DBRX's LM head is never tied (DbrxConfig refuses it)")
        return self

    @property
    def n_experts(self) -> int:
        return self.moe_num_experts

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(fused_qkv=True)


class DbrxSpec(DecoderSpec):
    architecture: Literal["dbrx"]
    config: DbrxConfig


def _tensors(spec: DbrxSpec) -> Iterator[Tensor]:
    c = spec.config
    h, hd, comp = c.hidden_size, c.head_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", comp, h, i)  # norm_1: nn.LayerNorm(d_model, bias=False)
        yield from linear(f"{p}.attn_qkv", comp, h + 2 * c.kv_heads * hd, h, "attn_qkv", False, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", False, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)  # norm_2
        yield from expert_tensors(p, comp, i, hidden=h, inter=c.expert_width, experts=c.n_experts)
    yield from norm("decoder.output_norm", comp, h, None)  # norm_f
    yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


# DbrxForCausalLM: transformer.{wte, blocks.N, norm_f}, lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:transformer\.)?wte\.weight", "embeddings"),
    (r"(?:transformer\.)?(?:blocks\.\d+\..+|norm_f\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY = moe_family(
    __name__,
    "dbrx",
    DbrxSpec,
    ConfigClass(
        "DbrxConfig",
        "dbrx/configuration_dbrx.py",
        DbrxConfig,
        {
            "vocab_size": 32000,
            "d_model": 2048,
            "n_heads": 16,
            "n_layers": 24,
            "max_seq_len": 2048,
            "tie_word_embeddings": False,
        },
        # absent or null: DbrxAttentionConfig's / DbrxFFNConfig's defaults (the spec fills them in)
        copied=("attn_config", "ffn_config"),
    ),
    gguf=("dbrx",),  # convert_hf_to_gguf.py: DbrxForCausalLM -> MODEL_ARCH.DBRX; llama-arch.cpp "dbrx"
    tensors=_tensors,
    weight_rules=WEIGHT_RULES,
)
