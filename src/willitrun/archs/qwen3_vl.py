"""Qwen3-VL and Qwen3-VL-MoE (Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration): a
native-resolution ViT whose 2x2-merged patches become tokens of a Qwen3 (or Qwen3-MoE) language model's
input, and so of its self-attention cache (no cross-attention), plus DeepStack: the hidden states of a
few ViT blocks (`deepstack_visual_indexes`) go through their own patch mergers and are added to the
first text layers' hidden states at the image positions (no cache of their own).

transformers 5.23 models/qwen3_vl/modeling_qwen3_vl.py:
- Qwen3VLVisionModel (`model.visual`): patch_embed (Conv3d over temporal_patch_size x patch x patch, with
  a bias), pos_embed (an nn.Embedding of num_position_embeddings learned positions, bilinearly resampled
  to each image's grid), `depth` blocks (LayerNorm norm1 / norm2 with biases, a fused biased qkv, a biased
  proj, an MLP linear_fc1 / linear_fc2 with biases, not gated), `merger` (LayerNorm over hidden_size, then
  linear_fc1 4h -> 4h and linear_fc2 4h -> out_hidden_size) and one `deepstack_merger_list` merger per
  deepstack index (the same, with its LayerNorm over the 4h merged width: use_postshuffle_norm).
- The language model is Qwen3's layer (q/k RMSNorms per head, attention_bias) with M-RoPE (no weights);
  the MoE variant routes `num_experts` experts of `moe_intermediate_size` (Qwen3-MoE's block). Only the
  top-level `tie_word_embeddings` ties lm_head (Qwen3VLForConditionalGeneration._tied_weights_keys;
  text_config's flag is not read: measured, transformers 5.23).

Image tokens: the processor is Qwen2VLImageProcessor (models/auto/image_processing_auto.py: qwen3_vl) with
the checkpoint's patch_size (16) and merge_size (2): the image is resized so both sides are multiples of
32 with min_pixels <= H x W <= max_pixels, and each 2x2 group of 16-pixel patches is one LLM token.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from . import llama
from .base import (
    Channels,
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    ImageSide,
    Intermediate,
    LayerIndex,
    Layers,
    ModelSpecBase,
    Stage,
    Strict,
    Tensor,
    linear,
    merger_width_warning,
    norm,
)
from .family import ConfigClass, Family, WeightRules
from .llama import Anatomy, DecoderConfig
from .mixtral import moe_geometry
from .moe import moe_decoder_lm, moe_stage
from .qwen2_vl import Preprocessor
from .qwen_moe import QwenMoeFields

ARCHITECTURES = ("qwen3_vl", "qwen3_vl_moe")
STAGES_TAKE_IMAGE_SIZE = True  # the ViT pass depends on the image's size (archs.stages passes it)
MAX_POSITION_EMBEDDINGS = 1 << 20


class Qwen3VLTextConfig(DecoderConfig):
    """Qwen3VLTextConfig fields (transformers models/qwen3_vl/configuration_qwen3_vl.py): Qwen3's layer,
    head_dim 128 by default, no sliding window."""

    model_type: Literal["qwen3_vl_text"] | None = None
    head_dim: HeadDim = 128
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True)


class Qwen3VLMoeTextConfig(QwenMoeFields):
    """Qwen3VLMoeTextConfig fields (transformers models/qwen3_vl_moe/configuration_qwen3_vl_moe.py):
    head_dim None -> hidden_size // num_attention_heads (its __post_init__), a sparse block in layer i
    when i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0, no sliding window."""

    model_type: Literal["qwen3_vl_moe_text"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True)


class Qwen3VLVisionConfig(Strict):
    """Qwen3VLVisionConfig / Qwen3VLMoeVisionConfig fields (the two classes are the same)."""

    # the hub files say "qwen3_vl"; Qwen3VLConfig.__post_init__ renames it to qwen3_vl_vision
    model_type: Literal["qwen3_vl_vision", "qwen3_vl_moe_vision", "qwen3_vl", "qwen3_vl_moe"] | None = None
    depth: Layers = 27
    hidden_size: Hidden = 1152
    hidden_act: Literal["gelu_pytorch_tanh", "gelu", "silu", "quick_gelu"] = "gelu_pytorch_tanh"
    intermediate_size: Intermediate = 4304
    num_heads: Heads = 16
    in_channels: Channels = 3
    patch_size: ImageSide = 16
    spatial_merge_size: ImageSide = 2
    temporal_patch_size: ImageSide = 2
    out_hidden_size: Hidden = 3584
    num_position_embeddings: Annotated[int, Field(gt=0, le=MAX_POSITION_EMBEDDINGS)] = 2304
    deepstack_visual_indexes: list[LayerIndex] = Field(default=[8, 16, 24], max_length=L.MAX_LAYERS)

    @model_validator(mode="after")
    def _check(self) -> Qwen3VLVisionConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError("vision_config.hidden_size is not a multiple of vision_config.num_heads")
        return self


class Qwen3VLConfig(Strict):
    """Qwen3VLConfig (configuration_qwen3_vl.py): text_config and vision_config nested."""

    text_config: Qwen3VLTextConfig
    vision_config: Qwen3VLVisionConfig
    tie_word_embeddings: bool = False


class Qwen3VLMoeConfig(Strict):
    """Qwen3VLMoeConfig (configuration_qwen3_vl_moe.py)."""

    text_config: Qwen3VLMoeTextConfig
    vision_config: Qwen3VLVisionConfig
    tie_word_embeddings: bool = False


class Qwen3VLSpec(ModelSpecBase):
    architecture: Literal["qwen3_vl"]
    config: Qwen3VLConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size)


class Qwen3VLMoeSpec(ModelSpecBase):
    architecture: Literal["qwen3_vl_moe"]
    config: Qwen3VLMoeConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size)


def _unusable(v: Qwen3VLVisionConfig, text_hidden: int) -> list[str]:
    return merger_width_warning("out_hidden_size", v.out_hidden_size, text_hidden, "mergers'", "3584 and 4096")


AnySpec = Qwen3VLSpec | Qwen3VLMoeSpec
SPECS: dict[str, type[Any]] = {"qwen3_vl": Qwen3VLSpec, "qwen3_vl_moe": Qwen3VLMoeSpec}


def _text(spec: AnySpec) -> Qwen3VLTextConfig | Qwen3VLMoeTextConfig:
    """text_config with the top-level flag as its tie (the only one transformers reads)."""
    c = spec.config
    t = c.text_config
    return (
        t
        if t.tie_word_embeddings == c.tie_word_embeddings
        else t.model_copy(update={"tie_word_embeddings": c.tie_word_embeddings})
    )


def _merger(prefix: str, v: Qwen3VLVisionConfig, postshuffle: bool) -> Iterator[Tensor]:
    merged = v.hidden_size * v.spatial_merge_size**2
    yield from norm(f"{prefix}.norm", "projector", merged if postshuffle else v.hidden_size, None, bias=True)
    yield from linear(f"{prefix}.linear_fc1", "projector", merged, merged, "projector", True, None)
    yield from linear(f"{prefix}.linear_fc2", "projector", v.out_hidden_size, merged, "projector", True, None)


def vision_tensors(v: Qwen3VLVisionConfig) -> Iterator[Tensor]:
    """The ViT (patch embedding, learned positions, blocks): the vision tower; the merger and the DeepStack
    mergers: the projector."""
    h, comp = v.hidden_size, "vision_tower"
    yield Tensor(
        "vision.patch_embd.weight", comp, (h, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size), "conv"
    )
    yield Tensor("vision.patch_embd.bias", comp, (h,), "bias")
    yield Tensor("vision.position_embd.weight", comp, (v.num_position_embeddings, h), "other")
    for i in range(v.depth):
        p = f"vision.{i}"
        yield from norm(f"{p}.ln1", comp, h, i, bias=True)
        yield from norm(f"{p}.ln2", comp, h, i, bias=True)
        yield from linear(f"{p}.attn_qkv", comp, 3 * h, h, "attn_qkv", True, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", True, i)
        yield from linear(f"{p}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
    yield from _merger("projector.merger", v, False)
    for k in range(len(v.deepstack_visual_indexes)):
        yield from _merger(f"projector.deepstack.{k}", v, True)


def tensors(spec: AnySpec) -> Iterator[Tensor]:
    yield from vision_tensors(spec.config.vision_config)
    text = _text(spec)
    if isinstance(text, Qwen3VLMoeTextConfig):
        yield from moe_decoder_lm(text)
    else:
        yield from llama.decoder_lm(text)


def geometry(spec: AnySpec) -> Geometry:
    text, v = _text(spec), spec.config.vision_config
    extra: dict[str, Any] = {
        "no_cross_reason": "Qwen3-VL has no cross-attention: image tokens sit in the self-attention context",
        "takes_images": True,
        "image_size_option": True,
        "gguf_architecture": spec.architecture.replace("_", ""),  # llama.cpp: qwen3vl, qwen3vlmoe
        "refusals": {
            "ollama": "ollama's Qwen3-VL vision runner is not modelled yet",
            # llama.cpp loads the text GGUF and a qwen3vl_merger mmproj (convert_hf_to_gguf.py); clip.cpp's graph and
            # the mmproj file are modelled for LLaVA, Gemma 3, Qwen2(.5)-VL and Mistral 3 only (engines/llamacpp.py)
            "llama.cpp": "llama.cpp's Qwen3-VL mmproj (qwen3vl_merger projector) is not modelled yet",
        },
    }
    if isinstance(text, Qwen3VLMoeTextConfig):
        tp = (
            ("attention heads", text.num_attention_heads, False),
            ("KV heads", text.kv_heads, True),
            ("moe_intermediate_size", text.expert_width, False),
        )
        return moe_geometry(text, spec.architecture, tp_constraints=(*tp, vision_tp(v)), **extra)
    return llama.decoder_geometry(
        text, spec.architecture, tp_constraints=(*llama.lm_tp_constraints(text), vision_tp(v)), **extra
    )


def vision_tp(v: Qwen3VLVisionConfig) -> tuple[str, int, bool]:
    return ("vision tower attention heads", v.num_heads, False)


def smart_resize(spec: AnySpec, height: int, width: int) -> tuple[int, int]:
    """transformers' smart_resize (models/qwen2_vl/image_processing_qwen2_vl.py) with the checkpoint's
    patch and merge sizes and the spec's pixel bounds."""
    return resize(spec.config.vision_config, spec.preprocessor, height, width)


def resize(v: Qwen3VLVisionConfig, pp: Preprocessor, height: int, width: int) -> tuple[int, int]:
    """smart_resize of one image for a vision tower `v` and pixel bounds `pp` (also Qwen3.5's, archs/qwen3_5_vl.py)."""
    factor = v.patch_size * v.spatial_merge_size
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > pp.max_pixels:
        beta = math.sqrt((height * width) / pp.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < pp.min_pixels:
        beta = math.sqrt(pp.min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def vision_patches(v: Qwen3VLVisionConfig, pp: Preprocessor, image_size: tuple[int, int] | None) -> int:
    """ViT patches of one image (before the 2x2 merge); no size: the largest the preprocessor lets through."""
    if image_size is None:
        side = v.patch_size * v.spatial_merge_size
        return (pp.max_pixels // (side * side)) * v.spatial_merge_size**2
    h, w = resize(v, pp, *image_size)
    return (h // v.patch_size) * (w // v.patch_size)


def _patches(spec: AnySpec, image_size: tuple[int, int] | None) -> int:
    return vision_patches(spec.config.vision_config, spec.preprocessor, image_size)


def image_tokens(spec: AnySpec, image_size: tuple[int, int] | None) -> int:
    """LLM tokens of one image: its ViT patches / spatial_merge_size^2 (Qwen3VLProcessor: grid_thw.prod()
    // merge_size^2)."""
    return _patches(spec, image_size) // spec.config.vision_config.spatial_merge_size**2


def vision_stage(v: Qwen3VLVisionConfig, pp: Preprocessor, images: int, image_size: tuple[int, int] | None) -> Stage:
    """The ViT pass: one packed sequence of every image's patches; attention is per image (cu_seqlens) through
    SDPA."""
    n = vision_patches(v, pp, image_size)
    h = v.hidden_size
    return Stage(n * images, h, h, h, v.intermediate_size, False, v.num_heads, n, per_input=True)


def stages(
    spec: AnySpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    text = _text(spec)
    out = [moe_stage(text, context) if isinstance(text, Qwen3VLMoeTextConfig) else llama.lm_stage(text, context)]
    if images:
        out.append(vision_stage(spec.config.vision_config, spec.preprocessor, images, image_size))
    return out


def cross_source_tokens(spec: AnySpec, images: int, encoder_tokens: int) -> int:
    return 0


# Qwen3VLVisionConfig.attribute_map
_VISION_ALIASES = {"num_attention_heads": "num_heads", "num_hidden_layers": "depth"}
_VISION_DEFAULTS = {
    "depth": 27,
    "hidden_size": 1152,
    "hidden_act": "gelu_pytorch_tanh",
    "intermediate_size": 4304,
    "num_heads": 16,
    "in_channels": 3,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 3584,
    "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [8, 16, 24],
}
_TEXT = ConfigClass(
    "Qwen3VLTextConfig",
    "qwen3_vl/configuration_qwen3_vl.py",
    Qwen3VLTextConfig,
    {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 128,
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "attention_bias": False,
    },
)
_MOE_TEXT = ConfigClass(
    "Qwen3VLMoeTextConfig",
    "qwen3_vl_moe/configuration_qwen3_vl_moe.py",
    Qwen3VLMoeTextConfig,
    {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "attention_bias": False,
        "decoder_sparse_step": 1,
        "moe_intermediate_size": 1408,
        "num_experts_per_tok": 4,
        "num_experts": 60,
        "mlp_only_layers": [],
    },
    copied=("head_dim",),
    none_is_default=("mlp_only_layers",),
    aliases={"num_local_experts": "num_experts"},  # Qwen3VLMoeTextConfig.attribute_map
)
CONFIG_JSON = {
    "qwen3_vl": ConfigClass(
        "Qwen3VLConfig",
        "qwen3_vl/configuration_qwen3_vl.py",
        Qwen3VLConfig,
        {
            "text_config": _TEXT,
            "vision_config": ConfigClass(
                "Qwen3VLVisionConfig",
                "qwen3_vl/configuration_qwen3_vl.py",
                Qwen3VLVisionConfig,
                _VISION_DEFAULTS,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
    "qwen3_vl_moe": ConfigClass(
        "Qwen3VLMoeConfig",
        "qwen3_vl_moe/configuration_qwen3_vl_moe.py",
        Qwen3VLMoeConfig,
        {
            "text_config": _MOE_TEXT,
            "vision_config": ConfigClass(
                "Qwen3VLMoeVisionConfig",
                "qwen3_vl_moe/configuration_qwen3_vl_moe.py",
                Qwen3VLVisionConfig,
                _VISION_DEFAULTS,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
}
# Qwen3VLModel's names: model.visual (patch_embed, pos_embed, blocks, merger, deepstack_merger_list),
# model.language_model (a Qwen3 / Qwen3-MoE text model), lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?visual\.(?:patch_embed|pos_embed|blocks)\..+", "vision_tower"),
    (r"(?:model\.)?visual\.(?:merger|deepstack_merger_list)\..+", "projector"),
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
    weight_rules={"qwen3_vl": WEIGHT_RULES, "qwen3_vl_moe": WEIGHT_RULES},
    gguf_architectures=("qwen3vl", "qwen3vlmoe"),
)
