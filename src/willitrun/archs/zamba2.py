"""Zamba2 (Zamba2ForCausalLM, Zyphra): Mamba-2 layers, some of which also run a shared transformer block first
(transformers models/zamba2/modeling_zamba2.py, configuration_zamba2.py).

- `layers_block_type[i]`: "linear_attention" (legacy "mamba"): a Mamba-2 layer (input_layernorm and
  Zamba2MambaMixer: archs/mamba2.py's mixer with d_inner = mamba_expand x hidden_size in n_mamba_heads heads,
  mamba_ngroups groups, a conv1d that always has a bias, in/out projections biased when add_bias_linear);
  "hybrid": the shared transformer block, a hidden x hidden `linear` of its own, then that Mamba-2 layer. Without
  layers_block_type the class default is 54 layers, 9 of them hybrid (Zamba2Config.__post_init__).
- The shared transformer blocks (Zamba2AttentionDecoderLayer) are `num_mem_blocks` modules reused in turn by the
  hybrid layers (layer k of them ties to block k mod num_mem_blocks: Zamba2Model.get_layers); each holds attention
  over the concatenated [hidden, embeddings] (2 x hidden_size in; head_dim = 2 x hidden_size / num_attention_heads;
  q/k/v/o without bias), an input norm of 2 x hidden_size, a pre-feed-forward norm and a gated MLP
  (gate_up_proj hidden -> 2 x intermediate_size, down_proj; intermediate_size default 4 x hidden_size; biased when
  add_bias_linear). With use_shared_attention_adapter each block adds, for each hybrid layer it serves, LoRA-like
  q/k/v adapters (2 x hidden -> adapter_rank -> 2 x hidden); every block always adds them to its MLP's gate_up
  (hidden -> adapter_rank -> 2 x intermediate_size).
- embed_tokens, final_layernorm, an LM head tied by default. transformers 5.23 ties the shared blocks, like the
  LM head, only when tie_word_embeddings is true (PreTrainedModel.get_expanded_tied_weights_keys returns no tie
  otherwise): untied, every hybrid layer builds its own copy of its block.
The cache per layer: a hybrid layer keeps the shared block's keys and values (num_key_value_heads x head_dim per
position) and, like every layer, its Mamba-2 state (conv channels x mamba_d_conv in the model's dtype, a float32
SSM state): archs/caches.py FullAttention and MambaState.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import (
    Geometry,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    check_heads,
    linear,
    norm,
)
from .caches import CacheKind, FullAttention, MambaState
from .family import ConfigClass, Family, no_cross_source, no_image_tokens
from .llama import check_layer_types
from .mamba import State
from .mamba2 import Groups, check_mamba2_heads, conv_channels, layer_state, mixer_tensors

BlockType = Literal["linear_attention", "hybrid", "mamba"]
# Zamba2Config.__post_init__: 54 layers, the hybrid ones at 6, 12, ..., 42, 47 and 51
DEFAULT_BLOCKS = (
    ("linear_attention",)
    + (("linear_attention",) * 5 + ("hybrid",)) * 7
    + ("linear_attention",) * 4
    + ("hybrid",)
    + ("linear_attention",) * 3
    + ("hybrid",)
    + ("linear_attention",) * 2
)
Rank = Annotated[int, Field(gt=0, le=L.MAX_HIDDEN)]
# llama.cpp src/llama-arch.cpp LLM_ARCH_NAMES (ggml-org/llama.cpp 00395eb) has no Zamba2 architecture
NO_GGUF = "llama.cpp has no Zamba2 architecture (src/llama-arch.cpp): there is no GGUF of it to run"


class Zamba2Config(Strict):
    """Zamba2Config fields (transformers models/zamba2/configuration_zamba2.py)."""

    model_type: Literal["zamba2"] | None = None
    vocab_size: Vocab = 32000
    max_position_embeddings: Positions = 4096
    use_long_context: bool = False  # max_position_embeddings 16384 (Zamba2Config.__post_init__)
    hidden_size: Hidden = 2560
    num_hidden_layers: Layers = 54  # layers_block_type must have this many entries (validate_layer_type)
    layers_block_type: list[BlockType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    mamba_d_state: State = 64
    mamba_d_conv: State = 4
    mamba_expand: Annotated[int, Field(gt=0, le=1024)] = 2
    mamba_ngroups: Groups = 1
    n_mamba_heads: Heads = 8
    add_bias_linear: bool = False
    intermediate_size: Intermediate | None = None  # None: 4 x hidden_size
    num_attention_heads: Heads = 32
    num_key_value_heads: Heads | None = None  # None: num_attention_heads
    num_mem_blocks: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 1
    use_shared_attention_adapter: bool = False
    adapter_rank: Rank = 128
    tie_word_embeddings: bool = True

    @property
    def blocks(self) -> tuple[str, ...]:
        if self.layers_block_type is None:
            return DEFAULT_BLOCKS
        return tuple("linear_attention" if t == "mamba" else t for t in self.layers_block_type)

    @property
    def hybrid_layers(self) -> tuple[int, ...]:
        return tuple(i for i, b in enumerate(self.blocks) if b == "hybrid")

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_dim(self) -> int:
        """attention_head_dim = 2 x hidden_size // num_attention_heads (the attention reads [hidden, embeddings])."""
        return 2 * self.hidden_size // self.num_attention_heads

    @property
    def ffn(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size

    @property
    def d_inner(self) -> int:
        return self.mamba_expand * self.hidden_size

    @property
    def context(self) -> int:
        return 16384 if self.use_long_context else self.max_position_embeddings

    @model_validator(mode="after")
    def _check(self) -> Zamba2Config:
        check_heads(self.num_attention_heads, self.kv_heads, "")
        if self.layers_block_type is None and self.num_hidden_layers != len(DEFAULT_BLOCKS):
            # the default pattern has 54 entries and transformers checks num_hidden_layers against it
            raise ValueError(
                f"num_hidden_layers ({self.num_hidden_layers}) needs layers_block_type: the default pattern "
                f"has {len(DEFAULT_BLOCKS)} layers"
            )
        check_layer_types(self.layers_block_type, self.num_hidden_layers)
        if self.use_shared_attention_adapter and self.kv_heads != self.num_attention_heads:
            # Zamba2Attention.forward adds each adapter's 2 x hidden_size output to the keys and values
            raise ValueError(
                f"use_shared_attention_adapter needs num_key_value_heads = num_attention_heads "
                f"({self.num_attention_heads}, not {self.kv_heads}): the adapters add 2 x hidden_size to keys and values"
            )
        if self.d_inner % self.n_mamba_heads:
            raise ValueError(
                f"n_mamba_heads ({self.n_mamba_heads}) must divide mamba_expand x hidden_size ({self.d_inner})"
            )
        check_mamba2_heads(self.d_inner, self.n_mamba_heads, self.d_inner // self.n_mamba_heads, self.mamba_ngroups)
        return self


class Zamba2Spec(ModelSpecBase):
    architecture: Literal["zamba2"]
    config: Zamba2Config


def _shared_block(c: Zamba2Config, b: int, copy: int | None = None) -> Iterator[Tensor]:
    """Shared transformer block b (Zamba2AttentionDecoderLayer with block_id b), counted once however many hybrid
    layers reuse it; its adapters are the ones of the hybrid layers it serves (i mod num_mem_blocks == b). `copy`:
    the hybrid layer whose own untied copy this is."""
    h, a, comp = c.hidden_size, 2 * c.hidden_size, "decoder"
    p = f"shared.{b}" if copy is None else f"shared.{b}.copy{copy}"
    q, kv, inter = c.num_attention_heads * c.head_dim, c.kv_heads * c.head_dim, c.ffn
    served = [i for i in range(len(c.hybrid_layers)) if i % c.num_mem_blocks == b]
    yield from linear(f"{p}.attn_q", comp, q, a, "attn_q", False, None)
    yield from linear(f"{p}.attn_k", comp, kv, a, "attn_k", False, None)
    yield from linear(f"{p}.attn_v", comp, kv, a, "attn_v", False, None)
    yield from linear(f"{p}.attn_output", comp, h, q, "attn_output", False, None)
    if c.use_shared_attention_adapter:
        for i in served:
            for proj in ("q", "k", "v"):
                yield from linear(f"{p}.adapter.{i}.{proj}_down", comp, c.adapter_rank, a, "other", False, None)
                yield from linear(f"{p}.adapter.{i}.{proj}_up", comp, a, c.adapter_rank, "other", False, None)
    yield from linear(f"{p}.ffn_gate_up", comp, 2 * inter, h, "ffn_gate_up", c.add_bias_linear, None)
    yield from linear(f"{p}.ffn_down", comp, h, inter, "ffn_down", c.add_bias_linear, None)
    for i in served:
        yield from linear(f"{p}.ffn_adapter.{i}.down", comp, c.adapter_rank, h, "other", False, None)
        yield from linear(f"{p}.ffn_adapter.{i}.up", comp, 2 * inter, c.adapter_rank, "other", False, None)
    yield from norm(f"{p}.attn_norm", comp, a, None)
    yield from norm(f"{p}.ffn_norm", comp, h, None)


def _tensors(spec: Zamba2Spec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    if c.tie_word_embeddings:
        for b in range(min(c.num_mem_blocks, len(c.hybrid_layers))):
            yield from _shared_block(c, b)
    else:  # no tying at all: one copy per hybrid layer, that layer's block_id's adapters in it
        for k in range(len(c.hybrid_layers)):
            yield from _shared_block(c, k % c.num_mem_blocks, copy=k)
    for i, block in enumerate(c.blocks):
        p = f"decoder.{i}"
        if block == "hybrid":
            yield from linear(f"{p}.hybrid_linear", comp, h, h, "other", False, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from mixer_tensors(
            p,
            i,
            hidden=h,
            d_inner=c.d_inner,
            heads=c.n_mamba_heads,
            groups=c.mamba_ngroups,
            state=c.mamba_d_state,
            kernel=c.mamba_d_conv,
            in_bias=c.add_bias_linear,
            out_bias=c.add_bias_linear,
            conv_bias=True,  # Zamba2MambaMixer: nn.Conv1d(..., bias=True) whatever use_conv_bias says
            gated_norm=True,
        )
    yield from norm("decoder.output_norm", comp, h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: Zamba2Spec) -> Geometry:
    c = spec.config
    blocks = c.blocks
    n, hd = len(blocks), c.head_dim
    conv, ssm = layer_state(
        c.d_inner, c.n_mamba_heads, c.d_inner // c.n_mamba_heads, c.mamba_ngroups, c.mamba_d_state, c.mamba_d_conv
    )
    state = MambaState(conv, ssm, True)
    kinds: tuple[tuple[CacheKind, ...], ...] = tuple(
        (FullAttention(c.kv_heads, hd, hd), state) if b == "hybrid" else (state,) for b in blocks
    )
    return Geometry(
        architecture=spec.architecture,
        self_kv=tuple(LayerKV("full", c.kv_heads, hd, hd) if b == "hybrid" else None for b in blocks),
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.ffn,
        context_window=c.context,
        tp_constraints=(
            ("attention heads", c.num_attention_heads, False),
            ("KV heads", c.kv_heads, True),
            ("intermediate_size", c.ffn, False),
            ("Mamba-2 heads", c.n_mamba_heads, False),
        ),
        tp_kv_heads=c.kv_heads,
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=c.num_attention_heads // c.kv_heads,
        ssm_state=((conv, ssm),) * n,
        ssm_conv_kernel=c.mamba_d_conv,
        ssm_state_f32=True,
        cache_kinds=kinds,
        refusals={"llama.cpp": NO_GGUF, "ollama": NO_GGUF},
    )


def _stages(spec: Zamba2Spec, context: int, source: int, images: int) -> list[Stage]:
    """The shared block's attention (over 2 x hidden_size inputs) and MLP, or the Mamba-2 in_proj output."""
    c = spec.config
    mamba = c.d_inner + conv_channels(c.d_inner, c.mamba_ngroups, c.mamba_d_state) + c.n_mamba_heads
    heads, hd = c.num_attention_heads, c.head_dim
    return [Stage(context, 2 * c.hidden_size, heads * hd, c.kv_heads * hd, max(c.ffn, mamba), True, heads, context)]


FAMILY = Family(
    __name__,
    {"zamba2": Zamba2Spec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={
        "zamba2": ConfigClass(
            "Zamba2Config",
            "zamba2/configuration_zamba2.py",
            Zamba2Config,
            {
                "vocab_size": 32000,
                "max_position_embeddings": 4096,
                "hidden_size": 2560,
                "num_hidden_layers": 54,
                "mamba_d_state": 64,
                "mamba_d_conv": 4,
                "mamba_expand": 2,
                "mamba_ngroups": 1,
                "n_mamba_heads": 8,
                "add_bias_linear": False,
                "num_attention_heads": 32,
                "num_mem_blocks": 1,
                "use_shared_attention_adapter": False,
                "adapter_rank": 128,
                "use_long_context": False,
                "tie_word_embeddings": True,
            },
            # intermediate_size and num_key_value_heads: filled by __post_init__ when null (4 x hidden, heads)
            copied=("layers_block_type", "intermediate_size", "num_key_value_heads"),
        )
    },
    # Zamba2Model: model.embed_tokens, model.layers.N.{mamba, input_layernorm} or, on a hybrid layer,
    # model.layers.N.{shared_transformer, linear, mamba_decoder}, model.final_layernorm
    weight_rules={
        "zamba2": (
            (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
            (r"(?:model\.)?(?:layers\.\d+\..+|final_layernorm\.weight)", "decoder"),
            (r"lm_head\.weight", "lm_head"),
        )
    },
)
