"""PaliGemma / PaliGemma 2 (PaliGemmaForConditionalGeneration): a SigLIP tower, one biased linear
projector, and a Gemma (1) or Gemma 2 language model whose input starts with the image's
(image_size / patch_size)^2 tokens (PaliGemmaConfig.__post_init__: text_config.num_image_tokens),
so they sit in the self-attention cache; the image + prefix attend bidirectionally (no KV effect)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from . import llama, siglip
from .base import Geometry, Hidden, ModelSpecBase, Stage, Strict, Tensor, TokenId, linear
from .family import ConfigClass, ConfigReading, Family
from .gemma import GEMMA, GemmaConfig
from .gemma2 import GEMMA2, Gemma2Config
from .siglip import SIGLIP_VISION, SiglipVisionConfig

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


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
PALIGEMMA = ConfigClass(
    "PaliGemmaConfig",
    "paligemma/configuration_paligemma.py",
    PaliGemmaConfig,
    {
        "projection_dim": 2048,
        "tie_word_embeddings": True,
    },
    copied=("image_token_index",),
)
# The sub-configs' init_kwargs (used when config.json has no text_config / vision_config at all).
_PALIGEMMA_VISION_INIT = {
    "intermediate_size": 4096,
    "hidden_size": 1152,
    "patch_size": 14,
    "image_size": 224,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "vision_use_head": False,
}
_PALIGEMMA_TEXT_INIT = {
    "hidden_size": 2048,
    "num_hidden_layers": 18,
    "intermediate_size": 16384,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "vocab_size": 257152,
}


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """PaliGemmaConfig: a Gemma or Gemma 2 text_config, a SigLIP vision_config (SubConfigSpec.create_subconfig)."""
    text = reading.sub_config(
        reading.sub(cfg, "text_config"),
        "text_config",
        "gemma",
        {"gemma": GEMMA, "gemma2": GEMMA2},
        _PALIGEMMA_TEXT_INIT,
        PALIGEMMA,
    )
    vision = reading.sub_config(
        reading.sub(cfg, "vision_config"),
        "vision_config",
        "siglip_vision_model",
        {"siglip_vision_model": SIGLIP_VISION},
        _PALIGEMMA_VISION_INIT,
        PALIGEMMA,
    )
    out = {"text_config": text, "vision_config": vision, **reading.block(cfg, PALIGEMMA, "config")}
    siglip.note_vision_use_head(reading, vision)
    if "projection_dim" not in cfg and text.get("hidden_size", 2048) != 2048:
        reading.notes.append(
            "projection_dim: not in config.json, PaliGemmaConfig's default 2048 is not the text model's "
            f"width ({text.get('hidden_size')}); the projector would not fit the language model."
        )
    return out


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    weight_rules={
        "paligemma": llama.LLAVA_WEIGHT_RULES
    },  # LLaVA's names: vision_tower.*, multi_modal_projector.*, language_model.*,
    read_config={"paligemma": read_config},
)
