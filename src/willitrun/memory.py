"""Pure arithmetic of inference memory: weights, self-attention KV, cross-attention KV,
activations and runtime overhead. Every size is an int of bytes.

Nothing here imports the CLI, rich, or NVML; `estimate()` is the library entry point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from . import archs, gguf
from . import limits as L
from .archs import model_tensors
from .archs.base import EXPERT_ROLES, LINEAR_ROLES, T5_PRETRAINING_LENGTH, LayerKV, Stage, Tensor, uniform_width
from .archs.caches import CrossAttention, FullAttention, cache_bytes
from .dtypes import BF16, F16, F32, StorageType, WeightDtype
from .dtypes import kv_dtype as parse_kv_dtype
from .dtypes import weight_dtype as parse_weight_dtype
from .errors import UsageError

if TYPE_CHECKING:
    from .specs import AnyModelSpec

if TYPE_CHECKING:
    from .overrides import WeightsOverride

if TYPE_CHECKING:
    AnySpec = AnyModelSpec
else:  # only annotations use it: importing every family to spell the union would slow start-up
    from .archs.base import ModelSpecBase as AnySpec
MIB = 1 << 20

# CUDA context + cuBLAS workspace + caching-allocator reserve of a PyTorch process serving a model.
# Measured: Llama-2-7B in fp16 on an RTX 3090 takes 13213 MiB per nvidia-smi (lm-sys/FastChat
# issue #2005, ../shared/calibration/measured.yaml `transformers-fastchat2005-llama2-7b-fp16-3090`)
# while its weights are 6,738,415,616 x 2 B = 12852.5 MiB: 360.5 MiB beyond the weights.
# Older CUDA without lazy module loading showed ~700-800 MiB for the context alone
# (discuss.pytorch.org/t/high-gpu-memory-overhead/81330).
TRANSFORMERS_OVERHEAD_BYTES = 360 * MIB

DEFAULT_CONTEXT = 4096
DEFAULT_ENCODER_TOKENS = T5_PRETRAINING_LENGTH


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    name: str
    parameters: int
    bytes: int


@dataclass(frozen=True)
class Attention:
    """How a model caches keys and values (per sequence)."""

    self_layers: int
    self_width: int  # elements of K (= of V) per position per layer: kv_heads x head_dim
    cross_layers: int = 0
    cross_width: int = 0
    sliding_window: int | None = None
    context_window: int | None = None  # trained window; beyond it is a warning
    hard_limit: int | None = None  # learned positions: beyond it is an error
    cross_source: str | None = None  # what the cross-attention keys are computed from
    no_cross_reason: str = ""
    layers: tuple[LayerKV, ...] = ()  # the self-attention layers one by one (kind, window, K and V widths)

    @property
    def groups(self) -> tuple[tuple[LayerKV, int], ...]:
        """`layers` as (layer, how many layers like it): the sums below loop over kinds, not layers."""
        counts: dict[LayerKV, int] = {}
        for k in self.layers:
            counts[k] = counts.get(k, 0) + 1
        return tuple(counts.items())


@dataclass(frozen=True)
class Estimate:
    model: str
    architecture: str
    dtype: str
    kv_dtype: str
    context_tokens: int
    image_tokens: int
    batch_size: int
    beams: int
    images: int
    cross_source_tokens: int
    parameters: int
    components: tuple[Component, ...]
    weights_bytes: int
    kv_self_bytes: int
    kv_cross_bytes: int
    activations_bytes: int
    overhead_bytes: int
    attention: Attention
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    image_kv_bytes: int = (
        0  # the image (and video) tokens' share of kv_self_bytes (they sit in the self-attention context)
    )
    video_tokens: int = 0  # of image_tokens, those of the video (--video-frames)
    audio_tokens: int = 0  # of image_tokens, those of the audio (--audio-seconds: Qwen2-Audio, Voxtral)
    # Mixture of experts: parameters one token uses (every weight is still resident), and the bytes
    # of the routed experts per decoder layer with the fraction of them a token reads (k of n).
    active_parameters: int = 0
    expert_bytes: tuple[int, ...] = ()
    experts_read: tuple[int, int] = (0, 0)
    # State-space layers: conv + SSM state of every sequence, constant in the context.
    state_bytes: int = 0
    # False for an encoder used alone (CLIP, SigLIP): there is no KV cache at all, so kv_self_bytes and
    # kv_cross_bytes are 0 because nothing exists, not because a cache is empty.
    kv_cache: bool = True

    @property
    def text_tokens(self) -> int:
        return self.context_tokens - self.image_tokens

    @property
    def kv_bytes(self) -> int:
        return self.kv_self_bytes + self.kv_cross_bytes

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_self_bytes
            + self.kv_cross_bytes
            + self.state_bytes
            + self.activations_bytes
            + self.overhead_bytes
        )


@dataclass(frozen=True)
class Request:
    """What the user asks about; None means the model's default."""

    context: int | None = None
    batch: int = 1
    dtype: str | None = None
    kv_dtype: str | None = None
    images: int | None = None
    encoder_tokens: int | None = None
    beams: int = 1
    image_size: tuple[int, int] | None = None  # (height, width): LLaVA-NeXT anyres, Qwen2-VL native resolution
    video_frames: int | None = None  # frames of one video (Qwen2-VL); image_size sizes its frames too
    audio_seconds: int | None = None  # seconds of audio per sequence (Qwen2-Audio, Voxtral) [default: 30]

    def __post_init__(self) -> None:
        for name in ("batch", "beams"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("context", "encoder_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.images is not None and self.images < 0:
            raise UsageError(f"--images cannot be negative (got {self.images})")
        if self.image_size is not None and min(self.image_size) < 1:
            raise UsageError(f"--image-size must be positive (got {self.image_size})")
        # Bounds (willitrun/limits.py): far beyond any real request, and they keep every size an exact int.
        if self.video_frames is not None and self.video_frames < 1:
            raise UsageError(f"--video-frames must be at least 1 (got {self.video_frames})")
        if self.audio_seconds is not None and self.audio_seconds < 1:
            raise UsageError(f"--audio-seconds must be at least 1 (got {self.audio_seconds})")
        for name, bound in (
            ("context", L.MAX_CONTEXT),
            ("encoder_tokens", L.MAX_CONTEXT),
            ("batch", L.MAX_BATCH),
            ("beams", L.MAX_BEAMS),
            ("images", L.MAX_IMAGES),
            ("video_frames", L.MAX_VIDEO_FRAMES),
            ("audio_seconds", L.MAX_CONTEXT),  # >= 1 s per token for both families: still bounded by the context
        ):
            value = getattr(self, name)
            if value is not None and value > bound:
                raise UsageError(f"--{name.replace('_', '-')} {value} is beyond the supported maximum of {bound:,}")
        if self.image_size is not None and max(self.image_size) > L.MAX_IMAGE_SIDE:
            raise UsageError(f"--image-size sides must be at most {L.MAX_IMAGE_SIDE} pixels (got {self.image_size})")


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------
def tensor_storage(tensors: list[Tensor], dtype: WeightDtype, spec: AnySpec) -> list[StorageType]:
    """The storage type of each tensor under `dtype` (see WeightDtype for the three families)."""
    if dtype.family == "gguf":
        return gguf.tensor_types(tensors, dtype, archs.geometry(spec))
    if dtype.family == "float":
        out = [dtype.storage] * len(tensors)
    else:
        # Only nn.Linear weights inside the blocks are replaced; the rest keeps the 16-bit type.
        # gpt-oss's MXFP4 checkpoint quantizes only the experts (modules_to_not_convert: attention,
        # router, embeddings, LM head).
        roles = EXPERT_ROLES if dtype.experts_only else LINEAR_ROLES
        out = [dtype.storage if t.role in roles and t.layer is not None else F16 for t in tensors]
    if kept_in_fp32(spec, dtype):
        roles = archs.geometry(spec).keep_in_fp32_roles
        # the roles are the model's own (T5: ffn_down, inside the blocks only; gpt-oss: every norm)
        out = [F32 if t.role in roles else s for t, s in zip(tensors, out, strict=True)]
    return out


def kept_in_fp32(spec: AnySpec, dtype: WeightDtype) -> bool:
    """Whether the model class's `_keep_in_fp32_modules` apply under `dtype`: transformers upcasts
    them when loading in float16 only (PreTrainedModel._get_dtype_plan, modeling_utils.py: "only
    if the requested dtype is fp16"), and quantizers never convert them (get_modules_to_not_convert);
    bitsandbytes and GPTQ/AWQ load the rest with fp16 compute, so they stay fp32 there too."""
    g = archs.geometry(spec)
    # an experts-only checkpoint format (gpt-oss's MXFP4) loads the rest in its own bf16
    # `_keep_in_fp32_modules_strict` modules stay float32 under a bfloat16 load as well (ERNIE 4.5 MoE's router)
    return bool(g.keep_in_fp32_roles) and (
        dtype.storage is F16
        or (g.keep_in_fp32_strict and dtype.storage is BF16)
        or (dtype.family == "quantized" and not dtype.experts_only)
    )


def storage_types(spec: AnySpec, dtype: WeightDtype) -> list[StorageType]:
    """`tensor_storage` of the spec's own inventory, computed once per spec and weight type."""
    return archs.cached(spec, f"storage:{dtype.name}", lambda: tensor_storage(model_tensors(spec), dtype, spec))


def weight_components(spec: AnySpec, dtype: WeightDtype, tensors: list[Tensor] | None = None) -> tuple[Component, ...]:
    """Parameters and bytes per component; `tensors` reuses an inventory already built."""
    if tensors is None:
        return archs.cached(
            spec, f"components:{dtype.name}", lambda: _components(model_tensors(spec), storage_types(spec, dtype))
        )
    return _components(tensors, tensor_storage(tensors, dtype, spec))


def _same(value: Any) -> Any:
    return value


# What the catalog cache keeps of a spec besides the spec (catalog/cache.py "derived"): the per-spec memos
# (archs.cached) that need the whole tensor inventory, which is most of the time of preparing a model
# (~1 ms each: 159 catalog models on every card was 0.2 s of a 10,000-row `check --rows`).
DERIVED = ("components:", "expert_bytes:", "active_parameters")


def derived_values(specs: list[AnySpec]) -> list[dict[str, Any]]:
    """Each spec's memos of the DERIVED kinds computed so far, as JSON data (one pass over the memos)."""
    wanted = {id(spec): i for i, spec in enumerate(specs)}
    out: list[dict[str, Any]] = [{} for _ in specs]
    for (sid, what), (ref, value) in list(archs._CACHE.items()):
        i = wanted.get(sid)
        if i is None or ref() is not specs[i] or not what.startswith(DERIVED):
            continue
        if what.startswith("components:"):
            out[i][what] = [[c.name, c.parameters, c.bytes] for c in value]
        else:
            out[i][what] = list(value) if isinstance(value, tuple) else value
    return out


def prime_derived(spec: AnySpec, data: Any) -> bool:
    """Set this spec's memos from `derived_values` data read back (the catalog cache); False, and
    nothing set, when the data is not exactly of that shape (a damaged entry is a miss, never a value)."""

    def whole(x: Any) -> bool:
        return type(x) is int and x >= 0

    if not isinstance(data, dict):
        return False
    values: dict[str, Any] = {}
    for what, value in data.items():
        if not isinstance(what, str) or not what.startswith(DERIVED) or not isinstance(value, list | int):
            return False
        if what.startswith("components:"):
            if not all(
                isinstance(c, list) and len(c) == 3 and type(c[0]) is str and whole(c[1]) and whole(c[2])
                for c in value  # type: ignore[union-attr]
            ):
                return False
            values[what] = tuple(Component(*c) for c in value)  # type: ignore[union-attr]
        elif what.startswith("expert_bytes:"):
            if not isinstance(value, list) or not all(whole(b) for b in value):
                return False
            values[what] = tuple(value)
        elif what == "active_parameters" and whole(value):
            values[what] = value
        else:
            return False
    for what, value in values.items():
        archs.cached(spec, what, partial(_same, value))
    return True


def _components(tensors: list[Tensor], storage: list[StorageType]) -> tuple[Component, ...]:
    params: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    for t, s in zip(tensors, storage, strict=True):
        params[t.component] += t.numel
        nbytes[t.component] += s.tensor_bytes(t.shape)
    return tuple(Component(name, params[name], nbytes[name]) for name in params)


def active_parameters(spec: AnySpec) -> int:
    """Parameters one token computes with: every tensor, but of each layer's routed experts only
    experts_per_token of n_expert (the 3-D expert tensors' first axis). Equals the total for a
    dense model. Mixtral 8x7B: 12.9B of 46.7B; Qwen3-30B-A3B: 3.3B of 30.5B."""
    return archs.cached(spec, "active_parameters", lambda: _active(spec))


def _active(spec: AnySpec) -> int:
    g = archs.geometry(spec)
    total = 0
    for t in model_tensors(spec):
        if t.role in EXPERT_ROLES and g.experts:
            total += t.numel // t.shape[0] * g.experts_per_token
        else:
            total += t.numel
    return total


def expert_layer_bytes(spec: AnySpec, dtype: WeightDtype) -> tuple[int, ...]:
    """Bytes of the routed experts of each decoder layer in `dtype` (empty for a dense model)."""
    g = archs.geometry(spec)
    if not g.experts:
        return ()

    def compute() -> tuple[int, ...]:
        out = [0] * g.decoder_layers
        for t, s in zip(model_tensors(spec), storage_types(spec, dtype), strict=True):
            if t.role in EXPERT_ROLES and t.component == "decoder" and t.layer is not None:
                out[t.layer] += s.tensor_bytes(t.shape)
        return tuple(out)

    return archs.cached(spec, f"expert_bytes:{dtype.name}", compute)


# --------------------------------------------------------------------------------------------------
# Attention geometry and image tokens
# --------------------------------------------------------------------------------------------------
def attention(spec: AnySpec) -> Attention:
    """Which layers cache what, per position, read from the architecture's geometry."""
    return archs.cached(spec, "attention", lambda: _attention(spec))


def _attention(spec: AnySpec) -> Attention:
    g = archs.geometry(spec)
    self_layers, cross_layers = g.self_layers, g.cross_layers
    width = uniform_width(self_layers)
    if g.cache_kinds is not None:
        # what transformers holds, when the family states it apart from what engines cache (Falcon-40B's keys
        # broadcast to every query head: archs/falcon.py)
        held = {
            k.kv_heads * k.key_dim
            for layer in g.caches
            for k in layer
            if isinstance(k, FullAttention) and not isinstance(k, CrossAttention)
        }
        width = held.pop() if len(held) == 1 else width
    return Attention(
        len(self_layers),
        width,
        cross_layers=len(cross_layers),
        cross_width=uniform_width(cross_layers),
        sliding_window=g.sliding_window,
        context_window=g.context_window,
        hard_limit=g.hard_limit,
        cross_source=g.cross_source,
        no_cross_reason=g.no_cross_reason,
        layers=self_layers,
    )


def image_tokens_per_image(spec: AnySpec, image_size: tuple[int, int] | None = None) -> int:
    """Positions one image occupies in the self-attention context (0 for models without images there)."""
    if image_size is None:
        return archs.cached(spec, "image_tokens", lambda: archs.image_tokens(spec, None))
    return archs.image_tokens(spec, image_size)


def cross_source_tokens(spec: AnySpec, images: int, encoder_tokens: int) -> int:
    """Source positions each cross-attending layer holds keys/values for, per sequence."""
    return archs.cross_source_tokens(spec, images, encoder_tokens)


# --------------------------------------------------------------------------------------------------
# KV cache
# --------------------------------------------------------------------------------------------------
def kv_self_bytes(att: Attention, positions: int, sequences: int, storage: StorageType) -> int:
    """2 (K and V) x layers x (kv_heads x head_dim) x cached positions x sequences, in the KV type.

    A sliding window (Mistral 7B v0.1) does not lower the peak in transformers: after a prefill
    DynamicSlidingWindowLayer keeps a *view* of the last `sliding_window - 1` positions, and the
    view keeps the whole prompt's storage alive until the next decoding step replaces it
    (cache_utils.py; measured in tests/reference as `kv_self_storage_elements`). So every
    position of a prompt as long as the context is held at the peak.
    """
    if not att.layers:
        return 2 * att.self_layers * storage.nbytes(att.self_width * positions) * sequences
    return (
        sum(
            n * (storage.nbytes(k.key_width * positions) + storage.nbytes(k.value_width * positions))
            for k, n in _groups(att)
        )
        * sequences
    )


def kv_window_bytes(att: Attention, positions: int, sequences: int, storage: StorageType, extra: int = 0) -> int:
    """Like kv_self_bytes, but a sliding or chunked layer holds at most its window (+ `extra`
    positions, e.g. llama.cpp's ubatch) -- what an engine with per-layer caches keeps, and what a
    decoding step reads."""
    total = 0
    for k, n in _groups(att):
        held = min(positions, k.window + extra) if k.window is not None else positions
        total += n * (storage.nbytes(k.key_width * held) + storage.nbytes(k.value_width * held))
    return total * sequences


def _groups(att: Attention) -> tuple[tuple[LayerKV, int], ...]:
    return archs.cached(att, "groups", lambda: att.groups)


def kv_cross_bytes(att: Attention, source_positions: int, sequences: int, storage: StorageType) -> int:
    """2 x cross-attending layers x width x source positions x sequences: computed once from the
    source (encoder output, audio frames, vision features) and reused at every decoding step, so it
    does not grow with generated tokens."""
    if not att.cross_layers or not source_positions:
        return 0
    return 2 * att.cross_layers * storage.nbytes(att.cross_width * source_positions) * sequences


def state_bytes(spec: AnySpec, sequences: int, storage: StorageType) -> int:
    """Conv + SSM state of the state-space layers: per layer and sequence intermediate x conv_kernel
    and intermediate x state_size elements (Mamba), in the cache's type (transformers 5.23 keeps them
    in the model's dtype: LinearAttentionLayer), independent of the context. The SSM state of Mamba
    and Mamba-2 mixers is float32 whatever the cache's type (`ssm_state_f32`: archs/mamba.py)."""
    g = archs.geometry(spec)
    if not g.ssm_state_f32:
        return storage.nbytes(g.state_elements) * sequences
    return (storage.nbytes(g.conv_state_elements) + F32.nbytes(g.ssm_state_elements)) * sequences


# --------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------
def stage_peak(st: Stage, sequences: int, act_bytes: int) -> int:
    """Peak transient bytes inside one layer of a stack (layers run one after another, so the peak
    of one layer is the peak of the stack):
    - the residual stream in and out: 2 x hidden per token;
    - plus the larger of the attention block (q, k, v and output: 2 x q_width + 2 x kv_width per
      token; with eager attention also heads x n_q x n_kv scores, softmax upcast to fp32, as in
      transformers' eager_attention_forward) and the MLP (gate, up and their product: 3 x inner per
      token when gated, fc1 and its activation: 2 x inner otherwise).
    With SDPA / flash attention (transformers' default where supported) the scores are never whole.
    """
    attn = (2 * st.q_width + 2 * st.kv_width) * st.tokens * act_bytes
    if st.eager_scores:
        attn += st.heads * st.tokens * st.kv_tokens * (act_bytes + 4)
    mlp = (3 if st.gated else 2) * st.mlp_inner * st.tokens * act_bytes
    return sequences * (2 * st.hidden * st.tokens * act_bytes + max(attn, mlp))


def stages(
    spec: AnySpec, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    return archs.stages(spec, context, source, images, image_size)


def vocab_size(spec: AnySpec) -> int:
    return archs.geometry(spec).vocab_size


def activation_bytes(
    spec: AnySpec,
    context: int,
    source: int,
    images: int,
    batch: int,
    beams: int,
    act_bytes: int,
    image_size: tuple[int, int] | None = None,
) -> int:
    """Largest stage peak plus the last position's logits in fp32 (transformers' generate() keeps
    only the last position's logits during prefill, `logits_to_keep=1`, and upcasts them to float).
    Encoder and vision passes run once per input; the decoder runs for every beam."""
    peak = max(
        stage_peak(st, batch if st.per_input else batch * beams, act_bytes)
        for st in stages(spec, context, source, images, image_size)
    )
    if archs.geometry(spec).encoder_only:  # no LM head: embeddings out, no logits
        return peak
    return peak + batch * beams * vocab_size(spec) * 4


# --------------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------------
def default_kv_dtype(dtype: WeightDtype) -> StorageType:
    """The cache holds the compute dtype: fp32 models cache fp32, bf16 models bf16, else f16."""
    if dtype.storage is F32:
        return F32
    if dtype.storage is BF16:
        return BF16
    return F16


@dataclass
class Resolved:
    spec: AnySpec
    dtype: WeightDtype
    kv: StorageType
    att: Attention
    components: tuple[Component, ...]
    images: int
    image_tokens: int
    encoder_tokens: int
    source: int
    notes: list[str] = field(default_factory=list)
    image_size: tuple[int, int] | None = None
    video_tokens: int = 0  # included in image_tokens
    audio_tokens: int = 0  # included in image_tokens


def resolve(spec: AnySpec, req: Request, weights: WeightsOverride | None = None) -> Resolved:
    """Everything of an estimate that does not depend on the context length. `weights` (from
    willitrun.importers) replaces computed weight bytes with those a checkpoint really stores."""
    try:
        dtype = parse_weight_dtype(
            req.dtype
            or (weights.dtype if weights is not None else None)
            or getattr(spec, "quantization", None)
            or spec.dtype
        )
    except KeyError:
        from .dtypes import WEIGHT_DTYPES

        raise UsageError(f"unknown --dtype {req.dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}") from None
    try:
        kv = parse_kv_dtype(req.kv_dtype) if req.kv_dtype else default_kv_dtype(dtype)
    except KeyError:
        from .dtypes import KV_DTYPES

        raise UsageError(f"unknown --kv-dtype {req.kv_dtype!r}; choose one of {', '.join(KV_DTYPES)}") from None
    att = attention(spec)
    g = archs.geometry(spec)
    if g.encoder_only and req.beams > 1:
        raise UsageError(f"{spec.id} generates nothing (an encoder used alone): --beams does not apply")
    takes_images = g.takes_images
    if req.images and not takes_images:
        raise UsageError(f"{spec.id} takes no images (--images {req.images})")
    # one image by default, none when the request is about a video
    images = (int(not req.video_frames) if req.images is None else req.images) if takes_images else 0
    if req.image_size is not None and not g.image_size_option:
        raise UsageError(
            f"--image-size applies to models whose image tokens depend on the image's size "
            f"(LLaVA-NeXT, Qwen2-VL, Mistral 3); {spec.id} is not one"
        )
    if req.encoder_tokens is not None and not g.encoder_tokens_option:
        raise UsageError(f"--encoder-tokens applies to T5-style encoder-decoders; {spec.id} is not one")
    encoder_tokens = req.encoder_tokens or g.encoder_tokens_default or DEFAULT_ENCODER_TOKENS
    if g.encoder_limit and encoder_tokens > g.encoder_limit:
        raise UsageError(
            f"{spec.id}'s encoder has learned positions for {g.encoder_limit} tokens: "
            f"--encoder-tokens {encoder_tokens} is impossible"
        )
    per_image = image_tokens_per_image(spec, req.image_size)
    # a spec counted without a family (GGUF metadata, the transformers oracle) says so in every estimate
    provenance = getattr(spec.config, "provenance", None)
    notes = [provenance] if isinstance(provenance, str) and provenance else []
    components = weight_components(spec, dtype)
    if weights is not None and (req.dtype is None or dtype.name == weights.dtype):
        components = weights.apply(components)
        notes += [weights.describe(), *weights.notes]
    elif weights is not None:
        notes.append(f"--dtype {dtype.name}: weights computed from the architecture, not read from {weights.source}")
    if kept_in_fp32(spec, dtype) and weights is None:
        notes.append(_fp32_note(spec, dtype))
    if g.image_size_option and images and req.image_size is None:
        notes.append(
            f"{_IMAGE_FAMILY.get(spec.architecture, spec.architecture)} image tokens depend on the image size; "
            f"{per_image} per image is the largest "
            "(give --image-size HxW for a specific image)"
        )
    video = 0
    if req.video_frames:
        if not g.takes_video:
            raise UsageError(f"{spec.id} takes no video (--video-frames {req.video_frames})")
        count_video = archs.family(spec).video_tokens
        if count_video is None:  # a geometry with takes_video comes from a family that counts video tokens
            raise UsageError(f"{spec.id} takes no video (--video-frames {req.video_frames})")
        video = count_video(spec, req.video_frames, req.image_size)
        notes.append(
            f"video: {req.video_frames} frames -> {video:,} tokens in the context"
            + ("" if req.image_size else " (frames at the video processor's largest size; --image-size sizes them)")
            + "; the vision tower's activations for the frames are not counted"
        )
    count_audio = archs.family(spec).audio_tokens
    if count_audio is not None and count_audio(spec, 1) == 0:
        count_audio = None  # a model of the family without an audio tower (Gemma 3n / Gemma 4 text, no audio_config)
    if req.audio_seconds is not None and count_audio is None:
        raise UsageError(f"{spec.id} takes no audio in its context (--audio-seconds {req.audio_seconds})")
    audio = 0
    if count_audio is not None:
        seconds = req.audio_seconds or 30
        audio = count_audio(spec, seconds)  # the same place in the context as image and video tokens
        notes.append(
            f"audio: {seconds} s -> {audio:,} tokens in the context"
            + ("" if req.audio_seconds else " (give --audio-seconds N for another length)")
            + "; the audio encoder's activations are counted for one 30 s window"
        )
    return Resolved(
        spec,
        dtype,
        kv,
        att,
        components,
        images,
        per_image * images + video + audio,
        encoder_tokens if g.encoder_tokens_option else 0,
        cross_source_tokens(spec, images, encoder_tokens),
        notes,
        req.image_size,
        video,
        audio,
    )


def _fp32_note(spec: AnySpec, dtype: WeightDtype) -> str:
    g = archs.geometry(spec)
    kept = [t for t in model_tensors(spec) if t.role in g.keep_in_fp32_roles]
    n = sum(t.numel for t in kept)
    # what they would take without the rule: fp16, or the quantized type of the other linear layers
    extra = n * 4 - sum(
        (
            dtype.storage if dtype.family == "quantized" and t.role in LINEAR_ROLES and t.layer is not None else F16
        ).nbytes(t.numel)
        for t in kept
    )
    names = ", ".join(f"`{m}`" for m in g.keep_in_fp32_modules)
    why = (
        f"{g.architecture}'s model class holds them in float32 under bf16 and fp16"
        if g.keep_in_fp32_strict
        else f"_keep_in_fp32_modules of {g.architecture}"
    )
    return (
        f"transformers keeps {names} in float32 under --dtype {dtype.name} ({why}): "
        f"{n:,} parameters at 4 bytes, {extra / MIB:,.0f} MiB more than {dtype.name}"
    )


_IMAGE_FAMILY = {"llava_next": "LLaVA-NeXT", "qwen2_vl": "Qwen2-VL", "qwen2_5_vl": "Qwen2.5-VL", "mistral3": "Pixtral"}


def default_context(r: Resolved) -> int:
    window = r.att.hard_limit or r.att.context_window
    context = min(DEFAULT_CONTEXT, window) if window else DEFAULT_CONTEXT
    return max(context, r.image_tokens + 1)


def estimate_resolved(r: Resolved, context: int, batch: int, beams: int) -> Estimate:
    spec, att = r.spec, r.att
    warnings: list[str] = []
    if att.hard_limit and context > att.hard_limit:
        raise UsageError(
            f"{spec.id} has learned positions for {att.hard_limit} tokens: --context {context} is impossible"
        )
    if context <= r.image_tokens:
        raise UsageError(
            f"--context {context} leaves no room for text: "
            + ("the audio takes" if r.audio_tokens else f"{r.images} image(s) take")
            + f" {r.image_tokens} positions"
        )
    if att.context_window and context > att.context_window and not att.hard_limit:
        warnings.append(f"context {context} is beyond the model's trained window of {att.context_window} tokens")
    # transformers' beam search expands every input (and so every cache and activation) by num_beams.
    sequences = batch * beams
    g = archs.geometry(spec)
    # every layer's caches by kind (archs/caches.py): each kind sizes itself at the transformers peak
    # g.caches is derived on each access: taken once per spec (archs.cached), so cache_bytes counts it once
    caches = archs.cached(spec, "caches", lambda: g.caches)
    kv_self, kv_cross, state = cache_bytes(caches, context, r.source, sequences, r.kv)
    act = activation_bytes(spec, context, r.source, r.images, batch, beams, r.dtype.activation_bytes, r.image_size)
    notes = list(r.notes)
    if att.sliding_window and context >= att.sliding_window:
        sliding = sum(1 for k in att.layers if k.kind == "sliding")
        which = (
            "per layer"
            if sliding == att.self_layers
            else f"in each of its {sliding} sliding layers (of {att.self_layers})"
        )
        notes.append(
            f"sliding window {att.sliding_window}: transformers keeps {att.sliding_window - 1} positions "
            f"{which} while decoding, but right after a prefill the whole prompt's keys and values "
            "are still held, so the peak counts every position"
        )
    image_kv = kv_self_bytes(att, r.image_tokens, sequences, r.kv) if r.image_tokens else 0
    components = r.components
    if state:
        notes.append(
            f"recurrent state: {g.state_elements:,} elements per sequence (conv + "
            + ("float32 SSM" if g.ssm_state_f32 else "SSM")
            + f", {sum(1 for c, s in g.ssm_state if c or s)} layers), the same at every context length"
            + (
                ""
                if g.cache_grows_with_context
                else "; no layer caches keys and values, so memory does not bound the context"
            )
        )
    if g.encoder_only:
        notes.append(
            f"no KV cache: {g.no_cross_reason}; the context is the text tower's input, at most "
            f"{att.hard_limit:,} tokens (learned positions)"
        )
    return Estimate(
        model=spec.id,
        architecture=spec.architecture,
        dtype=r.dtype.name,
        kv_dtype=r.kv.name,
        context_tokens=context,
        image_tokens=r.image_tokens,
        batch_size=batch,
        beams=beams,
        images=r.images,
        cross_source_tokens=r.source,
        parameters=sum(c.parameters for c in components),
        components=components,
        weights_bytes=sum(c.bytes for c in components),
        kv_self_bytes=kv_self,
        kv_cross_bytes=kv_cross,
        activations_bytes=act,
        overhead_bytes=TRANSFORMERS_OVERHEAD_BYTES,
        attention=att,
        notes=tuple(notes),
        warnings=tuple(warnings),
        image_kv_bytes=image_kv,
        video_tokens=r.video_tokens,
        audio_tokens=r.audio_tokens,
        active_parameters=active_parameters(spec),
        expert_bytes=expert_layer_bytes(spec, r.dtype),
        experts_read=(g.experts_per_token, g.experts),
        state_bytes=state,
        kv_cache=not g.encoder_only,
    )


def estimate(
    spec: AnySpec, request: Request | None = None, *, weights: WeightsOverride | None = None, **kwargs: object
) -> Estimate:
    """Memory needed to run `spec` for `request` (or keyword arguments of Request, not both)."""
    if request is not None and kwargs:
        raise TypeError(f"give a Request or keyword arguments, not both (got {', '.join(kwargs)})")
    req = request or Request(**kwargs)  # type: ignore[arg-type]
    r = resolve(spec, req, weights)
    return estimate_resolved(r, req.context or default_context(r), req.batch, req.beams)


# The searches behind every "largest" answer and the transformers estimate as parts: pure arithmetic,
# here so that engines (which know no verdict) and fit (the verdict) share one copy.


def estimate_parts(e: Estimate) -> tuple[tuple[str, int, str, str], ...]:
    """The transformers estimate as buffers (name, bytes, kind, detail), all on GPU 0: the one list
    engines/transformers.py wraps as an EngineEstimate and the JSON prints as `buffers` (kept in memory
    so a plain estimate's JSON does not import the engine profiles, and engines need not import fit)."""
    parts = [
        (f"weights: {c.name}", c.bytes, "weights", f"{c.parameters} parameters in {e.dtype}") for c in e.components
    ]
    parts.append(
        (
            "self-attention KV cache",
            e.kv_self_bytes,
            "kv_self",
            f"2 x {e.attention.self_layers} layers x {e.attention.self_width} x {e.context_tokens} positions "
            f"x {e.batch_size * e.beams} sequences x {e.kv_dtype}",
        )
    )
    if e.kv_cross_bytes:
        parts.append(
            (
                "cross-attention KV cache",
                e.kv_cross_bytes,
                "kv_cross",
                f"2 x {e.attention.cross_layers} layers x {e.attention.cross_width} x "
                f"{e.cross_source_tokens} source positions x {e.batch_size * e.beams} sequences",
            )
        )
    if e.state_bytes:
        parts.append(
            (
                "recurrent state (conv + SSM)",
                e.state_bytes,
                "other",
                f"conv + SSM state of the state-space layers x {e.batch_size * e.beams} sequences, "
                "the same at every context (memory.state_bytes)",
            )
        )
    parts.append(
        (
            "activations (prefill peak)",
            e.activations_bytes,
            "compute",
            "largest layer's temporaries + last logits in fp32 (memory.activation_bytes)",
        )
    )
    parts.append(
        (
            "runtime overhead",
            e.overhead_bytes,
            "overhead",
            "CUDA context, cuBLAS, allocator: measured (lm-sys/FastChat#2005, memory.TRANSFORMERS_OVERHEAD_BYTES)",
        )
    )
    return tuple(parts)


def estimate_facts(e: Estimate) -> dict[str, int | bool | str]:
    """The transformers profile's engine facts."""
    return {"batch": e.batch_size, "beams": e.beams, "images": e.images, "cross_source_tokens": e.cross_source_tokens}


def _total(r: Resolved, context: int, batch: int, beams: int) -> int:
    return estimate_resolved(r, context, batch, beams).total_bytes


def context_limit(r: Resolved, asked: int) -> int:
    """The largest context searched: the hard limit, else the trained window (raised to the asked
    context when images alone fill it: 10 LLaVA images are 5,760 positions in a 4,096 window, and an
    estimate that fits must not report that no context does), else what was asked."""
    if r.att.hard_limit:
        return r.att.hard_limit
    window = r.att.context_window or asked
    return max(window, asked) if r.image_tokens >= window else window


def largest(fits: Callable[[int], bool], lo: int, hi: int, *, grow: bool = False) -> int:
    """The largest n in [lo, hi] with fits(n), 0 if none: the one search behind every "largest"
    answer (context, batch, -ngl, --n-cpu-moe, cards) on every engine. `grow` brackets the answer by
    doubling (lo, lo + 1, lo + 3, lo + 7, ... capped at hi) before bisecting, for a bound far above
    the usual answer (a batch up to 2^24); otherwise it bisects [lo, hi] at once. Either way at most
    about 2 log2(hi - lo + 1) + 2 probes. Exact when fits is true up to a point, then false: every
    engine's bytes never fall as n grows (property tests)."""
    if lo > hi or not fits(lo):
        return 0
    good, bad = lo, hi + 1  # invariant: fits(good); bad is past the end or does not fit
    if grow:
        step = 2
        while good < hi:
            probe = min(hi, lo - 1 + step)
            if not fits(probe):
                bad = probe
                break
            good, step = probe, step * 2
    elif fits(hi):
        good = hi
    else:
        bad = hi
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def largest_within(total: Callable[[int], int], budget: int, lo: int, hi: int) -> int:
    """largest(lambda n: total(n) <= budget, lo, hi), in a handful of probes where `total` is affine in n.

    The same answer as the bisection whenever total never falls as n grows (every engine's bytes, the
    property tests): the bracket (good fits, bad does not) is kept exactly as largest() keeps it, but
    each probe is where the line through the bracket's ends crosses the budget, and the probe's
    neighbour is tried at once (answer and answer + 1: the verification). A total that is affine
    (a KV cache and activations linear in the context) is answered in four estimates instead of ~2
    log2(hi - lo); one that is not (a sliding window, a chunked prefill) falls back to bisecting what
    is left of the bracket after a few interpolations."""
    if lo > hi:
        return 0
    t_good = total(lo)
    if t_good > budget:
        return 0
    t_bad = total(hi)
    if t_bad <= budget:
        return hi
    good, bad = lo, hi  # invariant: total(good) <= budget < total(bad)
    for _ in range(3):
        if bad - good <= 1:
            return good
        # where the chord through (good, t_good) and (bad, t_bad) reaches the budget; t_bad > t_good
        guess = good + (budget - t_good) * (bad - good) // (t_bad - t_good)
        guess = min(max(guess, good + 1), bad - 1)
        t = total(guess)
        if t <= budget:
            good, t_good = guess, t
            if guess + 1 < bad:  # the answer's neighbour: past the budget means guess is the answer
                t1 = total(guess + 1)
                if t1 > budget:
                    return guess
                good, t_good = guess + 1, t1
        else:
            bad, t_bad = guess, t
            if guess - 1 > good:
                t1 = total(guess - 1)
                if t1 <= budget:
                    return guess - 1
                bad, t_bad = guess - 1, t1
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if total(mid) <= budget else (good, mid)
    return good


def max_context(
    r: Resolved, vram: int, batch: int, beams: int, limit: int, totals: dict[int, int] | None = None
) -> int:
    """Largest context in [image tokens + 1, limit] whose transformers total fits (0 if none); the
    search of largest(), solved by interpolation where the total is affine (largest_within).

    `totals` (context -> total bytes of this `r`, batch and beams) memoizes the estimates between
    searches for several cards: every search starts with the totals at both ends of the same range,
    so a rows file of one model on 60 cards estimates those twice, not 120 times (cli check)."""
    if totals is None:
        return largest_within(lambda n: _total(r, n, batch, beams), vram, r.image_tokens + 1, limit)

    def total(n: int) -> int:
        t = totals.get(n)
        if t is None:
            t = totals[n] = _total(r, n, batch, beams)
        return t

    return largest_within(total, vram, r.image_tokens + 1, limit)
