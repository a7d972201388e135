"""InternVL 3 / 3.5 (InternVLForConditionalGeneration, the "-hf" checkpoints): an InternViT whose patch features
are pixel-shuffled (downsample_ratio 0.5: 2x2 patches into one) and projected into a Qwen2 / Qwen3 language model's input,
and so into its self-attention cache (no cross-attention).

transformers 5.23 models/internvl/modeling_internvl.py:
- InternVLVisionModel (`model.vision_tower`): embeddings (cls_token, mask_token when use_mask_token, a biased
  Conv2d patch projection, position_embeddings of patches + 1 when use_absolute_position_embeddings), layers of
  layernorm_before / layernorm_after (LayerNorm with a bias, or RMSNorm: norm_type), q/k/v (biased when
  attention_bias), a biased projection_layer, q/k RMSNorms over the whole width when use_qk_norm, a biased
  fc1 / fc2 MLP and two layer-scale vectors (lambda_1, lambda_2); a final LayerNorm unless use_mean_pooling.
- InternVLMultiModalProjector (`model.multi_modal_projector`): a LayerNorm over the shuffled width
  (hidden x (1 / downsample_ratio)^2), linear_1 to the text width and linear_2.
- The language model is built from text_config by AutoModel; this family reads a Qwen2 one (InternVL 3's, and
  InternVLConfig's default) or a Qwen3 one (InternVL 3.5's). Only the top-level tie_word_embeddings ties lm_head
  (true by default).

Image tokens: (image_size / patch_size)^2 x downsample_ratio^2 per tile (256 for 448-pixel tiles of 14-pixel
patches: get_image_features' rows), times the tiles GotOcr2ImageProcessor cuts (crop_to_patches: the grid of
min_patches..max_patches tiles closest to the image's aspect ratio, plus a thumbnail when more than one).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Any, Literal

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
    TokenId,
    linear,
    norm,
)
from .family import ConfigClass, Family, WeightRules
from .llama import Anatomy
from .qwen2 import SlidingLayers

ARCHITECTURES = ("internvl",)
STAGES_TAKE_IMAGE_SIZE = True
MAX_TILES = 64


class InternVLVisionConfig(Strict):
    """InternVLVisionConfig fields (models/internvl/configuration_internvl.py); image_size and patch_size square."""

    model_type: Literal["internvl_vision"] | None = None
    hidden_size: Hidden = 1024
    num_hidden_layers: Layers = 24
    num_attention_heads: Heads = 16
    attention_bias: bool = False
    use_qk_norm: bool = False
    intermediate_size: Intermediate = 4096
    hidden_act: Literal["gelu", "gelu_pytorch_tanh", "quick_gelu", "silu"] = "gelu"
    norm_type: Literal["layer_norm", "rms_norm"] = "layer_norm"
    image_size: ImageSide | list[ImageSide] = [448, 448]
    patch_size: ImageSide | list[ImageSide] = [14, 14]
    num_channels: Channels = 3
    use_mask_token: bool = False
    use_absolute_position_embeddings: bool = True
    use_mean_pooling: bool = True

    @property
    def side(self) -> int:
        return _square(self.image_size, "image_size")

    @property
    def patch(self) -> int:
        return _square(self.patch_size, "patch_size")

    @model_validator(mode="after")
    def _check(self) -> InternVLVisionConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("vision_config.hidden_size is not a multiple of vision_config.num_attention_heads")
        if self.side % self.patch:
            raise ValueError("vision_config.image_size is not a multiple of vision_config.patch_size")
        return self


def _square(value: int | list[int], name: str) -> int:
    if isinstance(value, int):
        return value
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f"vision_config.{name}: a square [side, side] is modelled, not {value}")
    return value[0]


class InternVLTextConfig(SlidingLayers):
    """The language model of InternVL 3 (Qwen2Config, text_config.model_type qwen2, InternVLConfig's default) or
    InternVL 3.5 (Qwen3Config, model_type qwen3: q/k RMSNorms per head, biases only when attention_bias, head_dim
    128 unless given: transformers models/qwen3/configuration_qwen3.py). Other text models are refused."""

    model_type: Literal["qwen2", "qwen3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False  # Qwen3Config's; Qwen2's q/k/v always have biases

    @model_validator(mode="before")
    @classmethod
    def _qwen3_head_dim(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model_type") == "qwen3" and data.get("head_dim") is None:
            return {**data, "head_dim": 128}  # Qwen3Config.head_dim's default
        return data

    @property
    def anatomy(self) -> Anatomy:
        if self.model_type == "qwen3":
            b = self.attention_bias
            return Anatomy(qkv_bias=b, o_bias=b, qk_norm=True)
        return Anatomy(qkv_bias=True)


class InternVLConfig(Strict):
    """InternVLConfig (configuration_internvl.py)."""

    text_config: InternVLTextConfig
    vision_config: InternVLVisionConfig
    downsample_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    projector_hidden_act: Literal["gelu", "gelu_pytorch_tanh", "silu"] = "gelu"
    vision_feature_layer: Annotated[int, Field(ge=-64, le=64)] = -1
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_token_id: TokenId | None = None
    tie_word_embeddings: bool = True

    @property
    def shuffle(self) -> int:
        """Patches per side merged into one token (int(1 / downsample_ratio), as the projector is built)."""
        return int(1 / self.downsample_ratio)

    @property
    def tokens_per_tile(self) -> int:
        """get_image_features' rows per tile: (side / patch)^2 patches, pixel-shuffled by downsample_ratio."""
        grid = self.vision_config.side // self.vision_config.patch
        return int(grid * self.downsample_ratio) ** 2


class Preprocessor(Strict):
    """preprocessor_config.json's tiling (GotOcr2ImageProcessor: crop_to_patches, min_patches, max_patches)."""

    crop_to_patches: bool = False  # transformers' default; InternVL's hub processors turn it on
    min_patches: Annotated[int, Field(gt=0, le=MAX_TILES)] = 1
    max_patches: Annotated[int, Field(gt=0, le=MAX_TILES)] = 12

    @model_validator(mode="after")
    def _check(self) -> Preprocessor:
        if self.min_patches > self.max_patches:
            raise ValueError("min_patches is above max_patches")
        return self


class InternVLSpec(ModelSpecBase):
    architecture: Literal["internvl"]
    config: InternVLConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        c = self.config
        grid = c.vision_config.side // c.vision_config.patch
        out = []
        if grid % c.shuffle or int(grid * c.downsample_ratio) * c.shuffle != grid:
            out.append(
                f"Warning: downsample_ratio ({c.downsample_ratio}) does not divide the {grid} patches per side: "
                "InternVLModel.pixel_shuffle would fail in a forward pass; sized as written."
            )
        if c.vision_feature_select_strategy == "full":
            out.append(
                "Warning: vision_feature_select_strategy 'full' keeps the class token, and "
                "InternVLModel.get_image_features reshapes the features to a square grid: a forward pass would fail; "
                "sized as written."
            )
        return out


SPECS: dict[str, type[Any]] = {"internvl": InternVLSpec}


def _text(spec: InternVLSpec) -> InternVLTextConfig:
    c = spec.config
    t = c.text_config
    return (
        t
        if t.tie_word_embeddings == c.tie_word_embeddings
        else t.model_copy(update={"tie_word_embeddings": c.tie_word_embeddings})
    )


def tensors(spec: InternVLSpec) -> Iterator[Tensor]:
    c = spec.config
    v = c.vision_config
    h, comp, p = v.hidden_size, "vision_tower", v.patch
    yield Tensor("vision.cls_token", comp, (1, 1, h), "other")
    if v.use_mask_token:
        yield Tensor("vision.mask_token", comp, (1, 1, h), "other")
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, p, p), "conv")
    yield Tensor("vision.patch_embd.bias", comp, (h,), "bias")
    if v.use_absolute_position_embeddings:
        yield Tensor("vision.position_embd", comp, (1, (v.side // p) ** 2 + 1, h), "other")
    layer_norm = v.norm_type == "layer_norm"
    for i in range(v.num_hidden_layers):
        q = f"vision.{i}"
        for name in ("attn_q", "attn_k", "attn_v"):
            yield from linear(f"{q}.{name}", comp, h, h, name, v.attention_bias, i)
        yield from linear(f"{q}.attn_output", comp, h, h, "attn_output", True, i)
        if v.use_qk_norm:
            yield from norm(f"{q}.attn_q_norm", comp, h, i)
            yield from norm(f"{q}.attn_k_norm", comp, h, i)
        yield from linear(f"{q}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
        yield from linear(f"{q}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
        yield from norm(f"{q}.ln1", comp, h, i, bias=layer_norm)
        yield from norm(f"{q}.ln2", comp, h, i, bias=layer_norm)
        yield Tensor(f"{q}.ls1", comp, (h,), "other", i)
        yield Tensor(f"{q}.ls2", comp, (h,), "other", i)
    if not v.use_mean_pooling:
        yield from norm("vision.post_norm", comp, h, None, bias=True)
    shuffled, text_h = h * c.shuffle**2, c.text_config.hidden_size
    yield from norm("projector.norm", "projector", shuffled, None, bias=True)
    yield from linear("projector.linear_1", "projector", text_h, shuffled, "projector", True, None)
    yield from linear("projector.linear_2", "projector", text_h, text_h, "projector", True, None)
    yield from llama.decoder_lm(_text(spec))


def geometry(spec: InternVLSpec) -> Geometry:
    text, v = _text(spec), spec.config.vision_config
    return llama.decoder_geometry(
        text,
        spec.architecture,
        tp_constraints=(*llama.lm_tp_constraints(text), ("vision tower attention heads", v.num_attention_heads, False)),
        no_cross_reason="InternVL has no cross-attention: image tokens sit in the self-attention context",
        takes_images=True,
        image_size_option=spec.preprocessor.crop_to_patches,
        refusals={
            "ollama": "ollama's InternVL vision runner is not modelled yet",
            # llama.cpp loads the text GGUF and a internvl mmproj (convert_hf_to_gguf.py); clip.cpp's graph and
            # the mmproj file are modelled for LLaVA, Gemma 3, Qwen2(.5)-VL and Mistral 3 only (engines/llamacpp.py)
            "llama.cpp": "llama.cpp's InternVL mmproj (internvl projector) is not modelled yet",
        },
    )


@lru_cache(maxsize=256)
def optimal_grid(height: int, width: int, side: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """(columns, rows) of GotOcr2ImageProcessor's tiling (models/got_ocr2/image_processing_got_ocr2.py
    get_optimal_tiled_canvas over get_all_supported_aspect_ratios): the grid whose aspect ratio is closest to the
    image's; on a tie the one with more tiles while the image's area exceeds half the tiles' area."""
    grids = sorted(
        ((w, h) for w in range(1, max_tiles + 1) for h in range(1, max_tiles + 1) if min_tiles <= w * h <= max_tiles),
        key=lambda g: g[0] * g[1],
    )
    aspect, area = width / height, width * height
    best_diff, best = float("inf"), (1, 1)
    for g in grids:
        diff = abs(aspect - g[0] / g[1])
        if diff < best_diff:
            best_diff, best = diff, g
        elif diff == best_diff and area > 0.5 * side * side * g[0] * g[1]:
            best = g
    return best


def tiles(spec: InternVLSpec, image_size: tuple[int, int] | None) -> int:
    """Tiles one image becomes: 1 without crop_to_patches; else the grid's tiles plus a thumbnail when more than
    one (the largest possible when no size is given)."""
    pp = spec.preprocessor
    if not pp.crop_to_patches:
        return 1
    if image_size is None:
        n = pp.max_patches
    else:
        cols, rows = optimal_grid(*image_size, spec.config.vision_config.side, pp.min_patches, pp.max_patches)
        n = cols * rows
    return n + 1 if n > 1 else n


def image_tokens(spec: InternVLSpec, image_size: tuple[int, int] | None) -> int:
    """InternVLProcessor: image_seq_length (the model's tokens per tile) x the image's tiles."""
    return spec.config.tokens_per_tile * tiles(spec, image_size)


def stages(
    spec: InternVLSpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [llama.lm_stage(_text(spec), context)]
    if images:
        v = spec.config.vision_config
        n = (v.side // v.patch) ** 2 + 1  # patches and the class token of one tile
        t = tiles(spec, image_size) * images
        h = v.hidden_size
        # tiles run as a batch; InternVLVisionAttention goes through the attention interface (SDPA by default)
        out.append(Stage(n * t, h, h, h, v.intermediate_size, False, v.num_attention_heads, n, per_input=True))
    return out


def cross_source_tokens(spec: InternVLSpec, images: int, encoder_tokens: int) -> int:
    return 0


CONFIG_JSON = {
    "internvl": ConfigClass(
        "InternVLConfig",
        "internvl/configuration_internvl.py",
        InternVLConfig,
        {
            "text_config": ConfigClass(
                "Qwen2Config",
                "qwen2/configuration_qwen2.py",
                InternVLTextConfig,
                {
                    "vocab_size": 151936,
                    "hidden_size": 4096,
                    "intermediate_size": 22016,
                    "num_hidden_layers": 32,
                    "num_attention_heads": 32,
                    "num_key_value_heads": 32,
                    "hidden_act": "silu",
                    "max_position_embeddings": 32768,
                    "use_sliding_window": False,
                    "max_window_layers": 28,
                },
                copied=("model_type", "sliding_window", "layer_types", "head_dim", "attention_bias"),
            ),
            "vision_config": ConfigClass(
                "InternVLVisionConfig",
                "internvl/configuration_internvl.py",
                InternVLVisionConfig,
                {
                    "hidden_size": 1024,
                    "num_hidden_layers": 24,
                    "num_attention_heads": 16,
                    "attention_bias": False,
                    "use_qk_norm": False,
                    "intermediate_size": 4096,
                    "hidden_act": "gelu",
                    "norm_type": "layer_norm",
                    "image_size": [448, 448],
                    "patch_size": [14, 14],
                    "num_channels": 3,
                    "use_mask_token": False,
                    "use_absolute_position_embeddings": True,
                    "use_mean_pooling": True,
                },
            ),
            "downsample_ratio": 0.5,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -1,
            "vision_feature_select_strategy": "default",
            "tie_word_embeddings": True,
        },
    ),
}
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?vision_tower\..+", "vision_tower"),
    (r"(?:model\.)?multi_modal_projector\..+", "projector"),
    (r"(?:model\.)?language_model\.embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?language_model\.(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    config_json=CONFIG_JSON,
    weight_rules={"internvl": WEIGHT_RULES},
)
