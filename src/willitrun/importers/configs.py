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
from ..archs import ministral3 as _ministral3
from ..archs.bart import BartConfig as _BartSpec
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
from ..archs.llama import LlamaConfig as _LlamaSpec
from ..archs.llava import ClipVisionConfig as _ClipSpec
from ..archs.llava import LlavaConfig as _LlavaSpec
from ..archs.llava_onevision import DEFAULT_PINPOINTS
from ..archs.llava_onevision import LlavaOnevisionConfig as _LlavaOnevisionSpec
from ..archs.mistral3 import Mistral3Config as _Mistral3Spec
from ..archs.mistral3 import PixtralVisionConfig as _PixtralSpec
from ..archs.mllama import MllamaTextConfig as _MllamaTextSpec
from ..archs.mllama import MllamaVisionConfig as _MllamaVisionSpec
from ..archs.paligemma import PaliGemmaConfig as _PaliGemmaSpec
from ..archs.phi3 import PHI3 as PHI3
from ..archs.qwen2 import QWEN2
from ..archs.qwen2_vl import Qwen2VLVisionConfig as _QwenVLVisionSpec
from ..archs.qwen2_vl import QwenVLTextConfig as _QwenVLTextSpec
from ..archs.qwen3 import QWEN3 as QWEN3
from ..archs.siglip import SiglipVisionConfig as _SiglipSpec
from ..archs.starcoder2 import STARCODER2 as STARCODER2
from ..archs.t5 import T5Config as _T5Spec
from ..archs.whisper import WhisperConfig as _WhisperSpec
from ..errors import SpecError, UsageError, clip
from ..specs import AnyModelSpec, parse_model_spec

CHECKPOINT_DTYPES = ("float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"float": "float32", "half": "float16", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


LLAMA = ConfigClass(
    "LlamaConfig",
    "llama/configuration_llama.py",
    _LlamaSpec,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "head_dim": None,
        "max_position_embeddings": 2048,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
    },
)
MISTRAL = ConfigClass(
    "MistralConfig",
    "mistral/configuration_mistral.py",
    _LlamaSpec,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "max_position_embeddings": 4096 * 32,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "sliding_window": 4096,
    },
)
T5 = ConfigClass(
    "T5Config",
    "t5/configuration_t5.py",
    _T5Spec,
    {
        "vocab_size": 32128,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 6,
        "num_decoder_layers": None,
        "num_heads": 8,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "relu",
    },
    copied=("n_positions",),
)  # tie_word_embeddings: see _t5_tied
MT5 = ConfigClass(
    "MT5Config",
    "mt5/configuration_mt5.py",
    _T5Spec,
    {
        "vocab_size": 250112,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 1024,
        "num_layers": 8,
        "num_decoder_layers": None,
        "num_heads": 6,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
    },
    copied=("n_positions",),
)  # tie_word_embeddings: see _t5_tied
WHISPER = ConfigClass(
    "WhisperConfig",
    "whisper/configuration_whisper.py",
    _WhisperSpec,
    {
        "vocab_size": 51865,
        "num_mel_bins": 80,
        "d_model": 384,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "encoder_ffn_dim": 1536,
        "decoder_layers": 4,
        "decoder_attention_heads": 6,
        "decoder_ffn_dim": 1536,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "tie_word_embeddings": True,
    },
)
_CLIP_VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "patch_size": 32,
    "num_channels": 3,
    "hidden_act": "quick_gelu",
}
CLIP_VISION = ConfigClass(
    "CLIPVisionConfig", "clip/configuration_clip.py", _ClipSpec, _CLIP_VISION_DEFAULTS, copied=("projection_dim",)
)
# LlavaConfig.sub_configs_defaults["vision_config"].init_kwargs: used only when config.json has no
# vision_config at all (a vision_config dict gets plain CLIPVisionConfig defaults for what it omits).
_LLAVA_VISION_INIT = {
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 336,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
}
_LLAVA_TOP = {
    "projector_hidden_act": "gelu",
    "multimodal_projector_bias": True,
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "tie_word_embeddings": False,
}
LLAVA = ConfigClass(
    "LlavaConfig",
    "llava/configuration_llava.py",
    _LlavaSpec,
    _LLAVA_TOP,
    copied=("image_token_index", "image_seq_length"),
)
LLAVA_NEXT = ConfigClass(
    "LlavaNextConfig",
    "llava_next/configuration_llava_next.py",
    _LlavaSpec,
    {
        **_LLAVA_TOP,
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    },
    copied=("image_token_index", "image_seq_length"),
    none_is_default=("image_grid_pinpoints",),
)
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
MLLAMA_TEXT = ConfigClass(
    "MllamaTextConfig",
    "mllama/configuration_mllama.py",
    _MllamaTextSpec,
    {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
    none_is_default=("cross_attention_layers",),
)
MLLAMA_VISION = ConfigClass(
    "MllamaVisionConfig",
    "mllama/configuration_mllama.py",
    _MllamaVisionSpec,
    {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "attention_heads": 16,
        "image_size": 448,
        "patch_size": 14,
        "num_channels": 3,
        "max_num_tiles": 4,
        "vision_output_dim": 7680,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    },
    none_is_default=("intermediate_layers_indices", "supported_aspect_ratios"),
)
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


# issue 11: Qwen2-VL / Qwen2.5-VL. The text defaults are Qwen2-72B's in both classes.
_QWEN_VL_TEXT = {
    "vocab_size": 152064,
    "hidden_size": 8192,
    "intermediate_size": 29568,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "max_position_embeddings": 32768,
    "hidden_act": "silu",
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 80,
}
QWEN2_VL_TEXT = ConfigClass(
    "Qwen2VLTextConfig", "qwen2_vl/configuration_qwen2_vl.py", _QwenVLTextSpec, _QWEN_VL_TEXT, copied=("layer_types",)
)
QWEN2_5_VL_TEXT = ConfigClass(
    "Qwen2_5_VLTextConfig",
    "qwen2_5_vl/configuration_qwen2_5_vl.py",
    _QwenVLTextSpec,
    _QWEN_VL_TEXT,
    copied=("layer_types",),
)
QWEN2_VL_VISION = ConfigClass(
    "Qwen2VLVisionConfig",
    "qwen2_vl/configuration_qwen2_vl.py",
    _QwenVLVisionSpec,
    {
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": 3584,
        "hidden_act": "quick_gelu",
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
)
QWEN2_5_VL_VISION = ConfigClass(
    "Qwen2_5_VLVisionConfig",
    "qwen2_5_vl/configuration_qwen2_5_vl.py",
    _QwenVLVisionSpec,
    {
        "depth": 32,
        "hidden_size": 3584,
        "hidden_act": "silu",
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 4,
        "window_size": 112,
        "out_hidden_size": 3584,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
)
# issue 11: BART-shaped encoder-decoders; defaults of each class (transformers 5.23).
_BART_SHAPE = {
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}
BART_FAMILY = {
    "bart": ConfigClass(
        "BartConfig",
        "bart/configuration_bart.py",
        _BartSpec,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
    "mbart": ConfigClass(
        "MBartConfig",
        "mbart/configuration_mbart.py",
        _BartSpec,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
    "m2m_100": ConfigClass(
        "M2M100Config",
        "m2m_100/configuration_m2m_100.py",
        _BartSpec,
        {"vocab_size": 128112, **_BART_SHAPE, "activation_function": "relu", "scale_embedding": True},
    ),
    "marian": ConfigClass(
        "MarianConfig",
        "marian/configuration_marian.py",
        _BartSpec,
        {
            "vocab_size": 58101,
            **_BART_SHAPE,
            "activation_function": "gelu",
            "scale_embedding": False,
            "share_encoder_decoder_embeddings": True,
        },
        copied=("decoder_vocab_size",),
    ),
    "pegasus": ConfigClass(
        "PegasusConfig",
        "pegasus/configuration_pegasus.py",
        _BartSpec,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
}
QWEN_VL = {"qwen2_vl": (QWEN2_VL_TEXT, QWEN2_VL_VISION), "qwen2_5_vl": (QWEN2_5_VL_TEXT, QWEN2_5_VL_VISION)}


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


# --- mixture of experts (issue 10); defaults of transformers 5.23's config classes ---
def _moe_config_classes() -> dict[str, ConfigClass]:
    from ..archs.mixtral import MixtralConfig as _MixtralSpec
    from ..archs.qwen_moe import Qwen2MoeConfig as _Qwen2MoeSpec
    from ..archs.qwen_moe import Qwen3MoeConfig as _Qwen3MoeSpec

    moe = {
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 768,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "norm_topk_prob": False,
    }
    from ..archs.deepseek import DeepseekConfig as _DeepseekSpec
    from ..archs.deepseek import Glm4MoeLiteConfig as _Glm4MoeLiteSpec

    mla = {
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "qk_nope_head_dim": 128,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
    }
    from ..archs.falcon_h1 import FalconH1Config as _FalconH1Spec
    from ..archs.gpt_oss import GptOssConfig as _GptOssSpec
    from ..archs.granitemoehybrid import GraniteMoeHybridConfig as _GraniteHybridSpec
    from ..archs.jamba import JambaConfig as _JambaSpec
    from ..archs.llama4 import Llama4TextConfig as _Llama4TextSpec
    from ..archs.mamba import MambaConfig as _MambaSpec
    from ..archs.mamba2 import Mamba2Config as _Mamba2Spec

    mamba = {
        "vocab_size": 50280,
        "hidden_size": 768,
        "num_hidden_layers": 32,
        "state_size": 16,
        "expand": 2,
        "conv_kernel": 4,
        "use_bias": False,
        "use_conv_bias": True,
        "time_step_rank": "auto",
        "hidden_act": "silu",
        "tie_word_embeddings": True,
    }
    return {
        "falcon_h1": ConfigClass(
            "FalconH1Config",
            "falcon_h1/configuration_falcon_h1.py",
            _FalconH1Spec,
            {
                "vocab_size": 128000,
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": None,
                "max_position_embeddings": 8192,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "projectors_bias": False,
                "mlp_bias": False,
                "mamba_d_ssm": 1024,
                "mamba_n_heads": 128,
                "mamba_d_head": "auto",
                "mamba_n_groups": 1,
                "mamba_d_state": 256,
                "mamba_d_conv": 4,
                "mamba_expand": 2,
                "mamba_chunk_size": 256,
                "mamba_conv_bias": True,
                "mamba_proj_bias": False,
                "mamba_rms_norm": False,
                "hidden_act": "silu",
            },
        ),
        "jamba": ConfigClass(
            "JambaConfig",
            "jamba/configuration_jamba.py",
            _JambaSpec,
            {
                "vocab_size": 65536,
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "max_position_embeddings": 262144,
                "num_experts": 16,
                "num_experts_per_tok": 2,
                "attn_layer_period": 8,
                "attn_layer_offset": 4,
                "expert_layer_period": 2,
                "expert_layer_offset": 1,
                "mamba_d_state": 16,
                "mamba_d_conv": 4,
                "mamba_expand": 2,
                "mamba_dt_rank": "auto",
                "mamba_conv_bias": True,
                "mamba_proj_bias": False,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
            },
        ),
        # intermediate_size: __post_init__ sets expand x hidden_size, an explicit key wins (Falcon-Mamba)
        "mamba": ConfigClass(
            "MambaConfig", "mamba/configuration_mamba.py", _MambaSpec, mamba, copied=("intermediate_size",)
        ),
        "falcon_mamba": ConfigClass(
            "FalconMambaConfig",
            "falcon_mamba/configuration_falcon_mamba.py",
            _MambaSpec,
            {**mamba, "vocab_size": 50280},
            copied=("intermediate_size",),
        ),
        # Mamba2Mixer computes expand x hidden_size and reads no intermediate_size key (dropped)
        "mamba2": ConfigClass(
            "Mamba2Config",
            "mamba2/configuration_mamba2.py",
            _Mamba2Spec,
            {
                "vocab_size": 32768,
                "hidden_size": 4096,
                "num_hidden_layers": 64,
                "num_heads": 128,
                "head_dim": 64,
                "state_size": 128,
                "expand": 2,
                "conv_kernel": 4,
                "n_groups": 8,
                "use_bias": False,
                "use_conv_bias": True,
                "hidden_act": "silu",
                "chunk_size": 256,
                "time_step_rank": "auto",
                "tie_word_embeddings": False,
            },
        ),
        # head_dim is no GraniteMoeHybridConfig field, but GraniteMoeHybridAttention reads
        # getattr(config, "head_dim", hidden_size // num_attention_heads): kept when present.
        # layer_types absent: every layer is Mamba-2 (GraniteMoeHybridConfig.__post_init__).
        "granitemoehybrid": ConfigClass(
            "GraniteMoeHybridConfig",
            "granitemoehybrid/configuration_granitemoehybrid.py",
            _GraniteHybridSpec,
            {
                "vocab_size": 32000,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": None,
                "max_position_embeddings": 2048,
                "hidden_act": "silu",
                "tie_word_embeddings": False,
                "attention_bias": False,
                "embedding_multiplier": 1.0,
                "logits_scaling": 1.0,
                "residual_multiplier": 1.0,
                "attention_multiplier": 1.0,
                "num_local_experts": 8,
                "num_experts_per_tok": 2,
                "shared_intermediate_size": 1024,
                "layer_types": None,
                "mamba_n_heads": 128,
                "mamba_n_groups": 1,
                "mamba_d_state": 256,
                "mamba_d_head": "auto",
                "mamba_d_conv": 4,
                "mamba_expand": 2,
                "mamba_chunk_size": 256,
                "mamba_conv_bias": True,
                "mamba_proj_bias": False,
            },
            copied=("head_dim",),
        ),
        "llama4_text": ConfigClass(
            "Llama4TextConfig",
            "llama4/configuration_llama4.py",
            _Llama4TextSpec,
            {
                "vocab_size": 202048,
                "hidden_size": 5120,
                "intermediate_size": 8192,
                "intermediate_size_mlp": 16384,
                "num_hidden_layers": 48,
                "num_attention_heads": 40,
                "num_key_value_heads": 8,
                "head_dim": 128,
                "num_local_experts": 16,
                "num_experts_per_tok": 1,
                "attention_chunk_size": 8192,
                "max_position_embeddings": 131072,
                "attention_bias": False,
                "tie_word_embeddings": False,
                "interleave_moe_layer_step": 1,
                "no_rope_layer_interval": 4,
                "use_qk_norm": True,
                "hidden_act": "silu",
            },
            copied=("no_rope_layers", "moe_layers"),
        ),
        "gpt_oss": ConfigClass(
            "GptOssConfig",
            "gpt_oss/configuration_gpt_oss.py",
            _GptOssSpec,
            {
                "vocab_size": 201088,
                "hidden_size": 2880,
                "intermediate_size": 2880,
                "num_hidden_layers": 36,
                "num_attention_heads": 64,
                "num_key_value_heads": 8,
                "head_dim": 64,
                "num_local_experts": 128,
                "num_experts_per_tok": 4,
                "sliding_window": 128,
                "max_position_embeddings": 131072,
                "attention_bias": True,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
            },
            copied=("layer_types",),
        ),
        "deepseek_v2": ConfigClass(
            "DeepseekV2Config",
            "deepseek_v2/configuration_deepseek_v2.py",
            _DeepseekSpec,
            {
                "vocab_size": 102400,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "moe_intermediate_size": 1407,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "n_shared_experts": 2,
                "n_routed_experts": 64,
                "first_k_dense_replace": 0,
                "max_position_embeddings": 2048,
                **mla,
            },
            copied=("num_experts_per_tok",),
        ),  # DeepseekV2Config: None (no default a model could use)
        "deepseek_v3": ConfigClass(
            "DeepseekV3Config",
            "deepseek_v3/configuration_deepseek_v3.py",
            _DeepseekSpec,
            {
                "vocab_size": 129280,
                "hidden_size": 7168,
                "intermediate_size": 18432,
                "moe_intermediate_size": 2048,
                "num_hidden_layers": 61,
                "num_attention_heads": 128,
                "num_key_value_heads": 128,
                "n_shared_experts": 1,
                "n_routed_experts": 256,
                "num_experts_per_tok": 8,
                "first_k_dense_replace": 3,
                "max_position_embeddings": 4096,
                **mla,
            },
        ),
        # session 6 (sample): GLM-4.7-Flash, transformers 5.23's Glm4MoeLiteConfig defaults
        "glm4_moe_lite": ConfigClass(
            "Glm4MoeLiteConfig",
            "glm4_moe_lite/configuration_glm4_moe_lite.py",
            _Glm4MoeLiteSpec,
            {
                "vocab_size": 154880,
                "hidden_size": 2048,
                "intermediate_size": 10240,
                "moe_intermediate_size": 1536,
                "num_hidden_layers": 47,
                "num_attention_heads": 20,
                "num_key_value_heads": 20,
                "n_shared_experts": 1,
                "n_routed_experts": 64,
                "num_experts_per_tok": 4,
                "max_position_embeddings": 202752,
                "kv_lora_rank": 512,
                "q_lora_rank": 768,
                "qk_rope_head_dim": 64,
                "qk_nope_head_dim": 192,
                "v_head_dim": 256,
                "attention_bias": False,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
            },
            copied=("mlp_layer_types",),
        ),
        "mixtral": ConfigClass(
            "MixtralConfig",
            "mixtral/configuration_mixtral.py",
            _MixtralSpec,
            {
                "vocab_size": 32000,
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": None,
                "max_position_embeddings": 131072,
                "hidden_act": "silu",
                "tie_word_embeddings": False,
                "sliding_window": None,
                "num_local_experts": 8,
                "num_experts_per_tok": 2,
            },
        ),
        "qwen3_moe": ConfigClass(
            "Qwen3MoeConfig",
            "qwen3_moe/configuration_qwen3_moe.py",
            _Qwen3MoeSpec,
            {
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 6144,
                "num_hidden_layers": 24,
                "num_attention_heads": 32,
                "num_key_value_heads": 4,
                "max_position_embeddings": 32768,
                "hidden_act": "silu",
                "tie_word_embeddings": False,
                "attention_bias": False,
                "use_sliding_window": False,
                "sliding_window": 4096,
                "num_experts": 128,
                **moe,
            },
            copied=("head_dim", "max_window_layers"),
            none_is_default=("mlp_only_layers",),
        ),
        "qwen2_moe": ConfigClass(
            "Qwen2MoeConfig",
            "qwen2_moe/configuration_qwen2_moe.py",
            _Qwen2MoeSpec,
            {
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "num_key_value_heads": 16,
                "max_position_embeddings": 32768,
                "hidden_act": "silu",
                "tie_word_embeddings": False,
                "use_sliding_window": False,
                "sliding_window": 4096,
                "max_window_layers": 28,
                "num_experts": 60,
                "shared_expert_intermediate_size": 5632,
                "qkv_bias": True,
                **moe,
                "num_experts_per_tok": 4,
                "moe_intermediate_size": 1408,
            },
            copied=("head_dim", "layer_types"),
            none_is_default=("mlp_only_layers",),
        ),
    }


LANGUAGE_MODELS = {
    "llama": LLAMA,
    "mistral": MISTRAL,
    "gemma3_text": GEMMA3_TEXT,
    **_moe_config_classes(),
}
LLAVA_TEXT_MODELS = {"llama": LLAMA, "mistral": MISTRAL}  # the text models LlavaConfig specs model
MINISTRAL3 = _ministral3.CONFIG  # session 6 (sample): Mistral3Config's text model in Devstral Small 2
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

    COMPONENT_RULES.setdefault("mamba2", COMPONENT_RULES["mamba"])  # Mamba2ForCausalLM: backbone.* as Mamba's
    for arch in LANGUAGE_MODELS:
        COMPONENT_RULES.setdefault(arch, COMPONENT_RULES["llama"])
    COMPONENT_RULES.setdefault("mt5", COMPONENT_RULES["t5"])  # MT5ForConditionalGeneration: T5's module names
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

    COMPONENT_RULES.setdefault("llava_onevision", COMPONENT_RULES["llava"])
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
    or a in ("t5", "whisper", "llava", "llava_next", "mllama", "mt5")
    or a in QWEN_VL
    or a in BART_FAMILY
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


def importable() -> tuple[str, ...]:
    """Every model_type `willitrun import` reads (loads every family module: for listings)."""
    return tuple(a for a in ARCHITECTURES if a in IMPORTABLE or declared_config(a) is not None)


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


def _t5_tied(cfg: Mapping[str, Any]) -> bool:
    """Whether a T5 checkpoint shares its LM head with `shared`.

    config.json files written by transformers 4.x say `tie_word_embeddings: false` for the untied
    v1.1 / flan-t5 checkpoints (absent means tied, T5 v1.0). transformers 5.x T5Config turns that flag
    into `scale_decoder_outputs` and always writes `tie_word_embeddings: true`, so a config it saved
    carries the untied case as `scale_decoder_outputs: false`.
    """
    return cfg.get("tie_word_embeddings") is not False and cfg.get("scale_decoder_outputs") is not False


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


def _clip(cfg: Mapping[str, Any] | None, top: ConfigClass, source: str, sources: dict[str, str]) -> dict[str, Any]:
    where = "config.vision_config"
    if cfg is None:
        # No vision_config: CLIPVisionConfig with the LLaVA class's init_kwargs, cited to that class.
        defaults = {**_CLIP_VISION_DEFAULTS, **_LLAVA_VISION_INIT}
        out = {"model_type": "clip_vision_model"}
        out.update(_block({}, CLIP_VISION, where, sources, defaults))
        for field in _LLAVA_VISION_INIT:
            if f"{where}.{field}" in sources:
                sources[f"{where}.{field}"] = top.url
        return out
    model_type = _model_type(cfg, "clip_vision_model", where, source)
    if model_type != "clip_vision_model":
        raise UsageError(
            f"{source}: vision_config.model_type {clip(repr(model_type))} is not supported; "
            f"supported: clip_vision_model; {HOW_TO_ADD}"
        )
    return {"model_type": model_type, **_block(cfg, CLIP_VISION, where, sources)}


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
    if model_type == "florence2":
        raise UsageError(
            f"{source}: Florence-2's image tokens follow preprocessor_config.json (its size), which "
            "the config.json importer does not read; write a spec by hand (model_specs/florence-2-base.yaml "
            "shows the fields and how the hub's remote-code keys map to transformers' native ones)"
        )
    declared = declared_config(model_type)
    if declared is not None:
        return model_type, _block(cfg, declared, "config", sources)
    if model_type not in IMPORTABLE:
        raise UsageError(
            f"{source}: model_type {clip(repr(model_type))} is not supported; supported: {supported()}; {HOW_TO_ADD}"
        )
    if model_type == "granitemoehybrid" and "layer_types" not in cfg and "layers_block_type" in cfg:
        # GraniteMoeHybridConfig.attribute_map: layers_block_type is read as layer_types
        cfg = {**cfg, "layer_types": cfg["layers_block_type"]}
        notes.append("layers_block_type read as layer_types (GraniteMoeHybridConfig.attribute_map).")
    if model_type in ("clip", "siglip", "pix2struct", "vision-encoder-decoder"):
        return model_type, _encoder_vision(cfg, model_type, source, sources)
    if model_type == "deepseek_v2" and "num_experts_per_tok" in cfg and cfg["num_experts_per_tok"] is None:
        # DeepseekV2Config's default is None: the model builds, but its router's topk needs a k. Both releases
        # route 6 experts per token (deepseek-ai/DeepSeek-V2 and DeepSeek-V2-Lite config.json).
        cfg = {**cfg, "num_experts_per_tok": 6}
        notes.append(
            "Warning: num_experts_per_tok is null, which DeepseekV2's router cannot use: 6 assumed "
            "(DeepSeek-V2 and V2-Lite)."
        )
    if model_type in LANGUAGE_MODELS:
        return model_type, _language_model(cfg, model_type, "config", source, sources)
    if model_type in ("t5", "mt5"):
        out = _block(cfg, T5 if model_type == "t5" else MT5, "config", sources)
        out["tie_word_embeddings"] = _t5_tied(cfg)
        return model_type, out
    if model_type == "whisper":
        return model_type, _block(cfg, WHISPER, "config", sources)
    if model_type in ("llava", "llava_next"):
        top = LLAVA if model_type == "llava" else LLAVA_NEXT
        text = _language_model(
            _sub(cfg, "text_config", source), "llama", "config.text_config", source, sources, LLAVA_TEXT_MODELS
        )
        vision = _clip(_sub(cfg, "vision_config", source), top, source, sources)
        out = {"text_config": text, "vision_config": vision, **_block(cfg, top, "config", sources)}
        if out.get("tie_word_embeddings") is True and text.get("tie_word_embeddings") is not True:
            # LlavaForConditionalGeneration ties lm_head when the top-level flag is set
            # (LlavaConfig.__post_init__ also raises it from text_config's): one flag for both.
            text["tie_word_embeddings"] = True
            notes.append("tie_word_embeddings: the top-level flag ties the LM head, so text_config carries it too.")
        return model_type, out
    if model_type in QWEN_VL:
        return model_type, _qwen_vl(cfg, model_type, source, sources, notes)
    if model_type == "llava_onevision":
        return model_type, _llava_onevision(cfg, source, sources)
    if model_type in IDEFICS3_FAMILY:
        return model_type, _idefics3(cfg, model_type, source, sources)
    if model_type in BART_FAMILY:
        return model_type, _block(cfg, BART_FAMILY[model_type], "config", sources)
    if model_type in VISION_LANGUAGE:
        return model_type, _vision_language(cfg, model_type, source, sources, notes)
    text = _block(_sub(cfg, "text_config", source) or {}, MLLAMA_TEXT, "config.text_config", sources)
    vision = _block(_sub(cfg, "vision_config", source) or {}, MLLAMA_VISION, "config.vision_config", sources)
    if text.get("tie_word_embeddings") is True:
        # MllamaForConditionalGeneration has no _tied_weights_keys: its lm_head is always separate.
        text["tie_word_embeddings"] = False
        notes.append(
            "text_config.tie_word_embeddings is true in the source, but transformers never ties "
            "Mllama's LM head (MllamaForConditionalGeneration has no tied weights): written as false."
        )
    mllama: dict[str, Any] = {"text_config": text, "vision_config": vision}
    if "image_token_index" in cfg:
        mllama["image_token_index"] = cfg["image_token_index"]
    return model_type, mllama


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
        vision = _clip(vision_cfg or {}, CLIP_VISION, source, sources)
    else:
        vision = _typed(vision_cfg, "config.vision_config", (vision_type,), vision_type, source, sources)
    out = {"text_config": text, "vision_config": vision}
    if model_type in ENCODER_VISION:
        out.update(_block(cfg, ENCODER_VISION[model_type], "config", sources))
    return out


def _qwen_vl(
    cfg: Mapping[str, Any], model_type: str, source: str, sources: dict[str, str], notes: list[str]
) -> dict[str, Any]:
    """Qwen2-VL / Qwen2.5-VL: the hub files keep the text fields at the top level (Qwen2VLConfig.__post_init__
    moves them into text_config); transformers >= 4.52 writes them nested. Either is read."""
    text_cls, vision_cls = QWEN_VL[model_type]
    nested = _sub(cfg, "text_config", source)
    text = _block(nested if nested is not None else cfg, text_cls, "config.text_config", sources)
    vision = _block(_sub(cfg, "vision_config", source) or {}, vision_cls, "config.vision_config", sources)
    tied = bool(cfg.get("tie_word_embeddings", False))
    text["tie_word_embeddings"] = tied or bool((nested or {}).get("tie_word_embeddings", False))
    notes.append(
        "Image tokens follow the preprocessor's pixel bounds, which config.json does not hold: "
        f"transformers' defaults (min_pixels {3136}, max_pixels {28 * 28 * 1280}, 1,280 tokens per image) "
        "are assumed; the Qwen hub repos' preprocessor_config.json allows up to 12845056 pixels "
        "(16,384 tokens): add `preprocessor: {min_pixels: ..., max_pixels: ...}` to the spec."
    )
    return {"tie_word_embeddings": tied, "text_config": text, "vision_config": vision}


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
        "mistral3": {**LLAVA_TEXT_MODELS, "ministral3": MINISTRAL3},  # Devstral Small 2: Ministral 3's text model
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
    preprocessor = _idefics3_preprocessor(block, notes, source) if arch in IDEFICS3_FAMILY else None
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
    from ..archs.qwen2_vl import QwenVLSpec

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
    if isinstance(spec, QwenVLSpec) and spec.merger_width != spec.config.text_config.hidden_size:
        field = "hidden_size" if spec.architecture == "qwen2_vl" else "out_hidden_size"
        out.append(
            f"Warning: vision_config.{field} ({spec.merger_width}), the merger's output, is not "
            f"text_config.hidden_size ({spec.config.text_config.hidden_size}): image features would not fit "
            "the language model in a forward pass; sized as written."
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
