"""transformers as an engine: memory.estimate's parts as buffers, all on the GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ..memory import AnySpec, Estimate, Request, estimate, estimate_facts, estimate_parts
from .base import Buffer, EngineEstimate, Kind

if TYPE_CHECKING:
    from ..overrides import WeightsOverride


def transformers_estimate(spec: AnySpec, request: Request, weights: WeightsOverride | None = None) -> EngineEstimate:
    """memory.estimate (Hugging Face transformers, checked against it in tests/reference) as buffers;
    `weights` are an imported file's stored tensors (a .gguf or safetensors header)."""
    return estimate_buffers(estimate(spec, request, weights=weights))


def estimate_buffers(e: Estimate) -> EngineEstimate:
    """One transformers Estimate as the buffers of an engine estimate (every part on GPU 0, as
    memory.estimate_parts lists them), so the fit, the searches and the JSON treat it like any other engine's."""
    buffers = tuple(
        Buffer(name, nbytes, "gpu", cast(Kind, kind), detail) for name, nbytes, kind, detail in estimate_parts(e)
    )
    return EngineEstimate(
        "transformers",
        e.model,
        e.architecture,
        e.dtype,
        e.kv_dtype,
        e.context_tokens,
        e.context_tokens,
        buffers,
        estimate_facts(e),
        e.notes,
        e.warnings,
    )
