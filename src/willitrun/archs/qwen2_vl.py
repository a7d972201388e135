"""Qwen2-VL and Qwen2.5-VL (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration): a
native-resolution ViT whose 2x2-merged patches become tokens of a Qwen2 language model's input, and
so of its self-attention cache (no cross-attention).

Image tokens (transformers models/qwen2_vl/image_processing_qwen2_vl.py `smart_resize`): the image is
resized so both sides are multiples of patch_size x spatial_merge_size (28) with min_pixels <= H x W
<= max_pixels (the preprocessor_config.json's values); the ViT sees (H/14) x (W/14) patches and the
merger turns each 2x2 group into one LLM token: H x W / 784 tokens per image. A video merges
temporal_patch_size (2) frames into one patch in depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import (
    Channels,
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
    linear,
    merger_width_warning,
    norm,
)
from .family import ConfigClass, ConfigReading, Family, WeightRules
from .llama import Anatomy
from .qwen2 import SlidingLayers

ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl")
STAGES_TAKE_IMAGE_SIZE = True  # the ViT pass depends on the image's size (archs.stages passes it)

# transformers 5.23 Qwen2VLImageProcessor defaults (image_processing_qwen2_vl.py: size
# {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}), used when a spec names no preprocessor.
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
# transformers 5.23 Qwen2VLVideoProcessor (video_processing_qwen2_vl.py): size {"shortest_edge": 128 * 28 * 28,
# "longest_edge": 28 * 28 * 768} per frame; its total-video budget (cap_pixels_per_frame) is off by default.
DEFAULT_VIDEO_MIN_PIXELS = 128 * 28 * 28
DEFAULT_VIDEO_MAX_PIXELS = 28 * 28 * 768
Pixels = Annotated[int, Field(gt=0, le=L.MAX_IMAGE_SIDE * L.MAX_IMAGE_SIDE)]


class QwenVLTextConfig(SlidingLayers):
    """Qwen2VLTextConfig / Qwen2_5_VLTextConfig fields (transformers models/qwen2_vl/configuration_qwen2_vl.py):
    Qwen2's decoder (biased q/k/v, no o bias), M-RoPE (no extra weights)."""

    model_type: Literal["qwen2_vl_text", "qwen2_5_vl_text"] | None = None
    hidden_act: Literal["silu"] = "silu"

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=True)


class Qwen2VLVisionConfig(Strict):
    """Qwen2VLVisionConfig (embed_dim is the ViT width, hidden_size the LLM's) and Qwen2_5_VLVisionConfig
    (hidden_size is the ViT width, out_hidden_size the LLM's), configuration_qwen2(_5)_vl.py."""

    depth: Layers = 32
    embed_dim: Hidden | None = None  # qwen2_vl
    hidden_size: Hidden
    out_hidden_size: Hidden | None = None  # qwen2_5_vl
    intermediate_size: Intermediate | None = None  # qwen2_5_vl: SwiGLU width
    mlp_ratio: Annotated[int, Field(gt=0, le=64)] | None = None  # qwen2_vl: fc1 width = embed_dim x mlp_ratio
    hidden_act: Literal["quick_gelu", "silu", "gelu"]
    num_heads: Heads = 16
    in_channels: Channels = 3
    patch_size: ImageSide = 14
    spatial_merge_size: ImageSide = 2
    temporal_patch_size: ImageSide = 2
    window_size: ImageSide | None = None  # qwen2_5_vl: window attention over 112 px squares
    fullatt_block_indexes: list[Annotated[int, Field(ge=0, lt=L.MAX_LAYERS)]] | None = Field(
        default=None, max_length=L.MAX_LAYERS
    )
    tokens_per_second: Annotated[int, Field(gt=0, le=1024)] | None = None


class Preprocessor(Strict):
    """preprocessor_config.json's pixel bounds (Qwen2VLImageProcessor min_pixels / max_pixels)."""

    min_pixels: Pixels = DEFAULT_MIN_PIXELS
    max_pixels: Pixels = DEFAULT_MAX_PIXELS
    video_min_pixels: Pixels = DEFAULT_VIDEO_MIN_PIXELS  # video_preprocessor_config.json's per-frame bounds
    video_max_pixels: Pixels = DEFAULT_VIDEO_MAX_PIXELS

    @model_validator(mode="after")
    def _check(self) -> Preprocessor:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels is above max_pixels")
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError("video_min_pixels is above video_max_pixels")
        return self


class QwenVLConfig(Strict):
    """Qwen2VLConfig / Qwen2_5_VLConfig: text_config and vision_config nested (as transformers >= 4.52
    saves them; the original hub files keep the text fields at the top level)."""

    text_config: QwenVLTextConfig
    vision_config: Qwen2VLVisionConfig
    tie_word_embeddings: bool = False


class QwenVLSpec(ModelSpecBase):
    architecture: Literal["qwen2_vl", "qwen2_5_vl"]
    config: QwenVLConfig
    preprocessor: Preprocessor = Preprocessor()

    @model_validator(mode="after")
    def _check(self) -> QwenVLSpec:
        v = self.config.vision_config
        if self.architecture == "qwen2_vl":
            if v.embed_dim is None or v.mlp_ratio is None:
                raise ValueError("qwen2_vl: vision_config needs embed_dim and mlp_ratio")
        else:
            if v.intermediate_size is None or v.out_hidden_size is None:
                raise ValueError("qwen2_5_vl: vision_config needs intermediate_size and out_hidden_size")
        if self.vision_width % v.num_heads:
            raise ValueError("the vision width is not a multiple of vision_config.num_heads")
        return self

    @property
    def merger_width(self) -> int:
        """The merger's output width: vision_config.hidden_size (Qwen2-VL) or out_hidden_size (Qwen2.5-VL), as
        PatchMerger(dim=...) is built. A value other than text_config.hidden_size builds in transformers (only a
        forward pass fails), so importers/configs.py warns instead of refusing (issue 20)."""
        v = self.config.vision_config
        return v.hidden_size if self.architecture == "qwen2_vl" else v.out_hidden_size  # type: ignore[return-value]

    def unusable_values(self) -> list[str]:
        """What transformers builds but could not run (importers/configs.py: unusable_values warns, never refuses)."""
        field = "hidden_size" if self.architecture == "qwen2_vl" else "out_hidden_size"
        return merger_width_warning(field, self.merger_width, self.config.text_config.hidden_size)

    @property
    def vision_width(self) -> int:
        v = self.config.vision_config
        return v.embed_dim if self.architecture == "qwen2_vl" else v.hidden_size  # type: ignore[return-value]

    @property
    def vision_mlp(self) -> int:
        v = self.config.vision_config
        if self.architecture == "qwen2_vl":
            return self.vision_width * v.mlp_ratio  # type: ignore[operator]
        return v.intermediate_size  # type: ignore[return-value]


SPECS = {"qwen2_vl": QwenVLSpec, "qwen2_5_vl": QwenVLSpec}


def _tied(c: QwenVLConfig) -> bool:
    return c.tie_word_embeddings or c.text_config.tie_word_embeddings


def tensors(spec: QwenVLSpec) -> Iterator[Tensor]:
    """The ViT (`model.visual`: a bias-free Conv3d patch embedding over temporal x patch x patch, blocks
    with norm1/norm2, a fused biased qkv, a biased proj and the MLP), the merger (norm and a two-layer
    MLP over 4 merged patches: the projector), then the Qwen2 language model."""
    c, v = spec.config, spec.config.vision_config
    h, comp, q25 = spec.vision_width, "vision_tower", spec.architecture == "qwen2_5_vl"
    yield Tensor(
        "vision.patch_embd.weight", comp, (h, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size), "conv"
    )
    for i in range(v.depth):
        p = f"vision.{i}"
        yield from norm(f"{p}.ln1", comp, h, i, bias=not q25)  # Qwen2.5-VL: RMSNorm; Qwen2-VL: LayerNorm
        yield from norm(f"{p}.ln2", comp, h, i, bias=not q25)
        yield from linear(f"{p}.attn_qkv", comp, 3 * h, h, "attn_qkv", True, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", True, i)
        if q25:
            yield from llama.gated_mlp(p, comp, h, spec.vision_mlp, True, i)
        else:
            yield from linear(f"{p}.ffn_up", comp, spec.vision_mlp, h, "ffn_up", True, i)
            yield from linear(f"{p}.ffn_down", comp, h, spec.vision_mlp, "ffn_down", True, i)
    merged = h * v.spatial_merge_size**2
    yield from norm("projector.ln_q", "projector", h, None, bias=not q25)
    yield from linear("projector.mlp.0", "projector", merged, merged, "projector", True, None)
    yield from linear("projector.mlp.2", "projector", spec.merger_width, merged, "projector", True, None)
    yield from llama.decoder_lm(c.text_config, tied=_tied(c))


def geometry(spec: QwenVLSpec) -> Geometry:
    c = spec.config
    v = c.vision_config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=_tied(c),
        no_cross_reason="Qwen2-VL has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(*llama.lm_tp_constraints(c.text_config), ("vision tower attention heads", v.num_heads, False)),
        takes_images=True,
        image_size_option=True,
        takes_video=True,
        refusals={"ollama": "ollama's Qwen2.5-VL vision runner is not modelled yet"},
    )


def smart_resize(spec: QwenVLSpec, height: int, width: int, video: bool = False) -> tuple[int, int]:
    """transformers' smart_resize (image_processing_qwen2_vl.py), with the spec's image (or video frame)
    pixel bounds."""
    v, pp = spec.config.vision_config, spec.preprocessor
    lo, hi = (pp.video_min_pixels, pp.video_max_pixels) if video else (pp.min_pixels, pp.max_pixels)
    factor = v.patch_size * v.spatial_merge_size
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > hi:
        beta = math.sqrt((height * width) / hi)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < lo:
        beta = math.sqrt(lo / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _patches(spec: QwenVLSpec, image_size: tuple[int, int] | None) -> int:
    """ViT patches of one image (before the 2x2 merge)."""
    v = spec.config.vision_config
    if image_size is None:
        # No size given: the largest image the preprocessor lets through (H x W <= max_pixels).
        side = v.patch_size * v.spatial_merge_size
        return (spec.preprocessor.max_pixels // (side * side)) * v.spatial_merge_size**2
    h, w = smart_resize(spec, *image_size)
    return (h // v.patch_size) * (w // v.patch_size)


def image_tokens(spec: QwenVLSpec, image_size: tuple[int, int] | None) -> int:
    """LLM tokens of one image: its ViT patches / spatial_merge_size^2 (grid_t = 1 for an image)."""
    return _patches(spec, image_size) // spec.config.vision_config.spatial_merge_size**2


def video_tokens(spec: QwenVLSpec, frames: int, frame_size: tuple[int, int] | None) -> int:
    """LLM tokens of a video of `frames` frames of `frame_size` (None: the largest frame the video
    processor keeps): frames are padded to a multiple of temporal_patch_size, each group of that many
    frames is one patch in depth (Qwen2VLVideoProcessor: grid_t = frames / temporal_patch_size) and
    costs H x W / 784 tokens at the frame's smart_resize within the video pixel bounds."""
    v, m = spec.config.vision_config, spec.config.vision_config.spatial_merge_size
    if frame_size is None:
        side = v.patch_size * m
        per_group = spec.preprocessor.video_max_pixels // (side * side)
    else:
        h, w = smart_resize(spec, *frame_size, video=True)
        per_group = (h // v.patch_size) * (w // v.patch_size) // (m * m)
    return -(-frames // v.temporal_patch_size) * per_group


def stages(
    spec: QwenVLSpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        v = spec.config.vision_config
        n = _patches(spec, image_size)  # per image; the largest the preprocessor allows when no size is given
        h = spec.vision_width
        # The ViT runs all images' patches as one packed sequence; attention is per image (cu_seqlens)
        # through SDPA / flash attention, so no n x n scores are held whole.
        out.append(
            Stage(
                n * images, h, h, h, spec.vision_mlp, spec.architecture == "qwen2_5_vl", v.num_heads, n, per_input=True
            )
        )
    return out


def cross_source_tokens(spec: QwenVLSpec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
_QWEN_VL_TEXT = {
    "vocab_size": 152064,
    "hidden_size": 8192,
    "intermediate_size": 29568,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "max_position_embeddings": 32768,
    "hidden_act": "silu",
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 80,
}
QWEN2_VL_TEXT = ConfigClass(
    "Qwen2VLTextConfig", "qwen2_vl/configuration_qwen2_vl.py", QwenVLTextConfig, _QWEN_VL_TEXT, copied=("layer_types",)
)
QWEN2_5_VL_TEXT = ConfigClass(
    "Qwen2_5_VLTextConfig",
    "qwen2_5_vl/configuration_qwen2_5_vl.py",
    QwenVLTextConfig,
    _QWEN_VL_TEXT,
    copied=("layer_types",),
)
QWEN2_VL_VISION = ConfigClass(
    "Qwen2VLVisionConfig",
    "qwen2_vl/configuration_qwen2_vl.py",
    Qwen2VLVisionConfig,
    {
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": 3584,
        "hidden_act": "quick_gelu",
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
)
QWEN2_5_VL_VISION = ConfigClass(
    "Qwen2_5_VLVisionConfig",
    "qwen2_5_vl/configuration_qwen2_5_vl.py",
    Qwen2VLVisionConfig,
    {
        "depth": 32,
        "hidden_size": 3584,
        "hidden_act": "silu",
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 4,
        "window_size": 112,
        "out_hidden_size": 3584,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
)
CLASSES = {"qwen2_vl": (QWEN2_VL_TEXT, QWEN2_VL_VISION), "qwen2_5_vl": (QWEN2_5_VL_TEXT, QWEN2_5_VL_VISION)}
# Qwen2-VL / Qwen2.5-VL checkpoints keep the language model at the top (model.embed_tokens,
# model.layers.N, lm_head) next to `visual.*`; transformers 5 names the modules model.language_model.*
# and model.visual.*. The merger (ln_q + mlp) is the projector.
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?visual\.merger\..+", "projector"),
    (r"(?:model\.)?visual\..+", "vision_tower"),
    (r"model\.(?:language_model\.)?embed_tokens\.weight", "embeddings"),
    (r"model\.(?:language_model\.)?(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Qwen2-VL / Qwen2.5-VL: the hub files keep the text fields at the top level (Qwen2VLConfig.__post_init__
    moves them into text_config); transformers >= 4.52 writes them nested. Either is read."""
    text_cls, vision_cls = CLASSES[model_type]
    nested = reading.sub(cfg, "text_config")
    text = reading.block(nested if nested is not None else cfg, text_cls, "config.text_config")
    vision = reading.block(reading.sub(cfg, "vision_config") or {}, vision_cls, "config.vision_config")
    tied = bool(cfg.get("tie_word_embeddings", False))
    text["tie_word_embeddings"] = tied or bool((nested or {}).get("tie_word_embeddings", False))
    reading.notes.append(
        "Image tokens follow the preprocessor's pixel bounds, which config.json does not hold: "
        f"transformers' defaults (min_pixels {3136}, max_pixels {28 * 28 * 1280}, 1,280 tokens per image) "
        "are assumed; the Qwen hub repos' preprocessor_config.json allows up to 12845056 pixels "
        "(16,384 tokens): add `preprocessor: {min_pixels: ..., max_pixels: ...}` to the spec."
    )
    return {"tie_word_embeddings": tied, "text_config": text, "vision_config": vision}


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    video_tokens=video_tokens,
    read_config=dict.fromkeys(ARCHITECTURES, read_config),
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
