"""An upper bound on decode speed: a generated token cannot come faster than the memory holding
what it reads can deliver those bytes. Time per token >= sum over memories of bytes / bandwidth.

Pure library: no typer, no rich, nothing printed. Sizes are ints of bytes, bandwidths ints of bytes
per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .dtypes import KV_DTYPES
from .errors import UsageError
from .layers import Layout
from .memory import Estimate, kv_self_bytes, kv_window_bytes  # noqa: F401
from .placement import Device, Offload, Split, layer_owners

# Dual-channel DDR5-5600, the common desktop configuration: 2 channels x 64 bit x 5600 MT/s / 8 =
# 89.6 GB/s (JEDEC JESD79-5 speed bin DDR5-5600; Intel lists "Max Memory Bandwidth 89.6 GB/s" for the
# Core i9-14900K, https://www.intel.com/content/www/us/en/products/sku/236773/specifications.html).
SYSTEM_BANDWIDTH_BYTES_S = 89_600_000_000


@dataclass(frozen=True)
class SpeedTerm:
    where: str  # "gpu", "system memory", "gpu 0" ...
    bytes: int  # read per generated token
    bandwidth_bytes_s: int


@dataclass(frozen=True)
class DecodeSpeed:
    """An upper bound: a decode step cannot be faster than reading its bytes at full bandwidth."""

    weights_read_bytes: int  # decoder layers and output layer (not the encoder, vision tower, input embeddings)
    kv_read_bytes: int  # every cache at the current context, all sequences
    terms: tuple[SpeedTerm, ...]  # read one after the other: the times add
    seconds_per_token: float
    tokens_per_s: float  # per sequence
    batch_size: int
    tokens_per_s_batch: float  # all sequences advance in one step
    formula: str


def _gb(n: float) -> str:
    return f"{n / 10**9:.2f} GB"


def _speed(weights: int, kv: int, terms: list[SpeedTerm], batch: int) -> DecodeSpeed:
    terms = [t for t in terms if t.bytes]
    seconds = sum(t.bytes / t.bandwidth_bytes_s for t in terms)
    rate = 1 / seconds if seconds else float("inf")
    parts = " + ".join(f"{_gb(t.bytes)} / {t.bandwidth_bytes_s / 10**9:g} GB/s" for t in terms)
    formula = f"tokens/s <= 1 / ({parts}) = {rate:.1f} per sequence (GB = 10^9 bytes)"
    return DecodeSpeed(weights, kv, tuple(terms), seconds, rate, batch, rate * batch, formula)


def _decode_weights(lay: Layout, est: Estimate | None = None) -> int:
    return sum(x.decode_bytes for x in lay.layers) + lay.output_decode_bytes - (expert_unread(est) if est else 0)


def expert_read(est: Estimate, layer: int) -> int:
    """Bytes of layer `layer`'s routed experts one decoding step reads: the experts its tokens are
    routed to, at most experts_per_token x sequences of the n_expert (all of them once the batch is
    large enough); every expert when the model is dense (no expert bytes)."""
    if not est.expert_bytes:
        return 0
    k, n = est.experts_read
    used = min(n, k * est.batch_size * est.beams)
    return est.expert_bytes[layer] * used // n


def expert_unread(est: Estimate, first: int = 0, last: int | None = None) -> int:
    """Expert bytes of layers [first, last) resident but not read by a decoding step."""
    if not est.expert_bytes:
        return 0
    last = len(est.expert_bytes) if last is None else last
    return sum(est.expert_bytes[i] - expert_read(est, i) for i in range(first, last))


def kv_self_read(est: Estimate) -> int:
    """Self-attention cache bytes one decoding step reads: all cached positions, but a sliding layer
    (Mistral 7B v0.1, Gemma's local layers) only its window, although the prefill peak holds the
    whole prompt."""
    att = est.attention
    if att.sliding_window and est.context_tokens > att.sliding_window:
        return kv_window_bytes(att, est.context_tokens, est.batch_size * est.beams, KV_DTYPES[est.kv_dtype])
    return est.kv_self_bytes


def cache_read(est: Estimate) -> int:
    """Every cache one decoding step reads: the self-attention caches (kv_self_read), the
    cross-attention caches and the recurrent state of state-space layers (read and rewritten each
    step); what Layout.kv_per_layer(read=True) gives layer by layer."""
    return kv_self_read(est) + est.kv_cross_bytes + est.state_bytes


def decode_speed(lay: Layout, est: Estimate, bandwidth_bytes_s: int) -> DecodeSpeed:
    """tokens/s <= bandwidth / bytes read per token: the decoder's weights and the output layer, plus
    every KV cache at the current context. One step advances all `batch` sequences at once."""
    weights = _decode_weights(lay, est)
    kv = cache_read(est)
    return _speed(weights, kv, [SpeedTerm("gpu", weights + kv, bandwidth_bytes_s)], est.batch_size)


def offload_speed(
    lay: Layout,
    est: Estimate,
    off: Offload,
    gpu_bandwidth_bytes_s: int,
    system_bandwidth_bytes_s: int = SYSTEM_BANDWIDTH_BYTES_S,
) -> DecodeSpeed:
    """With offload the CPU reads its layers from system memory: time per token = GPU bytes / GPU
    bandwidth + system bytes / system-memory bandwidth."""
    n, k = len(lay.layers), off.gpu_layers
    kv = lay.kv_per_layer(est, read=True)
    out = lay.output_decode_bytes
    gpu_w = (
        sum(x.decode_bytes for x in lay.layers[n - k :])
        + (out if off.output_on_gpu else 0)
        - expert_unread(est, n - k, n)
    )
    sys_w = (
        sum(x.decode_bytes for x in lay.layers[: n - k])
        + (0 if off.output_on_gpu else out)
        - expert_unread(est, 0, n - k)
    )
    gpu_kv, sys_kv = sum(kv[n - k :]), sum(kv[: n - k])
    return _speed(
        gpu_w + sys_w,
        gpu_kv + sys_kv,
        [
            SpeedTerm("gpu", gpu_w + gpu_kv, gpu_bandwidth_bytes_s),
            SpeedTerm("system memory", sys_w + sys_kv, system_bandwidth_bytes_s),
        ],
        est.batch_size,
    )


def split_speed(lay: Layout, est: Estimate, s: Split, devices: Sequence[Device]) -> DecodeSpeed:
    """Tensor split: the cards read their slices at the same time (one term: the slowest card).
    Layer split: a token passes the cards one after the other (one term per card)."""
    if any(d.bandwidth_bytes_s is None for d in devices):
        raise UsageError("a speed bound needs each card's bandwidth: give catalog GPUs (--gpu)")
    weights = _decode_weights(lay, est)
    kv_read = cache_read(est)
    if s.kind == "tensor":
        # Every card reads its slice at once; replicated KV heads (and their projections) are read
        # on every card that holds them.
        n = len(devices)
        held = kv_read * sum(c.kv_bytes for c in s.cards) // s.kv_bytes if s.kv_bytes else 0
        proj = s.duplicated_bytes - (sum(c.kv_bytes for c in s.cards) - s.kv_bytes)
        per_card = -(-(weights + proj + held) // n)
        slowest = min(devices, key=lambda d: d.bandwidth_bytes_s or 0)
        term = SpeedTerm(f"each of {n} cards, in parallel", per_card, slowest.bandwidth_bytes_s or 0)
        return _speed(weights, kv_read, [term], est.batch_size)
    owners = layer_owners(s)
    kv = lay.kv_per_layer(est, read=True)
    per = [0] * len(devices)
    for i, layer in enumerate(lay.layers):
        per[owners[i]] += layer.decode_bytes + kv[i] - expert_unread(est, i, i + 1)
    per[owners[-1]] += lay.output_decode_bytes
    terms = [SpeedTerm(f"gpu {i} ({d.gpu})", per[i], d.bandwidth_bytes_s or 0) for i, d in enumerate(devices)]
    return _speed(weights, kv_read, terms, est.batch_size)


def engine_speed(
    buffers: Sequence[tuple[str, str, str, int]],
    context: int,
    n_ctx: int,
    batch: int,
    gpu_bandwidth_bytes_s: int,
    system_bandwidth_bytes_s: int,
) -> DecodeSpeed:
    """The bound for any engine's buffers (name, placement, kind, bytes): every weight buffer is read
    once per token except the token embedding (a row lookup) and a vision tower (not run while
    decoding); the KV caches are read up to the context (`context / n_ctx` of the allocated cells);
    GPU buffers at the card's bandwidth, host buffers at the system memory's."""
    weights = {"gpu": 0, "host": 0}
    kv = {"gpu": 0, "host": 0}
    for name, placement, kind, nbytes in buffers:
        if kind == "weights" and "embedding" not in name and "mmproj" not in name and "vision" not in name:
            weights[placement] += nbytes
        elif kind in ("kv_self", "kv_cross"):
            kv[placement] += nbytes * min(context, n_ctx) // max(n_ctx, 1)
    terms = [
        SpeedTerm("gpu", weights["gpu"] + kv["gpu"], gpu_bandwidth_bytes_s),
        SpeedTerm("system memory", weights["host"] + kv["host"], system_bandwidth_bytes_s),
    ]
    return _speed(weights["gpu"] + weights["host"], kv["gpu"] + kv["host"], terms, batch)


def moe_offload_speed(
    lay: Layout,
    est: Estimate,
    n_cpu_moe: int,
    gpu_bandwidth_bytes_s: int,
    system_bandwidth_bytes_s: int = SYSTEM_BANDWIDTH_BYTES_S,
) -> DecodeSpeed:
    """llama.cpp --n-cpu-moe N (every layer otherwise on the GPU): the CPU reads the routed experts of
    layers 0..N-1 from system memory -- only the experts_per_token a token is routed to, which is
    why expert offload costs far less speed than offloading whole layers; the GPU reads the rest."""
    if not est.expert_bytes:
        raise UsageError(f"{est.model} has no experts: --n-cpu-moe does not apply")
    n = min(n_cpu_moe, len(est.expert_bytes))
    weights = _decode_weights(lay, est)
    sys_w = sum(expert_read(est, i) for i in range(n))
    kv = cache_read(est)
    return _speed(
        weights,
        kv,
        [
            SpeedTerm("gpu", weights - sys_w + kv, gpu_bandwidth_bytes_s),
            SpeedTerm("system memory", sys_w, system_bandwidth_bytes_s),
        ],
        est.batch_size,
    )
