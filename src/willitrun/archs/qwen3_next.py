"""Qwen3-Next (Qwen3NextForCausalLM): a hybrid of Gated DeltaNet linear attention and gated full attention
with a mixture of experts and a shared expert (transformers models/qwen3_next/modeling_qwen3_next.py,
configuration_qwen3_next.py).

- Layer i's mixer is `layer_types[i]`: "linear_attention" or "full_attention"; without layer_types every
  `full_attention_interval`-th layer (4) attends in full (Qwen3NextConfig.__post_init__).
- Full attention (Qwen3NextAttention): q_proj emits queries *and* an output gate (heads x head_dim x 2),
  k/v/o projections, per-head q_norm and k_norm; its cache is keys and values of every position.
- Gated DeltaNet (Qwen3NextGatedDeltaNet): in_proj_qkvz (hidden -> 2 x key_dim + 2 x value_dim),
  in_proj_ba (hidden -> 2 x num_v_heads), a depthwise causal conv1d of `linear_conv_kernel_dim` taps over
  q, k and v (conv_dim = 2 x key_dim + value_dim, no bias), dt_bias and A_log per value head, a gated
  RMSNorm of head_v_dim, out_proj (value_dim -> hidden); key_dim = linear_num_key_heads x linear_key_head_dim,
  value_dim = linear_num_value_heads x linear_value_head_dim.
  Its cache (transformers 5.23 LinearAttentionLayer, measured in tests/reference) per sequence, whatever
  the context: a conv state of conv_dim x kernel in the model's dtype, and a recurrent state of
  num_v_heads x head_k_dim x head_v_dim in float32 (`torch_chunk_gated_delta_rule` computes in float32 and
  returns its final state so; the cache keeps it with `zeros_like`): archs/caches.py LinearAttentionState.
- Feed-forward: Qwen3NextSparseMoeBlock where `num_experts > 0`, (i + 1) % decoder_sparse_step == 0 and i not
  in mlp_only_layers (router num_experts x hidden, experts of moe_intermediate_size, a shared expert of
  shared_expert_intermediate_size and its one-output sigmoid gate), else a dense SwiGLU of intermediate_size.
- Two RMSNorms per layer, the final norm, an untied LM head by default.

Qwen3.5's text models (archs/qwen3_5.py) are the same layers with the projections split (in_proj_qkv,
in_proj_z, in_proj_b, in_proj_a: the same elements) and reuse this module's functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Literal, Protocol

from .. import limits as L
from ..records import Field, model_validator
from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    LayerIndex,
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
from .caches import CacheKind, FullAttention, LinearAttentionState
from .decoder import LM_WEIGHT_RULES, MTP_IGNORED
from .family import ConfigClass, Family
from .llama import check_layer_types, gated_mlp
from .moe import check_experts, expert_tensors

ExpertCount = Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]  # 0: every layer dense (Qwen3NextDecoderLayer)
Kernel = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]
Step = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]
HybridLayerType = Literal["linear_attention", "full_attention"]


class GatedDeltaNetConfig(Strict):
    """The fields Qwen3-Next and Qwen3.5's text configs share (Qwen3NextConfig; Qwen3_5TextConfig and
    Qwen3_5MoeTextConfig subclass it in transformers' modular files)."""

    vocab_size: Vocab
    hidden_size: Hidden
    num_hidden_layers: Layers
    num_attention_heads: Heads = 16
    num_key_value_heads: Heads
    head_dim: HeadDim = 256
    max_position_embeddings: Positions = 32768
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    linear_conv_kernel_dim: Kernel = 4
    linear_key_head_dim: HeadDim = 128
    linear_value_head_dim: HeadDim = 128
    linear_num_key_heads: Heads = 16
    linear_num_value_heads: Heads = 32
    layer_types: list[HybridLayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    # popped by __post_init__ to fill layer_types when absent (config.json of Qwen3-Next-80B-A3B has it)
    full_attention_interval: Step = 4

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads

    @property
    def head_size(self) -> int:
        return self.head_dim

    def attends(self, i: int) -> bool:
        """Layer i is gated full attention (else Gated DeltaNet)."""
        if self.layer_types is not None:
            return self.layer_types[i] == "full_attention"
        return (i + 1) % self.full_attention_interval == 0

    @property
    def key_dim(self) -> int:
        return self.linear_num_key_heads * self.linear_key_head_dim

    @property
    def value_dim(self) -> int:
        return self.linear_num_value_heads * self.linear_value_head_dim

    @property
    def conv_dim(self) -> int:
        """The conv1d's channels: q, k and v (conv_dim = key_dim x 2 + value_dim)."""
        return 2 * self.key_dim + self.value_dim

    @property
    def linear_state(self) -> LinearAttentionState:
        """One Gated DeltaNet layer's cache per sequence: conv_dim x kernel, and a float32 recurrent state
        of num_v_heads x head_k_dim x head_v_dim."""
        return LinearAttentionState(
            self.conv_dim * self.linear_conv_kernel_dim,
            self.linear_num_value_heads * self.linear_key_head_dim * self.linear_value_head_dim,
            ssm_f32=True,
        )

    @property
    def ffn_width(self) -> int:
        """What one token's feed-forward computes (the widest, when layers differ)."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _check_shape(self) -> GatedDeltaNetConfig:
        check_heads(self.num_attention_heads, self.num_key_value_heads, "")
        check_layer_types(self.layer_types, self.num_hidden_layers)
        if self.linear_num_value_heads % self.linear_num_key_heads:
            # fix_query_key_value_ordering views q/k/v per key head (num_v_heads // num_k_heads values each)
            raise ValueError(
                f"linear_num_value_heads ({self.linear_num_value_heads}) is not a multiple of "
                f"linear_num_key_heads ({self.linear_num_key_heads})"
            )
        return self


class Qwen3NextConfig(GatedDeltaNetConfig):
    """Qwen3NextConfig fields (transformers models/qwen3_next/configuration_qwen3_next.py)."""

    model_type: Literal["qwen3_next"] | None = None
    num_key_value_heads: Heads = 2
    intermediate_size: Intermediate = 5632
    decoder_sparse_step: Step = 1
    moe_intermediate_size: Intermediate = 512
    shared_expert_intermediate_size: Intermediate = 512
    num_experts_per_tok: ExpertCount = 10
    num_experts: ExpertCount = 512
    mlp_only_layers: list[LayerIndex] = Field(default=[], max_length=L.MAX_LAYERS)  # null: [] (__post_init__)

    def is_moe(self, i: int) -> bool:
        """Qwen3NextDecoderLayer: experts unless i is in mlp_only_layers, or off the sparse step, or no experts."""
        return i not in self.mlp_only_layers and self.num_experts > 0 and (i + 1) % self.decoder_sparse_step == 0

    @property
    def experts_per_token(self) -> int:
        return self.num_experts_per_tok if self.num_experts else 0

    @property
    def active_ffn_width(self) -> int:
        return self.experts_per_token * self.moe_intermediate_size + self.shared_expert_intermediate_size

    @property
    def ffn_width(self) -> int:
        moe = any(self.is_moe(i) for i in range(self.num_hidden_layers))
        dense = not all(self.is_moe(i) for i in range(self.num_hidden_layers))
        return max(self.active_ffn_width if moe else 0, self.intermediate_size if dense else 0)

    @model_validator(mode="after")
    def _check_experts(self) -> Qwen3NextConfig:
        if self.num_experts:
            check_experts(self.num_experts, self.num_experts_per_tok)
            if not self.num_experts_per_tok:
                raise ValueError(f"num_experts_per_tok is 0 with {self.num_experts} experts per layer")
        return self


class Qwen3NextSpec(ModelSpecBase):
    architecture: Literal["qwen3_next"]
    config: Qwen3NextConfig


# --------------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------------
def mixer_tensors(c: GatedDeltaNetConfig, p: str, i: int) -> Iterator[Tensor]:
    """Layer i's mixer: gated full attention (q_proj twice as wide: queries and the output gate; per-head
    q/k norms) or Gated DeltaNet. GGUF names (llama.cpp qwen3next): ssm_in (qkvz), ssm_ba, ssm_conv1d,
    ssm_dt, ssm_a, ssm_norm, ssm_out."""
    h, hd, comp = c.hidden_size, c.head_size, "decoder"
    if c.attends(i):
        heads, kv = c.num_attention_heads, c.kv_heads
        yield from linear(f"{p}.attn_q", comp, 2 * heads * hd, h, "attn_q", c.attention_bias, i)
        yield from linear(f"{p}.attn_k", comp, kv * hd, h, "attn_k", c.attention_bias, i)
        yield from linear(f"{p}.attn_v", comp, kv * hd, h, "attn_v", c.attention_bias, i)
        yield from linear(f"{p}.attn_output", comp, h, heads * hd, "attn_output", c.attention_bias, i)
        yield from norm(f"{p}.attn_q_norm", comp, hd, i)
        yield from norm(f"{p}.attn_k_norm", comp, hd, i)
        return
    nv = c.linear_num_value_heads
    yield Tensor(f"{p}.ssm_conv1d.weight", comp, (c.conv_dim, 1, c.linear_conv_kernel_dim), "conv", i)
    yield from linear(f"{p}.ssm_in", comp, 2 * c.key_dim + 2 * c.value_dim, h, "ssm_in", False, i)
    yield from linear(f"{p}.ssm_ba", comp, 2 * nv, h, "ssm_in", False, i)
    yield Tensor(f"{p}.ssm_dt.bias", comp, (nv,), "bias", i)
    yield Tensor(f"{p}.ssm_a", comp, (nv,), "other", i)
    yield from norm(f"{p}.ssm_norm", comp, c.linear_value_head_dim, i)
    yield from linear(f"{p}.ssm_out", comp, h, c.value_dim, "ssm_out", False, i)


class SparseBlockWidths(Protocol):
    """What Qwen3NextSparseMoeBlock reads (Qwen3.5-MoE's block is the same)."""

    @property
    def hidden_size(self) -> int: ...
    @property
    def num_experts(self) -> int: ...
    @property
    def moe_intermediate_size(self) -> int: ...
    @property
    def shared_expert_intermediate_size(self) -> int: ...


def moe_block(c: SparseBlockWidths, p: str, i: int) -> Iterator[Tensor]:
    """Qwen3NextSparseMoeBlock: router, experts, the shared expert and its one-output gate."""
    h = c.hidden_size
    yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.moe_intermediate_size, experts=c.num_experts)
    yield from gated_mlp(f"{p}.shexp", "decoder", h, c.shared_expert_intermediate_size, False, i)
    yield from linear(f"{p}.ffn_gate_inp_shexp", "decoder", 1, h, "ffn_gate_inp", False, i)


def lm_tensors(c: GatedDeltaNetConfig, ffn: Callable[[str, int], Iterator[Tensor]]) -> Iterator[Tensor]:
    """embed_tokens, layers (mixer, feed-forward from `ffn(p, i)`, two norms), norm, lm_head."""
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from mixer_tensors(c, p, i)
        yield from ffn(p, i)
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _tensors(spec: Qwen3NextSpec) -> Iterator[Tensor]:
    c = spec.config

    def ffn(p: str, i: int) -> Iterator[Tensor]:
        if c.is_moe(i):
            return moe_block(c, p, i)
        return gated_mlp(p, "decoder", c.hidden_size, c.intermediate_size, False, i)

    return lm_tensors(c, ffn)


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
def hybrid_geometry(
    c: GatedDeltaNetConfig,
    architecture: str,
    *,
    experts: int,
    experts_per_token: int,
    ffn: tuple[str, int],
    gguf_architecture: str,
) -> Geometry:
    """Per layer: keys and values on the full-attention layers, the Gated DeltaNet state on the others
    (archs/caches.py: FullAttention, LinearAttentionState). `ssm_state` carries the same state as (conv,
    recurrent) elements for the arithmetic that reads it (float32 recurrent state)."""
    n = c.num_hidden_layers
    kv = LayerKV("full", c.kv_heads, c.head_size, c.head_size)
    state = c.linear_state
    kinds: tuple[tuple[CacheKind, ...], ...] = tuple(
        (FullAttention(c.kv_heads, c.head_size, c.head_size),) if c.attends(i) else (state,) for i in range(n)
    )
    return Geometry(
        architecture=architecture,
        self_kv=tuple(kv if c.attends(i) else None for i in range(n)),
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.ffn_width,
        context_window=c.max_position_embeddings,
        # vLLM shards attention heads, the Gated DeltaNet's key and value heads and the MLP width
        # (vllm/model_executor/models/qwen3_next.py: Qwen3NextGatedDeltaNet divides num_k_heads, num_v_heads by tp)
        tp_constraints=(
            ("attention heads", c.num_attention_heads, False),
            ("KV heads", c.kv_heads, True),
            ffn + (False,),
            ("linear attention key heads", c.linear_num_key_heads, False),
            ("linear attention value heads", c.linear_num_value_heads, False),
        ),
        tp_kv_heads=c.kv_heads,
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=c.num_attention_heads // c.kv_heads,
        experts=experts,
        experts_per_token=experts_per_token,
        ssm_state=tuple((0, 0) if c.attends(i) else (state.conv, state.ssm) for i in range(n)),
        ssm_conv_kernel=c.linear_conv_kernel_dim,
        ssm_state_f32=True,
        gguf_architecture=gguf_architecture,
        cache_kinds=kinds,
    )


def _geometry(spec: Qwen3NextSpec) -> Geometry:
    c = spec.config
    width = (
        ("moe_intermediate_size", c.moe_intermediate_size)
        if c.num_experts
        else ("intermediate_size", c.intermediate_size)
    )
    return hybrid_geometry(
        c,
        spec.architecture,
        experts=c.num_experts,
        experts_per_token=c.experts_per_token,
        ffn=width,
        gguf_architecture="qwen3next",
    )


def hybrid_stage(c: GatedDeltaNetConfig, context: int) -> Stage:
    """One prefill: attention widths of the full-attention layers; the widest per-token intermediate of
    the feed-forward and of the Gated DeltaNet's input projection (q, k, v, z)."""
    width = max(c.ffn_width, 2 * c.key_dim + 2 * c.value_dim)
    heads, hd = c.num_attention_heads, c.head_size
    return Stage(context, c.hidden_size, heads * hd, c.kv_heads * hd, width, True, heads, context)


def _stages(spec: Qwen3NextSpec, context: int, source: int, images: int) -> list[Stage]:
    return [hybrid_stage(spec.config, context)]


def no_image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def no_cross_source(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# Defaults every Qwen3-Next-shaped config class shares (Qwen3NextConfig; the Qwen3.5 text classes
# inherit them in transformers' modular files)
GATED_DELTANET_DEFAULTS = {
    "num_attention_heads": 16,
    "head_dim": 256,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
}

FAMILY = Family(
    __name__,
    {"qwen3_next": Qwen3NextSpec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={
        "qwen3_next": ConfigClass(
            "Qwen3NextConfig",
            "qwen3_next/configuration_qwen3_next.py",
            Qwen3NextConfig,
            {
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 48,
                "num_key_value_heads": 2,
                **GATED_DELTANET_DEFAULTS,
                "decoder_sparse_step": 1,
                "moe_intermediate_size": 512,
                "shared_expert_intermediate_size": 512,
                "num_experts_per_tok": 10,
                "num_experts": 512,
                "mlp_only_layers": [],
            },
            copied=("layer_types", "full_attention_interval"),
            none_is_default=("mlp_only_layers",),
        )
    },
    # the checkpoints' mtp.* (one multi-token-prediction layer) are not built: Qwen3NextForCausalLM
    # _keys_to_ignore_on_load_unexpected = [r"^mtp.*"]
    weight_rules={"qwen3_next": (MTP_IGNORED, *LM_WEIGHT_RULES)},
    gguf_architectures=("qwen3next",),  # llama.cpp src/llama-arch.cpp: LLM_ARCH_QWEN3NEXT "qwen3next"
)
