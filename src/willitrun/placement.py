"""Where a model's bytes go on several cards, or between a card and system memory:

- `tensor_split` / `layer_split`: the model over N cards, per-card figures;
- `offload`: how many repeating layers stay on the GPU when it does not fit (llama.cpp `-ngl`).

speed.py turns these placements into an upper bound on decode speed.

Pure library: no typer, no rich, nothing printed. Every size is an int of bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from . import archs
from .devices import Device as Device
from .devices import device as device
from .errors import UsageError
from .fit import context_limit, largest
from .layers import Layout, layout
from .memory import AnySpec, Estimate, Resolved, estimate_resolved


# --------------------------------------------------------------------------------------------------
# Tensor parallelism
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    index: int
    gpu: str
    vram_bytes: int
    layers: int  # repeating layers it holds (tensor split: a 1/N slice of every layer)
    first_layer: str | None  # e.g. "decoder.0"; None when it holds no layer
    last_layer: str | None
    holds_output: bool  # the final norm and LM head (layer split: the last card with layers)
    weights_bytes: int
    kv_bytes: int
    activations_bytes: int
    overhead_bytes: int
    total_bytes: int
    headroom_bytes: int
    fits: bool


@dataclass(frozen=True)
class Split:
    kind: Literal["tensor", "layer"]
    count: int
    context_tokens: int
    cards: tuple[Card, ...]
    valid: bool  # tensor: every head count divides (see problems)
    problems: tuple[str, ...]
    fits: bool  # valid and every card fits
    max_context_tokens: int  # largest context at which every card fits; 0 if none
    context_limit_tokens: int
    weights_bytes: int  # the whole model, once
    kv_bytes: int  # the whole model's caches, once
    duplicated_bytes: int  # held on more than one card: replicated KV heads, a tied embedding's copy
    notes: tuple[str, ...]


def _card(
    i: int,
    d: Device,
    layers: int,
    first: str | None,
    last: str | None,
    output: bool,
    weights: int,
    kv: int,
    est: Estimate,
) -> Card:
    total = weights + kv + est.activations_bytes + est.overhead_bytes
    return Card(
        i,
        d.gpu,
        d.vram_bytes,
        layers,
        first,
        last,
        output,
        weights,
        kv,
        est.activations_bytes,
        est.overhead_bytes,
        total,
        d.vram_bytes - total,
        total <= d.vram_bytes,
    )


def caches_bytes(est: Estimate) -> int:
    """What a card's `kv_bytes` holds a share of: the KV caches and the recurrent state of
    state-space layers (Jamba, Falcon-H1, Mamba), which sit with their layers as caches do."""
    return est.kv_bytes + est.state_bytes


def _shares(total: int, n: int) -> list[int]:
    """`total` bytes in n parts that add up exactly (the first `total % n` parts one byte larger)."""
    q, rem = divmod(total, n)
    return [q + (i < rem) for i in range(n)]


def tp_constraints(spec: AnySpec) -> list[tuple[str, int, bool]]:
    """(what, count, may be replicated) that a tensor-parallel count must divide. vLLM shards every
    attention's query heads and every MLP's width (`divide()` in vllm/model_executor/layers/linear.py
    asserts the remainder is 0); KV heads may instead be replicated when the count is a multiple of
    them (QKVParallelLinear: `num_kv_head_replicas = divide(tp_size, total_num_kv_heads)`)."""
    return list(archs.geometry(spec).tp_constraints)


def tp_kv_heads(spec: AnySpec) -> int:
    """The heads the KV caches are split by: KV heads where the model has GQA, else attention heads."""
    return archs.geometry(spec).tp_kv_heads


def tp_problems(spec: AnySpec, n: int) -> list[str]:
    """Why `n` cards cannot split the model by tensor parallelism (empty when they can)."""
    out = []
    for what, count, replicable in tp_constraints(spec):
        if count % n == 0 or (replicable and n % count == 0):
            continue
        extra = f", and {n} is not a multiple of {count} (which would replicate them)" if replicable else ""
        out.append(f"{what} ({count}) not divisible by {n}{extra}")
    return out


def tp_bytes(est: Estimate, n: int, kv_heads: int, kv_proj_bytes: int) -> tuple[list[int], list[int]]:
    """(weights, KV) per card for n-way tensor parallelism. Each card holds kv_heads / n KV heads, or
    one replicated head when n exceeds them (n is then a multiple of kv_heads): its KV cache and the
    K and V projections are held kv_heads-ways, not n-ways; everything else, the recurrent state of
    state-space layers too, is divided by n."""
    per_card_heads = kv_heads // n if kv_heads % n == 0 else 1
    held_kv = est.kv_bytes * per_card_heads * n // kv_heads
    held_proj = kv_proj_bytes * per_card_heads * n // kv_heads
    return _shares(est.weights_bytes - kv_proj_bytes + held_proj, n), _shares(held_kv + est.state_bytes, n)


def _tp_cards(est: Estimate, devices: Sequence[Device], kv_heads: int, lay: Layout) -> tuple[Card, ...]:
    w, kv = tp_bytes(est, len(devices), kv_heads, lay.kv_proj_bytes)
    # a model measured without per-layer tensors (the transformers oracle's generic spec) names no layers
    first, last = (lay.layers[0].name, lay.layers[-1].name) if lay.layers else (None, None)
    return tuple(_card(i, d, len(lay.layers), first, last, True, w[i], kv[i], est) for i, d in enumerate(devices))


def tensor_split(
    r: Resolved, context: int, batch: int, beams: int, devices: Sequence[Device], lay: Layout | None = None
) -> Split:
    """The model over N identical cards by tensor parallelism: weights and KV caches divided by N
    (KV heads replicated when N exceeds them), activations and the runtime overhead on every card."""
    if len({d.vram_bytes for d in devices}) > 1:
        raise UsageError("tensor parallelism needs identical cards; use --split layer for different cards")
    spec, n = r.spec, len(devices)
    problems = tuple(tp_problems(spec, n))
    kv_heads = tp_kv_heads(spec)
    lay = lay or layout(r)
    est = estimate_resolved(r, context, batch, beams)
    cards = _tp_cards(est, devices, kv_heads, lay)
    limit = context_limit(r, context)
    valid = not problems

    def fits_at(c: int) -> bool:
        return all(x.fits for x in _tp_cards(estimate_resolved(r, c, batch, beams), devices, kv_heads, lay))

    best = largest(fits_at, r.image_tokens + 1, limit) if valid else 0
    held_kv = sum(x.kv_bytes for x in cards)
    # per-card figures mean nothing when the heads do not divide: nothing is duplicated then
    duplicated = sum(x.weights_bytes for x in cards) - est.weights_bytes + held_kv - caches_bytes(est) if valid else 0
    notes = [
        "activations and the runtime overhead are counted on every card; norms and biases are counted "
        "as divided though engines replicate them (well under 1% of the weights); communication "
        "buffers (NCCL) are not counted"
    ]
    if duplicated:
        notes.append(
            f"{n} cards exceed the {kv_heads} KV heads: each card holds one replicated KV head "
            "(its cache and its K and V projections)"
        )
    return Split(
        "tensor",
        n,
        context,
        cards,
        valid,
        problems,
        valid and all(x.fits for x in cards),
        best,
        limit,
        est.weights_bytes,
        caches_bytes(est),
        duplicated,
        tuple(notes),
    )


# --------------------------------------------------------------------------------------------------
# Layer (pipeline) split
# --------------------------------------------------------------------------------------------------
def _layer_costs(lay: Layout, est: Estimate, n_cards: int) -> tuple[list[int], list[int]]:
    """(bytes of each layer with its cache and the loose tensors after it, bytes each card holds
    whatever its layers: activations and overhead; the token embeddings and what precedes the first
    layer on the first card; the final norm, LM head and a tied embedding's copy on the last)."""
    loads = [x.weights_bytes + k for x, k in zip(lay.layers, lay.kv_per_layer(est), strict=True)]
    fixed = [est.activations_bytes + est.overhead_bytes] * n_cards
    fixed[0] += lay.embeddings_bytes
    fixed[-1] += lay.output_bytes + (lay.tied_bytes if n_cards > 1 else 0)
    for nbytes, before in lay.other:
        if before >= 0:
            loads[before] += nbytes
        else:
            fixed[0] += nbytes
    return loads, fixed


def _fill(loads: list[int], fixed: list[int], caps: list[int]) -> list[int] | None:
    """Layers per card when each card in turn takes as many of the next layers as fit under its cap
    (the last card takes the rest); None when they do not fit. Taking as many as fit never hurts
    the cards after, so this finds a split whenever a split in order exists."""
    counts, i = [], 0
    for c, (cap, fix) in enumerate(zip(caps, fixed, strict=True)):
        room = cap - fix
        if c == len(caps) - 1:
            if room < sum(loads[i:]):
                return None
            counts.append(len(loads) - i)
            break
        k = 0
        while i < len(loads) and loads[i] <= room:
            room -= loads[i]
            i, k = i + 1, k + 1
        if room < 0:
            return None
        counts.append(k)
    return counts


def balanced_layers(loads: list[int], fixed: list[int], vram: list[int]) -> list[int]:
    """Layers per card for the split in order that leaves the fullest card (as a share of its memory)
    least full: bisection on that share, each step a greedy fill."""

    def at(u: float) -> list[int] | None:
        return _fill(loads, fixed, [int(u * v) for v in vram])

    lo, hi = 0.0, 1.0
    for _ in range(128):  # does not fit: the most even split that does not (2^128 x a card holds any sum of ints)
        if at(hi) is not None:
            break
        lo, hi = hi, hi * 2
    for _ in range(48):
        mid = (lo + hi) / 2
        if at(mid) is None:
            lo = mid
        else:
            hi = mid
    return at(hi) or []


def _layer_cards(lay: Layout, est: Estimate, devices: Sequence[Device], counts: list[int]) -> tuple[Card, ...]:
    loads, fixed = _layer_costs(lay, est, len(devices))
    kv_each = lay.kv_per_layer(est)
    cards, i = [], 0
    for c, (d, k) in enumerate(zip(devices, counts, strict=True)):
        held = range(i, i + k)
        weights = sum(loads[j] - kv_each[j] for j in held) + fixed[c] - est.activations_bytes - est.overhead_bytes
        first, last = (lay.layers[i].name, lay.layers[i + k - 1].name) if k else (None, None)
        cards.append(_card(c, d, k, first, last, c == len(devices) - 1, weights, sum(kv_each[j] for j in held), est))
        i += k
    return tuple(cards)


def layer_owners(s: Split) -> list[int]:
    """The card of each repeating layer, then of the output layer (the last card)."""
    return [c.index for c in s.cards for _ in range(c.layers)] + [s.cards[-1].index]


def layer_split(
    r: Resolved, context: int, batch: int, beams: int, devices: Sequence[Device], lay: Layout | None = None
) -> Split:
    """The model over N cards by whole layers, in order: each card holds a run of repeating layers
    with their KV caches; the token embeddings (and the vision tower, projector ...) sit on the
    first card, the final norm and LM head on the last, activations and the runtime overhead on every
    card. The runs are chosen to leave the fullest card least full, so it fits whenever some split
    in order fits; the notes say how to ask llama.cpp and vLLM for it."""
    lay = lay or layout(r)
    n = len(devices)
    vram = [d.vram_bytes for d in devices]
    est = estimate_resolved(r, context, batch, beams)
    counts = balanced_layers(*_layer_costs(lay, est, n), vram)
    cards = _layer_cards(lay, est, devices, counts)
    limit = context_limit(r, context)

    def fits_at(c: int) -> bool:
        return _fill(*_layer_costs(lay, estimate_resolved(r, c, batch, beams), n), vram) is not None

    best = largest(fits_at, r.image_tokens + 1, limit)
    duplicated = sum(x.weights_bytes for x in cards) - est.weights_bytes
    ts = ",".join(str(k + (i == n - 1)) for i, k in enumerate(counts))
    notes = [
        f"to run this split: llama.cpp --split-mode layer --tensor-split {ts} (the last count includes the "
        f"output layer; llama.cpp keeps the token embeddings in system memory), vLLM "
        f"VLLM_PP_LAYER_PARTITION={','.join(map(str, counts))} --pipeline-parallel-size {n}",
        "activations and the runtime overhead are counted on every card",
    ]
    if duplicated:
        notes.append("the LM head is the tied token embedding: the last card holds a copy of it")
    return Split(
        "layer",
        n,
        context,
        cards,
        True,
        (),
        all(x.fits for x in cards),
        best,
        limit,
        est.weights_bytes,
        caches_bytes(est),
        duplicated,
        tuple(notes),
    )


def split(
    r: Resolved,
    context: int,
    batch: int,
    beams: int,
    devices: Sequence[Device],
    kind: Literal["tensor", "layer"] | None = None,
    lay: Layout | None = None,
) -> Split:
    """Tensor split for identical cards, layer split otherwise, unless `kind` says which."""
    if len(devices) < 2:
        raise UsageError("a split needs at least two cards (e.g. --gpu 2xrtx3090)")
    if kind is None:
        kind = "tensor" if len({d.vram_bytes for d in devices}) == 1 else "layer"
    if kind == "tensor":
        return tensor_split(r, context, batch, beams, devices, lay)
    if kind == "layer":
        return layer_split(r, context, batch, beams, devices, lay)
    raise UsageError(f"--split {kind!r}: choose tensor or layer")


# --------------------------------------------------------------------------------------------------
# Partial offload
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Offload:
    vram_bytes: int
    layers: int  # repeating layers
    gpu_layers: int  # repeating layers on the GPU: the last ones
    output_on_gpu: bool
    n_gpu_layers: int  # llama.cpp -ngl: gpu_layers, +1 for the output layer
    gpu_fits: bool  # false when not even what always stays on the GPU fits
    gpu_weights_bytes: int  # the layers on the GPU, the output layer if there, the vision tower ...
    gpu_kv_bytes: int  # the caches of the layers on the GPU
    gpu_activations_bytes: int
    gpu_overhead_bytes: int
    gpu_total_bytes: int
    system_weights_bytes: int  # the token embeddings, the layers left behind, the output layer if left
    system_kv_bytes: int
    system_bytes: int  # system memory for the weights and caches left there
    embeddings_bytes: int  # the token embeddings: always in system memory (llama.cpp)
    output_bytes: int  # the output layer as it goes to the GPU (with a tied embedding, its copy)
    layer_weights_bytes: tuple[int, ...]  # per repeating layer, in order
    layer_kv_bytes: tuple[int, ...]
    next_bytes: int  # what -ngl one higher would add on the GPU; 0 when everything is there


def offload(r: Resolved, context: int, batch: int, beams: int, vram: int, lay: Layout | None = None) -> Offload:
    """How many repeating layers stay on the GPU, as llama.cpp places them (`-ngl N`,
    `llama_model::load_tensors`): the last N layers go to the GPU, the output layer only when N
    exceeds the layer count, and the token embeddings always stay in system memory ("very little
    benefit to offloading the input layer"). A layer's KV cache sits with it. The GPU also holds the
    activations, the runtime overhead and what is outside the layers (vision tower, projector ...).
    The answer is the largest N whose GPU part fits."""
    lay = lay or layout(r)
    est = estimate_resolved(r, context, batch, beams)
    n = len(lay.layers)
    kv = lay.kv_per_layer(est)
    w = tuple(x.weights_bytes for x in lay.layers)
    output_gpu = lay.output_bytes + lay.tied_bytes
    # on_gpu[k]: bytes on the GPU with -ngl k, k = 0 .. n + 1 (non-decreasing)
    on_gpu = [est.activations_bytes + est.overhead_bytes + lay.other_bytes]
    for i in range(n - 1, -1, -1):
        on_gpu.append(on_gpu[-1] + w[i] + kv[i])
    on_gpu.append(on_gpu[-1] + output_gpu)
    k = largest(lambda j: on_gpu[j] <= vram, 0, n + 1)
    gpu_fits = on_gpu[0] <= vram
    gpu_layers, out = min(k, n), k == n + 1
    cpu = n - gpu_layers
    gw = sum(w[cpu:]) + (output_gpu if out else 0) + lay.other_bytes
    gk = sum(kv[cpu:])
    sw = lay.embeddings_bytes + sum(w[:cpu]) + (0 if out else lay.output_bytes)
    sk = sum(kv[:cpu])
    return Offload(
        vram,
        n,
        gpu_layers,
        out,
        k,
        gpu_fits,
        gw,
        gk,
        est.activations_bytes,
        est.overhead_bytes,
        on_gpu[k],
        sw,
        sk,
        sw + sk,
        lay.embeddings_bytes,
        output_gpu,
        w,
        kv,
        on_gpu[k + 1] - on_gpu[k] if k <= n else 0,
    )


# --------------------------------------------------------------------------------------------------
# Host memory of an offload plan
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostRoom:
    """The host-side bytes of a plan (layers, experts and caches left in system memory, the token
    embeddings, host compute buffers) against this machine's memory: what can be allocated now when it
    was detected (detect/host.py), else its total, or --ram. `ram_bytes` None: not checked."""

    need_bytes: int
    ram_bytes: int | None
    source: str  # where the RAM figure comes from ("--ram", "/proc/meminfo: available now" ...)

    @property
    def fits(self) -> bool:
        return self.ram_bytes is None or self.need_bytes <= self.ram_bytes

    @property
    def line(self) -> str:
        gib = 1 << 30
        need = f"{self.need_bytes / gib:.2f} GiB"
        if self.ram_bytes is None:
            return f"Host memory: {need} in system memory; not checked ({self.source})"
        have = f"{self.ram_bytes / gib:.2f} GiB ({self.source})"
        if self.fits:
            return f"Host memory: {need} of {have}"
        return f"Host memory: {need} needed in system memory, more than the {have}: the plan spills past RAM"


def host_room(need_bytes: int, ram: tuple[int, str] | None, unchecked: str = "host memory unknown") -> HostRoom:
    """`need_bytes` of host memory against `ram` (bytes, where the figure comes from), or not checked."""
    if ram is None:
        return HostRoom(need_bytes, None, unchecked)
    return HostRoom(need_bytes, ram[0], ram[1])
