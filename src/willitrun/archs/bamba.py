"""Bamba (BambaForCausalLM, IBM): a hybrid of Mamba-2 and attention layers, each with a gated MLP (transformers
models/bamba/modeling_bamba.py, configuration_bamba.py).

- Layer i attends when i is in `attn_layer_indices` (none by default: every layer Mamba-2); the others run
  BambaMixer, archs/mamba2.py's mixer with d_inner = mamba_expand x hidden_size split into mamba_n_heads heads of
  mamba_d_head ("auto": d_inner / mamba_n_heads), in/out projections biased when mamba_proj_bias, the conv when
  mamba_conv_bias.
- Attention: q/k/v/o biased when attention_bias, head_dim = hidden_size / num_attention_heads (the config class
  has no head_dim field; a config.json that gives one is read by BambaAttention's getattr).
- Every layer: input_layernorm, pre_ff_layernorm and a SwiGLU MLP of intermediate_size (biased when mlp_bias);
  final_layernorm; the LM head tied when tie_word_embeddings.
The cache: keys and values on the attention layers; on the Mamba-2 layers a conv state (model dtype) and a float32
SSM state per sequence, whatever the context (measured: tests/reference).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import Geometry, HeadDim, Heads, LayerIndex, Stage, Tensor, norm
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import DecoderConfig
from .mamba import State
from .mamba2 import Groups, check_mamba2_heads, conv_channels, layer_state, mixer_tensors


class BambaConfig(DecoderConfig):
    """BambaConfig fields (transformers models/bamba/configuration_bamba.py)."""

    model_type: Literal["bamba"] | None = None
    num_key_value_heads: Heads | None = 8  # None -> num_attention_heads (BambaConfig.__post_init__)
    attention_bias: bool = False
    mlp_bias: bool = False
    attn_layer_indices: list[LayerIndex] | None = Field(default=None, max_length=L.MAX_LAYERS)
    mamba_n_heads: Heads = 128
    mamba_d_head: HeadDim | Literal["auto"] = "auto"
    mamba_n_groups: Groups = 1
    mamba_d_state: State = 256
    mamba_d_conv: State = 4
    mamba_expand: Annotated[int, Field(gt=0, le=1024)] = 2
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False

    def attends(self, i: int) -> bool:
        return bool(self.attn_layer_indices) and i in (self.attn_layer_indices or ())

    @property
    def d_inner(self) -> int:
        return self.mamba_expand * self.hidden_size

    @property
    def d_head(self) -> int:
        return self.d_inner // self.mamba_n_heads if self.mamba_d_head == "auto" else self.mamba_d_head

    @model_validator(mode="after")
    def _check_mamba(self) -> BambaConfig:
        # BambaConfig.validate_architecture
        if self.d_inner % self.mamba_n_heads:
            raise ValueError(
                f"mamba_n_heads ({self.mamba_n_heads}) must divide mamba_expand x hidden_size ({self.d_inner})"
            )
        check_mamba2_heads(self.d_inner, self.mamba_n_heads, self.d_head, self.mamba_n_groups)
        return self


class BambaSpec(DecoderSpec):
    architecture: Literal["bamba"]
    config: BambaConfig


def _tensors(spec: BambaSpec) -> Iterator[Tensor]:
    c = spec.config
    h, comp = c.hidden_size, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        if c.attends(i):
            yield from llama.attention_tensors(
                p,
                comp,
                i,
                hidden=h,
                heads=c.num_attention_heads,
                kv_heads=c.kv_heads,
                head_dim=c.head_size,
                bias=c.attention_bias,
            )
        else:
            yield from mixer_tensors(
                p,
                i,
                hidden=h,
                d_inner=c.d_inner,
                heads=c.mamba_n_heads,
                groups=c.mamba_n_groups,
                state=c.mamba_d_state,
                kernel=c.mamba_d_conv,
                in_bias=c.mamba_proj_bias,
                out_bias=c.mamba_proj_bias,
                conv_bias=c.mamba_conv_bias,
                gated_norm=True,
            )
        yield from llama.gated_mlp(p, comp, h, c.intermediate_size, c.mlp_bias, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
    yield from norm("decoder.output_norm", comp, h, None)  # final_layernorm
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def _geometry(spec: BambaSpec) -> Geometry:
    """Keys and values on the attention layers; conv + float32 SSM state (archs/caches.py MambaState, from
    ssm_state) on the Mamba-2 layers."""
    c = spec.config
    n = c.num_hidden_layers
    g = llama.decoder_geometry(c, spec.architecture)
    state = layer_state(c.d_inner, c.mamba_n_heads, c.d_head, c.mamba_n_groups, c.mamba_d_state, c.mamba_d_conv)
    return llama.decoder_geometry(
        c,
        spec.architecture,
        self_kv=tuple(kv if c.attends(i) else None for i, kv in enumerate(g.self_kv)),
        tp_constraints=(*g.tp_constraints, ("Mamba-2 heads", c.mamba_n_heads, False)),
        ssm_state=tuple((0, 0) if c.attends(i) else state for i in range(n)),
        ssm_conv_kernel=c.mamba_d_conv,
        ssm_state_f32=True,
        # llama.cpp's convert_hf_to_gguf.py writes BambaForCausalLM as granitehybrid (GraniteHybridModel)
        gguf_architecture="granitehybrid",
    )


def _stages(spec: BambaSpec, context: int, source: int, images: int) -> list[Stage]:
    """Llama's stage; the widest intermediate is the MLP's or the Mamba-2 in_proj output."""
    c = spec.config
    st = llama.lm_stage(c, context)
    mamba = c.d_inner + conv_channels(c.d_inner, c.mamba_n_groups, c.mamba_d_state) + c.mamba_n_heads
    return [
        Stage(
            st.tokens, st.hidden, st.q_width, st.kv_width, max(c.intermediate_size, mamba), True, st.heads, st.kv_tokens
        )
    ]


FAMILY = decoder_family(
    __name__,
    "bamba",
    BambaSpec,
    ConfigClass(
        "BambaConfig",
        "bamba/configuration_bamba.py",
        BambaConfig,
        {
            "vocab_size": 128000,
            "tie_word_embeddings": False,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 262144,
            "mamba_n_heads": 128,
            "mamba_n_groups": 1,
            "mamba_d_state": 256,
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "mamba_conv_bias": True,
            "mamba_proj_bias": False,
            "attention_bias": False,
            "mlp_bias": False,
        },
        copied=("head_dim", "attn_layer_indices", "mamba_d_head"),
    ),
    gguf=("granitehybrid",),
    tensors=_tensors,
    geometry=_geometry,
    stages=_stages,
    # BambaModel: model.embed_tokens, model.layers.N.{mamba, self_attn, feed_forward, input_layernorm,
    # pre_ff_layernorm}, model.final_layernorm
    weight_rules=(
        (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
        (r"(?:model\.)?(?:layers\.\d+\..+|final_layernorm\.weight)", "decoder"),
        (r"lm_head\.weight", "lm_head"),
    ),
)
