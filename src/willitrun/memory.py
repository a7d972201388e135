"""Pure arithmetic of inference memory: weights, self-attention KV, cross-attention KV,
activations and runtime overhead. Every size is an int of bytes.

Nothing here imports the CLI, rich, or NVML; `estimate()` is the library entry point.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import gguf
from .dtypes import BF16, F16, F32, StorageType, WeightDtype, kv_dtype as parse_kv_dtype, weight_dtype as parse_weight_dtype
from .errors import UsageError
from .specs import LlamaSpec, LlavaSpec, MllamaSpec, T5Spec, WhisperSpec
from .tensors import LINEAR_ROLES, Tensor, model_tensors

if TYPE_CHECKING:
    from .importers import WeightsOverride

AnySpec = LlamaSpec | T5Spec | WhisperSpec | LlavaSpec | MllamaSpec
MIB = 1 << 20

# CUDA context + cuBLAS workspace + caching-allocator reserve of a PyTorch process serving a model.
# Measured: Llama-2-7B in fp16 on an RTX 3090 takes 13213 MiB per nvidia-smi (lm-sys/FastChat
# issue #2005, ../shared/calibration/measured.yaml `transformers-fastchat2005-llama2-7b-fp16-3090`)
# while its weights are 6,738,415,616 x 2 B = 12852.5 MiB: 360.5 MiB beyond the weights.
# Older CUDA without lazy module loading showed ~700-800 MiB for the context alone
# (discuss.pytorch.org/t/high-gpu-memory-overhead/81330).
TRANSFORMERS_OVERHEAD_BYTES = 360 * MIB

DEFAULT_CONTEXT = 4096
T5_PRETRAINING_LENGTH = 512  # Raffel et al. 2020, section 3.1.2; n_positions in the T5 v1.0 configs
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

    @property
    def text_tokens(self) -> int:
        return self.context_tokens - self.image_tokens

    @property
    def kv_bytes(self) -> int:
        return self.kv_self_bytes + self.kv_cross_bytes

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_self_bytes + self.kv_cross_bytes + self.activations_bytes + self.overhead_bytes


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
    image_size: tuple[int, int] | None = None  # (height, width), LLaVA-NeXT only

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


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------
def tensor_storage(tensors: list[Tensor], dtype: WeightDtype, spec: AnySpec) -> list[StorageType]:
    """The storage type of each tensor under `dtype` (see WeightDtype for the three families)."""
    if dtype.family == "float":
        return [dtype.storage] * len(tensors)
    if dtype.family == "quantized":
        # Only nn.Linear weights inside the blocks are replaced; the rest keeps the 16-bit type.
        return [dtype.storage if t.role in LINEAR_ROLES and t.layer is not None else F16 for t in tensors]
    return gguf.tensor_types(tensors, dtype, spec)


def weight_components(spec: AnySpec, dtype: WeightDtype, tensors: list[Tensor] | None = None) -> tuple[Component, ...]:
    """Parameters and bytes per component; `tensors` reuses an inventory already built."""
    tensors = model_tensors(spec) if tensors is None else tensors
    storage = tensor_storage(tensors, dtype, spec)
    params: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    for t, s in zip(tensors, storage):
        params[t.component] += t.numel
        nbytes[t.component] += s.nbytes(t.numel)
    return tuple(Component(name, params[name], nbytes[name]) for name in params)


# --------------------------------------------------------------------------------------------------
# Attention geometry and image tokens
# --------------------------------------------------------------------------------------------------
def attention(spec: AnySpec) -> Attention:
    """Which layers cache what, per position, read from the architecture."""
    if isinstance(spec, LlamaSpec):
        c = spec.config
        return Attention(c.num_hidden_layers, c.kv_heads * c.head_size, sliding_window=c.sliding_window,
                         context_window=c.max_position_embeddings,
                         no_cross_reason="decoder-only: no cross-attention")
    if isinstance(spec, LlavaSpec):
        c = spec.config.text_config
        return Attention(c.num_hidden_layers, c.kv_heads * c.head_size, sliding_window=c.sliding_window,
                         context_window=c.max_position_embeddings,
                         no_cross_reason="LLaVA has no cross-attention: image tokens sit in the self-attention context")
    if isinstance(spec, T5Spec):
        c = spec.config
        width = c.num_heads * c.d_kv
        # Relative position buckets set no hard limit; the window is the configured n_positions, else
        # 512, the length T5 was pre-trained with (Raffel et al. 2020, "Exploring the Limits of
        # Transfer Learning...", section 3.1.2), which flan-t5's configs leave out.
        return Attention(c.decoder_layers, width, cross_layers=c.decoder_layers, cross_width=width,
                         context_window=c.n_positions or T5_PRETRAINING_LENGTH, cross_source="encoder tokens")
    if isinstance(spec, WhisperSpec):
        c = spec.config
        return Attention(c.decoder_layers, c.d_model, cross_layers=c.decoder_layers, cross_width=c.d_model,
                         context_window=c.max_target_positions, hard_limit=c.max_target_positions,
                         cross_source="audio frames (encoder positions per 30 s window)")
    c = spec.config.text_config
    cross = len(c.cross_attention_layers)
    width = c.kv_heads * c.head_size
    return Attention(c.num_hidden_layers - cross, width, cross_layers=cross, cross_width=width,
                     context_window=c.max_position_embeddings,
                     cross_source="vision positions (tiles x (patches + 1) per image)")


def _select_best_resolution(size: tuple[int, int], pinpoints: list[tuple[int, int]]) -> tuple[int, int]:
    """transformers image_processing_utils.select_best_resolution: most effective pixels, then least waste."""
    h0, w0 = size
    best, best_eff, best_waste = pinpoints[0], -1, float("inf")
    for h, w in pinpoints:
        scale = min(w / w0, h / h0)
        dw, dh = int(w0 * scale), int(h0 * scale)
        effective = min(dw * dh, w0 * h0)
        waste = w * h - effective
        if effective > best_eff or (effective == best_eff and waste < best_waste):
            best, best_eff, best_waste = (h, w), effective, waste
    return best


def llava_next_image_tokens(spec: LlavaSpec, size: tuple[int, int]) -> int:
    """Tokens of one image in LLaVA-NeXT's anyres scheme (transformers LlavaNextProcessor
    `_get_number_of_features` / `_get_unpadded_features`): the base 336px view, plus the tiled view
    at the best pinpoint resolution with its padding rows/columns removed, plus one newline token
    per row of the tiled view."""
    v = spec.config.vision_config
    pinpoints = spec.config.image_grid_pinpoints or []
    side = v.image_size // v.patch_size
    best_h, best_w = _select_best_resolution(size, pinpoints)
    cur_h, cur_w = side * (best_h // v.image_size), side * (best_w // v.image_size)
    h0, w0 = size
    if w0 / h0 > cur_w / cur_h:
        new_h = int(round(h0 * (cur_w / w0), 7))
        cur_h -= ((cur_h - new_h) // 2) * 2
    else:
        new_w = int(round(w0 * (cur_h / h0), 7))
        cur_w -= ((cur_w - new_w) // 2) * 2
    base = side * side + (1 if spec.config.vision_feature_select_strategy == "full" else 0)
    return cur_h * cur_w + cur_h + base


def image_tokens_per_image(spec: AnySpec, image_size: tuple[int, int] | None = None) -> int:
    """Positions one image occupies in the self-attention context (0 for models without images there)."""
    if not isinstance(spec, LlavaSpec):
        return 0
    v = spec.config.vision_config
    if spec.architecture == "llava":
        # LlavaModel.get_image_features: the "default" strategy drops the CLS token.
        return v.patches + (1 if spec.config.vision_feature_select_strategy == "full" else 0)
    if image_size is not None:
        return llava_next_image_tokens(spec, image_size)
    # No size given: the worst case over the pinpoint resolutions.
    return max(llava_next_image_tokens(spec, tuple(p)) for p in spec.config.image_grid_pinpoints or [])


def cross_source_tokens(spec: AnySpec, images: int, encoder_tokens: int) -> int:
    """Source positions each cross-attending layer holds keys/values for, per sequence."""
    if isinstance(spec, T5Spec):
        return encoder_tokens
    if isinstance(spec, WhisperSpec):
        return spec.config.max_source_positions
    if isinstance(spec, MllamaSpec):
        v = spec.config.vision_config
        # MllamaVisionModel outputs max_num_tiles x (patches + 1) positions per image; unused tiles
        # are masked, not dropped, so the keys/values always cover every tile.
        return images * v.max_num_tiles * v.positions_per_tile
    return 0


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
    per_layer = storage.nbytes(att.self_width * positions)
    return 2 * att.self_layers * per_layer * sequences


def kv_cross_bytes(att: Attention, source_positions: int, sequences: int, storage: StorageType) -> int:
    """2 x cross-attending layers x width x source positions x sequences: computed once from the
    source (encoder output, audio frames, vision features) and reused at every decoding step, so it
    does not grow with generated tokens."""
    if not att.cross_layers or not source_positions:
        return 0
    return 2 * att.cross_layers * storage.nbytes(att.cross_width * source_positions) * sequences


# --------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One transformer stack run over `tokens` positions at once (the prefill, or an encoder pass)."""

    tokens: int
    hidden: int
    q_width: int
    kv_width: int
    mlp_inner: int
    gated: bool
    heads: int
    kv_tokens: int
    eager_scores: bool = False  # attention without a fused kernel materialises the score matrix
    per_input: bool = False  # an encoder / vision pass: runs once per input, not once per beam


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


def stages(spec: AnySpec, context: int, source: int, images: int) -> list[Stage]:
    if isinstance(spec, (LlamaSpec, LlavaSpec)):
        c = spec.config if isinstance(spec, LlamaSpec) else spec.config.text_config
        out = [Stage(context, c.hidden_size, c.num_attention_heads * c.head_size, c.kv_heads * c.head_size,
                     c.intermediate_size, True, c.num_attention_heads, context)]
        if isinstance(spec, LlavaSpec) and images:
            v = spec.config.vision_config
            n = v.patches + 1
            # The vision tower runs per image (LLaVA-NeXT: per tile, base view + up to 4 tiles).
            tiles = 1 if spec.architecture == "llava" else 1 + max(
                (h // v.image_size) * (w // v.image_size) for h, w in spec.config.image_grid_pinpoints or [])
            out.append(Stage(n * tiles * images, v.hidden_size, v.hidden_size, v.hidden_size,
                             v.intermediate_size, False, v.num_attention_heads, n, per_input=True))
        return out
    if isinstance(spec, T5Spec):
        c = spec.config
        inner = c.num_heads * c.d_kv
        # T5Attention adds a relative position bias to explicit scores: no fused kernel (eager).
        return [
            Stage(source, c.d_model, inner, inner, c.d_ff, c.gated, c.num_heads, source, eager_scores=True,
                  per_input=True),
            Stage(context, c.d_model, inner, inner, c.d_ff, c.gated, c.num_heads, max(context, source),
                  eager_scores=True),
        ]
    if isinstance(spec, WhisperSpec):
        c = spec.config
        return [
            # conv1 runs at the 3000 mel frames: its input (mel bins) and output (d_model) per frame
            Stage(c.max_source_positions * 2, c.num_mel_bins + c.d_model, 0, 0, 0, False, 0, 0, per_input=True),
            # the encoder layers run at the 1500 positions conv2 leaves
            Stage(c.max_source_positions, c.d_model, c.d_model, c.d_model, c.encoder_ffn_dim, False,
                  c.encoder_attention_heads, c.max_source_positions, per_input=True),
            Stage(context, c.d_model, c.d_model, c.d_model, c.decoder_ffn_dim, False, c.decoder_attention_heads,
                  c.max_source_positions),
        ]
    c, v = spec.config.text_config, spec.config.vision_config
    out = [Stage(context, c.hidden_size, c.hidden_size, c.kv_heads * c.head_size, c.intermediate_size, True,
                 c.num_attention_heads, max(context, source))]
    if images:
        n = v.max_num_tiles * v.positions_per_tile * images
        out.append(Stage(n, v.hidden_size, v.hidden_size, v.hidden_size, v.intermediate_size, False,
                         v.attention_heads, v.positions_per_tile, per_input=True))
    return out


def vocab_size(spec: AnySpec) -> int:
    if isinstance(spec, (LlavaSpec, MllamaSpec)):
        return spec.config.text_config.vocab_size
    return spec.config.vocab_size


def activation_bytes(spec: AnySpec, context: int, source: int, images: int, batch: int, beams: int,
                     act_bytes: int) -> int:
    """Largest stage peak plus the last position's logits in fp32 (transformers' generate() keeps
    only the last position's logits during prefill, `logits_to_keep=1`, and upcasts them to float).
    Encoder and vision passes run once per input; the decoder runs for every beam."""
    peak = max(stage_peak(st, batch if st.per_input else batch * beams, act_bytes)
               for st in stages(spec, context, source, images))
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


def resolve(spec: AnySpec, req: Request, weights: WeightsOverride | None = None) -> Resolved:
    """Everything of an estimate that does not depend on the context length. `weights` (from
    willitrun.importers) replaces computed weight bytes with those a checkpoint really stores."""
    try:
        dtype = parse_weight_dtype(req.dtype or (weights.dtype if weights is not None else None) or spec.dtype)
    except KeyError:
        from .dtypes import WEIGHT_DTYPES

        raise UsageError(f"unknown --dtype {req.dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}") from None
    try:
        kv = parse_kv_dtype(req.kv_dtype) if req.kv_dtype else default_kv_dtype(dtype)
    except KeyError:
        from .dtypes import KV_DTYPES

        raise UsageError(f"unknown --kv-dtype {req.kv_dtype!r}; choose one of {', '.join(KV_DTYPES)}") from None
    att = attention(spec)
    takes_images = isinstance(spec, (LlavaSpec, MllamaSpec))
    if req.images and not takes_images:
        raise UsageError(f"{spec.id} takes no images (--images {req.images})")
    images = (1 if req.images is None else req.images) if takes_images else 0
    if req.image_size is not None and spec.architecture != "llava_next":
        raise UsageError("--image-size applies to LLaVA-NeXT (anyres) models only")
    if req.encoder_tokens is not None and not isinstance(spec, T5Spec):
        raise UsageError(f"--encoder-tokens applies to T5-style encoder-decoders; {spec.id} is not one")
    encoder_tokens = req.encoder_tokens or DEFAULT_ENCODER_TOKENS
    per_image = image_tokens_per_image(spec, req.image_size)
    notes = []
    components = weight_components(spec, dtype)
    if weights is not None and (req.dtype is None or dtype.name == weights.dtype):
        components = weights.apply(components)
        notes += [weights.describe(), *weights.notes]
    elif weights is not None:
        notes.append(f"--dtype {dtype.name}: weights computed from the architecture, not read from {weights.source}")
    if isinstance(spec, LlavaSpec) and spec.architecture == "llava_next" and images and req.image_size is None:
        notes.append(f"LLaVA-NeXT image tokens depend on the image size; {per_image} per image is the largest "
                     "(give --image-size HxW for a specific image)")
    return Resolved(spec, dtype, kv, att, components, images, per_image * images,
                     encoder_tokens if isinstance(spec, T5Spec) else 0,
                     cross_source_tokens(spec, images, encoder_tokens), notes)


def default_context(r: Resolved) -> int:
    window = r.att.hard_limit or r.att.context_window
    context = min(DEFAULT_CONTEXT, window) if window else DEFAULT_CONTEXT
    return max(context, r.image_tokens + 1)


def estimate_resolved(r: Resolved, context: int, batch: int, beams: int) -> Estimate:
    spec, att = r.spec, r.att
    warnings: list[str] = []
    if att.hard_limit and context > att.hard_limit:
        raise UsageError(f"{spec.id} has learned positions for {att.hard_limit} tokens: --context {context} is impossible")
    if context <= r.image_tokens:
        raise UsageError(f"--context {context} leaves no room for text: {r.images} image(s) take {r.image_tokens} positions")
    if att.context_window and context > att.context_window and not att.hard_limit:
        warnings.append(f"context {context} is beyond the model's trained window of {att.context_window} tokens")
    # transformers' beam search expands every input (and so every cache and activation) by num_beams.
    sequences = batch * beams
    kv_self = kv_self_bytes(att, context, sequences, r.kv)
    kv_cross = kv_cross_bytes(att, r.source, sequences, r.kv)
    act = activation_bytes(spec, context, r.source, r.images, batch, beams, r.dtype.activation_bytes)
    notes = list(r.notes)
    if att.sliding_window and context >= att.sliding_window:
        notes.append(f"sliding window {att.sliding_window}: transformers keeps {att.sliding_window - 1} positions "
                     "per layer while decoding, but right after a prefill the whole prompt's keys and values "
                     "are still held, so the peak counts every position")
    components = r.components
    return Estimate(
        model=spec.id, architecture=spec.architecture, dtype=r.dtype.name, kv_dtype=r.kv.name,
        context_tokens=context, image_tokens=r.image_tokens, batch_size=batch, beams=beams, images=r.images,
        cross_source_tokens=r.source, parameters=sum(c.parameters for c in components), components=components,
        weights_bytes=sum(c.bytes for c in components), kv_self_bytes=kv_self, kv_cross_bytes=kv_cross,
        activations_bytes=act, overhead_bytes=TRANSFORMERS_OVERHEAD_BYTES, attention=att,
        notes=tuple(notes), warnings=tuple(warnings),
    )


def estimate(spec: AnySpec, request: Request | None = None, *, weights: WeightsOverride | None = None,
             **kwargs: object) -> Estimate:
    """Memory needed to run `spec` for `request` (or keyword arguments of Request, not both)."""
    if request is not None and kwargs:
        raise TypeError(f"give a Request or keyword arguments, not both (got {', '.join(kwargs)})")
    req = request or Request(**kwargs)  # type: ignore[arg-type]
    r = resolve(spec, req, weights)
    return estimate_resolved(r, req.context or default_context(r), req.batch, req.beams)
