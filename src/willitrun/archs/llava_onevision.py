"""LLaVA-OneVision (LlavaOnevisionForConditionalGeneration): a SigLIP tower (no pooling head), LLaVA's
two-layer projector and a learned image_newline vector, and a Qwen2 language model whose input holds the
image tokens (self-attention context, no cross-attention).

Image tokens (transformers 5.23 models/llava_onevision/processing_llava_onevision.py
`_get_number_of_features` / `_get_unpadded_features`, the same arithmetic as modeling_llava_onevision.py
`pack_image_features`): LLaVA-NeXT's anyres (a base view of (image_size / patch_size)^2 features plus the
tiles of the best `image_grid_pinpoints` resolution, unpadded, one newline per row), with one more step,
`vision_aspect_ratio` "anyres_max_N": when the unpadded grid holds more than 1.1^2 x N tiles' worth of
features it is resized (bilinear) by ratio = sqrt(h x w / (N x side^2)) to floor(h / ratio) x floor(w / ratio),
with one newline per remaining row. One image in a prompt is tiled; several images in one prompt are not
(processing_llava_onevision.py `replace_image_token`: side^2 + 1 each) -- willitrun's --images counts
each image as a single-image prompt would, an upper bound for several images in one prompt.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, field_validator, model_validator
from . import llama, llava, siglip
from .base import (
    FeatureLayer,
    Geometry,
    ImageSide,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    TokenId,
    linear,
    lists_to_tuples,
)
from .family import ConfigClass, ConfigReading, Family
from .llava import select_best_resolution, unpadded
from .qwen2 import QWEN2, Qwen2Config
from .siglip import SIGLIP_VISION, SiglipVisionConfig

ARCHITECTURES = ("llava_onevision",)

# LlavaOnevisionConfig.__post_init__'s default image_grid_pinpoints: every [384 i, 384 j], i, j in 1..6
DEFAULT_PINPOINTS = [(384 * i, 384 * j) for i in range(1, 7) for j in range(1, 7)]


class LlavaOnevisionConfig(Strict):
    """LlavaOnevisionConfig fields (transformers models/llava_onevision/configuration_llava_onevision.py),
    its defaults. vision_config takes SiglipVisionConfig's defaults for absent keys (the class's
    sub-config defaults apply only when vision_config is absent altogether)."""

    text_config: Qwen2Config
    vision_config: SiglipVisionConfig
    projector_hidden_act: Literal["gelu"] = "gelu"
    multimodal_projector_bias: bool = True
    vision_feature_layer: FeatureLayer | list[FeatureLayer] = Field(default=-1)
    # "default" drops the first feature of every crop, which breaks the anyres view (27 x 27 grid) for a
    # SigLIP tower: only "full" (the class default, every checkpoint) is accepted.
    vision_feature_select_strategy: Literal["full"] = "full"
    image_grid_pinpoints: list[tuple[ImageSide, ImageSide]] = Field(
        default=DEFAULT_PINPOINTS, min_length=1, max_length=L.MAX_TILES
    )
    vision_aspect_ratio: Annotated[str, Field(pattern=r"^anyres_max_[1-9][0-9]{0,2}$")] = "anyres_max_9"
    image_token_index: TokenId | None = None
    video_token_index: TokenId | None = None
    use_image_newline_parameter: bool | None = None  # written by the conversion script; no module reads it
    tie_word_embeddings: bool = False

    @property
    def max_tiles(self) -> int:
        """N of "anyres_max_N"."""
        return int(self.vision_aspect_ratio.removeprefix("anyres_max_"))

    @model_validator(mode="after")
    def _check(self) -> LlavaOnevisionConfig:
        if isinstance(self.vision_feature_layer, list) and not 0 < len(self.vision_feature_layer) <= L.MAX_LAYERS:
            raise ValueError("vision_feature_layer: give 1 to 1024 layer indices")
        side = self.vision_config.image_size
        for h, w in self.image_grid_pinpoints:
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


class LlavaOnevisionSpec(ModelSpecBase):
    architecture: Literal["llava_onevision"]
    config: LlavaOnevisionConfig


SPECS = {"llava_onevision": LlavaOnevisionSpec}


def _tied(c: LlavaOnevisionConfig) -> bool:
    # LlavaOnevisionConfig.__post_init__ forwards text_config.tie_word_embeddings when the top-level flag is false
    return c.tie_word_embeddings or c.text_config.tie_word_embeddings


def tensors(spec: LlavaOnevisionSpec) -> Iterator[Tensor]:
    """The SigLIP tower (SiglipVisionModel, vision_use_head false in every checkpoint), the projector
    (linear_1, linear_2 with biases), image_newline, then the Qwen2 language model."""
    c, v = spec.config, spec.config.vision_config
    t = c.text_config
    yield from siglip.tensors(v)
    layers = len(c.vision_feature_layer) if isinstance(c.vision_feature_layer, list) else 1
    bias = c.multimodal_projector_bias
    yield from linear("projector.linear_1", "projector", t.hidden_size, v.hidden_size * layers, "projector", bias, None)
    yield from linear("projector.linear_2", "projector", t.hidden_size, t.hidden_size, "projector", bias, None)
    yield Tensor("projector.image_newline", "projector", (t.hidden_size,), "other")
    yield from llama.decoder_lm(t, tied=_tied(c))


def geometry(spec: LlavaOnevisionSpec) -> Geometry:
    c = spec.config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="LLaVA-OneVision has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(
            *llama.lm_tp_constraints(c.text_config),
            ("vision tower attention heads", c.vision_config.num_attention_heads, False),
        ),
        takes_images=True,
        image_size_option=True,
        refusals={
            "llama.cpp": "llama.cpp's LLaVA-OneVision mmproj is not modelled yet",
            "ollama": "ollama's LLaVA-OneVision runner is not modelled yet",
        },
    )


def features(spec: LlavaOnevisionSpec, size: tuple[int, int]) -> tuple[int, int]:
    """(unpadded tile features, newline features) of one image of `size` (height, width):
    processing_llava_onevision.py `_get_unpadded_features`."""
    return _features_at(spec, size, select_best_resolution(size, spec.config.image_grid_pinpoints))


def _features_at(spec: LlavaOnevisionSpec, size: tuple[int, int], best: tuple[int, int]) -> tuple[int, int]:
    """features() of an image of `size` whose best pinpoint is `best`."""
    c, v = spec.config, spec.config.vision_config
    side = v.image_size // v.patch_size
    cur_h, cur_w = unpadded(size, side * (best[0] // v.image_size), side * (best[1] // v.image_size))
    ratio = math.sqrt(cur_h * cur_w / (c.max_tiles * side * side))
    if ratio > 1.1:
        return int(cur_h // ratio) * int(cur_w // ratio), int(cur_h // ratio)
    return cur_h * cur_w, cur_h


def onevision_image_tokens(spec: LlavaOnevisionSpec, size: tuple[int, int]) -> int:
    """Tokens of one image (a single-image prompt): the base view's side^2 features (no class token in
    SigLIP), the unpadded (and capped) tile features and one newline per row."""
    v = spec.config.vision_config
    tiles, newlines = features(spec, size)
    return tiles + newlines + v.patches


def _largest(spec: LlavaOnevisionSpec) -> int:
    """The most tokens an image gets. Within a pinpoint's grid the unpadded rows (or columns) can be any
    count down from the grid's, whatever fits the image's aspect, and the count peaks just below the cap
    (ratio 1.1), not at a pinpoint: every (pinpoint, rows) and (pinpoint, columns) pair is tried with an
    image of exactly that shape, through the processor's own arithmetic. For the 36 default pinpoints this
    gives 8,765 (1335 x 1098), the largest a sweep of LlavaOnevisionProcessor's arithmetic over 200,000
    random sizes and a 2400 px grid found (tests/unit/test_llava_onevision.py).

    The same maximum as trying every such size through onevision_image_tokens (6,768 sizes x 36
    pinpoints for the defaults; the test keeps that search and compares), in two shortcuts:
    - the best pinpoint of a size that some pinpoint holds whole (every size tried here: each is cut from
      a pinpoint) is the smallest-area pinpoint that holds it, the first listed among equal areas:
      select_best_resolution keeps the most effective pixels, every pinpoint holding the image keeps all
      of them (its scale is at least 1) and one that does not keeps fewer (a scale below 1 truncates a
      side), then the least waste, which among those is the least area;
    - a pinpoint whose feature grid is gh x gw gives at most gh newlines (unpadding only removes rows)
      and at most min(gh x gw, the cap's area) tile features (under the cap, ratio <= 1.1, at most
      1.21 x max_tiles x side^2; over it, resized to at most max_tiles x side^2): a size whose best
      pinpoint cannot beat the best count so far is not counted."""
    c, v = spec.config, spec.config.vision_config
    side = v.image_size // v.patch_size
    pinpoints = c.image_grid_pinpoints
    by_area = [pinpoints[i] for i in sorted(range(len(pinpoints)), key=lambda i: (math.prod(pinpoints[i]), i))]
    capped = int(1.21 * c.max_tiles * side * side) + 1  # over any float rounding of the 1.1 cap
    bound = {
        (h, w): v.patches
        + side * (h // v.image_size)
        + min(side * side * (h // v.image_size) * (w // v.image_size), capped)
        for h, w in pinpoints
    }
    tallest = max(side * (h // v.image_size) for h, _ in pinpoints)
    best = 0
    # the largest pinpoints first: the best count is found early, and the bound then skips the rest
    for h, w in sorted(pinpoints, key=math.prod, reverse=True):
        gh, gw = side * (h // v.image_size), side * (w // v.image_size)
        if v.patches + tallest + min(gh * gw, capped) <= best:
            continue  # its sizes' best pinpoints are no larger in area (the first shortcut), nor taller than the tallest
        sizes = [(h, w)] + [(r * h // gh, w) for r in range(1, gh)] + [(h, k * w // gw) for k in range(1, gw)]
        for size in sizes:
            if min(size) <= 0:
                continue
            q = next(p for p in by_area if p[0] >= size[0] and p[1] >= size[1])  # (h, w) holds it: one exists
            if bound[q] <= best:
                continue
            tiles, newlines = _features_at(spec, size, q)
            best = max(best, tiles + newlines + v.patches)
    return best


def image_tokens(spec: LlavaOnevisionSpec, image_size: tuple[int, int] | None) -> int:
    if image_size is not None:
        return onevision_image_tokens(spec, image_size)
    return _largest(spec)


def crops(spec: LlavaOnevisionSpec, image_size: tuple[int, int] | None) -> int:
    """Tower passes for one image: the base view plus the tiles of its best pinpoint (the largest grid
    without a size): modeling_llava_onevision.py `image_size_to_num_patches`."""
    c, v = spec.config, spec.config.vision_config
    if image_size is None:
        return 1 + max((h // v.image_size) * (w // v.image_size) for h, w in c.image_grid_pinpoints)
    h, w = select_best_resolution(image_size, c.image_grid_pinpoints)
    return 1 + (h // v.image_size) * (w // v.image_size)


STAGES_TAKE_IMAGE_SIZE = True


def stages(
    spec: LlavaOnevisionSpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        v = spec.config.vision_config
        n = v.patches
        # The tower runs over every crop of every image at once (SDPA: no whole score matrix)
        out.append(
            Stage(
                n * crops(spec, image_size) * images,
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


def cross_source_tokens(spec: LlavaOnevisionSpec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
# LlavaOnevisionConfig.sub_configs_defaults["vision_config"].init_kwargs: only when config.json has no vision_config
_ONEVISION_VISION_INIT = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "patch_size": 14,
    "image_size": 384,
    "num_hidden_layers": 26,
    "num_attention_heads": 16,
    "vision_use_head": False,
}
LLAVA_ONEVISION = ConfigClass(
    "LlavaOnevisionConfig",
    "llava_onevision/configuration_llava_onevision.py",
    LlavaOnevisionConfig,
    {
        "projector_hidden_act": "gelu",
        "multimodal_projector_bias": True,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "tie_word_embeddings": False,
        "image_grid_pinpoints": [list(p) for p in DEFAULT_PINPOINTS],
        "vision_aspect_ratio": "anyres_max_9",
    },
    copied=("image_token_index", "video_token_index", "use_image_newline_parameter"),
    none_is_default=("image_grid_pinpoints",),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """LLaVA-OneVision: a Qwen2 text_config, a SigLIP vision_config (SiglipVisionConfig's defaults for what it
    omits; the class's init_kwargs when it is absent altogether)."""
    text = reading.typed(reading.sub(cfg, "text_config"), "config.text_config", {"qwen2": QWEN2}, "qwen2")
    vision_cfg = reading.sub(cfg, "vision_config")
    if vision_cfg is None:
        tower = llava.absent_tower(reading, SIGLIP_VISION, _ONEVISION_VISION_INIT, LLAVA_ONEVISION)
        vision = {"model_type": "siglip_vision_model", **tower}
    else:
        vision = reading.typed(
            vision_cfg, "config.vision_config", {"siglip_vision_model": SIGLIP_VISION}, "siglip_vision_model"
        )
    return {"text_config": text, "vision_config": vision, **reading.block(cfg, LLAVA_ONEVISION, "config")}


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    weight_rules={
        "llava_onevision": llava.WEIGHT_RULES
    },  # LLaVA's names: vision_tower.*, multi_modal_projector.*, language_model.*,
    read_config={"llava_onevision": read_config},
)
