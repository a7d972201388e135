"""Cohere 2 (Cohere2ForCausalLM, Command R7B): a parallel block -- one LayerNorm (weight only,
Cohere2LayerNorm) feeds both attention and the gated MLP -- with local/global attention: layer i
slides over `sliding_window` positions when `layer_types[i]` says so, by default three of every
four (Cohere2Config.__post_init__: sliding when (i + 1) % sliding_window_pattern, pattern 4). The
head width is always hidden_size / heads (the config overwrites head_dim), the LM head is tied and
`logit_scale` only scales logits (transformers models/cohere2/modeling_cohere2.py)."""

from __future__ import annotations

from typing import Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import Geometry, Layers, ModelSpecBase, Positions
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules, swa_period
from .llama import LM_WEIGHT_RULES, Anatomy, DecoderConfig, LayerType, check_layer_types, layer_window, stages, tensors

ARCHITECTURES = ("cohere2",)


class Cohere2Config(DecoderConfig):
    """Cohere2Config fields (transformers models/cohere2/configuration_cohere2.py)."""

    model_type: Literal["cohere2"] | None = None
    hidden_act: Literal["silu"] = "silu"
    tie_word_embeddings: bool = True
    attention_bias: bool = False
    sliding_window: Positions | None = 4096
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    sliding_window_pattern: Layers = 4  # config.json's older spelling; layer_types wins when given
    logit_scale: float = Field(default=0.0625, gt=0, le=1e6, allow_inf_nan=False)

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, parallel_block=True)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return layer_window(self.layer_types, i, bool((i + 1) % self.sliding_window_pattern), self.sliding_window)

    @model_validator(mode="after")
    def _check_cohere2(self) -> Cohere2Config:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        if self.head_dim is not None and self.head_dim * self.num_attention_heads != self.hidden_size:
            raise ValueError(
                f"head_dim ({self.head_dim}) must be hidden_size / num_attention_heads: Cohere2Config overwrites it"
            )
        return self


class Cohere2Spec(ModelSpecBase):
    architecture: Literal["cohere2"]
    config: Cohere2Config


SPECS = {"cohere2": Cohere2Spec}


def geometry(spec: ModelSpecBase) -> Geometry:
    # llama.cpp builds an iSWA cache for Cohere 2 too (llama-model.cpp LLM_ARCH_COHERE2: swa_type
    # STANDARD, set_swa_pattern(4)), so its local layers keep window-sized caches. Its only model type
    # is 8B (32 layers), never LLM_TYPE_70B, whose attn_v rule gguf_70b mirrors.
    return llama.decoder_geometry(
        spec.config,  # type: ignore[attr-defined]
        spec.architecture,  # type: ignore[attr-defined]
        llamacpp_swa=True,
        gguf_70b=False,
    )


image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
COHERE2 = ConfigClass(
    "Cohere2Config",
    "cohere2/configuration_cohere2.py",
    Cohere2Config,
    {
        "vocab_size": 256000,
        "hidden_size": 8192,
        "intermediate_size": 22528,
        "num_hidden_layers": 40,
        "num_attention_heads": 64,
        "num_key_value_heads": None,
        "max_position_embeddings": 8192,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "sliding_window": 4096,
        "logit_scale": 0.0625,
    },
    copied=("layer_types", "sliding_window_pattern"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"cohere2": COHERE2},
    # llama.cpp LLM_ARCH_COHERE2: set_swa_pattern(4) unless cohere2.attention.sliding_window_pattern says otherwise
    gguf_architectures=("cohere2",),
    gguf_rules={
        "cohere2": GGUFRules(
            swa=swa_period(4),
            # convert_hf_to_gguf.py Cohere2Model writes the window (src/models/cohere2.cpp requires it) and, optionally,
            # cohere2.attention.sliding_window_pattern (3 sliding : 1 global otherwise, as Cohere2Config's default)
            decoder=GGUFDecoder(
                "cohere2",
                flags={"attention_bias": "blk.0.attn_q.bias"},
                window="required",
                ints={"sliding_window_pattern": "attention.sliding_window_pattern"},
                floats={"logit_scale": "logit_scale"},
            ),
        )
    },
    weight_rules={"cohere2": LM_WEIGHT_RULES},
)
