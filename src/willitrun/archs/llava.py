"""LLaVA 1.5 and LLaVA-NeXT (LlavaForConditionalGeneration, LlavaNextForConditionalGeneration): a CLIP
vision tower and a projector turn an image into tokens placed in a Llama/Mistral language model's
input, and so in its self-attention cache (no cross-attention)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from .. import limits as L
from ..records import Field, field_validator, model_validator
from . import llama
from .base import (
    Channels,
    FeatureLayer,
    Geometry,
    Heads,
    Hidden,
    ImageSide,
    Intermediate,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    TokenId,
    VisionShape,
    linear,
    lists_to_tuples,
    norm,
)
from .family import ConfigClass, ConfigReading, Family
from .llama import LLAMA, LLAVA_WEIGHT_RULES, MISTRAL, LlamaConfig

ARCHITECTURES = ("llava", "llava_next")


class ClipVisionConfig(Strict):
    """CLIPVisionConfig fields (transformers models/clip/configuration_clip.py)."""

    model_type: Literal["clip_vision_model"] | None = None
    hidden_size: Hidden
    intermediate_size: Intermediate
    num_hidden_layers: Layers
    num_attention_heads: Heads
    image_size: ImageSide
    patch_size: ImageSide
    num_channels: Channels = 3
    projection_dim: Hidden | None = None  # unused by LLaVA's tower (no projection head)
    hidden_act: Literal["quick_gelu", "gelu"] = "quick_gelu"

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @model_validator(mode="after")
    def _check(self) -> ClipVisionConfig:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) is not a multiple of patch_size ({self.patch_size})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")
        return self


class LlavaConfig(Strict):
    """LlavaConfig / LlavaNextConfig fields (transformers models/llava*/configuration_llava*.py)."""

    text_config: LlamaConfig
    vision_config: ClipVisionConfig
    projector_hidden_act: Literal["gelu"] = "gelu"
    multimodal_projector_bias: bool = True
    vision_feature_layer: FeatureLayer | list[FeatureLayer] = Field(default=-2)
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    # llava_next: [height, width], each a multiple of the vision tower's image_size
    image_grid_pinpoints: list[tuple[ImageSide, ImageSide]] | None = Field(default=None, max_length=L.MAX_TILES)
    image_token_index: TokenId | None = None
    image_seq_length: ImageSide | None = None
    tie_word_embeddings: bool = False

    @model_validator(mode="after")
    def _check(self) -> LlavaConfig:
        t = self.text_config
        if t.model_type == "mistral" and "sliding_window" not in t.model_fields_set:
            raise ValueError("text_config.sliding_window: give it explicitly for mistral (null for no window)")
        if isinstance(self.vision_feature_layer, list) and not 0 < len(self.vision_feature_layer) <= L.MAX_LAYERS:
            raise ValueError("vision_feature_layer: give 1 to 1024 layer indices")
        side = self.vision_config.image_size
        for h, w in self.image_grid_pinpoints or []:
            # anyres tiles the image into image_size squares: a side that is no multiple leaves a
            # zero-tile grid (division by zero in the unpadding arithmetic)
            if h % side or w % side:
                raise ValueError(
                    f"image_grid_pinpoints: [{h}, {w}] is not a multiple of the vision "
                    f"image_size ({side}) in both sides"
                )
        return self

    @field_validator("image_grid_pinpoints", mode="before")
    @classmethod
    def _lists_to_tuples(cls, value: object) -> object:
        return lists_to_tuples(value)


class LlavaSpec(ModelSpecBase):
    architecture: Literal["llava", "llava_next"]
    config: LlavaConfig

    @model_validator(mode="after")
    def _check_pinpoints(self) -> LlavaSpec:
        if self.architecture == "llava_next" and not self.config.image_grid_pinpoints:
            raise ValueError("llava_next needs config.image_grid_pinpoints")
        return self


SPECS = {"llava": LlavaSpec, "llava_next": LlavaSpec}


def _tied(c: LlavaConfig) -> bool:
    # transformers ties LLaVA's lm_head when either the top-level or the text config says so
    return c.tie_word_embeddings or c.text_config.tie_word_embeddings


def clip_encoder_layer(p: str, comp: str, h: int, inner: int, i: int) -> Iterator[Tensor]:
    """One CLIPEncoderLayer (also SigLIP's text layers): biased q/k/v/out, LayerNorms, fc1/fc2."""
    yield from linear(f"{p}.attn_k", comp, h, h, "attn_k", True, i)
    yield from linear(f"{p}.attn_v", comp, h, h, "attn_v", True, i)
    yield from linear(f"{p}.attn_q", comp, h, h, "attn_q", True, i)
    yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", True, i)
    yield from norm(f"{p}.ln1", comp, h, i, bias=True)
    yield from linear(f"{p}.ffn_up", comp, inner, h, "ffn_up", True, i)
    yield from linear(f"{p}.ffn_down", comp, h, inner, "ffn_down", True, i)
    yield from norm(f"{p}.ln2", comp, h, i, bias=True)


def clip_vision_tensors(v: ClipVisionConfig, comp: str = "vision_tower") -> Iterator[Tensor]:
    """CLIPVisionTransformer: class embedding, patch conv without bias, positions for patches + CLS,
    pre-LN, the layers, post-LN (transformers models/clip/modeling_clip.py)."""
    h = v.hidden_size
    yield Tensor("vision.class_embd", comp, (h,), "other")
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield Tensor("vision.position_embd.weight", comp, (v.patches + 1, h), "pos_embd")
    yield from norm("vision.pre_ln", comp, h, None, bias=True)
    for i in range(v.num_hidden_layers):
        yield from clip_encoder_layer(f"vision.{i}", comp, h, v.intermediate_size, i)
    yield from norm("vision.post_ln", comp, h, None, bias=True)


def tensors(spec: LlavaSpec) -> Iterator[Tensor]:
    """CLIP vision tower (CLIPVisionModel: class embedding, patch conv without bias, positions for
    patches + CLS, pre-LN, layers with biased q/k/v/o and fc1/fc2, post-LN), the two-layer MLP
    projector, LLaVA-NeXT's image_newline vector, then the Llama/Mistral language model."""
    c, v = spec.config, spec.config.vision_config
    h = v.hidden_size
    yield from clip_vision_tensors(v)

    t = c.text_config
    feature_layers = len(c.vision_feature_layer) if isinstance(c.vision_feature_layer, list) else 1
    bias = c.multimodal_projector_bias
    yield from linear("projector.linear_1", "projector", t.hidden_size, h * feature_layers, "projector", bias, None)
    yield from linear("projector.linear_2", "projector", t.hidden_size, t.hidden_size, "projector", bias, None)
    if spec.architecture == "llava_next":
        yield Tensor("projector.image_newline", "projector", (t.hidden_size,), "other")
    yield from llama.decoder_lm(t, tied=_tied(c))


def _mmproj_layers(c: LlavaConfig) -> int:
    """CLIP layers llava's convert_image_encoder_to_gguf.py writes: up to the feature layer
    (vision_feature_layer -2 drops the last of 24: 23 layers, `clip.vision.block_count = 23`)."""
    layers = c.vision_feature_layer
    deepest = max(layers) if isinstance(layers, list) else layers
    return c.vision_config.num_hidden_layers + 1 + deepest if deepest < 0 else deepest + 1


def geometry(spec: LlavaSpec) -> Geometry:
    c, v = spec.config, spec.config.vision_config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="LLaVA has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=llama.lm_tp_constraints(c.text_config)
        + (("vision tower attention heads", v.num_attention_heads, False),),
        takes_images=True,
        image_size_option=spec.architecture == "llava_next",
        vision=VisionShape(
            v.hidden_size, v.num_attention_heads, v.patches, v.num_channels, v.image_size, _mmproj_layers(c)
        ),
    )


def _tiles(spec: LlavaSpec) -> int:
    """Vision tower passes per image: 1 (LLaVA 1.5); the base view plus the largest grid (NeXT)."""
    if spec.architecture == "llava":
        return 1
    v = spec.config.vision_config
    return 1 + max((h // v.image_size) * (w // v.image_size) for h, w in spec.config.image_grid_pinpoints or [])


def stages(spec: LlavaSpec, context: int, source: int, images: int) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        v = spec.config.vision_config
        n = v.patches + 1
        # The vision tower runs per image (LLaVA-NeXT: per tile, base view + up to 4 tiles).
        out.append(
            Stage(
                n * _tiles(spec) * images,
                v.hidden_size,
                v.hidden_size,
                v.hidden_size,
                v.intermediate_size,
                False,
                v.num_attention_heads,
                n,
                per_input=True,
            )
        )
    return out


def select_best_resolution(size: tuple[int, int], pinpoints: list[tuple[int, int]]) -> tuple[int, int]:
    """transformers image_processing_utils.select_best_resolution: most effective pixels, then least waste."""
    h0, w0 = size
    best, best_eff, best_waste = pinpoints[0], -1, float("inf")
    for h, w in pinpoints:
        scale = min(w / w0, h / h0)
        dw, dh = int(w0 * scale), int(h0 * scale)
        effective = min(dw * dh, w0 * h0)
        waste = w * h - effective
        if effective > best_eff or (effective == best_eff and waste < best_waste):
            best, best_eff, best_waste = (h, w), effective, waste
    return best


def unpadded(size: tuple[int, int], cur_h: int, cur_w: int) -> tuple[int, int]:
    """The tiled view's feature grid (cur_h x cur_w) with the rows or columns of padding removed
    (transformers modeling_llava_next.py `unpad_image`, processing_llava_next.py `_get_unpadded_features`)."""
    h0, w0 = size
    if w0 / h0 > cur_w / cur_h:
        new_h = int(round(h0 * (cur_w / w0), 7))
        cur_h -= ((cur_h - new_h) // 2) * 2
    else:
        new_w = int(round(w0 * (cur_h / h0), 7))
        cur_w -= ((cur_w - new_w) // 2) * 2
    return cur_h, cur_w


def llava_next_image_tokens(spec: LlavaSpec, size: tuple[int, int]) -> int:
    """Tokens of one image in LLaVA-NeXT's anyres scheme (transformers LlavaNextProcessor
    `_get_number_of_features` / `_get_unpadded_features`): the base 336px view, plus the tiled view
    at the best pinpoint resolution with its padding rows/columns removed, plus one newline token
    per row of the tiled view."""
    v = spec.config.vision_config
    pinpoints = spec.config.image_grid_pinpoints or []
    side = v.image_size // v.patch_size
    best_h, best_w = select_best_resolution(size, pinpoints)
    cur_h, cur_w = unpadded(size, side * (best_h // v.image_size), side * (best_w // v.image_size))
    base = side * side + (1 if spec.config.vision_feature_select_strategy == "full" else 0)
    return cur_h * cur_w + cur_h + base


def image_tokens(spec: LlavaSpec, image_size: tuple[int, int] | None) -> int:
    v = spec.config.vision_config
    if spec.architecture == "llava":
        # LlavaModel.get_image_features: the "default" strategy drops the CLS token.
        return v.patches + (1 if spec.config.vision_feature_select_strategy == "full" else 0)
    if image_size is not None:
        return llava_next_image_tokens(spec, image_size)
    # No size given: the worst case over the pinpoint resolutions.
    return max(llava_next_image_tokens(spec, tuple(p)) for p in spec.config.image_grid_pinpoints or [])  # type: ignore[arg-type]


def cross_source_tokens(spec: LlavaSpec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
_CLIP_VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 32,
    "num_channels": 3,
    "hidden_act": "quick_gelu",
}
CLIP_VISION = ConfigClass(
    "CLIPVisionConfig",
    "clip/configuration_clip.py",
    ClipVisionConfig,
    _CLIP_VISION_DEFAULTS,
    copied=("projection_dim",),
)
# LlavaConfig.sub_configs_defaults["vision_config"].init_kwargs: used only when config.json has no
# vision_config at all (a vision_config dict gets plain CLIPVisionConfig defaults for what it omits).
_LLAVA_VISION_INIT = {
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 336,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
}
_LLAVA_TOP = {
    "projector_hidden_act": "gelu",
    "multimodal_projector_bias": True,
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "tie_word_embeddings": False,
}
LLAVA = ConfigClass(
    "LlavaConfig",
    "llava/configuration_llava.py",
    LlavaConfig,
    _LLAVA_TOP,
    copied=("image_token_index", "image_seq_length"),
)
LLAVA_NEXT = ConfigClass(
    "LlavaNextConfig",
    "llava_next/configuration_llava_next.py",
    LlavaConfig,
    {
        **_LLAVA_TOP,
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    },
    copied=("image_token_index", "image_seq_length"),
    none_is_default=("image_grid_pinpoints",),
)
TEXT_MODELS = {"llama": LLAMA, "mistral": MISTRAL}  # the text models LlavaConfig specs model
WEIGHT_RULES = LLAVA_WEIGHT_RULES  # archs/llama.py: LLaVA's layout, shared with the families that store theirs so


def absent_tower(reading: ConfigReading, cls: ConfigClass, init: Mapping[str, Any], top: ConfigClass) -> dict[str, Any]:
    """A vision_config config.json leaves out altogether: `cls`'s defaults overlaid with the composite class's
    init_kwargs (`init`, cited to `top`, the class that declares them)."""
    where = "config.vision_config"
    out = reading.block({}, cls, where, {**cls.defaults, **init})
    for field in init:
        if f"{where}.{field}" in reading.sources:
            reading.sources[f"{where}.{field}"] = top.url
    return out


def clip_vision(reading: ConfigReading, cfg: Mapping[str, Any] | None, top: ConfigClass) -> dict[str, Any]:
    """A CLIP vision_config; without one, CLIPVisionConfig with the LLaVA class's init_kwargs, cited to that class."""
    if cfg is None:
        return {"model_type": "clip_vision_model", **absent_tower(reading, CLIP_VISION, _LLAVA_VISION_INIT, top)}
    return reading.typed(cfg, "config.vision_config", {"clip_vision_model": CLIP_VISION}, "clip_vision_model")


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """LLaVA / LLaVA-NeXT: a Llama or Mistral text_config, a CLIP vision_config, the composite's own keys."""
    top = LLAVA if model_type == "llava" else LLAVA_NEXT
    text = reading.typed(reading.sub(cfg, "text_config"), "config.text_config", TEXT_MODELS, "llama")
    vision = clip_vision(reading, reading.sub(cfg, "vision_config"), top)
    out = {"text_config": text, "vision_config": vision, **reading.block(cfg, top, "config")}
    if out.get("tie_word_embeddings") is True and text.get("tie_word_embeddings") is not True:
        # LlavaForConditionalGeneration ties lm_head when the top-level flag is set
        # (LlavaConfig.__post_init__ also raises it from text_config's): one flag for both.
        text["tie_word_embeddings"] = True
        reading.notes.append("tie_word_embeddings: the top-level flag ties the LM head, so text_config carries it too.")
    return out


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    read_config=dict.fromkeys(ARCHITECTURES, read_config),
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
