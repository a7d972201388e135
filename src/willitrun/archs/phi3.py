"""Phi-3 / Phi-3.5 / Phi-4 (Phi3ForCausalLM): Llama's layer with one fused qkv_proj (q, k and v
stacked: heads x head_dim + 2 x kv_heads x head_dim rows) and one fused gate_up_proj (2 x
intermediate rows), no biases (transformers models/phi3/modeling_phi3.py). A `sliding_window`
applies to every layer (Phi-3.5-mini: 262,144, wider than its 131,072 context)."""

from __future__ import annotations

from typing import Literal

from . import llama
from .base import ModelSpecBase, Positions
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, DecoderConfig, stages, tensors

ARCHITECTURES = ("phi3",)


class Phi3Config(DecoderConfig):
    """Phi3Config fields (transformers models/phi3/configuration_phi3.py)."""

    model_type: Literal["phi3"] | None = None
    hidden_act: Literal["silu", "gelu", "gelu_pytorch_tanh"] = "silu"
    original_max_position_embeddings: Positions = 4096
    sliding_window: Positions | None = None
    partial_rotary_factor: float = 1.0  # Phi-4-mini: 0.75 (rotary width only, no tensor)

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(fused_qkv=True, fused_gate_up=True)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class Phi3Spec(ModelSpecBase):
    architecture: Literal["phi3"]
    config: Phi3Config


SPECS = {"phi3": Phi3Spec}
geometry = llama.geometry
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
PHI3 = ConfigClass(
    "Phi3Config",
    "phi3/configuration_phi3.py",
    Phi3Config,
    {
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
    copied=("sliding_window", "partial_rotary_factor"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"phi3": PHI3},
    gguf_architectures=("phi3",),
    weight_rules={"phi3": LM_WEIGHT_RULES},
    gguf_rules={"phi3": GGUFRules(decoder=GGUFDecoder("phi3", window="optional"))},
)
