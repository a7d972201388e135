"""One module per architecture family; this registry maps a spec's `architecture` (and a
config.json's `model_type`) to it, and computes each spec's geometry and tensor inventory once.

Every family module ends with `FAMILY = Family(...)` (archs/family.py: the typed contract): its spec
classes, `tensors(spec)` (every weight tensor transformers creates, in module order, tied tensors once),
`geometry(spec)` (the frozen `Geometry` the arithmetic reads), `stages(spec, context, source, images)`
(the activation stages of one prefill), `image_tokens` and `cross_source_tokens`, and what it declares
for the importers (config.json keys and defaults, safetensors names, GGUF architecture names).
The table below is the only other place a family is named: it lets start-up load one module, not all.
See docs/adding-an-architecture.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import replace
from importlib import import_module
from typing import Any, TypeVar

from .base import Geometry, LayerKV, Stage, Tensor
from .family import Family, check_family

# architecture -> module (under willitrun.archs). Modules load on first use (fast start-up).
FAMILIES: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "t5": "t5",
    "whisper": "whisper",
    "llava": "llava",
    "llava_next": "llava",
    "mllama": "mllama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
    "granite": "granite",
    "starcoder2": "starcoder2",
    "cohere2": "cohere2",
    # issue 11: vision-language models whose image tokens sit in the self-attention context
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "gemma3": "gemma3",
    "paligemma": "paligemma",
    "mistral3": "mistral3",
    "llava_onevision": "llava_onevision",
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
    # issue 11: encoder-decoders
    "mt5": "t5",
    "bart": "bart",
    "mbart": "bart",
    "m2m_100": "bart",
    "marian": "bart",
    "pegasus": "bart",
    # mixture of experts, latent attention, state-space (issue 10)
    "mixtral": "mixtral",
    "qwen2_moe": "qwen_moe",
    "qwen3_moe": "qwen_moe",
    "deepseek_v2": "deepseek",
    "deepseek_v3": "deepseek",
    "gpt_oss": "gpt_oss",
    "llama4_text": "llama4",
    "mamba": "mamba",
    "falcon_mamba": "mamba",
    "jamba": "jamba",
    "falcon_h1": "falcon_h1",
    "mamba2": "mamba2",
    "granitemoehybrid": "granitemoehybrid",
    # issue 11: encoders used alone (no cache)
    "clip": "clip",
    "siglip": "clip",
    # issue 11: encoder-decoders over images
    "pix2struct": "pix2struct",
    "florence2": "florence2",
    "vision-encoder-decoder": "vision_encoder_decoder",
    # issue 20: a model without a family, described by its GGUF's metadata or measured by transformers
    "generic": "generic",
    # issue 20: llama-shaped families declared on the generic decoder (archs/decoder.py)
    "olmo2": "olmo2",
    "olmo3": "olmo3",
    "glm4": "glm4",
    "smollm3": "smollm3",
    "seed_oss": "seed_oss",
    "ernie4_5": "ernie4_5",
    "hunyuan_v1_dense": "hunyuan_v1_dense",
    "exaone4": "exaone4",
    "cohere": "cohere",
    "stablelm": "stablelm",
    "phi": "phi",
    "olmo": "olmo",
    "apertus": "apertus",
    "gpt_neox": "gpt_neox",
    # ... and mixture-of-experts ones (archs/decoder.py: moe_family)
    "olmoe": "olmoe",
    "granitemoe": "granitemoe",
    "glm4_moe": "glm4_moe",
    # ... and hybrids whose layers keep different kinds of cache (archs/caches.py)
    "lfm2": "lfm2",
    # issue 20 section 3, wave 2 (fam2): more families on the generic decoder
    "phimoe": "phimoe",
    "ernie4_5_moe": "ernie4_5_moe",
    "hunyuan_v1_moe": "hunyuan_v1_moe",
    "lfm2_moe": "lfm2_moe",
    "gpt2": "gpt2",
    "gpt_bigcode": "gpt_bigcode",
    "opt": "opt",
    "gptj": "gptj",
    # issue 20 section 3, session 5 (famhyb): hybrids of linear attention / state-space layers and attention
    "qwen3_next": "qwen3_next",
    "qwen3_5_text": "qwen3_5",
    "qwen3_5_moe_text": "qwen3_5",
    "nemotron_h": "nemotron_h",
    "bamba": "bamba",
    "zamba2": "zamba2",
    "kimi_linear": "kimi_linear",
    # issue 20 section 3, session 5 (famdsa): sparse-attention MoE and classic families
    "deepseek_v32": "deepseek_v32",
    "glm_moe_dsa": "glm_moe_dsa",
    "minimax_m2": "minimax_m2",
    "dbrx": "dbrx",
    "jetmoe": "jetmoe",
    "falcon": "falcon",
    "bloom": "bloom",
    # issue 20 section 3 (famgguf): families transformers does not ship but llama.cpp loads (remote-code config.json)
    "baichuan": "baichuan",
    "internlm2": "internlm2",
    "orion": "orion",
    "minicpm": "minicpm",
    "minicpm3": "minicpm",  # transformers 5.23 ships MiniCPM3ForCausalLM (session 6, mtp)
    "deepseek": "deepseek_moe",
    "chatglm": "chatglm",
    "rwkv": "rwkv",  # RWKV-4 from config.json (transformers), RWKV-6/7 GGUFs (llama.cpp)
    # issue 20 section 3, session 5 (fammm): multimodal and audio families
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
    "glm4v": "glm4v",
    "glm4v_moe": "glm4v",
    "internvl": "internvl",
    "moonshine": "moonshine",
    # session 5 (qwen35mm): Qwen3.5 as its checkpoints ship, a vision tower beside the hybrid language model
    "qwen3_5": "qwen3_5_vl",
    "qwen3_5_moe": "qwen3_5_vl",
    # session 5 (gemma4): Gemma 4 text (per-layer embeddings, KV sharing, per-layer head sizes)
    "gemma4_text": "gemma4",
    "gemma4": "gemma4",
    "gemma3n_text": "gemma3n",
    # session 5 (audio): audio tokens in a decoder's self-attention context
    "qwen2_audio": "qwen2_audio",
    "voxtral": "voxtral",
    # session 6 (mmvision): the multimodal checkpoints' towers
    "llama4": "llama4",
    "gemma3n": "gemma3n",
    # session 6 (sample): Ministral 3 / Devstral 2, alone or as Mistral 3's text model
    "ministral3": "ministral3",
    "glm4_moe_lite": "deepseek",  # GLM-4.7-Flash: DeepSeek-V3's layer, dense layers by mlp_layer_types
}
ARCHITECTURES = tuple(FAMILIES)
# llama.cpp's general.architecture -> an architecture of the family whose `gguf_rules` read such a file into its own
# spec (archs/family.py: GGUFRules.decoder / moe / ssm), so a GGUF import loads that one module. Any other GGUF is
# read from its metadata (importers/gguf_generic.py) with what its family declares.
GGUF_READERS: dict[str, str] = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "granite": "granite",
    "starcoder2": "starcoder2",
    "cohere2": "cohere2",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "mamba2": "mamba2",
    "granitehybrid": "granitemoehybrid",
}


_LOADED: dict[str, Family[Any]] = {}


def family(architecture_or_spec: str | Any) -> Family[Any]:
    """The family of an architecture (or of a spec's architecture), its module loaded on first use and
    checked against the contract (archs/family.py: check_family)."""
    arch = architecture_or_spec if isinstance(architecture_or_spec, str) else architecture_or_spec.architecture
    module = FAMILIES[arch]
    fam = _LOADED.get(module)
    if fam is None:
        mod = import_module(f".{module}", __name__)
        fam = _LOADED[module] = check_family(
            vars(mod).get("FAMILY"), mod.__name__, (a for a, m in FAMILIES.items() if m == module)
        )
    return fam


def families() -> list[Family[Any]]:
    """Every family, in registry order (loads every module: for listings and tests, not start-up)."""
    return [family(arch) for arch in {m: a for a, m in FAMILIES.items()}.values()]


def spec_class(architecture: str) -> type:
    return family(architecture).specs[architecture]


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
SPEECH_ONLY = {
    "whisper.cpp": "whisper.cpp runs Whisper models only",
    "ctranslate2": "the ctranslate2 (faster-whisper) profile covers Whisper models only",
}


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
    fam = family(spec)
    if image_size is None or fam.sized_stages is None:
        return fam.stages(spec, context, source, images)
    return fam.sized_stages(spec, context, source, images, image_size=image_size)


def image_tokens(spec: Any, image_size: tuple[int, int] | None = None) -> int:
    return family(spec).image_tokens(spec, image_size)


def cross_source_tokens(spec: Any, images: int, encoder_tokens: int) -> int:
    return family(spec).cross_source_tokens(spec, images, encoder_tokens)


__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "GGUF_READERS",
    "Family",
    "Geometry",
    "LayerKV",
    "Stage",
    "Tensor",
    "cached",
    "cross_source_tokens",
    "families",
    "family",
    "geometry",
    "image_tokens",
    "model_tensors",
    "spec_class",
    "stages",
]
