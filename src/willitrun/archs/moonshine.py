"""Moonshine (MoonshineForConditionalGeneration): a speech encoder-decoder over raw 16 kHz audio. Three
convolutions turn the samples into encoder positions, and every decoder layer cross-attends to them (a cross
cache by source length, like Whisper's, but of any length: no 30 s window).

transformers 5.23 models/moonshine/modeling_moonshine.py:
- MoonshineEncoder: conv1 (1 -> hidden, kernel 127, stride 64, no bias), conv2 (hidden -> 2 hidden, kernel 7,
  stride 3), conv3 (2 hidden -> hidden, kernel 3, stride 2), a GroupNorm (weight and bias), layers of
  self-attention (q/k/v biased when attention_bias, o_proj without) and a plain fc1 / fc2 MLP with biases, each
  behind a bias-free LayerNorm, and a final bias-free LayerNorm; rotary positions (no weights).
- MoonshineDecoder: embed_tokens, layers of self-attention, cross-attention (encoder_attn) and a gated MLP (fc1
  to 2 x intermediate_size, fc2 back, both biased) behind three bias-free LayerNorms, a final norm; proj_out tied
  to embed_tokens by default (_tied_weights_keys).
- head_dim = hidden_size // heads; pad_head_dim_to_multiple_of pads only inside the attention kernel: the cache
  keeps the unpadded keys and values (MoonshineAttention.forward updates the cache before padding).

Encoder positions for N audio samples: L1 = (N - 127) // 64 + 1, L2 = (L1 - 7) // 3 + 1, L3 = (L2 - 3) // 2 + 1
(the three convolutions, no padding): 1,248 for 30 s, about 41.6 per second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from ..records import model_validator
from .base import (
    Geometry,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    check_heads,
    linear,
    norm,
)
from .family import ConfigClass, Family, WeightRules

ARCHITECTURES = ("moonshine",)
SAMPLE_RATE = 16_000
DEFAULT_SECONDS = 30  # what the estimate assumes without --encoder-tokens (Whisper's window, for comparison)


def encoder_positions(samples: int) -> int:
    """Encoder positions MoonshineEncoder's three convolutions leave of `samples` audio samples."""
    l1 = (samples - 127) // 64 + 1
    l2 = (l1 - 7) // 3 + 1
    return max(0, (l2 - 3) // 2 + 1)


class MoonshineConfig(Strict):
    """MoonshineConfig fields (transformers models/moonshine/configuration_moonshine.py)."""

    model_type: Literal["moonshine"] | None = None
    vocab_size: Vocab = 32768
    hidden_size: Hidden = 288
    intermediate_size: Intermediate = 1152
    encoder_num_hidden_layers: Layers = 6
    decoder_num_hidden_layers: Layers = 6
    encoder_num_attention_heads: Heads = 8
    decoder_num_attention_heads: Heads = 8
    encoder_num_key_value_heads: Heads | None = None  # None: the attention heads
    decoder_num_key_value_heads: Heads | None = None
    encoder_hidden_act: Literal["gelu", "gelu_pytorch_tanh", "silu"] = "gelu"
    decoder_hidden_act: Literal["silu", "gelu", "gelu_pytorch_tanh"] = "silu"
    max_position_embeddings: Positions = 512
    attention_bias: bool = False
    tie_word_embeddings: bool = True

    @property
    def encoder_kv_heads(self) -> int:
        return self.encoder_num_key_value_heads or self.encoder_num_attention_heads

    @property
    def decoder_kv_heads(self) -> int:
        return self.decoder_num_key_value_heads or self.decoder_num_attention_heads

    @model_validator(mode="after")
    def _check(self) -> MoonshineConfig:
        for heads, kv, where in (
            (self.encoder_num_attention_heads, self.encoder_kv_heads, "encoder_"),
            (self.decoder_num_attention_heads, self.decoder_kv_heads, "decoder_"),
        ):
            if self.hidden_size % heads:
                raise ValueError(f"hidden_size ({self.hidden_size}) is not a multiple of {where}num_attention_heads")
            check_heads(heads, kv, where)
        return self


class MoonshineSpec(ModelSpecBase):
    architecture: Literal["moonshine"]
    config: MoonshineConfig

    def unusable_values(self) -> list[str]:
        """MoonshineAttention.forward views its queries with config.num_key_value_heads heads, so grouped
        key/value heads build but cannot run (transformers 5.23)."""
        c = self.config
        if c.encoder_kv_heads == c.encoder_num_attention_heads and c.decoder_kv_heads == c.decoder_num_attention_heads:
            return []
        return [
            "Warning: encoder_/decoder_num_key_value_heads below the attention heads: transformers' "
            "MoonshineAttention views its queries with num_key_value_heads heads, so a forward pass would fail; "
            "sized as written."
        ]


SPECS: dict[str, type[Any]] = {"moonshine": MoonshineSpec}


def _attention(p: str, comp: str, i: int, h: int, heads: int, kv: int, bias: bool) -> Iterator[Tensor]:
    hd = h // heads
    yield from linear(f"{p}.attn_q", comp, heads * hd, h, "attn_q", bias, i)
    yield from linear(f"{p}.attn_k", comp, kv * hd, h, "attn_k", bias, i)
    yield from linear(f"{p}.attn_v", comp, kv * hd, h, "attn_v", bias, i)
    yield from linear(f"{p}.attn_output", comp, h, heads * hd, "attn_output", False, i)


def tensors(spec: MoonshineSpec) -> Iterator[Tensor]:
    c = spec.config
    h, f, b = c.hidden_size, c.intermediate_size, c.attention_bias
    yield Tensor("encoder.conv1.weight", "encoder", (h, 1, 127), "conv")
    yield Tensor("encoder.conv2.weight", "encoder", (2 * h, h, 7), "conv")
    yield Tensor("encoder.conv2.bias", "encoder", (2 * h,), "bias")
    yield Tensor("encoder.conv3.weight", "encoder", (h, 2 * h, 3), "conv")
    yield Tensor("encoder.conv3.bias", "encoder", (h,), "bias")
    yield from norm("encoder.groupnorm", "encoder", h, None, bias=True)
    for i in range(c.encoder_num_hidden_layers):
        p = f"encoder.{i}"
        yield from _attention(p, "encoder", i, h, c.encoder_num_attention_heads, c.encoder_kv_heads, b)
        yield from linear(f"{p}.ffn_up", "encoder", f, h, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", "encoder", h, f, "ffn_down", True, i)
        yield from norm(f"{p}.attn_norm", "encoder", h, i)
        yield from norm(f"{p}.ffn_norm", "encoder", h, i)
    yield from norm("encoder.output_norm", "encoder", h, None)
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.decoder_num_hidden_layers):
        p = f"decoder.{i}"
        heads, kv = c.decoder_num_attention_heads, c.decoder_kv_heads
        yield from _attention(p, "decoder", i, h, heads, kv, b)
        yield from _attention(f"{p}.cross", "decoder", i, h, heads, kv, b)
        yield from linear(f"{p}.ffn_gate_up", "decoder", 2 * f, h, "ffn_gate_up", True, i)
        yield from linear(f"{p}.ffn_down", "decoder", h, f, "ffn_down", True, i)
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from norm(f"{p}.cross_attn_norm", "decoder", h, i)
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: MoonshineSpec) -> Geometry:
    c = spec.config
    heads, kv = c.decoder_num_attention_heads, c.decoder_kv_heads
    hd = c.hidden_size // heads
    n = c.decoder_num_hidden_layers
    not_here = "does not run Moonshine"
    return Geometry(
        architecture=spec.architecture,
        self_kv=(LayerKV("full", kv, hd, hd),) * n,
        cross_kv=(LayerKV("cross", kv, hd, hd),) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=heads,
        intermediate_size=c.intermediate_size,
        context_window=c.max_position_embeddings,  # rotary positions: beyond it is a warning, not an error
        tp_constraints=(
            ("encoder attention heads", c.encoder_num_attention_heads, False),
            ("decoder attention heads", heads, False),
            ("decoder KV heads", kv, True),
            ("intermediate_size", c.intermediate_size, False),
        ),
        tp_kv_heads=kv,
        cross_source=(
            "audio: the encoder's positions (--encoder-tokens; about 41.6 per second of 16 kHz audio, "
            f"{encoder_positions(DEFAULT_SECONDS * SAMPLE_RATE):,} for {DEFAULT_SECONDS} s by default)"
        ),
        encoder_tokens_option=True,
        encoder_tokens_default=encoder_positions(DEFAULT_SECONDS * SAMPLE_RATE),
        refusals={
            "llama.cpp": f"llama.cpp {not_here}",
            "ollama": f"ollama {not_here}",
            "vllm": "the vLLM profile does not model Moonshine",
        },
    )


def stages(spec: MoonshineSpec, context: int, source: int, images: int) -> list[Stage]:
    c = spec.config
    h = c.hidden_size
    # conv1 runs at the samples / 64 positions (about 12 x the encoder's), 2 x hidden wide out of conv2
    return [
        Stage(source * 12, 3 * h, 0, 0, 0, False, 0, 0, per_input=True),
        Stage(
            source,
            h,
            h,
            h // c.encoder_num_attention_heads * c.encoder_kv_heads,
            c.intermediate_size,
            False,
            c.encoder_num_attention_heads,
            source,
            per_input=True,
        ),
        Stage(
            context,
            h,
            h,
            h // c.decoder_num_attention_heads * c.decoder_kv_heads,
            c.intermediate_size,
            True,
            c.decoder_num_attention_heads,
            source,
        ),
    ]


def image_tokens(spec: MoonshineSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: MoonshineSpec, images: int, encoder_tokens: int) -> int:
    return encoder_tokens


CONFIG_JSON = {
    "moonshine": ConfigClass(
        "MoonshineConfig",
        "moonshine/configuration_moonshine.py",
        MoonshineConfig,
        {
            "vocab_size": 32768,
            "hidden_size": 288,
            "intermediate_size": 1152,
            "encoder_num_hidden_layers": 6,
            "decoder_num_hidden_layers": 6,
            "encoder_num_attention_heads": 8,
            "decoder_num_attention_heads": 8,
            "encoder_num_key_value_heads": None,
            "decoder_num_key_value_heads": None,
            "encoder_hidden_act": "gelu",
            "decoder_hidden_act": "silu",
            "max_position_embeddings": 512,
            "attention_bias": False,
            "tie_word_embeddings": True,
        },
        aliases={  # MoonshineConfig.attribute_map
            "num_key_value_heads": "decoder_num_key_value_heads",
            "num_attention_heads": "decoder_num_attention_heads",
            "num_hidden_layers": "decoder_num_hidden_layers",
            "hidden_act": "decoder_hidden_act",
        },
    )
}
# MoonshineForConditionalGeneration: model.encoder (convs, groupnorm, layers, layer_norm), model.decoder
# (embed_tokens, layers, norm), proj_out (tied to embed_tokens unless tie_word_embeddings is false)
WEIGHT_RULES: WeightRules = (
    (r"model\.encoder\..+", "encoder"),
    (r"model\.decoder\.embed_tokens\.weight", "embeddings"),
    (r"model\.decoder\..+", "decoder"),
    (r"proj_out\.weight", "lm_head"),
)


FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json=CONFIG_JSON,
    weight_rules={"moonshine": WEIGHT_RULES},
)
