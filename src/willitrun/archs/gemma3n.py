"""Gemma 3n text models (Gemma3nForCausalLM, model_type gemma3n_text; transformers 5.23
models/gemma3n/{configuration,modeling}_gemma3n.py), on Gemma 4's text code (archs/gemma4.py), whose layer it is
without per-layer head sizes, k-equals-v or experts, plus:
- AltUp (Gemma3nTextAltUp): per layer a router (altup_num_inputs x hidden) and its norm, prediction
  (inputs^2 x inputs) and correction (inputs x inputs) coefficients and an output scale (hidden); in the model,
  altup_num_inputs - 1 projections in and as many out (hidden x hidden each);
- LAuReL (Gemma3nTextLaurelBlock): per layer a rank-`laurel_rank` pair of projections and a norm;
- per-layer embeddings always (no flag): the packed table, its projection and norm, and per layer a gate, a
  projection and a norm;
- KV sharing: the last `num_kv_shared_layers` (15 of 35 by default) compute no keys or values and keep no cache;
- `intermediate_size` one width or one per layer; layer i attends in full when (i + 1) % 5 == 0, else slides over
  `sliding_window` (512), or `layer_types` (the last layer is not forced to full, unlike Gemma 4).

The multimodal checkpoints (Gemma3nForConditionalGeneration, model_type gemma3n: gemma-3n-E2B / E4B) add:
- the vision tower, timm's MobileNetV5 encoder (`vision_config.architecture` mobilenetv5_300m_enc, built by
  TimmWrapperModel with num_classes 0): its blocks are transcribed below from timm's architecture definition and
  counted by the rules of timm's block classes (MNV5_300M, mnv5_tensors), so no timm is needed at run time;
- the audio tower (Gemma3nAudioEncoder, the USM Conformer): two 2-D convolutions with cumulative group norms, an
  input projection, `conf_num_hidden_layers` Conformer layers (two macaron feed-forwards 4 x hidden, attention with a
  relative-position projection and a per-dimension scale, a light convolution), all bias-free;
- per modality a Gemma3nMultimodalEmbedder: a `vocab_size` (128) x tower-width embedding of the hard tokens, two
  norms and a projection to the text width (its post-projection norm has no weight).
Images are 768 x 768 (Gemma3nImageProcessor) and take vision_soft_tokens_per_image (256) positions; an audio clip
takes audio_soft_tokens_per_image (188) (--audio-seconds: per started 30 s). The Conformer's activations are counted
for one 30 s clip; the MobileNetV5's are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from ..records import Field, model_validator
from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, Family, GGUFRules, swa_period
from .gemma4 import VISION_MMPROJ_REFUSAL, Gemma4TextConfig, text_geometry, text_stage, text_tensors

ARCHITECTURES = ("gemma3n_text", "gemma3n")
FULL_EVERY = 5  # Gemma3nTextConfig.__post_init__: "full_attention" if (i + 1) % 5 == 0
# Gemma 4's fields Gemma3nTextConfig does not have: a gemma3n_text spec leaves them at their (off) defaults
GEMMA4_ONLY = (
    "use_bidirectional_attention",
    "attention_k_eq_v",
    "enable_moe_block",
    "use_double_wide_mlp",
    "num_experts",
    "top_k_experts",
    "moe_intermediate_size",
    "global_head_dim",
    "num_global_key_value_heads",
    "per_layer_config",
)


class Gemma3nTextConfig(Gemma4TextConfig):
    """Gemma3nTextConfig fields (transformers models/gemma3n/configuration_gemma3n.py)."""

    model_type: Literal["gemma3n_text"] | None = None  # type: ignore[assignment]
    vocab_size: Vocab = 262_400
    hidden_size: Hidden = 2048
    intermediate_size: Intermediate | list[Intermediate] = 16_384  # type: ignore[assignment]
    num_hidden_layers: Layers = 35
    num_attention_heads: Heads = 8
    num_key_value_heads: Heads = 2
    head_dim: HeadDim = 256
    max_position_embeddings: Positions = 32_768
    num_kv_shared_layers: Annotated[int, Field(ge=0, le=1 << 12)] = 15
    altup_num_inputs: Annotated[int, Field(gt=0, le=64)] = 4
    laurel_rank: Annotated[int, Field(ge=0, le=1 << 16)] = 64

    @model_validator(mode="after")
    def _check_gemma3n(self) -> Gemma3nTextConfig:
        stray = sorted(set(GEMMA4_ONLY) & self.model_fields_set)
        if stray:
            raise ValueError(f"gemma3n_text has no {', '.join(stray)} (Gemma 4's fields)")
        if isinstance(self.intermediate_size, list) and len(self.intermediate_size) != self.num_hidden_layers:
            raise ValueError(
                f"intermediate_size has {len(self.intermediate_size)} widths for {self.num_hidden_layers} layers"
            )
        return self

    @property
    def types(self) -> list[str]:
        if self.layer_types is not None:
            return list(self.layer_types)
        return [
            "full_attention" if (i + 1) % FULL_EVERY == 0 else "sliding_attention"
            for i in range(self.num_hidden_layers)
        ]

    def _override(self, i: int) -> None:
        return None  # one head shape on every layer

    def mlp_width(self, i: int) -> int:
        w = self.intermediate_size
        return w[i] if isinstance(w, list) else w

    @property
    def ffn_size(self) -> int:
        return max(self.mlp_width(i) for i in range(self.num_hidden_layers))


class Gemma3nTextSpec(ModelSpecBase):
    architecture: Literal["gemma3n_text"]
    config: Gemma3nTextConfig


# timm 1.0.31 timm/models/mobilenetv5.py `_gen_mobilenet_v5` (the arch_def of every variant but mobilenetv5_base,
# with stem_size 64, RmsNorm2d, layer_scale_init_value 1e-5) and MobileNetV5Encoder (msfa_indices (-2, -1), a
# MobileNetV5MultiScaleFusionAdapter to num_features 2048 with expansion_ratio 2): one string per block in timm's
# notation: er = EdgeResidual (k: kernel, e: expansion), uir = UniversalInvertedResidual (a: start depthwise kernel,
# k: middle depthwise kernel, 0 = none), mqa = MobileAttention with MultiQueryAttention2d (h: heads, d: key and
# value width, v: key/value stride, k: the strided depthwise kernel); c: output channels.
MNV5_300M: tuple[tuple[str, ...], ...] = (
    ("er_k3_e4_c128",) * 3,
    ("uir_a3_k5_e6_c256", "uir_a5_k0_e4_c256", "uir_a3_k0_e4_c256", "uir_a5_k0_e4_c256", "uir_a3_k0_e4_c256"),
    ("uir_a5_k5_e6_c640",)
    + ("uir_a5_k0_e4_c640",) * 7
    + ("uir_a0_k0_e1_c640",)
    + ("mqa_k3_h12_v2_d64_c640", "uir_a0_k0_e2_c640") * 14,
    ("uir_a5_k5_e6_c1280",) + ("mqa_k3_h16_v1_d96_c1280", "uir_a0_k0_e2_c1280") * 19,
)
MNV5_STEM = 64
MNV5_FEATURES = 2048  # MobileNetV5Encoder.num_features: the adapter's output channels
MNV5_ENCODERS = ("mobilenetv5_300m_enc",)


def _block_options(block: str) -> tuple[str, dict[str, int]]:
    kind, *opts = block.split("_")
    return kind, {o[0]: int(o[1:]) for o in opts}


def mnv5_tensors(comp: str = "vision_tower") -> Iterator[Tensor]:
    """Every parameter of timm's mobilenetv5_300m_enc (no classifier): the stem ConvNormAct (3 x 3, bias), then per
    block, by timm's classes (_efficientnet_blocks.py; mid channels make_divisible(in x e), all multiples of 8 here):
    EdgeResidual: conv_exp (mid, in, k, k), its norm, conv_pwl (out, mid), its norm (no layer scale: not passed);
    UniversalInvertedResidual: the optional start depthwise conv (in, 1, a, a) and norm, pw_exp (mid, in) and norm,
    the optional middle depthwise conv (mid, 1, k, k) and norm, pw_proj (out, mid) and norm, layer_scale (out);
    MobileAttention: a norm, query (h x d, in), key and value (d, in) each after a strided depthwise conv and norm
    when v > 1, output (in, h x d), layer_scale; RmsNorm2d has a weight only and the convolutions no bias.
    The adapter: a UniversalInvertedResidual without depthwise convs or layer scale from the last two stages'
    channels (640 + 1280) to 2048 via 2 x its input, then a norm."""
    yield Tensor("vision.stem.weight", comp, (MNV5_STEM, 3, 3, 3), "conv")
    yield Tensor("vision.stem.bias", comp, (MNV5_STEM,), "bias")
    yield Tensor("vision.stem.norm", comp, (MNV5_STEM,), "norm")
    cin = MNV5_STEM
    stage_out: list[int] = []
    for s, stage in enumerate(MNV5_300M):
        for b, block in enumerate(stage):
            kind, o = _block_options(block)
            p, out = f"vision.{s}.{b}", o["c"]
            if kind == "er":
                mid = cin * o["e"]
                yield Tensor(f"{p}.conv_exp", comp, (mid, cin, o["k"], o["k"]), "conv")
                yield Tensor(f"{p}.norm1", comp, (mid,), "norm")
                yield Tensor(f"{p}.conv_pwl", comp, (out, mid, 1, 1), "conv")
                yield Tensor(f"{p}.norm2", comp, (out,), "norm")
            elif kind == "uir":
                mid = cin * o["e"]
                if o["a"]:
                    yield Tensor(f"{p}.dw_start", comp, (cin, 1, o["a"], o["a"]), "conv")
                    yield Tensor(f"{p}.dw_start_norm", comp, (cin,), "norm")
                yield Tensor(f"{p}.pw_exp", comp, (mid, cin, 1, 1), "conv")
                yield Tensor(f"{p}.pw_exp_norm", comp, (mid,), "norm")
                if o["k"]:
                    yield Tensor(f"{p}.dw_mid", comp, (mid, 1, o["k"], o["k"]), "conv")
                    yield Tensor(f"{p}.dw_mid_norm", comp, (mid,), "norm")
                yield Tensor(f"{p}.pw_proj", comp, (out, mid, 1, 1), "conv")
                yield Tensor(f"{p}.pw_proj_norm", comp, (out,), "norm")
                yield Tensor(f"{p}.layer_scale", comp, (out,), "other")
            else:  # mqa
                heads, d = o["h"], o["d"]
                yield Tensor(f"{p}.norm", comp, (cin,), "norm")
                yield Tensor(f"{p}.query", comp, (heads * d, cin, 1, 1), "conv")
                for kv in ("key", "value"):
                    if o["v"] > 1:
                        yield Tensor(f"{p}.{kv}_down", comp, (cin, 1, o["k"], o["k"]), "conv")
                        yield Tensor(f"{p}.{kv}_down_norm", comp, (cin,), "norm")
                    yield Tensor(f"{p}.{kv}", comp, (d, cin, 1, 1), "conv")
                yield Tensor(f"{p}.output", comp, (out, heads * d, 1, 1), "conv")
                yield Tensor(f"{p}.layer_scale", comp, (out,), "other")
            cin = out
        stage_out.append(cin)
    fused = sum(stage_out[-2:])
    yield Tensor("vision.msfa.pw_exp", comp, (2 * fused, fused, 1, 1), "conv")
    yield Tensor("vision.msfa.pw_exp_norm", comp, (2 * fused,), "norm")
    yield Tensor("vision.msfa.pw_proj", comp, (MNV5_FEATURES, 2 * fused, 1, 1), "conv")
    yield Tensor("vision.msfa.pw_proj_norm", comp, (MNV5_FEATURES,), "norm")
    yield Tensor("vision.msfa.norm", comp, (MNV5_FEATURES,), "norm")


Pair = Annotated[list[Annotated[int, Field(gt=0, le=64)]], Field(min_length=2, max_length=2)]


class Gemma3nVisionConfig(Strict):
    """Gemma3nVisionConfig fields (configuration_gemma3n.py): the timm architecture and the embedder's sizes."""

    model_type: Literal["gemma3n_vision"] | None = None
    architecture: Annotated[str, Field(max_length=256)] = "mobilenetv5_300m_enc"
    model_args: dict[str, Any] | None = None
    hidden_size: Hidden = 2048
    vocab_size: Vocab = 128

    @model_validator(mode="before")
    @classmethod
    def _tensor_fields_only(cls, data: Any) -> Any:
        # a saved vision_config also carries TimmWrapperConfig's label names, num_classes and the like
        return {k: v for k, v in data.items() if k in cls.model_fields} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check(self) -> Gemma3nVisionConfig:
        if self.architecture not in MNV5_ENCODERS:
            raise ValueError(
                f"vision_config.architecture {self.architecture[:64]!r} is not modelled: willitrun counts timm's "
                f"{', '.join(MNV5_ENCODERS)} (Gemma 3n's released tower)"
            )
        if self.model_args:
            raise ValueError("vision_config.model_args (timm.create_model overrides) are not modelled")
        if self.hidden_size != MNV5_FEATURES:
            raise ValueError(
                f"vision_config.hidden_size ({self.hidden_size}) must be {MNV5_FEATURES}, the width "
                f"{self.architecture} returns (the embedder reads it)"
            )
        return self


class Gemma3nAudioConfig(Strict):
    """Gemma3nAudioConfig fields that shape a tensor (configuration_gemma3n.py), with the class's defaults."""

    model_type: Literal["gemma3n_audio"] | None = None
    hidden_size: Hidden = 1536
    input_feat_size: Annotated[int, Field(gt=0, le=1 << 12)] = 128
    vocab_size: Vocab = 128
    conf_num_hidden_layers: Layers = 12
    conf_num_attention_heads: Heads = 8
    conf_conv_kernel_size: Annotated[int, Field(gt=0, le=1024)] = 5
    conf_attention_chunk_size: Annotated[int, Field(gt=0, le=1 << 16)] = 12
    conf_attention_context_left: Annotated[int, Field(ge=0, le=1 << 16)] = 13
    conf_attention_context_right: Annotated[int, Field(ge=0, le=1 << 16)] = 0
    sscp_conv_channel_size: Annotated[
        list[Annotated[int, Field(gt=0, le=1 << 16)]], Field(min_length=2, max_length=2)
    ] = [
        128,
        32,
    ]
    sscp_conv_kernel_size: Annotated[list[Pair], Field(min_length=2, max_length=2)] = [[3, 3], [3, 3]]
    sscp_conv_stride_size: Annotated[list[Pair], Field(min_length=2, max_length=2)] = [[2, 2], [2, 2]]

    @model_validator(mode="before")
    @classmethod
    def _tensor_fields_only(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if k in cls.model_fields} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check(self) -> Gemma3nAudioConfig:
        if self.hidden_size % self.conf_num_attention_heads:
            raise ValueError(
                f"audio_config.hidden_size ({self.hidden_size}) is not a multiple of conf_num_attention_heads "
                f"({self.conf_num_attention_heads})"
            )
        if self.frequencies_out < 1:
            raise ValueError("audio_config: the subsampling convolutions leave no frequency bins")
        return self

    @property
    def frequencies_out(self) -> int:
        """Gemma3nAudioSubSampleConvProjection: per conv (f + 1 + 1 - kernel_w) // stride_w + 1 (padding 1 each side)."""
        f = self.input_feat_size
        for (_, kw), (_, sw) in zip(self.sscp_conv_kernel_size, self.sscp_conv_stride_size, strict=True):
            f = (f + 2 - kw) // sw + 1
        return f


class Gemma3nConfig(Strict):
    """Gemma3nConfig fields (configuration_gemma3n.py); absent sub-configs take their classes' defaults."""

    model_type: Literal["gemma3n"] | None = None
    text_config: Gemma3nTextConfig
    vision_config: Gemma3nVisionConfig = Gemma3nVisionConfig()
    audio_config: Gemma3nAudioConfig = Gemma3nAudioConfig()
    vision_soft_tokens_per_image: Annotated[int, Field(gt=0, le=1 << 16)] = 256
    audio_soft_tokens_per_image: Annotated[int, Field(gt=0, le=1 << 16)] = 188
    tie_word_embeddings: bool = True  # ties lm_head (the top-level flag, as for Gemma 4)


class Gemma3nSpec(ModelSpecBase):
    architecture: Literal["gemma3n"]
    config: Gemma3nConfig


SPECS: dict[str, type[ModelSpecBase]] = {"gemma3n_text": Gemma3nTextSpec, "gemma3n": Gemma3nSpec}
AnyGemma3n = Gemma3nTextSpec | Gemma3nSpec


def audio_tensors(a: Gemma3nAudioConfig, comp: str = "audio_tower") -> Iterator[Tensor]:
    """Gemma3nAudioEncoder in module order (modeling_gemma3n.py), every linear and conv bias-free."""
    h = a.hidden_size
    c0, c1 = a.sscp_conv_channel_size
    (k0h, k0w), (k1h, k1w) = a.sscp_conv_kernel_size
    yield Tensor("audio.sscp.conv0", comp, (c0, 1, k0h, k0w), "conv")
    yield Tensor("audio.sscp.norm0", comp, (c0,), "norm")
    yield Tensor("audio.sscp.conv1", comp, (c1, c0, k1h, k1w), "conv")
    yield Tensor("audio.sscp.norm1", comp, (c1,), "norm")
    yield from linear("audio.sscp.input_proj", comp, h, c1 * a.frequencies_out, "other", False, None)
    for i in range(a.conf_num_hidden_layers):
        p = f"audio.{i}"
        for ffw in ("ffw_start", "ffw_end"):
            yield from norm(f"{p}.{ffw}.pre_norm", comp, h, i)
            yield from linear(f"{p}.{ffw}.up", comp, 4 * h, h, "ffn_up", False, i)
            yield from linear(f"{p}.{ffw}.down", comp, h, 4 * h, "ffn_down", False, i)
            yield from norm(f"{p}.{ffw}.post_norm", comp, h, i)
        yield from norm(f"{p}.attn_pre_norm", comp, h, i)
        yield Tensor(f"{p}.attn.per_dim_scale", comp, (h // a.conf_num_attention_heads,), "other", i)
        yield from linear(f"{p}.attn_pos_proj", comp, h, h, "other", False, i)
        yield from linear(f"{p}.attn_q", comp, h, h, "attn_q", False, i)
        yield from linear(f"{p}.attn_k", comp, h, h, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", comp, h, h, "attn_v", False, i)
        yield from linear(f"{p}.attn_output", comp, h, h, "attn_output", False, i)
        yield from norm(f"{p}.attn_post_norm", comp, h, i)
        yield from norm(f"{p}.lconv.pre_norm", comp, h, i)
        yield from linear(f"{p}.lconv.start", comp, 2 * h, h, "other", False, i)
        yield Tensor(f"{p}.lconv.depthwise", comp, (h, 1, a.conf_conv_kernel_size), "conv", i)
        yield from norm(f"{p}.lconv.conv_norm", comp, h, i)
        yield from linear(f"{p}.lconv.end", comp, h, h, "other", False, i)
        yield from norm(f"{p}.norm", comp, h, i)


def embedder_tensors(name: str, vocab: int, width: int, text_hidden: int) -> Iterator[Tensor]:
    """Gemma3nMultimodalEmbedder: the hard-token embedding, its two norms, the projection (post norm: no weight)."""
    yield Tensor(f"projector.{name}.embedding", "projector", (vocab, width), "other")
    yield from norm(f"projector.{name}.hard_norm", "projector", width, None)
    yield from norm(f"projector.{name}.soft_norm", "projector", width, None)
    yield Tensor(f"projector.{name}.projection", "projector", (text_hidden, width), "projector")


def _altup_laurel(c: Gemma3nTextConfig, p: str, i: int) -> Iterator[Tensor]:
    h, a = c.hidden_size, c.altup_num_inputs
    yield Tensor(f"{p}.altup_correct_scale", "decoder", (h,), "other", i)
    yield from linear(f"{p}.altup_correct_coef", "decoder", a, a, "other", False, i)
    yield from linear(f"{p}.altup_predict_coef", "decoder", a * a, a, "other", False, i)
    yield from linear(f"{p}.altup_router", "decoder", a, h, "other", False, i)
    yield from norm(f"{p}.altup_router_norm", "decoder", h, i)
    yield from linear(f"{p}.laurel_l", "decoder", c.laurel_rank, h, "other", False, i)
    yield from linear(f"{p}.laurel_r", "decoder", h, c.laurel_rank, "other", False, i)
    yield from norm(f"{p}.laurel_post_norm", "decoder", h, i)


def _altup_projections(c: Gemma3nTextConfig) -> Iterable[Tensor]:
    for which in ("altup_proj", "altup_unembd_proj"):
        for k in range(1, c.altup_num_inputs):
            yield from linear(f"decoder.{which}.{k}", "decoder", c.hidden_size, c.hidden_size, "other", False, None)


def tensors(spec: AnyGemma3n) -> Iterator[Tensor]:
    if isinstance(spec, Gemma3nSpec):
        c = spec.config
        th = c.text_config.hidden_size
        yield from mnv5_tensors()
        yield from audio_tensors(c.audio_config)
        yield from embedder_tensors("vision", c.vision_config.vocab_size, c.vision_config.hidden_size, th)
        yield from embedder_tensors("audio", c.audio_config.vocab_size, c.audio_config.hidden_size, th)
        yield from text_tensors(c.text_config, c.tie_word_embeddings, _altup_laurel, _altup_projections(c.text_config))
        return
    t = spec.config
    yield from text_tensors(t, t.tie_word_embeddings, _altup_laurel, _altup_projections(t))


def geometry(spec: AnyGemma3n) -> Geometry:
    if isinstance(spec, Gemma3nSpec):
        return text_geometry(
            spec.config.text_config,
            spec.architecture,
            "gemma3n",
            tied_embeddings=spec.config.tie_word_embeddings,
            takes_images=True,
            no_cross_reason="Gemma 3n has no cross-attention: image and audio tokens sit in the self-attention context",
            # llama.cpp / ollama run the language model; its MobileNetV5 and audio towers are not sized there
            refusals={
                e: VISION_MMPROJ_REFUSAL.format(engine=e, model="Gemma 3n", text="gemma3n_text")
                for e in ("llama.cpp", "ollama")
            },
        )
    return text_geometry(spec.config, spec.architecture, "gemma3n")


def stages(spec: AnyGemma3n, context: int, source: int, images: int) -> list[Stage]:
    if not isinstance(spec, Gemma3nSpec):
        return [text_stage(spec.config, context)]
    # the Conformer over one 30 s clip, as memory's audio note says; the MobileNetV5's activations are not modelled
    return [text_stage(spec.config.text_config, context), audio_stage(spec.config.audio_config)]


# Gemma3nAudioFeatureExtractor (feature_extraction_gemma3n.py): at most 480,000 samples (30 s at 16 kHz) per clip,
# 32 ms frames every 10 ms: 2,997 mel frames, 750 after the subsampling's two time-stride-2 convolutions (measured with
# transformers 5.23's feature extractor), then every conf_reduction_factor-th (4) kept: 188 soft tokens
AUDIO_CLIP_SECONDS, AUDIO_CONFORMER_POSITIONS = 30, 750


def audio_tokens(spec: AnyGemma3n, seconds: int) -> int:
    """Gemma3nProcessor writes audio_soft_tokens_per_image (188) tokens for every clip, whatever its length
    (processing_gemma3n.py full_audio_sequence), a clip being at most 30 s: per started 30 s, 188; 0 for the text
    model. The begin- and end-of-audio tokens around each clip are text."""
    if not isinstance(spec, Gemma3nSpec):
        return 0
    return -(-seconds // AUDIO_CLIP_SECONDS) * spec.config.audio_soft_tokens_per_image


def audio_stage(a: Gemma3nAudioConfig) -> Stage:
    """The Conformer over one 30 s clip: chunked local attention in eager mode, each chunk's queries over
    chunk + context_left - 1 + context_right keys (Gemma3nAudioAttention.context_size)."""
    h = a.hidden_size
    keys = a.conf_attention_chunk_size + max(0, a.conf_attention_context_left - 1) + a.conf_attention_context_right
    return Stage(
        AUDIO_CONFORMER_POSITIONS,
        h,
        h,
        h,
        4 * h,
        False,
        a.conf_num_attention_heads,
        keys,
        eager_scores=True,
        per_input=True,
    )


def image_tokens(spec: AnyGemma3n, image_size: tuple[int, int] | None) -> int:
    """vision_soft_tokens_per_image (256): Gemma3nImageProcessor resizes every image to 768 x 768, whatever its size;
    the begin- and end-of-image tokens around them are text."""
    return spec.config.vision_soft_tokens_per_image if isinstance(spec, Gemma3nSpec) else 0


def cross_source_tokens(spec: AnyGemma3n, images: int, encoder_tokens: int) -> int:
    return 0


TEXT_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 262_400,
    "hidden_size": 2048,
    "num_hidden_layers": 35,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 32_768,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "sliding_window": 512,
    "vocab_size_per_layer_input": 262_144,
    "hidden_size_per_layer_input": 256,
    "num_kv_shared_layers": 15,
    "altup_num_inputs": 4,
    "laurel_rank": 64,
}

# Gemma3nForCausalLM's safetensors names (Gemma3nTextModel under `model.`)
WEIGHT_RULES = (
    (r"(?:model\.)?embed_tokens(?:_per_layer)?\.weight", "embeddings"),
    (
        r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight|per_layer_model_projection\.weight"
        r"|per_layer_projection_norm\.weight|altup_(?:unembed_)?projections\.\d+\.weight)",
        "decoder",
    ),
    (r"lm_head\.weight", "lm_head"),
)

TEXT_CONFIG = ConfigClass(
    "Gemma3nTextConfig",
    "gemma3n/configuration_gemma3n.py",
    Gemma3nTextConfig,
    TEXT_DEFAULTS,
    # filled by __post_init__: layer_types, and intermediate_size turned into one width per layer (the class
    # default 16384 becomes [16384] * 35, so it is the spec's default rather than a declared one)
    copied=("layer_types", "intermediate_size"),
)
MM_CONFIG = ConfigClass(
    "Gemma3nConfig",
    "gemma3n/configuration_gemma3n.py",
    Gemma3nConfig,
    {
        "text_config": TEXT_CONFIG,
        "vision_soft_tokens_per_image": 256,
        "audio_soft_tokens_per_image": 188,
        "tie_word_embeddings": True,
    },
    # kept as given (Gemma3nVisionConfig's / Gemma3nAudioConfig's own defaults fill what they omit)
    copied=("vision_config", "audio_config"),
)
# Gemma3nForConditionalGeneration's safetensors names (Gemma3nModel under `model.`; TimmWrapperModel keeps the
# MobileNetV5 as `timm_model`)
MM_WEIGHT_RULES = (
    (r"model\.language_model\.embed_tokens(?:_per_layer)?\.weight", "embeddings"),
    (r"model\.language_model\..+", "decoder"),
    (r"model\.vision_tower\..+", "vision_tower"),
    (r"model\.audio_tower\..+", "audio_tower"),
    (r"model\.embed_(?:vision|audio)\..+", "projector"),
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
    config_json={"gemma3n_text": TEXT_CONFIG, "gemma3n": MM_CONFIG},
    weight_rules={"gemma3n_text": WEIGHT_RULES, "gemma3n": MM_WEIGHT_RULES},
    audio_tokens=audio_tokens,
    # llama.cpp's LLM_ARCH_GEMMA3N (src/models/gemma3n.cpp load_arch_hparams): set_swa_pattern(5) unless the file
    # says otherwise, and `hparams.n_layer_kv_from_start = 20` whatever attention.shared_kv_layers says (E2B: 30
    # layers, 10 shared; E4B: 35, 15)
    gguf_architectures=("gemma3n",),
    gguf_rules={"gemma3n": GGUFRules(swa=swa_period(FULL_EVERY), kv_layers=20)},
)
