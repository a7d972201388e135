"""Falcon (FalconForCausalLM: Falcon-7B, Falcon-40B, Falcon-180B, Falcon-RW with `alibi`): one fused
query_key_value projection and a dense output projection, a plain MLP (dense_h_to_4h of ffn_hidden_size,
4 x hidden when null; dense_4h_to_h), every linear biased when `bias`, LayerNorms with biases, the final
ln_f, and the LM head tied to the word embeddings by default (transformers models/falcon/modeling_falcon.py:
FalconAttention, FalconMLP, FalconDecoderLayer, FalconModel, FalconForCausalLM).

Three attention layouts (FalconAttention.__init__):
- `new_decoder_architecture` (Falcon-40B/180B): query_key_value projects to (heads + 2 x num_kv_heads) x
  head_dim; the layer normalises with ln_attn and ln_mlp (num_ln_in_parallel_attn 2, FalconDecoderLayer's
  default for this layout) or one input_layernorm (1);
- `multi_query` (Falcon-7B): hidden + 2 x head_dim, one key and one value head;
- neither: 3 x hidden, every head its own key and value.
A block without `parallel_attn` (and not the new layout's ln_attn / ln_mlp) has input_layernorm and
post_attention_layernorm; a parallel one input_layernorm only.

The cache: transformers caches what FalconAttention passes to `layer_past.update`: with the new layout the
keys and values *broadcast to every query head* (`_split_heads`: torch.broadcast_to, then flatten), so
heads x head_dim per position and layer (measured: tests/reference); multi-query one head; otherwise every
head. Engines that keep the grouped heads (llama.cpp's falcon graph: n_head_kv; vLLM FalconAttention:
total_num_kv_heads = num_kv_heads with the new layout, 1 with multi_query) read `self_kv`, which holds
num_kv_heads; the per-layer cache kinds hold transformers' broadcast heads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import Geometry, Heads, Intermediate, Tensor, linear, norm
from .caches import CacheKind, FullAttention
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig


class FalconConfig(DecoderConfig):
    """FalconConfig fields (transformers models/falcon/configuration_falcon.py)."""

    model_type: Literal["falcon"] | None = None
    num_kv_heads: Heads | None = None  # null: num_attention_heads (FalconConfig.__post_init__)
    num_ln_in_parallel_attn: Literal[1, 2] | None = None  # null: 2 with the new layout (FalconDecoderLayer)
    alibi: bool = False
    new_decoder_architecture: bool = False
    multi_query: bool = True
    parallel_attn: bool = True
    bias: bool = False
    ffn_hidden_size: Intermediate | None = None  # null: 4 x hidden_size (FalconConfig.__post_init__)
    activation: str = "gelu"  # changes no tensor or cache
    tie_word_embeddings: bool = True

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("n_embed") is not None:  # FalconConfig.__post_init__: the old name replaces hidden_size
            data["hidden_size"] = data.pop("n_embed")
        hidden = data.get("hidden_size")
        inner = data.get("ffn_hidden_size") or (4 * hidden if isinstance(hidden, int) else None)
        if inner is not None:  # FalconMLP reads ffn_hidden_size only (FalconConfig has no intermediate_size)
            data["intermediate_size"] = inner
        return data

    @model_validator(mode="after")
    def _check_falcon(self) -> FalconConfig:
        if self.num_key_value_heads is not None or self.head_dim is not None:
            raise ValueError("Falcon names its KV heads num_kv_heads and derives head_dim (hidden // heads)")
        if self.new_decoder_architecture and self.num_attention_heads % self.grouped_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) is not a multiple of num_kv_heads ({self.grouped_heads})"
            )
        return self

    @property
    def grouped_heads(self) -> int:
        """The key and value heads the projection computes (what llama.cpp and vLLM cache)."""
        if self.new_decoder_architecture:
            return self.num_kv_heads or self.num_attention_heads
        return 1 if self.multi_query else self.num_attention_heads

    @property
    def kv_heads(self) -> int:
        return self.grouped_heads

    @property
    def cached_heads(self) -> int:
        """The heads transformers caches: the new layout broadcasts keys and values to every query head."""
        return self.num_attention_heads if self.new_decoder_architecture else self.grouped_heads

    @property
    def two_norms(self) -> bool:
        """ln_attn and ln_mlp (FalconDecoderLayer: num_ln_in_parallel_attn, 2 by default with the new layout)."""
        n = self.num_ln_in_parallel_attn
        if n is None and self.new_decoder_architecture:
            n = 2
        return self.parallel_attn and n == 2

    @property
    def anatomy(self) -> Anatomy:
        b = self.bias
        return Anatomy(qkv_bias=b, o_bias=b, fused_qkv=True, norm_bias=True, gated=False, mlp_bias=b)


class FalconSpec(DecoderSpec):
    architecture: Literal["falcon"]
    config: FalconConfig


def _tensors(spec: FalconSpec) -> Iterator[Tensor]:
    c = spec.config
    h, hd, comp = c.hidden_size, c.head_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        qkv = (c.num_attention_heads + 2 * c.grouped_heads) * hd
        yield from linear(f"{p}.attn_qkv", comp, qkv, h, "attn_qkv", c.bias, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", c.bias, i)
        yield from linear(f"{p}.ffn_up", comp, c.intermediate_size, h, "ffn_up", c.bias, i)
        yield from linear(f"{p}.ffn_down", comp, h, c.intermediate_size, "ffn_down", c.bias, i)
        if not c.parallel_attn:
            yield from norm(f"{p}.ffn_norm", comp, h, i, True)  # post_attention_layernorm
            yield from norm(f"{p}.attn_norm", comp, h, i, True)  # input_layernorm
        elif c.two_norms:
            yield from norm(f"{p}.attn_norm", comp, h, i, True)  # ln_attn
            yield from norm(f"{p}.attn_norm_2", comp, h, i, True)  # ln_mlp
        else:
            yield from norm(f"{p}.attn_norm", comp, h, i, True)  # input_layernorm
    yield from norm("decoder.output_norm", comp, h, None, True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: FalconSpec) -> Geometry:
    c = spec.config
    held: tuple[CacheKind, ...] = (FullAttention(c.cached_heads, c.head_size, c.head_size),)
    return replace(llama.decoder_geometry(c, spec.architecture), cache_kinds=(held,) * c.num_hidden_layers)


# FalconForCausalLM: transformer.{word_embeddings, h.N, ln_f}, lm_head (tied: absent from the files)
WEIGHT_RULES: WeightRules = (
    (r"(?:transformer\.)?word_embeddings\.weight", "embeddings"),
    (r"(?:transformer\.)?(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY = decoder_family(
    __name__,
    "falcon",
    FalconSpec,
    ConfigClass(
        "FalconConfig",
        "falcon/configuration_falcon.py",
        FalconConfig,
        {
            "vocab_size": 65024,
            "hidden_size": 4544,
            "num_hidden_layers": 32,
            "num_attention_heads": 71,
            "num_ln_in_parallel_attn": None,
            "alibi": False,
            "new_decoder_architecture": False,
            "multi_query": True,
            "parallel_attn": True,
            "bias": False,
            "max_position_embeddings": 2048,
            "activation": "gelu",
            "tie_word_embeddings": True,
        },
        # null or absent: derived (FalconConfig.__post_init__ writes num_attention_heads and 4 x hidden_size in)
        copied=("n_embed", "num_kv_heads", "ffn_hidden_size"),
    ),
    gguf=("falcon",),  # convert_hf_to_gguf.py: FalconForCausalLM -> MODEL_ARCH.FALCON; llama-arch.cpp "falcon"
    tensors=_tensors,
    geometry=_geometry,
    weight_rules=WEIGHT_RULES,
)
