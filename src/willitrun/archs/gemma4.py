"""Gemma 4 text models (Gemma4ForCausalLM, model_type gemma4_text; transformers 5.23
models/gemma4/{configuration,modeling}_gemma4.py).

Gemma 3's layer (q/k norms per head, sandwich norms) with these differences, all read from the modeling file:
- full-attention layers have their own head size, `global_head_dim` (512 unless config.json says otherwise), and,
  when `attention_k_eq_v`, their own KV heads (`num_global_key_value_heads`) and no v_proj (the values are the
  keys' projection; both are still cached). Gemma4TextConfig.__post_init__ writes these as `per_layer_config`,
  which a config.json transformers saved carries instead of the two keys;
- the value norm has no weight (Gemma4RMSNorm(with_scale=False)); every layer has a `layer_scalar` buffer;
- per-layer embeddings (PLE) when `hidden_size_per_layer_input` (256 by default): one packed table
  `embed_tokens_per_layer` (vocab_size_per_layer_input x layers * width), a projection of the hidden state to it
  and its norm, and in each layer a gate, a projection back and a norm;
- KV sharing: the last `num_kv_shared_layers` layers compute no keys or values (no k/v projections or norms) and
  keep no cache: they reuse the last earlier layer of the same attention type (Gemma4TextConfig.kv_sharing_modes);
  with `use_double_wide_mlp` those layers' MLP is twice as wide;
- `enable_moe_block`: a router and `num_experts` experts next to the dense MLP of every layer (Gemma4TextRouter,
  Gemma4TextExperts) with three more norms;
- layer types: layer i slides (window `sliding_window`, 512) when (i + 1) % 6, or `layer_types`; the last layer is
  forced to full attention. `use_bidirectional_attention == "all"` makes the window sliding_window // 2 + 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from ..records import Field, model_validator
from . import llama
from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    check_heads,
    linear,
    norm,
)
from .family import ConfigClass, Family, GGUFRules
from .llama import check_layer_types

ARCHITECTURES = ("gemma4_text", "gemma4")
SLIDING_WINDOW_PATTERN = 6  # Gemma4TextConfig.__post_init__: "by default 5:1"

PleWidth = Annotated[int, Field(ge=0, le=1 << 16)]
Experts = Annotated[int, Field(gt=0, le=1 << 12)]


class Gemma4LayerOverride(Strict):
    """One entry of a saved config.json's `per_layer_config` (the full-attention layers' head shape)."""

    head_dim: HeadDim | None = None
    num_key_value_heads: Heads | None = None


class Gemma4TextConfig(Strict):
    """Gemma4TextConfig fields (transformers models/gemma4/configuration_gemma4.py)."""

    model_type: Literal["gemma4_text"] | None = None
    vocab_size: Vocab = 262_144
    hidden_size: Hidden = 2304
    intermediate_size: Intermediate = 9216
    num_hidden_layers: Layers = 30
    num_attention_heads: Heads = 8
    num_key_value_heads: Heads = 4
    head_dim: HeadDim = 256
    hidden_activation: Literal["gelu_pytorch_tanh", "gelu", "silu"] = "gelu_pytorch_tanh"
    max_position_embeddings: Positions = 131_072
    tie_word_embeddings: bool = True
    attention_bias: bool = False
    sliding_window: Positions = 512
    layer_types: list[llama.LayerType] | None = None
    use_bidirectional_attention: Literal["all", "vision"] | None = None
    vocab_size_per_layer_input: Vocab = 262_144
    hidden_size_per_layer_input: PleWidth = 256
    attention_k_eq_v: bool = False
    num_kv_shared_layers: Annotated[int, Field(ge=0, le=1 << 12)] = 0
    enable_moe_block: bool = False
    use_double_wide_mlp: bool = False
    num_experts: Experts | None = None
    top_k_experts: Experts | None = None
    moe_intermediate_size: Intermediate | None = None
    # __post_init__ kwargs (not attributes of the class): the full-attention layers' head size and KV heads
    global_head_dim: HeadDim = 512
    num_global_key_value_heads: Heads | None = None
    # what a config.json transformers saved carries instead of the two above: layer index -> overrides
    per_layer_config: dict[str, Gemma4LayerOverride] | None = None

    @model_validator(mode="after")
    def _check(self) -> Gemma4TextConfig:
        check_layer_types(self.layer_types, self.num_hidden_layers)
        for i in range(self.num_hidden_layers):
            check_heads(self.num_attention_heads, self.layer_kv_heads(i), "")
        if self.num_kv_shared_layers >= self.num_hidden_layers and self.num_kv_shared_layers:
            raise ValueError(
                f"num_kv_shared_layers ({self.num_kv_shared_layers}) leaves no layer computing keys and values "
                f"of the {self.num_hidden_layers}"
            )
        if self.num_kv_shared_layers:
            first = self.num_hidden_layers - self.num_kv_shared_layers
            if {self.layer_type(i) for i in range(first)} != {self.layer_type(i) for i in range(len(self.types))}:
                # Gemma4TextConfig.kv_sharing_modes raises the same ValueError
                raise ValueError("num_kv_shared_layers: a shared layer type has no earlier layer producing its cache")
        if self.enable_moe_block and not (self.num_experts and self.top_k_experts and self.moe_intermediate_size):
            raise ValueError("enable_moe_block needs num_experts, top_k_experts and moe_intermediate_size")
        if self.per_layer_config is not None and any(
            not k.isdigit() or int(k) >= self.num_hidden_layers for k in self.per_layer_config
        ):
            raise ValueError(f"per_layer_config names layers outside 0..{self.num_hidden_layers - 1}")
        return self

    @property
    def types(self) -> list[str]:
        """Gemma4TextConfig.__post_init__'s layer_types: (i + 1) % 6 slides, the last layer forced to full."""
        n = self.num_hidden_layers
        t: list[str] = (
            list(self.layer_types)
            if self.layer_types is not None
            else ["sliding_attention" if (i + 1) % SLIDING_WINDOW_PATTERN else "full_attention" for i in range(n)]
        )
        t[-1] = "full_attention"
        return t

    def layer_type(self, i: int) -> str:
        return self.types[i]

    def _override(self, i: int) -> Gemma4LayerOverride | None:
        if self.per_layer_config is not None:
            return self.per_layer_config.get(str(i))
        if self.layer_type(i) != "full_attention":
            return None
        # `attention_k_eq_v` gates the KV-head override (configuration_gemma4.py __post_init__)
        return Gemma4LayerOverride(
            head_dim=self.global_head_dim,
            num_key_value_heads=self.num_global_key_value_heads if self.attention_k_eq_v else None,
        )

    def layer_head_dim(self, i: int) -> int:
        o = self._override(i)
        return o.head_dim if o is not None and o.head_dim is not None else self.head_dim

    def layer_kv_heads(self, i: int) -> int:
        o = self._override(i)
        return (
            o.num_key_value_heads if o is not None and o.num_key_value_heads is not None else self.num_key_value_heads
        )

    def shared(self, i: int) -> bool:
        """Layer i reuses an earlier layer's keys and values (kv_sharing_modes "reuse"): no k/v, no cache."""
        return i >= self.num_hidden_layers - self.num_kv_shared_layers

    def window(self) -> int:
        # __post_init__: bidirectional attention over every token halves the window (flash attention's bounds)
        return self.sliding_window // 2 + 1 if self.use_bidirectional_attention == "all" else self.sliding_window

    def mlp_width(self, i: int) -> int:
        return self.intermediate_size * (2 if self.use_double_wide_mlp and self.shared(i) else 1)

    @property
    def ffn_size(self) -> int:
        """The feed-forward width llama.cpp calls n_ff (the config's, before double-wide layers)."""
        return self.intermediate_size


class Gemma4TextSpec(ModelSpecBase):
    architecture: Literal["gemma4_text"]
    config: Gemma4TextConfig


class Gemma4VisionConfig(Strict):
    """Gemma4VisionConfig fields (transformers models/gemma4/configuration_gemma4.py)."""

    model_type: Literal["gemma4_vision"] | None = None
    hidden_size: Hidden = 768
    intermediate_size: Intermediate = 3072
    num_hidden_layers: Layers = 16
    num_attention_heads: Heads = 12
    num_key_value_heads: Heads = 12
    head_dim: HeadDim = 64
    pooling_kernel_size: Annotated[int, Field(gt=0, le=64)] = 3
    patch_size: Annotated[int, Field(gt=0, le=1024)] = 16
    position_embedding_size: Positions = 10 * 1024

    @model_validator(mode="before")
    @classmethod
    def _tensor_fields_only(cls, data: Any) -> Any:
        # a config.json's vision_config carries every Gemma4VisionConfig key (rope, norms' eps, clipping flags): keep
        # the ones that shape a tensor (the importer keeps vision_config as given: see MM_CONFIG)
        return {k: v for k, v in data.items() if k in cls.model_fields} if isinstance(data, dict) else data


class Gemma4AudioConfig(Strict):
    """Gemma4AudioConfig fields that shape a tensor (configuration_gemma4.py), with the class's defaults."""

    model_type: Literal["gemma4_audio"] | None = None
    hidden_size: Hidden = 1024
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 8
    subsampling_conv_channels: list[Annotated[int, Field(gt=0, le=1 << 16)]] = Field(
        default=[128, 32], min_length=2, max_length=2
    )
    conv_kernel_size: Annotated[int, Field(gt=0, le=1024)] = 5
    output_proj_dims: Hidden = 1536
    attention_chunk_size: Annotated[int, Field(gt=0, le=1 << 16)] = 12
    attention_context_left: Annotated[int, Field(ge=0, le=1 << 16)] = 13
    attention_context_right: Annotated[int, Field(ge=0, le=1 << 16)] = 0

    @model_validator(mode="before")
    @classmethod
    def _tensor_fields_only(cls, data: Any) -> Any:
        # like Gemma4VisionConfig: a config.json's audio_config carries attention and clipping settings too
        return {k: v for k, v in data.items() if k in cls.model_fields} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check(self) -> Gemma4AudioConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"audio_config.hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        return self


class Gemma4Config(Strict):
    """Gemma4Config fields (transformers models/gemma4/configuration_gemma4.py)."""

    model_type: Literal["gemma4"] | None = None
    text_config: Gemma4TextConfig
    vision_config: Gemma4VisionConfig | None = None  # Gemma4Config(): no vision tower
    audio_config: Gemma4AudioConfig | None = None  # nor an audio tower
    tie_word_embeddings: bool = True


class Gemma4Spec(ModelSpecBase):
    architecture: Literal["gemma4"]
    config: Gemma4Config


SPECS: dict[str, type[ModelSpecBase]] = {"gemma4_text": Gemma4TextSpec, "gemma4": Gemma4Spec}
AnyGemma4 = Gemma4TextSpec | Gemma4Spec
MAX_SOFT_TOKENS = 280  # Gemma4ImageProcessor.max_soft_tokens (image_processing_gemma4.py)


LayerExtra = Callable[[Any, str, int], Iterable[Tensor]]


def text_tensors(
    c: Gemma4TextConfig,
    tied: bool,
    layer_extra: LayerExtra | None = None,
    model_extra: Iterable[Tensor] = (),
) -> Iterator[Tensor]:
    """Gemma4ForCausalLM's parameters in module order (the layer_scalar and embed_scale buffers are not);
    `layer_extra(config, prefix, layer)` and `model_extra`: what a related model adds (archs/gemma3n.py)."""
    h, ple, n = c.hidden_size, c.hidden_size_per_layer_input, c.num_hidden_layers
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(n):
        p, hd, kvh = f"decoder.{i}", c.layer_head_dim(i), c.layer_kv_heads(i)
        q = c.num_attention_heads * hd
        b = c.attention_bias
        yield from linear(f"{p}.attn_q", "decoder", q, h, "attn_q", b, i)
        yield from norm(f"{p}.attn_q_norm", "decoder", hd, i)
        if not c.shared(i):
            yield from norm(f"{p}.attn_k_norm", "decoder", hd, i)  # v_norm: with_scale=False, no weight
            yield from linear(f"{p}.attn_k", "decoder", kvh * hd, h, "attn_k", b, i)
            if not (c.attention_k_eq_v and c.layer_type(i) == "full_attention"):
                yield from linear(f"{p}.attn_v", "decoder", kvh * hd, h, "attn_v", b, i)
        yield from linear(f"{p}.attn_output", "decoder", h, q, "attn_output", b, i)
        yield from llama.gated_mlp(p, "decoder", h, c.mlp_width(i), False, i)
        for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            yield from norm(f"{p}.{name}", "decoder", h, i)
        if ple:
            yield from linear(f"{p}.inp_gate", "decoder", ple, h, "other", False, i)
            yield from linear(f"{p}.proj", "decoder", h, ple, "other", False, i)
            yield from norm(f"{p}.post_norm", "decoder", h, i)
        if c.enable_moe_block:
            e, mi = c.num_experts or 0, c.moe_intermediate_size or 0
            yield from linear(f"{p}.ffn_gate_inp", "decoder", e, h, "ffn_gate_inp", False, i)
            yield Tensor(f"{p}.ffn_gate_inp.scale", "decoder", (h,), "other", i)
            yield Tensor(f"{p}.ffn_gate_inp.per_expert_scale", "decoder", (e,), "other", i)
            # experts.gate_up_proj (E, 2 * mi, H) listed as GGUF's gate and up (archs/moe.py)
            yield Tensor(f"{p}.ffn_gate_exps.weight", "decoder", (e, mi, h), "ffn_gate_exps", i)
            yield Tensor(f"{p}.ffn_up_exps.weight", "decoder", (e, mi, h), "ffn_up_exps", i)
            yield Tensor(f"{p}.ffn_down_exps.weight", "decoder", (e, h, mi), "ffn_down_exps", i)
            for name in ("post_ffw_norm_1", "post_ffw_norm_2", "pre_ffw_norm_2"):
                yield from norm(f"{p}.{name}", "decoder", h, i)
        if layer_extra is not None:
            yield from layer_extra(c, p, i)
    yield from model_extra
    yield from norm("decoder.output_norm", "decoder", h, None)
    if ple:
        yield Tensor("per_layer_token_embd.weight", "embeddings", (c.vocab_size_per_layer_input, n * ple), "other")
        yield Tensor("per_layer_model_proj.weight", "decoder", (n * ple, h), "other")
        yield from norm("per_layer_proj_norm", "decoder", ple, None)
    if not tied:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def vision_tensors(v: Gemma4VisionConfig, text_hidden: int) -> Iterator[Tensor]:
    """Gemma4VisionModel (patch embedder, encoder; the pooler has no weights, std_bias / std_scale are buffers) and
    Gemma4MultimodalEmbedder (one projection; its norm has no weight)."""
    h, hd = v.hidden_size, v.head_dim
    comp = "vision_tower"
    yield from linear("vision.patch_embd", comp, h, 3 * v.patch_size**2, "other", False, None)
    yield Tensor("vision.position_embd", comp, (2, v.position_embedding_size, h), "pos_embd")
    for i in range(v.num_hidden_layers):
        p = f"vision.{i}"
        yield from linear(f"{p}.attn_q", comp, v.num_attention_heads * hd, h, "attn_q", False, i)
        yield from linear(f"{p}.attn_k", comp, v.num_key_value_heads * hd, h, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", comp, v.num_key_value_heads * hd, h, "attn_v", False, i)
        yield from linear(f"{p}.attn_output", comp, h, v.num_attention_heads * hd, "attn_output", False, i)
        yield from norm(f"{p}.attn_q_norm", comp, hd, i)
        yield from norm(f"{p}.attn_k_norm", comp, hd, i)
        yield from llama.gated_mlp(p, comp, h, v.intermediate_size, False, i)
        for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            yield from norm(f"{p}.{name}", comp, h, i)
    yield Tensor("projector.embedding_projection", "projector", (text_hidden, h), "projector")


def audio_tensors(a: Gemma4AudioConfig, text_hidden: int) -> Iterator[Tensor]:
    """Gemma4AudioModel (modeling_gemma4.py): the two stride-2 convolutions of Gemma4AudioSubSampleConvProjection
    (bias-free, each with a bias-free LayerNorm) and its input projection from (channels[0] // 4) x channels[1],
    the Conformer layers (two macaron feed-forwards 4 x hidden wide, attention with a relative-key projection and a
    per-dimension scale, a light convolution: a GLU start, a depthwise kernel, an end projection; RMSNorms), the
    output projection with a bias; then the audio Gemma4MultimodalEmbedder's projection (its norm has no weight).
    Gemma4ClippableLinear's clipping bounds are buffers, not parameters."""
    h, comp = a.hidden_size, "audio_tower"
    c0, c1 = a.subsampling_conv_channels
    yield Tensor("audio.sscp.conv0.weight", comp, (c0, 1, 3, 3), "conv")
    yield from norm("audio.sscp.norm0", comp, c0, None)
    yield Tensor("audio.sscp.conv1.weight", comp, (c1, c0, 3, 3), "conv")
    yield from norm("audio.sscp.norm1", comp, c1, None)
    yield from linear("audio.sscp.input_proj", comp, h, (c0 // 4) * c1, "other", False, None)
    for i in range(a.num_hidden_layers):
        p = f"audio.{i}"
        for ffw in ("ffw1", "ffw2"):
            yield from linear(f"{p}.{ffw}.up", comp, 4 * h, h, "ffn_up", False, i)
            yield from linear(f"{p}.{ffw}.down", comp, h, 4 * h, "ffn_down", False, i)
            yield from norm(f"{p}.{ffw}.pre_norm", comp, h, i)
            yield from norm(f"{p}.{ffw}.post_norm", comp, h, i)
        yield Tensor(f"{p}.attn.per_dim_scale", comp, (h // a.num_attention_heads,), "other", i)
        yield from linear(f"{p}.attn_q", comp, h, h, "attn_q", False, i)
        yield from linear(f"{p}.attn_k", comp, h, h, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", comp, h, h, "attn_v", False, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", False, i)
        yield from linear(f"{p}.attn_rel_k", comp, h, h, "other", False, i)
        yield from linear(f"{p}.lconv.start", comp, 2 * h, h, "other", False, i)
        yield from linear(f"{p}.lconv.end", comp, h, h, "other", False, i)
        yield Tensor(f"{p}.lconv.depthwise.weight", comp, (h, 1, a.conv_kernel_size), "conv", i)
        for name in ("lconv.pre_norm", "lconv.conv_norm", "norm_pre_attn", "norm_post_attn", "norm_out"):
            yield from norm(f"{p}.{name}", comp, h, i)
    yield from linear("audio.output_proj", comp, a.output_proj_dims, h, "other", True, None)
    yield Tensor("projector.audio_embedding_projection", "projector", (text_hidden, a.output_proj_dims), "projector")


def tensors(spec: AnyGemma4) -> Iterator[Tensor]:
    if isinstance(spec, Gemma4Spec):
        c = spec.config
        if c.vision_config is not None:
            yield from vision_tensors(c.vision_config, c.text_config.hidden_size)
        if c.audio_config is not None:
            yield from audio_tensors(c.audio_config, c.text_config.hidden_size)
        yield from text_tensors(c.text_config, c.tie_word_embeddings)
        return
    yield from text_tensors(spec.config, spec.config.tie_word_embeddings)


def self_kv(c: Gemma4TextConfig) -> tuple[LayerKV | None, ...]:
    """Per layer what transformers' cache holds: the shared layers never call past_key_values.update."""
    out: list[LayerKV | None] = []
    for i in range(c.num_hidden_layers):
        if c.shared(i):
            out.append(None)
            continue
        hd, sliding = c.layer_head_dim(i), c.layer_type(i) == "sliding_attention"
        out.append(
            LayerKV("sliding" if sliding else "full", c.layer_kv_heads(i), hd, hd, c.window() if sliding else None)
        )
    return tuple(out)


# llama.cpp runs Gemma 4's vision tower from a separate mmproj file (convert_hf_to_gguf.py Gemma4VisionAudioModel,
# projector type gemma4v) whose weights and CLIP graph the llama.cpp profile does not size yet: the language model
# alone is answered (a gemma4_text config, or the GGUF), the multimodal one refused rather than its tower left out
VISION_MMPROJ_REFUSAL = (
    "{engine}: the profile does not size {model}'s vision / audio mmproj yet; give the language model "
    "alone (its GGUF, or text_config as a {text} config.json) or use --engine transformers"
)


def text_geometry(c: Gemma4TextConfig, architecture: str, gguf: str = "gemma4", **extra: Any) -> Geometry:
    kv = {c.layer_kv_heads(i) for i in range(c.num_hidden_layers) if not c.shared(i)}
    fields: dict[str, Any] = dict(  # noqa: C408 (keyword form mirrors the Geometry fields)
        architecture=architecture,
        self_kv=self_kv(c),
        cross_kv=(None,) * c.num_hidden_layers,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.ffn_size,
        context_window=c.max_position_embeddings,
        tp_constraints=(
            ("attention heads", c.num_attention_heads, False),
            *(("KV heads", k, True) for k in sorted(kv)),
            *(("intermediate_size", w, False) for w in sorted({c.mlp_width(i) for i in range(c.num_hidden_layers)})),
        ),
        tp_kv_heads=min(kv),
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=c.num_attention_heads // c.num_key_value_heads,
        experts=(c.num_experts or 0) if c.enable_moe_block else 0,
        experts_per_token=(c.top_k_experts or 0) if c.enable_moe_block else 0,
        # llama.cpp runs it (LLM_ARCH_GEMMA4 / LLM_ARCH_GEMMA3N, src/models/gemma4.cpp, gemma3n.cpp): the sliding
        # layers in their own window-sized cache (build_attn_inp_kv_iswa), the KV-shared layers without one
        # (`n_layer_kv_from_start`: llama_hparams::has_kv), each layer's K and V n_embd_k_gqa(il) wide
        llamacpp_swa=True,
        gguf_architecture=gguf,
    )
    fields.update(extra)
    return Geometry(**fields)


def geometry(spec: AnyGemma4) -> Geometry:
    if isinstance(spec, Gemma4Spec):
        c = spec.config
        return text_geometry(
            c.text_config,
            spec.architecture,
            tied_embeddings=c.tie_word_embeddings,
            takes_images=c.vision_config is not None,
            image_size_option=c.vision_config is not None,
            no_cross_reason="Gemma 4 has no cross-attention: image tokens sit in the self-attention context",
            refusals={
                e: VISION_MMPROJ_REFUSAL.format(engine=e, model="Gemma 4", text="gemma4_text")
                for e in ("llama.cpp", "ollama")
            }
            if c.vision_config is not None or c.audio_config is not None
            else {},
        )
    return text_geometry(spec.config, spec.architecture)


def text_stage(c: Gemma4TextConfig, context: int) -> Stage:
    """The widest layer's activations: a full-attention layer's heads (global_head_dim) and the widest MLP."""
    n = c.num_hidden_layers
    q = max(c.num_attention_heads * c.layer_head_dim(i) for i in range(n))
    kv = max(c.layer_kv_heads(i) * c.layer_head_dim(i) for i in range(n))
    inner = max(c.mlp_width(i) for i in range(n))
    return Stage(context, c.hidden_size, q, kv, inner, True, c.num_attention_heads, context)


# Gemma4AudioFeatureExtractor / Gemma4Processor (feature_extraction_gemma4.py, processing_gemma4.py): 16 kHz audio,
# 20 ms frames every 10 ms, at most 480,000 samples (30 s) per clip, audio_seq_length 750 soft tokens at most
AUDIO_RATE, AUDIO_FRAME, AUDIO_HOP, AUDIO_CLIP_SECONDS, AUDIO_MAX_TOKENS = 16_000, 320, 160, 30, 750


def audio_clip_tokens(seconds: int) -> int:
    """Gemma4Processor._compute_audio_num_tokens for `seconds` of 16 kHz audio: mel frames (semicausal padding of
    half a frame, unfold of frame + 1 samples), then the two stride-2, kernel-3, padding-1 convolutions, capped."""
    frames = (seconds * AUDIO_RATE + AUDIO_FRAME // 2 - (AUDIO_FRAME + 1)) // AUDIO_HOP + 1
    if frames <= 0:
        return 0
    for _ in range(2):
        frames = (frames + 2 - 3) // 2 + 1
    return min(frames, AUDIO_MAX_TOKENS)


def audio_tokens(spec: AnyGemma4, seconds: int) -> int:
    """Soft tokens of `seconds` of audio, sent as clips of at most 30 s (the feature extractor truncates a longer
    one); 0 without an audio tower. The begin- and end-of-audio tokens around each clip are text."""
    if not isinstance(spec, Gemma4Spec) or spec.config.audio_config is None:
        return 0
    full, rest = divmod(seconds, AUDIO_CLIP_SECONDS)
    return full * audio_clip_tokens(AUDIO_CLIP_SECONDS) + (audio_clip_tokens(rest) if rest else 0)


def audio_stage(a: Gemma4AudioConfig) -> Stage:
    """The Conformer over one 30 s clip (750 positions after the subsampling): eager chunked local attention, each
    chunk of attention_chunk_size queries over chunk + context_left - 1 + context_right keys (Gemma4AudioAttention)."""
    h = a.hidden_size
    keys = a.attention_chunk_size + max(0, a.attention_context_left - 1) + a.attention_context_right
    n = audio_clip_tokens(AUDIO_CLIP_SECONDS)
    return Stage(n, h, h, h, 4 * h, False, a.num_attention_heads, keys, eager_scores=True, per_input=True)


def stages(spec: AnyGemma4, context: int, source: int, images: int) -> list[Stage]:
    if not isinstance(spec, Gemma4Spec):
        return [text_stage(spec.config, context)]
    c, v = spec.config, spec.config.vision_config
    out = [text_stage(c.text_config, context)]
    if c.audio_config is not None:  # one 30 s clip, as memory's audio note says
        out.append(audio_stage(c.audio_config))
    if images and v is not None:
        # the processor pads every image's patches to max_soft_tokens * k^2 (image_processing_gemma4.py)
        patches = MAX_SOFT_TOKENS * v.pooling_kernel_size**2
        q, kv = v.num_attention_heads * v.head_dim, v.num_key_value_heads * v.head_dim
        out.append(
            Stage(
                patches * images,
                v.hidden_size,
                q,
                kv,
                v.intermediate_size,
                True,
                v.num_attention_heads,
                patches,
                per_input=True,
            )
        )
    return out


def aspect_ratio_preserving_size(height: int, width: int, patch: int, max_patches: int, k: int) -> tuple[int, int]:
    """Gemma4ImageProcessor's resize (image_processing_gemma4.py `get_aspect_ratio_preserving_size`): the largest
    size within the patch budget whose sides are multiples of k * patch."""
    target_px = max_patches * patch**2
    factor = math.sqrt(target_px / (height * width))
    side = k * patch
    th, tw = math.floor(factor * height / side) * side, math.floor(factor * width / side) * side
    if th == 0 and tw == 0:
        raise ValueError(f"a {width}x{height} image resizes to 0 x 0 (sides must be multiples of {side})")
    longest = (max_patches // k**2) * side
    if th == 0:
        th, tw = side, min(math.floor(width / height) * side, longest)
    elif tw == 0:
        th, tw = min(math.floor(height / width) * side, longest), side
    return th, tw


def image_tokens(spec: AnyGemma4, image_size: tuple[int, int] | None) -> int:
    """Soft tokens per image (num_soft_tokens_per_image): the resized image's patches / k^2; the largest
    (max_soft_tokens, 280) without a size. The begin- and end-of-image tokens around them are text."""
    if not isinstance(spec, Gemma4Spec):
        return 0
    v = spec.config.vision_config
    if v is None:
        return 0
    k = v.pooling_kernel_size
    if image_size is None:
        return MAX_SOFT_TOKENS
    height, width = image_size  # (height, width): memory.Estimate's image_size
    th, tw = aspect_ratio_preserving_size(height, width, v.patch_size, MAX_SOFT_TOKENS * k**2, k)
    return (th // v.patch_size) * (tw // v.patch_size) // k**2


def cross_source_tokens(spec: AnyGemma4, images: int, encoder_tokens: int) -> int:
    return 0


TEXT_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 262_144,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 30,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "sliding_window": 512,
    "use_bidirectional_attention": None,
    "vocab_size_per_layer_input": 262_144,
    "hidden_size_per_layer_input": 256,
    "attention_k_eq_v": False,
    "num_kv_shared_layers": 0,
    "enable_moe_block": False,
    "use_double_wide_mlp": False,
    "num_experts": None,
    "top_k_experts": None,
    "moe_intermediate_size": None,
}

# Gemma4ForCausalLM's safetensors names (modeling_gemma4.py: Gemma4TextModel under `model.`)
WEIGHT_RULES = (
    (r"(?:model\.)?embed_tokens(?:_per_layer)?\.weight", "embeddings"),
    (
        r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight|per_layer_model_projection\.weight|per_layer_projection_norm\.weight)",
        "decoder",
    ),
    (r"lm_head\.weight", "lm_head"),
)

TEXT_CONFIG = ConfigClass(
    "Gemma4TextConfig",
    "gemma4/configuration_gemma4.py",
    Gemma4TextConfig,
    TEXT_DEFAULTS,
    # layer_types is filled by __post_init__; global_head_dim and num_global_key_value_heads are its kwargs and
    # per_layer_config what it saves instead; head_dim (256, the spec's default) differs per layer, so the
    # class has no single value to compare (AmbiguousGlobalPerLayerAttributeError): tests/importers/test_gemma4.py
    copied=("head_dim", "layer_types", "global_head_dim", "num_global_key_value_heads", "per_layer_config"),
)
MM_CONFIG = ConfigClass(
    "Gemma4Config",
    "gemma4/configuration_gemma4.py",
    Gemma4Config,
    {"text_config": TEXT_CONFIG, "tie_word_embeddings": True},
    # Gemma4Config() builds no vision or audio tower (optional sub-configs, None by default): a config.json's
    # vision_config / audio_config is kept as given, Gemma4VisionConfig's / Gemma4AudioConfig's own defaults filling
    # what it omits
    copied=("vision_config", "audio_config"),
)

# Gemma4ForConditionalGeneration's safetensors names (Gemma4Model under `model.`)
MM_WEIGHT_RULES = (
    (r"model\.language_model\.embed_tokens(?:_per_layer)?\.weight", "embeddings"),
    (r"model\.language_model\..+", "decoder"),
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.embed_vision\..+", "projector"),
    (r"model\.audio_tower\..+", "audio_tower"),
    (r"model\.embed_audio\..+", "projector"),
    (r"lm_head\.weight", "lm_head"),
)

FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"gemma4_text": TEXT_CONFIG, "gemma4": MM_CONFIG},
    weight_rules={"gemma4_text": WEIGHT_RULES, "gemma4": MM_WEIGHT_RULES},
    # llama.cpp's LLM_ARCH_GEMMA4 (src/models/gemma4.cpp load_arch_hparams): n_layer_kv_from_start = n_layer -
    # attention.shared_kv_layers; the file carries the rest (convert_hf_to_gguf.py Gemma4Model: the sliding pattern
    # as one flag per layer, key_length / key_length_swa, head_count_kv per layer)
    gguf_architectures=("gemma4",),
    gguf_rules={"gemma4": GGUFRules(kv_free_tail="attention.shared_kv_layers")},
    audio_tokens=audio_tokens,
)
