"""Mamba-2 (Mamba2ForCausalLM): no attention; each layer an RMSNorm and a Mamba-2 mixer
(transformers models/mamba2/modeling_mamba2.py Mamba2Mixer): d_inner = expand x hidden_size split into
`num_heads` heads of `head_dim`; a depthwise conv1d over d_inner + 2 x n_groups x state_size channels
(x, B and C), in_proj (hidden -> d_inner gate + conv channels + num_heads dt), per-head dt_bias, A_log
and D, a gated RMSNorm of d_inner, out_proj (d_inner -> hidden).

The same mixer is Falcon-H1's (next to attention in every layer) and Granite 4.0-H's (most layers):
`mixer_tensors` lists it for all three.

The cache (transformers 5.23 LinearAttentionLayer, measured in tests/reference), per layer and
sequence, whatever the context:
- conv state: conv channels x conv_kernel, in the model's dtype (`update_conv_state` stores the
  in_proj output it is given);
- SSM state: num_heads x head_dim x state_size in **float32** whatever the model's dtype:
  `mamba2_chunk_scan` computes in float32 (`hidden_states.float()`) and returns its final state so,
  `LinearAttentionLayer.lazy_initialization` keeps that dtype (`zeros_like`), and a decoding step
  writes back in the state's own dtype (`state.copy_(ssm_states.to(state.dtype))`).
llama.cpp keeps conv_kernel - 1 columns of the conv state and both states in f32
(llama-hparams.cpp n_embd_r / n_embd_s).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import mamba
from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, Family, GGUFRules, GGUFSsm
from .mamba import VLLM_STATE_REFUSAL, State

ARCHITECTURES = ("mamba2",)
Groups = Annotated[int, Field(gt=0, le=L.MAX_HEADS)]


def check_mamba2_heads(d_inner: int, heads: int, head_dim: int, groups: int, where: str = "") -> None:
    """The shape rules transformers checks (Mamba2Config / GraniteMoeHybridConfig.validate_architecture)
    or trips over in a forward pass (B and C are repeated num_heads // n_groups times per group)."""
    if heads * head_dim != d_inner:
        raise ValueError(
            f"{where}the Mamba-2 heads ({heads} x head_dim {head_dim} = {heads * head_dim}) must equal "
            f"the SSM inner width ({d_inner})"
        )
    if heads % groups:
        raise ValueError(f"{where}the Mamba-2 heads ({heads}) are not a multiple of n_groups ({groups})")


def mixer_tensors(
    p: str,
    i: int,
    *,
    hidden: int,
    d_inner: int,
    heads: int,
    groups: int,
    state: int,
    kernel: int,
    in_bias: bool,
    out_bias: bool,
    conv_bias: bool,
    gated_norm: bool,
) -> Iterator[Tensor]:
    """One Mamba-2 mixer: dt_bias, A_log, D (one per head), the depthwise conv over x, B and C, in_proj
    (gate + conv channels + dt), the gated RMSNorm of d_inner (absent in Falcon-H1 unless mamba_rms_norm),
    out_proj. GGUF names: ssm_dt.bias, ssm_a, ssm_d, ssm_conv1d, ssm_in, ssm_norm, ssm_out."""
    conv = conv_channels(d_inner, groups, state)
    yield Tensor(f"{p}.ssm_dt.bias", "decoder", (heads,), "bias", i)
    yield Tensor(f"{p}.ssm_a", "decoder", (heads,), "other", i)
    yield Tensor(f"{p}.ssm_d", "decoder", (heads,), "other", i)
    yield Tensor(f"{p}.ssm_conv1d.weight", "decoder", (conv, 1, kernel), "conv", i)
    if conv_bias:
        yield Tensor(f"{p}.ssm_conv1d.bias", "decoder", (conv,), "bias", i)
    yield from linear(f"{p}.ssm_in", "decoder", d_inner + conv + heads, hidden, "ssm_in", in_bias, i)
    if gated_norm:
        yield from norm(f"{p}.ssm_norm", "decoder", d_inner, i)
    yield from linear(f"{p}.ssm_out", "decoder", hidden, d_inner, "ssm_out", out_bias, i)


def conv_channels(d_inner: int, groups: int, state: int) -> int:
    """The conv1d's channels: x (d_inner) and one B and one C of state_size per group."""
    return d_inner + 2 * groups * state


def layer_state(d_inner: int, heads: int, head_dim: int, groups: int, state: int, kernel: int) -> tuple[int, int]:
    """(conv, SSM) state elements of one Mamba-2 layer and sequence: conv channels x conv_kernel and
    heads x head_dim x state_size."""
    return conv_channels(d_inner, groups, state) * kernel, heads * head_dim * state


class Mamba2Config(Strict):
    """Mamba2Config fields (transformers models/mamba2/configuration_mamba2.py)."""

    model_type: Literal["mamba2"] | None = None
    vocab_size: Vocab
    hidden_size: Hidden
    num_hidden_layers: Layers
    num_heads: Heads = 128
    head_dim: HeadDim = 64
    state_size: State = 128
    expand: Annotated[int, Field(gt=0, le=1024)] = 2
    conv_kernel: State = 4
    n_groups: Groups = 8
    use_bias: bool = False
    use_conv_bias: bool = True
    hidden_act: Literal["silu"] = "silu"
    chunk_size: State = 256
    # Read by no Mamba2Mixer tensor (dt has one value per head): kept so a spec can copy config.json
    time_step_rank: State | Literal["auto"] = "auto"
    tie_word_embeddings: bool = False

    @property
    def inner(self) -> int:
        """Mamba2Mixer.intermediate_size = expand x hidden_size (config.json's intermediate_size is
        read by no module)."""
        return self.expand * self.hidden_size

    @model_validator(mode="after")
    def _check_heads(self) -> Mamba2Config:
        check_mamba2_heads(self.inner, self.num_heads, self.head_dim, self.n_groups)
        return self


class Mamba2Spec(ModelSpecBase):
    architecture: Literal["mamba2"]
    config: Mamba2Config


SPECS = {"mamba2": Mamba2Spec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: Mamba2Config = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from mixer_tensors(
            p,
            i,
            hidden=h,
            d_inner=c.inner,
            heads=c.num_heads,
            groups=c.n_groups,
            state=c.state_size,
            kernel=c.conv_kernel,
            in_bias=c.use_bias,
            out_bias=c.use_bias,
            conv_bias=c.use_conv_bias,
            gated_norm=True,
        )
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: Mamba2Config = spec.config  # type: ignore[attr-defined]
    n = c.num_hidden_layers
    state = layer_state(c.inner, c.num_heads, c.head_dim, c.n_groups, c.state_size, c.conv_kernel)
    return Geometry(
        architecture=spec.architecture,  # type: ignore[attr-defined]
        self_kv=(None,) * n,
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=1,
        intermediate_size=c.inner,
        context_window=None,
        tp_constraints=(("Mamba-2 heads", c.num_heads, False),),  # heads are what a tensor split divides
        tp_kv_heads=1,
        no_cross_reason="decoder-only: no cross-attention",
        ssm_state=(state,) * n,
        ssm_conv_kernel=c.conv_kernel,
        ssm_state_f32=True,
        gguf_architecture="mamba2",
        refusals={"vllm": VLLM_STATE_REFUSAL},
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    """in_proj's output (gate, conv channels, dt) per token, with the fused kernels (mamba_ssm); the
    chunked scan's transient chunk_size x chunk_size terms of transformers' reference path are not
    modelled."""
    c: Mamba2Config = spec.config  # type: ignore[attr-defined]
    width = c.inner + conv_channels(c.inner, c.n_groups, c.state_size) + c.num_heads
    return [Stage(context, c.hidden_size, 0, 0, width, False, 1, 0)]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
# Mamba2Mixer computes expand x hidden_size and reads no intermediate_size key (dropped)
MAMBA2 = ConfigClass(
    "Mamba2Config",
    "mamba2/configuration_mamba2.py",
    Mamba2Config,
    {
        "vocab_size": 32768,
        "hidden_size": 4096,
        "num_hidden_layers": 64,
        "num_heads": 128,
        "head_dim": 64,
        "state_size": 128,
        "expand": 2,
        "conv_kernel": 4,
        "n_groups": 8,
        "use_bias": False,
        "use_conv_bias": True,
        "hidden_act": "silu",
        "chunk_size": 256,
        "time_step_rank": "auto",
        "tie_word_embeddings": False,
    },
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    gguf_architectures=("mamba2",),
    config_json={"mamba2": MAMBA2},
    weight_rules={"mamba2": mamba.WEIGHT_RULES},  # Mamba2ForCausalLM: backbone.* as Mamba's,
    gguf_rules={"mamba2": GGUFRules(ssm=GGUFSsm("mamba2"))},
)
