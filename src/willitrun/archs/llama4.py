"""Llama 4 text (Llama4ForCausalLM, the language model of Llama4ForConditionalGeneration):
attention with chunked local attention on the RoPE layers and full attention on every
`no_rope_layer_interval`-th layer (NoPE), and a routed feed-forward (`num_local_experts` experts of
`intermediate_size`, top `num_experts_per_tok`, plus one shared expert of the same width) on the
layers listed in `moe_layers` (every `interleave_moe_layer_step`-th), a dense MLP of
`intermediate_size_mlp` elsewhere (transformers models/llama4/modeling_llama4.py,
configuration_llama4.py Llama4TextConfig.__post_init__).

Cache: a chunked layer attends within `attention_chunk_size` (8192) positions; transformers caches
it as a sliding layer of that size (right after a prefill the whole prompt is still held), llama.cpp
gives it its own chunk-sized cache (iswa). Only the NoPE layers (12 of Scout's 48) grow with the
context. Scout's query/key L2 norm has no parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, HeadDim, Intermediate, LayerIndex, ModelSpecBase, Positions, Stage, Tensor, norm
from .family import ConfigClass, Family, GGUFRules
from .llama import LM_WEIGHT_RULES, attention_tensors, gated_mlp
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig, expert_tensors, moe_stage

ARCHITECTURES = ("llama4_text",)


class Llama4TextConfig(MoeConfig):
    """Llama4TextConfig fields (transformers models/llama4/configuration_llama4.py)."""

    model_type: Literal["llama4_text"] | None = None
    hidden_act: Literal["silu"] = "silu"
    head_dim: HeadDim = 128
    attention_bias: bool = False
    intermediate_size_mlp: Intermediate = 16384
    num_local_experts: Experts = 16
    num_experts_per_tok: Experts = 1
    attention_chunk_size: Positions | None = 8192
    interleave_moe_layer_step: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 1
    no_rope_layer_interval: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 4
    no_rope_layers: list[Annotated[int, Field(ge=0, le=1)]] | None = Field(default=None, max_length=L.MAX_LAYERS)
    moe_layers: list[LayerIndex] | None = Field(default=None, max_length=L.MAX_LAYERS)
    use_qk_norm: bool = True

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def shared_width(self) -> int:
        return self.intermediate_size

    def is_moe(self, i: int) -> bool:
        if self.moe_layers is not None:
            return i in self.moe_layers
        step = self.interleave_moe_layer_step
        return i in range(step - 1, self.num_hidden_layers, step)

    def uses_rope(self, i: int) -> bool:
        if self.no_rope_layers:
            return bool(self.no_rope_layers[i])
        return (i + 1) % self.no_rope_layer_interval != 0

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        if self.uses_rope(i) and self.attention_chunk_size:
            return "chunked", self.attention_chunk_size
        return "full", None

    @model_validator(mode="after")
    def _check_lists(self) -> Llama4TextConfig:
        if self.no_rope_layers and len(self.no_rope_layers) != self.num_hidden_layers:
            raise ValueError(
                f"no_rope_layers has {len(self.no_rope_layers)} entries for {self.num_hidden_layers} layers"
            )
        return self


class Llama4TextSpec(ModelSpecBase):
    architecture: Literal["llama4_text"]
    config: Llama4TextConfig


SPECS = {"llama4_text": Llama4TextSpec}


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    c: Llama4TextConfig = spec.config  # type: ignore[attr-defined]
    h = c.hidden_size
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
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
            yield from gated_mlp(f"{p}.shexp", "decoder", h, c.shared_width, False, i)
        else:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size_mlp, False, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: ModelSpecBase) -> Geometry:
    return moe_geometry(
        spec.config,  # type: ignore[attr-defined]
        spec.architecture,  # type: ignore[attr-defined]
        llamacpp_swa=True,
        gguf_architecture="llama4",
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]  # type: ignore[attr-defined]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


def _llamacpp_chunks(layers: int, window: int | None) -> tuple[int, int] | None:
    """llama.cpp LLM_ARCH_LLAMA4 (src/llama-model.cpp load_hparams): chunked attention over n_swa 8192 with
    set_swa_pattern(4) (3 chunked : 1 full), unless the file's sliding_window is 0 (no chunking)."""
    return None if window == 0 else (8192, 4)


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
LLAMA4_TEXT = ConfigClass(
    "Llama4TextConfig",
    "llama4/configuration_llama4.py",
    Llama4TextConfig,
    {
        "vocab_size": 202048,
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "attention_chunk_size": 8192,
        "max_position_embeddings": 131072,
        "attention_bias": False,
        "tie_word_embeddings": False,
        "interleave_moe_layer_step": 1,
        "no_rope_layer_interval": 4,
        "use_qk_norm": True,
        "hidden_act": "silu",
    },
    copied=("no_rope_layers", "moe_layers"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    gguf_architectures=("llama4",),
    gguf_rules={"llama4": GGUFRules(swa=_llamacpp_chunks, chunked=True)},
    config_json={"llama4_text": LLAMA4_TEXT},
    weight_rules={"llama4_text": LM_WEIGHT_RULES},
)
