"""The generic decoder: a llama-shaped family as a short declaration of how it differs from Llama.

A family module written with it holds three things (archs/olmo2.py is a whole example):
1. its config class, a `DecoderConfig` subclass with the fields of its transformers configuration class
   that change a tensor or a cache (transformers' defaults), its `anatomy` (archs/llama.py: `Anatomy`:
   biases, q/k norms, fused projections, which norms, gated or plain MLP) and, when some layers slide,
   `layer_kind(i)`;
2. its spec class, a `DecoderSpec` with `architecture: Literal["<model_type>"]` and `config: <its config>`;
3. `FAMILY = decoder_family(__name__, "<model_type>", <spec class>, ConfigClass(...))`: the config.json keys the importer
   reads for the model_type and transformers' default for each (None: derived, as num_key_value_heads
   from num_attention_heads), and the GGUF architecture names llama.cpp writes for it.

Tensors, geometry (per-layer cache kinds from `layer_kind`), activation stages, safetensors names
(Llama's: model.embed_tokens, model.layers.N, model.norm, lm_head) and config.json import follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from . import llama
from .base import Geometry, ModelSpecBase, Stage, Tensor
from .family import BUFFER, IGNORED_ON_LOAD, ConfigClass, Family, WeightRules, no_cross_source, no_image_tokens
from .llama import LM_WEIGHT_RULES as LM_WEIGHT_RULES  # the generic decoder's names are Llama's
from .llama import DecoderConfig
from .moe import MoeConfig, moe_decoder_lm, moe_stage

# The multi-token-prediction tensors checkpoints store beside the model transformers builds (archs/family.py
# IGNORED_ON_LOAD): DeepSeek-V3's and GLM-4.5's extra layers at index num_hidden_layers and up (their enorm, hnorm,
# eh_proj, shared_head, embed_tokens and a whole decoder layer: DeepSeek-V3 README_WEIGHTS.md, "MTP Modules",
# github.com/deepseek-ai/DeepSeek-V3 commit 9b4e9788), and Qwen3-Next's / Qwen3.5's `mtp.*` (fc, pre_fc_norm_*, norm,
# layers.0.*).
EXTRA_LAYERS_IGNORED: tuple[str, str] = (r"(?:model\.)?layers\.(?P<layer>\d+)\..+", IGNORED_ON_LOAD)
MTP_IGNORED: tuple[str, str] = (r"mtp\..+", IGNORED_ON_LOAD)
# DeepSeek-V3-style routers keep e_score_correction_bias as an nn.Buffer (DeepseekV3TopkRouter, Glm4MoeTopkRouter)
ROUTER_BIAS_BUFFER: tuple[str, str] = (r"(?:model\.)?layers\.\d+\.mlp\.gate\.e_score_correction_bias", BUFFER)
# The names of a DeepSeek-V3-style checkpoint: the MTP layers past num_hidden_layers, the router buffers, Llama's layout
NEXTN_WEIGHT_RULES: WeightRules = (EXTRA_LAYERS_IGNORED, ROUTER_BIAS_BUFFER, *LM_WEIGHT_RULES)


class DecoderSpec(ModelSpecBase):
    """A spec of a family declared with `decoder_family` (its subclass narrows both fields)."""

    architecture: str
    config: DecoderConfig


D = TypeVar("D", bound=DecoderSpec)


def _tensors(spec: DecoderSpec) -> Iterator[Tensor]:
    return llama.decoder_lm(spec.config)


def _geometry(spec: DecoderSpec) -> Geometry:
    return llama.decoder_geometry(spec.config, spec.architecture)


def _stages(spec: DecoderSpec, context: int, source: int, images: int) -> list[Stage]:
    return [llama.lm_stage(spec.config, context)]


def _moe_tensors(spec: DecoderSpec) -> Iterator[Tensor]:
    return moe_decoder_lm(_moe_config(spec))


def _moe_geometry(spec: DecoderSpec) -> Geometry:
    from .mixtral import moe_geometry

    return moe_geometry(_moe_config(spec), spec.architecture)


def _moe_stages(spec: DecoderSpec, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(_moe_config(spec), context)]


def _moe_config(spec: DecoderSpec) -> MoeConfig:
    if not isinstance(spec.config, MoeConfig):
        raise TypeError(f"{spec.architecture}: a mixture-of-experts family's config must be a MoeConfig")
    return spec.config


def decoder_family(
    module: str,
    arch: str,
    spec: type[D],
    config_json: ConfigClass,
    *,
    gguf: tuple[str, ...] = (),
    weight_rules: WeightRules = LM_WEIGHT_RULES,
    **overrides: Any,
) -> Family[D]:
    """The Family of a llama-shaped decoder: one architecture (the config.json model_type, the spec's
    `architecture`), Llama's tensors / geometry / stages computed from the config's anatomy and layer
    kinds; `overrides` replaces any of them (e.g. `geometry=` for an engine-relevant flag)."""
    fields: dict[str, Any] = {
        "tensors": _tensors,
        "geometry": _geometry,
        "stages": _stages,
        "image_tokens": no_image_tokens,
        "cross_source_tokens": no_cross_source,
        **overrides,
    }
    return Family(
        module,
        {arch: spec},
        config_json={arch: config_json},
        weight_rules={arch: weight_rules},
        gguf_architectures=gguf,
        **fields,
    )


def moe_family(
    module: str,
    arch: str,
    spec: type[D],
    config_json: ConfigClass,
    *,
    gguf: tuple[str, ...] = (),
    weight_rules: WeightRules = LM_WEIGHT_RULES,
    **overrides: Any,
) -> Family[D]:
    """A llama-shaped decoder whose feed-forward is routed experts (archs/moe.py: the config is a
    `MoeConfig` naming the expert count, width and which layers are sparse): Mixtral's tensors, geometry
    (expert counts, per-token feed-forward width) and stages."""
    fields: dict[str, Any] = {"tensors": _moe_tensors, "geometry": _moe_geometry, "stages": _moe_stages, **overrides}
    return decoder_family(module, arch, spec, config_json, gguf=gguf, weight_rules=weight_rules, **fields)
