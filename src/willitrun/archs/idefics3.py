"""Idefics3 and SmolVLM / SmolVLM2 (Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration): a
SigLIP-shaped tower (SiglipVisionModel's layers without the pooling head), a connector that pixel-shuffles
scale_factor x scale_factor neighbouring patches into one (a bias-free linear from vision hidden x
scale_factor^2 to the text width), and a Llama language model whose input holds the image tokens
(self-attention context, no cross-attention).

Image tokens (transformers 5.23 models/idefics3/image_processing_idefics3.py and processing_idefics3.py;
SmolVLM's files are the same code): the image's longest edge is resized to `size.longest_edge` (up or down,
the other side keeping the aspect, odd sides made even), both sides are rounded up to multiples of
`max_image_size` (resize_for_vision_encoder), and when either exceeds it the image is cut into
rows x cols crops of max_image_size plus one global view resized to it (split_images). Each crop costs
image_seq_len = (image_size / patch_size)^2 / scale_factor^2 features. The prompt wraps them in text
tokens (get_image_prompt_string): per crop <fake_token_around_image> and <row_r_col_c>, a newline per row,
and around the global view a newline, <fake_token_around_image>, <global-img> ... <fake_token_around_image>.
Every marker is one token (added special tokens) and the row's newline plus the global view's newline
("\\n\\n") one token, as a tokenizer with that merge gives (Llama 3's has it; Idefics3Processor
`_get_num_multimodal_tokens` counts one more for a tokenizer without it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from ..records import Field, model_validator
from . import llama, siglip
from .base import (
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
    linear,
)
from .family import ConfigClass, ConfigReading, Family, WeightRules
from .llama import LLAMA, LlamaConfig
from .siglip import SiglipVisionConfig

ARCHITECTURES = ("idefics3", "smolvlm")
STAGES_TAKE_IMAGE_SIZE = True

# image_processing_idefics3.py: MAX_IMAGE_SIZE, the cap on the resized image's longest edge
MAX_IMAGE_SIZE = 4096


class Idefics3VisionConfig(SiglipVisionConfig):
    """Idefics3VisionConfig / SmolVLMVisionConfig fields (configuration_idefics3.py, configuration_smolvlm.py),
    their defaults. The tower has no pooling head (Idefics3VisionTransformer: embeddings, encoder,
    post_layernorm)."""

    model_type: Literal["idefics3_vision", "smolvlm_vision"] | None = None  # type: ignore[assignment]
    hidden_size: Hidden = 1152
    intermediate_size: Intermediate = 3072
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 16
    image_size: ImageSide = 224
    patch_size: ImageSide = 32
    vision_use_head: Literal[False] = False  # not a field of these classes: the tower never has the head


class Preprocessor(Strict):
    """preprocessor_config.json of Idefics3ImageProcessor / SmolVLMImageProcessor: size.longest_edge,
    max_image_size.longest_edge, do_image_splitting, do_resize (the classes' defaults: 4 x 364, 364, true,
    true)."""

    longest_edge: ImageSide = 4 * 364
    max_image_size: ImageSide = 364
    do_image_splitting: bool = True
    do_resize: bool = True


class Idefics3Config(Strict):
    """Idefics3Config / SmolVLMConfig fields (configuration_idefics3.py, configuration_smolvlm.py)."""

    text_config: LlamaConfig
    vision_config: Idefics3VisionConfig = Idefics3VisionConfig()
    scale_factor: Annotated[int, Field(gt=0, le=64)] = 2
    image_token_id: TokenId | None = None
    tie_word_embeddings: bool = (
        False  # the top-level flag ties lm_head (modeling_utils.py get_expanded_tied_weights_keys)
    )

    @property
    def image_seq_len(self) -> int:
        """Features of one crop: Idefics3Model.image_seq_len."""
        return self.vision_config.patches // self.scale_factor**2

    @model_validator(mode="after")
    def _check(self) -> Idefics3Config:
        # A scale_factor that does not divide the patches per side builds in transformers (only the connector's
        # pixel shuffle fails, in a forward pass): importers/configs.py warns instead of refusing (issue 20).
        if self.text_config.model_type not in (None, "llama"):
            raise ValueError("text_config.model_type: Idefics3 and SmolVLM take a llama text model")
        return self


class Idefics3Spec(ModelSpecBase):
    architecture: Literal["idefics3", "smolvlm"]
    config: Idefics3Config
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        """What transformers builds but could not run (importers/configs.py: unusable_values warns, never refuses)."""
        v, scale = self.config.vision_config, self.config.scale_factor
        if (v.image_size // v.patch_size) % scale == 0:
            return []
        return [
            f"Warning: scale_factor ({scale}) does not divide the {v.image_size // v.patch_size} patches "
            "per side: the connector's pixel shuffle would fail in a forward pass; sized as written."
        ]

    @model_validator(mode="after")
    def _check_preprocessor(self) -> Idefics3Spec:
        side = self.config.vision_config.image_size
        if self.preprocessor.max_image_size != side:
            raise ValueError(
                f"preprocessor.max_image_size ({self.preprocessor.max_image_size}) must equal "
                f"vision_config.image_size ({side}): the processor writes image_seq_len tokens "
                "per crop, the tower sees max_image_size crops"
            )
        return self


SPECS = {"idefics3": Idefics3Spec, "smolvlm": Idefics3Spec}


def tensors(spec: Idefics3Spec) -> Iterator[Tensor]:
    """The vision tower (model.vision_model), the connector's one linear (model.connector), then the
    Llama text model and lm_head (absent when tie_word_embeddings)."""
    c, v = spec.config, spec.config.vision_config
    yield from siglip.tensors(v)
    yield from linear(
        "projector.modality_projection",
        "projector",
        c.text_config.hidden_size,
        v.hidden_size * c.scale_factor**2,
        "projector",
        False,
        None,
    )
    yield from llama.decoder_lm(c.text_config, tied=c.tie_word_embeddings)


def geometry(spec: Idefics3Spec) -> Geometry:
    c = spec.config
    name = "Idefics3" if spec.architecture == "idefics3" else "SmolVLM"
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=c.tie_word_embeddings,
        no_cross_reason=f"{name} has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(
            *llama.lm_tp_constraints(c.text_config),
            ("vision tower attention heads", c.vision_config.num_attention_heads, False),
        ),
        takes_images=True,
        image_size_option=True,
        refusals={
            "llama.cpp": f"llama.cpp's {name} mmproj is not modelled yet",
            "ollama": f"ollama's {name} runner is not modelled yet",
        },
    )


def resized(spec: Idefics3Spec, height: int, width: int) -> tuple[int, int]:
    """The image's size after `resize` (longest edge to size.longest_edge, then at most MAX_IMAGE_SIZE):
    _resize_output_size_rescale_to_max_len and _resize_output_size_scale_below_upper_bound."""
    if not spec.preprocessor.do_resize:
        return height, width
    edge = spec.preprocessor.longest_edge
    aspect = width / height
    if width >= height:
        width, height = edge, int(edge / aspect)
        height += height % 2
    else:
        height, width = edge, int(edge * aspect)
        width += width % 2
    height, width = max(height, 1), max(width, 1)
    aspect = width / height
    if width >= height and width > MAX_IMAGE_SIZE:
        width, height = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE / aspect)
    elif height > width and height > MAX_IMAGE_SIZE:
        height, width = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE * aspect)
    return max(height, 1), max(width, 1)


def grid(spec: Idefics3Spec, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """(rows, cols) of crops of one image, (0, 0) when it is not split; without a size the largest: a
    square image (both sides reach the longest edge)."""
    pp = spec.preprocessor
    if not pp.do_image_splitting:
        return 0, 0
    edge = min(pp.longest_edge, MAX_IMAGE_SIZE) if pp.do_resize else pp.longest_edge
    height, width = resized(spec, *image_size) if image_size is not None else (edge, edge)
    # resize_for_vision_encoder: the longer side up to a multiple of max_image_size, the other from the aspect
    m = pp.max_image_size
    aspect = width / height
    if width >= height:
        width = math.ceil(width / m) * m
        height = math.ceil(int(width / aspect) / m) * m
    else:
        height = math.ceil(height / m) * m
        width = math.ceil(int(height * aspect) / m) * m
    if height > m or width > m:  # split_images
        return math.ceil(height / m), math.ceil(width / m)
    return 0, 0


def crops(spec: Idefics3Spec, image_size: tuple[int, int] | None) -> int:
    rows, cols = grid(spec, image_size)
    return rows * cols + 1


def image_tokens(spec: Idefics3Spec, image_size: tuple[int, int] | None) -> int:
    """Positions of one image: crops x image_seq_len features and the markers around them."""
    seq = spec.config.image_seq_len
    rows, cols = grid(spec, image_size)
    return rows * (cols * (seq + 2) + 1) + seq + 3


def stages(
    spec: Idefics3Spec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        v = spec.config.vision_config
        n = v.patches
        # every crop of every image through the tower at once (SDPA: no whole score matrix)
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


def cross_source_tokens(spec: Idefics3Spec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
_IDEFICS3_VISION_DEFAULTS = {
    "hidden_size": 1152,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "gelu_pytorch_tanh",
}
IDEFICS3_VISION = ConfigClass(
    "Idefics3VisionConfig", "idefics3/configuration_idefics3.py", Idefics3VisionConfig, _IDEFICS3_VISION_DEFAULTS
)
SMOLVLM_VISION = ConfigClass(
    "SmolVLMVisionConfig", "smolvlm/configuration_smolvlm.py", Idefics3VisionConfig, _IDEFICS3_VISION_DEFAULTS
)
IDEFICS3 = ConfigClass(
    "Idefics3Config",
    "idefics3/configuration_idefics3.py",
    Idefics3Config,
    {"scale_factor": 2, "tie_word_embeddings": False},
    copied=("image_token_id",),
)
SMOLVLM = ConfigClass(
    "SmolVLMConfig",
    "smolvlm/configuration_smolvlm.py",
    Idefics3Config,
    {"scale_factor": 2, "tie_word_embeddings": False},
    copied=("image_token_id",),
)
CLASSES = {"idefics3": (IDEFICS3, IDEFICS3_VISION), "smolvlm": (SMOLVLM, SMOLVLM_VISION)}
# Idefics3ForConditionalGeneration / SmolVLMForConditionalGeneration (modeling_idefics3.py): model.vision_model.*,
# model.connector.modality_projection.*, model.text_model.*, lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?vision_model\..+", "vision_tower"),
    (r"(?:model\.)?connector\..+", "projector"),
    (r"(?:model\.)?text_model\.embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?text_model\.(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Idefics3 / SmolVLM: a Llama text_config (LlamaConfig's defaults), the SigLIP-shaped vision_config."""
    top, vision_cls = CLASSES[model_type]
    text = reading.typed(reading.sub(cfg, "text_config"), "config.text_config", {"llama": LLAMA}, "llama")
    vision = reading.block(reading.sub(cfg, "vision_config") or {}, vision_cls, "config.vision_config")
    return {"text_config": text, "vision_config": vision, **reading.block(cfg, top, "config")}


def assumed_preprocessor(reading: ConfigReading, block: Mapping[str, Any]) -> dict[str, Any]:
    """The crop size and longest edge live in preprocessor_config.json, not config.json: crops of the tower's
    image_size and a longest edge of 4 crops (the image processors' own default, 4 x 364) are assumed."""
    side = block["vision_config"].get("image_size", _IDEFICS3_VISION_DEFAULTS["image_size"])
    if type(side) is not int or side < 1:  # null, a string, a list: nothing to size the crops with
        raise reading.malformed(f"vision_config.image_size: a positive integer, not {reading.shown(side)}")
    reading.notes.append(
        f"Image tokens follow preprocessor_config.json (size.longest_edge, max_image_size), which config.json "
        f"does not hold: crops of the tower's {side} px and a longest edge of 4 x {side} = {4 * side} px are "
        "assumed (Idefics3ImageProcessor's default ratio, 4 x 364); add `preprocessor: {longest_edge: ..., "
        "max_image_size: ...}` to the spec."
    )
    return {"longest_edge": 4 * side, "max_image_size": side}


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    read_config=dict.fromkeys(ARCHITECTURES, read_config),
    config_preprocessor=assumed_preprocessor,
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
