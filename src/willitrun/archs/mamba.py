"""Mamba and Falcon-Mamba (MambaForCausalLM, FalconMambaForCausalLM): no attention; each layer an
RMSNorm and a selective-scan mixer (transformers models/mamba/modeling_mamba.py MambaMixer):
in_proj (hidden -> 2 x intermediate), a depthwise conv1d over `conv_kernel` positions, x_proj
(intermediate -> time_step_rank + 2 x state_size), dt_proj (time_step_rank -> intermediate, biased),
A_log (intermediate x state_size), D (intermediate), out_proj (intermediate -> hidden). Falcon-Mamba
adds parameter-free RMS normalisations of B, C and dt.

The cache (transformers 5.23 LinearAttentionLayer, measured in tests/reference): per layer and
sequence a conv state of intermediate x conv_kernel in the model's dtype and a recurrent state of
intermediate x state_size in float32 (the selective scan computes in float32, `deltaB_u ... .float()`,
and its final state is cached as is; measured in a bfloat16 run: reference.json state_dtypes_bf16),
whatever the context. llama.cpp keeps conv_kernel - 1 columns of the conv state and both states in f32
(llama-memory-recurrent.cpp).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field
from .base import (
    Geometry,
    Hidden,
    Intermediate,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, Family, WeightRules

ARCHITECTURES = ("mamba", "falcon_mamba")
# vLLM pages Mamba state in its own pool (vllm/v1/kv_cache_interface.py MambaSpec), sized unlike the
# attention blocks the vLLM profile counts: refused rather than answered wrongly.
VLLM_STATE_REFUSAL = "the vLLM profile does not model Mamba state pools yet (use transformers or llama.cpp)"
State = Annotated[int, Field(gt=0, le=L.MAX_STATE)]


class MambaConfig(Strict):
    """MambaConfig / FalconMambaConfig fields (transformers models/mamba/configuration_mamba.py)."""

    model_type: Literal["mamba", "falcon_mamba"] | None = None
    vocab_size: Vocab
    hidden_size: Hidden
    num_hidden_layers: Layers
    state_size: State = 16
    expand: Annotated[int, Field(gt=0, le=1024)] = 2
    # MambaConfig.__post_init__ sets expand x hidden_size, but an explicit intermediate_size in
    # config.json wins (Falcon-Mamba 7B: expand 16 yet intermediate_size 8192, checked in transformers 5.23)
    intermediate_size: Intermediate | None = None
    conv_kernel: State = 4
    use_bias: bool = False
    use_conv_bias: bool = True
    time_step_rank: State | Literal["auto"] = "auto"
    hidden_act: Literal["silu"] = "silu"
    tie_word_embeddings: bool = True

    @property
    def inner(self) -> int:
        return self.intermediate_size or self.expand * self.hidden_size

    @property
    def dt_rank(self) -> int:
        return math.ceil(self.hidden_size / 16) if self.time_step_rank == "auto" else self.time_step_rank


class MambaSpec(ModelSpecBase):
    architecture: Literal["mamba", "falcon_mamba"]
    config: MambaConfig


SPECS = {"mamba": MambaSpec, "falcon_mamba": MambaSpec}


def mixer_tensors(
    p: str, i: int, hidden: int, inner: int, state: int, kernel: int, dt_rank: int, *, bias: bool, conv_bias: bool
) -> Iterator[Tensor]:
    yield Tensor(f"{p}.ssm_a", "decoder", (inner, state), "other", i)
    yield Tensor(f"{p}.ssm_d", "decoder", (inner,), "other", i)
    yield Tensor(f"{p}.ssm_conv1d.weight", "decoder", (inner, 1, kernel), "conv", i)
    if conv_bias:
        yield Tensor(f"{p}.ssm_conv1d.bias", "decoder", (inner,), "bias", i)
    yield from linear(f"{p}.ssm_in", "decoder", 2 * inner, hidden, "ssm_in", bias, i)
    yield from linear(f"{p}.ssm_x", "decoder", dt_rank + 2 * state, inner, "ssm_x", False, i)
    yield from linear(f"{p}.ssm_dt", "decoder", inner, dt_rank, "ssm_dt", True, i)
    yield from linear(f"{p}.ssm_out", "decoder", hidden, inner, "ssm_out", bias, i)


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: MambaConfig = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from mixer_tensors(
            p, i, h, c.inner, c.state_size, c.conv_kernel, c.dt_rank, bias=c.use_bias, conv_bias=c.use_conv_bias
        )
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: MambaConfig = spec.config  # type: ignore[attr-defined]
    n = c.num_hidden_layers
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
        tp_constraints=(("intermediate_size", c.inner, False),),
        tp_kv_heads=1,
        no_cross_reason="decoder-only: no cross-attention",
        ssm_state=((c.inner * c.conv_kernel, c.inner * c.state_size),) * n,
        ssm_conv_kernel=c.conv_kernel,
        ssm_state_f32=True,
        ssm_mixer="mamba",  # MambaMixer (Mamba-1)
        gguf_architecture="mamba",
        refusals={"vllm": VLLM_STATE_REFUSAL},
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    """in_proj's 2 x intermediate and the conv output per token, with the fused selective-scan kernel
    (mamba_ssm); transformers' reference path without it materialises intermediate x state_size per
    token and is not modelled."""
    c: MambaConfig = spec.config  # type: ignore[attr-defined]
    return [Stage(context, c.hidden_size, 0, 0, c.inner, True, 1, 0)]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
# MambaForCausalLM and FalconMambaForCausalLM: backbone.embeddings, backbone.layers.N, backbone.norm_f
WEIGHT_RULES: WeightRules = (
    (r"backbone\.embeddings\.weight", "embeddings"),
    (r"backbone\.(?:layers\.\d+\..+|norm_f\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)
_MAMBA = {
    "vocab_size": 50280,
    "hidden_size": 768,
    "num_hidden_layers": 32,
    "state_size": 16,
    "expand": 2,
    "conv_kernel": 4,
    "use_bias": False,
    "use_conv_bias": True,
    "time_step_rank": "auto",
    "hidden_act": "silu",
    "tie_word_embeddings": True,
}
# intermediate_size: __post_init__ sets expand x hidden_size, an explicit key wins (Falcon-Mamba)
MAMBA = ConfigClass("MambaConfig", "mamba/configuration_mamba.py", MambaConfig, _MAMBA, copied=("intermediate_size",))
FALCON_MAMBA = ConfigClass(
    "FalconMambaConfig",
    "falcon_mamba/configuration_falcon_mamba.py",
    MambaConfig,
    {**_MAMBA, "vocab_size": 50280},
    copied=("intermediate_size",),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    gguf_architectures=("mamba",),
    config_json={"mamba": MAMBA, "falcon_mamba": FALCON_MAMBA},
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
