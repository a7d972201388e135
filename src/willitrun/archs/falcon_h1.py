"""Falcon-H1 (FalconH1ForCausalLM): every layer runs attention and a Mamba-2 mixer in parallel on the
same normed input, then a gated MLP (transformers models/falcon_h1/modeling_falcon_h1.py
FalconH1DecoderLayer). So every layer has a KV cache *and* a recurrent state.

Mamba-2 mixer (FalconH1Mixer): d_ssm = mamba_d_ssm (else mamba_expand x hidden), conv over
d_ssm + 2 x n_groups x d_state channels, in_proj to d_ssm (gate) + conv channels + n_heads (dt),
per-head dt_bias, A_log and D, an optional gated RMSNorm of d_ssm, out_proj. State per layer and
sequence (transformers 5.23 LinearAttentionLayer, measured in tests/reference): conv
(conv channels x d_conv, model dtype) and SSM (n_heads x d_head x d_state, float32: archs/mamba2.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, HeadDim, Heads, LayerIndex, LayerKV, ModelSpecBase, Stage, Tensor, norm
from .family import ConfigClass, Family
from .llama import (
    LM_FINAL_LAYERNORM_WEIGHT_RULES,
    DecoderConfig,
    attention_tensors,
    decoder_geometry,
    gated_mlp,
    lm_stage,
)
from .mamba import VLLM_STATE_REFUSAL, State
from .mamba2 import check_mamba2_heads, conv_channels, mixer_tensors

ARCHITECTURES = ("falcon_h1",)


class FalconH1Config(DecoderConfig):
    """FalconH1Config fields (transformers models/falcon_h1/configuration_falcon_h1.py)."""

    model_type: Literal["falcon_h1"] | None = None
    hidden_act: Literal["silu"] = "silu"
    head_dim: HeadDim | None = None
    attention_bias: bool = False
    projectors_bias: bool = False
    mlp_bias: bool = False
    # FalconH1Config default 1024; null means mamba_expand x hidden_size (FalconH1Mixer)
    mamba_d_ssm: Annotated[int, Field(gt=0, le=L.MAX_INTERMEDIATE)] | None = 1024
    mamba_n_heads: Heads = 128
    mamba_d_head: HeadDim | Literal["auto"] = "auto"
    mamba_n_groups: Annotated[int, Field(gt=0, le=L.MAX_HEADS)] = 1
    mamba_d_state: State = 256
    mamba_d_conv: State = 4
    mamba_expand: Annotated[int, Field(gt=0, le=1024)] = 2
    mamba_chunk_size: State = 256
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    mamba_rms_norm: bool = False
    # inert in transformers 5.23 (every layer attends); bounded like every list read from a file
    attn_layer_indices: list[LayerIndex] | None = Field(default=None, max_length=L.MAX_LAYERS)

    @model_validator(mode="after")
    def _check_heads(self) -> FalconH1Config:
        # FalconH1Config.validate_architecture: mamba_n_heads divides the SSM width and
        # mamba_d_head x mamba_n_heads equals it (an explicit mamba_d_head too)
        if self.d_ssm % self.mamba_n_heads:
            raise ValueError(f"mamba_d_ssm ({self.d_ssm}) must be a multiple of mamba_n_heads ({self.mamba_n_heads})")
        check_mamba2_heads(self.d_ssm, self.mamba_n_heads, self.d_head, self.mamba_n_groups)
        return self

    @property
    def d_ssm(self) -> int:
        return self.mamba_d_ssm or self.mamba_expand * self.hidden_size

    @property
    def d_head(self) -> int:
        return self.d_ssm // self.mamba_n_heads if self.mamba_d_head == "auto" else self.mamba_d_head

    @property
    def conv_dim(self) -> int:
        return conv_channels(self.d_ssm, self.mamba_n_groups, self.mamba_d_state)


class FalconH1Spec(ModelSpecBase):
    architecture: Literal["falcon_h1"]
    config: FalconH1Config


SPECS = {"falcon_h1": FalconH1Spec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: FalconH1Config = spec.config  # type: ignore[attr-defined]
    h, nh = c.hidden_size, c.mamba_n_heads
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from attention_tensors(
            p,
            "decoder",
            i,
            hidden=h,
            heads=c.num_attention_heads,
            kv_heads=c.kv_heads,
            head_dim=c.head_size,
            bias=c.attention_bias,
        )
        yield from mixer_tensors(
            p,
            i,
            hidden=h,
            d_inner=c.d_ssm,
            heads=nh,
            groups=c.mamba_n_groups,
            state=c.mamba_d_state,
            kernel=c.mamba_d_conv,
            in_bias=c.mamba_proj_bias,
            out_bias=c.projectors_bias,
            conv_bias=c.mamba_conv_bias,
            gated_norm=c.mamba_rms_norm,
        )
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        yield from gated_mlp(p, "decoder", h, c.intermediate_size, c.mlp_bias, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: FalconH1Config = spec.config  # type: ignore[attr-defined]
    n = c.num_hidden_layers
    state = (c.conv_dim * c.mamba_d_conv, c.mamba_n_heads * c.d_head * c.mamba_d_state)
    return decoder_geometry(
        c,
        spec.architecture,  # type: ignore[attr-defined]
        ssm_state=(state,) * n,
        ssm_conv_kernel=c.mamba_d_conv,
        ssm_state_f32=True,  # FalconH1Mixer's scan: mamba2_chunk_scan (archs/mamba2.py)
        self_kv=(LayerKV("full", c.kv_heads, c.head_size, c.head_size),) * n,
        gguf_architecture="falcon-h1",
        refusals={"vllm": VLLM_STATE_REFUSAL},
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    c: FalconH1Config = spec.config  # type: ignore[attr-defined]
    return [lm_stage(c, context)]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
FALCON_H1 = ConfigClass(
    "FalconH1Config",
    "falcon_h1/configuration_falcon_h1.py",
    FalconH1Config,
    {
        "vocab_size": 128000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "projectors_bias": False,
        "mlp_bias": False,
        "mamba_d_ssm": 1024,
        "mamba_n_heads": 128,
        "mamba_d_head": "auto",
        "mamba_n_groups": 1,
        "mamba_d_state": 256,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_chunk_size": 256,
        "mamba_conv_bias": True,
        "mamba_proj_bias": False,
        "mamba_rms_norm": False,
        "hidden_act": "silu",
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
    gguf_architectures=("falcon-h1",),
    config_json={"falcon_h1": FALCON_H1},
    weight_rules={"falcon_h1": LM_FINAL_LAYERNORM_WEIGHT_RULES},
)
