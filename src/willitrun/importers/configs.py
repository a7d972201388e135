"""A Hugging Face config.json -> a willitrun model spec.

The spec's `config` block uses the names and nesting of config.json, so importing is mostly
choosing the fields the spec models. A field the file leaves out gets the default transformers
itself applies for that model_type (the tables below, read from transformers v5.23.0 and checked
against it by tests/importers), cited per field in the spec's `sources`; never another model's value.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .. import archs
from ..archs import ARCHITECTURES
from ..archs.bart import BART_FAMILY
from ..archs.base import ID_PATTERN
from ..archs.cohere2 import COHERE2 as COHERE2  # the older families' keys live in their family files
from ..archs.family import TRANSFORMERS_MODELS_URL as TRANSFORMERS_MODELS_URL
from ..archs.family import TRANSFORMERS_VERSION as TRANSFORMERS_VERSION
from ..archs.family import ConfigClass
from ..archs.gemma import GEMMA
from ..archs.gemma2 import GEMMA2
from ..archs.gemma3 import Gemma3Config as _Gemma3Spec
from ..archs.gemma3 import Gemma3TextConfig as _Gemma3TextSpec
from ..archs.granite import GRANITE as GRANITE
from ..archs.idefics3 import Idefics3Config as _Idefics3Spec
from ..archs.idefics3 import Idefics3VisionConfig as _Idefics3VisionSpec
from ..archs.llama import LLAMA, LM_WEIGHT_RULES
from ..archs.llava import CLIP_VISION, clip_vision
from ..archs.llava import TEXT_MODELS as LLAVA_TEXT_MODELS
from ..archs.llava_onevision import DEFAULT_PINPOINTS
from ..archs.llava_onevision import LlavaOnevisionConfig as _LlavaOnevisionSpec
from ..archs.mistral3 import Mistral3Config as _Mistral3Spec
from ..archs.mistral3 import PixtralVisionConfig as _PixtralSpec
from ..archs.paligemma import PaliGemmaConfig as _PaliGemmaSpec
from ..archs.phi3 import PHI3 as PHI3
from ..archs.qwen2 import QWEN2
from ..archs.qwen3 import QWEN3 as QWEN3
from ..archs.siglip import SiglipVisionConfig as _SiglipSpec
from ..archs.starcoder2 import STARCODER2 as STARCODER2
from ..errors import SpecError, UsageError, clip
from ..specs import AnyModelSpec, parse_model_spec

CHECKPOINT_DTYPES = ("float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"float": "float32", "half": "float16", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# issue 11: LLaVA-OneVision (SigLIP tower, Qwen2 text model), Idefics3 and SmolVLM (SigLIP-shaped tower, Llama)
SIGLIP_VISION = ConfigClass(
    "SiglipVisionConfig",
    "siglip/configuration_siglip.py",
    _SiglipSpec,
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
# LlavaOnevisionConfig.sub_configs_defaults["vision_config"].init_kwargs: only when config.json has no vision_config
_ONEVISION_VISION_INIT = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "patch_size": 14,
    "image_size": 384,
    "num_hidden_layers": 26,
    "num_attention_heads": 16,
    "vision_use_head": False,
}
LLAVA_ONEVISION = ConfigClass(
    "LlavaOnevisionConfig",
    "llava_onevision/configuration_llava_onevision.py",
    _LlavaOnevisionSpec,
    {
        "projector_hidden_act": "gelu",
        "multimodal_projector_bias": True,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "tie_word_embeddings": False,
        "image_grid_pinpoints": [list(p) for p in DEFAULT_PINPOINTS],
        "vision_aspect_ratio": "anyres_max_9",
    },
    copied=("image_token_index", "video_token_index", "use_image_newline_parameter"),
    none_is_default=("image_grid_pinpoints",),
)
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
    "Idefics3VisionConfig", "idefics3/configuration_idefics3.py", _Idefics3VisionSpec, _IDEFICS3_VISION_DEFAULTS
)
SMOLVLM_VISION = ConfigClass(
    "SmolVLMVisionConfig", "smolvlm/configuration_smolvlm.py", _Idefics3VisionSpec, _IDEFICS3_VISION_DEFAULTS
)
IDEFICS3 = ConfigClass(
    "Idefics3Config",
    "idefics3/configuration_idefics3.py",
    _Idefics3Spec,
    {"scale_factor": 2, "tie_word_embeddings": False},
    copied=("image_token_id",),
)
SMOLVLM = ConfigClass(
    "SmolVLMConfig",
    "smolvlm/configuration_smolvlm.py",
    _Idefics3Spec,
    {"scale_factor": 2, "tie_word_embeddings": False},
    copied=("image_token_id",),
)
IDEFICS3_FAMILY = {"idefics3": (IDEFICS3, IDEFICS3_VISION), "smolvlm": (SMOLVLM, SMOLVLM_VISION)}
_GEMMA_ACT = ("hidden_act", "hidden_activation")
GEMMA3_TEXT = ConfigClass(
    "Gemma3TextConfig",
    "gemma3/configuration_gemma3.py",
    _Gemma3TextSpec,
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


# issue 11: Gemma 3 (vision), PaliGemma and Mistral 3: a composite config whose sub-configs are built by
# SubConfigSpec (transformers configuration_utils.py create_subconfig): a text_config / vision_config dict
# gets its class's plain defaults, and the class's `init_kwargs` apply only when the dict is absent.
# (SIGLIP_VISION: above, shared with LLaVA-OneVision)
PIXTRAL_VISION = ConfigClass(
    "PixtralVisionConfig",
    "pixtral/configuration_pixtral.py",
    _PixtralSpec,
    {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_channels": 3,
        "image_size": 1024,
        "patch_size": 16,
        "hidden_act": "gelu",
    },
)  # head_dim: PixtralVisionConfig.__post_init__ always sets hidden_size // num_attention_heads
GEMMA3 = ConfigClass(
    "Gemma3Config",
    "gemma3/configuration_gemma3.py",
    _Gemma3Spec,
    {
        "mm_tokens_per_image": 256,
        "tie_word_embeddings": True,
    },
    copied=("image_token_index", "boi_token_index", "eoi_token_index"),
)
PALIGEMMA = ConfigClass(
    "PaliGemmaConfig",
    "paligemma/configuration_paligemma.py",
    _PaliGemmaSpec,
    {
        "projection_dim": 2048,
        "tie_word_embeddings": True,
    },
    copied=("image_token_index",),
)
MISTRAL3 = ConfigClass(
    "Mistral3Config",
    "mistral3/configuration_mistral3.py",
    _Mistral3Spec,
    {
        "spatial_merge_size": 2,
        "multimodal_projector_bias": False,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,
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
_MISTRAL3_TEXT_INIT = {
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 5120,
    "intermediate_size": 32768,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "sliding_window": None,
    "vocab_size": 131072,
}
_MISTRAL3_VISION_INIT = {
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 1540,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
}
# sub_configs_defaults: (top class, text default model_type, its init_kwargs, vision class and model_type, init_kwargs)
VISION_LANGUAGE: dict[str, tuple[ConfigClass, str, Mapping[str, Any], ConfigClass, str, Mapping[str, Any]]] = {
    "gemma3": (GEMMA3, "gemma3_text", {}, SIGLIP_VISION, "siglip_vision_model", {}),
    "paligemma": (
        PALIGEMMA,
        "gemma",
        _PALIGEMMA_TEXT_INIT,
        SIGLIP_VISION,
        "siglip_vision_model",
        _PALIGEMMA_VISION_INIT,
    ),
    "mistral3": (MISTRAL3, "mistral", _MISTRAL3_TEXT_INIT, PIXTRAL_VISION, "pixtral", _MISTRAL3_VISION_INIT),
}


# issue 11: encoders used alone and image encoder-decoders; defaults of transformers 5.23's classes.
def _encoder_vision_classes() -> dict[str, ConfigClass]:
    from ..archs.clip import ClipConfig, ClipTextConfig, SiglipTextConfig
    from ..archs.pix2struct import Pix2StructConfig, Pix2StructTextConfig, Pix2StructVisionConfig
    from ..archs.siglip import SiglipVisionConfig
    from ..archs.vision_encoder_decoder import MBartDecoderConfig, SwinEncoderConfig

    swin = {
        "image_size": 224,
        "patch_size": 4,
        "num_channels": 3,
        "embed_dim": 96,
        "depths": [2, 2, 6, 2],
        "num_heads": [3, 6, 12, 24],
        "window_size": 7,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "use_absolute_embeddings": False,
    }
    return {
        "clip_text_model": ConfigClass(
            "CLIPTextConfig",
            "clip/configuration_clip.py",
            ClipTextConfig,
            {
                "vocab_size": 49408,
                "hidden_size": 512,
                "intermediate_size": 2048,
                "num_hidden_layers": 12,
                "num_attention_heads": 8,
                "max_position_embeddings": 77,
                "hidden_act": "quick_gelu",
            },
        ),
        "clip": ConfigClass("CLIPConfig", "clip/configuration_clip.py", ClipConfig, {"projection_dim": 512}),
        "siglip_text_model": ConfigClass(
            "SiglipTextConfig",
            "siglip/configuration_siglip.py",
            SiglipTextConfig,
            {
                "vocab_size": 32000,
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "max_position_embeddings": 64,
                "hidden_act": "gelu_pytorch_tanh",
            },
            copied=("projection_size",),
        ),
        "siglip_vision_model": ConfigClass(
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
        ),
        "pix2struct_text_model": ConfigClass(
            "Pix2StructTextConfig",
            "pix2struct/configuration_pix2struct.py",
            Pix2StructTextConfig,
            {
                "vocab_size": 50244,
                "hidden_size": 768,
                "d_kv": 64,
                "d_ff": 2048,
                "num_layers": 12,
                "num_heads": 12,
                "relative_attention_num_buckets": 32,
                "dense_act_fn": "gelu_new",
            },
        ),
        "pix2struct_vision_model": ConfigClass(
            "Pix2StructVisionConfig",
            "pix2struct/configuration_pix2struct.py",
            Pix2StructVisionConfig,
            {
                "hidden_size": 768,
                "patch_embed_hidden_size": 768,
                "d_ff": 2048,
                "d_kv": 64,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "seq_len": 4096,
                "dense_act_fn": "gelu_new",
            },
        ),
        "pix2struct": ConfigClass(
            "Pix2StructConfig",
            "pix2struct/configuration_pix2struct.py",
            Pix2StructConfig,
            {"tie_word_embeddings": False},
        ),
        "donut-swin": ConfigClass(
            "DonutSwinConfig", "donut/configuration_donut_swin.py", SwinEncoderConfig, swin, copied=("hidden_size",)
        ),
        "swin": ConfigClass(
            "SwinConfig", "swin/configuration_swin.py", SwinEncoderConfig, swin, copied=("hidden_size",)
        ),
        **{
            f"decoder:{t}": ConfigClass(c.name, c.path, MBartDecoderConfig, c.defaults)
            for t, c in BART_FAMILY.items()
            if t in ("mbart", "bart")
        },
    }


ENCODER_VISION = _encoder_vision_classes()


LANGUAGE_MODELS = {
    "gemma3_text": GEMMA3_TEXT,
}
# Fields that fix a model's size: when config.json omits one, the estimate rests on transformers'
# default for it, which is some other model's value -- said in a warning-worthy note.
SHAPE_FIELDS = frozenset(
    {
        # ChatGLM's names for them (archs/chatglm.py; num_layers is T5's too)
        "padded_vocab_size",
        "ffn_hidden_size",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "d_model",
        "d_kv",
        "d_ff",
        "num_layers",
        "num_heads",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "encoder_ffn_dim",
        "decoder_ffn_dim",
        "num_mel_bins",
        "image_size",
        "patch_size",
        # state-space and mixture-of-experts widths (mamba2, granitemoehybrid)
        "state_size",
        "n_groups",
        "mamba_n_heads",
        "mamba_d_head",
        "mamba_d_state",
        "mamba_n_groups",
        "num_local_experts",
        "num_experts_per_tok",
        "shared_intermediate_size",
    }
)


def _register_component_rules() -> None:
    """Safetensors names of the llama-like families (model.embed_tokens, model.layers.N, model.norm,
    lm_head) are llama's: registered in importers/weights.py's table until it lists them itself."""
    from .weights import COMPONENT_RULES

    for arch in LANGUAGE_MODELS:
        COMPONENT_RULES.setdefault(arch, list(LM_WEIGHT_RULES))
    from .weights import BUFFER

    # CLIPModel / SiglipModel (issue 11): older CLIP files also store the position_ids buffers
    encoders: list[tuple[str, str | None]] = [
        (r"(?:text_model|vision_model)\.embeddings\.position_ids", BUFFER),
        (r"text_model\.embeddings\.token_embedding\.weight", "embeddings"),
        (r"text_model\.head\..+", "projector"),
        (r"text_model\..+", "encoder"),
        (r"vision_model\..+", "vision_tower"),
        (r"(?:visual_projection|text_projection)\.weight|logit_scale|logit_bias", "projector"),
    ]
    COMPONENT_RULES.setdefault("clip", encoders)
    COMPONENT_RULES.setdefault("siglip", encoders)
    # Pix2StructForConditionalGeneration; VisionEncoderDecoderModel (Donut): encoder.*, decoder.* with the
    # decoder's token embedding and lm_head inside it
    COMPONENT_RULES.setdefault(
        "pix2struct",
        [
            (r"encoder\..+", "encoder"),
            (r"decoder\.embed_tokens\.weight", "embeddings"),
            (r"decoder\.lm_head\.weight", "lm_head"),
            (r"decoder\..+", "decoder"),
        ],
    )
    COMPONENT_RULES.setdefault(
        "vision-encoder-decoder",
        [
            # Swin's relative_position_index is a persistent int64 buffer of every block (window^2 x window^2)
            (r"encoder\..+\.relative_position_index", BUFFER),
            (r"encoder\..+", "encoder"),
            (r"decoder\.model\.decoder\.embed_tokens\.weight", "embeddings"),
            (r"decoder\.lm_head\.weight", "lm_head"),
            (r"decoder\..+", "decoder"),
        ],
    )


_register_component_rules()


def _register_vlm_component_rules() -> None:
    """Safetensors names of LLaVA-OneVision (LLaVA's: vision_tower.*, multi_modal_projector.*, image_newline,
    language_model.*) and of Idefics3 / SmolVLM (modeling_idefics3.py: model.vision_model.*,
    model.connector.modality_projection.*, model.text_model.*, lm_head)."""
    from .weights import COMPONENT_RULES

    rules: list[tuple[str, str | None]] = [
        (r"(?:model\.)?vision_model\..+", "vision_tower"),
        (r"(?:model\.)?connector\..+", "projector"),
        (r"(?:model\.)?text_model\.embed_tokens\.weight", "embeddings"),
        (r"(?:model\.)?text_model\.(?:layers\.\d+\..+|norm\.weight)", "decoder"),
        (r"lm_head\.weight", "lm_head"),
    ]
    for arch in IDEFICS3_FAMILY:
        COMPONENT_RULES.setdefault(arch, rules)


_register_vlm_component_rules()
IMPORTABLE = tuple(
    a
    for a in ARCHITECTURES
    if a in LANGUAGE_MODELS
    or a in VISION_LANGUAGE
    or a in ("clip", "siglip", "pix2struct", "vision-encoder-decoder")
    or a in ("llava_onevision", *IDEFICS3_FAMILY)
)


def declared_config(model_type: str) -> ConfigClass | None:
    """The config.json keys a family module declares for `model_type` (archs/family.py: `config_json`),
    loading only that family; None when no family declares it (the tables above serve the older ones)."""
    if model_type in IMPORTABLE or model_type not in archs.FAMILIES:
        return None
    return archs.family(model_type).config_json.get(model_type)


def reads_config(model_type: str) -> bool:
    """Whether a family answers `model_type`'s config.json (its keys, its own reader, or a refusal saying why
    not), loading only that family; otherwise the oracle may (importers/oracle.py)."""
    if model_type in IMPORTABLE:
        return True
    if model_type not in archs.FAMILIES:
        return False
    fam = archs.family(model_type)
    return model_type in fam.config_json or model_type in fam.read_config or bool(fam.config_json_refusal)


def importable() -> tuple[str, ...]:
    """Every model_type `willitrun import` reads (loads every family module: for listings)."""
    return tuple(a for a in ARCHITECTURES if a in IMPORTABLE or _family_reads(a))


def _family_reads(model_type: str) -> bool:
    fam = archs.family(model_type)
    return model_type in fam.config_json or model_type in fam.read_config


def supported() -> str:
    return ", ".join(importable())


# Ends every "not supported" refusal of a model_type or GGUF architecture (one line).
HOW_TO_ADD = "see `willitrun list architectures`; docs/adding-an-architecture.md says how to add one"


# --------------------------------------------------------------------------------------------------
# Ids and names
# --------------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """A catalog id from a free name: 'Meta-Llama-3.1-8B_Q4_K_M' -> 'meta-llama-3.1-8b-q4-k-m'."""
    s = re.sub(r"[^a-z0-9]+", lambda m: "." if m.group() == "." else "-", text.lower())
    s = s[:64].strip("-.")
    return s if re.fullmatch(ID_PATTERN, s) else "imported-model"


def name_from_source(source: str) -> str:
    """A model name from where a config came from: its directory, or the repository of a Hub URL."""
    parts = [p for p in source.replace("\\", "/").split("/") if p]
    if parts and parts[-1] == "config.json":
        parts = parts[:-1]
        if len(parts) >= 3 and parts[-2] in ("blob", "resolve", "raw"):
            parts = parts[:-2]  # https://huggingface.co/ORG/NAME/blob/REVISION/config.json
    return parts[-1] if parts else "imported-model"


def check_id(model_id: str) -> str:
    if not re.fullmatch(ID_PATTERN, model_id) or len(model_id) > 64:
        raise UsageError(
            f"id {clip(repr(model_id))} is not a catalog id: lowercase letters and digits separated by "
            "'-' or '.', at most 64 characters (e.g. my-llama-3.1-8b)"
        )
    return model_id


# --------------------------------------------------------------------------------------------------
# Filling one config block
# --------------------------------------------------------------------------------------------------
def _spec_default(model: Any, field: str) -> tuple[bool, Any]:
    info = model.model_fields[field]
    return info.is_required(), None if info.is_required() else info.default


def _block(
    cfg: Mapping[str, Any],
    cls: ConfigClass,
    where: str,
    sources: dict[str, str],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of `cls` from `cfg`; an absent field gets transformers' default (cited in `sources`)
    where the spec needs it or would otherwise assume something else."""
    out: dict[str, Any] = {}
    if cls.aliases:  # the class's attribute_map: a config.json saved under the attribute's own name
        cfg = {**{f: cfg[a] for a, f in cls.aliases.items() if a in cfg and f not in cfg}, **cfg}
    for field, default in (defaults or cls.defaults).items():
        if isinstance(default, ConfigClass):  # a nested sub-config (text_config, vision_config): its own keys
            out[field] = _block(_sub(cfg, field, where) or {}, default, f"{where}.{field}", sources)
            continue
        if field in cfg and not (cfg[field] is None and field in cls.none_is_default):
            out[field] = cfg[field]
            continue
        if default is None:
            continue
        required, spec_default = _spec_default(cls.spec_model, field)
        if required or spec_default != default:
            out[field] = copy.deepcopy(default)
            sources[f"{where}.{field}"] = cls.url
    for field in cls.copied:
        if field in cfg:
            out[field] = cfg[field]
    return out


def _sub(cfg: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any] | None:
    value = cfg.get(key)
    if value is not None and not isinstance(value, dict):
        raise SpecError(f"{source}: {key}: must be a JSON object, not {type(value).__name__}")
    return value


def _model_type(cfg: Mapping[str, Any], default: str, where: str, source: str) -> str:
    """A sub-config's `model_type` (`default` when absent); anything but a string is a SpecError."""
    model_type = cfg.get("model_type", default)
    if not isinstance(model_type, str):
        raise SpecError(
            f"{source}: {where.removeprefix('config.')}.model_type must be a string, not {type(model_type).__name__}"
        )
    return model_type


def _language_model(
    cfg: Mapping[str, Any] | None,
    default_type: str,
    where: str,
    source: str,
    sources: dict[str, str],
    models: Mapping[str, ConfigClass] = LANGUAGE_MODELS,
) -> dict[str, Any]:
    cfg = cfg or {}
    model_type = _model_type(cfg, default_type, where, source)
    if model_type not in models:
        raise UsageError(
            f"{source}: {where.removeprefix('config.')}.model_type {clip(repr(model_type))} is not supported; "
            f"supported: {', '.join(models)}; {HOW_TO_ADD}"
        )
    out = {"model_type": model_type} if where != "config" else {}
    out.update(_block(cfg, models[model_type], where, sources))
    return out


# --------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------
def config_dtype(cfg: Mapping[str, Any], source: str) -> str | None:
    """The checkpoint's dtype as config.json states it (`dtype`, or `torch_dtype` before transformers 5); a
    multimodal config.json that states it only for its language model (Qwen/Qwen3.5-0.8B: no top-level dtype,
    `text_config.dtype: bfloat16`) gives the language model's, which holds nearly every weight."""
    text = cfg.get("text_config")
    for key, value in (
        *((k, cfg.get(k)) for k in ("dtype", "torch_dtype")),
        *((f"text_config.{k}", text.get(k)) for k in ("dtype", "torch_dtype") if isinstance(text, Mapping)),
    ):
        if value is None:
            continue
        if not isinstance(value, str):
            raise SpecError(f'{source}: {key}: must be a string such as "bfloat16", not {value!r}')
        name = _DTYPE_ALIASES.get(value, value)
        if name not in CHECKPOINT_DTYPES:
            raise UsageError(
                f"{source}: {key} {value!r} is not a checkpoint type willitrun models ({', '.join(CHECKPOINT_DTYPES)})"
            )
        return name
    return None


def config_block(
    cfg: Mapping[str, Any], source: str, sources: dict[str, str], notes: list[str]
) -> tuple[str, dict[str, Any]]:
    """(architecture, spec `config` block) of a config.json mapping."""
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise SpecError(f"{source}: no model_type: not a transformers config.json")
    if model_type in archs.FAMILIES and model_type not in IMPORTABLE:
        fam = archs.family(model_type)  # everything about a family is declared in its module (archs/family.py)
        if fam.config_json_refusal:
            raise UsageError(f"{source}: {fam.config_json_refusal}")
        reader = fam.read_config.get(model_type)
        if reader is not None:
            return model_type, reader(_Reading(source, sources, notes), cfg, model_type)
        declared = fam.config_json.get(model_type)
        if declared is not None:
            return model_type, _block(cfg, declared, "config", sources)
    if model_type not in IMPORTABLE:
        raise UsageError(
            f"{source}: model_type {clip(repr(model_type))} is not supported; supported: {supported()}; {HOW_TO_ADD}"
        )
    if model_type in ("clip", "siglip", "pix2struct", "vision-encoder-decoder"):
        return model_type, _encoder_vision(cfg, model_type, source, sources)
    if model_type in LANGUAGE_MODELS:
        return model_type, _language_model(cfg, model_type, "config", source, sources)
    if model_type == "llava_onevision":
        return model_type, _llava_onevision(cfg, source, sources)
    if model_type in IDEFICS3_FAMILY:
        return model_type, _idefics3(cfg, model_type, source, sources)
    if model_type in VISION_LANGUAGE:
        return model_type, _vision_language(cfg, model_type, source, sources, notes)
    raise AssertionError(model_type)  # IMPORTABLE lists only the model types above


def _typed(
    cfg: Mapping[str, Any] | None,
    where: str,
    allowed: tuple[str, ...],
    default: str,
    source: str,
    sources: dict[str, str],
    prefix: str = "",
) -> dict[str, Any]:
    """A sub-config of one of `allowed` model types, its fields filled from that class's defaults."""
    cfg = cfg or {}
    model_type = _model_type(cfg, default, where, source)
    if model_type not in allowed:
        raise UsageError(
            f"{source}: {where.removeprefix('config.')}.model_type {clip(repr(model_type))} is not supported; "
            f"supported: {', '.join(allowed)}; {HOW_TO_ADD}"
        )
    return {"model_type": model_type, **_block(cfg, ENCODER_VISION[prefix + model_type], where, sources)}


def _encoder_vision(cfg: Mapping[str, Any], model_type: str, source: str, sources: dict[str, str]) -> dict[str, Any]:
    """CLIP / SigLIP used alone, Pix2Struct, and Donut-style vision encoder-decoders."""
    if model_type == "vision-encoder-decoder":
        return {
            "encoder": _typed(
                _sub(cfg, "encoder", source), "config.encoder", ("donut-swin", "swin"), "", source, sources
            ),
            "decoder": _typed(
                _sub(cfg, "decoder", source),
                "config.decoder",
                ("mbart", "bart"),
                "",
                source,
                sources,
                prefix="decoder:",
            ),
        }
    text_type, vision_type = {
        "clip": ("clip_text_model", "clip_vision_model"),
        "siglip": ("siglip_text_model", "siglip_vision_model"),
        "pix2struct": ("pix2struct_text_model", "pix2struct_vision_model"),
    }[model_type]
    text = _typed(_sub(cfg, "text_config", source), "config.text_config", (text_type,), text_type, source, sources)
    vision_cfg = _sub(cfg, "vision_config", source)
    if model_type == "clip":
        vision = clip_vision(_Reading(source, sources, []), vision_cfg or {}, CLIP_VISION)
    else:
        vision = _typed(vision_cfg, "config.vision_config", (vision_type,), vision_type, source, sources)
    out = {"text_config": text, "vision_config": vision}
    if model_type in ENCODER_VISION:
        out.update(_block(cfg, ENCODER_VISION[model_type], "config", sources))
    return out


def _sub_config(
    cfg: Mapping[str, Any] | None,
    key: str,
    default_type: str,
    classes: Mapping[str, ConfigClass],
    init: Mapping[str, Any],
    top: ConfigClass,
    source: str,
    sources: dict[str, str],
) -> dict[str, Any]:
    """One sub-config as SubConfigSpec.create_subconfig builds it: the dict's model_type (else the default)
    picks the class, whose plain defaults fill the dict; without a dict, the class's defaults overlaid with
    `init` (cited to the composite class that declares them)."""
    where = f"config.{key}"
    model_type = _model_type(cfg or {}, default_type, where, source)
    if model_type not in classes:
        raise UsageError(
            f"{source}: {key}.model_type {clip(repr(model_type))} is not supported; supported: "
            f"{', '.join(classes)}; {HOW_TO_ADD}"
        )
    cls = classes[model_type]
    out: dict[str, Any] = {"model_type": model_type}
    if cfg is not None:
        out.update(_block(cfg, cls, where, sources))
        for field, default in cls.defaults.items():
            # written out even where the spec's default is the same: these files leave out shapes
            # (Gemma 3's heads, PaliGemma's patch size), and the warning must name every one taken
            if field not in cfg and default is not None and field not in out:
                out[field] = copy.deepcopy(default)
                sources[f"{where}.{field}"] = cls.url
        return out
    out.update(_block({}, cls, where, sources, {**cls.defaults, **init}))
    for field in init:
        if f"{where}.{field}" in sources:
            sources[f"{where}.{field}"] = top.url
    for field, value in init.items():  # what _block leaves out: an explicit null (Mistral 3's sliding_window)
        if field not in out and (field in cls.defaults or field in cls.copied):
            out[field] = value
            sources[f"{where}.{field}"] = top.url
    return out


def _vision_language(
    cfg: Mapping[str, Any], model_type: str, source: str, sources: dict[str, str], notes: list[str]
) -> dict[str, Any]:
    """Gemma 3 with vision (Gemma3Config: its text_config is always a Gemma3TextConfig), PaliGemma (a Gemma
    or Gemma 2 text_config) and Mistral 3 (a Mistral or Llama text_config, a Pixtral vision_config)."""
    top, text_type, text_init, vision_cls, vision_type, vision_init = VISION_LANGUAGE[model_type]
    text_classes: Mapping[str, ConfigClass] = {
        "gemma3": {"gemma3_text": GEMMA3_TEXT},
        "paligemma": {"gemma": GEMMA, "gemma2": GEMMA2},
        "mistral3": LLAVA_TEXT_MODELS,
    }[model_type]
    text_cfg = _sub(cfg, "text_config", source)
    if model_type == "gemma3" and text_cfg is not None:
        text_cfg = {**text_cfg, "model_type": "gemma3_text"}  # sub_configs_defaults names the class itself
    text = _sub_config(text_cfg, "text_config", text_type, text_classes, text_init, top, source, sources)
    vision = _sub_config(
        _sub(cfg, "vision_config", source),
        "vision_config",
        vision_type,
        {vision_type: vision_cls},
        vision_init,
        top,
        source,
        sources,
    )
    out = {"text_config": text, "vision_config": vision, **_block(cfg, top, "config", sources)}
    if "config.vision_config.vision_use_head" in sources and vision.get("vision_use_head") is True:
        notes.append(
            "vision_config.vision_use_head: not in config.json, so SiglipVisionConfig's default (true) adds "
            "an attention-pooling head, which Gemma 3 and PaliGemma checkpoints do not store."
        )
    if model_type == "mistral3" and "tie_word_embeddings" not in cfg:
        notes.append(
            "tie_word_embeddings: not in config.json, so Mistral3Config's default (true) ties the LM head "
            "to the embedding; Mistral Small 3.1 / 3.2 checkpoints store a separate lm_head.weight "
            "(the catalog's mistral-small-3.1-24b sets it false): set it false for those."
        )
    if model_type == "paligemma" and "projection_dim" not in cfg and text.get("hidden_size", 2048) != 2048:
        notes.append(
            "projection_dim: not in config.json, PaliGemmaConfig's default 2048 is not the text model's "
            f"width ({text.get('hidden_size')}); the projector would not fit the language model."
        )
    return out


def _llava_onevision(cfg: Mapping[str, Any], source: str, sources: dict[str, str]) -> dict[str, Any]:
    """LLaVA-OneVision: a Qwen2 text_config, a SigLIP vision_config (SiglipVisionConfig's defaults for what it
    omits; the class's init_kwargs when it is absent altogether)."""
    text = _language_model(
        _sub(cfg, "text_config", source), "qwen2", "config.text_config", source, sources, {"qwen2": QWEN2}
    )
    where, vision_cfg = "config.vision_config", _sub(cfg, "vision_config", source)
    if vision_cfg is None:
        vision = {
            "model_type": "siglip_vision_model",
            **_block({}, SIGLIP_VISION, where, sources, {**SIGLIP_VISION.defaults, **_ONEVISION_VISION_INIT}),
        }
        for field in _ONEVISION_VISION_INIT:
            if f"{where}.{field}" in sources:
                sources[f"{where}.{field}"] = LLAVA_ONEVISION.url
    else:
        model_type = _model_type(vision_cfg, "siglip_vision_model", where, source)
        if model_type != "siglip_vision_model":
            raise UsageError(
                f"{source}: vision_config.model_type {clip(repr(model_type))} is not supported; "
                f"supported: siglip_vision_model; {HOW_TO_ADD}"
            )
        vision = {"model_type": model_type, **_block(vision_cfg, SIGLIP_VISION, where, sources)}
    return {"text_config": text, "vision_config": vision, **_block(cfg, LLAVA_ONEVISION, "config", sources)}


def _idefics3(cfg: Mapping[str, Any], model_type: str, source: str, sources: dict[str, str]) -> dict[str, Any]:
    """Idefics3 / SmolVLM: a Llama text_config (LlamaConfig's defaults), the SigLIP-shaped vision_config."""
    top, vision_cls = IDEFICS3_FAMILY[model_type]
    text = _language_model(
        _sub(cfg, "text_config", source), "llama", "config.text_config", source, sources, {"llama": LLAMA}
    )
    vision = _block(_sub(cfg, "vision_config", source) or {}, vision_cls, "config.vision_config", sources)
    return {"text_config": text, "vision_config": vision, **_block(cfg, top, "config", sources)}


def _idefics3_preprocessor(block: Mapping[str, Any], notes: list[str], source: str) -> dict[str, Any]:
    """The crop size and longest edge live in preprocessor_config.json, not config.json: crops of the tower's
    image_size and a longest edge of 4 crops (the image processors' own default, 4 x 364) are assumed."""
    side = block["vision_config"].get("image_size", _IDEFICS3_VISION_DEFAULTS["image_size"])
    if type(side) is not int or side < 1:  # null, a string, a list: nothing to size the crops with
        raise SpecError(f"{source}: vision_config.image_size: a positive integer, not {clip(repr(side))}")
    notes.append(
        f"Image tokens follow preprocessor_config.json (size.longest_edge, max_image_size), which config.json "
        f"does not hold: crops of the tower's {side} px and a longest edge of 4 x {side} = {4 * side} px are "
        "assumed (Idefics3ImageProcessor's default ratio, 4 x 364); add `preprocessor: {longest_edge: ..., "
        "max_image_size: ...}` to the spec."
    )
    return {"longest_edge": 4 * side, "max_image_size": side}


class _Reading:
    """archs/family.py: ConfigReading, lent to a family's own config.json reader."""

    def __init__(self, source: str, sources: dict[str, str], notes: list[str]) -> None:
        self.source, self.sources, self.notes = source, sources, notes

    def block(
        self, cfg: Mapping[str, Any], cls: ConfigClass, where: str, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return _block(cfg, cls, where, self.sources, defaults)

    def sub(self, cfg: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        return _sub(cfg, key, self.source)

    def typed(
        self, cfg: Mapping[str, Any] | None, where: str, classes: Mapping[str, ConfigClass], default: str
    ) -> dict[str, Any]:
        cfg = cfg or {}
        model_type = _model_type(cfg, default, where, self.source)
        if model_type not in classes:
            raise UsageError(
                f"{self.source}: {where.removeprefix('config.')}.model_type {clip(repr(model_type))} is not "
                f"supported; supported: {', '.join(classes)}; {HOW_TO_ADD}"
            )
        return {"model_type": model_type, **_block(cfg, classes[model_type], where, self.sources)}

    def sub_config(
        self,
        cfg: Mapping[str, Any] | None,
        key: str,
        default_type: str,
        classes: Mapping[str, ConfigClass],
        init: Mapping[str, Any],
        top: ConfigClass,
    ) -> dict[str, Any]:
        return _sub_config(cfg, key, default_type, classes, init, top, self.source, self.sources)

    def malformed(self, message: str) -> Exception:
        return SpecError(f"{self.source}: {message}")


def _render_validation(err: ValidationError, source: str) -> list[str]:
    lines = []
    for e in err.errors(include_url=False):
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        if loc and loc[0] == "config":
            loc = loc[1:]
        where = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{source}: {where}: {e['msg'].removeprefix('Value error, ')}")
    return lines


def spec_from_config(
    config: object,
    source: str,
    *,
    model_id: str | None = None,
    name: str | None = None,
    hf_id: str | None = None,
    weights_dtype: str | None = None,
    weights_source: str | None = None,
    notes: list[str] | None = None,
) -> AnyModelSpec:
    """A model spec from a config.json mapping; `source` names where it came from (cited in `sources`).

    `weights_dtype`/`weights_source`: the checkpoint's float type read from its weights, used when
    config.json names no dtype (what transformers' `dtype="auto"` does).
    Raises UsageError for a model_type willitrun does not model, SpecError for a malformed config.
    """
    if not isinstance(config, dict):
        raise SpecError(f"{source}: a config.json must be a JSON object, not {type(config).__name__}")
    notes = list(notes or [])
    sources: dict[str, str] = {"config": source}
    field_sources: dict[str, str] = {}
    arch, block = config_block(config, source, field_sources, notes)
    dtype = config_dtype(config, source)
    if dtype is not None:
        sources["dtype"] = source
    elif weights_dtype is not None:
        dtype = weights_dtype
        sources["dtype"] = weights_source or source
        notes.append(
            f"config.json names no dtype: {dtype} is the type of the first floating-point tensor of "
            'the weights (what transformers\' dtype="auto" loads).'
        )
    else:
        dtype = "float32"
        notes.append(
            "config.json names no dtype: float32 assumed (torch's default, what transformers builds "
            "without a dtype); pass --dtype if the checkpoint is stored in 16 bits."
        )
    try:
        quantization = checkpoint_quantization(config)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    if quantization is not None:
        notes.append(
            f"The checkpoint is quantized ({quantization}, config.json quantization_config): weights sized as stored."
        )
    elif isinstance(config.get("quantization_config"), dict):
        method = config["quantization_config"].get("quant_method", "unknown")
        notes.append(
            f"The checkpoint is quantized ({method}); without its weight files the estimate sizes the "
            "weights at --dtype, not as stored."
        )
    if arch in IDEFICS3_FAMILY:
        preprocessor = _idefics3_preprocessor(block, notes, source)
    else:
        assumed = archs.family(arch).config_preprocessor
        preprocessor = assumed(block, notes, source) if assumed is not None else None
    defaulted = sorted(k.removeprefix("config.") for k in field_sources if k.rsplit(".", 1)[-1] in SHAPE_FIELDS)
    if defaulted:
        notes.insert(
            0,
            f"Warning: config.json omits {', '.join(defaulted)}: "
            + (
                "the remote-code class's"
                if any("/blob/main/configuration_" in v for v in field_sources.values())
                else "transformers'"
            )
            + " defaults taken "
            "(see sources); they belong to no particular checkpoint, so check them.",
        )
    sources.update(field_sources)
    data: dict[str, Any] = {
        "id": check_id(model_id) if model_id else slug(name or name_from_source(source)),
        "name": name or name_from_source(source),
        "architecture": arch,
        "dtype": dtype,
        "sources": sources,
        "config": block,
    }
    if hf_id:
        data["hf_id"] = hf_id
    if preprocessor is not None:
        data["preprocessor"] = preprocessor
    if quantization is not None:
        data["quantization"] = quantization
        if dtype == "float32" and "dtype" not in sources:
            data["dtype"] = "bfloat16"  # gpt-oss names no dtype; its unquantized tensors are bf16
    if notes:
        data["notes"] = " ".join(notes)
    spec = build_spec(data, source)
    unusable = unusable_values(spec)
    if unusable:  # said first, as warnings: the model builds, but a forward pass would fail (issue 20)
        spec = spec.model_copy(update={"notes": " ".join((*unusable, *([spec.notes] if spec.notes else [])))})
    return spec


def unusable_values(spec: AnyModelSpec) -> list[str]:
    """Warnings for values transformers builds a model from but could not run (a forward pass would fail):
    validation follows what transformers accepts, so these are warned about, never refused (issue 20)."""
    from ..archs.gemma3 import Gemma3Spec
    from ..archs.idefics3 import Idefics3Spec

    out = []
    if isinstance(spec, Gemma3Spec) and not spec.config.pooling_fits:
        v = spec.config.vision_config
        out.append(
            f"Warning: mm_tokens_per_image ({spec.config.mm_tokens_per_image}) is not a square whose side "
            f"divides the {v.image_size // v.patch_size} patches per side: Gemma3MultiModalProjector's "
            "pooling cannot produce it, so images would fail in a forward pass; sized as written."
        )
    if isinstance(spec, Idefics3Spec):
        v, scale = spec.config.vision_config, spec.config.scale_factor
        if (v.image_size // v.patch_size) % scale:
            out.append(
                f"Warning: scale_factor ({scale}) does not divide the {v.image_size // v.patch_size} patches "
                "per side: the connector's pixel shuffle would fail in a forward pass; sized as written."
            )
    own = getattr(spec, "unusable_values", None)  # a family module states its own (archs/qwen3_vl.py)
    if callable(own):
        out.extend(own())
    return out


def checkpoint_quantization(config: Mapping[str, Any]) -> str | None:
    """The stored formats of MoE releases willitrun sizes (issue 10): DeepSeek-V3's block-scaled fp8
    (quant_method fp8, weight_block_size [128, 128]) and gpt-oss's MXFP4 experts (quant_method mxfp4)."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return None
    block = q.get("weight_block_size")
    if block is not None and not (isinstance(block, list) and all(type(n) is int for n in block)):
        # transformers' FineGrainedFP8Config takes a pair (rows, columns), e.g. [128, 128]
        raise SpecError(
            f"quantization_config.weight_block_size: a pair of integers such as [128, 128], not {clip(repr(block))}"
        )
    if q.get("quant_method") == "fp8" and block == [128, 128]:
        return "fp8-block"
    if q.get("quant_method") == "mxfp4":
        return "mxfp4-experts"
    return None


def build_spec(data: dict[str, Any], source: str) -> AnyModelSpec:
    """Validate a spec document built from `source`; problems become SpecError lines naming its fields."""
    try:
        return parse_model_spec(data)
    except ValidationError as err:
        lines = _render_validation(err, source)
        raise SpecError(lines[0], lines) from None
