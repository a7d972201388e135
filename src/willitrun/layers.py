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

    self_weights: tuple[int, ...] = ()  # each layer's K+V elements per position (0: no self-attention cache)

    def kv_per_layer(self, est: Estimate, kv_self_bytes: int | None = None) -> tuple[int, ...]:
        """Each layer's share of the estimate's KV caches (or of `kv_self_bytes` for the self-attention
        cache). Exact: a cache is (sum over layers of K+V width) x positions x sequences in one type,
        so each layer's share is its width's part (the even split when all widths are equal)."""
        kv_self = est.kv_self_bytes if kv_self_bytes is None else kv_self_bytes
        cross_each = est.kv_cross_bytes // self.cross_layers if self.cross_layers else 0
        total = sum(self.self_weights)
        if total and len({w for w in self.self_weights if w}) > 1:
            self_share = tuple(kv_self * w // total for w in self.self_weights)
        else:
            each = kv_self // self.self_layers if self.self_layers else 0
            self_share = tuple(each * u.self_kv for u in self.layers)
        return tuple(s + cross_each * u.cross_kv for s, u in zip(self_share, self.layers, strict=True))


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
        nbytes = s.nbytes(t.numel)
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
    layers, self_weights = [], []
    for comp, i in order:
        # an encoder keeps no cache; a decoder layer keeps what the geometry says
        skv = g.self_kv[i] if comp == "decoder" else None
        ckv = g.cross_kv[i] if comp == "decoder" else None
        w = weights[(comp, i)]
        layers.append(Layer(f"{comp}.{i}", w, w if comp == "decoder" else 0, skv is not None, ckv is not None))
        self_weights.append(skv.key_width + skv.value_width if skv is not None else 0)
    return Layout(tuple(layers), embeddings, output, tied, other,
                  sum(u.self_kv for u in layers), sum(u.cross_kv for u in layers), kv_proj, tuple(self_weights))
