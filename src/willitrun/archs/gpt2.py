"""GPT-2 (GPT2LMHeadModel): learned absolute positions (`wpe`, n_positions rows: a hard limit on the
context), pre-LayerNorms with biases (ln_1, ln_2, ln_f), one fused and biased q/k/v projection (c_attn,
3 x n_embd), a biased output projection (c_proj), a plain MLP c_fc (n_inner, 4 x n_embd when null) and
c_proj with biases, every head attending in full, and the LM head tied to wte by default (transformers
models/gpt2/modeling_gpt2.py: GPT2Model, GPT2Block, GPT2Attention, GPT2MLP; Conv1D holds its weight as
in x out, the same elements as nn.Linear's out x in). A config with `add_cross_attention` is refused.

config.json names the widths n_embd, n_layer, n_head, n_positions, n_inner (GPT2Config.attribute_map:
hidden_size, num_hidden_layers, num_attention_heads, max_position_embeddings); the spec reads them and
derives the generic decoder's fields from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import Geometry, Heads, Hidden, Intermediate, Layers, Positions, Tensor
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig

# GPT2Config.attribute_map: config.json's name -> the generic decoder's field
RENAMED = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "n_positions": "max_position_embeddings",
}


class Gpt2LikeConfig(DecoderConfig):
    """The fields GPT2Config and GPTBigCodeConfig share (config.json's n_* names)."""

    n_embd: Hidden | None = None
    n_layer: Layers | None = None
    n_head: Heads | None = None
    n_positions: Positions | None = None
    n_inner: Intermediate | None = None  # null: 4 x n_embd (GPT2Block)
    tie_word_embeddings: bool = True
    add_cross_attention: bool = False

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, field in RENAMED.items():
            if data.get(name) is not None and data.setdefault(field, data[name]) != data[name]:
                raise ValueError(f"{name} ({data[name]}) and {field} ({data[field]}) differ")
        hidden = data.get("hidden_size")
        inner = data.get("n_inner") or (4 * hidden if isinstance(hidden, int) else None)
        if inner is not None and data.setdefault("intermediate_size", inner) != inner:
            raise ValueError(f"n_inner ({inner}) and intermediate_size ({data['intermediate_size']}) differ")
        return data

    @model_validator(mode="after")
    def _no_cross_attention(self) -> Gpt2LikeConfig:
        if self.add_cross_attention:
            raise ValueError("add_cross_attention: GPT-2 with cross-attention layers is not modelled")
        if self.num_key_value_heads not in (None, self.num_attention_heads):
            raise ValueError("num_key_value_heads: GPT-2 has no grouped-query attention")
        return self

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=True, o_bias=True, fused_qkv=True, norm_bias=True, gated=False, mlp_bias=True)


class Gpt2Config(Gpt2LikeConfig):
    """GPT2Config fields (transformers models/gpt2/configuration_gpt2.py)."""

    model_type: Literal["gpt2"] | None = None


class Gpt2Spec(DecoderSpec):
    architecture: Literal["gpt2"]
    config: Gpt2Config


def learned_position_tensors(spec: DecoderSpec) -> Iterator[Tensor]:
    """The generic decoder's tensors with wpe (max_position_embeddings x hidden) after wte."""
    c = spec.config
    it = llama.decoder_lm(c)
    yield next(it)  # wte
    yield Tensor("position_embd.weight", "embeddings", (c.max_position_embeddings, c.hidden_size), "pos_embd")
    yield from it


def learned_position_geometry(spec: DecoderSpec) -> Geometry:
    c = spec.config
    return replace(llama.decoder_geometry(c, spec.architecture), hard_limit=c.max_position_embeddings)


# GPT2LMHeadModel / GPTBigCodeForCausalLM: transformer.{wte, wpe, h.N, ln_f}, lm_head (tied: absent from the files)
WEIGHT_RULES: WeightRules = (
    (r"(?:transformer\.)?w[tp]e\.weight", "embeddings"),
    (r"(?:transformer\.)?(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY = decoder_family(
    __name__,
    "gpt2",
    Gpt2Spec,
    ConfigClass(
        "GPT2Config",
        "gpt2/configuration_gpt2.py",
        Gpt2Config,
        {
            "vocab_size": 50257,
            "n_positions": 1024,
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "n_inner": None,
            "tie_word_embeddings": True,
            "add_cross_attention": False,
        },
    ),
    gguf=("gpt2",),
    tensors=learned_position_tensors,
    geometry=learned_position_geometry,
    weight_rules=WEIGHT_RULES,
)  # convert_hf_to_gguf.py: GPT2LMHeadModel -> MODEL_ARCH.GPT2
