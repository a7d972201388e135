"""Layer caches as data: every decoder layer declares the kinds of cache it keeps, and each kind computes
its own bytes for a context, a number of sequences and a storage type.

The kinds follow vLLM's per-layer cache specs (vllm/v1/kv_cache_interface.py: FullAttentionSpec,
SlidingWindowSpec, ChunkedLocalAttentionSpec, CrossAttentionSpec, MLAAttentionSpec, MambaSpec) and
llama.cpp's per-layer hparams (n_embd_k_gqa(il), n_swa, ssm_d_conv / ssm_d_state, the short conv's
L_cache). A kind knows nothing of an engine: "held" positions are what transformers keeps at the peak
right after a prefill (every prompt position, also in a sliding layer: tests/reference measures it), and
`windowed=True` asks what a cache keeping only the window holds (an engine with per-layer caches, or
what one decoding step reads). Engines and the arithmetic read kinds, never family names.

`storage` is anything with `nbytes(elements)` (willitrun.dtypes.StorageType: the KV cache's type,
quantized KV blocks included); a kind that keeps a float32 state whatever the cache's type says so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .base import Geometry

F32_BYTES = 4


class Storage(Protocol):
    def nbytes(self, elements: int) -> int: ...


@dataclass(frozen=True, slots=True)
class CacheKind:
    """What one layer keeps between decoding steps. Subclasses set the sizes."""

    @property
    def grows_with_context(self) -> bool:
        return True

    def held(self, context: int, *, windowed: bool = False) -> int:
        """Positions the layer holds for a context of `context` tokens."""
        return context

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FullAttention(CacheKind):
    """Keys and values of every position (vLLM FullAttentionSpec)."""

    kv_heads: int
    key_dim: int
    value_dim: int

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        held = self.held(context, windowed=windowed)
        if not held:
            return 0
        return (
            storage.nbytes(self.kv_heads * self.key_dim * held) + storage.nbytes(self.kv_heads * self.value_dim * held)
        ) * sequences


@dataclass(frozen=True, slots=True)
class SlidingWindow(FullAttention):
    """A layer attending to the last `window` positions (vLLM SlidingWindowSpec). transformers still
    holds the whole prompt right after a prefill (DynamicSlidingWindowLayer keeps a view whose storage
    is the prompt's), so only `windowed` caps it."""

    window: int = 0

    def held(self, context: int, *, windowed: bool = False) -> int:
        return min(context, self.window) if windowed else context


@dataclass(frozen=True, slots=True)
class ChunkedAttention(SlidingWindow):
    """A layer attending within chunks of `window` positions (Llama 4; vLLM ChunkedLocalAttentionSpec)."""


@dataclass(frozen=True, slots=True)
class CrossAttention(FullAttention):
    """Keys and values of the source (encoder output, audio frames, image features), computed once and
    kept whatever the generated length (vLLM CrossAttentionSpec)."""

    def held(self, context: int, *, windowed: bool = False) -> int:
        return 0

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        if not source:
            return 0
        return (
            storage.nbytes(self.kv_heads * self.key_dim * source)
            + storage.nbytes(self.kv_heads * self.value_dim * source)
        ) * sequences


@dataclass(frozen=True, slots=True)
class MLALatent(CacheKind):
    """Multi-head latent attention (DeepSeek V2/V3): per position the compressed KV latent
    (kv_lora_rank) and the shared rope key (qk_rope_head_dim), what transformers 5 and vLLM's
    MLAAttentionSpec keep."""

    kv_lora_rank: int
    rope_dim: int

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        if not context:
            return 0
        return (storage.nbytes(self.kv_lora_rank * context) + storage.nbytes(self.rope_dim * context)) * sequences


@dataclass(frozen=True, slots=True)
class IndexerKeys(CacheKind):
    """The DeepSeek sparse-attention indexer's keys (deepseek_v32, glm_moe_dsa): one `head_dim` key per
    position beside the MLA latent (vLLM: the indexer's own cache layer)."""

    head_dim: int

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        return storage.nbytes(self.head_dim * context) * sequences if context else 0


@dataclass(frozen=True, slots=True)
class RecurrentState(CacheKind):
    """A state of constant size per sequence: `conv` elements of convolution state and `ssm` elements of
    recurrent state; `ssm_f32`: the recurrent state is float32 whatever the cache's type (the Mamba and
    Mamba-2 scans compute in float32 and cache their final state as is)."""

    conv: int
    ssm: int
    ssm_f32: bool = False

    @property
    def grows_with_context(self) -> bool:
        return False

    def held(self, context: int, *, windowed: bool = False) -> int:
        return 0

    def bytes(self, context: int, sequences: int, storage: Storage, *, source: int = 0, windowed: bool = False) -> int:
        conv = storage.nbytes(self.conv) if self.conv else 0
        ssm = (F32_BYTES * self.ssm if self.ssm_f32 else storage.nbytes(self.ssm)) if self.ssm else 0
        return (conv + ssm) * sequences


@dataclass(frozen=True, slots=True)
class MambaState(RecurrentState):
    """Mamba / Mamba-2 mixers: conv state (channels x kernel) and SSM state (vLLM MambaSpec)."""


@dataclass(frozen=True, slots=True)
class LinearAttentionState(RecurrentState):
    """Linear attention / Gated DeltaNet (qwen3_next, kimi_linear): a short conv state over q, k and v
    and a recurrent state of heads x key_dim x value_dim per sequence."""


@dataclass(frozen=True, slots=True)
class ShortConvState(RecurrentState):
    """A gated short convolution (LFM2): channels x L_cache elements of conv state, no SSM state."""


def unmodelled(caches: tuple[tuple[CacheKind, ...], ...], modelled: Collection[type[CacheKind]]) -> tuple[str, ...]:
    """The kinds in `caches` that an engine profile does not size (not one of its `modelled` classes exactly),
    by name: the engine refuses them in one line rather than leave a cache out of its total."""
    return tuple(sorted({type(k).__name__ for layer in caches for k in layer if type(k) not in modelled}))


def layer_caches(g: Geometry) -> tuple[tuple[CacheKind, ...], ...]:
    """Per decoder layer, the kinds of cache it keeps, read from the geometry's fields (self_kv, cross_kv,
    mla, ssm_state)."""
    out: list[tuple[CacheKind, ...]] = []
    for i in range(g.decoder_layers):
        kinds: list[CacheKind] = []
        kv = g.self_kv[i]
        if kv is not None:
            if g.mla is not None:
                # archs/deepseek.py keeps the latent as one "head" of key_dim kv_lora_rank and value_dim rope
                kinds.append(MLALatent(kv.key_width, kv.value_width))
            elif kv.kind == "sliding":
                kinds.append(SlidingWindow(kv.kv_heads, kv.key_dim, kv.value_dim, kv.window or 0))
            elif kv.kind == "chunked":
                kinds.append(ChunkedAttention(kv.kv_heads, kv.key_dim, kv.value_dim, kv.window or 0))
            else:
                kinds.append(FullAttention(kv.kv_heads, kv.key_dim, kv.value_dim))
        cross = g.cross_kv[i]
        if cross is not None:
            kinds.append(CrossAttention(cross.kv_heads, cross.key_dim, cross.value_dim))
        if i < len(g.ssm_state) and any(g.ssm_state[i]):
            conv, ssm = g.ssm_state[i]
            kinds.append(MambaState(conv, ssm, g.ssm_state_f32))
        out.append(tuple(kinds))
    return tuple(out)


# id(caches) -> (caches, each kind with its count of layers): a spec's caches are counted once, not at every
# context an estimate or a search probes (memory.estimate_resolved passes the same tuple per spec). The
# tuple is held, so its id cannot be reused while its entry stands; cleared when full.
_COUNTS: dict[int, tuple[tuple[tuple[CacheKind, ...], ...], tuple[tuple[CacheKind, int], ...]]] = {}


def _counts(caches: tuple[tuple[CacheKind, ...], ...]) -> tuple[tuple[CacheKind, int], ...]:
    hit = _COUNTS.get(id(caches))
    if hit is not None and hit[0] is caches:
        return hit[1]
    counts: dict[CacheKind, int] = {}
    for layer in caches:
        for kind in layer:
            counts[kind] = counts.get(kind, 0) + 1
    if len(_COUNTS) >= 1024:
        _COUNTS.clear()
    _COUNTS[id(caches)] = (caches, tuple(counts.items()))
    return _COUNTS[id(caches)][1]


def cache_bytes(
    caches: tuple[tuple[CacheKind, ...], ...],
    context: int,
    source: int,
    sequences: int,
    storage: Storage,
    *,
    windowed: bool = False,
) -> tuple[int, int, int]:
    """(self-attention, cross-attention, recurrent state) bytes of every layer's caches."""
    self_b = cross_b = state_b = 0
    for kind, n in _counts(caches):
        b = n * kind.bytes(context, sequences, storage, source=source, windowed=windowed)
        if isinstance(kind, CrossAttention):
            cross_b += b
        elif isinstance(kind, RecurrentState):
            state_b += b
        else:
            self_b += b
    return self_b, cross_b, state_b
