"""LFM2 (Lfm2ForCausalLM, Liquid AI): a hybrid of attention layers and gated short convolutions
(transformers models/lfm2/modeling_lfm2.py, configuration_lfm2.py).

- `layer_types` ("full_attention" / "conv"), else the layers in `full_attn_idxs` attend (every layer when
  neither is given: Lfm2Config.__post_init__) and the rest convolve.
- An attention layer: q/k/v/out_proj without biases, RMSNorms of each head's query and key
  (q_layernorm, k_layernorm over head_dim); its cache is keys and values of every position.
- A conv layer (Lfm2ShortConv): in_proj (hidden -> 3 x hidden), a depthwise Conv1d of `conv_L_cache` taps,
  out_proj, biased when `conv_bias`; its cache is a short-convolution state of hidden x conv_L_cache
  elements per sequence, constant in the context (archs/caches.py: ShortConvState).
- Every layer: operator_norm and ffn_norm, and a SwiGLU feed-forward (w1, w3, w2) whose width
  Lfm2MLP adjusts: int(2 x intermediate_size / 3), times block_ffn_dim_multiplier rounded up to
  block_multiple_of, when block_auto_adjust_ff_dim.
- After the layers embedding_norm; the LM head tied by default. config.json keys `block_ff_dim` and
  `tie_embedding` are read as intermediate_size and tie_word_embeddings (__post_init__ pops them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Literal, Protocol

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import Geometry, Intermediate, LayerIndex, Stage, Tensor, linear, norm
from .caches import CacheKind, FullAttention, ShortConvState
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import DecoderConfig

Lfm2LayerType = Literal["full_attention", "conv"]
ENGINE_REFUSAL = "LFM2's short-convolution layers are not modelled in this engine profile yet"


class Lfm2Config(DecoderConfig):
    """Lfm2Config fields (transformers models/lfm2/configuration_lfm2.py)."""

    model_type: Literal["lfm2"] | None = None
    tie_word_embeddings: bool = True
    conv_bias: bool = False
    conv_L_cache: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 3
    block_multiple_of: Annotated[int, Field(gt=0, le=L.MAX_INTERMEDIATE)] = 256
    block_ffn_dim_multiplier: Annotated[float, Field(gt=0, le=1e3, allow_inf_nan=False)] | None = 1.0
    block_auto_adjust_ff_dim: bool = True
    full_attn_idxs: list[LayerIndex] | None = Field(default=None, max_length=L.MAX_LAYERS)
    layer_types: list[Lfm2LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    block_ff_dim: Intermediate | None = None  # read as intermediate_size (Lfm2Config.__post_init__)
    tie_embedding: bool | None = None  # read as tie_word_embeddings

    @property
    def tied(self) -> bool:
        return self.tie_word_embeddings if self.tie_embedding is None else self.tie_embedding

    @property
    def ffn_width(self) -> int:
        """Lfm2MLP's width."""
        width = self.block_ff_dim or self.intermediate_size
        if self.block_auto_adjust_ff_dim:
            width = int(2 * width / 3)
            if self.block_ffn_dim_multiplier is not None:
                width = int(self.block_ffn_dim_multiplier * width)
                m = self.block_multiple_of
                width = m * ((width + m - 1) // m)
        return width

    def attends(self, i: int) -> bool:
        if self.layer_types is not None:
            return self.layer_types[i] != "conv"
        return self.full_attn_idxs is None or i in self.full_attn_idxs

    @model_validator(mode="after")
    def _check_layers(self) -> Lfm2Config:
        llama.check_layer_types(self.layer_types, self.num_hidden_layers)
        if self.ffn_width < 1:
            raise ValueError(f"the feed-forward width Lfm2MLP computes from intermediate_size is {self.ffn_width}")
        return self


class Lfm2Spec(DecoderSpec):
    architecture: Literal["lfm2"]
    config: Lfm2Config


class ShortConvLayers(Protocol):
    """What LFM2 and LFM2-MoE layers share: attention with q/k norms, or a short convolution."""

    @property
    def hidden_size(self) -> int: ...
    @property
    def head_size(self) -> int: ...
    @property
    def num_attention_heads(self) -> int: ...
    @property
    def kv_heads(self) -> int: ...
    @property
    def conv_L_cache(self) -> int: ...
    @property
    def conv_bias(self) -> bool: ...
    def attends(self, i: int) -> bool: ...


def mixer_tensors(c: ShortConvLayers, p: str, i: int) -> Iterator[Tensor]:
    """Layer i's mixer (transformers Lfm2DecoderLayer / Lfm2MoeDecoderLayer): grouped-query attention with
    per-head q/k norms, or Lfm2ShortConv (a depthwise causal convolution between two projections)."""
    h, hd, comp = c.hidden_size, c.head_size, "decoder"
    if c.attends(i):
        yield from llama.attention_tensors(
            p, comp, i, hidden=h, heads=c.num_attention_heads, kv_heads=c.kv_heads, head_dim=hd, bias=False
        )
        yield from norm(f"{p}.attn_q_norm", comp, hd, i)
        yield from norm(f"{p}.attn_k_norm", comp, hd, i)
    else:
        yield Tensor(f"{p}.shortconv.conv.weight", comp, (h, 1, c.conv_L_cache), "conv", i)
        if c.conv_bias:
            yield Tensor(f"{p}.shortconv.conv.bias", comp, (h,), "bias", i)
        yield from linear(f"{p}.shortconv.in_proj", comp, 3 * h, h, "ssm_in", c.conv_bias, i)
        yield from linear(f"{p}.shortconv.out_proj", comp, h, h, "ssm_out", c.conv_bias, i)


def _tensors(spec: Lfm2Spec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from mixer_tensors(c, p, i)
        yield from llama.gated_mlp(p, comp, h, c.ffn_width, False, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
    yield from norm("decoder.output_norm", comp, h, None)  # embedding_norm, after the layers
    if not c.tied:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: Lfm2Spec) -> Geometry:
    c = spec.config
    g = llama.decoder_geometry(
        c,
        spec.architecture,
        tied_embeddings=c.tied,
        intermediate_size=c.ffn_width,
        refusals={"llama.cpp": ENGINE_REFUSAL, "ollama": ENGINE_REFUSAL, "vllm": ENGINE_REFUSAL},
    )
    return with_short_conv_caches(g, c)


def with_short_conv_caches(g: Geometry, c: ShortConvLayers) -> Geometry:
    """`g` with each layer's cache: keys and values on attention layers, the short convolution's state
    (hidden x conv_L_cache per sequence, transformers Lfm2HybridConvCache) on the others."""
    n = len(g.self_kv)
    conv = c.hidden_size * c.conv_L_cache
    kinds: list[tuple[CacheKind, ...]] = [
        (FullAttention(c.kv_heads, c.head_size, c.head_size),) if c.attends(i) else (ShortConvState(conv, 0),)
        for i in range(n)
    ]
    return replace(
        g,
        self_kv=tuple(kv if c.attends(i) else None for i, kv in enumerate(g.self_kv)),
        ssm_state=tuple((0, 0) if c.attends(i) else (conv, 0) for i in range(n)),
        ssm_conv_kernel=c.conv_L_cache,
        cache_kinds=tuple(kinds),
    )


def _stages(spec: Lfm2Spec, context: int, source: int, images: int) -> list[Stage]:
    c = spec.config
    st = llama.lm_stage(c, context)
    return [replace(st, mlp_inner=c.ffn_width)]


FAMILY = decoder_family(
    __name__,
    "lfm2",
    Lfm2Spec,
    ConfigClass(
        "Lfm2Config",
        "lfm2/configuration_lfm2.py",
        Lfm2Config,
        {
            "vocab_size": 65536,
            "hidden_size": 2560,
            "intermediate_size": 12288,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 128_000,
            "tie_word_embeddings": True,
            "conv_bias": False,
            "conv_L_cache": 3,
            "block_multiple_of": 256,
            "block_ffn_dim_multiplier": 1.0,
            "block_auto_adjust_ff_dim": True,
        },
        copied=("head_dim", "full_attn_idxs", "layer_types", "block_ff_dim", "tie_embedding"),
    ),
    gguf=("lfm2",),
    tensors=_tensors,
    geometry=_geometry,
    stages=_stages,
    # Lfm2Model: model.layers.N.{self_attn, conv, feed_forward, operator_norm, ffn_norm}, model.embedding_norm
    weight_rules=(
        (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
        (r"(?:model\.)?(?:layers\.\d+\..+|embedding_norm\.weight)", "decoder"),
        (r"lm_head\.weight", "lm_head"),
    ),
)
