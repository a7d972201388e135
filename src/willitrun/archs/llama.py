"""Llama-shaped decoders (LlamaForCausalLM, MistralForCausalLM) and the machinery every
llama-like family reuses: one `DecoderConfig` base with the shared config.json fields, an
`Anatomy` naming what differs between families (biases, q/k norms, fused projections, extra norms),
and the tensor inventory, geometry and activation stages computed from the two.

A new llama-like family is one module: its config class (fields and defaults of its transformers
configuration class), its anatomy, its per-layer attention kinds, and its spec class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..records import model_validator
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
from .family import ConfigClass, Family, GGUFDecoder, GGUFMoe, GGUFRules, WeightRules

ARCHITECTURES = ("llama", "mistral")


@dataclass(frozen=True)
class Anatomy:
    """What a llama-like decoder layer holds beyond Llama's (transformers' modeling_<family>.py)."""

    qkv_bias: bool = False  # q/k/v projections have a bias (Qwen2)
    o_bias: bool = False  # the output projection has a bias
    qk_norm: bool = False  # per-head RMSNorm of queries and keys (Qwen3, Gemma 3)
    fused_qkv: bool = False  # one qkv_proj (Phi-3)
    fused_gate_up: bool = False  # one gate_up_proj (Phi-3)
    sandwich_norms: bool = False  # post-attention and pre/post-feedforward norms (Gemma 2, Gemma 3)
    norm_bias: bool = False  # LayerNorm with a bias instead of RMSNorm (StarCoder2)
    gated: bool = True  # gate and up (SwiGLU/GeGLU); False: c_fc and c_proj (StarCoder2)
    mlp_bias: bool = False
    parallel_block: bool = False  # one input norm for attention and MLP (Cohere)
    pre_norms: bool = True  # input_layernorm and the pre-MLP norm; False: only the sandwich's post norms (OLMo 2)
    qk_norm_full: bool = False  # the q/k norms span every head (q_norm over heads x head_dim: OLMo 2)
    qk_norm_bias: bool = False  # the q/k norms are LayerNorms with a bias (Phi)
    lm_head_bias: bool = False  # the LM head has a bias (Phi: lm_head = nn.Linear(..., bias=True))
    norm_weights: bool = True  # False: the layer norms hold no parameters (OLMo's OlmoLayerNorm)
    act_params: int = 0  # learnable scalars of the MLP's activation per layer (Apertus' xIELU: alpha_p, alpha_n)


class DecoderConfig(Strict):
    """Fields every llama-like config.json has (transformers PreTrainedConfig subclasses)."""

    vocab_size: Vocab
    hidden_size: Hidden
    intermediate_size: Intermediate
    num_hidden_layers: Layers
    num_attention_heads: Heads
    num_key_value_heads: Heads | None = None  # transformers: None -> num_attention_heads (MHA)
    head_dim: HeadDim | None = None  # transformers: None -> hidden_size // num_attention_heads
    max_position_embeddings: Positions
    tie_word_embeddings: bool = False
    # True where transformers itself builds hidden_size // num_attention_heads heads that do not divide the
    # width (GLM-4.5's default config: 4096 / 96 -> 42), so such a config is answered, not refused
    floor_head_dim: ClassVar[bool] = False

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy()

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        """Layer i's attention: full, or sliding / chunked over a window of N positions."""
        return "full", None

    @model_validator(mode="after")
    def _check_shape(self) -> DecoderConfig:
        check_heads(self.num_attention_heads, self.kv_heads, "")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads and not self.floor_head_dim:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); give head_dim explicitly"
            )
        return self


def check_layer_types(layer_types: Sequence[str] | None, layers: int) -> None:
    if layer_types is not None and len(layer_types) != layers:
        raise ValueError(f"layer_types has {len(layer_types)} entries for {layers} layers")


LayerType = Literal["full_attention", "sliding_attention"]


def layer_window(
    layer_types: Sequence[str] | None, i: int, rule: bool, window: int | None
) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
    """Layer i of a family with sliding-window layers: it slides over `window` positions when
    config.json's `layer_types[i]` is "sliding_attention", or, without layer_types, when the family's
    `rule` says so (what its config class's __post_init__ fills layer_types with); full without a window."""
    sliding = layer_types[i] == "sliding_attention" if layer_types is not None else rule
    return ("sliding", window) if sliding and window else ("full", None)


class LlamaConfig(DecoderConfig):
    """LlamaConfig / MistralConfig fields (transformers models/llama/configuration_llama.py)."""

    model_type: Literal["llama", "mistral"] | None = None  # present inside llava's text_config
    hidden_act: Literal["silu", "gelu", "gelu_pytorch_tanh", "relu"] = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    sliding_window: Positions | None = None  # Mistral 7B v0.1: 4096

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, mlp_bias=self.mlp_bias)

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        return ("sliding", self.sliding_window) if self.sliding_window else ("full", None)


class LlamaSpec(ModelSpecBase):
    architecture: Literal["llama", "mistral"]
    config: LlamaConfig

    @model_validator(mode="after")
    def _mistral_window_explicit(self) -> LlamaSpec:
        # transformers' MistralConfig defaults sliding_window to 4096 when the key is absent, while
        # null means no window: make the spec say which (Mistral 7B v0.1: 4096; v0.2: null).
        if self.architecture == "mistral" and "sliding_window" not in self.config.model_fields_set:
            raise ValueError("config.sliding_window: give it explicitly for mistral (null for no window)")
        return self


SPECS = {"llama": LlamaSpec, "mistral": LlamaSpec}


# --------------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------------
def attention_tensors(
    prefix: str,
    comp: str,
    i: int,
    *,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    bias: bool,
    o_bias: bool | None = None,
    fused: bool = False,
) -> Iterator[Tensor]:
    q, kv = heads * head_dim, kv_heads * head_dim
    if fused:
        yield from linear(f"{prefix}.attn_qkv", comp, q + 2 * kv, hidden, "attn_qkv", bias, i)
    else:
        yield from linear(f"{prefix}.attn_q", comp, q, hidden, "attn_q", bias, i)
        yield from linear(f"{prefix}.attn_k", comp, kv, hidden, "attn_k", bias, i)
        yield from linear(f"{prefix}.attn_v", comp, kv, hidden, "attn_v", bias, i)
    yield from linear(f"{prefix}.attn_output", comp, hidden, q, "attn_output", bias if o_bias is None else o_bias, i)


def gated_mlp(
    prefix: str, comp: str, hidden: int, inter: int, bias: bool, i: int, fused: bool = False
) -> Iterator[Tensor]:
    if fused:
        yield from linear(f"{prefix}.ffn_gate_up", comp, 2 * inter, hidden, "ffn_gate_up", bias, i)
    else:
        yield from linear(f"{prefix}.ffn_gate", comp, inter, hidden, "ffn_gate", bias, i)
        yield from linear(f"{prefix}.ffn_up", comp, inter, hidden, "ffn_up", bias, i)
    yield from linear(f"{prefix}.ffn_down", comp, hidden, inter, "ffn_down", bias, i)


def decoder_lm(c: DecoderConfig, tied: bool | None = None) -> Iterator[Tensor]:
    """A llama-like ...ForCausalLM: embed_tokens, layers (norms, q/k/v/o, MLP), norm, lm_head (absent
    when tied; `tied` overrides the config's flag for wrappers such as LLaVA). What a layer holds
    beyond Llama's comes from the config's Anatomy."""
    a = c.anatomy
    h, hd = c.hidden_size, c.head_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        if a.pre_norms and a.norm_weights:
            yield from norm(f"{p}.attn_norm", "decoder", h, i, a.norm_bias)
        yield from attention_tensors(
            p,
            "decoder",
            i,
            hidden=h,
            heads=c.num_attention_heads,
            kv_heads=c.kv_heads,
            head_dim=hd,
            bias=a.qkv_bias,
            o_bias=a.o_bias,
            fused=a.fused_qkv,
        )
        if a.qk_norm:
            yield from norm(
                f"{p}.attn_q_norm", "decoder", hd * (c.num_attention_heads if a.qk_norm_full else 1), i, a.qk_norm_bias
            )
            yield from norm(
                f"{p}.attn_k_norm", "decoder", hd * (c.kv_heads if a.qk_norm_full else 1), i, a.qk_norm_bias
            )
        if a.sandwich_norms:
            yield from norm(f"{p}.post_attention_norm", "decoder", h, i)
        if a.pre_norms and not a.parallel_block and a.norm_weights:
            yield from norm(f"{p}.ffn_norm", "decoder", h, i, a.norm_bias)
        if a.gated:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size, a.mlp_bias, i, a.fused_gate_up)
        else:
            yield from linear(f"{p}.ffn_up", "decoder", c.intermediate_size, h, "ffn_up", a.mlp_bias, i)
            yield from linear(f"{p}.ffn_down", "decoder", h, c.intermediate_size, "ffn_down", a.mlp_bias, i)
        for k in range(a.act_params):
            yield Tensor(f"{p}.ffn_act.{k}", "decoder", (1,), "other", i)
        if a.sandwich_norms:
            yield from norm(f"{p}.post_ffw_norm", "decoder", h, i)
    if a.norm_weights:
        yield from norm("decoder.output_norm", "decoder", h, None, a.norm_bias)
    if not (c.tie_word_embeddings if tied is None else tied):
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")
    if a.lm_head_bias:  # its own even when the weight is tied to the embedding
        yield Tensor("output.bias", "lm_head", (c.vocab_size,), "bias")


llama_lm = decoder_lm  # the name tensors.py exported


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    return decoder_lm(spec.config)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
def self_kv(c: DecoderConfig) -> tuple[LayerKV, ...]:
    out = []
    for i in range(c.num_hidden_layers):
        kind, window = c.layer_kind(i)
        out.append(LayerKV(kind, c.kv_heads, c.head_size, c.head_size, window))
    return tuple(out)


def lm_tp_constraints(c: DecoderConfig) -> tuple[tuple[str, int, bool], ...]:
    """vLLM shards every attention's query heads and every MLP's width (`divide()` in
    vllm/model_executor/layers/linear.py); KV heads may instead be replicated."""
    return (
        ("attention heads", c.num_attention_heads, False),
        ("KV heads", c.kv_heads, True),
        ("intermediate_size", c.intermediate_size, False),
    )


def decoder_geometry(c: DecoderConfig, architecture: str, **extra: object) -> Geometry:
    n_gqa = c.num_attention_heads // c.kv_heads
    layers = self_kv(c)
    fields: dict[str, object] = dict(  # noqa: C408 (keyword form mirrors the Geometry fields)
        architecture=architecture,
        self_kv=layers,
        cross_kv=(None,) * len(layers),
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        context_window=c.max_position_embeddings,
        tp_constraints=lm_tp_constraints(c),
        tp_kv_heads=c.kv_heads,
        no_cross_reason="decoder-only: no cross-attention",
        gguf_n_gqa=n_gqa,
        # llama-model.cpp: 80 layers with GQA is LLM_TYPE_70B (80 layers with MHA is 65B).
        gguf_70b=c.num_hidden_layers == 80 and n_gqa > 1,
    )
    fields.update(extra)
    return Geometry(**fields)  # type: ignore[arg-type]


def geometry(spec: ModelSpecBase) -> Geometry:
    return decoder_geometry(spec.config, spec.architecture)  # type: ignore[attr-defined]


def lm_stage(c: DecoderConfig, context: int) -> Stage:
    return Stage(
        context,
        c.hidden_size,
        c.num_attention_heads * c.head_size,
        c.kv_heads * c.head_size,
        c.intermediate_size,
        c.anatomy.gated,
        c.num_attention_heads,
        context,
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return [lm_stage(spec.config, context)]  # type: ignore[attr-defined]


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


__all__ = ["ARCHITECTURES", "SPECS", "Anatomy", "DecoderConfig", "LlamaConfig", "LlamaSpec"]


# The safetensors names of a ...ForCausalLM built on LlamaModel's layout (modeling_llama.py): model.embed_tokens,
# model.layers.N, model.norm, lm_head.
LM_WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)
# Jamba's and Falcon-H1's final norm is final_layernorm (JambaModel, FalconH1Model), otherwise Llama's names.
LM_FINAL_LAYERNORM_WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?embed_tokens\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|final_layernorm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)
# Tensor names in both layouts: as checkpoints store them (`language_model.model.layers...`,
# `vision_tower...`; transformers 5.23 still saves these) and as transformers 5 names its modules
# (`model.language_model.layers...`, `model.vision_tower...`).
VLM_TEXT_WEIGHT_RULES: WeightRules = (
    (r"(?:model\.language_model\.|language_model\.model\.)embed_tokens\.weight", "embeddings"),
    (r"(?:model\.language_model\.|language_model\.model\.)(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"(?:language_model\.)?lm_head\.weight", "lm_head"),
)
# LLaVA's towers (LLaVA-NeXT, LLaVA-OneVision, Gemma 3, PaliGemma and Mistral 3 store and name theirs the same way:
# vision_tower.*, multi_modal_projector.* (Gemma 3's mm_input_projection_weight included), image_newline)
LLAVA_WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?vision_tower\..+", "vision_tower"),
    (r"(?:model\.)?(?:multi_modal_projector\..+|image_newline)", "projector"),
    *VLM_TEXT_WEIGHT_RULES,
)
# the config.json keys transformers' classes read and their defaults (moved from importers/configs.py)
LLAMA = ConfigClass(
    "LlamaConfig",
    "llama/configuration_llama.py",
    LlamaConfig,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "head_dim": None,
        "max_position_embeddings": 2048,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
    },
)
MISTRAL = ConfigClass(
    "MistralConfig",
    "mistral/configuration_mistral.py",
    LlamaConfig,
    {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "max_position_embeddings": 4096 * 32,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "sliding_window": 4096,
    },
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"llama": LLAMA, "mistral": MISTRAL},
    weight_rules=dict.fromkeys(ARCHITECTURES, LM_WEIGHT_RULES),
    gguf_architectures=("llama",),
    gguf_rules={
        "llama": GGUFRules(
            decoder=GGUFDecoder(
                "llama", flags={"attention_bias": "blk.0.attn_q.bias", "mlp_bias": "blk.0.ffn_up.bias"}
            ),
            # Mixtral files say llama with llama.expert_count > 0 (convert_hf_to_gguf.py MixtralModel is a LlamaModel)
            moe=GGUFMoe("mixtral", "num_local_experts", expert_width_is_ffn=True, fixed={"sliding_window": None}),
        )
    },
)
