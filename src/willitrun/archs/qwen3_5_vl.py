"""Qwen3.5 as its checkpoints ship (Qwen/Qwen3.5-*: `model_type` qwen3_5 / qwen3_5_moe,
Qwen3_5ForConditionalGeneration / Qwen3_5MoeForConditionalGeneration): Qwen3-VL's vision tower without
DeepStack (archs/qwen3_vl.py) feeding merged patches into Qwen3.5's hybrid language model (archs/qwen3_5.py).

transformers 5.23 models/qwen3_5/modeling_qwen3_5.py (qwen3_5_moe the same, with Qwen3_5MoeTextModel):
- Qwen3_5VisionModel (`model.visual`): Qwen3VLVisionModel's patch_embed (biased Conv3d), pos_embed (learned,
  bilinearly resampled), `depth` blocks and one `merger` (LayerNorm over hidden_size, fc1 4h -> 4h,
  fc2 4h -> out_hidden_size); no deepstack_merger_list. Qwen3_5VisionConfig has no deepstack_visual_indexes:
  the Hub files write `[]`, which the import drops as transformers never reads it.
- `model.language_model`: Qwen3_5TextModel / Qwen3_5MoeTextModel (Gated DeltaNet and gated full attention).
- Only the top-level `tie_word_embeddings` ties lm_head (Qwen3_5ForConditionalGeneration._tied_weights_keys;
  text_config's flag is not read: measured, transformers 5.23, as for Qwen3-VL).
- The checkpoints' mtp.* tensors (a multi-token-prediction layer) are not built (_keys_to_ignore_on_load_unexpected).

Image tokens: Qwen2VLImageProcessor (models/auto/image_processing_auto.py: qwen3_5, qwen3_5_moe) and
Qwen3VLProcessor (processing_auto.py), as for Qwen3-VL: each 2x2 group of 16-pixel patches is one LLM token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import Field
from .base import Geometry, LayerIndex, ModelSpecBase, Stage, Strict, Tensor, merger_width_warning
from .decoder import MTP_IGNORED
from .family import ConfigClass, Family
from .qwen2_vl import Preprocessor
from .qwen3_5 import (
    MOE_TEXT_CONFIG_CLASS,
    TEXT_CONFIG_CLASS,
    Qwen3_5MoeTextConfig,
    Qwen3_5TextConfig,
    text_geometry,
    text_tensors,
)
from .qwen3_next import hybrid_stage
from .qwen3_vl import (
    _VISION_ALIASES,
    _VISION_DEFAULTS,
    WEIGHT_RULES,
    Qwen3VLVisionConfig,
    vision_patches,
    vision_stage,
    vision_tensors,
    vision_tp,
)


class Qwen3_5VisionConfig(Qwen3VLVisionConfig):
    """Qwen3_5VisionConfig / Qwen3_5MoeVisionConfig fields: Qwen3-VL's, without DeepStack mergers."""

    deepstack_visual_indexes: list[LayerIndex] = Field(default=[], max_length=0)


class Qwen3_5Config(Strict):
    """Qwen3_5Config (configuration_qwen3_5.py): text_config and vision_config nested."""

    text_config: Qwen3_5TextConfig
    vision_config: Qwen3_5VisionConfig
    tie_word_embeddings: bool = False


class Qwen3_5MoeConfig(Strict):
    """Qwen3_5MoeConfig (configuration_qwen3_5_moe.py)."""

    text_config: Qwen3_5MoeTextConfig
    vision_config: Qwen3_5VisionConfig
    tie_word_embeddings: bool = False


class Qwen3_5Spec(ModelSpecBase):
    architecture: Literal["qwen3_5"]
    config: Qwen3_5Config
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size, "3584 and 4096")


class Qwen3_5MoeSpec(ModelSpecBase):
    architecture: Literal["qwen3_5_moe"]
    config: Qwen3_5MoeConfig
    preprocessor: Preprocessor = Preprocessor()

    def unusable_values(self) -> list[str]:
        return _unusable(self.config.vision_config, self.config.text_config.hidden_size, "3584 and 2048")


AnySpec = Qwen3_5Spec | Qwen3_5MoeSpec


def _unusable(v: Qwen3_5VisionConfig, text_hidden: int, defaults: str) -> list[str]:
    return merger_width_warning("out_hidden_size", v.out_hidden_size, text_hidden, defaults=defaults)


def _text(spec: AnySpec) -> Qwen3_5TextConfig | Qwen3_5MoeTextConfig:
    """text_config with the top-level flag as its tie (the only one transformers reads)."""
    c = spec.config
    t = c.text_config
    return (
        t
        if t.tie_word_embeddings == c.tie_word_embeddings
        else t.model_copy(update={"tie_word_embeddings": c.tie_word_embeddings})
    )


def tensors(spec: AnySpec) -> Iterator[Tensor]:
    yield from vision_tensors(spec.config.vision_config)
    yield from text_tensors(_text(spec))


def geometry(spec: AnySpec) -> Geometry:
    g = text_geometry(_text(spec), spec.architecture)
    return replace(
        g,
        tp_constraints=(*g.tp_constraints, vision_tp(spec.config.vision_config)),
        no_cross_reason="Qwen3.5 has no cross-attention: image tokens sit in the self-attention context",
        takes_images=True,
        image_size_option=True,
        refusals={
            "ollama": "ollama's Qwen3.5 vision runner is not modelled yet",
            # llama.cpp loads the text GGUF (qwen35 / qwen35moe) and an mmproj; clip.cpp's graph and the mmproj file
            # are modelled for LLaVA, Gemma 3, Qwen2(.5)-VL and Mistral 3 only (engines/llamacpp.py)
            "llama.cpp": "llama.cpp's Qwen3.5 mmproj is not modelled yet",
        },
    )


def image_tokens(spec: AnySpec, image_size: tuple[int, int] | None) -> int:
    """LLM tokens of one image: its ViT patches / spatial_merge_size^2 (Qwen3VLProcessor)."""
    v = spec.config.vision_config
    return vision_patches(v, spec.preprocessor, image_size) // v.spatial_merge_size**2


def stages(
    spec: AnySpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    out = [hybrid_stage(_text(spec), context)]
    if images:
        out.append(vision_stage(spec.config.vision_config, spec.preprocessor, images, image_size))
    return out


def cross_source_tokens(spec: AnySpec, images: int, encoder_tokens: int) -> int:
    return 0


_VISION = {k: v for k, v in _VISION_DEFAULTS.items() if k != "deepstack_visual_indexes"}
CONFIG_JSON = {
    "qwen3_5": ConfigClass(
        "Qwen3_5Config",
        "qwen3_5/configuration_qwen3_5.py",
        Qwen3_5Config,
        {
            "text_config": TEXT_CONFIG_CLASS,
            "vision_config": ConfigClass(
                "Qwen3_5VisionConfig",
                "qwen3_5/configuration_qwen3_5.py",
                Qwen3_5VisionConfig,
                _VISION,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
    "qwen3_5_moe": ConfigClass(
        "Qwen3_5MoeConfig",
        "qwen3_5_moe/configuration_qwen3_5_moe.py",
        Qwen3_5MoeConfig,
        {
            "text_config": MOE_TEXT_CONFIG_CLASS,
            "vision_config": ConfigClass(
                "Qwen3_5MoeVisionConfig",
                "qwen3_5_moe/configuration_qwen3_5_moe.py",
                Qwen3_5VisionConfig,
                _VISION,
                aliases=_VISION_ALIASES,
            ),
            "tie_word_embeddings": False,
        },
    ),
}


FAMILY: Family[Any] = Family(
    __name__,
    {"qwen3_5": Qwen3_5Spec, "qwen3_5_moe": Qwen3_5MoeSpec},
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    config_json=CONFIG_JSON,
    # Qwen3_5Model's names are Qwen3VLModel's (model.visual, model.language_model, lm_head)
    # ... and the checkpoints' mtp.* are not built (Qwen3_5ForConditionalGeneration: [r"^mtp.*"])
    weight_rules=dict.fromkeys(("qwen3_5", "qwen3_5_moe"), (MTP_IGNORED, *WEIGHT_RULES)),
    # llama.cpp's text GGUF of a Qwen3.5 checkpoint is qwen35 / qwen35moe, which archs/qwen3_5.py reads
    gguf_architectures=(),
)
