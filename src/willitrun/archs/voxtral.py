"""Voxtral (VoxtralForConditionalGeneration): Whisper's encoder over 30 s chunks of audio; each chunk's 1500
encoder positions are regrouped four at a time (reshape to audio_config.intermediate_size) and projected
(linear_1, GELU, linear_2, no biases) into a Llama-shaped language model's input: 375 audio tokens per 30 s
chunk in the self-attention context (no cross-attention).

transformers 5.23 models/voxtral/modeling_voxtral.py: VoxtralEncoder, VoxtralMultiModalProjector,
VoxtralModel.get_audio_features (`reshape(-1, self.config.audio_config.intermediate_size)`); the processor pads
audio to the next multiple of 30 s and splits it into chunks of 3000 mel frames (processing_voxtral.py
_retrieve_input_features)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import (
    Geometry,
    Heads,
    Hidden,
    Intermediate,
    Layers,
    MelBins,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    linear,
)
from .family import ConfigClass, Family, WeightRules
from .llama import LlamaConfig
from .qwen2_audio import AUDIO_REFUSALS, AudioEncoderConfig, audio_encoder_stage, audio_encoder_tensors, windows

ARCHITECTURES = ("voxtral",)


class VoxtralEncoderConfig(Strict):
    """VoxtralEncoderConfig fields (transformers models/voxtral/configuration_voxtral.py; its attribute_map
    names them d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim as Whisper does)."""

    model_type: Literal["voxtral_encoder"] | None = None
    hidden_size: Hidden = 1280
    intermediate_size: Intermediate = 5120
    num_hidden_layers: Layers = 32
    num_attention_heads: Heads = 20
    num_mel_bins: MelBins = 128
    max_source_positions: Positions = 1500

    @model_validator(mode="after")
    def _check(self) -> VoxtralEncoderConfig:
        if (self.max_source_positions * self.hidden_size) % self.intermediate_size:
            # get_audio_features' reshape(-1, intermediate_size) fails on such a chunk
            raise ValueError(
                f"audio_config: max_source_positions x hidden_size ({self.max_source_positions} x {self.hidden_size}) "
                f"is not a multiple of intermediate_size ({self.intermediate_size})"
            )
        return self

    @property
    def encoder(self) -> AudioEncoderConfig:
        return AudioEncoderConfig(
            num_mel_bins=self.num_mel_bins,
            encoder_layers=self.num_hidden_layers,
            encoder_attention_heads=self.num_attention_heads,
            encoder_ffn_dim=self.intermediate_size,
            d_model=self.hidden_size,
            max_source_positions=self.max_source_positions,
        )

    @property
    def tokens_per_chunk(self) -> int:
        return self.max_source_positions * self.hidden_size // self.intermediate_size


class VoxtralConfig(Strict):
    """VoxtralConfig fields (transformers models/voxtral/configuration_voxtral.py): audio_config and text_config
    (a llama LlamaConfig) nested."""

    text_config: LlamaConfig
    audio_config: VoxtralEncoderConfig = VoxtralEncoderConfig()
    projector_hidden_act: Literal["gelu"] = "gelu"


class VoxtralSpec(ModelSpecBase):
    architecture: Literal["voxtral"]
    config: VoxtralConfig


SPECS = {"voxtral": VoxtralSpec}


def _tied(c: object) -> bool:
    # the class declares no _tied_weights_keys (transformers 5.23 modeling file): lm_head is its own even when
    # text_config.tie_word_embeddings says otherwise
    return False


def tensors(spec: VoxtralSpec) -> Iterator[Tensor]:
    c = spec.config
    a = c.audio_config
    yield from audio_encoder_tensors(a.encoder)
    h = c.text_config.hidden_size
    yield from linear("projector.linear_1", "projector", h, a.intermediate_size, "projector", False, None)
    yield from linear("projector.linear_2", "projector", h, h, "projector", False, None)
    yield from llama.decoder_lm(c.text_config, tied=_tied(c))


def geometry(spec: VoxtralSpec) -> Geometry:
    c = spec.config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="Voxtral has no cross-attention: audio tokens sit in the self-attention context",
        tp_constraints=llama.lm_tp_constraints(c.text_config)
        + (("audio encoder attention heads", c.audio_config.num_attention_heads, False),),
        refusals=AUDIO_REFUSALS,
    )


def audio_tokens(spec: VoxtralSpec, seconds: int) -> int:
    """375 tokens (1500 positions x 1280 / 5120) per started 30 s chunk: the processor pads audio to a multiple
    of 30 s, so 31 s take two chunks."""
    return windows(seconds) * spec.config.audio_config.tokens_per_chunk


def stages(spec: VoxtralSpec, context: int, source: int, images: int) -> list[Stage]:
    # the encoder's activations for one 30 s chunk per sequence are counted
    return [llama.lm_stage(spec.config.text_config, context), audio_encoder_stage(spec.config.audio_config.encoder, 1)]


def image_tokens(spec: VoxtralSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: VoxtralSpec, images: int, encoder_tokens: int) -> int:
    return 0


# mistralai/Voxtral-Mini-3B-2507 (transformers format): audio_tower.*, multi_modal_projector.linear_{1,2}.weight,
# language_model.model.*, language_model.lm_head.weight; transformers 5 modules: model.audio_tower.*, lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?audio_tower\..+", "audio_tower"),
    (r"(?:model\.)?multi_modal_projector\..+", "projector"),
    (r"(?:model\.language_model\.|language_model\.model\.)embed_tokens\.weight", "embeddings"),
    (r"(?:model\.language_model\.|language_model\.model\.)(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"(?:language_model\.)?lm_head\.weight", "lm_head"),
)

# VoxtralConfig.sub_configs_defaults["text_config"] init_kwargs over LlamaConfig's defaults
_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 131072,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 30,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 131072,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
}
_ENCODER_DEFAULTS: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "num_mel_bins": 128,
    "max_source_positions": 1500,
}
CONFIG_JSON = {
    "voxtral": ConfigClass(
        "VoxtralConfig",
        "voxtral/configuration_voxtral.py",
        VoxtralConfig,
        {
            "text_config": ConfigClass("LlamaConfig", "llama/configuration_llama.py", LlamaConfig, _TEXT_DEFAULTS),
            "audio_config": ConfigClass(
                "VoxtralEncoderConfig",
                "voxtral/configuration_voxtral.py",
                VoxtralEncoderConfig,
                _ENCODER_DEFAULTS,
                aliases={
                    "d_model": "hidden_size",
                    "encoder_layers": "num_hidden_layers",
                    "encoder_attention_heads": "num_attention_heads",
                    "encoder_ffn_dim": "intermediate_size",
                },
            ),
            "projector_hidden_act": "gelu",
        },
    ),
}

FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json=CONFIG_JSON,
    weight_rules={"voxtral": WEIGHT_RULES},
    audio_tokens=audio_tokens,
)
