"""PaliGemma / PaliGemma 2 (PaliGemmaForConditionalGeneration): a SigLIP tower, one biased linear
projector, and a Gemma (1) or Gemma 2 language model whose input starts with the image's
(image_size / patch_size)^2 tokens (PaliGemmaConfig.__post_init__: text_config.num_image_tokens),
so they sit in the self-attention cache; the image + prefix attend bidirectionally (no KV effect)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from . import llama, llava, siglip
from .base import Geometry, Hidden, ModelSpecBase, Stage, Strict, Tensor, TokenId, linear
from .family import Family
from .gemma import GemmaConfig
from .gemma2 import Gemma2Config
from .siglip import SiglipVisionConfig

ARCHITECTURES = ("paligemma",)


class PaliGemmaConfig(Strict):
    """PaliGemmaConfig fields (transformers models/paligemma/configuration_paligemma.py). Read the shapes
    from text_config: PaliGemma 2's files keep PaliGemma 1's top-level hidden_size / num_hidden_layers,
    which no module reads (left out here)."""

    text_config: Gemma2Config | GemmaConfig
    vision_config: SiglipVisionConfig
    projection_dim: Hidden = 2048  # the projector's output: must be text_config.hidden_size
    image_token_index: TokenId | None = None
    tie_word_embeddings: bool = True


class PaliGemmaSpec(ModelSpecBase):
    architecture: Literal["paligemma"]
    config: PaliGemmaConfig


SPECS = {"paligemma": PaliGemmaSpec}


def tensors(spec: PaliGemmaSpec) -> Iterator[Tensor]:
    c = spec.config
    yield from siglip.tensors(c.vision_config)
    yield from linear(
        "projector.linear", "projector", c.projection_dim, c.vision_config.hidden_size, "projector", True, None
    )
    yield from llama.decoder_lm(c.text_config, tied=c.tie_word_embeddings)


def geometry(spec: PaliGemmaSpec) -> Geometry:
    c = spec.config
    gemma2 = isinstance(c.text_config, Gemma2Config)
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        tied_embeddings=c.tie_word_embeddings,
        llamacpp_swa=gemma2,
        no_cross_reason="PaliGemma has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(
            *llama.lm_tp_constraints(c.text_config),
            ("vision tower attention heads", c.vision_config.num_attention_heads, False),
        ),
        takes_images=True,
        refusals={
            "llama.cpp": "llama.cpp has no PaliGemma projector (tools/mtmd/clip.cpp clip_image_build_graph knows no "
            "PaliGemma projector type), so it cannot run the vision part",
            "ollama": "ollama's PaliGemma runner is not modelled yet",
        },
    )


def stages(spec: PaliGemmaSpec, context: int, source: int, images: int) -> list[Stage]:
    out = [llama.lm_stage(spec.config.text_config, context)]
    if images:
        out.append(siglip.stage(spec.config.vision_config, images))
    return out


def image_tokens(spec: PaliGemmaSpec, image_size: tuple[int, int] | None) -> int:
    return spec.config.vision_config.patches


def cross_source_tokens(spec: PaliGemmaSpec, images: int, encoder_tokens: int) -> int:
    return 0


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    weight_rules={
        "paligemma": llava.WEIGHT_RULES
    },  # LLaVA's names: vision_tower.*, multi_modal_projector.*, language_model.*,
)
