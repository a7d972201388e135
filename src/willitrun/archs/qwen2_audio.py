"""Qwen2-Audio (Qwen2AudioForConditionalGeneration): a Whisper-like audio encoder whose 30 s window of
1500 positions is average-pooled by 2 and projected into a Qwen2 language model's input, so its 750
audio tokens sit in the self-attention context, as LLaVA's image tokens do (no cross-attention).

transformers 5.23 models/qwen2_audio/modeling_qwen2_audio.py: Qwen2AudioEncoder (conv1, conv2 stride 2,
embed_positions, Whisper layers, layer_norm, avg_pooler), Qwen2AudioMultiModalProjector (one biased
linear), the text model from text_config (qwen2) and lm_head."""

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
    norm,
)
from .family import ConfigClass, Family, WeightRules
from .qwen2 import Qwen2Config

ARCHITECTURES = ("qwen2_audio",)
WINDOW_SECONDS = 30  # WhisperFeatureExtractor: chunk_length 30 s, n_samples 480000, 100 mel frames a second
MEL_FRAMES_PER_SECOND = 100  # 16 kHz audio, hop_length 160


class AudioEncoderConfig(Strict):
    """Qwen2AudioEncoderConfig fields (transformers models/qwen2_audio/configuration_qwen2_audio.py); Voxtral's
    VoxtralEncoderConfig holds the same under other names (archs/voxtral.py reads them into this class)."""

    model_type: Literal["qwen2_audio_encoder"] | None = None
    num_mel_bins: MelBins = 128
    encoder_layers: Layers = 32
    encoder_attention_heads: Heads = 20
    encoder_ffn_dim: Intermediate = 5120
    d_model: Hidden = 1280
    max_source_positions: Positions = 1500  # encoder positions of a 30 s window (3000 mel frames / conv2 stride 2)

    @model_validator(mode="after")
    def _check(self) -> AudioEncoderConfig:
        if self.d_model % self.encoder_attention_heads:
            raise ValueError(
                f"audio d_model ({self.d_model}) is not a multiple of the attention heads "
                f"({self.encoder_attention_heads})"
            )
        return self


def audio_encoder_tensors(a: AudioEncoderConfig, comp: str = "audio_tower") -> Iterator[Tensor]:
    """Whisper's encoder as Qwen2-Audio and Voxtral build it: conv1 (k=3 over mel bins), conv2 (k=3, stride 2),
    max_source_positions learned positions, pre-LN layers (q, v, out_proj biased, k_proj not; fc1/fc2), final
    LayerNorm. The AvgPool1d holds no parameters."""
    d = a.d_model
    yield Tensor("audio.conv1.weight", comp, (d, a.num_mel_bins, 3), "conv")
    yield Tensor("audio.conv1.bias", comp, (d,), "bias")
    yield Tensor("audio.conv2.weight", comp, (d, d, 3), "conv")
    yield Tensor("audio.conv2.bias", comp, (d,), "bias")
    yield Tensor("audio.position_embd.weight", comp, (a.max_source_positions, d), "pos_embd")
    for i in range(a.encoder_layers):
        p = f"audio.{i}"
        yield from linear(f"{p}.attn_k", comp, d, d, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", comp, d, d, "attn_v", True, i)
        yield from linear(f"{p}.attn_q", comp, d, d, "attn_q", True, i)
        yield from linear(f"{p}.attn_output", comp, d, d, "attn_output", True, i)
        yield from norm(f"{p}.attn_norm", comp, d, i, bias=True)
        yield from linear(f"{p}.ffn_up", comp, a.encoder_ffn_dim, d, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", comp, d, a.encoder_ffn_dim, "ffn_down", True, i)
        yield from norm(f"{p}.ffn_norm", comp, d, i, bias=True)
    yield from norm("audio.output_norm", comp, d, None, bias=True)


def audio_encoder_stage(a: AudioEncoderConfig, windows: int) -> Stage:
    """The audio encoder's layers over `windows` 30 s windows of max_source_positions positions each."""
    d = a.d_model
    n = a.max_source_positions
    return Stage(n * windows, d, d, d, a.encoder_ffn_dim, False, a.encoder_attention_heads, n, per_input=True)


# llama.cpp runs these through libmtmd with the audio tower in an mmproj GGUF (docs/multimodal.md: "image and audio
# input"); its profile here sizes vision mmproj files only, so it answers nothing rather than a wrong buffer
AUDIO_REFUSALS = {
    engine: f"{engine}: the profile does not size an audio tower's mmproj file yet; estimate the text model's GGUF "
    "and add the mmproj file's size"
    for engine in ("llama.cpp", "ollama")
}


def windows(seconds: int) -> int:
    """30 s windows that hold `seconds` of audio (a longer clip is several audios of at most 30 s each)."""
    return -(-seconds // WINDOW_SECONDS)


class Qwen2AudioConfig(Strict):
    """Qwen2AudioConfig fields (transformers models/qwen2_audio/configuration_qwen2_audio.py): audio_config and
    text_config (a qwen2 Qwen2Config) nested."""

    text_config: Qwen2Config
    audio_config: AudioEncoderConfig = AudioEncoderConfig()


class Qwen2AudioSpec(ModelSpecBase):
    architecture: Literal["qwen2_audio"]
    config: Qwen2AudioConfig


SPECS = {"qwen2_audio": Qwen2AudioSpec}


def _tied(c: object) -> bool:
    # the class declares no _tied_weights_keys (transformers 5.23 modeling file): lm_head is its own even when
    # text_config.tie_word_embeddings says otherwise
    return False


def tensors(spec: Qwen2AudioSpec) -> Iterator[Tensor]:
    c = spec.config
    yield from audio_encoder_tensors(c.audio_config)
    t = c.text_config
    yield from linear("projector.linear", "projector", t.hidden_size, c.audio_config.d_model, "projector", True, None)
    yield from llama.decoder_lm(t, tied=_tied(c))


def geometry(spec: Qwen2AudioSpec) -> Geometry:
    c = spec.config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="Qwen2-Audio has no cross-attention: audio tokens sit in the self-attention context",
        tp_constraints=llama.lm_tp_constraints(c.text_config)
        + (("audio encoder attention heads", c.audio_config.encoder_attention_heads, False),),
        refusals=AUDIO_REFUSALS,
    )


def audio_tokens(spec: Qwen2AudioSpec, seconds: int) -> int:
    """Tokens `seconds` of audio put in the context: per clip of at most 30 s, Qwen2AudioProcessor's
    `(((mel_frames - 1) // 2 + 1) - 2) // 2 + 1` (conv2's stride 2, then the AvgPool1d(2, stride=2);
    processing_qwen2_audio.py, modeling_qwen2_audio.py _get_feat_extract_output_lengths): 750 for 30 s."""

    def clip(frames: int) -> int:
        return (((frames - 1) // 2 + 1) - 2) // 2 + 1

    full, rest = divmod(seconds, WINDOW_SECONDS)
    tail = clip(rest * MEL_FRAMES_PER_SECOND) if rest else 0
    return full * clip(WINDOW_SECONDS * MEL_FRAMES_PER_SECOND) + tail


def stages(spec: Qwen2AudioSpec, context: int, source: int, images: int) -> list[Stage]:
    # the audio encoder runs once per 30 s clip at its full 1500 positions (the processor pads to 30 s); its
    # activations for one clip per sequence are counted
    return [llama.lm_stage(spec.config.text_config, context), audio_encoder_stage(spec.config.audio_config, 1)]


def image_tokens(spec: Qwen2AudioSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: Qwen2AudioSpec, images: int, encoder_tokens: int) -> int:
    return 0


# Qwen/Qwen2-Audio-7B(-Instruct) store audio_tower.*, multi_modal_projector.linear.*, language_model.model.* and
# language_model.lm_head; transformers 5 names the modules model.audio_tower.*, model.language_model.*, lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?audio_tower\..+", "audio_tower"),
    (r"(?:model\.)?multi_modal_projector\..+", "projector"),
    (r"(?:model\.language_model\.|language_model\.model\.)embed_tokens\.weight", "embeddings"),
    (r"(?:model\.language_model\.|language_model\.model\.)(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"(?:language_model\.)?lm_head\.weight", "lm_head"),
)

_ENCODER_DEFAULTS: dict[str, Any] = {
    "num_mel_bins": 128,
    "encoder_layers": 32,
    "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "d_model": 1280,
    "max_source_positions": 1500,
}
# Qwen2Config's defaults (transformers models/qwen2/configuration_qwen2.py), the text_config of Qwen2AudioConfig
_QWEN2_DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 4096,
    "intermediate_size": 22016,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 32768,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": None,  # Qwen2Config sets None unless use_sliding_window (inert either way)
    "max_window_layers": 28,
}
CONFIG_JSON = {
    "qwen2_audio": ConfigClass(
        "Qwen2AudioConfig",
        "qwen2_audio/configuration_qwen2_audio.py",
        Qwen2AudioConfig,
        {
            "text_config": ConfigClass(
                "Qwen2Config", "qwen2/configuration_qwen2.py", Qwen2Config, _QWEN2_DEFAULTS, copied=("layer_types",)
            ),
            "audio_config": ConfigClass(
                "Qwen2AudioEncoderConfig",
                "qwen2_audio/configuration_qwen2_audio.py",
                AudioEncoderConfig,
                _ENCODER_DEFAULTS,
            ),
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
    weight_rules={"qwen2_audio": WEIGHT_RULES},
    audio_tokens=audio_tokens,
)
