"""Weights as a checkpoint stores them, standing in for the bytes an estimate computes.

A floor-level type: the arithmetic (memory.resolve) takes a `WeightsOverride` and the importers
(importers/weights.py, gguf_file.py) make one from file headers. It lives here, not in importers/,
so the arithmetic knows no file format (shared/house.json: never Memory -> Importers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .memory import Component


@dataclass(frozen=True)
class WeightsOverride:
    """The weight bytes a checkpoint really stores, for an estimate to use instead of computing them.

    `component_bytes` splits `total_bytes` over willitrun's component names (embeddings, encoder,
    decoder, lm_head, vision_tower, projector) when every stored tensor's name could be placed; it
    is empty when some could not, and then only the total is known. `dtype` is the willitrun
    --dtype name the stored weights are (fp16, bf16, q4_k_m, ...) when there is one, else None
    (a mix, or a format willitrun does not name, e.g. GPTQ).
    """

    source: str
    format: str  # "safetensors" or "gguf"
    storage: str  # what the tensors are stored as, for people: "BF16", "Q4_K_M (F32, Q4_K, Q6_K)"
    total_bytes: int
    elements: int  # elements stored (packed formats count what the file stores, not parameters)
    tensors: int
    component_bytes: tuple[tuple[str, int], ...] = ()
    dtype: str | None = None
    notes: tuple[str, ...] = ()
    # The engine whose store the file came from (ollama's: sources/names.py), the default engine for it;
    # None: the default follows the stored type (GGUF types: llama.cpp).
    engine: str | None = None

    def apply(self, computed: tuple[Component, ...]) -> tuple[Component, ...]:
        """`computed` with the stored bytes: per component when the names agree, else one component
        "checkpoint" holding the total (parameter counts always stay the architecture's)."""
        from .memory import Component

        stored = dict(self.component_bytes)
        if stored and set(stored) == {c.name for c in computed}:
            return tuple(Component(c.name, c.parameters, stored[c.name]) for c in computed)
        return (Component("checkpoint", sum(c.parameters for c in computed), self.total_bytes),)

    def describe(self) -> str:
        return f"weights: {self.total_bytes:,} bytes as stored in {self.source} ({self.storage})"
