"""OLMo 3 (Olmo3ForCausalLM): OLMo 2's layer (norms after the blocks, q/k norms over every head) with
sliding-window layers: `layer_types`, else three sliding layers to each full one (Olmo3Config.__post_init__:
layer i slides unless (i + 1) % 4 == 0), over `sliding_window` positions (transformers
models/olmo3/configuration_olmo3.py, modeling_olmo3.py)."""

from __future__ import annotations

from typing import Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Positions
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, GGUFRules, swa_period
from .llama import Anatomy, DecoderConfig, LayerType, check_layer_types, layer_window


class Olmo3Config(DecoderConfig):
    """Olmo3Config fields (transformers models/olmo3/configuration_olmo3.py)."""

    model_type: Literal["olmo3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    sliding_window: Positions | None = 4096
    layer_types: list[LayerType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True, qk_norm_full=True, pre_norms=False, sandwich_norms=True)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return layer_window(self.layer_types, i, (i + 1) % 4 != 0, self.sliding_window)

    @model_validator(mode="after")
    def _check_layers(self) -> Olmo3Config:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        return self


class Olmo3Spec(DecoderSpec):
    architecture: Literal["olmo3"]
    config: Olmo3Config


FAMILY = decoder_family(
    __name__,
    "olmo3",
    Olmo3Spec,
    ConfigClass(
        "Olmo3Config",
        "olmo3/configuration_olmo3.py",
        Olmo3Config,
        {
            "vocab_size": 50304,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
            "sliding_window": 4096,
        },
        copied=("head_dim", "layer_types"),
    ),
    gguf=("olmo2",),
    # llama.cpp LLM_ARCH_OLMO2 (src/llama-model.cpp load_hparams): a file with a sliding window gets
    # set_swa_pattern(4) (3 sliding : 1 full), one without attends in full (OLMo 2)
    gguf_rules={"olmo2": GGUFRules(swa=swa_period(4))},
)  # convert_hf_to_gguf.py: Olmo3ForCausalLM -> MODEL_ARCH.OLMO2
