"""One module per architecture family; this registry maps a spec's `architecture` (and a
config.json's `model_type`) to it, and computes each spec's geometry and tensor inventory once.

Every family module defines:
- `ARCHITECTURES` (the `architecture` values it serves) and `SPECS` (architecture -> spec class);
- `tensors(spec)`: every weight tensor transformers creates, in module order, tied tensors once;
- `geometry(spec)`: the frozen `Geometry` the arithmetic reads;
- `stages(spec, context, source, images)`: the activation stages of one prefill;
- `image_tokens(spec, image_size)` and `cross_source_tokens(spec, images, encoder_tokens)`.
See docs/adding-an-architecture.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import replace
from importlib import import_module
from types import ModuleType
from typing import Any, TypeVar

from .base import Geometry, LayerKV, Stage, Tensor

# architecture -> module (under willitrun.archs). Modules load on first use (fast start-up).
FAMILIES: dict[str, str] = {
    "llama": "llama", "mistral": "llama", "t5": "t5", "whisper": "whisper",
    "llava": "llava", "llava_next": "llava", "mllama": "mllama", "qwen2": "qwen2", "qwen3": "qwen3",
    "gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3", "phi3": "phi3", "granite": "granite",
    "starcoder2": "starcoder2", "cohere2": "cohere2",
    # issue 11: vision-language models whose image tokens sit in the self-attention context
    "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "gemma3": "gemma3", "paligemma": "paligemma",
    "mistral3": "mistral3", "llava_onevision": "llava_onevision", "idefics3": "idefics3", "smolvlm": "idefics3",
    # issue 11: encoder-decoders
    "mt5": "t5", "bart": "bart", "mbart": "bart", "m2m_100": "bart", "marian": "bart", "pegasus": "bart",
    # mixture of experts, latent attention, state-space (issue 10)
    "mixtral": "mixtral", "qwen2_moe": "qwen_moe", "qwen3_moe": "qwen_moe",
    "deepseek_v2": "deepseek", "deepseek_v3": "deepseek", "gpt_oss": "gpt_oss",
    "llama4_text": "llama4", "mamba": "mamba", "falcon_mamba": "mamba",
    "jamba": "jamba", "falcon_h1": "falcon_h1",
    "mamba2": "mamba2", "granitemoehybrid": "granitemoehybrid",
    # issue 11: encoders used alone (no cache)
    "clip": "clip", "siglip": "clip",
    # issue 11: encoder-decoders over images
    "pix2struct": "pix2struct", "florence2": "florence2", "vision-encoder-decoder": "vision_encoder_decoder",
    # issue 20: a model without a family, described by its GGUF's metadata or measured by transformers
    "generic": "generic",
}
ARCHITECTURES = tuple(FAMILIES)


def family(architecture_or_spec: str | Any) -> ModuleType:
    """The module of an architecture (or of a spec's architecture)."""
    arch = architecture_or_spec if isinstance(architecture_or_spec, str) else architecture_or_spec.architecture
    return import_module(f".{FAMILIES[arch]}", __name__)


def spec_class(architecture: str) -> type:
    return family(architecture).SPECS[architecture]  # type: ignore[no-any-return]


T = TypeVar("T")
# (id(spec), what) -> (weak reference to the spec, value). Specs are frozen, so a value computed
# from one stays right; the weak reference drops the entry when the spec goes (and guards against
# a new object reusing the id).
_CACHE: dict[tuple[int, str], tuple[weakref.ref[Any], Any]] = {}


def cached(spec: Any, what: str, compute: Callable[[], T]) -> T:
    """`compute()` once per spec object and `what` (specs are frozen: the value cannot go stale)."""
    key = (id(spec), what)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]  # type: ignore[no-any-return]
    value = compute()
    sid = id(spec)

    def drop(_: object, cache: dict[tuple[int, str], tuple[weakref.ref[Any], Any]] = _CACHE) -> None:
        # `cache` is bound now: at interpreter shutdown the module's globals may already be None
        for k in [k for k in cache if k[0] == sid]:
            cache.pop(k, None)

    _CACHE[key] = (weakref.ref(spec, drop), value)
    return value


def geometry(spec: Any) -> Geometry:
    """The spec's geometry, computed once per spec."""
    g: Geometry = cached(spec, "geometry", lambda: _with_speech_refusals(family(spec).geometry(spec)))
    return g


# The speech engines run Whisper checkpoints only: said once here for every other architecture, not
# in each family's geometry (engines/whispercpp.py and engines/ctranslate2.py read `refusals`).
SPEECH_ONLY = {"whisper.cpp": "whisper.cpp runs Whisper models only",
               "ctranslate2": "the ctranslate2 (faster-whisper) profile covers Whisper models only"}


def _with_speech_refusals(g: Geometry) -> Geometry:
    if g.architecture == "whisper":
        return g
    return replace(g, refusals={**SPEECH_ONLY, **g.refusals})


def model_tensors(spec: Any) -> list[Tensor]:
    """Every weight tensor of the model, tied tensors once, in module order; built once per spec
    (callers must not mutate the list)."""
    return cached(spec, "tensors", lambda: list(family(spec).tensors(spec)))


def stages(spec: Any, context: int, source: int, images: int, image_size: tuple[int, int] | None = None) -> list[Stage]:
    """Activation stages of one prefill; `image_size` reaches only families whose vision pass depends on
    it (Qwen2-VL's native resolution)."""
    mod = family(spec)
    if image_size is None or not getattr(mod, "STAGES_TAKE_IMAGE_SIZE", False):
        return mod.stages(spec, context, source, images)  # type: ignore[no-any-return]
    return mod.stages(spec, context, source, images, image_size=image_size)  # type: ignore[no-any-return]


def image_tokens(spec: Any, image_size: tuple[int, int] | None = None) -> int:
    return family(spec).image_tokens(spec, image_size)  # type: ignore[no-any-return]


def cross_source_tokens(spec: Any, images: int, encoder_tokens: int) -> int:
    return family(spec).cross_source_tokens(spec, images, encoder_tokens)  # type: ignore[no-any-return]


__all__ = ["ARCHITECTURES", "FAMILIES", "Geometry", "LayerKV", "Stage", "Tensor", "cached", "cross_source_tokens",
           "family", "geometry", "image_tokens", "model_tensors", "spec_class", "stages"]
