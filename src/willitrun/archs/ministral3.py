"""Ministral 3 (Ministral3ForCausalLM: Ministral 3 3B / 8B / 14B, Devstral 2; the text model inside
Mistral3ForConditionalGeneration of Devstral Small 2 and Mistral Small / Large 3): Mistral's layer and weights
(no biases, an untied LM head by default), every layer sliding over `sliding_window` when one is set (no
`layer_types`: transformers caches all layers alike), and a YaRN RoPE with Llama 4's attention temperature
(`llama_4_scaling_beta`), which holds no tensor and no cache (transformers models/ministral3/
configuration_ministral3.py, modeling_ministral3.py)."""

from __future__ import annotations

from typing import Literal

from .base import Positions
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import DecoderConfig


class Ministral3Config(DecoderConfig):
    """Ministral3Config fields (transformers models/ministral3/configuration_ministral3.py)."""

    model_type: Literal["ministral3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    sliding_window: Positions | None = None

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class Ministral3Spec(DecoderSpec):
    architecture: Literal["ministral3"]
    config: Ministral3Config


CONFIG = ConfigClass(
    "Ministral3Config",
    "ministral3/configuration_ministral3.py",
    Ministral3Config,
    {
        "vocab_size": 131072,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 34,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 262144,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "sliding_window": None,
    },
)

FAMILY = decoder_family(__name__, "ministral3", Ministral3Spec, CONFIG)
