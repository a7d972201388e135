"""GLM-4.1V and GLM-4.5V (Glm4vForConditionalGeneration, Glm4vMoeForConditionalGeneration): a native-resolution
ViT whose 2x2-merged patches become tokens of a GLM-4 (or GLM-4.5 MoE) language model's input, and so of its
self-attention cache (no cross-attention).

transformers 5.23 models/glm4v/modeling_glm4v.py, Glm4vVisionModel (`model.visual`):
- embeddings.position_embedding: (image_size / patch_size)^2 learned positions (bicubically resampled per image);
- patch_embed.proj: a Conv3d over temporal_patch_size x patch x patch with a bias;
- `depth` blocks: RMSNorm norm1 / norm2, attn.qkv (biased when attention_bias) and attn.proj (no bias), and a
  gated MLP whose inner width is out_hidden_size (Glm4VisionMlp: intermediate_size = config.out_hidden_size);
- post_conv_layernorm and post_layernorm (RMSNorms), `downsample` (a biased Conv2d hidden -> out_hidden_size over
  spatial_merge_size^2 patches) and `merger` (proj, a LayerNorm with a bias, a gated MLP of intermediate_size).
The vision tower here is embeddings, patch_embed, the blocks and the two norms; the projector is the downsample
and the merger. The language model is GLM-4's layer (biased q/k/v, one fused gate_up, four norms: archs/glm4.py)
or GLM-4.5's MoE (archs/glm4_moe.py). lm_head is tied when the top-level tie_word_embeddings is set, or when
text_config carries it (Glm4vConfig.__post_init__ forwards a pre-v5 text_config flag).

Image tokens (models/glm4v/image_processing_glm4v.py smart_resize): both sides become multiples of
patch_size x merge_size (28) with 2 x H x W (an image counts temporal_patch_size frames) between the
processor's shortest_edge (112 x 112) and longest_edge (28 x 28 x 15000) pixels; each 2x2 group of 14-pixel
patches is one token.
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
from .family import ConfigClass, Family, WeightRules
from .glm4_moe import Glm4MoeConfig
from .llama import Anatomy, DecoderConfig, gated_mlp
from .mixtral import moe_geometry
from .moe import moe_decoder_lm, moe_stage

ARCHITECTURES = ("glm4v", "glm4v_moe")
STAGES_TAKE_IMAGE_SIZE = True

# transformers 5.23 Glm4vImageProcessor.size: {"shortest_edge": 112 * 112, "longest_edge": 28 * 28 * 15000}
DEFAULT_MIN_PIXELS = 112 * 112
DEFAULT_MAX_PIXELS = 28 * 28 * 15000
Pixels = Annotated[int, Field(gt=0, le=L.MAX_IMAGE_SIDE * L.MAX_IMAGE_SIDE)]


class Glm4vTextConfig(DecoderConfig):
    """Glm4vTextConfig fields (configuration_glm4v.py): GLM-4's layer, head_dim hidden_size // heads (Glm4vTextAttention)."""

    model_type: Literal["glm4v_text"] | None = None
    hidden_act: Literal["silu"] = "silu"

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=True, fused_gate_up=True, sandwich_norms=True)


class Glm4vMoeTextConfig(Glm4MoeConfig):
    """Glm4vMoeTextConfig fields (models/glm4v_moe/configuration_glm4v_moe.py): GLM-4.5's MoE decoder,
    attention_bias true by default, no q/k norms (use_qk_norm is not read)."""

    model_type: Literal["glm4v_moe_text"] | None = None  # type: ignore[assignment]
    attention_bias: bool = True

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias)  # Glm4vMoeTextAttention has no q/k norms (no use_qk_norm)


class Glm4vVisionConfig(Strict):
    """Glm4vVisionConfig / Glm4vMoeVisionConfig fields (the same)."""

    model_type: Literal["glm4v", "glm4v_moe", "glm4v_vision", "glm4v_moe_vision"] | None = None
    depth: Layers = 24
    hidden_size: Hidden = 1536
    hidden_act: Literal["silu", "gelu", "gelu_pytorch_tanh"] = "silu"
    attention_bias: bool = False
    num_heads: Heads = 12
    in_channels: Channels = 3
    image_size: ImageSide = 336
    patch_size: ImageSide = 14
    spatial_merge_size: ImageSide = 2
    temporal_patch_size: ImageSide = 2
    out_hidden_size: Hidden = 4096
    intermediate_size: Intermediate = 13696

    @model_validator(mode="after")
    def _check(self) -> Glm4vVisionConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError("vision_config.hidden_size is not a multiple of vision_config.num_heads")
        return self


class Preprocessor(Strict):
    """preprocessor_config.json's size (Glm4vImageProcessor: shortest_edge / longest_edge, in pixels)."""

    min_pixels: Pixels = DEFAULT_MIN_PIXELS
    max_pixels: Pixels = DEFAULT_MAX_PIXELS

    @model_validator(mode="after")
    def _check(self) -> Preprocessor:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels is above max_pixels")
        return self


class Glm4vConfig(Strict):
    text_config: Glm4vTextConfig
    vision_config: Glm4vVisionConfig
    tie_word_embeddings: bool = False


class Glm4vMoeConfig(Strict):
    text_config: Glm4vMoeTextConfig
    vision_config: Glm4vVisionConfig
    tie_word_embeddings: bool = False


class Glm4vSpec(ModelSpecBase):
    architecture: Literal["glm4v"]
    config: Glm4vConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size)


class Glm4vMoeSpec(ModelSpecBase):
    architecture: Literal["glm4v_moe"]
    config: Glm4vMoeConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size)


def _unusable(v: Glm4vVisionConfig, text_hidden: int) -> list[str]:
    return merger_width_warning("out_hidden_size", v.out_hidden_size, text_hidden)


AnySpec = Glm4vSpec | Glm4vMoeSpec
SPECS: dict[str, type[Any]] = {"glm4v": Glm4vSpec, "glm4v_moe": Glm4vMoeSpec}


def _text(spec: AnySpec) -> Glm4vTextConfig | Glm4vMoeTextConfig:
    """text_config with the tie transformers applies (the top-level flag, or text_config's forwarded to it)."""
    c = spec.config
    t = c.text_config
    tied = c.tie_word_embeddings or t.tie_word_embeddings
    return t if t.tie_word_embeddings == tied else t.model_copy(update={"tie_word_embeddings": tied})


def vision_tensors(v: Glm4vVisionConfig) -> Iterator[Tensor]:
    h, d, comp = v.hidden_size, v.out_hidden_size, "vision_tower"
    n_pos = (v.image_size // v.patch_size) ** 2
    yield Tensor("vision.position_embd.weight", comp, (n_pos, h), "other")
    yield Tensor(
        "vision.patch_embd.weight", comp, (h, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size), "conv"
    )
    yield Tensor("vision.patch_embd.bias", comp, (h,), "bias")
    for i in range(v.depth):
        p = f"vision.{i}"
        yield from norm(f"{p}.ln1", comp, h, i)
        yield from norm(f"{p}.ln2", comp, h, i)
        yield from linear(f"{p}.attn_qkv", comp, 3 * h, h, "attn_qkv", v.attention_bias, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", False, i)
        yield from gated_mlp(p, comp, h, d, False, i)  # Glm4VisionMlp: inner width out_hidden_size
    yield from norm("vision.post_conv_norm", comp, h, None)
    yield from norm("vision.post_norm", comp, h, None)
    m = v.spatial_merge_size
    yield Tensor("projector.downsample.weight", "projector", (d, h, m, m), "conv")
    yield Tensor("projector.downsample.bias", "projector", (d,), "bias")
    yield from linear("projector.merger.proj", "projector", d, d, "projector", False, None)
    yield from norm("projector.merger.norm", "projector", d, None, bias=True)
    for name, out, inp in (
        ("gate", v.intermediate_size, d),
        ("up", v.intermediate_size, d),
        ("down", d, v.intermediate_size),
    ):
        yield from linear(f"projector.merger.ffn_{name}", "projector", out, inp, "projector", False, None)


def tensors(spec: AnySpec) -> Iterator[Tensor]:
    yield from vision_tensors(spec.config.vision_config)
    text = _text(spec)
    if isinstance(text, Glm4vMoeTextConfig):
        yield from moe_decoder_lm(text)
    else:
        yield from llama.decoder_lm(text)


def _vision_tp(v: Glm4vVisionConfig) -> tuple[str, int, bool]:
    return ("vision tower attention heads", v.num_heads, False)


def geometry(spec: AnySpec) -> Geometry:
    text, v = _text(spec), spec.config.vision_config
    extra: dict[str, Any] = {
        "no_cross_reason": "GLM-4V has no cross-attention: image tokens sit in the self-attention context",
        "takes_images": True,
        "image_size_option": True,
        "refusals": {
            "ollama": "ollama's GLM-4V vision runner is not modelled yet",
            # llama.cpp loads the text GGUF and a glm4v mmproj (convert_hf_to_gguf.py); clip.cpp's graph and
            # the mmproj file are modelled for LLaVA, Gemma 3, Qwen2(.5)-VL and Mistral 3 only (engines/llamacpp.py)
            "llama.cpp": "llama.cpp's GLM-4V mmproj (glm4v projector) is not modelled yet",
        },
    }
    if isinstance(text, Glm4vMoeTextConfig):
        tp = (
            ("attention heads", text.num_attention_heads, False),
            ("KV heads", text.kv_heads, True),
            ("moe_intermediate_size", text.expert_width, False),
        )
        # llama.cpp writes the text of Glm4vMoeForConditionalGeneration as glm4moe (convert_hf_to_gguf.py)
        return moe_geometry(
            text, spec.architecture, tp_constraints=(*tp, _vision_tp(v)), gguf_architecture="glm4moe", **extra
        )
    return llama.decoder_geometry(
        text,
        spec.architecture,
        tp_constraints=(*llama.lm_tp_constraints(text), _vision_tp(v)),
        gguf_architecture="glm4",
        **extra,
    )


def smart_resize(spec: AnySpec, height: int, width: int) -> tuple[int, int]:
    """Glm4vImageProcessor's smart_resize for one image (num_frames = temporal_patch_size), with the spec's bounds."""
    v, pp = spec.config.vision_config, spec.preprocessor
    factor, t = v.patch_size * v.spatial_merge_size, v.temporal_patch_size
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(t / t) * t
    if t_bar * h_bar * w_bar > pp.max_pixels:
        beta = math.sqrt((t * height * width) / pp.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < pp.min_pixels:
        beta = math.sqrt(pp.min_pixels / (t * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _patches(spec: AnySpec, image_size: tuple[int, int] | None) -> int:
    v = spec.config.vision_config
    if image_size is None:  # the largest the preprocessor lets through: t x H x W <= max_pixels
        side = v.patch_size * v.spatial_merge_size
        return (spec.preprocessor.max_pixels // (v.temporal_patch_size * side * side)) * v.spatial_merge_size**2
    h, w = smart_resize(spec, *image_size)
    return (h // v.patch_size) * (w // v.patch_size)


def image_tokens(spec: AnySpec, image_size: tuple[int, int] | None) -> int:
    """Glm4vProcessor: image_grid_thw.prod() // merge_size^2 tokens per image."""
    return _patches(spec, image_size) // spec.config.vision_config.spatial_merge_size**2


def stages(
    spec: AnySpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    text = _text(spec)
    out = [moe_stage(text, context) if isinstance(text, Glm4vMoeTextConfig) else llama.lm_stage(text, context)]
    if images:
        v = spec.config.vision_config
        n = _patches(spec, image_size)
        h = v.hidden_size
        out.append(Stage(n * images, h, h, h, v.out_hidden_size, True, v.num_heads, n, per_input=True))
    return out


def cross_source_tokens(spec: AnySpec, images: int, encoder_tokens: int) -> int:
    return 0


# Glm4vVisionConfig.attribute_map
_VISION_ALIASES = {"num_attention_heads": "num_heads", "num_hidden_layers": "depth"}
_VISION_DEFAULTS = {
    "depth": 24,
    "hidden_size": 1536,
    "hidden_act": "silu",
    "attention_bias": False,
    "num_heads": 12,
    "in_channels": 3,
    "image_size": 336,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 4096,
    "intermediate_size": 13696,
}
CONFIG_JSON = {
    "glm4v": ConfigClass(
        "Glm4vConfig",
        "glm4v/configuration_glm4v.py",
        Glm4vConfig,
        {
            "text_config": ConfigClass(
                "Glm4vTextConfig",
                "glm4v/configuration_glm4v.py",
                Glm4vTextConfig,
                {
                    "vocab_size": 151552,
                    "hidden_size": 4096,
                    "intermediate_size": 13696,
                    "num_hidden_layers": 40,
                    "num_attention_heads": 32,
                    "num_key_value_heads": 2,
                    "hidden_act": "silu",
                    "max_position_embeddings": 32768,
                },
                copied=("tie_word_embeddings",),
            ),
            "vision_config": ConfigClass(
                "Glm4vVisionConfig",
                "glm4v/configuration_glm4v.py",
                Glm4vVisionConfig,
                _VISION_DEFAULTS,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
    "glm4v_moe": ConfigClass(
        "Glm4vMoeConfig",
        "glm4v_moe/configuration_glm4v_moe.py",
        Glm4vMoeConfig,
        {
            "text_config": ConfigClass(
                "Glm4vMoeTextConfig",
                "glm4v_moe/configuration_glm4v_moe.py",
                Glm4vMoeTextConfig,
                {
                    "vocab_size": 151424,
                    "hidden_size": 4096,
                    "intermediate_size": 10944,
                    "num_hidden_layers": 46,
                    "num_attention_heads": 96,
                    "num_key_value_heads": 8,
                    "hidden_act": "silu",
                    "max_position_embeddings": 65536,
                    "tie_word_embeddings": False,
                    "attention_bias": True,
                    "moe_intermediate_size": 1408,
                    "num_experts_per_tok": 8,
                    "n_shared_experts": 1,
                    "n_routed_experts": 128,
                    "first_k_dense_replace": 1,
                },
                copied=("head_dim",),
                aliases={"num_local_experts": "n_routed_experts"},  # Glm4vMoeTextConfig.attribute_map
            ),
            "vision_config": ConfigClass(
                "Glm4vMoeVisionConfig",
                "glm4v_moe/configuration_glm4v_moe.py",
                Glm4vVisionConfig,
                _VISION_DEFAULTS,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
}
# Glm4vModel's names: model.visual (embeddings, patch_embed, blocks, post_conv_layernorm, post_layernorm;
# downsample and merger project into the LM), model.language_model, lm_head
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?visual\.(?:embeddings|patch_embed|blocks|post_conv_layernorm|post_layernorm)\..+", "vision_tower"),
    (r"(?:model\.)?visual\.(?:downsample|merger)\..+", "projector"),
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
    weight_rules={"glm4v": WEIGHT_RULES, "glm4v_moe": WEIGHT_RULES},
)
