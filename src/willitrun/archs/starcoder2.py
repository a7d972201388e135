"""StarCoder2 (Starcoder2ForCausalLM): biased q/k/v/o projections and a plain two-matrix MLP
(c_fc, c_proj; biased when `use_bias`), LayerNorms with a bias, and one sliding window on every
layer (transformers models/starcoder2/modeling_starcoder2.py); the LM head is tied by default."""

from __future__ import annotations

from typing import Literal

from . import llama
from .base import Geometry, ModelSpecBase, Positions
from .family import ConfigClass, Family, GGUFDecoder, GGUFRules
from .llama import LM_WEIGHT_RULES, Anatomy, DecoderConfig, stages, tensors

ARCHITECTURES = ("starcoder2",)


class Starcoder2Config(DecoderConfig):
    """Starcoder2Config fields (transformers models/starcoder2/configuration_starcoder2.py)."""

    model_type: Literal["starcoder2"] | None = None
    hidden_act: Literal["gelu_pytorch_tanh", "gelu"] = "gelu_pytorch_tanh"
    use_bias: bool = True
    sliding_window: Positions | None = None
    tie_word_embeddings: bool = True

    @property
    def anatomy(self) -> Anatomy:
        b = self.use_bias
        return Anatomy(qkv_bias=b, o_bias=b, mlp_bias=b, norm_bias=True, gated=False)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class Starcoder2Spec(ModelSpecBase):
    architecture: Literal["starcoder2"]
    config: Starcoder2Config


SPECS = {"starcoder2": Starcoder2Spec}


def geometry(spec: ModelSpecBase) -> Geometry:
    # llama.cpp runs StarCoder2's window as full attention: src/models/starcoder2.cpp reads no sliding
    # window (load_arch_hparams: f_norm_eps only) and builds build_attn_inp_kv(), not the iSWA cache, so
    # every layer keeps n_ctx cells (llamacpp_swa stays False). Its model types are 3B/7B/15B (30/32/40
    # layers) and Granite's 20B/34B, never LLM_TYPE_70B, whose attn_v rule gguf_70b mirrors.
    return llama.decoder_geometry(spec.config, spec.architecture, gguf_70b=False)  # type: ignore[attr-defined]


image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens


# the config.json keys transformers' class reads and its defaults (moved from importers/configs.py)
STARCODER2 = ConfigClass(
    "Starcoder2Config",
    "starcoder2/configuration_starcoder2.py",
    Starcoder2Config,
    {
        "vocab_size": 49152,
        "hidden_size": 3072,
        "intermediate_size": 12288,
        "num_hidden_layers": 30,
        "num_attention_heads": 24,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "hidden_act": "gelu_pytorch_tanh",
        "use_bias": True,
        "tie_word_embeddings": True,
    },
    copied=("sliding_window",),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"starcoder2": STARCODER2},
    gguf_architectures=("starcoder2",),
    # Starcoder2Model.norm is a LayerNorm with a bias
    weight_rules={"starcoder2": (*LM_WEIGHT_RULES, (r"(?:model\.)?norm\.bias", "decoder"))},
    gguf_rules={
        "starcoder2": GGUFRules(
            # Starcoder2Config.use_bias: every projection and both MLP matrices biased, or none; the window is read when a
            # file has it, though llama.cpp ignores it (its graph caches every layer in full)
            decoder=GGUFDecoder(
                "starcoder2",
                flags={"use_bias": "blk.0.attn_q.bias"},
                window="optional",
                # its final LayerNorm has a bias (llama.cpp src/models/starcoder2.cpp output_norm_b)
                weight_rules=((r"output_norm\.bias", "decoder"),),
            )
        )
    },
)
