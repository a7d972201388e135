"""Florence-2 (transformers' native Florence2ForConditionalGeneration, models/florence2 in 5.23): a DaViT
vision encoder, a projector, and a BART encoder-decoder. The image's tokens go through the BART
*encoder* together with the text prompt, and every decoder layer cross-attends to the encoder output:
the cross cache covers image tokens + prompt tokens, the self cache the generated text.

Image tokens (Florence2MultiModalProjector.forward): DaViT's last stage gives an H' x W' grid; the
projector concatenates its spatial mean (1 token) with the grid itself (the mean over the one
temporal frame: H' x W' tokens), so one 768 x 768 image is 1 + 24 x 24 = 577 tokens
(preprocessor_config.json image_seq_length 577). H', W' follow the four patch convolutions
(kernel patch_size, stride patch_stride, padding patch_padding).

Config keys. Microsoft's hub checkpoints (microsoft/Florence-2-*) ship a remote-code config
(`auto_map` -> configuration_florence2.py in the repository) whose vision block uses other names
than transformers' native Florence2VisionConfig (configuration_florence2.py, model_type
florence_vision). A spec follows the native class; the remote keys map as:
  vision_config.dim_embed                          -> vision_config.embed_dim
  vision_config.image_pos_embed.max_pos_embeddings -> vision_config.max_position_embeddings
  vision_config.visual_temporal_embedding.max_temporal_embeddings -> vision_config.max_temporal_embeddings
  depths, num_heads, num_groups, window_size, patch_size, patch_stride, patch_padding, patch_prenorm,
  projection_dim                                   -> the same names
  text_config (BART fields)                        -> text_config with model_type bart
The remote text keys add_bias_logits, add_final_layer_norm (both false) and normalize_before (false)
are BART's defaults there and have no field in transformers' BartConfig.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from ..errors import UsageError
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
    Positions,
    Stage,
    Strict,
    Tensor,
    linear,
    norm,
)
from .family import Family

ARCHITECTURES = ("florence2",)
Kernel = Annotated[int, Field(ge=0, le=64)]


class Florence2VisionConfig(Strict):
    """Florence2VisionConfig fields with its defaults (transformers 5.23 configuration_florence2.py)."""

    model_type: Literal["florence_vision"] | None = None
    in_channels: Channels = 3
    depths: tuple[Layers, ...] = Field(default=(1, 1, 9, 1), min_length=1, max_length=8)
    patch_size: tuple[Kernel, ...] = Field(default=(7, 3, 3, 3), max_length=8)
    patch_stride: tuple[Kernel, ...] = Field(default=(4, 2, 2, 2), max_length=8)
    patch_padding: tuple[Kernel, ...] = Field(default=(3, 1, 1, 1), max_length=8)
    patch_prenorm: tuple[bool, ...] = Field(default=(False, True, True, True), max_length=8)
    embed_dim: tuple[Hidden, ...] = Field(default=(128, 256, 512, 1024), max_length=8)
    num_heads: tuple[Heads, ...] = Field(default=(4, 8, 16, 32), max_length=8)
    num_groups: tuple[Heads, ...] = Field(default=(4, 8, 16, 32), max_length=8)
    window_size: ImageSide = 12
    mlp_ratio: float = Field(default=4.0, gt=0, le=64)
    qkv_bias: bool = True
    projection_dim: Hidden = 1024  # the projector's output: the language model's d_model
    max_temporal_embeddings: Positions = 100  # cosine, no weights
    max_position_embeddings: Positions = 50  # rows of the projector's learned row / column embeddings

    @field_validator(
        "depths",
        "patch_size",
        "patch_stride",
        "patch_padding",
        "patch_prenorm",
        "embed_dim",
        "num_heads",
        "num_groups",
        mode="before",
    )
    @classmethod
    def _tuples(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check(self) -> Florence2VisionConfig:
        n = len(self.depths)
        for name in (
            "patch_size",
            "patch_stride",
            "patch_padding",
            "patch_prenorm",
            "embed_dim",
            "num_heads",
            "num_groups",
        ):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} stages (depths)")
        if any(s < 1 for s in self.patch_stride) or any(k < 1 for k in self.patch_size):
            raise ValueError("patch_size and patch_stride must be at least 1")
        for d, h in zip(self.embed_dim, self.num_heads, strict=True):
            if d % h:
                raise ValueError(f"embed_dim {d} is not a multiple of its num_heads {h}")
        if self.embed_dim[-1] % 2:
            raise ValueError("the last embed_dim must be even (row and column embeddings take half each)")
        return self

    @property
    def ffn(self) -> tuple[int, ...]:
        return tuple(int(d * self.mlp_ratio) for d in self.embed_dim)


class Florence2TextConfig(bart.BartConfig):
    """The language model: transformers' BartConfig (Florence2Config's text_config is model_type bart)."""

    model_type: Literal["bart"] | None = None


class Florence2Preprocessor(Strict):
    """preprocessor_config.json: the (square) size images are resized to."""

    image_size: ImageSide


class Florence2Config(Strict):
    text_config: Florence2TextConfig
    vision_config: Florence2VisionConfig = Florence2VisionConfig()
    tie_word_embeddings: bool = True  # Florence2Config default: lm_head shares the BART embedding

    @model_validator(mode="after")
    def _check(self) -> Florence2Config:
        if self.vision_config.projection_dim != self.text_config.d_model:
            raise ValueError(
                f"vision_config.projection_dim ({self.vision_config.projection_dim}) must equal "
                f"text_config.d_model ({self.text_config.d_model}): image tokens enter the BART encoder"
            )
        return self


class Florence2Spec(ModelSpecBase):
    architecture: Literal["florence2"]
    config: Florence2Config
    preprocessor: Florence2Preprocessor

    @model_validator(mode="after")
    def _check_tokens(self) -> Florence2Spec:
        if image_tokens_of(self) >= self.config.text_config.max_position_embeddings:
            raise ValueError(
                f"one image's {image_tokens_of(self)} tokens fill the BART encoder's "
                f"{self.config.text_config.max_position_embeddings} learned positions"
            )
        return self


SPECS = {"florence2": Florence2Spec}


def _grids(v: Florence2VisionConfig, side: int) -> list[int]:
    """The feature map's side after each stage's patch convolution (square images)."""
    out = []
    for k, s, p in zip(v.patch_size, v.patch_stride, v.patch_padding, strict=True):
        side = (side + 2 * p - k) // s + 1
        if side < 1:
            raise ValueError(f"image_size is too small for the patch convolutions (kernel {k}, stride {s})")
        out.append(side)
    return out


def image_tokens_of(spec: Florence2Spec) -> int:
    """1 spatial-mean token + the last stage's H' x W' grid (Florence2MultiModalProjector.forward)."""
    side = _grids(spec.config.vision_config, spec.preprocessor.image_size)[-1]
    return 1 + side * side


def _vision_tensors(v: Florence2VisionConfig) -> Iterator[Tensor]:
    comp = "vision_tower"
    for s, dim in enumerate(v.embed_dim):
        inp = v.in_channels if s == 0 else v.embed_dim[s - 1]
        k = v.patch_size[s]
        yield Tensor(f"vision.conv{s}.weight", comp, (dim, inp, k, k), "conv")
        yield Tensor(f"vision.conv{s}.bias", comp, (dim,), "bias")
        yield from norm(f"vision.conv{s}.norm", comp, inp if v.patch_prenorm[s] else dim, None, bias=True)
    layer = 0
    for s, (dim, depth) in enumerate(zip(v.embed_dim, v.depths, strict=True)):
        for b in range(depth):
            for kind in (
                "spatial",
                "channel",
            ):  # Florence2VisionBlock: a window-attention and a channel-attention block
                p = f"vision.{s}.{b}.{kind}"
                for pos in ("conv1", "conv2"):  # depthwise 3 x 3 positional convolutions (Florence2VisionConvPosEnc)
                    yield Tensor(f"{p}.{pos}.weight", comp, (dim, 1, 3, 3), "conv", layer)
                    yield Tensor(f"{p}.{pos}.bias", comp, (dim,), "bias", layer)
                yield from norm(f"{p}.norm1", comp, dim, layer, bias=True)
                yield from linear(f"{p}.attn_qkv", comp, 3 * dim, dim, "attn_qkv", v.qkv_bias, layer)
                yield from linear(f"{p}.attn_output", comp, dim, dim, "attn_output", True, layer)
                yield from norm(f"{p}.norm2", comp, dim, layer, bias=True)
                yield from linear(f"{p}.ffn_up", comp, v.ffn[s], dim, "ffn_up", True, layer)
                yield from linear(f"{p}.ffn_down", comp, dim, v.ffn[s], "ffn_down", True, layer)
            layer += 1


def tensors(spec: Florence2Spec) -> Iterator[Tensor]:
    """DaViT, then the projector (image_projection without bias, a LayerNorm, learned row and column
    embeddings of embed_dim[-1] / 2 each), then the BART language model (bart.bart_tensors)."""
    c = spec.config
    v = c.vision_config
    yield from _vision_tensors(v)
    last = v.embed_dim[-1]
    yield from linear("projector.image_projection", "projector", v.projection_dim, last, "projector", False, None)
    yield from norm("projector.image_proj_norm", "projector", v.projection_dim, None, bias=True)
    yield Tensor("projector.row_embd.weight", "projector", (v.max_position_embeddings, last // 2), "pos_embd")
    yield Tensor("projector.column_embd.weight", "projector", (v.max_position_embeddings, last // 2), "pos_embd")
    yield from bart.bart_tensors(
        c.text_config.model_copy(update={"tie_word_embeddings": c.tie_word_embeddings}), "bart"
    )


def geometry(spec: Florence2Spec) -> Geometry:
    t, v = spec.config.text_config, spec.config.vision_config
    heads = t.decoder_attention_heads
    hd = t.d_model // heads
    n = t.decoder_layers
    per_image = image_tokens_of(spec)
    prompt_room = t.max_position_embeddings - per_image
    return Geometry(
        architecture=spec.architecture,
        self_kv=(LayerKV("full", heads, hd, hd),) * n,
        cross_kv=(LayerKV("cross", heads, hd, hd),) * n,
        vocab_size=t.vocab_size,
        tied_embeddings=spec.config.tie_word_embeddings,
        hidden_size=t.d_model,
        num_attention_heads=heads,
        intermediate_size=t.decoder_ffn_dim,
        context_window=t.max_position_embeddings,
        hard_limit=t.max_position_embeddings,  # BART's learned positions (+ 2 offset rows)
        tp_constraints=(
            ("decoder attention heads", heads, False),
            ("encoder attention heads", t.encoder_attention_heads, False),
            ("decoder_ffn_dim", t.decoder_ffn_dim, False),
            ("vision attention heads", v.num_heads[-1], False),
        ),
        tp_kv_heads=heads,
        takes_images=True,
        cross_source=(
            f"encoder positions ({per_image} per image + the prompt's tokens; without --encoder-tokens "
            "the longest prompt that fits)"
        ),
        # --encoder-tokens: the prompt's text tokens; with one image they share the encoder's learned
        # positions, so the prompt has max_position_embeddings - image tokens at most, and without the
        # option the estimate takes that largest prompt (the encoder full)
        # (the limit is checked in cross_source_tokens, where the images are known)
        encoder_tokens_option=True,
        encoder_tokens_default=prompt_room,
        refusals={
            "ollama": "ollama runs no Florence-2 models",
            "llama.cpp": "llama.cpp has no Florence-2 (DaViT + BART) architecture",
            # vLLM listed Florence2ForConditionalGeneration among its encoder-decoders
            # (vllm/model_executor/models/registry.py), later served by the vllm-project/bart-plugin
            "vllm": "vLLM runs Florence-2 as an encoder-decoder (in-tree in older releases, then the "
            "vllm-project/bart-plugin); the vLLM profile does not size it (it covers decoder LMs, "
            "LLaVA and Llama 3.2 Vision)",
        },
    )


def stages(spec: Florence2Spec, context: int, source: int, images: int) -> list[Stage]:
    """DaViT's stages over the image once per input (each stage's grid x its width; window and channel
    attention through SDPA), the BART encoder over image + prompt tokens, the decoder over the prompt."""
    t, v = spec.config.text_config, spec.config.vision_config
    d = t.d_model
    out = [
        Stage(source, d, d, d, t.encoder_ffn_dim, False, t.encoder_attention_heads, source, per_input=True),
        Stage(context, d, d, d, t.decoder_ffn_dim, False, t.decoder_attention_heads, max(context, source)),
    ]
    if images:
        for side, dim, ffn, heads in zip(
            _grids(v, spec.preprocessor.image_size), v.embed_dim, v.ffn, v.num_heads, strict=True
        ):
            out.append(Stage(side * side * images, dim, dim, dim, ffn, False, heads, v.window_size**2, per_input=True))
    return out


def image_tokens(spec: Florence2Spec, image_size: tuple[int, int] | None) -> int:
    return 0  # image tokens sit in the encoder's input (the cross source), not in the decoder's context


def cross_source_tokens(spec: Florence2Spec, images: int, encoder_tokens: int) -> int:
    if images > 1:
        raise UsageError(f"{spec.id} takes one image per prompt (--images {images})")
    source = images * image_tokens_of(spec) + encoder_tokens
    limit = spec.config.text_config.max_position_embeddings
    if source > limit:
        image = f"{image_tokens_of(spec)} image tokens + " if images else ""
        raise UsageError(
            f"{spec.id}'s BART encoder has learned positions for {limit} tokens: {image}"
            f"--encoder-tokens {encoder_tokens} is impossible"
        )
    return source


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json_refusal=(
        "Florence-2's image tokens follow preprocessor_config.json (its size), which "
        "the config.json importer does not read; write a spec by hand (model_specs/florence-2-base.yaml "
        "shows the fields and how the hub's remote-code keys map to transformers' native ones)"
    ),
)
