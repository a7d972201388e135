"""Vision encoder-decoders as Donut builds them (VisionEncoderDecoderModel, model_type
vision-encoder-decoder): a Swin encoder (DonutSwinModel, or SwinModel) over the page image and an
MBart/BART decoder (MBartForCausalLM / BartForCausalLM) whose every layer cross-attends to the encoder
output.

The encoder's output length is fixed by its configured image size: the processor resizes and pads
every page to encoder.image_size, the patch embedding leaves ceil(H / patch) x ceil(W / patch)
positions, and each stage but the last halves both sides (DonutSwinPatchMerging pads an odd side),
so Donut base at 2560 x 1920 ends with 80 x 60 = 4,800 positions -- the cross cache of every decoder
layer holds keys and values for all of them.

Tensors (transformers 5.23 models/donut/modeling_donut_swin.py, models/swin/modeling_swin.py,
models/mbart/modeling_mbart.py): the patch convolution (biased) and a LayerNorm; per block two
LayerNorms, a relative-position bias table of (2 x window - 1)^2 x heads, biased q/k/v (qkv_bias)
and output, an MLP of mlp_ratio x dim; per merge a LayerNorm over 4 x dim and an unbiased 4 x dim ->
2 x dim reduction; SwinModel adds a final LayerNorm (DonutSwinModel has none). The decoder is a BART
decoder (archs/bart.py) whose lm_head shares its token embedding unless tie_word_embeddings is false.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from math import ceil
from typing import Annotated, Any, Literal

from ..records import Field, field_validator, model_validator
from . import bart
from .base import (
    Channels,
    Geometry,
    Heads,
    Hidden,
    ImageSide,
    LayerKV,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    linear,
    norm,
)
from .family import BUFFER, ConfigClass, ConfigReading, Family, WeightRules

ARCHITECTURES = ("vision-encoder-decoder",)
MAX_STAGES = 8


class SwinEncoderConfig(Strict):
    """DonutSwinConfig / SwinConfig fields with their defaults (configuration_donut_swin.py)."""

    model_type: Literal["donut-swin", "swin"]
    image_size: ImageSide | tuple[ImageSide, ImageSide] = 224
    patch_size: ImageSide = 4
    num_channels: Channels = 3
    embed_dim: Hidden = 96
    depths: tuple[Layers, ...] = Field(default=(2, 2, 6, 2), min_length=1, max_length=MAX_STAGES)
    num_heads: tuple[Heads, ...] = Field(default=(3, 6, 12, 24), min_length=1, max_length=MAX_STAGES)
    window_size: ImageSide = 7
    mlp_ratio: float = Field(default=4.0, gt=0, le=64)
    qkv_bias: bool = True
    # absolute position embeddings (off in Donut) are not modelled
    use_absolute_embeddings: Literal[False] = False
    hidden_size: Hidden | None = None  # written by transformers: embed_dim x 2^(stages - 1)

    @field_validator("image_size", "depths", "num_heads", mode="before")
    @classmethod
    def _tuples(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check(self) -> SwinEncoderConfig:
        if len(self.num_heads) != len(self.depths):
            raise ValueError(f"num_heads has {len(self.num_heads)} entries for {len(self.depths)} stages")
        for d, h in zip(self.dims, self.num_heads, strict=True):
            if d % h:
                raise ValueError(f"stage width {d} is not a multiple of its num_heads {h}")
        if self.hidden_size is not None and self.hidden_size != self.dims[-1]:
            raise ValueError(f"hidden_size {self.hidden_size} is not embed_dim x 2^(stages - 1) = {self.dims[-1]}")
        return self

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))

    @property
    def hw(self) -> tuple[int, int]:
        return (self.image_size, self.image_size) if isinstance(self.image_size, int) else self.image_size

    def grids(self) -> list[tuple[int, int]]:
        """(height, width) of each stage's feature map."""
        h, w = (ceil(s / self.patch_size) for s in self.hw)
        out = [(h, w)]
        for _ in self.depths[1:]:
            h, w = ceil(h / 2), ceil(w / 2)
            out.append((h, w))
        return out


class MBartDecoderConfig(bart.BartConfig):
    """The decoder's MBartConfig / BartConfig (the encoder_* fields are unused by the CausalLM class:
    MBartConfig's defaults)."""

    model_type: Literal["mbart", "bart"]
    encoder_layers: Layers = 12
    encoder_attention_heads: Heads = 16
    encoder_ffn_dim: Annotated[int, Field(gt=0)] = 4096


class VisionEncoderDecoderConfig(Strict):
    encoder: SwinEncoderConfig
    decoder: MBartDecoderConfig

    @model_validator(mode="after")
    def _check(self) -> VisionEncoderDecoderConfig:
        if self.encoder.dims[-1] != self.decoder.d_model:
            # VisionEncoderDecoderModel adds an enc_to_dec_proj Linear when they differ (not modelled)
            raise ValueError(
                f"encoder width {self.encoder.dims[-1]} differs from the decoder's d_model "
                f"{self.decoder.d_model} (an enc_to_dec_proj layer, not modelled)"
            )
        return self


class VisionEncoderDecoderSpec(ModelSpecBase):
    architecture: Literal["vision-encoder-decoder"]
    config: VisionEncoderDecoderConfig


SPECS = {"vision-encoder-decoder": VisionEncoderDecoderSpec}


def _swin_tensors(e: SwinEncoderConfig) -> Iterator[Tensor]:
    comp = "encoder"
    p = e.patch_size
    yield Tensor("encoder.patch_embd.weight", comp, (e.embed_dim, e.num_channels, p, p), "conv")
    yield Tensor("encoder.patch_embd.bias", comp, (e.embed_dim,), "bias")
    yield from norm("encoder.patch_embd.norm", comp, e.embed_dim, None, bias=True)
    table = (2 * e.window_size - 1) ** 2
    layer = 0
    last = len(e.depths) - 1
    for s, (dim, depth, heads) in enumerate(zip(e.dims, e.depths, e.num_heads, strict=True)):
        inner = int(dim * e.mlp_ratio)
        for b in range(depth):
            q = f"encoder.{s}.{b}"
            yield from norm(f"{q}.ln1", comp, dim, layer, bias=True)
            yield Tensor(f"{q}.attn_rel_b", comp, (table, heads), "rel_bias", layer)
            yield from linear(f"{q}.attn_q", comp, dim, dim, "attn_q", e.qkv_bias, layer)
            yield from linear(f"{q}.attn_k", comp, dim, dim, "attn_k", e.qkv_bias, layer)
            yield from linear(f"{q}.attn_v", comp, dim, dim, "attn_v", e.qkv_bias, layer)
            yield from linear(f"{q}.attn_output", comp, dim, dim, "attn_output", True, layer)
            yield from norm(f"{q}.ln2", comp, dim, layer, bias=True)
            yield from linear(f"{q}.ffn_up", comp, inner, dim, "ffn_up", True, layer)
            yield from linear(f"{q}.ffn_down", comp, dim, inner, "ffn_down", True, layer)
            layer += 1
        if s < last:  # patch merging: 2 x 2 neighbours concatenated, normed, reduced to 2 x dim
            yield from linear(f"encoder.{s}.merge", comp, 2 * dim, 4 * dim, "other", False, None)
            yield from norm(f"encoder.{s}.merge_norm", comp, 4 * dim, None, bias=True)
    if e.model_type == "swin":  # SwinModel's final LayerNorm
        yield from norm("encoder.output_norm", comp, e.dims[-1], None, bias=True)


def tensors(spec: VisionEncoderDecoderSpec) -> Iterator[Tensor]:
    c = spec.config
    yield from _swin_tensors(c.encoder)
    yield from bart.bart_tensors(c.decoder, c.decoder.model_type, encoder=False)


def source_positions(spec: VisionEncoderDecoderSpec) -> int:
    """The encoder's output length: the last stage's height x width."""
    h, w = spec.config.encoder.grids()[-1]
    return h * w


def geometry(spec: VisionEncoderDecoderSpec) -> Geometry:
    e, d = spec.config.encoder, spec.config.decoder
    heads = d.decoder_attention_heads
    hd = d.d_model // heads
    n = d.decoder_layers
    h, w = e.hw
    return Geometry(
        architecture=spec.architecture,
        self_kv=(LayerKV("full", heads, hd, hd),) * n,
        cross_kv=(LayerKV("cross", heads, hd, hd),) * n,
        vocab_size=d.vocab_size,
        tied_embeddings=d.tie_word_embeddings,
        hidden_size=d.d_model,
        num_attention_heads=heads,
        intermediate_size=d.decoder_ffn_dim,
        context_window=d.max_position_embeddings,
        hard_limit=d.max_position_embeddings,  # learned decoder positions (+ 2 offset rows)
        tp_constraints=(
            ("decoder attention heads", heads, False),
            ("decoder_ffn_dim", d.decoder_ffn_dim, False),
            ("encoder attention heads (last stage)", e.num_heads[-1], False),
        ),
        tp_kv_heads=heads,
        cross_source=f"encoder positions (a {h} x {w} page after the Swin merges)",
        refusals={
            "ollama": "ollama runs no vision encoder-decoder (Donut) models",
            "llama.cpp": "llama.cpp has no Swin + MBart (Donut) architecture",
            "vllm": "the vLLM profile covers decoder LMs, LLaVA and Llama 3.2 Vision; not vision-encoder-decoder",
        },
    )


def stages(spec: VisionEncoderDecoderSpec, context: int, source: int, images: int) -> list[Stage]:
    """Each Swin stage over its feature map once per input (window attention: windows of
    window_size^2 positions, SDPA), then the decoder over the prompt."""
    e, d = spec.config.encoder, spec.config.decoder
    out = [
        Stage(
            context,
            d.d_model,
            d.d_model,
            d.d_model,
            d.decoder_ffn_dim,
            False,
            d.decoder_attention_heads,
            max(context, source),
        )
    ]
    for (gh, gw), dim, heads in zip(e.grids(), e.dims, e.num_heads, strict=True):
        out.append(
            Stage(gh * gw, dim, dim, dim, int(dim * e.mlp_ratio), False, heads, e.window_size**2, per_input=True)
        )
    return out


def image_tokens(spec: VisionEncoderDecoderSpec, image_size: tuple[int, int] | None) -> int:
    return 0  # the page is the encoder's input, not part of the decoder's context


def cross_source_tokens(spec: VisionEncoderDecoderSpec, images: int, encoder_tokens: int) -> int:
    return source_positions(spec)


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
# DonutSwinConfig / SwinConfig (hidden_size: kept when present, else the last stage's width)
_SWIN = {
    "image_size": 224,
    "patch_size": 4,
    "num_channels": 3,
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "use_absolute_embeddings": False,
}
ENCODERS = {
    "donut-swin": ConfigClass(
        "DonutSwinConfig", "donut/configuration_donut_swin.py", SwinEncoderConfig, _SWIN, copied=("hidden_size",)
    ),
    "swin": ConfigClass("SwinConfig", "swin/configuration_swin.py", SwinEncoderConfig, _SWIN, copied=("hidden_size",)),
}
# the decoder: BART's or mBART's class defaults, read into the decoder-only spec
DECODERS = {
    t: ConfigClass(c.name, c.path, MBartDecoderConfig, c.defaults)
    for t, c in ((t, bart.BART_FAMILY[t]) for t in ("mbart", "bart"))
}
# VisionEncoderDecoderModel (Donut): encoder.*, decoder.* with the decoder's token embedding and lm_head inside it
WEIGHT_RULES: WeightRules = (
    # Swin's relative_position_index is a persistent int64 buffer of every block (window^2 x window^2)
    (r"encoder\..+\.relative_position_index", BUFFER),
    (r"encoder\..+", "encoder"),
    (r"decoder\.model\.decoder\.embed_tokens\.weight", "embeddings"),
    (r"decoder\.lm_head\.weight", "lm_head"),
    (r"decoder\..+", "decoder"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """VisionEncoderDecoderConfig: a Swin encoder and a BART / mBART decoder, each its class's defaults."""
    return {
        "encoder": reading.typed(reading.sub(cfg, "encoder"), "config.encoder", ENCODERS, ""),
        "decoder": reading.typed(reading.sub(cfg, "decoder"), "config.decoder", DECODERS, ""),
    }


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    read_config={"vision-encoder-decoder": read_config},
    weight_rules={"vision-encoder-decoder": WEIGHT_RULES},
)
