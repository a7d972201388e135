"""The SigLIP vision tower (transformers models/siglip/modeling_siglip.py SiglipVisionModel), shared by
Gemma 3 and PaliGemma: a biased patch convolution, learned positions for every patch (no class
token), pre-LN layers with biased q/k/v/out and fc1/fc2, a post-LayerNorm, and (vision_use_head) an
attention-pooling head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ..records import model_validator
from .base import Channels, Heads, Hidden, ImageSide, Intermediate, Layers, Stage, Strict, Tensor, linear, norm
from .family import ConfigClass, ConfigReading


class SiglipVisionConfig(Strict):
    """SiglipVisionConfig fields (transformers models/siglip/configuration_siglip.py), its defaults."""

    model_type: Literal["siglip_vision_model"] | None = None
    hidden_size: Hidden = 768
    intermediate_size: Intermediate = 3072
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 12
    num_channels: Channels = 3
    image_size: ImageSide = 224
    patch_size: ImageSide = 16
    hidden_act: Literal["gelu_pytorch_tanh"] = "gelu_pytorch_tanh"
    vision_use_head: bool = True

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @model_validator(mode="after")
    def _check(self) -> SiglipVisionConfig:
        # image_size need not be a multiple of patch_size: the stride-patch_size convolution drops the
        # remainder and SiglipVisionEmbeddings has (image_size // patch_size)^2 positions (so400m: 384 px,
        # patch 14 -> 27 x 27 = 729)
        if self.patch_size > self.image_size:
            raise ValueError(f"patch_size ({self.patch_size}) is larger than image_size ({self.image_size})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")
        return self


def tensors(v: SiglipVisionConfig, comp: str = "vision_tower") -> Iterator[Tensor]:
    h = v.hidden_size
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield Tensor("vision.patch_embd.bias", comp, (h,), "bias")
    yield Tensor("vision.position_embd.weight", comp, (v.patches, h), "pos_embd")
    for i in range(v.num_hidden_layers):
        p = f"vision.{i}"
        yield from norm(f"{p}.ln1", comp, h, i, bias=True)
        yield from linear(f"{p}.attn_k", comp, h, h, "attn_k", True, i)
        yield from linear(f"{p}.attn_v", comp, h, h, "attn_v", True, i)
        yield from linear(f"{p}.attn_q", comp, h, h, "attn_q", True, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", True, i)
        yield from norm(f"{p}.ln2", comp, h, i, bias=True)
        yield from linear(f"{p}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
    yield from norm("vision.post_ln", comp, h, None, bias=True)
    if v.vision_use_head:
        # SiglipMultiheadAttentionPoolingHead: a probe vector, torch MultiheadAttention (fused in_proj
        # with bias, out_proj with bias), a LayerNorm and an MLP.
        yield Tensor("vision.head.probe", comp, (1, 1, h), "other")
        yield from linear("vision.head.attn_qkv", comp, 3 * h, h, "attn_qkv", True, None)
        yield from linear("vision.head.attn_output", comp, h, h, "attn_output", True, None)
        yield from norm("vision.head.ln", comp, h, None, bias=True)
        yield from linear("vision.head.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, None)
        yield from linear("vision.head.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, None)


def stage(v: SiglipVisionConfig, images: int) -> Stage:
    """The tower over `images` images at once (SDPA: no whole score matrix)."""
    h = v.hidden_size
    return Stage(
        v.patches * images, h, h, h, v.intermediate_size, False, v.num_attention_heads, v.patches, per_input=True
    )


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
SIGLIP_VISION = ConfigClass(
    "SiglipVisionConfig",
    "siglip/configuration_siglip.py",
    SiglipVisionConfig,
    {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "vision_use_head": True,
    },
)


def note_vision_use_head(reading: ConfigReading, vision: Mapping[str, Any]) -> None:
    """Said when a composite's SigLIP vision_config takes SiglipVisionConfig's default head (Gemma 3, PaliGemma)."""
    if "config.vision_config.vision_use_head" in reading.sources and vision.get("vision_use_head") is True:
        reading.notes.append(
            "vision_config.vision_use_head: not in config.json, so SiglipVisionConfig's default (true) adds "
            "an attention-pooling head, which Gemma 3 and PaliGemma checkpoints do not store."
        )
