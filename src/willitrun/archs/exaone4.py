"""EXAONE 4.0 (Exaone4ForCausalLM): OLMo 2's norm placement (after the attention and the MLP, none
before) with RMSNorms of each head's query and key (q_norm, k_norm over head_dim), no biases, and sliding
layers from `layer_types`, else `sliding_window_pattern - 1` sliding layers to each full one
(Exaone4Config.__post_init__; no sliding layer when sliding_window is null) (transformers
models/exaone4/configuration_exaone4.py, modeling_exaone4.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Positions
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, GGUFRules
from .llama import Anatomy, DecoderConfig, LayerType, check_layer_types, layer_window


class Exaone4Config(DecoderConfig):
    """Exaone4Config fields (transformers models/exaone4/configuration_exaone4.py)."""

    model_type: Literal["exaone4"] | None = None
    hidden_act: Literal["silu"] = "silu"
    sliding_window: Positions | None = 4096
    # an int, or a string such as "LLLG" that only layer_types can go with (__post_init__ takes it modulo)
    sliding_window_pattern: (
        Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] | Annotated[str, Field(max_length=L.MAX_LAYERS)] | None
    ) = 4
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qk_norm=True, pre_norms=False, sandwich_norms=True)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        pattern = self.sliding_window_pattern
        rule = isinstance(pattern, int) and bool((i + 1) % pattern)
        return layer_window(self.layer_types, i, rule, self.sliding_window)

    @model_validator(mode="after")
    def _check_layers(self) -> Exaone4Config:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        if (
            self.layer_types is None
            and self.sliding_window is not None
            and not isinstance(self.sliding_window_pattern, int)
        ):
            # Exaone4Config.__post_init__ computes (i + 1) % sliding_window_pattern: transformers cannot build it
            raise ValueError("sliding_window_pattern: give a number (or layer_types) when sliding_window is set")
        return self


class Exaone4Spec(DecoderSpec):
    architecture: Literal["exaone4"]
    config: Exaone4Config


def _llamacpp_window(layers: int, window: int | None) -> tuple[int, int] | None:
    """llama.cpp LLM_ARCH_EXAONE4 (src/llama-model.cpp load_hparams): the 64-layer (32B) model slides over
    n_swa 4096 (or the file's sliding_window) with set_swa_pattern(4); any other attends in full."""
    return (window or 4096, 4) if layers == 64 else None


FAMILY = decoder_family(
    __name__,
    "exaone4",
    Exaone4Spec,
    ConfigClass(
        "Exaone4Config",
        "exaone4/configuration_exaone4.py",
        Exaone4Config,
        {
            "vocab_size": 102400,
            "hidden_size": 4096,
            "intermediate_size": 16384,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "sliding_window": 4096,
            "sliding_window_pattern": 4,
        },
        copied=("head_dim", "layer_types"),
    ),
    gguf=("exaone4",),
    gguf_rules={"exaone4": GGUFRules(swa=_llamacpp_window)},
)
