"""The result types every engine profile returns, and small helpers they share.

An engine estimate is a list of buffers, each the size one engine allocates (or reserves) for one
purpose, where it lives (a GPU or host memory) and the formula that gives it. The totals are sums of
the buffers; nothing is added that is not a buffer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Placement = Literal["gpu", "host"]
Kind = Literal["weights", "kv_self", "kv_cross", "compute", "overhead", "other"]
KINDS: tuple[Kind, ...] = ("weights", "kv_self", "kv_cross", "compute", "overhead", "other")

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Buffer:
    """One allocation: `bytes` in `placement` for `kind`, `detail` giving the formula and its source."""

    name: str
    bytes: int
    placement: Placement
    kind: Kind
    detail: str
    device: int = 0  # GPU index when placement == "gpu" (several GPUs: each gets its own compute buffer)


@dataclass(frozen=True)
class EngineEstimate:
    """What one engine allocates to run a model, buffer by buffer.

    `context_tokens` is what was asked; `n_ctx` what the engine allocates KV for (padded, or
    multiplied by parallel slots). `facts` holds engine-specific figures (KV padding, micro-batch,
    vLLM's KV tokens and whether the model's window fits); everything in it is an int, bool or str.
    """

    engine: str
    model: str
    architecture: str
    dtype: str
    kv_dtype: str
    context_tokens: int
    n_ctx: int
    buffers: tuple[Buffer, ...]
    facts: dict[str, int | bool | str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def gpu_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers if b.placement == "gpu")

    @property
    def host_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers if b.placement == "host")

    @property
    def total_bytes(self) -> int:
        return self.gpu_bytes + self.host_bytes

    @property
    def gpus(self) -> int:
        devices = {b.device for b in self.buffers if b.placement == "gpu"}
        return len(devices)

    def device_bytes(self, device: int) -> int:
        """Bytes on one GPU (the figure to compare with that card's memory)."""
        return sum(b.bytes for b in self.buffers if b.placement == "gpu" and b.device == device)

    @property
    def max_device_bytes(self) -> int:
        """The fullest GPU: with several cards this, not the sum, decides whether it fits."""
        devices = {b.device for b in self.buffers if b.placement == "gpu"}
        return max((self.device_bytes(d) for d in devices), default=0)

    @property
    def need_bytes(self) -> int:
        """What the engine needs on its fullest GPU: max_device_bytes, except for vLLM, whose KV pool
        fills whatever its share of the card leaves: there the rest plus the KV one request of
        max_model_len needs (vllm==0.10.1 kv_cache_utils.py `check_enough_kv_cache_memory`), a figure
        that does not grow with the card."""
        if "kv_needed_bytes" not in self.facts:  # only vLLM's profile states it
            return self.max_device_bytes
        devices = {b.device for b in self.buffers if b.placement == "gpu"}
        rest = max(
            (
                self.device_bytes(d)
                - sum(b.bytes for b in self.buffers if b.placement == "gpu" and b.device == d and b.kind == "kv_self")
                for d in devices
            ),
            default=0,
        )
        return rest + int(self.facts["kv_needed_bytes"])

    def kind_bytes(self, kind: Kind, placement: Placement | None = None) -> int:
        return sum(b.bytes for b in self.buffers if b.kind == kind and (placement is None or b.placement == placement))

    def find(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)


def pad(n: int, multiple: int) -> int:
    """GGML_PAD: n rounded up to a multiple."""
    return -(-n // multiple) * multiple if multiple > 1 else n


def aligned_sum(sizes: Iterable[int], alignment: int) -> int:
    """Bytes of a backend buffer holding these tensors: ggml_backend_alloc_ctx_tensors_from_buft places
    each tensor at an offset aligned to the buffer type's alignment (CUDA: 128 B,
    ggml-cuda.cu `ggml_backend_cuda_buffer_type_get_alignment`)."""
    return sum(pad(s, alignment) for s in sizes)
