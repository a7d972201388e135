"""What every architecture module shares: bounded field types, the spec base class, tensors,
activation stages and the frozen `Geometry` that the arithmetic reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from math import prod
from typing import Annotated, Literal

from .. import limits as L
from ..records import BaseModel, ConfigDict, Field
from .caches import CacheKind, layer_caches

T5_PRETRAINING_LENGTH = 512  # Raffel et al. 2020, section 3.1.2; n_positions in the T5 v1.0 configs
ID_PATTERN = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
CheckpointDtype = Literal["float32", "float16", "bfloat16"]

# Counts with their documented upper bound (willitrun/limits.py, docs/spec-format.md "Bounds").
PosInt = Annotated[int, Field(gt=0, le=L.MAX_POSITIONS)]
NonNegInt = Annotated[int, Field(ge=0, le=L.MAX_POSITIONS)]
Layers = Annotated[int, Field(gt=0, le=L.MAX_LAYERS)]
LayerIndex = Annotated[int, Field(ge=0, lt=L.MAX_LAYERS)]
Heads = Annotated[int, Field(gt=0, le=L.MAX_HEADS)]
HeadDim = Annotated[int, Field(gt=0, le=L.MAX_HEAD_DIM)]
Hidden = Annotated[int, Field(gt=0, le=L.MAX_HIDDEN)]
Intermediate = Annotated[int, Field(gt=0, le=L.MAX_INTERMEDIATE)]
Vocab = Annotated[int, Field(gt=0, le=L.MAX_VOCAB)]
Positions = Annotated[int, Field(gt=0, le=L.MAX_POSITIONS)]
ImageSide = Annotated[int, Field(gt=0, le=L.MAX_IMAGE_SIDE)]
Channels = Annotated[int, Field(gt=0, le=L.MAX_CHANNELS)]
Tiles = Annotated[int, Field(gt=0, le=L.MAX_TILES)]
MelBins = Annotated[int, Field(gt=0, le=L.MAX_MEL_BINS)]
Buckets = Annotated[int, Field(gt=0, le=L.MAX_BUCKETS)]
Parameters = Annotated[int, Field(gt=0, le=L.MAX_PARAMETERS)]
TokenId = Annotated[int, Field(ge=0, le=L.MAX_VOCAB)]
FeatureLayer = Annotated[int, Field(ge=-L.MAX_LAYERS, le=L.MAX_LAYERS)]


class Strict(BaseModel):
    # strict: YAML's "24" stays a string and is refused where a number is expected.
    # defer_build: a schema is built on first use, so the CLI pays only for the classes it needs.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


def check_heads(heads: int, kv_heads: int, where: str) -> None:
    if heads % kv_heads:
        raise ValueError(f"{where}num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")


def merger_width_warning(
    field: str, width: int, text_hidden: int, mergers: str = "merger's", defaults: str = ""
) -> list[str]:
    """A spec's `unusable_values()` for a vision merger whose output width (vision_config.`field`) is not the
    language model's: transformers builds the model, a forward pass would fail, so the importer warns and never
    refuses (importers/configs.py: unusable_values). Qwen2-VL / Qwen2.5-VL, Qwen3-VL, Qwen3.5 and GLM-4.1V share it;
    `defaults` names transformers' class defaults when those disagree."""
    if width == text_hidden:
        return []
    hint = f" (transformers' class defaults are {defaults})" if defaults else ""
    return [
        f"Warning: vision_config.{field} ({width}), the {mergers} output, is not text_config.hidden_size "
        f"({text_hidden}): image features would not fit the language model in a forward pass{hint}; sized as written."
    ]


class ModelSpecBase(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    aliases: list[Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]] = Field(default=[], max_length=64)
    hf_id: str | None = None
    dtype: CheckpointDtype
    parameters_declared: Parameters | None = None
    # A checkpoint stored quantized (config.json quantization_config): the weights as published and
    # loaded by default. fp8-block: DeepSeek-V3/R1; mxfp4-experts: gpt-oss.
    quantization: Literal["fp8-block", "mxfp4-experts"] | None = None
    sources: dict[str, str]
    notes: str | None = None


def lists_to_tuples(value: object) -> object:
    """YAML gives lists; strict mode only takes tuples for tuple fields."""
    if isinstance(value, list):
        return [tuple(v) if isinstance(v, list) else v for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------------
Role = Literal[
    "token_embd",
    "output",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_gate_up",
    "ffn_down",
    "norm",
    "bias",
    "pos_embd",
    "rel_bias",
    "conv",
    "projector",
    "other",
    # mixture of experts (llama.cpp's tensor names): the router, and every expert of a layer in one
    # 3-D tensor (n_expert, out, in), as transformers 5 (`experts.gate_up_proj`) and GGUF store them
    "ffn_gate_inp",
    "ffn_gate_exps",
    "ffn_up_exps",
    "ffn_down_exps",
    # multi-head latent attention (DeepSeek V2/V3): query down/up projections, the joint KV
    # down-projection (kv_lora_rank + rope dims) and its up-projection to every head's K and V
    "attn_q_a",
    "attn_q_b",
    "attn_kv_a_mqa",
    "attn_kv_b",
    # state-space (Mamba) mixers: in_proj, x_proj, dt_proj, out_proj (llama.cpp ssm_in/x/dt/out);
    # the depthwise convolution is "conv", A_log and D are "other"
    "ssm_in",
    "ssm_x",
    "ssm_dt",
    "ssm_out",
]
EXPERT_ROLES = frozenset({"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"})
LINEAR_ROLES = (
    frozenset(
        {
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_qkv",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_gate_up",
            "ffn_down",
            "projector",
            "attn_q_a",
            "attn_q_b",
            "attn_kv_a_mqa",
            "attn_kv_b",
            "ssm_in",
            "ssm_x",
            "ssm_dt",
            "ssm_out",
        }
    )
    | EXPERT_ROLES
)


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str  # a readable path, e.g. "decoder.3.attn_v"
    component: str  # embeddings, decoder, lm_head, encoder, vision_tower, projector
    shape: tuple[int, ...]
    role: Role
    layer: int | None = None

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def row(self) -> int:
        return self.shape[-1]


def linear(name: str, comp: str, out: int, inp: int, role: Role, bias: bool, layer: int | None) -> Iterator[Tensor]:
    yield Tensor(f"{name}.weight", comp, (out, inp), role, layer)
    if bias:
        yield Tensor(f"{name}.bias", comp, (out,), "bias", layer)


def norm(name: str, comp: str, width: int, layer: int | None, bias: bool = False) -> Iterator[Tensor]:
    """RMSNorm has a weight; LayerNorm a weight and a bias."""
    yield Tensor(f"{name}.weight", comp, (width,), "norm", layer)
    if bias:
        yield Tensor(f"{name}.bias", comp, (width,), "norm", layer)


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


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
AttentionKind = Literal["full", "sliding", "chunked", "cross"]


@dataclass(frozen=True, slots=True)
class LayerKV:
    """What one layer caches per position (self-attention) or per source position (cross)."""

    kind: AttentionKind
    kv_heads: int
    key_dim: int
    value_dim: int
    window: int | None = None  # positions a sliding / chunked layer attends to

    @property
    def key_width(self) -> int:
        return self.kv_heads * self.key_dim

    @property
    def value_width(self) -> int:
        return self.kv_heads * self.value_dim


@dataclass(frozen=True)
class VisionShape:
    """The vision tower as llama.cpp's mmproj file and clip.cpp see it (LLaVA)."""

    hidden_size: int
    num_attention_heads: int
    patches: int
    num_channels: int
    image_size: int
    mmproj_layers: int  # CLIP layers written to the mmproj file (up to the feature layer)


@dataclass(frozen=True)
class Geometry:
    """A model's shape as the arithmetic reads it, computed once per spec (archs.geometry)."""

    architecture: str
    self_kv: tuple[LayerKV | None, ...]  # per decoder layer: its self-attention cache, None if it has none
    cross_kv: tuple[LayerKV | None, ...]  # per decoder layer: its cross-attention cache, None if it has none
    vocab_size: int
    tied_embeddings: bool
    hidden_size: int  # the decoder's width (llama.cpp n_embd)
    num_attention_heads: int  # the decoder's query heads (llama.cpp n_head)
    intermediate_size: int  # the decoder's feed-forward width (llama.cpp n_ff)
    context_window: int | None  # trained window: beyond it is a warning
    tp_constraints: tuple[tuple[str, int, bool], ...]  # (what, count, may be replicated) for tensor parallelism
    tp_kv_heads: int  # the heads the KV caches are split by under tensor parallelism
    hard_limit: int | None = None  # learned positions: beyond it is an error
    cross_source: str | None = None  # what the cross-attention keys are computed from
    no_cross_reason: str = ""
    gguf_n_gqa: int = 1  # llama.cpp's n_gqa for the quant-mix rules (llama-quant.cpp)
    gguf_70b: bool = False  # llama.cpp's LLM_TYPE_70B rule: attn_v raised to q5_K
    takes_images: bool = False
    takes_video: bool = False  # video frames become tokens of the self-attention context (Qwen2-VL: video_tokens())
    image_size_option: bool = False  # anyres: image tokens depend on the image's size (--image-size)
    encoder_tokens_option: bool = False  # a text encoder whose input length the user chooses (--encoder-tokens)
    encoder_limit: int | None = None  # learned encoder positions: more encoder tokens are an error (BART: 1024)
    # the encoder's input length when --encoder-tokens is not given, where the model's processor fixes it
    # (Pix2Struct: max_patches 2048); None: memory.DEFAULT_ENCODER_TOKENS (512, T5's pre-training length)
    encoder_tokens_default: int | None = None
    vision_cross_attention: bool = False  # cross-attends to image features (mllama)
    relative_position_bias: bool = False  # T5: an f32 bias of the score matrix's shape in llama.cpp
    llamacpp_swa: bool = False  # llama.cpp gives the sliding layers their own window-sized cache (iswa)
    gguf_architecture: str | None = None  # llama.cpp's general.architecture when it differs (gemma3_text: gemma3)
    vision: VisionShape | None = None
    vision_tiles: tuple[int, int] | None = None  # (tiles per image, positions per tile) of a tiled vision source
    refusals: Mapping[str, str] = field(default_factory=dict)  # engine -> why it cannot run this model
    # transformers' `_keep_in_fp32_modules` of the model class (T5, mT5: ["wo"]; gpt-oss: its norms): those modules stay
    # float32 when the model loads in float16 (PreTrainedModel._get_dtype_plan, modeling_utils.py)
    # and are left out of weight quantization (quantizers/base.py get_modules_to_not_convert).
    keep_in_fp32_modules: tuple[str, ...] = ()
    keep_in_fp32_roles: frozenset[str] = frozenset()  # the tensor roles (inside the blocks) those modules are
    # `_keep_in_fp32_modules_strict` (ERNIE 4.5 MoE, HunYuan MoE: the router): float32 under bfloat16 loads too
    # (PreTrainedModel._get_dtype_plan: "always force upcast to fp32, for both fp16 and bf16")
    keep_in_fp32_strict: bool = False
    # Mixture of experts: routed experts per MoE layer and how many each token uses (0: dense model).
    # Every expert is resident; a token reads `experts_per_token` of them (active parameters).
    experts: int = 0
    experts_per_token: int = 0
    # Multi-head latent attention (DeepSeek V2/V3): self_kv holds what transformers 5 caches, the
    # compressed latent and the shared rope key (LayerKV: one "head", key_dim = kv_lora_rank,
    # value_dim = qk_rope_head_dim); `mla` is (kv_lora_rank, qk_rope_head_dim, heads,
    # qk_nope + qk_rope, v_head_dim) so each engine can size what it keeps (engines/llamacpp.py,
    # engines/vllm.py) and say what a full-head cache would be.
    mla: tuple[int, int, int, int, int] | None = None
    # State-space layers (Mamba, Jamba, Falcon-H1): per decoder layer, the elements of its recurrent
    # state per sequence as (convolution state, SSM state); (0, 0) for a layer without one. Constant
    # in the context: a pure SSM's cache does not grow with the tokens at all.
    ssm_state: tuple[tuple[int, int], ...] = ()
    ssm_conv_kernel: int = 0  # the conv state's columns (llama.cpp keeps one fewer)
    # transformers keeps the SSM state (not the conv state) in float32 whatever the model's dtype: the
    # Mamba and Mamba-2 scans compute in float32 and cache their final state as is (archs/mamba.py,
    # archs/mamba2.py; measured: tests/reference/reference.json state_dtypes_bf16)
    ssm_state_f32: bool = False
    # Which selective-scan mixer the SSM layers run: "mamba" (Mamba-1: one inner x state_size state per
    # layer; transformers MambaMixer in mamba, falcon_mamba and jamba) or "mamba2" (multi-head Mamba-2:
    # falcon_h1, mamba2, granitemoehybrid). Engines that treat the two apart read this (vLLM keeps a
    # Mamba-2 prefill checkpoint with prefix caching on), never the family's name.
    ssm_mixer: Literal["mamba", "mamba2"] = "mamba2"
    # An encoder run once per input and used alone (CLIP, SigLIP): no decoder, so no KV cache of any
    # kind, no generated tokens and no logits; memory grows with the batch and the images, and a
    # "largest context" means nothing (the text tower's positions are a hard limit, not a cache).
    encoder_only: bool = False

    # Per decoder layer, the kinds of cache it keeps, when the family states them itself (LFM2's short
    # convolutions); None: derived from self_kv, cross_kv, mla and ssm_state (archs/caches.py: layer_caches)
    cache_kinds: tuple[tuple[CacheKind, ...], ...] | None = None

    @cached_property
    def caches(self) -> tuple[tuple[CacheKind, ...], ...]:
        """Per decoder layer, the kinds of cache it keeps (archs/caches.py): the data every cache size is
        computed from."""
        return self.cache_kinds if self.cache_kinds is not None else layer_caches(self)

    @property
    def state_elements(self) -> int:
        """Conv + SSM state elements of all layers, per sequence."""
        return sum(c + s for c, s in self.ssm_state)

    @property
    def conv_state_elements(self) -> int:
        return sum(c for c, _ in self.ssm_state)

    @property
    def ssm_state_elements(self) -> int:
        return sum(s for _, s in self.ssm_state)

    @property
    def cache_grows_with_context(self) -> bool:
        """False for a pure state-space model: no layer keeps per-token keys and values, so memory
        does not bound the context (only the prefill's activations grow with the prompt)."""
        return bool(self.self_layers or self.cross_layers)

    @property
    def decoder_layers(self) -> int:
        return len(self.self_kv)

    @property
    def self_layers(self) -> tuple[LayerKV, ...]:
        return tuple(k for k in self.self_kv if k is not None)

    @property
    def cross_layers(self) -> tuple[LayerKV, ...]:
        return tuple(k for k in self.cross_kv if k is not None)

    @property
    def sliding_window(self) -> int | None:
        """The window of the sliding layers (None when no layer slides)."""
        windows = {k.window for k in self.self_layers if k.kind == "sliding"}
        return max(windows) if windows else None  # type: ignore[type-var]


def uniform_width(layers: tuple[LayerKV, ...]) -> int:
    """K elements per position per layer when every layer has the same width (0 when no layers)."""
    widths = {k.key_width for k in layers}
    return max(widths) if widths else 0
