"""Granite 4.0-H (GraniteMoeHybridForCausalLM): a hybrid of Mamba-2 and attention layers with a
mixture-of-experts feed-forward (transformers models/granitemoehybrid/modeling_granitemoehybrid.py).

Layer i (GraniteMoeHybridDecoderLayer) is a Mamba-2 mixer when `layer_types[i]` is "mamba"
("linear_attention" after transformers' remap_legacy_layer_types), attention otherwise ("attention" /
"full_attention"); without `layer_types` every layer is Mamba-2 (GraniteMoeHybridConfig.__post_init__).
Every layer then has two RMSNorms, the routed experts when num_local_experts > 0 (a router of
num_local_experts x hidden without bias and `num_local_experts` experts of `intermediate_size`, top
`num_experts_per_tok`) and always a shared gated MLP of `shared_intermediate_size`
(GraniteMoeHybridMLP: input_linear hidden -> 2 x shared, output_linear). The Mamba-2 mixer is
Mamba2Mixer's (archs/mamba2.py) with d_inner = mamba_expand x hidden_size and mamba_d_head "auto" =
d_inner / mamba_n_heads. The multipliers (embedding, attention, residual, logits scaling) add no tensor.

Only the attention layers cache keys and values (4 of Granite 4.0-H's 40 layers); the Mamba layers hold
a conv state (model dtype) and an SSM state (float32) per sequence, whatever the context.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, HeadDim, Heads, Intermediate, LayerKV, ModelSpecBase, Stage, Tensor, norm
from .family import ConfigClass, ConfigReading, Family, GGUFRules, GGUFSsm
from .granite import Multiplier
from .llama import LM_WEIGHT_RULES, attention_tensors, check_layer_types, decoder_geometry, gated_mlp, lm_stage
from .mamba import VLLM_STATE_REFUSAL, State
from .mamba2 import Groups, check_mamba2_heads, layer_state, mixer_tensors
from .moe import MoeConfig, check_experts, expert_tensors

ARCHITECTURES = ("granitemoehybrid",)
ExpertCount = Annotated[int, Field(ge=0, le=L.MAX_EXPERTS)]  # 0: no routed experts (Granite 4.0-H Micro)
HybridLayerType = Literal["mamba", "attention", "linear_attention", "full_attention"]
MAMBA_TYPES = frozenset({"mamba", "linear_attention"})  # configuration_utils._LEGACY_LAYER_TYPE_REMAP


class GraniteMoeHybridConfig(MoeConfig):
    """GraniteMoeHybridConfig fields (transformers models/granitemoehybrid/configuration_granitemoehybrid.py)."""

    model_type: Literal["granitemoehybrid"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    embedding_multiplier: Multiplier = 1.0
    logits_scaling: Multiplier = 1.0
    residual_multiplier: Multiplier = 1.0
    attention_multiplier: Multiplier = 1.0
    num_local_experts: ExpertCount = 8
    num_experts_per_tok: ExpertCount = 2
    shared_intermediate_size: Intermediate = 1024
    layer_types: list[HybridLayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    mamba_n_heads: Heads = 128
    mamba_n_groups: Groups = 1
    mamba_d_state: State = 256
    mamba_d_head: HeadDim | Literal["auto"] = "auto"
    mamba_d_conv: State = 4
    mamba_expand: Annotated[int, Field(gt=0, le=1024)] = 2
    mamba_chunk_size: State = 256
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def experts_per_token(self) -> int:
        """0 without routed experts (GraniteMoeHybridDecoderLayer builds no block_sparse_moe)."""
        return self.num_experts_per_tok if self.num_local_experts else 0

    @property
    def shared_width(self) -> int:
        return self.shared_intermediate_size

    @property
    def active_ffn_width(self) -> int:
        return self.experts_per_token * self.expert_width + self.shared_width

    def is_moe(self, i: int) -> bool:
        return self.num_local_experts > 0

    def is_attention(self, i: int) -> bool:
        return self.layer_types is not None and self.layer_types[i] not in MAMBA_TYPES

    @property
    def d_inner(self) -> int:
        return self.mamba_expand * self.hidden_size

    @property
    def d_head(self) -> int:
        return self.d_inner // self.mamba_n_heads if self.mamba_d_head == "auto" else self.mamba_d_head

    @model_validator(mode="after")
    def _check_experts(self) -> GraniteMoeHybridConfig:  # replaces MoeConfig's: 0 experts is a dense model
        if self.num_local_experts:
            check_experts(self.num_local_experts, self.num_experts_per_tok)
            if not self.num_experts_per_tok:
                raise ValueError(f"num_experts_per_tok is 0 with {self.num_local_experts} experts per layer")
        return self

    @model_validator(mode="after")
    def _check_layers(self) -> GraniteMoeHybridConfig:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        if self.mamba_d_head == "auto" and self.d_inner % self.mamba_n_heads:
            raise ValueError(
                f"mamba_n_heads ({self.mamba_n_heads}) must divide mamba_expand x hidden_size ({self.d_inner})"
            )
        check_mamba2_heads(self.d_inner, self.mamba_n_heads, self.d_head, self.mamba_n_groups)
        return self


class GraniteMoeHybridSpec(ModelSpecBase):
    architecture: Literal["granitemoehybrid"]
    config: GraniteMoeHybridConfig


SPECS = {"granitemoehybrid": GraniteMoeHybridSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: GraniteMoeHybridConfig = spec.config  # type: ignore[attr-defined]
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
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
        yield from gated_mlp(f"{p}.shexp", "decoder", h, c.shared_intermediate_size, False, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    c: GraniteMoeHybridConfig = spec.config  # type: ignore[attr-defined]
    n = c.num_hidden_layers
    kv = LayerKV("full", c.kv_heads, c.head_size, c.head_size)
    state = layer_state(c.d_inner, c.mamba_n_heads, c.d_head, c.mamba_n_groups, c.mamba_d_state, c.mamba_d_conv)
    width = (
        ("moe_intermediate_size", c.expert_width, False)
        if c.n_experts
        else ("shared_intermediate_size", c.shared_intermediate_size, False)
    )
    return decoder_geometry(
        c,
        spec.architecture,  # type: ignore[attr-defined]
        self_kv=tuple(kv if c.is_attention(i) else None for i in range(n)),
        experts=c.n_experts,
        experts_per_token=c.experts_per_token,
        intermediate_size=c.active_ffn_width,
        tp_constraints=(
            ("attention heads", c.num_attention_heads, False),
            ("KV heads", c.kv_heads, True),
            width,
            ("Mamba-2 heads", c.mamba_n_heads, False),
        ),
        ssm_state=tuple((0, 0) if c.is_attention(i) else state for i in range(n)),
        ssm_conv_kernel=c.mamba_d_conv,
        ssm_state_f32=True,
        gguf_architecture="granitehybrid",
        refusals={"vllm": VLLM_STATE_REFUSAL},
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    c: GraniteMoeHybridConfig = spec.config  # type: ignore[attr-defined]
    st = lm_stage(c, context)
    width = max(c.active_ffn_width, c.d_inner)
    return [Stage(st.tokens, st.hidden, st.q_width, st.kv_width, width, True, st.heads, st.kv_tokens)]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
# head_dim is no GraniteMoeHybridConfig field, but GraniteMoeHybridAttention reads
# getattr(config, "head_dim", hidden_size // num_attention_heads): kept when present.
# layer_types absent: every layer is Mamba-2 (GraniteMoeHybridConfig.__post_init__).
GRANITEMOEHYBRID = ConfigClass(
    "GraniteMoeHybridConfig",
    "granitemoehybrid/configuration_granitemoehybrid.py",
    GraniteMoeHybridConfig,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "max_position_embeddings": 2048,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "embedding_multiplier": 1.0,
        "logits_scaling": 1.0,
        "residual_multiplier": 1.0,
        "attention_multiplier": 1.0,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "shared_intermediate_size": 1024,
        "layer_types": None,
        "mamba_n_heads": 128,
        "mamba_n_groups": 1,
        "mamba_d_state": 256,
        "mamba_d_head": "auto",
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_chunk_size": 256,
        "mamba_conv_bias": True,
        "mamba_proj_bias": False,
    },
    copied=("head_dim",),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """GraniteMoeHybridConfig.attribute_map: layers_block_type is read as layer_types (and said)."""
    if "layer_types" not in cfg and "layers_block_type" in cfg:
        cfg = {**cfg, "layer_types": cfg["layers_block_type"]}
        reading.notes.append("layers_block_type read as layer_types (GraniteMoeHybridConfig.attribute_map).")
    return reading.block(cfg, GRANITEMOEHYBRID, "config")


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    gguf_architectures=("granitehybrid",),
    config_json={"granitemoehybrid": GRANITEMOEHYBRID},
    read_config={"granitemoehybrid": read_config},
    weight_rules={"granitemoehybrid": LM_WEIGHT_RULES},
    gguf_rules={"granitehybrid": GGUFRules(ssm=GGUFSsm("granitemoehybrid", hybrid=True))},
)
