"""Gemma 2 (Gemma2ForCausalLM): Gemma with four norms per layer (input, post-attention,
pre- and post-feedforward) and local/global attention alternating layer by layer: layer i slides
over `sliding_window` positions when `layer_types[i]` says so, by default every even layer
(Gemma2Config.__post_init__: sliding when (i + 1) % 2). Logit soft-capping adds no tensors."""

from __future__ import annotations

from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import Geometry, ModelSpecBase, Positions
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules, swa_period
from .gemma import _GEMMA_ACT, GemmaConfig
from .llama import LM_WEIGHT_RULES, Anatomy, LayerType, check_layer_types, layer_window, stages, tensors

ARCHITECTURES = ("gemma2",)
SoftCap = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]


class Gemma2Config(GemmaConfig):
    """Gemma2Config fields (transformers models/gemma2/configuration_gemma2.py)."""

    model_type: Literal["gemma2"] | None = None  # type: ignore[assignment]
    sliding_window: Positions | None = 4096
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    query_pre_attn_scalar: Positions = 256
    attn_logit_softcapping: SoftCap | None = 50.0
    final_logit_softcapping: SoftCap | None = 30.0

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, sandwich_norms=True)

    def _sliding(self, i: int) -> bool:
        return bool((i + 1) % 2)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return layer_window(self.layer_types, i, self._sliding(i), self.sliding_window)

    @model_validator(mode="after")
    def _check_layers(self) -> Gemma2Config:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class Gemma2Spec(ModelSpecBase):
    architecture: Literal["gemma2"]
    config: Gemma2Config


SPECS = {"gemma2": Gemma2Spec}


def geometry(spec: ModelSpecBase) -> Geometry:
    # llama.cpp builds an iSWA cache for Gemma 2 and Gemma 3 (llama-model.cpp LLM_ARCH_GEMMA2:
    # swa_type STANDARD, set_swa_pattern(2); LLM_ARCH_GEMMA3: set_swa_pattern(6)); it keeps Phi-3's
    # window off ("Phi SWA is currently disabled") and runs Mistral v0.1 and Qwen2 as full attention.
    return llama.decoder_geometry(spec.config, spec.architecture, llamacpp_swa=True)  # type: ignore[attr-defined]


image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
GEMMA2 = ConfigClass(
    "Gemma2Config",
    "gemma2/configuration_gemma2.py",
    Gemma2Config,
    {
        "vocab_size": 256000,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "sliding_window": 4096,
        "query_pre_attn_scalar": 256,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
    },
    copied=(*_GEMMA_ACT, "layer_types"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"gemma2": GEMMA2},
    # llama.cpp LLM_ARCH_GEMMA2: set_swa_pattern(2), n_swa from gemma2.attention.sliding_window
    gguf_architectures=("gemma2",),
    gguf_rules={
        "gemma2": GGUFRules(
            swa=swa_period(2),
            decoder=GGUFDecoder(
                "gemma2",
                explicit_head_dim=True,
                flags={"attention_bias": "blk.0.attn_q.bias"},
                window="optional",
                floats={
                    "attn_logit_softcapping": "attn_logit_softcapping",
                    "final_logit_softcapping": "final_logit_softcapping",
                },
            ),
        )
    },
    weight_rules={"gemma2": LM_WEIGHT_RULES},
)
