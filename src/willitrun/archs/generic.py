"""A model willitrun has no family for, described by data instead of rules (issue 20 §4, §5).

Two readers fill it, and say which in `counted_by`:
- `gguf-metadata` (importers/gguf_generic.py): a GGUF of any architecture llama.cpp writes. The tensor table
  gives every tensor's shape (so the parameters are exact); the caches come from `<arch>.*` metadata as
  llama.cpp's llama-hparams.cpp reads it (per-layer head_count_kv, key/value length, sliding window and its
  pattern, kv_lora_rank, ssm.*, wkv.head_size, shortconv.l_cache); no family-specific rules.
- `transformers` (importers/oracle.py): a config.json whose model_type has no family, built by transformers
  on the meta device: parameters counted per component, caches measured from a forward pass's cache tensors.

`layers` lists each decoder layer's cache (runs of alike layers as `count`): attention keys and values per
position (full, sliding over `window`, chunked), a sparse-attention indexer's key per position (`indexer_dim`),
and/or a recurrent state of fixed size per sequence (`conv_state` + `ssm_state` elements). `tensors` lists the weights (alike tensors of a component as `count`).
The compute estimate is the generic decoder's (one stage of `hidden_size`, the attention widths of the widest
layer and `intermediate_size`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import (
    Geometry,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Role,
    Stage,
    Strict,
    Tensor,
    Vocab,
)
from .caches import IndexerKeys, layer_caches
from .family import Family

ARCHITECTURES = ("generic",)
Count = Annotated[int, Field(ge=0, le=L.MAX_PARAMETERS)]
Width = Annotated[int, Field(ge=0, le=L.MAX_HEAD_DIM)]
KVHeads = Annotated[int, Field(ge=0, le=L.MAX_HEADS)]
Dim = Annotated[int, Field(gt=0, le=L.MAX_PARAMETERS)]
COUNTED_BY = {
    "gguf-metadata": "read from the GGUF's metadata and tensor table; no family-specific rules",
    "transformers": "counted by transformers on the meta device",
}


class GenericLayer(Strict):
    """One run of `count` alike decoder layers: its attention cache per position and recurrent state."""

    kind: Literal["full", "sliding", "chunked", "none"]  # none: no per-position cache
    kv_heads: KVHeads = 0
    key_dim: Width = 0
    value_dim: Width = 0
    window: Positions | None = None
    conv_state: Count = 0  # elements per sequence, constant in the context
    ssm_state: Count = 0
    # one more key of this width per position: a sparse-attention indexer's (transformers cache_utils.py
    # DynamicIndexedLayer.indexer_keys, [batch, positions, index_head_dim]: DeepSeek-V3.2, GLM-5)
    indexer_dim: Width = 0
    count: Layers = 1

    @model_validator(mode="after")
    def _check(self) -> GenericLayer:
        if self.kind != "none" and not (self.kv_heads and (self.key_dim or self.value_dim)):
            raise ValueError(f"a {self.kind} attention layer needs kv_heads and key_dim / value_dim")
        if (self.kind in ("sliding", "chunked")) != (self.window is not None):
            raise ValueError("window: given for sliding and chunked layers, and only for them")
        return self


class GenericTensor(Strict):
    """`count` alike weight tensors of one component (shape in PyTorch order)."""

    component: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    role: Role
    shape: list[Dim] = Field(min_length=1, max_length=6)
    count: Layers = 1


class GenericConfig(Strict):
    source_architecture: Annotated[str, Field(min_length=1, max_length=80)]  # general.architecture / model_type
    counted_by: Literal["gguf-metadata", "transformers"]
    # what was read or measured and what inferred, said with every estimate (memory.estimate's notes)
    provenance: Annotated[str, Field(min_length=1, max_length=2000)]
    vocab_size: Vocab
    hidden_size: Hidden
    num_attention_heads: Annotated[int, Field(gt=0, le=L.MAX_HEADS)]
    intermediate_size: Intermediate
    max_position_embeddings: Positions | None = None
    tie_word_embeddings: bool = False
    layers: list[GenericLayer] = Field(min_length=1, max_length=L.MAX_LAYERS)
    tensors: list[GenericTensor] = Field(min_length=1, max_length=1 << 14)
    num_experts: KVHeads = 0
    num_experts_per_tok: KVHeads = 0
    # (kv_lora_rank, rope dims, heads, qk head dim, v head dim) of multi-head latent attention (archs/base.py)
    mla: list[Dim] | None = Field(default=None, min_length=5, max_length=5)
    state_f32: bool = False  # the SSM state kept in float32 whatever the cache's type

    @model_validator(mode="after")
    def _check(self) -> GenericConfig:
        if sum(layer.count for layer in self.layers) > L.MAX_LAYERS:
            raise ValueError(f"layers: more than {L.MAX_LAYERS} in all")
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError("num_experts_per_tok is more than num_experts")
        return self

    def each_layer(self) -> list[GenericLayer]:
        return [layer for layer in self.layers for _ in range(layer.count)]


class GenericSpec(ModelSpecBase):
    architecture: Literal["generic"]
    config: GenericConfig


SPECS = {"generic": GenericSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: GenericConfig = spec.config  # type: ignore[attr-defined]
    for i, t in enumerate(c.tensors):
        for j in range(t.count):
            yield Tensor(f"{t.component}.{i}.{j}", t.component, tuple(t.shape), t.role)


def _kv(layer: GenericLayer) -> LayerKV | None:
    if layer.kind == "none":
        return None
    return LayerKV(layer.kind, layer.kv_heads, layer.key_dim, layer.value_dim, layer.window)


def geometry(spec: ModelSpecBase) -> Geometry:
    c: GenericConfig = spec.config  # type: ignore[attr-defined]
    layers = c.each_layer()
    g = _geometry(c, layers, spec.architecture)  # type: ignore[attr-defined]
    if not any(layer.indexer_dim for layer in layers):
        return g
    caches = tuple(
        (*kinds, IndexerKeys(layer.indexer_dim)) if layer.indexer_dim else kinds
        for kinds, layer in zip(layer_caches(g), layers, strict=True)
    )
    return replace(g, cache_kinds=caches)


def _geometry(c: GenericConfig, layers: list[GenericLayer], architecture: str) -> Geometry:
    kv = tuple(_kv(layer) for layer in layers)
    state = tuple((layer.conv_state, layer.ssm_state) for layer in layers)
    kv_heads = max((k.kv_heads for k in kv if k is not None), default=1)
    return Geometry(
        architecture=architecture,
        self_kv=kv,
        cross_kv=(None,) * len(kv),
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        context_window=c.max_position_embeddings,
        tp_constraints=(("attention heads", c.num_attention_heads, False),),
        tp_kv_heads=kv_heads,
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=max(1, c.num_attention_heads // kv_heads) if kv_heads else 1,
        gguf_architecture=c.source_architecture if c.counted_by == "gguf-metadata" else None,
        experts=c.num_experts,
        experts_per_token=c.num_experts_per_tok,
        mla=(c.mla[0], c.mla[1], c.mla[2], c.mla[3], c.mla[4]) if c.mla else None,
        ssm_state=state if any(s != (0, 0) for s in state) else (),
        ssm_state_f32=c.state_f32,
        # llama.cpp gives sliding and chunked layers their own window-sized cache (llama_kv_cache_iswa)
        llamacpp_swa=any(k is not None and k.window is not None for k in kv),
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    """The generic decoder's prefill: the widest layer's attention widths and the feed-forward width."""
    c: GenericConfig = spec.config  # type: ignore[attr-defined]
    attn = [layer for layer in c.layers if layer.kind != "none"]
    key_dim = max((layer.key_dim for layer in attn), default=0)
    kv_width = max((layer.kv_heads * max(layer.key_dim, layer.value_dim) for layer in attn), default=0)
    q_width = c.num_attention_heads * key_dim if attn else 0
    width = c.intermediate_size * max(1, c.num_experts_per_tok)
    return [
        Stage(context, c.hidden_size, q_width, kv_width, width, True, c.num_attention_heads, context if attn else 0)
    ]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


FAMILY = Family(__name__, SPECS, tensors, geometry, stages, image_tokens, cross_source_tokens)
