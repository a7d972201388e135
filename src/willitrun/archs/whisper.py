"""Whisper (WhisperForConditionalGeneration): a speech encoder-decoder; every decoder layer
cross-attends to the 1500 encoder positions of a 30 s window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ..records import model_validator
from .base import (
    Geometry,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    MelBins,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, Family, WeightRules

ARCHITECTURES = ("whisper",)


class WhisperConfig(Strict):
    """WhisperConfig fields (transformers models/whisper/configuration_whisper.py)."""

    vocab_size: Vocab
    num_mel_bins: MelBins
    d_model: Hidden
    encoder_layers: Layers
    encoder_attention_heads: Heads
    encoder_ffn_dim: Intermediate
    decoder_layers: Layers
    decoder_attention_heads: Heads
    decoder_ffn_dim: Intermediate
    max_source_positions: Positions  # encoder positions per 30 s window (1500)
    max_target_positions: Positions  # learned decoder positions: a hard token limit (448)
    tie_word_embeddings: bool = True  # proj_out shares the decoder token embedding

    @model_validator(mode="after")
    def _check(self) -> WhisperConfig:
        for heads in (self.encoder_attention_heads, self.decoder_attention_heads):
            if self.d_model % heads:
                raise ValueError(f"d_model ({self.d_model}) is not a multiple of the attention heads ({heads})")
        return self


class WhisperSpec(ModelSpecBase):
    architecture: Literal["whisper"]
    config: WhisperConfig


SPECS = {"whisper": WhisperSpec}


def tensors(spec: WhisperSpec) -> Iterator[Tensor]:
    """WhisperForConditionalGeneration: encoder (conv1 k=3 over mel bins, conv2 k=3 stride 2,
    1500 positional rows, pre-LN layers), decoder (token embedding, 448 learned positions, layers
    with self- and cross-attention), proj_out tied to the decoder token embedding.
    Attention: q, v, out_proj have a bias, k_proj has none (WhisperAttention)."""
    c = spec.config
    d = c.d_model

    def attention(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from linear(f"{prefix}.attn_k", comp, d, d, "attn_k", False, i)
        yield from linear(f"{prefix}.attn_v", comp, d, d, "attn_v", True, i)
        yield from linear(f"{prefix}.attn_q", comp, d, d, "attn_q", True, i)
        yield from linear(f"{prefix}.attn_output", comp, d, d, "attn_output", True, i)

    def layer(stack: str, i: int, ffn: int, cross: bool) -> Iterator[Tensor]:
        p = f"{stack}.{i}"
        yield from attention(p, stack, i)
        yield from norm(f"{p}.attn_norm", stack, d, i, bias=True)
        if cross:
            yield from attention(f"{p}.cross", stack, i)
            yield from norm(f"{p}.cross_attn_norm", stack, d, i, bias=True)
        yield from linear(f"{p}.ffn_up", stack, ffn, d, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", stack, d, ffn, "ffn_down", True, i)
        yield from norm(f"{p}.ffn_norm", stack, d, i, bias=True)

    yield Tensor("encoder.conv1.weight", "encoder", (d, c.num_mel_bins, 3), "conv")
    yield Tensor("encoder.conv1.bias", "encoder", (d,), "bias")
    yield Tensor("encoder.conv2.weight", "encoder", (d, d, 3), "conv")
    yield Tensor("encoder.conv2.bias", "encoder", (d,), "bias")
    yield Tensor("encoder.position_embd.weight", "encoder", (c.max_source_positions, d), "pos_embd")
    for i in range(c.encoder_layers):
        yield from layer("encoder", i, c.encoder_ffn_dim, cross=False)
    yield from norm("encoder.output_norm", "encoder", d, None, bias=True)

    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, d), "token_embd")
    yield Tensor("decoder.position_embd.weight", "decoder", (c.max_target_positions, d), "pos_embd")
    for i in range(c.decoder_layers):
        yield from layer("decoder", i, c.decoder_ffn_dim, cross=True)
    yield from norm("decoder.output_norm", "decoder", d, None, bias=True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, d), "output")


def geometry(spec: WhisperSpec) -> Geometry:
    c = spec.config
    heads = c.decoder_attention_heads
    hd = c.d_model // heads
    n = c.decoder_layers
    not_here = "does not run Whisper; use the whisper.cpp engine"
    return Geometry(
        architecture=spec.architecture,
        self_kv=(LayerKV("full", heads, hd, hd),) * n,
        cross_kv=(LayerKV("cross", heads, hd, hd),) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.d_model,
        num_attention_heads=heads,
        intermediate_size=c.decoder_ffn_dim,
        context_window=c.max_target_positions,
        hard_limit=c.max_target_positions,
        tp_constraints=(
            ("encoder attention heads", c.encoder_attention_heads, False),
            ("decoder attention heads", heads, False),
            ("encoder_ffn_dim", c.encoder_ffn_dim, False),
            ("decoder_ffn_dim", c.decoder_ffn_dim, False),
        ),
        tp_kv_heads=heads,
        cross_source="audio frames (encoder positions per 30 s window)",
        refusals={
            "llama.cpp": f"llama.cpp {not_here}",
            "ollama": f"ollama {not_here}",
            "vllm": "the vLLM profile covers decoder LMs, LLaVA and Llama 3.2 Vision; not whisper",
        },
    )


def stages(spec: WhisperSpec, context: int, source: int, images: int) -> list[Stage]:
    c = spec.config
    return [
        # conv1 runs at the 3000 mel frames: its input (mel bins) and output (d_model) per frame
        Stage(c.max_source_positions * 2, c.num_mel_bins + c.d_model, 0, 0, 0, False, 0, 0, per_input=True),
        # the encoder layers run at the 1500 positions conv2 leaves
        Stage(
            c.max_source_positions,
            c.d_model,
            c.d_model,
            c.d_model,
            c.encoder_ffn_dim,
            False,
            c.encoder_attention_heads,
            c.max_source_positions,
            per_input=True,
        ),
        Stage(
            context,
            c.d_model,
            c.d_model,
            c.d_model,
            c.decoder_ffn_dim,
            False,
            c.decoder_attention_heads,
            c.max_source_positions,
        ),
    ]


def image_tokens(spec: WhisperSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: WhisperSpec, images: int, encoder_tokens: int) -> int:
    return spec.config.max_source_positions


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
WHISPER = ConfigClass(
    "WhisperConfig",
    "whisper/configuration_whisper.py",
    WhisperConfig,
    {
        "vocab_size": 51865,
        "num_mel_bins": 80,
        "d_model": 384,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "encoder_ffn_dim": 1536,
        "decoder_layers": 4,
        "decoder_attention_heads": 6,
        "decoder_ffn_dim": 1536,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "tie_word_embeddings": True,
    },
)
# WhisperForConditionalGeneration: model.encoder.*, model.decoder.* (its token embedding the "embeddings"), proj_out
WEIGHT_RULES: WeightRules = (
    (r"model\.decoder\.embed_tokens\.weight", "embeddings"),
    (r"model\.encoder\..+", "encoder"),
    (r"model\.decoder\..+", "decoder"),
    (r"proj_out\.weight", "lm_head"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"whisper": WHISPER},
    weight_rules={"whisper": WEIGHT_RULES},
)
