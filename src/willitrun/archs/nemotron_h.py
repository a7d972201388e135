"""Nemotron-H (NemotronHForCausalLM, NVIDIA Nemotron-H / Nemotron Nano 2 and 3): a stack of single-mixer blocks,
each an RMSNorm and one of Mamba-2, attention, a dense MLP or a mixture of experts (transformers
models/nemotron_h/modeling_nemotron_h.py NemotronHBlock, configuration_nemotron_h.py).

- Block i's mixer is `layers_block_type[i]` ("linear_attention" = Mamba-2, "full_attention", "mlp", "moe";
  legacy "mamba" / "attention" are remapped); config.json may give it as `hybrid_override_pattern` (one character
  per block: M Mamba-2, * attention, - MLP, E experts), else the class default [Mamba-2, experts, attention, MLP].
  The number of blocks is the list's length (num_hidden_layers is ignored: NemotronHConfig.num_hidden_layers).
- Mamba-2 (NemotronHMamba2Mixer): archs/mamba2.py's mixer with d_inner = mamba_num_heads x mamba_head_dim,
  n_groups, ssm_state_size, conv_kernel, in/out projections biased when use_bias, conv bias when use_conv_bias.
  Its cache per sequence: conv channels x conv_kernel in the model's dtype and a float32 SSM state (measured).
- Attention (NemotronHAttention): q/k/v/o without biases, head_dim; no rotary (NoPE) changes no shape.
- MLP (NemotronHMLP): up_proj and down_proj (relu2, not gated), biased when mlp_bias.
- Experts (NemotronHMoE): a router (n_routed_experts x hidden; its e_score_correction_bias is a buffer), ungated
  experts up (E, moe_intermediate_size, d) and down (E, d, moe_intermediate_size) where d = moe_latent_size
  (with fc1/fc2 latent projections around them) or hidden_size, and a shared MLP of
  moe_shared_expert_intermediate_size.
- model.embeddings, model.norm_f, and an lm_head of its own even with tie_word_embeddings true
  (NemotronHForCausalLM._tied_weights_keys is empty); the MTP layers are not built (checkpoint keys
  mtp.* are ignored on load).
Old config.json names are read as transformers reads them (__post_init__): mamba_n_groups, mamba_d_conv,
mamba_conv_bias, mamba_expand, mamba_chunk_size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
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
    check_heads,
    linear,
    norm,
)
from .caches import CacheKind, FullAttention, MambaState
from .family import ConfigClass, Family, no_cross_source, no_image_tokens
from .mamba import State
from .mamba2 import Groups, conv_channels, mixer_tensors
from .moe import check_experts

BlockType = Literal["linear_attention", "full_attention", "mlp", "moe", "mamba", "attention"]
# configuration_utils._LEGACY_LAYER_TYPE_REMAP, as NemotronHConfig applies it
LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}
PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}  # NemotronHConfig._pattern_to_list
DEFAULT_BLOCKS = ("linear_attention", "moe", "full_attention", "mlp")  # NemotronHConfig.__post_init__
ExpertCount = Annotated[int, Field(gt=0, le=L.MAX_EXPERTS)]


class NemotronHConfig(Strict):
    """NemotronHConfig fields (transformers models/nemotron_h/configuration_nemotron_h.py)."""

    model_type: Literal["nemotron_h"] | None = None
    vocab_size: Vocab = 131072
    hidden_size: Hidden = 4096
    layers_block_type: list[BlockType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    layer_types: list[BlockType] | None = Field(default=None, max_length=L.MAX_LAYERS)  # attribute_map's name
    hybrid_override_pattern: Annotated[str, Field(pattern=r"^[ME*-]+$", max_length=L.MAX_LAYERS)] | None = None
    num_hidden_layers: Layers | None = None  # ignored by transformers when the blocks are given (a warning)
    tie_word_embeddings: bool = False
    num_attention_heads: Heads = 32
    num_key_value_heads: Heads = 8  # transformers refuses null (a strict int field)
    head_dim: HeadDim = 128
    max_position_embeddings: Positions = 4096
    intermediate_size: Intermediate = 21504
    mlp_bias: bool = False
    ssm_state_size: State = 128
    mamba_num_heads: Heads = 128
    mamba_head_dim: HeadDim = 64
    n_groups: Groups = 8
    mamba_n_groups: Groups | None = None  # read as n_groups
    conv_kernel: State = 4
    mamba_d_conv: State | None = None  # read as conv_kernel
    use_conv_bias: bool = True
    mamba_conv_bias: bool | None = None  # read as use_conv_bias
    use_bias: bool = False
    n_routed_experts: ExpertCount = 8
    num_local_experts: ExpertCount | None = None  # attribute_map: n_routed_experts
    moe_intermediate_size: Intermediate = 7688
    moe_shared_expert_intermediate_size: Intermediate = 7688
    moe_latent_size: Hidden | None = None
    num_experts_per_tok: ExpertCount = 2

    @property
    def blocks(self) -> tuple[str, ...]:
        types = self.layers_block_type if self.layers_block_type is not None else self.layer_types
        if types is not None:
            return tuple(LEGACY.get(t, t) for t in types)
        if self.hybrid_override_pattern is not None:
            return tuple(PATTERN[ch] for ch in self.hybrid_override_pattern)
        return DEFAULT_BLOCKS

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads

    @property
    def groups(self) -> int:
        return self.mamba_n_groups or self.n_groups

    @property
    def kernel(self) -> int:
        return self.mamba_d_conv or self.conv_kernel

    @property
    def conv_bias(self) -> bool:
        return self.use_conv_bias if self.mamba_conv_bias is None else self.mamba_conv_bias

    @property
    def experts(self) -> int:
        return self.num_local_experts or self.n_routed_experts

    @property
    def d_inner(self) -> int:
        return self.mamba_num_heads * self.mamba_head_dim

    @property
    def has_experts(self) -> bool:
        return "moe" in self.blocks

    @property
    def ffn_width(self) -> int:
        """The widest per-token feed-forward intermediate: a dense MLP, or the routed experts and shared one."""
        dense = self.intermediate_size if "mlp" in self.blocks else 0
        moe = self.num_experts_per_tok * self.moe_intermediate_size + self.moe_shared_expert_intermediate_size
        return max(dense, moe if self.has_experts else 0)

    @model_validator(mode="after")
    def _check(self) -> NemotronHConfig:
        check_heads(self.num_attention_heads, self.kv_heads, "")
        if self.mamba_num_heads % self.groups:
            raise ValueError(
                f"the Mamba-2 heads ({self.mamba_num_heads}) are not a multiple of n_groups ({self.groups})"
            )
        if self.has_experts:
            check_experts(self.experts, self.num_experts_per_tok)
        return self


class NemotronHSpec(ModelSpecBase):
    architecture: Literal["nemotron_h"]
    config: NemotronHConfig


def _tensors(spec: NemotronHSpec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i, block in enumerate(c.blocks):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", comp, h, i)
        if block == "linear_attention":
            yield from mixer_tensors(
                p,
                i,
                hidden=h,
                d_inner=c.d_inner,
                heads=c.mamba_num_heads,
                groups=c.groups,
                state=c.ssm_state_size,
                kernel=c.kernel,
                in_bias=c.use_bias,
                out_bias=c.use_bias,
                conv_bias=c.conv_bias,
                gated_norm=True,
            )
        elif block == "full_attention":
            q, kv = c.num_attention_heads * c.head_dim, c.kv_heads * c.head_dim
            yield from linear(f"{p}.attn_q", comp, q, h, "attn_q", False, i)
            yield from linear(f"{p}.attn_k", comp, kv, h, "attn_k", False, i)
            yield from linear(f"{p}.attn_v", comp, kv, h, "attn_v", False, i)
            yield from linear(f"{p}.attn_output", comp, h, q, "attn_output", False, i)
        elif block == "mlp":
            yield from linear(f"{p}.ffn_up", comp, c.intermediate_size, h, "ffn_up", c.mlp_bias, i)
            yield from linear(f"{p}.ffn_down", comp, h, c.intermediate_size, "ffn_down", c.mlp_bias, i)
        else:
            yield from _moe_tensors(c, p, i)
    yield from norm("decoder.output_norm", comp, h, None)
    # never tied: NemotronHForCausalLM._tied_weights_keys = {} whatever tie_word_embeddings says
    yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _moe_tensors(c: NemotronHConfig, p: str, i: int) -> Iterator[Tensor]:
    """NemotronHMoE: experts (up, down: not gated), the router, the shared MLP, the latent projections."""
    h, comp, e, inter = c.hidden_size, "decoder", c.experts, c.moe_intermediate_size
    d = c.moe_latent_size or h
    yield Tensor(f"{p}.ffn_up_exps.weight", comp, (e, inter, d), "ffn_up_exps", i)
    yield Tensor(f"{p}.ffn_down_exps.weight", comp, (e, d, inter), "ffn_down_exps", i)
    yield Tensor(f"{p}.ffn_gate_inp.weight", comp, (e, h), "ffn_gate_inp", i)
    shared = c.moe_shared_expert_intermediate_size
    yield from linear(f"{p}.ffn_up_shexp", comp, shared, h, "ffn_up", c.mlp_bias, i)
    yield from linear(f"{p}.ffn_down_shexp", comp, h, shared, "ffn_down", c.mlp_bias, i)
    if c.moe_latent_size is not None:
        yield from linear(f"{p}.ffn_latent_in", comp, c.moe_latent_size, h, "ffn_up", c.mlp_bias, i)
        yield from linear(f"{p}.ffn_latent_out", comp, h, c.moe_latent_size, "ffn_down", c.mlp_bias, i)


def _geometry(spec: NemotronHSpec) -> Geometry:
    """Keys and values on the attention blocks, a Mamba-2 state on the Mamba blocks, nothing on MLP and expert
    blocks (archs/caches.py)."""
    c = spec.config
    blocks = c.blocks
    n = len(blocks)
    hd = c.head_dim
    conv, ssm = conv_channels(c.d_inner, c.groups, c.ssm_state_size) * c.kernel, c.d_inner * c.ssm_state_size
    kinds: list[tuple[CacheKind, ...]] = []
    for b in blocks:
        if b == "full_attention":
            kinds.append((FullAttention(c.kv_heads, hd, hd),))
        elif b == "linear_attention":
            kinds.append((MambaState(conv, ssm, True),))
        else:
            kinds.append(())
    width = (
        ("moe_intermediate_size", c.moe_intermediate_size, False)
        if c.has_experts
        else ("intermediate_size", c.intermediate_size, False)
    )
    return Geometry(
        architecture=spec.architecture,
        self_kv=tuple(LayerKV("full", c.kv_heads, hd, hd) if b == "full_attention" else None for b in blocks),
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=False,  # NemotronHForCausalLM ties nothing (_tied_weights_keys = {})
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.ffn_width,
        context_window=c.max_position_embeddings,
        tp_constraints=(
            ("attention heads", c.num_attention_heads, False),
            ("KV heads", c.kv_heads, True),
            width,
            ("Mamba-2 heads", c.mamba_num_heads, False),
        ),
        tp_kv_heads=c.kv_heads,
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=c.num_attention_heads // c.kv_heads,
        experts=c.experts if c.has_experts else 0,
        experts_per_token=c.num_experts_per_tok if c.has_experts else 0,
        ssm_state=tuple((conv, ssm) if b == "linear_attention" else (0, 0) for b in blocks),
        ssm_conv_kernel=c.kernel,
        ssm_state_f32=True,
        # llama.cpp src/llama-arch.cpp: "nemotron_h", and "nemotron_h_moe" for the files with experts
        gguf_architecture="nemotron_h_moe" if c.has_experts else "nemotron_h",
        cache_kinds=tuple(kinds),
    )


def _stages(spec: NemotronHSpec, context: int, source: int, images: int) -> list[Stage]:
    """The widest per-token intermediate of any block: the feed-forward, or the Mamba-2 in_proj output."""
    c = spec.config
    mamba = c.d_inner + conv_channels(c.d_inner, c.groups, c.ssm_state_size) + c.mamba_num_heads
    heads, hd = c.num_attention_heads, c.head_dim
    return [Stage(context, c.hidden_size, heads * hd, c.kv_heads * hd, max(c.ffn_width, mamba), False, heads, context)]


FAMILY = Family(
    __name__,
    {"nemotron_h": NemotronHSpec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={
        "nemotron_h": ConfigClass(
            "NemotronHConfig",
            "nemotron_h/configuration_nemotron_h.py",
            NemotronHConfig,
            {
                "vocab_size": 131072,
                "hidden_size": 4096,
                "tie_word_embeddings": False,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": 128,
                "max_position_embeddings": 4096,
                "intermediate_size": 21504,
                "mlp_bias": False,
                "ssm_state_size": 128,
                "mamba_num_heads": 128,
                "mamba_head_dim": 64,
                "n_groups": 8,
                "conv_kernel": 4,
                "use_conv_bias": True,
                "use_bias": False,
                "n_routed_experts": 8,
                "moe_intermediate_size": 7688,
                "moe_shared_expert_intermediate_size": 7688,
                "moe_latent_size": None,
                "num_experts_per_tok": 2,
            },
            copied=(
                "layers_block_type",
                "layer_types",
                "hybrid_override_pattern",
                "num_hidden_layers",
                "mamba_n_groups",
                "mamba_d_conv",
                "mamba_conv_bias",
                "num_local_experts",
            ),
        )
    },
    # NemotronHModel: model.embeddings, model.layers.N.{norm, mixer}, model.norm_f
    weight_rules={
        "nemotron_h": (
            (r"(?:model\.|backbone\.)?embeddings\.weight", "embeddings"),
            (r"(?:model\.|backbone\.)?(?:layers\.\d+\..+|norm_f\.weight)", "decoder"),
            (r"lm_head\.weight", "lm_head"),
        )
    },
    gguf_architectures=("nemotron_h", "nemotron_h_moe"),  # llama.cpp src/llama-arch.cpp LLM_ARCH_NEMOTRON_H(_MOE)
)
