"""Jamba (JambaForCausalLM): a hybrid of Mamba and attention layers. Layer i is attention when
i % attn_layer_period == attn_layer_offset, Mamba otherwise; its feed-forward is a routed MoE
(`num_experts` of `intermediate_size`, top `num_experts_per_tok`) when i % expert_layer_period ==
expert_layer_offset, a dense MLP otherwise (transformers models/jamba/configuration_jamba.py
layers_block_type, modeling_jamba.py JambaMambaMixer with RMSNorms of dt, B and C). No positional
embeddings. Only the attention layers (4 of Jamba 1.5 Mini's 32) cache keys and values; the Mamba
layers hold a conv state (model dtype) + SSM state (float32, as Mamba's: archs/mamba.py) per sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, LayerKV, ModelSpecBase, Stage, Tensor, norm
from .family import ConfigClass, Family
from .llama import LM_FINAL_LAYERNORM_WEIGHT_RULES, attention_tensors, decoder_geometry, gated_mlp, lm_stage
from .mamba import VLLM_STATE_REFUSAL, State, mixer_tensors
from .moe import Experts, MoeConfig, expert_tensors

ARCHITECTURES = ("jamba",)
Period = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]
Offset = Annotated[int, Field(ge=0, lt=L.MAX_LAYERS)]


class JambaConfig(MoeConfig):
    """JambaConfig fields (transformers models/jamba/configuration_jamba.py)."""

    model_type: Literal["jamba"] | None = None
    hidden_act: Literal["silu"] = "silu"
    max_position_embeddings: Annotated[int, Field(gt=0, le=L.MAX_POSITIONS)] = 262144
    num_experts: Experts = 16
    attn_layer_period: Period = 8
    attn_layer_offset: Offset = 4
    expert_layer_period: Period = 2
    expert_layer_offset: Offset = 1
    mamba_d_state: State = 16
    mamba_d_conv: State = 4
    mamba_expand: Annotated[int, Field(gt=0, le=1024)] = 2
    mamba_dt_rank: State | Literal["auto"] = "auto"
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False

    @property
    def n_experts(self) -> int:
        return self.num_experts

    def is_moe(self, i: int) -> bool:
        return self.num_experts > 1 and i % self.expert_layer_period == self.expert_layer_offset

    @model_validator(mode="after")
    def _check_offsets(self) -> JambaConfig:
        # JambaConfig._check_supported_offset refuses these too: an offset past its period names no layer
        for what, offset, period in (
            ("attn", self.attn_layer_offset, self.attn_layer_period),
            ("expert", self.expert_layer_offset, self.expert_layer_period),
        ):
            if offset >= period:
                raise ValueError(f"{what}_layer_offset ({offset}) must be below {what}_layer_period ({period})")
        return self

    def is_attention(self, i: int) -> bool:
        return i % self.attn_layer_period == self.attn_layer_offset

    @property
    def inner(self) -> int:
        return self.mamba_expand * self.hidden_size

    @property
    def dt_rank(self) -> int:
        return -(-self.hidden_size // 16) if self.mamba_dt_rank == "auto" else self.mamba_dt_rank


class JambaSpec(ModelSpecBase):
    architecture: Literal["jamba"]
    config: JambaConfig


SPECS = {"jamba": JambaSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: JambaConfig = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        if c.is_attention(i):
            yield from attention_tensors(
                p,
                "decoder",
                i,
                hidden=h,
                heads=c.num_attention_heads,
                kv_heads=c.kv_heads,
                head_dim=c.head_size,
                bias=False,
            )
        else:
            yield from mixer_tensors(
                p,
                i,
                h,
                c.inner,
                c.mamba_d_state,
                c.mamba_d_conv,
                c.dt_rank,
                bias=c.mamba_proj_bias,
                conv_bias=c.mamba_conv_bias,
            )
            yield from norm(f"{p}.ssm_dt_norm", "decoder", c.dt_rank, i)
            yield from norm(f"{p}.ssm_b_norm", "decoder", c.mamba_d_state, i)
            yield from norm(f"{p}.ssm_c_norm", "decoder", c.mamba_d_state, i)
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
        else:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size, False, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: JambaConfig = spec.config  # type: ignore[attr-defined]
    n = c.num_hidden_layers
    kv = LayerKV("full", c.kv_heads, c.head_size, c.head_size)
    mamba_state = (c.inner * c.mamba_d_conv, c.inner * c.mamba_d_state)
    return decoder_geometry(
        c,
        spec.architecture,  # type: ignore[attr-defined]
        self_kv=tuple(kv if c.is_attention(i) else None for i in range(n)),
        experts=c.n_experts,
        experts_per_token=c.num_experts_per_tok,
        intermediate_size=max(c.active_ffn_width, c.intermediate_size),
        ssm_state=tuple((0, 0) if c.is_attention(i) else mamba_state for i in range(n)),
        ssm_conv_kernel=c.mamba_d_conv,
        ssm_state_f32=True,
        ssm_mixer="mamba",  # MambaMixer (Mamba-1)
        gguf_architecture="jamba",
        refusals={"vllm": VLLM_STATE_REFUSAL},
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    c: JambaConfig = spec.config  # type: ignore[attr-defined]
    st = lm_stage(c, context)
    width = max(c.active_ffn_width, c.intermediate_size, c.inner)
    return [Stage(st.tokens, st.hidden, st.q_width, st.kv_width, width, True, st.heads, st.kv_tokens)]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
JAMBA = ConfigClass(
    "JambaConfig",
    "jamba/configuration_jamba.py",
    JambaConfig,
    {
        "vocab_size": 65536,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 262144,
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "attn_layer_period": 8,
        "attn_layer_offset": 4,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "mamba_d_state": 16,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_dt_rank": "auto",
        "mamba_conv_bias": True,
        "mamba_proj_bias": False,
        "tie_word_embeddings": False,
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
    gguf_architectures=("jamba",),
    config_json={"jamba": JAMBA},
    weight_rules={"jamba": LM_FINAL_LAYERNORM_WEIGHT_RULES},
)
