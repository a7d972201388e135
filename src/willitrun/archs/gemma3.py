"""Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): Gemma 2's layer plus per-head
RMSNorms of queries and keys (q_norm, k_norm over head_dim), and `sliding_window_pattern - 1` local
layers for each global one (Gemma3TextConfig.__post_init__: layer i slides when
(i + 1) % sliding_window_pattern, pattern 6 unless config.json says otherwise), or `layer_types`.

Gemma 3 with vision (Gemma3ForConditionalGeneration, model_type gemma3): a SigLIP tower whose
(image_size / patch_size)^2 patches are average-pooled to `mm_tokens_per_image` (256) tokens, an
RMSNorm and one projection matrix, placed in the language model's input (self-attention context)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from ..records import Field
from . import llama, siglip
from .base import Geometry, Layers, ModelSpecBase, Positions, Stage, Strict, Tensor, TokenId, norm
from .family import ConfigClass, ConfigReading, Family, GGUFDecoder, GGUFRules, swa_period
from .gemma2 import Gemma2Config, SoftCap
from .llama import LM_WEIGHT_RULES, Anatomy
from .siglip import SIGLIP_VISION, SiglipVisionConfig

ARCHITECTURES = ("gemma3_text", "gemma3")


class Gemma3TextConfig(Gemma2Config):
    """Gemma3TextConfig fields (transformers models/gemma3/configuration_gemma3.py)."""

    model_type: Literal["gemma3_text"] | None = None  # type: ignore[assignment]
    sliding_window_pattern: Layers = 6  # read from config.json's kwargs; layer_types wins when given
    attn_logit_softcapping: SoftCap | None = None
    final_logit_softcapping: SoftCap | None = None
    max_position_embeddings: Positions = 131_072

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True, sandwich_norms=True)

    def _sliding(self, i: int) -> bool:
        return bool((i + 1) % self.sliding_window_pattern)


class Gemma3TextSpec(ModelSpecBase):
    architecture: Literal["gemma3_text"]
    config: Gemma3TextConfig


class Gemma3Config(Strict):
    """Gemma3Config fields (transformers models/gemma3/configuration_gemma3.py)."""

    text_config: Gemma3TextConfig
    vision_config: SiglipVisionConfig
    mm_tokens_per_image: Annotated[int, Field(gt=0, le=1 << 20)] = 256
    image_token_index: TokenId | None = None
    boi_token_index: TokenId | None = None
    eoi_token_index: TokenId | None = None
    tie_word_embeddings: bool = True

    @property
    def pooling_fits(self) -> bool:
        """Whether Gemma3MultiModalProjector's AvgPool2d (kernel = patches per side / tokens per side) turns the
        patches into exactly mm_tokens_per_image tokens. transformers builds the model either way (the pooling
        fails only in a forward pass), so importers/configs.py warns instead of refusing (issue 20)."""
        side = self.vision_config.image_size // self.vision_config.patch_size
        per_side = int(self.mm_tokens_per_image**0.5)
        return per_side * per_side == self.mm_tokens_per_image and side % per_side == 0


class Gemma3Spec(ModelSpecBase):
    architecture: Literal["gemma3"]
    config: Gemma3Config

    def unusable_values(self) -> list[str]:
        """What transformers builds but could not run (importers/configs.py: unusable_values warns, never refuses)."""
        if self.config.pooling_fits:
            return []
        v = self.config.vision_config
        return [
            f"Warning: mm_tokens_per_image ({self.config.mm_tokens_per_image}) is not a square whose side "
            f"divides the {v.image_size // v.patch_size} patches per side: Gemma3MultiModalProjector's "
            "pooling cannot produce it, so images would fail in a forward pass; sized as written."
        ]


SPECS = {"gemma3_text": Gemma3TextSpec, "gemma3": Gemma3Spec}
AnyGemma3 = Gemma3TextSpec | Gemma3Spec


def _text(spec: AnyGemma3) -> Gemma3TextConfig:
    return spec.config.text_config if isinstance(spec, Gemma3Spec) else spec.config


def _tied(spec: AnyGemma3) -> bool:
    # Gemma3ForConditionalGeneration ties lm_head to the text embedding under the top-level flag
    return spec.config.tie_word_embeddings if spec.architecture == "gemma3" else _text(spec).tie_word_embeddings


def tensors(spec: AnyGemma3) -> Iterator[Tensor]:
    if spec.architecture == "gemma3":
        c = spec.config
        yield from siglip.tensors(c.vision_config)
        # Gemma3MultiModalProjector: one (vision hidden x text hidden) matrix and an RMSNorm
        yield Tensor(
            "projector.mm_input_projection",
            "projector",
            (c.vision_config.hidden_size, c.text_config.hidden_size),
            "projector",
        )
        yield from norm("projector.mm_soft_emb_norm", "projector", c.vision_config.hidden_size, None)
    yield from llama.decoder_lm(_text(spec), tied=_tied(spec))


def geometry(spec: AnyGemma3) -> Geometry:
    # llama.cpp names the architecture gemma3 (LLM_ARCH_GEMMA3) and keeps its local layers at the window
    if spec.architecture == "gemma3_text":
        return llama.decoder_geometry(spec.config, spec.architecture, llamacpp_swa=True, gguf_architecture="gemma3")
    c = spec.config
    return llama.decoder_geometry(
        c.text_config,
        spec.architecture,
        llamacpp_swa=True,
        gguf_architecture="gemma3",
        tied_embeddings=_tied(spec),
        no_cross_reason="Gemma 3 has no cross-attention: image tokens sit in the self-attention context",
        tp_constraints=(
            *llama.lm_tp_constraints(c.text_config),
            ("vision tower attention heads", c.vision_config.num_attention_heads, False),
        ),
        takes_images=True,
    )


def stages(spec: AnyGemma3, context: int, source: int, images: int) -> list[Stage]:
    out = [llama.lm_stage(_text(spec), context)]
    if spec.architecture == "gemma3" and images:
        out.append(siglip.stage(spec.config.vision_config, images))
    return out


def image_tokens(spec: AnyGemma3, image_size: tuple[int, int] | None) -> int:
    """mm_tokens_per_image per image (Gemma3Processor, pan-and-scan off: its default). The processor
    also writes a begin- and end-of-image token and blank lines around them, which are text."""
    return spec.config.mm_tokens_per_image if spec.architecture == "gemma3" else 0


cross_source_tokens = llama.cross_source_tokens


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
_GEMMA_ACT = ("hidden_act", "hidden_activation")
GEMMA3_TEXT = ConfigClass(
    "Gemma3TextConfig",
    "gemma3/configuration_gemma3.py",
    Gemma3TextConfig,
    {
        "vocab_size": 262_208,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131_072,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "sliding_window": 4096,
        "query_pre_attn_scalar": 256,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
    },
    copied=(*_GEMMA_ACT, "layer_types", "sliding_window_pattern"),
)  # pattern: a kwarg, 6 when absent
GEMMA3 = ConfigClass(
    "Gemma3Config",
    "gemma3/configuration_gemma3.py",
    Gemma3Config,
    {
        "mm_tokens_per_image": 256,
        "tie_word_embeddings": True,
    },
    copied=("image_token_index", "boi_token_index", "eoi_token_index"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """Gemma3Config: its text_config is always a Gemma3TextConfig (sub_configs_defaults names the class itself), its
    vision_config a SigLIP tower; each built as SubConfigSpec.create_subconfig does."""
    text_cfg = reading.sub(cfg, "text_config")
    if text_cfg is not None:
        text_cfg = {**text_cfg, "model_type": "gemma3_text"}
    text = reading.sub_config(text_cfg, "text_config", "gemma3_text", {"gemma3_text": GEMMA3_TEXT}, {}, GEMMA3)
    vision = reading.sub_config(
        reading.sub(cfg, "vision_config"),
        "vision_config",
        "siglip_vision_model",
        {"siglip_vision_model": SIGLIP_VISION},
        {},
        GEMMA3,
    )
    out = {"text_config": text, "vision_config": vision, **reading.block(cfg, GEMMA3, "config")}
    siglip.note_vision_use_head(reading, vision)
    return out


FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    # llama.cpp calls the language model gemma3 (LLM_ARCH_GEMMA3): set_swa_pattern(6), n_swa from the file
    gguf_architectures=("gemma3",),
    gguf_rules={
        "gemma3": GGUFRules(
            swa=swa_period(6),
            # Gemma 3's local:global pattern (5:1) is not in the file: llama.cpp hard-codes it (llama-model.cpp
            # LLM_ARCH_GEMMA3 set_swa_pattern(6)), as Gemma3TextConfig's default does
            decoder=GGUFDecoder(
                "gemma3_text",
                explicit_head_dim=True,
                flags={"attention_bias": "blk.0.attn_q.bias"},
                window="optional",
                floats={
                    "attn_logit_softcapping": "attn_logit_softcapping",
                    "final_logit_softcapping": "final_logit_softcapping",
                },
                note=(
                    "A Gemma 3 GGUF holds the language model only: a vision checkpoint's SigLIP tower is a separate "
                    "mmproj file, not counted here (the catalog's gemma-3-4b / -12b / -27b size it with llama.cpp)."
                ),
            ),
        )
    },
    weight_rules={
        "gemma3_text": LM_WEIGHT_RULES,
        "gemma3": llama.LLAVA_WEIGHT_RULES,
    },  # Gemma 3 stores its towers as LLaVA,
    config_json={"gemma3_text": GEMMA3_TEXT},
    read_config={"gemma3": read_config},
)
