"""Engine profiles: what each inference engine really allocates, as buffers over the same arithmetic.

    >>> from willitrun import load_catalog
    >>> from willitrun.memory import Request
    >>> from willitrun.engines import engine_estimate
    >>> e = engine_estimate(load_catalog().resolve("model", "llama-2-7b"), Request(context=2048, dtype="q4_k_m"), "llama.cpp")
    >>> e.find("KV cache (CUDA0)").bytes == 1024 * 2**20
    True

Profiles (one module each): `transformers` (memory.estimate as buffers), `llama.cpp` and `ollama`
(llamacpp.py), `whisper.cpp` (whispercpp.py), `vllm` (vllm.py), `ctranslate2` alias `faster-whisper`
(ctranslate2.py). Each reuses the tensor inventory
(tensors.model_tensors), the attention geometry (memory.attention / resolve), image and source token
counts and the storage types (dtypes, gguf.tensor_types); what differs is what the engine does with
them: padding, placement, its own compute graph, its own pre-allocation. No typer, rich or NVML here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

from ..errors import UsageError
from ..fit import largest
from ..memory import AnySpec, Request, resolve
from .base import KINDS, Buffer, EngineEstimate, Kind, Placement
from .ctranslate2 import CTranslate2Options, ctranslate2_estimate
from .llamacpp import LLAMACPP_VERSIONS, LlamaCppOptions, llamacpp_estimate
from .ollama import OllamaOptions, ollama_estimate
from .transformers import estimate_buffers, transformers_estimate
from .vllm import VllmOptions, vllm_estimate
from .whispercpp import WhisperCppOptions, whispercpp_estimate

if TYPE_CHECKING:
    from ..importers import WeightsOverride

from ..dtypes import ENGINE_ALIASES, ENGINES  # the names, said once (dtypes: light, on the start-up path)

EngineOptions = Union[LlamaCppOptions, OllamaOptions, WhisperCppOptions, VllmOptions, CTranslate2Options, None]
_OPTIONS = {"llama.cpp": LlamaCppOptions, "ollama": OllamaOptions, "whisper.cpp": WhisperCppOptions,
            "vllm": VllmOptions, "ctranslate2": CTranslate2Options}
GGUF_DTYPES = frozenset({"q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k"})


def default_engine(dtype: str | None) -> str:
    """transformers for fp32/fp16/bf16/fp8/int8/int4 (and the checkpoint's own type), llama.cpp for GGUF types."""
    from ..dtypes import default_engine as _default

    return _default(dtype)


def engine_estimate(spec: AnySpec, request: Request | None = None, engine: str = "transformers",
                    options: EngineOptions = None, weights: WeightsOverride | None = None) -> EngineEstimate:
    """What `engine` allocates to run `spec` for `request`; `options` is the engine's own options
    class (LlamaCppOptions, OllamaOptions, WhisperCppOptions, VllmOptions, CTranslate2Options) or None for its defaults."""
    req = request or Request()
    engine = ENGINE_ALIASES.get(engine, engine)
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    expected = _OPTIONS.get(engine)
    if options is not None and not isinstance(options, expected or ()):
        raise UsageError(f"{engine} takes {expected.__name__ if expected else 'no'} options, not {type(options).__name__}")
    if engine == "transformers":
        return transformers_estimate(spec, req, weights)
    if engine == "llama.cpp":
        return llamacpp_estimate(spec, req, options)  # type: ignore[arg-type]
    if engine == "ollama":
        return ollama_estimate(spec, req, options)  # type: ignore[arg-type]
    if engine == "whisper.cpp":
        return whispercpp_estimate(spec, req, options)  # type: ignore[arg-type]
    if engine == "ctranslate2":
        return ctranslate2_estimate(spec, req, options)  # type: ignore[arg-type]
    return vllm_estimate(spec, req, options)  # type: ignore[arg-type]


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
        if self.estimate.engine == "vllm":
            return bool(self.estimate.facts["fits_window"])
        return self.total_bytes <= self.vram_bytes

    @property
    def headroom_bytes(self) -> int:
        """What is left of the card (vLLM: of its share) at this total."""
        if self.estimate.engine == "vllm":
            return int(self.estimate.facts["usable_bytes"]) - self.total_bytes
        return self.vram_bytes - self.total_bytes


def engine_fit(spec: AnySpec, request: Request | None, engine: str, options: EngineOptions, vram_bytes: int,
               weights: WeightsOverride | None = None) -> EngineFit:
    """engine_estimate, plus whether it fits `vram_bytes` and the largest context that does, searched
    up to fit.context_limit for every engine (the main command, check, ladder and gpus all call this,
    so one question has one answer). `weights` (an imported file's tensors) size the transformers
    profile; GGUF engines size the file's own type."""
    from ..fit import check_fit, context_limit

    req = request or Request()
    engine = ENGINE_ALIASES.get(engine, engine)
    if engine == "transformers":
        f = check_fit(spec, req, vram_bytes, "", weights, suggest=False)
        return EngineFit(estimate_buffers(f.estimate), vram_bytes, f.max_context_tokens, f.context_limit)
    if engine == "vllm":
        opts = options if isinstance(options, VllmOptions) else VllmOptions()
        if opts.total_memory_bytes is None:
            opts = replace(opts, total_memory_bytes=vram_bytes)
        est = vllm_estimate(spec, req, opts)
        window = int(est.facts["max_model_len"])
        return EngineFit(est, vram_bytes, min(window, int(est.facts["kv_tokens"])), window)
    est = engine_estimate(spec, req, engine, options)
    if engine == "whisper.cpp":  # the text context is fixed at 448 (padded to 512)
        return EngineFit(est, vram_bytes, est.context_tokens if est.max_device_bytes <= vram_bytes else 0,
                         est.context_tokens)
    r = resolve(spec, req)
    limit = context_limit(r, est.context_tokens)
    best = largest(lambda n: engine_estimate(spec, replace(req, context=n), engine, options).max_device_bytes
                   <= vram_bytes, r.image_tokens + 1, limit)
    return EngineFit(est, vram_bytes, best, limit)


__all__ = [
    "ENGINES",
    "ENGINE_ALIASES",
    "KINDS",
    "LLAMACPP_VERSIONS",
    "Buffer",
    "CTranslate2Options",
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
    "engine_estimate",
    "engine_fit",
    "estimate_buffers",
    "largest",
]
