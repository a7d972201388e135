"""Kimi Linear (KimiLinearForCausalLM, Moonshot AI: Kimi-Linear-48B-A3B): Kimi Delta Attention (KDA, a Gated
DeltaNet with a per-channel forget gate) and multi-head latent attention layers, with DeepSeek-style experts
(transformers models/kimi_linear/modeling_kimi_linear.py, configuration_kimi_linear.py).

- Layer i's mixer is `layer_types[i]` ("full_attention": MLA; else KDA); without layer_types it comes from the
  checkpoint's `linear_attn_config` (`full_attn_layers` and `kda_layers`, 1-indexed), else every fourth layer
  from layer 4 (0-indexed) is MLA (KimiLinearConfig.__post_init__). `linear_attn_config` also gives `head_dim`,
  `num_heads` and `short_conv_kernel_size` (read as linear_head_dim, linear_num_heads, linear_conv_kernel_dim).
- MLA (KimiLinearAttention): q_proj (heads x (qk_nope + qk_rope)) or, with q_lora_rank, q_a_proj + q_a_layernorm +
  q_b_proj; kv_a_proj_with_mqa (hidden -> kv_lora_rank + qk_rope), kv_a_layernorm, kv_b_proj (kv_lora_rank ->
  heads x (qk_nope + v_head_dim)), o_proj; attention_bias on q_a, kv_a and o. It caches the latent and the rope
  key, one "head" each (archs/caches.py MLALatent).
- KDA (KimiLinearDeltaAttention): q/k/v_proj (hidden -> qkv = linear_num_heads x linear_head_dim), a depthwise
  conv1d over q, k and v (3 x qkv channels, no bias), a forget gate (f_a_proj hidden -> head_dim, f_b_proj ->
  qkv, dt_bias of qkv, A_log of one per head), b_proj (heads), g_a_proj / g_b_proj, a gated o_norm of head_dim,
  o_proj. Its cache per sequence: a conv state of 3 x qkv x kernel in the model's dtype and a float32 recurrent
  state of heads x head_dim x head_dim (archs/caches.py LinearAttentionState; measured).
- Feed-forward by `mlp_layer_types` ("dense" / "sparse"; default: the first `first_k_dense_replace` (1) dense): a
  SwiGLU of intermediate_size, or a router (num_experts x hidden; e_score_correction_bias is a buffer), experts of
  moe_intermediate_size and a shared SwiGLU of moe_intermediate_size x n_shared_experts.
- Two RMSNorms per layer, the final norm, and an LM head of its own even with tie_word_embeddings true
  (KimiLinearForCausalLM._tied_weights_keys is empty).
The checkpoint's own names are read as transformers reads them (attribute_map): num_experts (num_local_experts),
num_experts_per_token (num_experts_per_tok), num_shared_experts (n_shared_experts), model_max_length
(max_position_embeddings).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import BaseModel, ConfigDict, Field, model_validator
from .base import (
    Geometry,
    HeadDim,
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
    linear,
    norm,
)
from .caches import CacheKind, LinearAttentionState, MLALatent
from .decoder import LM_WEIGHT_RULES
from .family import ConfigClass, Family, no_cross_source, no_image_tokens
from .llama import check_layer_types, gated_mlp
from .moe import check_experts, expert_tensors

ExpertCount = Annotated[int, Field(gt=0, le=L.MAX_EXPERTS)]
Kernel = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]
Rank = Annotated[int, Field(gt=0, le=L.MAX_HIDDEN)]
LayerNumber = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]  # 1-indexed, as the checkpoint writes them


class LinearAttnConfig(BaseModel):
    """The checkpoint's `linear_attn_config` (what KimiLinearConfig.__post_init__ reads from it; other keys of the
    remote-code config are ignored as transformers ignores them)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)

    full_attn_layers: list[LayerNumber] | None = Field(default=None, max_length=L.MAX_LAYERS)
    kda_layers: list[LayerNumber] | None = Field(default=None, max_length=L.MAX_LAYERS)
    head_dim: HeadDim | None = None
    num_heads: Heads | None = None
    short_conv_kernel_size: Kernel | None = None


class KimiLinearConfig(Strict):
    """KimiLinearConfig fields (transformers models/kimi_linear/configuration_kimi_linear.py)."""

    model_type: Literal["kimi_linear"] | None = None
    vocab_size: Vocab = 163840
    hidden_size: Hidden = 2304
    intermediate_size: Intermediate = 9216
    moe_intermediate_size: Intermediate = 1024
    num_hidden_layers: Layers = 27
    num_attention_heads: Heads = 32
    num_key_value_heads: Heads | None = 32  # no tensor: MLA caches the latent
    n_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)] = 1
    num_shared_experts: Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)] | None = None  # read as n_shared_experts
    kv_lora_rank: Rank = 512
    q_lora_rank: Rank | None = None
    qk_rope_head_dim: HeadDim = 64
    v_head_dim: HeadDim = 128
    qk_nope_head_dim: HeadDim = 128
    num_experts_per_tok: ExpertCount = 8
    num_experts_per_token: ExpertCount | None = None  # read as num_experts_per_tok
    max_position_embeddings: Positions = 1048576
    model_max_length: Positions | None = None  # read as max_position_embeddings
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    num_local_experts: ExpertCount = 256
    num_experts: ExpertCount | None = None  # read as num_local_experts
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = Field(default=None, max_length=L.MAX_LAYERS)
    first_k_dense_replace: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)] = 1  # fills mlp_layer_types
    layer_types: list[Literal["full_attention", "linear_attention"]] | None = Field(
        default=None, max_length=L.MAX_LAYERS
    )
    linear_attn_config: LinearAttnConfig | None = None
    linear_head_dim: HeadDim = 128
    linear_num_heads: Heads = 32
    linear_conv_kernel_dim: Kernel = 4

    @property
    def mla(self) -> tuple[bool, ...]:
        """Per layer: multi-head latent attention (else KDA)."""
        n = self.num_hidden_layers
        if self.layer_types is not None:
            return tuple(t == "full_attention" for t in self.layer_types)
        lac = self.linear_attn_config
        if lac is not None and lac.full_attn_layers is not None and lac.kda_layers is not None:
            full = set(lac.full_attn_layers)
            return tuple(i + 1 in full for i in range(n))
        return tuple(bool(i) and i % 4 == 0 for i in range(n))

    @property
    def sparse(self) -> tuple[bool, ...]:
        if self.mlp_layer_types is not None:
            return tuple(t == "sparse" for t in self.mlp_layer_types)
        return tuple(i >= self.first_k_dense_replace for i in range(self.num_hidden_layers))

    def _linear(self, key: str, default: int) -> int:
        value = getattr(self.linear_attn_config, key, None) if self.linear_attn_config is not None else None
        return value or default

    @property
    def kda_head_dim(self) -> int:
        return self._linear("head_dim", self.linear_head_dim)

    @property
    def kda_heads(self) -> int:
        return self._linear("num_heads", self.linear_num_heads)

    @property
    def kda_kernel(self) -> int:
        return self._linear("short_conv_kernel_size", self.linear_conv_kernel_dim)

    @property
    def qkv(self) -> int:
        return self.kda_heads * self.kda_head_dim

    @property
    def experts(self) -> int:
        return self.num_experts or self.num_local_experts

    @property
    def per_token(self) -> int:
        return self.num_experts_per_token or self.num_experts_per_tok

    @property
    def shared(self) -> int:
        return self.n_shared_experts if self.num_shared_experts is None else self.num_shared_experts

    @property
    def context(self) -> int:
        return self.model_max_length or self.max_position_embeddings

    @property
    def kda_state(self) -> LinearAttentionState:
        """conv state of 3 x qkv x kernel; float32 recurrent state heads x head_dim x head_dim."""
        d = self.kda_head_dim
        return LinearAttentionState(3 * self.qkv * self.kda_kernel, self.kda_heads * d * d, ssm_f32=True)

    @property
    def ffn_width(self) -> int:
        dense = self.intermediate_size if not all(self.sparse) else 0
        moe = (self.per_token + self.shared) * self.moe_intermediate_size if any(self.sparse) else 0
        return max(dense, moe)

    @model_validator(mode="after")
    def _check(self) -> KimiLinearConfig:
        n = self.num_hidden_layers
        check_layer_types(self.layer_types, n)
        if self.mlp_layer_types is not None and len(self.mlp_layer_types) != n:
            raise ValueError(f"mlp_layer_types has {len(self.mlp_layer_types)} entries for {n} layers")
        lac = self.linear_attn_config
        if (
            self.layer_types is None
            and lac is not None
            and lac.full_attn_layers is not None
            and lac.kda_layers is not None
        ):
            given = sorted([*lac.full_attn_layers, *lac.kda_layers])
            if given != list(range(1, n + 1)):
                raise ValueError(
                    f"linear_attn_config: full_attn_layers and kda_layers must name each of the {n} layers (1 to {n}) once"
                )
        if any(self.sparse):
            check_experts(self.experts, self.per_token)
        return self


class KimiLinearSpec(ModelSpecBase):
    architecture: Literal["kimi_linear"]
    config: KimiLinearConfig


def _mla_tensors(c: KimiLinearConfig, p: str, i: int) -> Iterator[Tensor]:
    h, comp, heads, b = c.hidden_size, "decoder", c.num_attention_heads, c.attention_bias
    qk = c.qk_nope_head_dim + c.qk_rope_head_dim
    if c.q_lora_rank is None:
        yield from linear(f"{p}.attn_q", comp, heads * qk, h, "attn_q", False, i)
    else:
        yield from linear(f"{p}.attn_q_a", comp, c.q_lora_rank, h, "attn_q_a", b, i)
        yield from norm(f"{p}.attn_q_a_norm", comp, c.q_lora_rank, i)
        yield from linear(f"{p}.attn_q_b", comp, heads * qk, c.q_lora_rank, "attn_q_b", False, i)
    yield from linear(f"{p}.attn_kv_a_mqa", comp, c.kv_lora_rank + c.qk_rope_head_dim, h, "attn_kv_a_mqa", b, i)
    yield from norm(f"{p}.attn_kv_a_norm", comp, c.kv_lora_rank, i)
    kv_b = heads * (c.qk_nope_head_dim + c.v_head_dim)
    yield from linear(f"{p}.attn_kv_b", comp, kv_b, c.kv_lora_rank, "attn_kv_b", False, i)
    yield from linear(f"{p}.attn_output", comp, h, heads * c.v_head_dim, "attn_output", b, i)


def _kda_tensors(c: KimiLinearConfig, p: str, i: int) -> Iterator[Tensor]:
    """KimiLinearDeltaAttention. GGUF names (llama.cpp kimi-linear): ssm_q/k/v, ssm_conv1d, ssm_f_a/f_b, ssm_dt,
    ssm_a, ssm_beta, ssm_g_a/g_b, ssm_norm, ssm_out."""
    h, comp, qkv, d, heads = c.hidden_size, "decoder", c.qkv, c.kda_head_dim, c.kda_heads
    for proj in ("q", "k", "v"):
        yield from linear(f"{p}.ssm_{proj}", comp, qkv, h, "ssm_in", False, i)
    yield Tensor(f"{p}.ssm_conv1d.weight", comp, (3 * qkv, 1, c.kda_kernel), "conv", i)
    yield from linear(f"{p}.ssm_f_a", comp, d, h, "ssm_in", False, i)
    yield from linear(f"{p}.ssm_f_b", comp, qkv, d, "ssm_in", False, i)
    yield Tensor(f"{p}.ssm_dt.bias", comp, (qkv,), "bias", i)
    yield Tensor(f"{p}.ssm_a", comp, (1, 1, heads, 1), "other", i)
    yield from linear(f"{p}.ssm_beta", comp, heads, h, "ssm_in", False, i)
    yield from linear(f"{p}.ssm_g_a", comp, d, h, "ssm_in", False, i)
    yield from linear(f"{p}.ssm_g_b", comp, qkv, d, "ssm_in", False, i)
    yield from norm(f"{p}.ssm_norm", comp, d, i)
    yield from linear(f"{p}.ssm_out", comp, h, qkv, "ssm_out", False, i)


def _tensors(spec: KimiLinearSpec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i, (mla, sparse) in enumerate(zip(c.mla, c.sparse, strict=True)):
        p = f"decoder.{i}"
        yield from (_mla_tensors if mla else _kda_tensors)(c, p, i)
        if sparse:
            yield from expert_tensors(p, comp, i, hidden=h, inter=c.moe_intermediate_size, experts=c.experts)
            yield from gated_mlp(f"{p}.shexp", comp, h, c.moe_intermediate_size * c.shared, False, i)
        else:
            yield from gated_mlp(p, comp, h, c.intermediate_size, False, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
    yield from norm("decoder.output_norm", comp, h, None)
    # never tied: KimiLinearForCausalLM._tied_weights_keys = {} whatever tie_word_embeddings says
    yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: KimiLinearSpec) -> Geometry:
    """MLA layers keep the latent (MLALatent: kv_lora_rank + qk_rope per position, as transformers 5 caches it);
    KDA layers a LinearAttentionState."""
    c = spec.config
    n, rank, rope = c.num_hidden_layers, c.kv_lora_rank, c.qk_rope_head_dim
    state = c.kda_state
    kinds: tuple[tuple[CacheKind, ...], ...] = tuple((MLALatent(rank, rope),) if m else (state,) for m in c.mla)
    heads = c.num_attention_heads
    width = (
        ("moe_intermediate_size", c.moe_intermediate_size, False)
        if any(c.sparse)
        else ("intermediate_size", c.intermediate_size, False)
    )
    return Geometry(
        architecture=spec.architecture,
        # the latent as one "head" of key_dim kv_lora_rank and value_dim qk_rope (archs/deepseek.py's convention)
        self_kv=tuple(LayerKV("full", 1, rank, rope) if m else None for m in c.mla),
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=False,  # KimiLinearForCausalLM ties nothing (_tied_weights_keys = {})
        hidden_size=c.hidden_size,
        num_attention_heads=heads,
        intermediate_size=c.ffn_width,
        context_window=c.context,
        tp_constraints=(("attention heads", heads, False), width, ("KDA heads", c.kda_heads, False)),
        tp_kv_heads=1,
        no_cross_reason="decoder-only: no cross-attention",
        experts=c.experts if any(c.sparse) else 0,
        experts_per_token=c.per_token if any(c.sparse) else 0,
        mla=(rank, rope, heads, c.qk_nope_head_dim + c.qk_rope_head_dim, c.v_head_dim),
        ssm_state=tuple((0, 0) if m else (state.conv, state.ssm) for m in c.mla),
        ssm_conv_kernel=c.kda_kernel,
        ssm_state_f32=True,
        gguf_architecture="kimi-linear",
        cache_kinds=kinds,
    )


def _stages(spec: KimiLinearSpec, context: int, source: int, images: int) -> list[Stage]:
    """Every head's decompressed keys and values in the MLA layers; the widest per-token intermediate of the
    feed-forward and of KDA's q, k, v projections."""
    c = spec.config
    heads, qk = c.num_attention_heads, c.qk_nope_head_dim + c.qk_rope_head_dim
    width = max(c.ffn_width, 3 * c.qkv)
    return [Stage(context, c.hidden_size, heads * qk, heads * (qk + c.v_head_dim) // 2, width, True, heads, context)]


FAMILY = Family(
    __name__,
    {"kimi_linear": KimiLinearSpec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={
        "kimi_linear": ConfigClass(
            "KimiLinearConfig",
            "kimi_linear/configuration_kimi_linear.py",
            KimiLinearConfig,
            {
                "vocab_size": 163840,
                "hidden_size": 2304,
                "intermediate_size": 9216,
                "moe_intermediate_size": 1024,
                "num_hidden_layers": 27,
                "num_attention_heads": 32,
                "n_shared_experts": 1,
                "kv_lora_rank": 512,
                "q_lora_rank": None,
                "qk_rope_head_dim": 64,
                "v_head_dim": 128,
                "qk_nope_head_dim": 128,
                "num_experts_per_tok": 8,
                "max_position_embeddings": 1048576,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "num_local_experts": 256,
                "linear_head_dim": 128,
                "linear_num_heads": 32,
                "linear_conv_kernel_dim": 4,
            },
            copied=(
                "num_key_value_heads",
                "num_shared_experts",
                "num_experts_per_token",
                "model_max_length",
                "num_experts",
                "mlp_layer_types",
                "first_k_dense_replace",
                "layer_types",
                "linear_attn_config",
            ),
        )
    },
    weight_rules={"kimi_linear": LM_WEIGHT_RULES},
    gguf_architectures=("kimi-linear",),  # llama.cpp src/llama-arch.cpp: LLM_ARCH_KIMI_LINEAR "kimi-linear"
)
