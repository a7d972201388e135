"""Where each weight byte sits when a model is cut into layers, read from the tensor inventory.

Multi-GPU layer splits, partial offload and the decode-speed bound all need the same view of a
model: its repeating layers in module order (each with its weight bytes, the bytes a generated token
reads, and which KV caches it holds), plus the tensors outside them (the token embedding, the output
layer, and the rest: vision tower, projector, Whisper's convolutions ...). `layout()` computes it
once per weight type; everything else is arithmetic on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import archs
from .archs.caches import CacheKind
from .dtypes import KV_DTYPES
from .memory import Estimate, Resolved, storage_types
from .tensors import model_tensors

STACKS = ("encoder", "decoder")  # components whose numbered layers are "repeating layers"


@dataclass(frozen=True)
class Layer:
    """One repeating layer: every tensor of `component` with this layer index."""

    name: str  # "decoder.12", "encoder.3"
    weights_bytes: int
    decode_bytes: int  # read for every generated token (decoder layers; an encoder runs once)
    self_kv: bool  # holds a self-attention cache
    cross_kv: bool  # holds a cross-attention cache


@dataclass(frozen=True)
class Layout:
    layers: tuple[Layer, ...]  # module order: T5 and Whisper list the encoder's before the decoder's
    embeddings_bytes: int  # the token embedding table (the input layer)
    output_bytes: int  # tensors after the last layer: final norm and LM head
    tied_bytes: int  # the token embedding again when it doubles as the LM head (tied), else 0
    other: tuple[tuple[int, int], ...]  # (bytes, index of the layer before it, -1 if none): vision tower, ...
    self_layers: int
    cross_layers: int
    kv_proj_bytes: int  # the decoder's K and V projections (tensor parallelism may replicate them)

    @property
    def other_bytes(self) -> int:
        return sum(b for b, _ in self.other)

    @property
    def weights_bytes(self) -> int:
        return sum(u.weights_bytes for u in self.layers) + self.embeddings_bytes + self.output_bytes + self.other_bytes

    @property
    def output_decode_bytes(self) -> int:
        """The output layer as a generated token reads it: the final norm and the LM head, which is the
        whole embedding table when tied (an untied embedding is only looked up: one row)."""
        return self.output_bytes + self.tied_bytes

    # per layer, from the geometry: the kinds of cache it keeps (archs/caches.py); () for an encoder layer
    caches: tuple[tuple[CacheKind, ...], ...] = ()

    def kv_per_layer(self, est: Estimate, *, read: bool = False) -> tuple[int, ...]:
        """Each layer's caches at the estimate's context, every kind sizing itself (archs/caches.py) for
        the sequences in the KV type: self-attention K and V for every held position, cross-attention K
        and V for every source position, recurrent state (conv + SSM, the SSM in float32 where the
        kind says so). Held positions are the context (the prefill peak, memory.kv_self_bytes) or, with
        `read`, what one decoding step reads: a sliding or chunked layer min(context, window)
        (speed.kv_self_read). So a model whose layers differ (Gemma 2/3, Cohere2 and gpt-oss local
        layers, Llama 4 chunked ones, Jamba's and Falcon-H1's state and attention layers) puts each
        layer's own bytes on the card holding it; the sum is the estimate's KV + state bytes."""
        storage = KV_DTYPES[est.kv_dtype]
        sequences, context, source = est.batch_size * est.beams, est.context_tokens, est.cross_source_tokens
        return tuple(
            sum(kind.bytes(context, sequences, storage, source=source, windowed=read) for kind in kinds)
            for kinds in self.caches
        )


def layout(r: Resolved) -> Layout:
    """The model's repeating layers and the tensors around them, in `r`'s weight type (once per spec
    and type)."""
    return archs.cached(r.spec, f"layout:{r.dtype.name}", lambda: _layout(r))


def _layout(r: Resolved) -> Layout:
    spec = r.spec
    g = archs.geometry(spec)
    tensors = model_tensors(spec)
    storage = storage_types(spec, r.dtype)
    order: list[tuple[str, int]] = []
    weights: dict[tuple[str, int], int] = {}
    loose: list[tuple[int, int, str]] = []  # (bytes, index of the layer before, role) for the rest
    embeddings = tied = kv_proj = 0
    has_output = any(t.role == "output" for t in tensors)
    for t, s in zip(tensors, storage, strict=True):
        nbytes = s.tensor_bytes(t.shape)
        if t.component == "decoder" and t.role in ("attn_k", "attn_v"):
            kv_proj += nbytes
        if t.component in STACKS and t.layer is not None:
            key = (t.component, t.layer)
            if key not in weights:
                order.append(key)
                weights[key] = 0
            weights[key] += nbytes
        elif t.role == "token_embd":
            embeddings += nbytes
            tied = nbytes if not has_output else 0
        else:
            loose.append((nbytes, len(order) - 1, t.role))
    last = len(order) - 1
    output = sum(b for b, before, _ in loose if before == last)
    other = tuple((b, before) for b, before, _ in loose if before != last)
    layers, caches = [], []
    for comp, i in order:
        # an encoder keeps no cache; a decoder layer keeps what the geometry says
        kinds = g.caches[i] if comp == "decoder" else ()
        w = weights[(comp, i)]
        skv = comp == "decoder" and g.self_kv[i] is not None
        ckv = comp == "decoder" and g.cross_kv[i] is not None
        layers.append(Layer(f"{comp}.{i}", w, w if comp == "decoder" else 0, skv, ckv))
        caches.append(kinds)
    return Layout(
        tuple(layers),
        embeddings,
        output,
        tied,
        other,
        sum(u.self_kv for u in layers),
        sum(u.cross_kv for u in layers),
        kv_proj,
        tuple(caches),
    )
