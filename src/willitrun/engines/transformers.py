"""transformers as an engine: memory.estimate's parts as buffers, all on the GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..memory import AnySpec, Estimate, Request, estimate
from .base import Buffer, EngineEstimate

if TYPE_CHECKING:
    from ..importers import WeightsOverride


def transformers_estimate(spec: AnySpec, request: Request, weights: WeightsOverride | None = None) -> EngineEstimate:
    """memory.estimate (Hugging Face transformers, checked against it in tests/reference) as buffers;
    `weights` are an imported file's stored tensors (a .gguf or safetensors header)."""
    return estimate_buffers(estimate(spec, request, weights=weights))


def estimate_buffers(e: Estimate) -> EngineEstimate:
    """One transformers Estimate as the buffers of an engine estimate (every part on GPU 0), so the
    fit, the searches and the JSON treat it like any other engine's."""
    buffers = [Buffer(f"weights: {c.name}", c.bytes, "gpu", "weights", f"{c.parameters} parameters in {e.dtype}")
               for c in e.components]
    buffers.append(Buffer("self-attention KV cache", e.kv_self_bytes, "gpu", "kv_self",
                          f"2 x {e.attention.self_layers} layers x {e.attention.self_width} x {e.context_tokens} positions "
                          f"x {e.batch_size * e.beams} sequences x {e.kv_dtype}"))
    if e.kv_cross_bytes:
        buffers.append(Buffer("cross-attention KV cache", e.kv_cross_bytes, "gpu", "kv_cross",
                              f"2 x {e.attention.cross_layers} layers x {e.attention.cross_width} x "
                              f"{e.cross_source_tokens} source positions x {e.batch_size * e.beams} sequences"))
    buffers.append(Buffer("activations (prefill peak)", e.activations_bytes, "gpu", "compute",
                          "largest layer's temporaries + last logits in fp32 (memory.activation_bytes)"))
    buffers.append(Buffer("runtime overhead", e.overhead_bytes, "gpu", "overhead",
                          "CUDA context, cuBLAS, allocator: measured (lm-sys/FastChat#2005, memory.TRANSFORMERS_OVERHEAD_BYTES)"))
    facts: dict[str, int | bool | str] = {"batch": e.batch_size, "beams": e.beams, "images": e.images,
                                          "cross_source_tokens": e.cross_source_tokens}
    return EngineEstimate("transformers", e.model, e.architecture, e.dtype, e.kv_dtype, e.context_tokens,
                          e.context_tokens, tuple(buffers), facts, e.notes, e.warnings)
