"""Build the independent transformers reference for willitrun's memory arithmetic.

What is measured
----------------
For every model spec ``model_specs/<id>.yaml`` this script asks Hugging Face transformers itself
(pinned in ``tests/reference/requirements.txt``) two questions, and writes the answers to
``tests/reference/reference.json``:

1. **Parameter counts of the full-size model.** The spec's ``config`` block (a subset of the
   checkpoint's ``config.json``, same names and nesting) is turned into the transformers config class
   of its architecture, and the *complete* model class (``...ForCausalLM`` /
   ``...ForConditionalGeneration``) is instantiated on the ``meta`` device, so no memory is
   allocated and even a 405B model builds instantly. The total is
   ``sum(p.numel() for p in model.parameters())`` (``Module.parameters()`` de-duplicates shared
   parameters, so tied weights count once). Every de-duplicated ``named_parameters()`` name is mapped
   to one component (``embeddings``, ``encoder``, ``decoder``, ``lm_head``, ``vision_tower``,
   ``projector``); a name that maps to no component is an error, never a silent leftover.
   Where building from a config does not reproduce the real checkpoint (T5 ties its LM head
   unconditionally in transformers 5.x, see ``_untie_t5_lm_head``) the model is corrected and the
   correction is written into the JSON next to the numbers.

2. **The KV cache transformers really allocates.** A *small* random-weight copy of the model keeps
   every width that shapes attention (hidden size, heads, KV heads, head_dim, d_kv, sliding window,
   image and patch size, tiles, mel bins, source positions, anyres grid) and shrinks only what does
   not enter the cache: layers (2; mllama 3 with one cross-attention layer; Gemma 3 one period of
   its local/global pattern), vocabulary (512),
   feed-forward width (64) and the vision tower (hidden 32, 2 heads, 1 layer; same image geometry).
   It runs one prefill forward pass on the CPU in float32 with ``use_cache=True`` and the returned
   cache object is walked tensor by tensor: for every self-attention and every cross-attention
   layer the sequence length it holds and the element count of its key and value tensors. Counts
   are elements, not bytes: the cache holds the model's dtype, so bytes are elements x dtype size
   (float32 is used here only because CPU forwards are fast in it). Image token counts are taken
   from the model's own feature extraction (``get_image_features``), never from a formula, and the
   forward pass itself checks them (``get_placeholder_mask`` raises on a mismatch).

Every small case records the small copy's ``config`` in the same shape as a spec's ``config``
block, so willitrun's calculator can be run on exactly the model that was measured, plus the few
token-id overrides (``hf_overrides``) needed to keep special tokens inside the 512-token vocabulary;
token ids change no shape.

Nothing here is an expected number: every number in reference.json is read from transformers.

Usage::

    python tests/reference/build_reference.py             # rebuild reference.json
    python tests/reference/build_reference.py --only ID   # rebuild only these ids (merged in)
    python tests/reference/build_reference.py --check     # exit 1 if reference.json is stale

Exit codes: 0 success; 1 a model failed to build or run, or ``--check`` found differences;
2 usage error.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import transformers
import yaml
from torch import nn
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    CLIPConfig,
    CLIPModel,
    Cohere2Config,
    Cohere2ForCausalLM,
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
    DynamicCache,
    EncoderDecoderCache,
    FalconH1Config,
    FalconH1ForCausalLM,
    FalconMambaConfig,
    FalconMambaForCausalLM,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GptOssConfig,
    GptOssForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
    GraniteMoeHybridConfig,
    GraniteMoeHybridForCausalLM,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    JambaConfig,
    JambaForCausalLM,
    Llama4ForCausalLM,
    Llama4TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    M2M100Config,
    M2M100ForConditionalGeneration,
    Mamba2Config,
    Mamba2ForCausalLM,
    MambaConfig,
    MambaForCausalLM,
    MarianConfig,
    MarianMTModel,
    MBartConfig,
    MBartForConditionalGeneration,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    MllamaConfig,
    MllamaForConditionalGeneration,
    MT5Config,
    MT5ForConditionalGeneration,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PegasusConfig,
    PegasusForConditionalGeneration,
    Phi3Config,
    Phi3ForCausalLM,
    Pix2StructConfig,
    Pix2StructForConditionalGeneration,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
    SiglipConfig,
    SiglipModel,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    Starcoder2Config,
    Starcoder2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

# `image_size_to_num_patches` is the helper LlavaNextModel.get_image_features itself uses to decide how
# many 336x336 crops (base image + anyres tiles) it slices out of `pixel_values` for one image.
from transformers.core_model_loading import build_glob_alternation
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

SCHEMA_VERSION = 1
SEED = 0
REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO_ROOT / "model_specs"
REFERENCE_PATH = Path(__file__).resolve().with_name("reference.json")
# Families with no catalog model yet (no config.json found verbatim): test shapes, measured like the
# catalog (tests/reference/family_specs/*.yaml say why and what each exercises).
FAMILY_SPEC_DIR = Path(__file__).resolve().with_name("family_specs")

# --- the small copies --------------------------------------------------------------------------
# Only sizes that never enter a KV cache are shrunk. Attention widths are copied from the spec.
SMALL_VOCAB = 512
SMALL_FFN = 64
SMALL_LAYERS = 2  # decoder-only LMs; T5 and Whisper get this many encoder and decoder layers
SMALL_VISION_HIDDEN = 32
SMALL_VISION_HEADS = 2
SMALL_VISION_LAYERS = 1
# Text token ids of the small runs are drawn below this id; special ids that do not fit the small
# vocabulary are moved to the top of it (SMALL_VOCAB - 1, -2, ...), so the two never collide.
TEXT_TOKEN_ID_LIMIT = SMALL_VOCAB - 16

LM_BATCH, LM_TOKENS = 2, 7
MISTRAL_TEST_WINDOW = 4
# Decoder-only families whose small copy is the full config with fewer layers, a small vocabulary
# and a narrow MLP (every attention width kept).
LLAMA_LIKE = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "phi3",
    "granite",
    "starcoder2",
    "cohere2",
    # issue 20: the generic decoder's families (DECODER_FAMILIES below)
    "olmo2",
    "olmo3",
    "glm4",
    "smollm3",
    "seed_oss",
    "ernie4_5",
    "hunyuan_v1_dense",
    "exaone4",
    "cohere",
    "stablelm",
    "phi",
    "lfm2",
    "olmo",
    "apertus",
    "gpt_neox",
    "gemma",
)
# (olmoe and granitemoe, the generic decoder's mixture-of-experts families, are in MOE below)
# Mixture-of-experts decoders (issue 10): the small copy also keeps few, narrow experts (the routing
# never enters the cache); expert counts and widths of the full model are counted on `meta`.
MOE = (
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
    "gpt_oss",
    "llama4_text",
    "olmoe",
    "granitemoe",
    "glm4_moe",
    "minimax_m2",
    "jetmoe",
    "phimoe",
)
SMALL_EXPERTS, SMALL_EXPERTS_PER_TOKEN, SMALL_EXPERT_FFN = 4, 2, 32
# Families with sliding layers get a second case whose window (4) is shorter than the prompt (7), so the
# measured cache shows what transformers holds right after a prefill past the window; their small copy
# keeps one whole period of the local/global pattern (Gemma 2: 2 layers; Gemma 3 and Cohere 2: sliding_window_pattern).
SLIDING_TEST_WINDOW = MISTRAL_TEST_WINDOW
T5_BATCH, T5_ENCODER_TOKENS, T5_DECODER_TOKENS = 2, 11, 5
WHISPER_BATCH, WHISPER_DECODER_TOKENS = 2, 5
VLM_TEXT_TOKENS = 5
LLAVA_NEXT_IMAGE_SIZES = ([672, 672], [336, 1008])  # (height, width), as LlavaNext's `image_sizes`
# A 2 x 2 image uses all 4 tiles of the Llama 3.2 Vision models; a 1 x 1 image shows what padding
# tiles cost (the processor still sends max_num_tiles tiles, masked).
MLLAMA_TILE_LAYOUTS = ([2, 2], [1, 1])


class ReferenceError(Exception):
    """A spec that cannot be turned into a faithful reference: reported, never papered over."""


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


# --- specs -------------------------------------------------------------------------------------
def load_spec(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=loader)
    if not isinstance(spec, dict):
        raise ReferenceError(f"{path.name}: not a YAML mapping")
    if spec.get("id") != path.stem:
        raise ReferenceError(f"{path.name}: id {spec.get('id')!r} does not equal the file name")
    if spec.get("architecture") not in ARCHITECTURES:
        raise ReferenceError(f"{path.name}: unknown architecture {spec.get('architecture')!r}")
    if not isinstance(spec.get("config"), dict):
        raise ReferenceError(f"{path.name}: missing `config` mapping")
    return spec


# --- parameter components ----------------------------------------------------------------------
# Parameter names as the model classes of transformers 5.23 register them. Rules are anchored, so
# a parameter this script does not know about (a new bias, an untied copy) fails loudly.
_LM_RULES = [
    (r"model\.embed_tokens\.weight", "embeddings"),
    (r"model\.layers\.\d+\..+", "decoder"),
    (r"model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_MAMBA_RULES = [
    # MambaForCausalLM / FalconMambaForCausalLM / Mamba2ForCausalLM: backbone.embeddings, backbone.layers.N,
    # backbone.norm_f; lm_head tied to the embedding unless tie_word_embeddings is false (Falcon-Mamba, Mamba-2).
    (r"backbone\.embeddings\.weight", "embeddings"),
    (r"backbone\.layers\.\d+\..+", "decoder"),
    (r"backbone\.norm_f\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_T5_RULES = [
    # T5ForConditionalGeneration: `shared` is the one embedding; encoder.embed_tokens and
    # decoder.embed_tokens are the same Parameter (T5ForConditionalGeneration._tied_weights_keys).
    (r"shared\.weight", "embeddings"),
    (r"encoder\.block\.\d+\..+", "encoder"),
    (r"encoder\.final_layer_norm\.weight", "encoder"),
    (r"decoder\.block\.\d+\..+", "decoder"),
    (r"decoder\.final_layer_norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_WHISPER_RULES = [
    # WhisperEncoder: conv1, conv2, embed_positions (a stored Parameter, sinusoidal values), layers,
    # layer_norm. WhisperForConditionalGeneration ties proj_out to model.decoder.embed_tokens.
    (r"model\.encoder\.(conv1|conv2)\.(weight|bias)", "encoder"),
    (r"model\.encoder\.embed_positions\.weight", "encoder"),
    (r"model\.encoder\.layers\.\d+\..+", "encoder"),
    (r"model\.encoder\.layer_norm\.(weight|bias)", "encoder"),
    (r"model\.decoder\.embed_tokens\.weight", "embeddings"),
    (r"model\.decoder\.embed_positions\.weight", "decoder"),
    (r"model\.decoder\.layers\.\d+\..+", "decoder"),
    (r"model\.decoder\.layer_norm\.(weight|bias)", "decoder"),
    (r"proj_out\.weight", "lm_head"),
]
_LLAVA_RULES = [
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.multi_modal_projector\..+", "projector"),
    (r"model\.image_newline", "projector"),  # LlavaNextModel only: one hidden_size vector
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_MLLAMA_RULES = [
    (r"model\.vision_model\..+", "vision_tower"),
    (r"model\.multi_modal_projector\.(weight|bias)", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]

_QWEN_VL_RULES = [
    # Qwen2VLModel / Qwen2_5_VLModel: `visual` (patch_embed, blocks, merger), `language_model`.
    (r"model\.visual\.(patch_embed|blocks)\..+", "vision_tower"),
    (r"model\.visual\.merger\..+", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_BART_RULES = [
    # Bart/MBart/M2M100ForConditionalGeneration: `model.shared` is the one embedding (encoder.embed_tokens,
    # decoder.embed_tokens and lm_head are the same Parameter when tied); positions and norms per stack.
    (r"model\.shared\.weight", "embeddings"),
    (r"model\.encoder\..+", "encoder"),
    (r"model\.decoder\..+", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
BART_LIKE = ("bart", "mbart", "m2m_100", "marian", "pegasus")
_GEMMA3_RULES = [
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.multi_modal_projector\..+", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_CLIP_RULES = [
    # CLIPModel / SiglipModel (encoders used alone): the text tower's token embedding, the rest of the text
    # tower, the vision tower, and the projections / SigLIP's text head / the logit scale (and bias).
    (r"text_model\.embeddings\.token_embedding\.weight", "embeddings"),
    (r"text_model\.head\.(weight|bias)", "projector"),
    (r"text_model\..+", "encoder"),
    (r"vision_model\..+", "vision_tower"),
    (r"(visual_projection|text_projection)\.weight", "projector"),
    (r"logit_(scale|bias)", "projector"),
]
ENCODER_ONLY = ("clip", "siglip")  # no decoder: no LM head, no cache
_FLORENCE2_RULES = [
    # Florence2ForConditionalGeneration: model.vision_tower (DaViT), model.multi_modal_projector, and
    # model.language_model (a BartModel: `shared` is the one embedding, lm_head tied to it)
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.multi_modal_projector\..+", "projector"),
    (r"model\.language_model\.shared\.weight", "embeddings"),
    (r"model\.language_model\.encoder\..+", "encoder"),
    (r"model\.language_model\.decoder\..+", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_PIX2STRUCT_RULES = [
    # Pix2StructForConditionalGeneration: `encoder` (Pix2StructVisionModel), `decoder` (Pix2StructTextModel,
    # which holds the token embedding and the lm_head itself)
    (r"encoder\..+", "encoder"),
    (r"decoder\.embed_tokens\.weight", "embeddings"),
    (r"decoder\.lm_head\.weight", "lm_head"),
    (r"decoder\..+", "decoder"),
]
_IDEFICS3_RULES = [
    # Idefics3Model / SmolVLMModel: vision_model (embeddings, encoder, post_layernorm), connector
    # (modality_projection.proj), text_model (a LlamaModel); lm_head tied only by the top-level flag.
    (r"model\.vision_model\..+", "vision_tower"),
    (r"model\.connector\..+", "projector"),
    (r"model\.text_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.text_model\.layers\.\d+\..+", "decoder"),
    (r"model\.text_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
# LLaVA-OneVision image sizes (height, width): 899x1024 is the conversion script's test image (its 2x3 tile grid
# is unpadded, not capped); 1335x1098 gives the most tokens any image gets with the 36 default pinpoints (8,765:
# a 4x3 grid unpadded to just under the anyres_max_9 cap).
LLAVA_ONEVISION_IMAGE_SIZES = ([899, 1024], [1335, 1098])
# Idefics3 / SmolVLM image sizes: 1024x768 is split into a grid plus the global view; 200x700 into one row.
IDEFICS3_IMAGE_SIZES = ([1024, 768], [200, 700])
# Qwen2-VL image sizes (height, width) of the reference cases: 1024x768 resizes to 1036x756 (999 tokens);
# 224x336 needs no resize (96 tokens).
QWEN_VL_IMAGE_SIZES = ([1024, 768], [224, 336])


def _compile(rules: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), component) for pattern, component in rules]


@dataclass(frozen=True)
class Architecture:
    config_cls: type
    model_cls: type
    rules: list[tuple[re.Pattern[str], str]]
    embedding: Callable[[nn.Module], nn.Parameter]  # the input token embedding weight
    lm_head: Callable[[nn.Module], nn.Parameter | None]  # the output projection weight (None: an encoder used alone)
    tied_by_default: bool  # the docs' default for `tie_word_embeddings` (docs/spec-format.md)


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(
        LlamaConfig,
        LlamaForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "mistral": Architecture(
        MistralConfig,
        MistralForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen2": Architecture(
        Qwen2Config,
        Qwen2ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen3": Architecture(
        Qwen3Config,
        Qwen3ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "gemma2": Architecture(
        Gemma2Config,
        Gemma2ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "gemma3_text": Architecture(
        Gemma3TextConfig,
        Gemma3ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "phi3": Architecture(
        Phi3Config,
        Phi3ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "granite": Architecture(
        GraniteConfig,
        GraniteForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "starcoder2": Architecture(
        Starcoder2Config,
        Starcoder2ForCausalLM,
        _compile(_LM_RULES + [(r"model\.norm\.bias", "decoder")]),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "cohere2": Architecture(
        Cohere2Config,
        Cohere2ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    # --- mixture of experts (issue 10) ---
    "mixtral": Architecture(
        MixtralConfig,
        MixtralForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen2_moe": Architecture(
        Qwen2MoeConfig,
        Qwen2MoeForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen3_moe": Architecture(
        Qwen3MoeConfig,
        Qwen3MoeForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    # --- state-space (issue 10) ---
    "mamba": Architecture(
        MambaConfig,
        MambaForCausalLM,
        _compile(_MAMBA_RULES),
        lambda m: m.backbone.embeddings.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "falcon_mamba": Architecture(
        FalconMambaConfig,
        FalconMambaForCausalLM,
        _compile(_MAMBA_RULES),
        lambda m: m.backbone.embeddings.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "falcon_h1": Architecture(
        FalconH1Config,
        FalconH1ForCausalLM,
        _compile(_LM_RULES + [(r"model\.final_layernorm\.weight", "decoder")]),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "mamba2": Architecture(
        Mamba2Config,
        Mamba2ForCausalLM,
        _compile(_MAMBA_RULES),
        lambda m: m.backbone.embeddings.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "granitemoehybrid": Architecture(
        GraniteMoeHybridConfig,
        GraniteMoeHybridForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "jamba": Architecture(
        JambaConfig,
        JambaForCausalLM,
        _compile(_LM_RULES + [(r"model\.final_layernorm\.weight", "decoder")]),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "llama4_text": Architecture(
        Llama4TextConfig,
        Llama4ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "gpt_oss": Architecture(
        GptOssConfig,
        GptOssForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "deepseek_v2": Architecture(
        DeepseekV2Config,
        DeepseekV2ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "deepseek_v3": Architecture(
        DeepseekV3Config,
        DeepseekV3ForCausalLM,
        _compile(_LM_RULES),
        lambda m: m.model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "t5": Architecture(
        T5Config,
        T5ForConditionalGeneration,
        _compile(_T5_RULES),
        lambda m: m.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "mt5": Architecture(
        MT5Config,
        MT5ForConditionalGeneration,
        _compile(_T5_RULES),
        lambda m: m.shared.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    # MarianMTModel / PegasusForConditionalGeneration: BART's layout (model.shared, model.encoder, model.decoder,
    # lm_head); final_logits_bias is a buffer
    "marian": Architecture(
        MarianConfig,
        MarianMTModel,
        _compile(_BART_RULES),
        lambda m: m.model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "pegasus": Architecture(
        PegasusConfig,
        PegasusForConditionalGeneration,
        _compile(_BART_RULES),
        lambda m: m.model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "whisper": Architecture(
        WhisperConfig,
        WhisperForConditionalGeneration,
        _compile(_WHISPER_RULES),
        lambda m: m.model.decoder.embed_tokens.weight,
        lambda m: m.proj_out.weight,
        True,
    ),
    "llava": Architecture(
        LlavaConfig,
        LlavaForConditionalGeneration,
        _compile(_LLAVA_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "llava_next": Architecture(
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        _compile(_LLAVA_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen2_vl": Architecture(
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        _compile(_QWEN_VL_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "qwen2_5_vl": Architecture(
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        _compile(_QWEN_VL_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "bart": Architecture(
        BartConfig,
        BartForConditionalGeneration,
        _compile(_BART_RULES),
        lambda m: m.model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "mbart": Architecture(
        MBartConfig,
        MBartForConditionalGeneration,
        _compile(_BART_RULES),
        lambda m: m.model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "m2m_100": Architecture(
        M2M100Config,
        M2M100ForConditionalGeneration,
        _compile(_BART_RULES),
        lambda m: m.model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "gemma3": Architecture(
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        _compile(_GEMMA3_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "mistral3": Architecture(
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        _compile(_GEMMA3_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "paligemma": Architecture(
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        _compile(_GEMMA3_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "florence2": Architecture(
        Florence2Config,
        Florence2ForConditionalGeneration,
        _compile(_FLORENCE2_RULES),
        lambda m: m.model.language_model.shared.weight,
        lambda m: m.lm_head.weight,
        True,
    ),
    "pix2struct": Architecture(
        Pix2StructConfig,
        Pix2StructForConditionalGeneration,
        _compile(_PIX2STRUCT_RULES),
        lambda m: m.decoder.embed_tokens.weight,
        lambda m: m.decoder.lm_head.weight,
        False,
    ),
    "clip": Architecture(
        CLIPConfig,
        CLIPModel,
        _compile(_CLIP_RULES),
        lambda m: m.text_model.embeddings.token_embedding.weight,
        lambda m: None,
        False,
    ),
    "siglip": Architecture(
        SiglipConfig,
        SiglipModel,
        _compile(_CLIP_RULES),
        lambda m: m.text_model.embeddings.token_embedding.weight,
        lambda m: None,
        False,
    ),
    "llava_onevision": Architecture(
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        _compile(_LLAVA_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "idefics3": Architecture(
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        _compile(_IDEFICS3_RULES),
        lambda m: m.model.text_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "smolvlm": Architecture(
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        _compile(_IDEFICS3_RULES),
        lambda m: m.model.text_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
    "mllama": Architecture(
        MllamaConfig,
        MllamaForConditionalGeneration,
        _compile(_MLLAMA_RULES),
        lambda m: m.model.language_model.embed_tokens.weight,
        lambda m: m.lm_head.weight,
        False,
    ),
}

# issue 20: the llama-shaped families declared on willitrun's generic decoder (archs/decoder.py: their spec is a
# DecoderSpec), read from the registry, not kept here. Their transformers classes are the ones its auto mappings give
# the model_type (CONFIG_MAPPING and MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), LlamaModel's module layout (_LM_RULES) unless
# said below, and the config class's own default for tie_word_embeddings. Left out: the remote-code families
# transformers does not ship (tests/importers/test_llamacpp_families.py checks them against llama.cpp), Bamba (a
# hybrid: HYBRID_FAMILIES), and HunYuan-MoE and LFM2-MoE, whose class defaults do not build (head_dim None;
# layer_types None) and whose catalog has no model yet. Gemma 1 (Llama's layer, declared on its own) is measured on
# its class defaults the same way.
_NOT_PLAIN_DECODERS = ("bamba", "hunyuan_v1_moe", "lfm2_moe")


def _generic_decoder_families() -> tuple[str, ...]:
    from willitrun import archs
    from willitrun.archs.decoder import DecoderSpec

    declared = [
        arch
        for fam in archs.families()
        for arch, cls in fam.specs.items()
        if issubclass(cls, DecoderSpec) and not any(c.remote for c in fam.config_json.values())
    ]
    return (*(a for a in declared if a not in _NOT_PLAIN_DECODERS), "gemma")


DECODER_FAMILIES = _generic_decoder_families()
# GPTNeoXModel's names (gpt_neox.embed_in, gpt_neox.layers.N, gpt_neox.final_layer_norm)
_GPT_NEOX_RULES = [
    (r"gpt_neox\.embed_in\.weight", "embeddings"),
    (r"gpt_neox\.(?:layers\.\d+\..+|final_layer_norm\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
_LFM2_RULES = [*_LM_RULES, (r"model\.embedding_norm\.weight", "decoder")]  # Lfm2Model's norm after the layers
# PhiModel's final norm is final_layernorm, and PhiForCausalLM's lm_head has a bias
_STABLELM_RULES = [*_LM_RULES, (r"model\.norm\.bias", "decoder")]  # its final norm is a LayerNorm with a bias
_PHI_RULES = [*_LM_RULES, (r"model\.final_layernorm\.(?:weight|bias)", "decoder"), (r"lm_head\.bias", "lm_head")]
# FalconModel / BloomModel: transformer.{word_embeddings, h.N, ln_f} (BLOOM: and word_embeddings_layernorm)
_FALCON_RULES = [
    (r"transformer\.word_embeddings(?:_layernorm)?\.(?:weight|bias)", "embeddings"),
    (r"transformer\.(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
# GPT2Model / GPTBigCodeModel / GPTJModel: transformer.{wte, wpe, h.N, ln_f}; GPT-J's lm_head has a bias
_GPT2_RULES = [
    (r"transformer\.w[tp]e\.weight", "embeddings"),
    (r"transformer\.(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.(?:weight|bias)", "lm_head"),
]
# OPTForCausalLM: model.decoder.{embed_tokens, embed_positions, project_in, project_out, layers.N, final_layer_norm}
_OPT_RULES = [
    (r"model\.decoder\.embed_(?:tokens|positions)\.weight", "embeddings"),
    (r"model\.decoder\.(?:layers\.\d+\..+|final_layer_norm\.(?:weight|bias)|project_(?:in|out)\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
# PhimoeModel's final norm is a LayerNorm with a bias; PhimoeForCausalLM's lm_head may have a bias
_PHIMOE_RULES = [*_LM_RULES, (r"model\.norm\.bias", "decoder"), (r"lm_head\.bias", "lm_head")]
# DbrxModel: transformer.{wte, blocks.N, norm_f}
_DBRX_RULES = [
    (r"transformer\.wte\.weight", "embeddings"),
    (r"transformer\.(?:blocks\.\d+\..+|norm_f\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]
# ... of which some have sliding-window layers: a second case with a window shorter than the prompt
DECODER_SLIDING = ("olmo3", "exaone4")


def _auto_causal_lm(model_type: str) -> Architecture:
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config_cls = CONFIG_MAPPING[model_type]
    model_cls = getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type])
    tied = bool(config_cls().tie_word_embeddings)
    rules = {
        "phi": _PHI_RULES,
        "stablelm": _STABLELM_RULES,
        "lfm2": _LFM2_RULES,
        "gpt_neox": _GPT_NEOX_RULES,
        "falcon": _FALCON_RULES,
        "bloom": _FALCON_RULES,
        "dbrx": _DBRX_RULES,
        "gpt2": _GPT2_RULES,
        "gpt_bigcode": _GPT2_RULES,
        "gptj": _GPT2_RULES,
        "opt": _OPT_RULES,
        "phimoe": _PHIMOE_RULES,
    }.get(model_type, _LM_RULES)
    return Architecture(
        config_cls,
        model_cls,
        _compile(rules),
        lambda m: m.get_input_embeddings().weight,
        lambda m: m.lm_head.weight,
        tied,
    )


ARCHITECTURES.update({t: _auto_causal_lm(t) for t in DECODER_FAMILIES})

# issue 20 section 3 (famhyb): hybrids whose layers keep different kinds of cache (linear attention / state-space
# and attention), built from transformers' auto classes like the generic decoder's families (LlamaModel's names).
# Their small copy keeps every width and one layer of each kind (archs/caches.py), and few narrow experts.
HYBRID_FAMILIES = ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "nemotron_h", "bamba", "zamba2", "kimi_linear")
ARCHITECTURES.update({t: _auto_causal_lm(t) for t in HYBRID_FAMILIES})
_HYBRID_RULES = {
    # NemotronHModel: model.embeddings, model.layers.N.{norm, mixer}, model.norm_f
    "nemotron_h": [
        (r"model\.embeddings\.weight", "embeddings"),
        (r"model\.layers\.\d+\..+", "decoder"),
        (r"model\.norm_f\.weight", "decoder"),
        (r"lm_head\.weight", "lm_head"),
    ],
    "bamba": [*_LM_RULES, (r"model\.final_layernorm\.weight", "decoder")],  # BambaModel's norm after the layers
    "zamba2": [*_LM_RULES, (r"model\.final_layernorm\.weight", "decoder")],  # Zamba2Model's too
}
for _t, _rules in _HYBRID_RULES.items():
    ARCHITECTURES[_t] = replace(ARCHITECTURES[_t], rules=_compile(_rules))


def _shrink_hybrid(arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """One layer of each kind, every width kept: Gated DeltaNet then full attention (Qwen3-Next, Qwen3.5),
    Mamba-2 then attention (Bamba), Mamba-2 then two hybrid layers (Zamba2), KDA then MLA (Kimi Linear),
    Nemotron-H's blocks as given (the class default has one of each); a small
    vocabulary, a narrow MLP and 4 narrow experts (2 per token) where the model has experts."""
    cfg = copy.deepcopy(cfg)
    if arch == "nemotron_h":  # the class default's 4 blocks (Mamba-2, experts, attention, MLP) or the spec's
        cfg.update(vocab_size=SMALL_VOCAB, intermediate_size=SMALL_FFN)
        return _shrink_moe_widths(cfg, "n_routed_experts", "moe_shared_expert_intermediate_size")
    if arch == "zamba2":  # a Mamba-2 layer, then two hybrid layers sharing the transformer block(s)
        cfg.pop("layers_block_type", None)
        cfg.update(
            vocab_size=SMALL_VOCAB,
            intermediate_size=SMALL_FFN,
            num_hidden_layers=3,
            layers_block_type=["linear_attention", "hybrid", "hybrid"],
        )
        return cfg
    if arch == "kimi_linear":  # a KDA layer (dense MLP), then an MLA layer (experts)
        for key in ("linear_attn_config", "mlp_layer_types", "first_k_dense_replace"):
            cfg.pop(key, None)
        cfg.update(
            vocab_size=SMALL_VOCAB,
            intermediate_size=SMALL_FFN,
            num_hidden_layers=2,
            layer_types=["linear_attention", "full_attention"],
            mlp_layer_types=["dense", "sparse"],
        )
        return _shrink_moe_widths(cfg, "num_local_experts", "moe_intermediate_size")
    if arch == "bamba":  # one Mamba-2 layer, then one attention layer
        cfg.update(vocab_size=SMALL_VOCAB, intermediate_size=SMALL_FFN, num_hidden_layers=2, attn_layer_indices=[1])
        return cfg
    for key in ("full_attention_interval", "mlp_only_layers", "decoder_sparse_step"):
        cfg.pop(key, None)
    cfg.update(vocab_size=SMALL_VOCAB, num_hidden_layers=2, layer_types=["linear_attention", "full_attention"])
    if arch != "qwen3_5_moe_text":  # Qwen3_5MoeTextConfig has no dense MLP (no intermediate_size)
        cfg["intermediate_size"] = SMALL_FFN
    if arch != "qwen3_5_text":  # Qwen3NextConfig default 512 experts, Qwen3_5MoeTextConfig 256
        cfg = _shrink_moe_widths(cfg, "num_experts", "shared_expert_intermediate_size")
    return cfg


def _shrink_moe_widths(cfg: dict[str, Any], experts: str, shared: str) -> dict[str, Any]:
    cfg.update(
        {
            experts: SMALL_EXPERTS,
            "num_experts_per_tok": SMALL_EXPERTS_PER_TOKEN,
            "moe_intermediate_size": SMALL_EXPERT_FFN,
            shared: SMALL_EXPERT_FFN,
        }
    )
    return cfg


# --- issue 20 section 3 (session 5, fammm): multimodal and audio families ---------------------------
_QWEN3_VL_RULES = [
    # Qwen3VLModel / Qwen3VLMoeModel: `visual` (patch_embed, pos_embed, blocks; merger and the DeepStack
    # mergers project into the LM), `language_model`
    (r"model\.visual\.(patch_embed|pos_embed|blocks)\..+", "vision_tower"),
    (r"model\.visual\.(merger|deepstack_merger_list)\..+", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]

_GLM4V_RULES = [
    # Glm4vModel / Glm4vMoeModel: `visual` (embeddings, patch_embed, blocks, the two norms; downsample and merger
    # project into the LM), `language_model`
    (r"model\.visual\.(embeddings|patch_embed|blocks|post_conv_layernorm|post_layernorm)\..+", "vision_tower"),
    (r"model\.visual\.(downsample|merger)\..+", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]

_INTERNVL_RULES = [
    # InternVLModel: vision_tower (InternVLVisionModel), multi_modal_projector, language_model (a Qwen2Model)
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.multi_modal_projector\..+", "projector"),
    (r"model\.language_model\.embed_tokens\.weight", "embeddings"),
    (r"model\.language_model\.layers\.\d+\..+", "decoder"),
    (r"model\.language_model\.norm\.weight", "decoder"),
    (r"lm_head\.weight", "lm_head"),
]

_MOONSHINE_RULES = [
    # MoonshineForConditionalGeneration: model.encoder (conv1-3, groupnorm, layers, layer_norm), model.decoder
    # (embed_tokens, layers, norm), proj_out (tied to embed_tokens by default)
    (r"model\.encoder\..+", "encoder"),
    (r"model\.decoder\.embed_tokens\.weight", "embeddings"),
    (r"model\.decoder\..+", "decoder"),
    (r"proj_out\.weight", "lm_head"),
]


def _fammm_architectures() -> dict[str, Architecture]:
    """The session-5 families: Qwen3-VL(-MoE), GLM-4V(-MoE), Moonshine and InternVL. In each only the top-level
    tie_word_embeddings ties the LM head (their _tied_weights_keys), expected_tied's default path."""
    return (
        {
            arch: Architecture(
                config_cls,
                model_cls,
                _compile(_QWEN3_VL_RULES),
                lambda m: m.model.language_model.embed_tokens.weight,
                lambda m: m.lm_head.weight,
                False,
            )
            for arch, config_cls, model_cls in (
                ("qwen3_vl", transformers.Qwen3VLConfig, transformers.Qwen3VLForConditionalGeneration),
                ("qwen3_vl_moe", transformers.Qwen3VLMoeConfig, transformers.Qwen3VLMoeForConditionalGeneration),
            )
        }
        | {
            arch: Architecture(
                config_cls,
                model_cls,
                _compile(_GLM4V_RULES),
                lambda m: m.model.language_model.embed_tokens.weight,
                lambda m: m.lm_head.weight,
                False,
            )
            for arch, config_cls, model_cls in (
                ("glm4v", transformers.Glm4vConfig, transformers.Glm4vForConditionalGeneration),
                ("glm4v_moe", transformers.Glm4vMoeConfig, transformers.Glm4vMoeForConditionalGeneration),
            )
        }
        | {
            "moonshine": Architecture(
                transformers.MoonshineConfig,
                transformers.MoonshineForConditionalGeneration,
                _compile(_MOONSHINE_RULES),
                lambda m: m.model.decoder.embed_tokens.weight,
                lambda m: m.proj_out.weight,
                True,  # MoonshineConfig.tie_word_embeddings
            )
        }
        | {
            "internvl": Architecture(
                transformers.InternVLConfig,
                transformers.InternVLForConditionalGeneration,
                _compile(_INTERNVL_RULES),
                lambda m: m.model.language_model.embed_tokens.weight,
                lambda m: m.lm_head.weight,
                True,  # InternVLConfig.tie_word_embeddings: true by default, the only flag InternVL reads
            )
        }
    )


ARCHITECTURES.update(_fammm_architectures())


def expected_tied(arch: str, cfg: dict[str, Any]) -> bool:
    """Whether the real checkpoint shares its LM head with the token embedding, per its config.json."""
    default = ARCHITECTURES[arch].tied_by_default
    if arch in (
        "llava",
        "llava_next",
        "mllama",
        "qwen2_vl",
        "qwen2_5_vl",
        "gemma3",
        "paligemma",
        "mistral3",
        "llava_onevision",
    ):
        text = cfg.get("text_config", {})
        # LlavaConfig.__post_init__ forwards text_config.tie_word_embeddings when the top-level flag
        # is false, so either flag ties. MllamaForConditionalGeneration has no _tied_weights_keys
        # (commented out in modeling_mllama.py): a tied mllama spec is caught by the check below.
        return bool(cfg.get("tie_word_embeddings", default) or text.get("tie_word_embeddings", default))
    return bool(cfg.get("tie_word_embeddings", default))


def _untie_t5_lm_head(model: nn.Module) -> str:
    """Give T5's lm_head its own weight, as the untied checkpoints (flan-t5, T5 v1.1) store it.

    transformers 5.x ``T5Config.__post_init__`` pops ``tie_word_embeddings`` (turning it into
    ``scale_decoder_outputs``) and then forces ``tie_word_embeddings = True``, so a model built from a
    config always shares ``lm_head.weight`` with ``shared.weight`` (``T5ForConditionalGeneration.
    _tied_weights_keys``). ``from_pretrained`` keeps them apart only because
    ``PreTrainedModel.tie_weights`` skips tying when both keys are in the checkpoint with different
    values (modeling_utils.py). The real untied checkpoint has a separate vocab x d_model lm_head.
    """
    # A new Parameter of the same shape (a meta tensor on `meta`, a copy of the values on the CPU).
    model.lm_head.weight = nn.Parameter(model.shared.weight.detach().clone())
    # Keep a later tie_weights() (not called by forward, but cheap insurance) from re-tying it.
    tied_keys = getattr(model, "all_tied_weights_keys", None)
    if isinstance(tied_keys, dict):
        tied_keys.pop("lm_head.weight", None)
    return (
        "lm_head untied from shared: transformers 5.x T5Config forces tie_word_embeddings=True and "
        "T5ForConditionalGeneration ties lm_head.weight to shared.weight, but this checkpoint's "
        "config.json says tie_word_embeddings=false and from_pretrained keeps its separate lm_head"
    )


def build_model(
    arch: str, cfg: dict[str, Any], overrides: dict[str, Any] | None = None, device: str = "meta"
) -> tuple[nn.Module, Any, list[str]]:
    """Instantiate the full model class from a spec-shaped config; return model, config, corrections."""
    a = ARCHITECTURES[arch]
    kwargs = copy.deepcopy(cfg)
    for path, value in (overrides or {}).items():  # "text_config.pad_token_id" -> kwargs["text_config"][...]
        target = kwargs
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    config = a.config_cls(**kwargs)
    with torch.device(device):
        model = a.model_cls(config)
    model.eval()
    corrections = []
    want_tied = expected_tied(arch, cfg)
    is_tied = a.lm_head(model) is a.embedding(model)
    if is_tied and not want_tied:
        if arch != "t5":
            raise ReferenceError(
                f"{a.model_cls.__name__} tied its LM head although the spec says tie_word_embeddings=false"
            )
        corrections.append(_untie_t5_lm_head(model))
    elif want_tied and not is_tied:
        raise ReferenceError(
            f"{a.model_cls.__name__} did not tie its LM head although the spec says tie_word_embeddings=true"
        )
    if (a.lm_head(model) is a.embedding(model)) != want_tied:
        raise ReferenceError("LM head tying still disagrees with the spec after correction")
    return model, config, corrections


def count_parameters(arch: str, model: nn.Module) -> dict[str, Any]:
    rules = ARCHITECTURES[arch].rules
    components: dict[str, int] = {}
    unmapped = []
    for name, param in model.named_parameters():  # remove_duplicate=True: a tied weight appears once
        component = next((c for pattern, c in rules if pattern.fullmatch(name)), None)
        if component is None:
            unmapped.append(name)
            continue
        components[component] = components.get(component, 0) + param.numel()
    if unmapped:
        raise ReferenceError(f"parameters mapped to no component: {unmapped[:10]}")
    total = sum(p.numel() for p in model.parameters())
    if total != sum(components.values()):
        raise ReferenceError(f"component sum {sum(components.values())} != total {total}")
    # Names that share one Parameter object (identity: on `meta` every data_ptr() is 0).
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    shared = sorted(sorted(names) for names in groups.values() if len(names) > 1)
    a = ARCHITECTURES[arch]
    emb, head = a.embedding(model), a.lm_head(model)
    return {
        "total": total,
        "components": dict(sorted(components.items())),
        "lm_head_tied": head is emb,
        "shared_parameter_names": shared,
        "embedding_shape": list(emb.shape),
        "lm_head_shape": list(head.shape) if head is not None else None,
    }


def keep_in_fp32(model: nn.Module) -> dict[str, Any]:
    """The parameters transformers keeps in float32 when this class loads in float16: the names of
    `_keep_in_fp32_modules` matched against parameter names as from_pretrained matches them
    (PreTrainedModel._get_dtype_plan, then core_model_loading.build_glob_alternation's regex
    `search` on each checkpoint key)."""
    modules = sorted(model._keep_in_fp32_modules or [])
    if not modules:
        return {"modules": [], "parameters": 0}
    pattern, _, _ = build_glob_alternation(modules)
    n = sum(p.numel() for name, p in model.named_parameters() if pattern.search(name))
    return {"modules": modules, "parameters": n}


def resolved_attention(arch: str, config: Any) -> dict[str, Any]:
    """Attention fields of the decoder as transformers resolved them (defaults applied)."""
    if arch in BART_LIKE:
        return {
            k: getattr(config, k)
            for k in (
                "encoder_layers",
                "decoder_layers",
                "encoder_attention_heads",
                "decoder_attention_heads",
                "d_model",
                "max_position_embeddings",
            )
        }
    if arch == "florence2":
        return {
            "text_config." + k: getattr(config.text_config, k)
            for k in (
                "encoder_layers",
                "decoder_layers",
                "decoder_attention_heads",
                "d_model",
                "max_position_embeddings",
            )
        }
    if arch == "pix2struct":
        return {
            "text_config." + k: getattr(config.text_config, k)
            for k in ("num_layers", "num_heads", "d_kv", "hidden_size")
        }
    if arch in ENCODER_ONLY:
        return {
            f"{tower}.{k}": getattr(getattr(config, tower), k)
            for tower in ("text_config", "vision_config")
            for k in ("num_hidden_layers", "num_attention_heads", "hidden_size")
        }
    if arch in ("t5", "mt5", "whisper"):
        keys = {
            "t5": ("num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_model"),
            "mt5": ("num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_model"),
            "whisper": (
                "encoder_layers",
                "decoder_layers",
                "encoder_attention_heads",
                "decoder_attention_heads",
                "d_model",
                "max_source_positions",
                "max_target_positions",
            ),
        }[arch]
        return {k: getattr(config, k) for k in keys}
    text = config.get_text_config(decoder=True)
    out = {
        k: getattr(text, k, None)
        for k in (
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "hidden_size",
            "sliding_window",
            "layer_types",
        )
    }
    if arch == "mllama":
        out["cross_attention_layers"] = list(text.cross_attention_layers)
    return out


# --- small copies ------------------------------------------------------------------------------
def _shrink_lm(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    layers = cfg.get("sliding_window_pattern", SMALL_LAYERS) if "layer_types" not in cfg else SMALL_LAYERS
    cfg.update(vocab_size=SMALL_VOCAB, intermediate_size=SMALL_FFN, num_hidden_layers=layers)
    if cfg.get("layer_types"):
        cfg["layer_types"] = cfg["layer_types"][:layers]
    return cfg


def _clip_layers_needed(feature_layer: int | list[int]) -> int:
    """CLIP layers a small tower needs so that `hidden_states[vision_feature_layer]` exists.

    CLIPEncoder returns num_hidden_layers + 1 hidden states (embeddings first), and LlavaModel.
    get_image_features indexes them with vision_feature_layer (-2 by default: one layer suffices).
    """
    layers = feature_layer if isinstance(feature_layer, list) else [feature_layer]
    return max([SMALL_VISION_LAYERS] + [(-i - 1) if i < 0 else i for i in layers])


def _shrink_moe(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = _shrink_lm(cfg)
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if key in cfg:
            cfg[key] = SMALL_EXPERTS
    cfg["num_experts_per_tok"] = min(cfg["num_experts_per_tok"], SMALL_EXPERTS_PER_TOKEN)
    for key in ("moe_intermediate_size", "shared_expert_intermediate_size"):
        if key in cfg:
            cfg[key] = SMALL_EXPERT_FFN
    if "intermediate_size_mlp" in cfg:  # Llama 4: one period of chunked / full layers
        cfg.update(intermediate_size_mlp=SMALL_FFN, num_hidden_layers=cfg.get("no_rope_layer_interval", 4))
    if "first_k_dense_replace" in cfg:  # DeepSeek: one dense layer, one MoE layer
        cfg["first_k_dense_replace"] = min(cfg["first_k_dense_replace"], 1)
    return cfg


SSM = ("mamba", "falcon_mamba", "jamba", "falcon_h1", "mamba2", "granitemoehybrid")


def _shrink_granite_hybrid(cfg: dict[str, Any]) -> dict[str, Any]:
    """Two layers, Mamba-2 then attention (every mixer and attention width kept); few narrow experts
    when the model has any (num_local_experts 0 stays a model without routed experts)."""
    cfg = copy.deepcopy(cfg)
    cfg.update(
        vocab_size=SMALL_VOCAB,
        num_hidden_layers=2,
        layer_types=["mamba", "attention"],
        shared_intermediate_size=SMALL_FFN,
    )
    if cfg.get("num_local_experts", 8):  # GraniteMoeHybridConfig default 8
        cfg.update(
            num_local_experts=SMALL_EXPERTS,
            intermediate_size=SMALL_EXPERT_FFN,
            num_experts_per_tok=min(cfg.get("num_experts_per_tok", 2), SMALL_EXPERTS_PER_TOKEN),
        )
    return cfg


def _shrink_classic(arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """BLOOM, Falcon and DBRX under their config.json names: two layers (the old names win over the generic
    decoder's in transformers and in willitrun), a small vocabulary and a narrow MLP / few narrow experts;
    every attention width kept."""
    cfg = copy.deepcopy(cfg)
    cfg["vocab_size"] = SMALL_VOCAB
    for name in ("n_layer", "n_layers", "num_hidden_layers"):
        if name in cfg:
            cfg[name] = SMALL_LAYERS
    cfg.setdefault("n_layers" if arch == "dbrx" else "num_hidden_layers", SMALL_LAYERS)
    if arch == "falcon":
        cfg.update(ffn_hidden_size=SMALL_FFN, intermediate_size=SMALL_FFN)
    if arch == "bloom":
        cfg.pop("intermediate_size", None)  # 4 x hidden_size, whatever is written
    if arch == "dbrx":
        ffn = dict(cfg.get("ffn_config") or {})
        ffn.update(
            ffn_hidden_size=SMALL_EXPERT_FFN,
            moe_num_experts=SMALL_EXPERTS,
            moe_top_k=min(ffn.get("moe_top_k", 1), SMALL_EXPERTS_PER_TOKEN),
        )
        cfg["ffn_config"] = ffn
    return cfg


# config.json's old names the willitrun spec also writes under the generic decoder's (both must agree)
_OLD_NAMES = {"n_layer": "num_hidden_layers", "n_inner": "intermediate_size", "ffn_dim": "intermediate_size"}


def _shrink_renamed(cfg: dict[str, Any]) -> dict[str, Any]:
    """GPT-2, GPTBigCode, GPT-J and OPT: two layers and a narrow MLP under both names; widths and positions kept."""
    cfg = copy.deepcopy(cfg)
    cfg.update(vocab_size=SMALL_VOCAB, num_hidden_layers=SMALL_LAYERS, intermediate_size=SMALL_FFN)
    for old, new in _OLD_NAMES.items():
        if old in cfg or (old == "n_inner" and "n_embd" in cfg):
            cfg[old] = cfg[new]
    return cfg


def _shrink_ernie_moe(cfg: dict[str, Any]) -> dict[str, Any]:
    """ERNIE 4.5 MoE: two layers, the second sparse (moe_layer_start_index 1), few narrow experts."""
    cfg = _shrink_lm(cfg)
    cfg.update(
        moe_num_experts=SMALL_EXPERTS,
        moe_k=min(cfg.get("moe_k", 2), SMALL_EXPERTS_PER_TOKEN),
        num_experts_per_tok=min(cfg.get("moe_k", 2), SMALL_EXPERTS_PER_TOKEN),
        moe_intermediate_size=SMALL_EXPERT_FFN,
        moe_layer_start_index=1,
        moe_layer_end_index=SMALL_LAYERS - 1,
    )
    return cfg


def small_config(arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    if arch in HYBRID_FAMILIES:
        return _shrink_hybrid(arch, cfg)
    if arch in ("bloom", "falcon", "dbrx"):
        return _shrink_classic(arch, cfg)
    if arch in ("gpt2", "gpt_bigcode", "gptj", "opt"):
        return _shrink_renamed(cfg)
    if arch == "ernie4_5_moe":
        return _shrink_ernie_moe(cfg)
    if arch in ("deepseek_v32", "glm_moe_dsa"):  # one dense and one MoE layer, few narrow experts; the DSA kept
        cfg = _shrink_moe(cfg)
        if "mlp_layer_types" in cfg:
            cfg["mlp_layer_types"] = ["dense", "sparse"]
        for key in ("indexer_types", "index_topk_pattern"):  # GLM-5: a full indexer layer, then a shared one
            if key in cfg:
                cfg[key] = ["full", "shared"] if key == "indexer_types" else "FS"
        return cfg
    if arch == "jamba":  # two layers: Mamba + dense MLP, then attention + experts; widths kept
        cfg = _shrink_moe(cfg)
        cfg.update(attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1)
        return cfg
    if arch == "falcon_h1":  # attention and Mamba-2 widths kept; MLP, layers and vocabulary shrunk
        return _shrink_lm(cfg)
    if arch == "granitemoehybrid":
        return _shrink_granite_hybrid(cfg)
    if arch == "lfm2":  # one short-convolution layer and one attention layer; widths kept
        cfg = _shrink_lm(cfg)
        cfg.pop("full_attn_idxs", None)
        cfg.update(num_hidden_layers=2, layer_types=["conv", "full_attention"])
        return cfg
    if arch in SSM:  # state widths (intermediate_size, state_size, conv_kernel) kept; layers and vocab shrunk
        cfg.update(vocab_size=SMALL_VOCAB, num_hidden_layers=SMALL_LAYERS)
        return cfg
    if arch in LLAMA_LIKE:
        return _shrink_lm(cfg)
    if arch in MOE:
        return _shrink_moe(cfg)
    if arch in ("t5", "mt5"):
        cfg.update(vocab_size=SMALL_VOCAB, d_ff=SMALL_FFN, num_layers=SMALL_LAYERS, num_decoder_layers=SMALL_LAYERS)
        return cfg
    if arch == "whisper":
        cfg.update(
            vocab_size=SMALL_VOCAB,
            encoder_layers=SMALL_LAYERS,
            decoder_layers=SMALL_LAYERS,
            encoder_ffn_dim=SMALL_FFN,
            decoder_ffn_dim=SMALL_FFN,
        )
        return cfg
    if arch in ("llava", "llava_next"):
        cfg["text_config"] = _shrink_lm(cfg["text_config"])
        feature_layer = cfg.get("vision_feature_layer", ARCHITECTURES[arch].config_cls().vision_feature_layer)
        cfg["vision_config"].update(
            hidden_size=SMALL_VISION_HIDDEN,
            intermediate_size=SMALL_FFN,
            num_attention_heads=SMALL_VISION_HEADS,
            num_hidden_layers=_clip_layers_needed(feature_layer),
        )
        return cfg
    if arch == "mllama":
        # Three text layers, the middle one cross-attending: self, cross, self.
        cfg["text_config"].update(
            vocab_size=SMALL_VOCAB, intermediate_size=SMALL_FFN, num_hidden_layers=3, cross_attention_layers=[1]
        )
        intermediate_layers = [0]
        cfg["vision_config"].update(
            hidden_size=SMALL_VISION_HIDDEN,
            intermediate_size=SMALL_FFN,
            attention_heads=SMALL_VISION_HEADS,
            num_hidden_layers=SMALL_VISION_LAYERS,
            num_global_layers=1,
            intermediate_layers_indices=intermediate_layers,
            # MllamaVisionModel.forward concatenates the last hidden state with one hidden state per
            # intermediate layer, so the projector's input width is hidden * (1 + len(indices)).
            vision_output_dim=SMALL_VISION_HIDDEN * (1 + len(intermediate_layers)),
        )
        return cfg
    if arch in BART_LIKE:
        cfg.update(
            vocab_size=SMALL_VOCAB,
            encoder_layers=SMALL_LAYERS,
            decoder_layers=SMALL_LAYERS,
            encoder_ffn_dim=SMALL_FFN,
            decoder_ffn_dim=SMALL_FFN,
        )
        return cfg
    if arch == "florence2":  # widths and the image geometry kept; one DaViT block per stage, 2 + 2 BART layers
        cfg["text_config"].update(
            vocab_size=SMALL_VOCAB,
            encoder_layers=SMALL_LAYERS,
            decoder_layers=SMALL_LAYERS,
            encoder_ffn_dim=SMALL_FFN,
            decoder_ffn_dim=SMALL_FFN,
        )
        cfg["vision_config"]["depths"] = [1] * len(cfg["vision_config"]["depths"])
        return cfg
    if arch == "pix2struct":  # widths (hidden, heads, d_kv, patch width) kept; layers, FFN and vocabulary shrunk
        cfg["text_config"].update(vocab_size=SMALL_VOCAB, d_ff=SMALL_FFN, num_layers=SMALL_LAYERS)
        cfg["vision_config"].update(d_ff=SMALL_FFN, num_hidden_layers=SMALL_LAYERS)
        return cfg
    if arch in ENCODER_ONLY:
        # widths kept (SigLIP's text head projects to the text width, which must equal the vision width
        # for the image-text logits); two text layers, one vision layer, small vocabulary and FFN
        cfg["text_config"].update(vocab_size=SMALL_VOCAB, intermediate_size=SMALL_FFN, num_hidden_layers=SMALL_LAYERS)
        cfg["vision_config"].update(intermediate_size=SMALL_FFN, num_hidden_layers=SMALL_VISION_LAYERS)
        return cfg
    if arch == "mistral3":  # a two-layer text model, a one-layer Pixtral at the real patch size
        cfg["text_config"] = _shrink_lm(cfg["text_config"])
        cfg["vision_config"].update(
            hidden_size=SMALL_VISION_HIDDEN,
            intermediate_size=SMALL_FFN,
            head_dim=16,
            num_attention_heads=SMALL_VISION_HEADS,
            num_hidden_layers=SMALL_VISION_LAYERS,
        )
        return cfg
    if arch in ("llava_onevision", "idefics3", "smolvlm"):
        # A two-layer text model; a one-layer SigLIP-shaped tower at the real image and patch size (the
        # anyres grid and the pixel shuffle depend on the patch grid). LLaVA-OneVision reads the last layer.
        cfg["text_config"] = _shrink_lm(cfg["text_config"])
        cfg.setdefault("vision_config", {}).update(
            hidden_size=SMALL_VISION_HIDDEN,
            intermediate_size=SMALL_FFN,
            num_attention_heads=SMALL_VISION_HEADS,
            num_hidden_layers=SMALL_VISION_LAYERS,
        )
        return cfg
    if arch in ("gemma3", "paligemma"):
        # One local/global period of text layers; a one-layer SigLIP at the real image size (the pooling
        # to mm_tokens_per_image depends on the patch grid).
        cfg["text_config"] = _shrink_lm(cfg["text_config"])
        cfg["vision_config"].update(
            hidden_size=SMALL_VISION_HIDDEN,
            intermediate_size=SMALL_FFN,
            num_attention_heads=SMALL_VISION_HEADS,
            num_hidden_layers=SMALL_VISION_LAYERS,
        )
        return cfg
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        cfg["text_config"] = _shrink_lm(cfg["text_config"])
        v = cfg["vision_config"]
        v.update(num_heads=SMALL_VISION_HEADS, depth=2)
        if arch == "qwen2_vl":  # embed_dim is the ViT width, hidden_size the merger's output (the LM's)
            v.update(embed_dim=SMALL_VISION_HIDDEN)
        else:  # hidden_size is the ViT width; one windowed block, one full-attention block
            v.update(hidden_size=SMALL_VISION_HIDDEN, intermediate_size=SMALL_FFN, fullatt_block_indexes=[1])
        return cfg
    if arch in FAMMM_SMALL:
        return FAMMM_SMALL[arch](cfg)
    raise ReferenceError(f"no small copy rule for {arch}")


_TOKEN_ATTR = re.compile(r".*_token_(id|index)$")


def token_overrides(arch: str, small_cfg: dict[str, Any]) -> dict[str, int]:
    """Move special token ids that do not fit the small vocabulary to its top; they change no shape.

    Needed because e.g. WhisperDecoder / MllamaTextModel build nn.Embedding(..., padding_idx=
    pad_token_id), which must be < the number of rows, and Llava replaces `image_token_index` ids.
    """
    # This probe config still has the full-size ids, which PreTrainedConfig validation warns about
    # ("... must be None or an integer within the vocabulary"): silence that one expected warning.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        config = ARCHITECTURES[arch].config_cls(**copy.deepcopy(small_cfg))
    finally:
        transformers.logging.set_verbosity(verbosity)
    scopes = [("", config)]
    if hasattr(config, "text_config"):
        scopes.append(("text_config.", config.text_config))
    offending = []
    for prefix, scope in scopes:
        for key, value in sorted(vars(scope).items()):
            if _TOKEN_ATTR.fullmatch(key) and isinstance(value, int) and value >= SMALL_VOCAB:
                offending.append((prefix + key, value))
    new_id = {old: SMALL_VOCAB - 1 - i for i, old in enumerate(sorted({v for _, v in offending}, reverse=True))}
    if new_id and min(new_id.values()) < TEXT_TOKEN_ID_LIMIT:
        raise ReferenceError("too many special token ids to fit above the text token range")
    return {path: new_id[value] for path, value in offending}


def _text_ids(gen: torch.Generator, batch: int, length: int) -> torch.Tensor:
    return torch.randint(1, TEXT_TOKEN_ID_LIMIT, (batch, length), generator=gen)


def _tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def describe_cache(cache: Any, cross_layer_ids: set[int]) -> dict[str, Any]:
    """Walk a transformers 5.23 cache and count what it really holds.

    * DynamicCache (cache_utils.py): `.layers`, one DynamicLayer (or DynamicSlidingWindowLayer when
      the config has a sliding_window) per decoder layer, each with `.keys` / `.values` of shape
      [batch, kv_heads, positions, head_dim].
    * EncoderDecoderCache (T5, Whisper): `.self_attention_cache` and `.cross_attention_cache`, two
      DynamicCaches; the cross one holds K/V of the encoder output, written once in the prefill.
    * Mllama: one DynamicCache for all text layers; the layers listed in cross_attention_layers hold
      the projected vision states (MllamaTextCrossAttention calls past_key_values.update with them).
    * DeepSeek-V3.2 / GLM-5 (DynamicIndexedLayer): beside the MLA latent, `.indexer_keys` of
      [batch, positions, index_head_dim], the DSA indexer's keys (None in a layer that shares its selection);
      counted with the self-attention elements and recorded apart as `indexer_key_elements`.
    """
    if isinstance(cache, EncoderDecoderCache):
        groups = [("self", cache.self_attention_cache.layers), ("cross", cache.cross_attention_cache.layers)]
        kinds = [(kind, i, layer) for kind, layers in groups for i, layer in enumerate(layers)]
    elif isinstance(cache, DynamicCache):
        kinds = [("cross" if i in cross_layer_ids else "self", i, layer) for i, layer in enumerate(cache.layers)]
    else:
        raise ReferenceError(f"unexpected cache type {type(cache).__name__}")
    out: dict[str, Any] = {"cache_class": type(cache).__name__, "layers": []}
    indexed = 0
    for kind in ("self", "cross"):
        positions, elements, storage = set(), 0, {}
        filled = 0
        for k, i, layer in kinds:
            if k != kind:
                continue
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            entry = {"kind": kind, "index": i, "class": type(layer).__name__}
            if _tensor(keys) and _tensor(values) and keys.numel() > 0 and values.numel() > 0:
                filled += 1
                positions.add(keys.shape[-2])
                if values.shape[-2] != keys.shape[-2]:
                    raise ReferenceError(f"layer {i}: keys and values hold different lengths")
                elements += keys.numel() + values.numel()
                # A tensor may be a view of a larger buffer (DynamicSlidingWindowLayer.update keeps
                # `full_key_states[:, :, -window + 1:]`): count the storage it keeps alive, too.
                for t in (keys, values):
                    st = t.untyped_storage()
                    storage[st.data_ptr()] = st.nbytes() // t.element_size()
                entry["keys_shape"], entry["values_shape"] = list(keys.shape), list(values.shape)
                entry["dtype"] = str(keys.dtype).removeprefix("torch.")
                indexer = getattr(layer, "indexer_keys", None)
                if _tensor(indexer) and indexer.numel() > 0:
                    elements += indexer.numel()
                    indexed += indexer.numel()
                    st = indexer.untyped_storage()
                    storage[st.data_ptr()] = st.nbytes() // indexer.element_size()
                    entry["indexer_keys_shape"] = list(indexer.shape)
            else:
                entry["empty"] = True
            out["layers"].append(entry)
        if len(positions) > 1:
            # Local and global layers (Gemma 2/3): sliding layers hold a view of their window, full
            # layers every position; recorded per length, the total is in the element counts.
            out[f"{kind}_positions_held"] = sorted(positions)
        out[f"{kind}_positions"] = max(positions) if positions else 0
        out[f"{kind}_layers"] = filled
        out[f"kv_{kind}_elements"] = elements
        out[f"kv_{kind}_storage_elements"] = sum(storage.values())
    out["empty_layers"] = sum(1 for e in out["layers"] if e.get("empty"))
    if indexed:  # recorded only for models with the DSA indexer
        out["indexer_key_elements"] = indexed
    # Recurrent state of state-space layers (LinearAttentionLayer: conv_states / recurrent_states,
    # dicts keyed by state index), per layer; elements of the whole batch.
    conv = ssm = 0
    state_layers = 0
    for _, _, layer in kinds:
        convs, recs = getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)
        if isinstance(convs, dict) or isinstance(recs, dict):
            state_layers += 1
            conv += sum(t.numel() for t in (convs or {}).values() if _tensor(t))
            ssm += sum(t.numel() for t in (recs or {}).values() if _tensor(t))
    if state_layers:  # recorded only for models with state-space layers
        out["state_layers"], out["conv_state_elements"], out["ssm_state_elements"] = state_layers, conv, ssm
    # What the cache object itself reports (cumulative tokens seen by the self-attention layers),
    # which for a sliding-window layer exceeds what it holds.
    if out["self_layers"] or not state_layers:  # a cache of only state-space layers has no sequence length
        out["cache_get_seq_length"] = int(cache.get_seq_length())
    return out


def state_dtypes_bf16(arch: str, cfg: dict[str, Any], overrides: dict[str, Any]) -> dict[str, list[str]]:
    """The dtypes transformers caches the recurrent state in when the model runs in bfloat16, which the
    float32 runs cannot show: the same small copy, cast to bfloat16, one prefill on the CPU, then the
    dtype of every conv and SSM state tensor of the returned cache (LinearAttentionLayer)."""
    torch.manual_seed(SEED)
    model, config, _ = build_model(arch, cfg, overrides, device="cpu")
    model.to(torch.bfloat16)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        kwargs, _ = lm_inputs(model, config, gen)
        output = model(**kwargs, use_cache=True)
    cache = getattr(output, "past_key_values", None)
    if cache is None:
        cache = output.cache_params  # MambaCausalLMOutput
    dtypes: dict[str, set[str]] = {"conv": set(), "ssm": set()}
    for layer in cache.layers:
        for kind, states in (
            ("conv", getattr(layer, "conv_states", None)),
            ("ssm", getattr(layer, "recurrent_states", None)),
        ):
            for t in (states or {}).values() if isinstance(states, dict) else ():
                if _tensor(t):
                    dtypes[kind].add(str(t.dtype).removeprefix("torch."))
    del model, output
    gc.collect()
    return {kind: sorted(v) for kind, v in dtypes.items()}


def routing_overrides(arch: str) -> dict[str, int]:
    """DeepSeek-V3 routes within expert groups (n_group 8 by default), which the small copy's 4 experts
    cannot form: one group. Routing changes no shape and no cache."""
    return {"n_group": 1, "topk_group": 1} if arch in ("deepseek_v3", "deepseek_v32") else {}


def run_case(
    arch: str, name: str, cfg: dict[str, Any], make_inputs: Callable[..., tuple[dict, dict]]
) -> dict[str, Any]:
    overrides = {**token_overrides(arch, cfg), **routing_overrides(arch), **fammm_overrides(arch, cfg)}
    torch.manual_seed(SEED)
    model, config, corrections = build_model(arch, cfg, overrides, device="cpu")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ReferenceError("small copy is not float32")
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        kwargs, record = make_inputs(model, config, gen)
        if arch in ENCODER_ONLY:  # CLIPModel / SiglipModel take no use_cache: they cache nothing
            output = model(**kwargs)
            if getattr(output, "past_key_values", None) is not None:
                raise ReferenceError(f"{type(model).__name__} returned a cache")
            return {
                "name": name,
                "config": cfg,
                "hf_overrides": overrides,
                "corrections": corrections,
                "parameters": count_parameters(arch, model),
                **record,
                "cache_class": None,
                "output_keys": sorted(output.keys()),
                "self_layers": 0,
                "cross_layers": 0,
                "kv_self_elements": 0,
                "kv_cross_elements": 0,
                "kv_self_storage_elements": 0,
                "kv_cross_storage_elements": 0,
            }
        output = model(**kwargs, use_cache=True)
    cross_ids = set(config.text_config.cross_attention_layers) if arch == "mllama" else set()
    cache_obj = getattr(output, "past_key_values", None)
    if cache_obj is None:
        cache_obj = output.cache_params  # MambaCausalLMOutput
    cache = describe_cache(cache_obj, cross_ids)
    if cache.get("state_layers"):
        cache["state_dtypes_bf16"] = state_dtypes_bf16(arch, cfg, overrides)
    result = {
        "name": name,
        "config": cfg,
        "hf_overrides": overrides,
        "corrections": corrections,
        "parameters": count_parameters(arch, model),  # the small copy's own counts
        **record,
        **cache,
    }
    del model, output, kwargs
    gc.collect()
    return result


def _inputs(
    batch=None, text_tokens=None, encoder_tokens=None, mel_frames=None, images=0, image_size=None, tiles=None
) -> dict[str, Any]:
    return {
        "batch": batch,
        "text_tokens": text_tokens,
        "encoder_tokens": encoder_tokens,
        "mel_frames": mel_frames,
        "images": images,
        "image_size": image_size,
        "tiles": tiles,
    }


def lm_inputs(model, config, gen):
    ids = _text_ids(gen, LM_BATCH, LM_TOKENS)
    return {"input_ids": ids}, {"inputs": _inputs(batch=LM_BATCH, text_tokens=LM_TOKENS)}


def t5_inputs(model, config, gen):
    return (
        {
            "input_ids": _text_ids(gen, T5_BATCH, T5_ENCODER_TOKENS),
            "decoder_input_ids": _text_ids(gen, T5_BATCH, T5_DECODER_TOKENS),
        },
        {"inputs": _inputs(batch=T5_BATCH, text_tokens=T5_DECODER_TOKENS, encoder_tokens=T5_ENCODER_TOKENS)},
    )


def whisper_inputs(model, config, gen):
    # WhisperEncoder.forward requires exactly max_source_positions * conv1.stride * conv2.stride
    # input frames (2 x 1500 = 3000 for 30 s of audio); conv2 (stride 2) halves them.
    frames = config.max_source_positions * model.model.encoder.conv1.stride[0] * model.model.encoder.conv2.stride[0]
    feats = torch.randn(WHISPER_BATCH, config.num_mel_bins, frames, generator=gen)
    return (
        {"input_features": feats, "decoder_input_ids": _text_ids(gen, WHISPER_BATCH, WHISPER_DECODER_TOKENS)},
        {"inputs": _inputs(batch=WHISPER_BATCH, text_tokens=WHISPER_DECODER_TOKENS, mel_frames=frames)},
    )


def _image_prompt(config, gen, n_image_tokens: int) -> torch.Tensor:
    image = torch.full((1, n_image_tokens), config.image_token_id, dtype=torch.long)
    return torch.cat([image, _text_ids(gen, 1, VLM_TEXT_TOKENS)], dim=1)


def llava_inputs(model, config, gen):
    size = config.vision_config.image_size
    pixels = torch.randn(1, config.vision_config.num_channels, size, size, generator=gen)
    # The number of image tokens is whatever LlavaModel.get_image_features returns per image
    # (vision_feature_layer / vision_feature_select_strategy applied, then the projector).
    features = model.get_image_features(pixel_values=pixels).pooler_output
    n = sum(f.shape[0] for f in features)
    return (
        {"input_ids": _image_prompt(config, gen, n), "pixel_values": pixels},
        {"inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=[size, size]), "image_tokens": n},
    )


def llava_next_inputs(image_hw: list[int]):
    def make(model, config, gen):
        size = config.vision_config.image_size
        # LlavaNextModel.get_image_features slices image_size_to_num_patches(...) crops per image
        # (the resized base image + the anyres tiles of the best-fitting image_grid_pinpoints entry).
        crops = image_size_to_num_patches(image_hw, config.image_grid_pinpoints, size)
        pixels = torch.randn(1, crops, config.vision_config.num_channels, size, size, generator=gen)
        image_sizes = torch.tensor([image_hw])
        # pack_image_features: base features + unpadded tile features + one image_newline per row.
        features = model.get_image_features(pixel_values=pixels, image_sizes=image_sizes).pooler_output
        n = sum(f.shape[0] for f in features)
        return (
            {"input_ids": _image_prompt(config, gen, n), "pixel_values": pixels, "image_sizes": image_sizes},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_crops": crops,
            },
        )

    return make


def gemma3_inputs(model, config, gen):
    """One image at the tower's size; the token count is the projector's pooled output rows."""
    v = config.vision_config
    pixels = torch.randn(1, v.num_channels, v.image_size, v.image_size, generator=gen)
    features = model.get_image_features(pixel_values=pixels).pooler_output
    n = sum(f.shape[0] for f in features)
    return (
        {"input_ids": _image_prompt(config, gen, n), "pixel_values": pixels},
        {
            "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=[v.image_size, v.image_size]),
            "image_tokens": n,
        },
    )


def mistral3_inputs(image_hw: list[int]):
    """One image through transformers' PixtralImageProcessorPil as Mistral 3 drives it (patch_size x
    spatial_merge_size, longest_edge = the tower's image_size), the projector's rows counted; the prompt
    writes one [IMG_BREAK] per row of merged patches (the last is [IMG_END]), as PixtralProcessor does."""

    def make(model, config, gen):
        v = config.vision_config
        unit = v.patch_size * config.spatial_merge_size
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processed = PixtralImageProcessorPil()(
            images=[image], size={"longest_edge": v.image_size}, patch_size=unit, return_tensors="pt"
        )
        pixels, sizes = processed["pixel_values"], processed["image_sizes"]
        features = model.get_image_features(pixel_values=pixels, image_sizes=sizes).pooler_output
        n = sum(f.shape[0] for f in features)
        rows, cols = int(sizes[0][0]) // unit, int(sizes[0][1]) // unit
        if n != rows * cols:
            raise ReferenceError(f"{n} image features for a {rows} x {cols} grid")
        marker = _text_ids(gen, 1, 1)  # [IMG_BREAK] / [IMG_END]: ordinary vocabulary ids
        row = torch.cat([torch.full((1, cols), config.image_token_id, dtype=torch.long), marker], dim=1)
        ids = torch.cat([row] * rows + [_text_ids(gen, 1, VLM_TEXT_TOKENS)], dim=1)
        return (
            {"input_ids": ids, "pixel_values": pixels, "image_sizes": sizes},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=list(image_hw)),
                "image_tokens": n + rows,
                "image_features": n,
                "resized": sizes.tolist(),
            },
        )

    return make


def qwen_vl_inputs(image_hw: list[int]):
    """One image through transformers' own Qwen2VLImageProcessorPil (its default min/max pixels,
    patch 14, merge 2, temporal patch 2) and the model's get_image_features: the image token count is
    the merger's output rows. The prompt is <vision_start> image tokens <vision_end> text."""

    def make(model, config, gen):
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processed = Qwen2VLImageProcessorPil()(images=[image], return_tensors="pt")
        pixels, grid = processed["pixel_values"], processed["image_grid_thw"]
        features = model.get_image_features(pixel_values=pixels, image_grid_thw=grid).pooler_output
        n = sum(f.shape[0] for f in features)
        ids = torch.cat(
            [
                torch.tensor([[config.vision_start_token_id]]),
                torch.full((1, n), config.image_token_id, dtype=torch.long),
                torch.tensor([[config.vision_end_token_id]]),
                _text_ids(gen, 1, VLM_TEXT_TOKENS),
            ],
            dim=1,
        )
        # M-RoPE positions: 1 marks image tokens (ProcessorMixin.create_mm_token_type_ids)
        mm_types = (ids == config.image_token_id).to(torch.int32)
        return (
            {"input_ids": ids, "pixel_values": pixels, "image_grid_thw": grid, "mm_token_type_ids": mm_types},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS + 2, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_grid_thw": grid.tolist(),
            },
        )

    return make


def llava_onevision_inputs(image_hw: list[int]):
    """One image through transformers' LlavaOnevisionImageProcessorPil (the config's pinpoints, 384 crops):
    the image token count is what get_image_features returns (pack_image_features: base view, unpadded and
    anyres_max-capped tiles, newlines); LlavaOnevisionProcessor._get_number_of_features, the count the
    processor writes into the prompt, must agree."""

    def make(model, config, gen):
        v = config.vision_config
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processed = LlavaOnevisionImageProcessorPil()(
            images=[image],
            image_grid_pinpoints=config.image_grid_pinpoints,
            size={"height": v.image_size, "width": v.image_size},
            return_tensors="pt",
        )
        pixels, sizes = processed["pixel_values"], processed["image_sizes"]
        features = model.get_image_features(pixel_values=pixels, image_sizes=sizes, batch_num_images=[1]).pooler_output
        n = sum(f.shape[0] for f in features)
        # The processor's own count: _get_number_of_features reads only these attributes (no tokenizer needed).
        processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
        processor.image_processor = LlavaOnevisionImageProcessorPil(image_grid_pinpoints=config.image_grid_pinpoints)
        processor.num_image_tokens = (v.image_size // v.patch_size) ** 2
        processor.vision_aspect_ratio = config.vision_aspect_ratio
        counted = processor._get_number_of_features(h, w, v.image_size, v.image_size)
        if counted != n:
            raise ReferenceError(f"processor writes {counted} image tokens, get_image_features returns {n}")
        return (
            {"input_ids": _image_prompt(config, gen, n), "pixel_values": pixels, "image_sizes": sizes},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_crops": int(pixels.shape[1]),
            },
        )

    return make


# One token per special marker and per run of newlines (a row's "\n" and the global view's "\n" are one
# "\n\n" token, as in a tokenizer with that merge; see archs/idefics3.py)
_IDEFICS3_TOKEN = re.compile(r"<fake_token_around_image>|<global-img>|<row_\d+_col_\d+>|<image>|\n+")


def idefics3_inputs(arch: str, image_hw: list[int], preprocessor: dict[str, Any]):
    """One image through transformers' Idefics3/SmolVLM image processor with the spec's preprocessor_config
    (size.longest_edge, max_image_size, splitting), the prompt string the processor writes for it
    (get_image_prompt_string with the returned rows and cols), split into tokens; the model's
    get_image_features returns one image_seq_len block per crop."""

    def make(model, config, gen):
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        kwargs = {}
        if "longest_edge" in preprocessor:
            kwargs["size"] = {"longest_edge": preprocessor["longest_edge"]}
        if "max_image_size" in preprocessor:
            kwargs["max_image_size"] = {"longest_edge": preprocessor["max_image_size"]}
        for key in ("do_image_splitting", "do_resize"):
            if key in preprocessor:
                kwargs[key] = preprocessor[key]
        cls = Idefics3ImageProcessorPil if arch == "idefics3" else SmolVLMImageProcessorPil
        processed = cls(**kwargs)(images=[[image]], return_row_col_info=True, return_tensors="pt")
        pixels, mask = processed["pixel_values"], processed["pixel_attention_mask"]
        rows, cols = processed["rows"][0][0], processed["cols"][0][0]
        features = model.get_image_features(pixel_values=pixels, pixel_attention_mask=mask).pooler_output
        n = sum(f.shape[0] for f in features)
        seq = model.model.image_seq_len
        prompt = get_image_prompt_string(rows, cols, seq, "<fake_token_around_image>", "<image>", "<global-img>")
        pieces = _IDEFICS3_TOKEN.findall(prompt)
        if "".join(pieces) != prompt:
            raise ReferenceError("the image prompt has text this tokenisation does not cover")
        if pieces.count("<image>") != n:
            raise ReferenceError(f"{pieces.count('<image>')} <image> tokens for {n} image features")
        ids = torch.tensor([[config.image_token_id if p == "<image>" else int(_text_ids(gen, 1, 1)) for p in pieces]])
        ids = torch.cat([ids, _text_ids(gen, 1, VLM_TEXT_TOKENS)], dim=1)
        return (
            {"input_ids": ids, "pixel_values": pixels, "pixel_attention_mask": mask},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=list(image_hw)),
                "image_tokens": len(pieces),
                "image_features": n,
                "image_crops": int(pixels.shape[1]),
                "rows_cols": [rows, cols],
                "preprocessor": preprocessor,
            },
        )

    return make


def mllama_inputs(layout: list[int]):
    """One image as MllamaImageProcessor delivers it: always max_num_tiles tiles, unused ones zero.

    The image processor (image_processing_mllama.py: pack_images, build_aspect_ratio_mask) pads every
    image to max_image_tiles tiles and marks the used ones in aspect_ratio_mask; aspect_ratio_ids
    are 1-based indices into supported_aspect_ratios (0 = padding image).
    """

    def make(model, config, gen):
        vc = config.vision_config
        used = layout[0] * layout[1]
        if used > vc.max_num_tiles:
            raise ReferenceError(f"layout {layout} needs {used} tiles, max_num_tiles is {vc.max_num_tiles}")
        ratios = [list(r) for r in vc.supported_aspect_ratios]
        if layout not in ratios:
            raise ReferenceError(f"aspect ratio {layout} not in supported_aspect_ratios {ratios}")
        tiles = vc.max_num_tiles
        tile_mask = torch.zeros(1, 1, tiles, dtype=torch.long)
        tile_mask[..., :used] = 1
        pixels = torch.randn(1, 1, tiles, vc.num_channels, vc.image_size, vc.image_size, generator=gen)
        pixels[:, :, used:] = 0
        text = _text_ids(gen, 1, VLM_TEXT_TOKENS - 1)
        ids = torch.cat([torch.full((1, 1), config.image_token_id, dtype=torch.long), text], dim=1)
        # cross_attention_mask: (batch, text tokens, images, tiles); every token may see the used tiles.
        cross_mask = tile_mask.view(1, 1, 1, tiles).expand(1, VLM_TEXT_TOKENS, 1, tiles).clone()
        return (
            {
                "input_ids": ids,
                "pixel_values": pixels,
                "aspect_ratio_ids": torch.tensor([[ratios.index(layout) + 1]]),
                "aspect_ratio_mask": tile_mask.view(1, 1, tiles),
                "cross_attention_mask": cross_mask,
            },
            {
                "inputs": _inputs(
                    batch=1,
                    text_tokens=VLM_TEXT_TOKENS,
                    images=1,
                    image_size=[vc.image_size, vc.image_size],
                    tiles=used,
                ),
                "image_tokens": 1,
                "tiles_in_pixel_values": tiles,
            },
        )

    return make


ENCODER_BATCH, ENCODER_TEXT_TOKENS = 2, 7
PIX2STRUCT_MAX_PATCHES, PIX2STRUCT_DECODER_TOKENS = 24, 5
FLORENCE2_PROMPT_TOKENS, FLORENCE2_DECODER_TOKENS = 6, 5


def florence2_image_size(spec: dict[str, Any]) -> int:
    return spec["preprocessor"]["image_size"]


def florence2_inputs(image_size: int):
    """One image and a prompt as Florence2Processor lays them out: image_seq_length image tokens, then the
    prompt's tokens, all through the BART encoder. The image token count is the model's own
    (get_image_features), and the forward pass checks it against the placeholders."""

    def make(model, config, gen):
        pixels = torch.randn(1, 3, image_size, image_size, generator=gen)
        n_image = model.model.get_image_features(pixels).pooler_output.shape[1]
        ids = torch.cat(
            [
                torch.full((1, n_image), config.image_token_id, dtype=torch.long),
                _text_ids(gen, 1, FLORENCE2_PROMPT_TOKENS),
            ],
            dim=1,
        )
        return (
            {
                "input_ids": ids,
                "pixel_values": pixels,
                "decoder_input_ids": _text_ids(gen, 1, FLORENCE2_DECODER_TOKENS),
            },
            {
                "inputs": _inputs(
                    batch=1,
                    text_tokens=FLORENCE2_DECODER_TOKENS,
                    encoder_tokens=FLORENCE2_PROMPT_TOKENS,
                    images=1,
                    image_size=[image_size, image_size],
                ),
                "image_tokens": n_image,
            },
        )

    return make


def pix2struct_inputs(model, config, gen):
    """`flattened_patches` as Pix2StructImageProcessor makes them: max_patches rows of (row id, column id,
    patch pixels), the last rows padding (ids 0, attention_mask 0); the cross cache keeps all max_patches."""
    v = config.vision_config
    rows, cols = 4, 5  # 20 real patches, 4 padding rows
    ids = torch.zeros(ENCODER_BATCH, PIX2STRUCT_MAX_PATCHES, 2)
    grid = torch.tensor([[r + 1, c + 1] for r in range(rows) for c in range(cols)], dtype=torch.float32)
    ids[:, : rows * cols] = grid
    pixels = torch.randn(ENCODER_BATCH, PIX2STRUCT_MAX_PATCHES, v.patch_embed_hidden_size, generator=gen)
    mask = torch.zeros(ENCODER_BATCH, PIX2STRUCT_MAX_PATCHES, dtype=torch.long)
    mask[:, : rows * cols] = 1
    pixels[mask == 0] = 0
    return (
        {
            "flattened_patches": torch.cat([ids, pixels], dim=-1),
            "attention_mask": mask,
            "decoder_input_ids": _text_ids(gen, ENCODER_BATCH, PIX2STRUCT_DECODER_TOKENS),
        },
        {
            "inputs": _inputs(
                batch=ENCODER_BATCH,
                text_tokens=PIX2STRUCT_DECODER_TOKENS,
                encoder_tokens=PIX2STRUCT_MAX_PATCHES,
                images=1,
            )
        },
    )


def encoder_only_inputs(model, config, gen):
    """Two texts and two images through CLIPModel / SiglipModel (text shorter than the positions)."""
    v = config.vision_config
    pixels = torch.randn(ENCODER_BATCH, v.num_channels, v.image_size, v.image_size, generator=gen)
    return (
        {"input_ids": _text_ids(gen, ENCODER_BATCH, ENCODER_TEXT_TOKENS), "pixel_values": pixels},
        {
            "inputs": _inputs(
                batch=ENCODER_BATCH, text_tokens=ENCODER_TEXT_TOKENS, images=1, image_size=[v.image_size, v.image_size]
            )
        },
    )


def cases_for(
    arch: str, cfg: dict[str, Any], spec: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any], Callable]]:
    small = small_config(arch, cfg)
    if arch in ("gpt_oss", "llama4_text"):  # windowed layers: also a window shorter than the prompt
        windowed = copy.deepcopy(small)
        windowed["sliding_window" if arch == "gpt_oss" else "attention_chunk_size"] = SLIDING_TEST_WINDOW
        return [("text", small, lm_inputs), (f"sliding_window_{SLIDING_TEST_WINDOW}", windowed, lm_inputs)]
    if (
        arch in ("llama", "qwen2", "qwen3", "granite")
        or arch in MOE
        or arch in SSM
        or (arch in DECODER_FAMILIES and arch not in DECODER_SLIDING)
        or arch in HYBRID_FAMILIES
    ):
        return [("text", small, lm_inputs)]
    if arch in ("gemma2", "gemma3_text", "phi3", "starcoder2", "cohere2") or arch in DECODER_SLIDING:
        windowed = copy.deepcopy(small)
        windowed["sliding_window"] = SLIDING_TEST_WINDOW
        return [("text", small, lm_inputs), (f"sliding_window_{SLIDING_TEST_WINDOW}", windowed, lm_inputs)]
    if arch == "mistral":
        windowed = copy.deepcopy(small)
        windowed["sliding_window"] = MISTRAL_TEST_WINDOW
        return [("text", small, lm_inputs), (f"sliding_window_{MISTRAL_TEST_WINDOW}", windowed, lm_inputs)]
    if arch in ("t5", "mt5") or arch in BART_LIKE:  # input_ids (encoder) + decoder_input_ids
        return [("encoder_decoder", small, t5_inputs)]
    if arch == "whisper":
        return [("audio_30s", small, whisper_inputs)]
    if arch in ENCODER_ONLY:
        return [("text_and_image", small, encoder_only_inputs)]
    if arch == "florence2":  # the processor's image size (the spec's preprocessor block)
        side = florence2_image_size(spec or {})
        return [(f"image_{side}_and_prompt", small, florence2_inputs(side))]
    if arch == "pix2struct":
        return [(f"max_patches_{PIX2STRUCT_MAX_PATCHES}", small, pix2struct_inputs)]
    if arch == "llava":
        return [("one_image", small, llava_inputs)]
    if arch == "llava_next":
        return [(f"image_{h}x{w}", small, llava_next_inputs([h, w])) for h, w in LLAVA_NEXT_IMAGE_SIZES]
    if arch == "mistral3":
        return [(f"image_{h}x{w}", small, mistral3_inputs([h, w])) for h, w in QWEN_VL_IMAGE_SIZES]
    if arch in ("gemma3", "paligemma"):  # one image at the tower's size, its pooled/projected rows counted
        return [("one_image", small, gemma3_inputs)]
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        return [(f"image_{h}x{w}", small, qwen_vl_inputs([h, w])) for h, w in QWEN_VL_IMAGE_SIZES]
    if arch == "llava_onevision":
        return [(f"image_{h}x{w}", small, llava_onevision_inputs([h, w])) for h, w in LLAVA_ONEVISION_IMAGE_SIZES]
    if arch in ("idefics3", "smolvlm"):
        return [
            (f"image_{h}x{w}", small, idefics3_inputs(arch, [h, w], (spec or {}).get("preprocessor") or {}))
            for h, w in IDEFICS3_IMAGE_SIZES
        ]
    if arch == "mllama":
        return [(f"one_image_{h}x{w}_tiles", small, mllama_inputs([h, w])) for h, w in MLLAMA_TILE_LAYOUTS]
    if arch in FAMMM_CASES:
        return FAMMM_CASES[arch](small)
    raise ReferenceError(f"no cases for {arch}")


# --- issue 20 section 3 (session 5, fammm): small copies and inputs ------------------------------
# Qwen3-VL image sizes (height, width): 1024x768 resizes to 1024x768 (768 tokens at 32-pixel merged
# patches); 224x336 to 224x352 (77 tokens).
QWEN3_VL_IMAGE_SIZES = ([1024, 768], [224, 336])


def _small_qwen3_vl(cfg: dict[str, Any]) -> dict[str, Any]:
    """Two text layers (MoE: few narrow experts), a two-block ViT of the real patch, merge and position-grid
    sizes with one DeepStack merger (after block 0, added to text layer 0)."""
    cfg = copy.deepcopy(cfg)
    text = cfg["text_config"]
    cfg["text_config"] = _shrink_moe(text) if "num_experts" in text else _shrink_lm(text)
    cfg["vision_config"].update(
        hidden_size=SMALL_VISION_HIDDEN,
        num_heads=SMALL_VISION_HEADS,
        intermediate_size=SMALL_FFN,
        depth=2,
        deepstack_visual_indexes=[0],
    )
    # the mergers' output is placed in the text model's input, so a forward pass needs out_hidden_size equal to
    # the text width (the class defaults are 3584 vs 4096: transformers builds them, only a forward fails); it
    # enters no cache
    text_cls = transformers.Qwen3VLMoeTextConfig if "num_experts" in text else transformers.Qwen3VLTextConfig
    cfg["vision_config"]["out_hidden_size"] = text.get("hidden_size", text_cls().hidden_size)
    return cfg


def qwen3_vl_inputs(image_hw: list[int]):
    """One image through transformers' Qwen2VLImageProcessorPil (the processor Qwen3-VL uses:
    models/auto/image_processing_auto.py) with the checkpoint's patch, merge and temporal sizes and its
    default pixel bounds; the image token count is the merger's output rows (get_image_features)."""

    def make(model, config, gen):
        v = config.vision_config
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processor = Qwen2VLImageProcessorPil(
            patch_size=v.patch_size, merge_size=v.spatial_merge_size, temporal_patch_size=v.temporal_patch_size
        )
        processed = processor(images=[image], return_tensors="pt")
        pixels, grid = processed["pixel_values"], processed["image_grid_thw"]
        features = model.get_image_features(pixel_values=pixels, image_grid_thw=grid).pooler_output
        n = sum(f.shape[0] for f in features)
        ids = torch.cat(
            [
                torch.tensor([[config.vision_start_token_id]]),
                torch.full((1, n), config.image_token_id, dtype=torch.long),
                torch.tensor([[config.vision_end_token_id]]),
                _text_ids(gen, 1, VLM_TEXT_TOKENS),
            ],
            dim=1,
        )
        mm_types = (ids == config.image_token_id).to(torch.int32)
        return (
            {"input_ids": ids, "pixel_values": pixels, "image_grid_thw": grid, "mm_token_type_ids": mm_types},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS + 2, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_grid_thw": grid.tolist(),
            },
        )

    return make


def _qwen3_vl_cases(small: dict[str, Any]) -> list[tuple[str, dict[str, Any], Callable]]:
    return [(f"image_{h}x{w}", small, qwen3_vl_inputs([h, w])) for h, w in QWEN3_VL_IMAGE_SIZES]


# GLM-4V image sizes (height, width): 1024x768 resizes to 1036x756 (999 tokens); 224x336 to 224x336 (96 tokens)
GLM4V_IMAGE_SIZES = ([1024, 768], [224, 336])


def _small_glm4v(cfg: dict[str, Any]) -> dict[str, Any]:
    """Two text layers (MoE: one dense, one sparse layer of few narrow experts), a two-block ViT of the real patch,
    merge and position-grid sizes; out_hidden_size (the downsample's and merger's width, and the ViT MLP's inner
    width) is the text width, which a forward pass needs."""
    cfg = copy.deepcopy(cfg)
    text = cfg["text_config"]
    moe = "n_routed_experts" in text
    cfg["text_config"] = _shrink_moe(text) if moe else _shrink_lm(text)
    if moe:
        cfg["text_config"].update(n_routed_experts=SMALL_EXPERTS, n_shared_experts=1)
    text_cls = transformers.Glm4vMoeTextConfig if moe else transformers.Glm4vTextConfig
    cfg["vision_config"].update(
        hidden_size=SMALL_VISION_HIDDEN,
        num_heads=SMALL_VISION_HEADS,
        intermediate_size=SMALL_FFN,
        depth=2,
        out_hidden_size=text.get("hidden_size", text_cls().hidden_size),
    )
    return cfg


def fammm_overrides(arch: str, small_cfg: dict[str, Any]) -> dict[str, Any]:
    """Values a small copy's forward pass needs that change no shape (recorded as the case's hf_overrides).

    GLM-4V: M-RoPE's default sections (8, 12, 12: 32 frequencies, the released checkpoints' partial_rotary_factor
    0.5 of 128-wide heads) do not fit the class defaults' heads: the released factor 0.5 and sections summing to
    the head's frequencies (Glm4vTextRotaryEmbedding splits them by mrope_section); no weight, no cache width."""
    if arch not in ("glm4v", "glm4v_moe"):
        return {}
    text = small_cfg["text_config"]
    if "rope_parameters" in text or "rope_scaling" in text:
        return {}
    text_cls = transformers.Glm4vMoeTextConfig if arch == "glm4v_moe" else transformers.Glm4vTextConfig
    head = text.get("head_dim") or text.get("hidden_size", text_cls().hidden_size) // text.get(
        "num_attention_heads", text_cls().num_attention_heads
    )
    n = (int(head * 0.5) + 1) // 2  # inverse frequencies of the rotated half: arange(0, dim, 2)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    return {"text_config.rope_parameters": {**rope, "mrope_section": [n - 2 * (n // 3), n // 3, n // 3]}}


def glm4v_inputs(image_hw: list[int]):
    """One image through transformers' Glm4vImageProcessorPil (its default size bounds, patch 14, merge 2); the
    image token count is the merger's output rows (get_image_features). Prompt: <|begin_of_image|> image tokens
    <|end_of_image|> text."""

    def make(model, config, gen):
        v = config.vision_config
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processor = Glm4vImageProcessorPil(
            patch_size=v.patch_size, merge_size=v.spatial_merge_size, temporal_patch_size=v.temporal_patch_size
        )
        processed = processor(images=[image], return_tensors="pt")
        pixels, grid = processed["pixel_values"], processed["image_grid_thw"]
        features = model.get_image_features(pixel_values=pixels, image_grid_thw=grid).pooler_output
        n = sum(f.shape[0] for f in features)
        ids = torch.cat(
            [
                torch.tensor([[config.image_start_token_id]]),
                torch.full((1, n), config.image_token_id, dtype=torch.long),
                torch.tensor([[config.image_end_token_id]]),
                _text_ids(gen, 1, VLM_TEXT_TOKENS),
            ],
            dim=1,
        )
        mm_types = (ids == config.image_token_id).to(torch.int32)
        return (
            {"input_ids": ids, "pixel_values": pixels, "image_grid_thw": grid, "mm_token_type_ids": mm_types},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS + 2, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_grid_thw": grid.tolist(),
            },
        )

    return make


def _glm4v_cases(small: dict[str, Any]) -> list[tuple[str, dict[str, Any], Callable]]:
    return [(f"image_{h}x{w}", small, glm4v_inputs([h, w])) for h, w in GLM4V_IMAGE_SIZES]


# InternVL image sizes (height, width) with InternVL's hub tiling (crop_to_patches, 1..12 tiles of the tower's image
# size, a thumbnail beside several): 448x896 becomes 2x1 tiles + thumbnail (3 x 256 tokens); 224x336 (3:2) 3x2
# tiles + thumbnail (7 x 256), the grid of the same aspect ratio winning although the image is smaller than a tile
# (a small set: every tile runs through the text model's full width)
INTERNVL_IMAGE_SIZES = ([448, 896], [224, 336])
INTERNVL_TILING = {"crop_to_patches": True, "min_patches": 1, "max_patches": 12}


def _small_internvl(cfg: dict[str, Any]) -> dict[str, Any]:
    """Two Qwen2 text layers; a one-layer InternViT at the real image and patch size (the pixel shuffle and the
    tiles depend on the patch grid)."""
    cfg = copy.deepcopy(cfg)
    cfg["text_config"] = _shrink_lm(cfg.get("text_config", {}))
    cfg.setdefault("vision_config", {}).update(
        hidden_size=SMALL_VISION_HIDDEN,
        intermediate_size=SMALL_FFN,
        num_attention_heads=SMALL_VISION_HEADS,
        num_hidden_layers=SMALL_VISION_LAYERS,
    )
    return cfg


def internvl_inputs(image_hw: list[int]):
    """One image through transformers' GotOcr2ImageProcessorPil (InternVL's processor) with InternVL's tiling at the
    tower's image size; the image token count is get_image_features' rows over every tile (the processor writes
    image_seq_length per tile). The case records the tiling as the spec's `preprocessor` block."""

    def make(model, config, gen):
        side = config.vision_config.image_size[0]
        h, w = image_hw
        image = (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        processor = GotOcr2ImageProcessorPil(size={"height": side, "width": side}, **INTERNVL_TILING)
        processed = processor(images=[image], return_tensors="pt")
        pixels = processed["pixel_values"]
        features = model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
        ).pooler_output
        n = features.shape[0] * features.shape[1]
        ids = torch.cat(
            [torch.full((1, n), config.image_token_id, dtype=torch.long), _text_ids(gen, 1, VLM_TEXT_TOKENS)], dim=1
        )
        return (
            {"input_ids": ids, "pixel_values": pixels},
            {
                "inputs": _inputs(batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=list(image_hw)),
                "image_tokens": n,
                "image_tiles": int(processed["num_patches"][0]),
                "preprocessor": dict(INTERNVL_TILING),
            },
        )

    return make


def _internvl_cases(small: dict[str, Any]) -> list[tuple[str, dict[str, Any], Callable]]:
    return [(f"image_{h}x{w}", small, internvl_inputs([h, w])) for h, w in INTERNVL_IMAGE_SIZES]


# Moonshine: two clips of 16 kHz audio (batch 2), one of 3 s and one of 7.3 s (an uneven sample count), and 5
# decoder tokens; the encoder positions are the encoder output's length, measured
MOONSHINE_SAMPLES = (48_000, 116_789)
MOONSHINE_BATCH, MOONSHINE_DECODER_TOKENS = 2, 5


def _small_moonshine(cfg: dict[str, Any]) -> dict[str, Any]:
    """Two encoder and two decoder layers, a small vocabulary and MLP; every attention width kept."""
    cfg = copy.deepcopy(cfg)
    cfg.update(
        vocab_size=SMALL_VOCAB,
        intermediate_size=SMALL_FFN,
        encoder_num_hidden_layers=SMALL_LAYERS,
        decoder_num_hidden_layers=SMALL_LAYERS,
    )
    return cfg


def moonshine_inputs(samples: int):
    """Raw audio of `samples` samples through MoonshineForConditionalGeneration with decoder input ids; the
    cross cache holds the encoder's positions (recorded as encoder_tokens, the encoder output's length)."""

    def make(model, config, gen):
        audio = torch.randn(MOONSHINE_BATCH, samples, generator=gen)
        positions = model.model.encoder(audio).last_hidden_state.shape[1]
        return (
            {"input_values": audio, "decoder_input_ids": _text_ids(gen, MOONSHINE_BATCH, MOONSHINE_DECODER_TOKENS)},
            {
                "inputs": _inputs(
                    batch=MOONSHINE_BATCH, text_tokens=MOONSHINE_DECODER_TOKENS, encoder_tokens=positions
                ),
                "audio_samples": samples,
            },
        )

    return make


def _moonshine_cases(small: dict[str, Any]) -> list[tuple[str, dict[str, Any], Callable]]:
    return [(f"audio_{n}_samples", small, moonshine_inputs(n)) for n in MOONSHINE_SAMPLES]


FAMMM_SMALL: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "moonshine": _small_moonshine,
    "internvl": _small_internvl,
    "qwen3_vl": _small_qwen3_vl,
    "qwen3_vl_moe": _small_qwen3_vl,
    "glm4v": _small_glm4v,
    "glm4v_moe": _small_glm4v,
}
FAMMM_CASES: dict[str, Callable[[dict[str, Any]], list[tuple[str, dict[str, Any], Callable]]]] = {
    "moonshine": _moonshine_cases,
    "internvl": _internvl_cases,
    "qwen3_vl": _qwen3_vl_cases,
    "qwen3_vl_moe": _qwen3_vl_cases,
    "glm4v": _glm4v_cases,
    "glm4v_moe": _glm4v_cases,
}
# the families whose image tokens sit in the self-attention context, sized per image (test_reference.py)
FAMMM_IMAGE_IN_CONTEXT = ("qwen3_vl", "qwen3_vl_moe", "glm4v", "glm4v_moe", "internvl")


# --- session 5 (qwen35mm): Qwen3.5 as its checkpoints ship (Qwen3_5ForConditionalGeneration): Qwen3-VL's names
# (model.visual without deepstack_merger_list, model.language_model, lm_head), only the top-level flag ties lm_head
ARCHITECTURES.update(
    {
        arch: Architecture(
            config_cls,
            model_cls,
            _compile(_QWEN3_VL_RULES),
            lambda m: m.model.language_model.embed_tokens.weight,
            lambda m: m.lm_head.weight,
            False,
        )
        for arch, config_cls, model_cls in (
            ("qwen3_5", transformers.Qwen3_5Config, transformers.Qwen3_5ForConditionalGeneration),
            ("qwen3_5_moe", transformers.Qwen3_5MoeConfig, transformers.Qwen3_5MoeForConditionalGeneration),
        )
    }
)


def _small_qwen3_5(cfg: dict[str, Any]) -> dict[str, Any]:
    """The hybrid text model's small copy (_shrink_hybrid: a Gated DeltaNet layer, then a full-attention layer) and
    a two-block ViT of the real patch, merge and position-grid sizes (no DeepStack in Qwen3.5)."""
    cfg = copy.deepcopy(cfg)
    text = cfg["text_config"]
    moe = "num_experts" in text
    cfg["text_config"] = _shrink_hybrid("qwen3_5_moe_text" if moe else "qwen3_5_text", text)
    cfg["vision_config"].update(
        hidden_size=SMALL_VISION_HIDDEN, num_heads=SMALL_VISION_HEADS, intermediate_size=SMALL_FFN, depth=2
    )
    text_cls = transformers.Qwen3_5MoeTextConfig if moe else transformers.Qwen3_5TextConfig
    cfg["vision_config"]["out_hidden_size"] = text.get("hidden_size", text_cls().hidden_size)
    return cfg


FAMMM_SMALL.update({"qwen3_5": _small_qwen3_5, "qwen3_5_moe": _small_qwen3_5})
FAMMM_CASES.update({"qwen3_5": _qwen3_vl_cases, "qwen3_5_moe": _qwen3_vl_cases})
FAMMM_IMAGE_IN_CONTEXT += ("qwen3_5", "qwen3_5_moe")


# --- session 6 (mmvision): Llama 4 as its checkpoints ship (Llama4ForConditionalGeneration): `vision_model` (its
# pixel-shuffle adapter counted with the projector it feeds), `multi_modal_projector`, `language_model`; only
# text_config.tie_word_embeddings ties lm_head
_LLAMA4_RULES = [
    (r"vision_model\.vision_adapter\..+", "projector"),
    (r"vision_model\..+", "vision_tower"),
    (r"multi_modal_projector\..+", "projector"),
    (r"language_model\.model\.embed_tokens\.weight", "embeddings"),
    (r"language_model\.model\.(layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"language_model\.lm_head\.weight", "lm_head"),
]
ARCHITECTURES["llama4"] = Architecture(
    transformers.Llama4Config,
    transformers.Llama4ForConditionalGeneration,
    _compile(_LLAMA4_RULES),
    lambda m: m.language_model.model.embed_tokens.weight,
    lambda m: m.language_model.lm_head.weight,
    False,
)
# (height, width) of images that fill a canvas of whole tiles exactly (Llama4ImageProcessor's get_best_fit picks the
# canvas needing no resize: scale 1), so the tiling is known without the image processor, which needs torchvision:
# one tile, and a 1 x 2 canvas plus the global tile
LLAMA4_TILE_GRIDS = ((1, 1), (1, 2))


def _small_llama4(cfg: dict[str, Any]) -> dict[str, Any]:
    """One period of the text model's chunked / full layers with few narrow experts (_shrink_moe), and a one-layer
    tower at the real image and patch size whose widths keep the pixel shuffle consistent (the adapter reads
    hidden / ratio^2 = intermediate_size channels; its output width is what the projector reads)."""
    cfg = copy.deepcopy(cfg)
    base = transformers.Llama4TextConfig()
    text = {
        "num_local_experts": base.num_local_experts,
        "num_experts_per_tok": base.num_experts_per_tok,
        "intermediate_size_mlp": base.intermediate_size_mlp,
        **cfg.get("text_config", {}),
    }
    small = _shrink_moe(text)
    layers = small["num_hidden_layers"]
    if small.get("no_rope_layers"):
        small["no_rope_layers"] = small["no_rope_layers"][:layers]
    if small.get("moe_layers") is not None:
        small["moe_layers"] = [i for i in small["moe_layers"] if i < layers]
    cfg["text_config"] = small
    vision = cfg.setdefault("vision_config", {})
    ratio = vision.get("pixel_shuffle_ratio", transformers.Llama4VisionConfig().pixel_shuffle_ratio)
    vision.update(
        hidden_size=SMALL_VISION_HIDDEN,
        num_attention_heads=SMALL_VISION_HEADS,
        num_hidden_layers=SMALL_VISION_LAYERS,
        intermediate_size=int(SMALL_VISION_HIDDEN / ratio**2),
        projector_input_dim=SMALL_FFN,
        projector_output_dim=SMALL_FFN,
        vision_output_dim=SMALL_FFN,
    )
    return cfg


def llama4_inputs(grid: tuple[int, int]):
    """An image of rows x cols whole tiles: its tiles and (more than one) the global tile through the tower; the
    prompt is Llama4Processor._prompt_split_image's for that canvas with each tile's <|patch|> count taken from
    get_image_features' rows (every other marker one text token), so the forward pass checks the count."""

    def make(model, config, gen):
        from transformers.models.llama4.processing_llama4 import Llama4Processor

        side = config.vision_config.image_size
        rows, cols = grid
        tiles = rows * cols + (1 if rows * cols > 1 else 0)
        pixels = torch.rand(tiles, 3, side, side, generator=gen)
        features = model.get_image_features(pixel_values=pixels).last_hidden_state
        per_tile = features.shape[1]
        prompt = re.findall(r"<\|[a-z_]+\|>", Llama4Processor._prompt_split_image(None, (rows, cols), per_tile))
        markers = _text_ids(gen, 1, len(prompt))[0]
        ids = [config.image_token_id if t == "<|patch|>" else int(m) for t, m in zip(prompt, markers, strict=True)]
        n = len(ids)
        ids_t = torch.cat([torch.tensor([ids], dtype=torch.long), _text_ids(gen, 1, VLM_TEXT_TOKENS)], dim=1)
        return (
            {"input_ids": ids_t, "pixel_values": pixels},
            {
                "inputs": _inputs(
                    batch=1, text_tokens=VLM_TEXT_TOKENS, images=1, image_size=[rows * side, cols * side]
                ),
                "image_tokens": n,
                "image_features": features.shape[0] * per_tile,
                "image_tiles": tiles,
            },
        )

    return make


def _llama4_cases(small: dict[str, Any]) -> list[tuple[str, dict[str, Any], Callable]]:
    return [(f"image_{r}x{c}_tiles", small, llama4_inputs((r, c))) for r, c in LLAMA4_TILE_GRIDS]


FAMMM_SMALL["llama4"] = _small_llama4
FAMMM_CASES["llama4"] = _llama4_cases
FAMMM_IMAGE_IN_CONTEXT += ("llama4",)


# --- driver ------------------------------------------------------------------------------------
def build_entry(spec: dict[str, Any]) -> dict[str, Any]:
    arch, cfg = spec["architecture"], spec["config"]
    model, config, corrections = build_model(arch, cfg)
    entry = {
        "architecture": arch,
        "hf_config_class": type(config).__name__,
        "hf_model_class": type(model).__name__,
        "parameters": count_parameters(arch, model),
        "corrections": corrections,
        "parameters_declared": spec.get("parameters_declared"),
        "resolved_attention": resolved_attention(arch, config),
    }
    fp32 = keep_in_fp32(model)
    if fp32["modules"]:  # recorded only where the class has some (T5, mT5)
        entry["keep_in_fp32"] = fp32
    del model
    gc.collect()
    entry["cases"] = [run_case(arch, name, small, make) for name, small, make in cases_for(arch, cfg, spec)]
    if arch == "florence2":  # the small copies use the spec's processor settings (Florence-2's image size)
        for case in entry["cases"]:
            case["preprocessor"] = spec["preprocessor"]
    return entry


def versions() -> dict[str, str]:
    # The local build suffix (+cpu, +cu128) is left out: counts and shapes do not depend on it.
    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}


def _entry_for(path: Path) -> tuple[str, dict[str, Any] | None, str | None, str]:
    """One spec's entry: (id, entry or None, error or None, the line to print). Top level, so that a worker
    process of compute(jobs > 1) can run it; each case seeds its own generator, so the order does not matter."""
    start = time.perf_counter()
    try:
        entry = build_entry(load_spec(path))
        line = (
            f"{path.stem}: {entry['parameters']['total']:,} parameters, "
            f"{len(entry['cases'])} case(s), {time.perf_counter() - start:.1f} s"
        )
        return path.stem, entry, None, line
    except Exception as exc:  # reported per model, recorded, and turned into exit code 1
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        return path.stem, None, error, f"{traceback.format_exc()}{path.stem}: FAILED {error}"
    finally:
        gc.collect()


def _one_thread() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # jobs processes share the cores: one thread each


def compute(spec_dir: Path, ids: list[str] | None, jobs: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """Every spec's entry, in `jobs` processes (spawned: torch is not fork-safe) when jobs > 1."""
    paths = sorted(spec_dir.glob("*.yaml")) + (sorted(FAMILY_SPEC_DIR.glob("*.yaml")) if spec_dir == SPEC_DIR else [])
    if ids:
        known = {p.stem for p in paths}
        missing = sorted(set(ids) - known)
        if missing:
            raise UsageError(f"no spec for {missing} in {spec_dir}")
        paths = [p for p in paths if p.stem in ids]
    models, errors = {}, {}
    if jobs > 1 and len(paths) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
        ) as pool:
            results = list(pool.map(_entry_for, paths))
    else:
        results = [_entry_for(p) for p in paths]  # printed below, in spec order either way
    for stem, entry, error, line in results:
        if entry is not None:
            models[stem] = entry
        else:
            errors[stem] = error or "failed"
        print(line, file=sys.stderr)
    return models, errors


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"+ {sub} (new)")
            elif key not in new:
                lines.append(f"- {sub} (gone)")
            else:
                lines.extend(diff(old[key], new[key], sub))
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (o, n) in enumerate(zip(old, new, strict=True)) for line in diff(o, n, f"{path}[{i}]")]
    return [] if old == new else [f"~ {path}: {json.dumps(old)[:120]} -> {json.dumps(new)[:120]}"]


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with reference.json instead of writing it")
    parser.add_argument("--only", nargs="+", metavar="ID", help="only these model ids")
    parser.add_argument("--specs-dir", type=Path, default=SPEC_DIR, help="model spec directory (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=REFERENCE_PATH, help="reference file (default: %(default)s)")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="build in N processes (default: 1; CI: 2, one per core)"
    )
    args = parser.parse_args(argv)
    reference_path: Path = args.output
    torch.manual_seed(SEED)
    start = time.perf_counter()
    try:
        models, errors = compute(args.specs_dir, args.only, max(1, args.jobs))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fresh = {
        "schema_version": SCHEMA_VERSION,
        "generator": "tests/reference/build_reference.py",
        "versions": versions(),
        "models": models,
        "errors": errors,
    }
    old = json.loads(reference_path.read_text(encoding="utf-8")) if reference_path.exists() else None
    if args.only and old is not None:
        # A partial run replaces only the named entries of the existing reference.
        merged = copy.deepcopy(old)
        merged.update({k: fresh[k] for k in ("schema_version", "generator", "versions")})
        for key in ("models", "errors"):
            merged.setdefault(key, {})
            for model_id in args.only:
                merged[key].pop(model_id, None)
            merged[key].update(fresh[key])
        merged["models"] = dict(sorted(merged["models"].items()))
        fresh = merged
    elapsed = time.perf_counter() - start
    if args.check:
        if old is None:
            print(f"{reference_path} does not exist", file=sys.stderr)
            return 1
        differences = diff(old, fresh)
        if differences:
            print(f"{reference_path.name} is stale ({len(differences)} difference(s)):", file=sys.stderr)
            for line in differences[:60]:
                print("  " + line, file=sys.stderr)
            if len(differences) > 60:
                print(f"  ... and {len(differences) - 60} more", file=sys.stderr)
            print("regenerate with: python tests/reference/build_reference.py", file=sys.stderr)
            return 1
        print(f"{reference_path.name} is up to date ({len(models)} model(s), {elapsed:.0f} s)", file=sys.stderr)
        return 1 if errors else 0
    reference_path.write_text(dump(fresh), encoding="utf-8")
    print(f"wrote {reference_path} ({len(models)} model(s), {len(errors)} error(s), {elapsed:.0f} s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
