"""Engine profiles: what each inference engine really allocates, as buffers over the same arithmetic.

    >>> from willitrun import load_catalog
    >>> from willitrun.memory import Request
    >>> from willitrun.engines import engine_estimate
    >>> e = engine_estimate(load_catalog().resolve("model", "llama-2-7b"), Request(context=2048, dtype="q4_k_m"), "llama.cpp")
    >>> e.find("KV cache (CUDA0)").bytes == 1024 * 2**20
    True

One class per engine (engines/registry.py: names, options declared once, versions, estimate, fit,
launch line); the profiles' arithmetic is one module each: `transformers` (memory.estimate as buffers),
`llama.cpp` and `ollama` (llamacpp.py, ollama.py), `whisper.cpp` (whispercpp.py), `vllm` (vllm.py),
`ctranslate2` alias `faster-whisper` (ctranslate2.py). Each reuses the tensor inventory
(tensors.model_tensors), the attention geometry (memory.attention / resolve), image and source token
counts and the storage types (dtypes, gguf.tensor_types); what differs is what the engine does with
them: padding, placement, its own compute graph, its own pre-allocation. No typer, rich or NVML here,
and no verdict (fit.py): the searches come from memory.

Importing this package is light: the registry, the buffer types and the profiles load on first use
(the option declarations, engines/options.py, are on the start-up path of every command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..dtypes import ENGINE_ALIASES, ENGINES  # the names, said once (dtypes: light, on the start-up path)

if TYPE_CHECKING:
    from ..memory import AnySpec, Request
    from ..overrides import WeightsOverride
    from .base import KINDS, Buffer, EngineEstimate, Kind, Placement
    from .ctranslate2 import CTranslate2Options
    from .llamacpp import LlamaCppOptions
    from .ollama import OllamaOptions
    from .registry import REGISTRY, Engine, engine_class
    from .vllm import VllmOptions
    from .whispercpp import WhisperCppOptions

EngineOptions = Union[
    "LlamaCppOptions", "OllamaOptions", "WhisperCppOptions", "VllmOptions", "CTranslate2Options", None
]
GGUF_DTYPES = frozenset({"q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k"})


def __getattr__(name: str) -> Any:
    """The names re-exported from the profiles, imported when first asked for (plain imports, so a
    reader of the imports, such as the layering check, sees every one)."""
    if name in ("REGISTRY", "Engine", "engine_class"):
        from . import registry

        return getattr(registry, name)
    if name in ("KINDS", "Buffer", "EngineEstimate", "Kind", "Placement"):
        from . import base

        return getattr(base, name)
    if name == "CTranslate2Options":
        from .ctranslate2 import CTranslate2Options

        return CTranslate2Options
    if name in ("LlamaCppOptions", "LLAMACPP_VERSIONS"):
        from . import llamacpp

        return getattr(llamacpp, name)
    if name == "OllamaOptions":
        from .ollama import OllamaOptions

        return OllamaOptions
    if name == "VllmOptions":
        from .vllm import VllmOptions

        return VllmOptions
    if name == "WhisperCppOptions":
        from .whispercpp import WhisperCppOptions

        return WhisperCppOptions
    if name == "estimate_buffers":
        from .transformers import estimate_buffers

        return estimate_buffers
    if name == "largest":
        from ..memory import largest

        return largest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_engine(dtype: str | None) -> str:
    """transformers for fp32/fp16/bf16/fp8/int8/int4 (and the checkpoint's own type), llama.cpp for GGUF types."""
    from ..dtypes import default_engine as _default

    return _default(dtype)


def _checked(engine: str, options: Any) -> type[Engine]:
    from ..errors import UsageError
    from .registry import engine_class

    cls = engine_class(engine)
    expected = cls.options_class()
    if options is not None and not isinstance(options, expected or ()):
        raise UsageError(
            f"{cls.name} takes {expected.__name__ if expected else 'no'} options, not {type(options).__name__}"
        )
    return cls


def engine_estimate(
    spec: AnySpec,
    request: Request | None = None,
    engine: str = "transformers",
    options: EngineOptions = None,
    weights: WeightsOverride | None = None,
) -> EngineEstimate:
    """What `engine` allocates to run `spec` for `request`; `options` is the engine's own options
    class (LlamaCppOptions, OllamaOptions, WhisperCppOptions, VllmOptions, CTranslate2Options) or None for its defaults."""
    from ..memory import Request as _Request

    return _checked(engine, options).estimate(spec, request or _Request(), options, weights)


@dataclass(frozen=True)
class EngineFit:
    """An engine estimate against one GPU's memory: the fullest device decides (several GPUs: each
    holds its own share); for vLLM, whether the KV pool left over holds the model's window."""

    estimate: EngineEstimate
    vram_bytes: int
    max_context_tokens: int  # largest context (same settings) that fits, up to context_limit; 0 if none
    context_limit: int

    @property
    def total_bytes(self) -> int:
        """The bytes compared with the card: the fullest GPU (one GPU: everything on it); vLLM: what it
        needs of its share, not the share its KV pool fills (EngineEstimate.need_bytes)."""
        return self.estimate.need_bytes

    @property
    def fits(self) -> bool:
        from .registry import REGISTRY

        return REGISTRY[self.estimate.engine].fits(self)

    @property
    def headroom_bytes(self) -> int:
        """What is left of the card (vLLM: of its share) at this total."""
        from .registry import REGISTRY

        return REGISTRY[self.estimate.engine].headroom_bytes(self)


def engine_fit(
    spec: AnySpec,
    request: Request | None,
    engine: str,
    options: EngineOptions,
    vram_bytes: int,
    weights: WeightsOverride | None = None,
) -> EngineFit:
    """engine_estimate, plus whether it fits `vram_bytes` and the largest context that does, searched
    up to memory.context_limit for every engine (the main command, check, ladder and gpus all call this,
    so one question has one answer). `weights` (an imported file's tensors) size the transformers
    profile; GGUF engines size the file's own type."""
    from ..memory import Request as _Request

    return _checked(engine, options).fit(spec, request or _Request(), options, vram_bytes, weights)


__all__ = [
    "ENGINES",
    "ENGINE_ALIASES",
    "KINDS",
    "LLAMACPP_VERSIONS",
    "REGISTRY",
    "Buffer",
    "CTranslate2Options",
    "Engine",
    "EngineEstimate",
    "EngineFit",
    "EngineOptions",
    "Kind",
    "LlamaCppOptions",
    "OllamaOptions",
    "Placement",
    "VllmOptions",
    "WhisperCppOptions",
    "default_engine",
    "engine_class",
    "engine_estimate",
    "engine_fit",
    "estimate_buffers",
    "largest",
]
