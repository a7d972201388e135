"""BLOOM (BloomForCausalLM: BLOOM, BLOOMZ): ALiBi instead of position embeddings (no position table, so no
trained window and no hard limit), a LayerNorm of the word embeddings (`word_embeddings_layernorm`), pre-
LayerNorms with biases (input_layernorm, post_attention_layernorm, ln_f), one fused and biased q/k/v
projection (query_key_value, 3 x hidden), a biased output projection (dense), a plain biased MLP of
4 x hidden (dense_h_to_4h, dense_4h_to_h) and the LM head tied to the word embeddings (transformers
models/bloom/modeling_bloom.py: BloomModel, BloomBlock, BloomAttention, BloomMLP, BloomForCausalLM).
Every head caches its key and value (no grouping).

config.json names the layers and heads n_layer and n_head (BloomConfig.attribute_map; checkpoints also
write num_attention_heads) and some checkpoints the width n_embed (BloomConfig.__post_init__ reads it as
hidden_size); the spec reads them as the generic decoder's fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import Geometry, Heads, Hidden, Layers, Positions, Tensor, norm
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig

# BloomConfig.attribute_map and __post_init__ (n_embed): config.json's name -> the generic decoder's field
RENAMED = {"n_embed": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads"}


def renamed(data: Any, names: dict[str, str]) -> Any:
    """config.json's old names read as the generic decoder's fields: the old name wins, as in transformers
    (BloomConfig.__post_init__: n_embed replaces hidden_size; attribute_map: n_layer and n_head are the stored
    fields), so a default the importer filled in for the new name never overrides the checkpoint's value."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name, field in names.items():
        if data.get(name) is not None:
            data[field] = data[name]
    return data


class BloomConfig(DecoderConfig):
    """BloomConfig fields (transformers models/bloom/configuration_bloom.py)."""

    model_type: Literal["bloom"] | None = None
    n_embed: Hidden | None = None
    n_layer: Layers | None = None
    n_head: Heads | None = None
    # ALiBi: no position table, so nothing bounds the context (BloomConfig has no max_position_embeddings)
    max_position_embeddings: Positions | None = None  # type: ignore[assignment]
    tie_word_embeddings: bool = True

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        data = renamed(data, RENAMED)
        if isinstance(data, dict) and isinstance(data.get("hidden_size"), int):
            # BloomMLP: dense_h_to_4h is 4 x hidden_size (BloomConfig has no intermediate size of its own)
            data["intermediate_size"] = 4 * data["hidden_size"]
        return data

    @model_validator(mode="after")
    def _mha(self) -> BloomConfig:
        if self.num_key_value_heads not in (None, self.num_attention_heads) or self.head_dim not in (
            None,
            self.hidden_size // self.num_attention_heads,
        ):
            raise ValueError("BLOOM has neither grouped-query attention nor an explicit head_dim")
        return self

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=True, o_bias=True, fused_qkv=True, norm_bias=True, gated=False, mlp_bias=True)


class BloomSpec(DecoderSpec):
    architecture: Literal["bloom"]
    config: BloomConfig


def _tensors(spec: BloomSpec) -> Iterator[Tensor]:
    """The generic decoder's tensors with word_embeddings_layernorm (weight and bias) after the embedding."""
    c = spec.config
    it = llama.decoder_lm(c)
    yield next(it)  # word_embeddings
    yield from norm("token_embd_norm", "embeddings", c.hidden_size, None, True)
    yield from it


def _geometry(spec: BloomSpec) -> Geometry:
    c = spec.config
    # the generic decoder reads max_position_embeddings, which BLOOM has not: no trained window
    return replace(llama.decoder_geometry(c, spec.architecture), context_window=c.max_position_embeddings)


# BloomForCausalLM: transformer.{word_embeddings, word_embeddings_layernorm, h.N, ln_f}, lm_head (tied: absent)
WEIGHT_RULES: WeightRules = (
    (r"(?:transformer\.)?word_embeddings(?:_layernorm)?\.(?:weight|bias)", "embeddings"),
    (r"(?:transformer\.)?(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY = decoder_family(
    __name__,
    "bloom",
    BloomSpec,
    ConfigClass(
        "BloomConfig",
        "bloom/configuration_bloom.py",
        BloomConfig,
        {
            "vocab_size": 250880,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "tie_word_embeddings": True,
        },
        copied=("n_embed", "n_layer", "n_head"),
    ),
    gguf=("bloom",),  # convert_hf_to_gguf.py: BloomForCausalLM -> MODEL_ARCH.BLOOM; llama-arch.cpp "bloom"
    tensors=_tensors,
    geometry=_geometry,
    weight_rules=WEIGHT_RULES,
)
