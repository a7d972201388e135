"""The weight tensors of each architecture, derived from its config.

Each function lists the tensors Hugging Face transformers creates for the model class named in its
docstring, with their shapes, in the order of the module tree. Parameter counts, weight bytes per
storage type and the GGUF quantization mixes are all computed from this one inventory, and
tests/reference checks the counts against transformers itself (meta device, no download).

Tensors shared between modules (tied embeddings) appear once. Linear weights are (out, in): the
row length ggml's block types must divide is the last dimension.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from typing import Literal

from .specs import LlamaConfig, LlamaSpec, LlavaSpec, MllamaSpec, T5Spec, WhisperSpec

Role = Literal[
    "token_embd", "output", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
    "norm", "bias", "pos_embd", "rel_bias", "conv", "projector", "other",
]
LINEAR_ROLES = frozenset({"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "projector"})


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


def _linear(name: str, comp: str, out: int, inp: int, role: Role, bias: bool, layer: int | None) -> Iterator[Tensor]:
    yield Tensor(f"{name}.weight", comp, (out, inp), role, layer)
    if bias:
        yield Tensor(f"{name}.bias", comp, (out,), "bias", layer)


def _norm(name: str, comp: str, width: int, layer: int | None, bias: bool = False) -> Iterator[Tensor]:
    """RMSNorm has a weight; LayerNorm a weight and a bias."""
    yield Tensor(f"{name}.weight", comp, (width,), "norm", layer)
    if bias:
        yield Tensor(f"{name}.bias", comp, (width,), "norm", layer)


# --------------------------------------------------------------------------------------------------
# Llama / Mistral decoder (LlamaForCausalLM, MistralForCausalLM)
# --------------------------------------------------------------------------------------------------
def _llama_attention(prefix: str, comp: str, c: LlamaConfig | object, i: int, *, hidden: int, heads: int,
                     kv_heads: int, head_dim: int, bias: bool) -> Iterator[Tensor]:
    yield from _linear(f"{prefix}.attn_q", comp, heads * head_dim, hidden, "attn_q", bias, i)
    yield from _linear(f"{prefix}.attn_k", comp, kv_heads * head_dim, hidden, "attn_k", bias, i)
    yield from _linear(f"{prefix}.attn_v", comp, kv_heads * head_dim, hidden, "attn_v", bias, i)
    yield from _linear(f"{prefix}.attn_output", comp, hidden, heads * head_dim, "attn_output", bias, i)


def _gated_mlp(prefix: str, comp: str, hidden: int, inter: int, bias: bool, i: int) -> Iterator[Tensor]:
    yield from _linear(f"{prefix}.ffn_gate", comp, inter, hidden, "ffn_gate", bias, i)
    yield from _linear(f"{prefix}.ffn_up", comp, inter, hidden, "ffn_up", bias, i)
    yield from _linear(f"{prefix}.ffn_down", comp, hidden, inter, "ffn_down", bias, i)


def llama_lm(c: LlamaConfig, tied: bool | None = None) -> Iterator[Tensor]:
    """LlamaForCausalLM / MistralForCausalLM: embed_tokens, layers (RMSNorm, q/k/v/o, gated MLP), norm, lm_head
    (absent when tied; `tied` overrides the config's flag for wrappers such as LLaVA)."""
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from _norm(f"{p}.attn_norm", "decoder", h, i)
        yield from _llama_attention(p, "decoder", c, i, hidden=h, heads=c.num_attention_heads,
                                    kv_heads=c.kv_heads, head_dim=c.head_size, bias=c.attention_bias)
        yield from _norm(f"{p}.ffn_norm", "decoder", h, i)
        yield from _gated_mlp(p, "decoder", h, c.intermediate_size, c.mlp_bias, i)
    yield from _norm("decoder.output_norm", "decoder", h, None)
    if not (c.tie_word_embeddings if tied is None else tied):
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


# --------------------------------------------------------------------------------------------------
# T5 (T5ForConditionalGeneration)
# --------------------------------------------------------------------------------------------------
def t5(spec: T5Spec) -> Iterator[Tensor]:
    """T5ForConditionalGeneration: `shared` embedding (used by encoder and decoder), encoder blocks
    (self-attention, FF), decoder blocks (self-attention, cross-attention, FF), lm_head unless tied.
    Attention projections have no bias; the relative position bias table (buckets x heads) exists
    only in the first block of each stack; T5's LayerNorm is weight-only."""
    c = spec.config
    d, inner = c.d_model, c.num_heads * c.d_kv
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, d), "token_embd")

    def attention(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from _linear(f"{prefix}.attn_q", comp, inner, d, "attn_q", False, i)
        yield from _linear(f"{prefix}.attn_k", comp, inner, d, "attn_k", False, i)
        yield from _linear(f"{prefix}.attn_v", comp, inner, d, "attn_v", False, i)
        yield from _linear(f"{prefix}.attn_output", comp, d, inner, "attn_output", False, i)

    def feed_forward(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from _norm(f"{prefix}.ffn_norm", comp, d, i)
        if c.gated:
            yield from _linear(f"{prefix}.ffn_gate", comp, c.d_ff, d, "ffn_gate", False, i)
        yield from _linear(f"{prefix}.ffn_up", comp, c.d_ff, d, "ffn_up", False, i)
        yield from _linear(f"{prefix}.ffn_down", comp, d, c.d_ff, "ffn_down", False, i)

    for stack, layers in (("encoder", c.num_layers), ("decoder", c.decoder_layers)):
        for i in range(layers):
            p = f"{stack}.{i}"
            yield from _norm(f"{p}.attn_norm", stack, d, i)
            yield from attention(p, stack, i)
            if i == 0:
                yield Tensor(f"{p}.attn_rel_b.weight", stack, (c.relative_attention_num_buckets, c.num_heads),
                             "rel_bias", i)
            if stack == "decoder":
                yield from _norm(f"{p}.cross_attn_norm", stack, d, i)
                yield from attention(f"{p}.cross", stack, i)
            yield from feed_forward(p, stack, i)
        yield from _norm(f"{stack}.output_norm", stack, d, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, d), "output")


# --------------------------------------------------------------------------------------------------
# Whisper (WhisperForConditionalGeneration)
# --------------------------------------------------------------------------------------------------
def whisper(spec: WhisperSpec) -> Iterator[Tensor]:
    """WhisperForConditionalGeneration: encoder (conv1 k=3 over mel bins, conv2 k=3 stride 2,
    1500 positional rows, pre-LN layers), decoder (token embedding, 448 learned positions, layers
    with self- and cross-attention), proj_out tied to the decoder token embedding.
    Attention: q, v, out_proj have a bias, k_proj has none (WhisperAttention)."""
    c = spec.config
    d = c.d_model

    def attention(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from _linear(f"{prefix}.attn_k", comp, d, d, "attn_k", False, i)
        yield from _linear(f"{prefix}.attn_v", comp, d, d, "attn_v", True, i)
        yield from _linear(f"{prefix}.attn_q", comp, d, d, "attn_q", True, i)
        yield from _linear(f"{prefix}.attn_output", comp, d, d, "attn_output", True, i)

    def layer(stack: str, i: int, ffn: int, cross: bool) -> Iterator[Tensor]:
        p = f"{stack}.{i}"
        yield from attention(p, stack, i)
        yield from _norm(f"{p}.attn_norm", stack, d, i, bias=True)
        if cross:
            yield from attention(f"{p}.cross", stack, i)
            yield from _norm(f"{p}.cross_attn_norm", stack, d, i, bias=True)
        yield from _linear(f"{p}.ffn_up", stack, ffn, d, "ffn_up", True, i)
        yield from _linear(f"{p}.ffn_down", stack, d, ffn, "ffn_down", True, i)
        yield from _norm(f"{p}.ffn_norm", stack, d, i, bias=True)

    yield Tensor("encoder.conv1.weight", "encoder", (d, c.num_mel_bins, 3), "conv")
    yield Tensor("encoder.conv1.bias", "encoder", (d,), "bias")
    yield Tensor("encoder.conv2.weight", "encoder", (d, d, 3), "conv")
    yield Tensor("encoder.conv2.bias", "encoder", (d,), "bias")
    yield Tensor("encoder.position_embd.weight", "encoder", (c.max_source_positions, d), "pos_embd")
    for i in range(c.encoder_layers):
        yield from layer("encoder", i, c.encoder_ffn_dim, cross=False)
    yield from _norm("encoder.output_norm", "encoder", d, None, bias=True)

    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, d), "token_embd")
    yield Tensor("decoder.position_embd.weight", "decoder", (c.max_target_positions, d), "pos_embd")
    for i in range(c.decoder_layers):
        yield from layer("decoder", i, c.decoder_ffn_dim, cross=True)
    yield from _norm("decoder.output_norm", "decoder", d, None, bias=True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, d), "output")


# --------------------------------------------------------------------------------------------------
# LLaVA 1.5 / LLaVA-NeXT (LlavaForConditionalGeneration, LlavaNextForConditionalGeneration)
# --------------------------------------------------------------------------------------------------
def llava(spec: LlavaSpec) -> Iterator[Tensor]:
    """CLIP vision tower (CLIPVisionModel: class embedding, patch conv without bias, positions for
    patches + CLS, pre-LN, layers with biased q/k/v/o and fc1/fc2, post-LN), the two-layer MLP
    projector, LLaVA-NeXT's image_newline vector, then the Llama/Mistral language model."""
    c, v = spec.config, spec.config.vision_config
    h, comp = v.hidden_size, "vision_tower"
    yield Tensor("vision.class_embd", comp, (h,), "other")
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield Tensor("vision.position_embd.weight", comp, (v.patches + 1, h), "pos_embd")
    yield from _norm("vision.pre_ln", comp, h, None, bias=True)
    for i in range(v.num_hidden_layers):
        p = f"vision.{i}"
        yield from _linear(f"{p}.attn_k", comp, h, h, "attn_k", True, i)
        yield from _linear(f"{p}.attn_v", comp, h, h, "attn_v", True, i)
        yield from _linear(f"{p}.attn_q", comp, h, h, "attn_q", True, i)
        yield from _linear(f"{p}.attn_output", comp, h, h, "attn_output", True, i)
        yield from _norm(f"{p}.ln1", comp, h, i, bias=True)
        yield from _linear(f"{p}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
        yield from _linear(f"{p}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
        yield from _norm(f"{p}.ln2", comp, h, i, bias=True)
    yield from _norm("vision.post_ln", comp, h, None, bias=True)

    t = c.text_config
    feature_layers = len(c.vision_feature_layer) if isinstance(c.vision_feature_layer, list) else 1
    bias = c.multimodal_projector_bias
    yield from _linear("projector.linear_1", "projector", t.hidden_size, h * feature_layers, "projector", bias, None)
    yield from _linear("projector.linear_2", "projector", t.hidden_size, t.hidden_size, "projector", bias, None)
    if spec.architecture == "llava_next":
        yield Tensor("projector.image_newline", "projector", (t.hidden_size,), "other")
    # transformers ties LLaVA's lm_head when either the top-level or the text config says so
    yield from llama_lm(t, tied=c.tie_word_embeddings or t.tie_word_embeddings)


# --------------------------------------------------------------------------------------------------
# Llama 3.2 Vision (MllamaForConditionalGeneration)
# --------------------------------------------------------------------------------------------------
def mllama(spec: MllamaSpec) -> Iterator[Tensor]:
    """MllamaVisionModel (patch conv, class embedding, gated tile/position embeddings, a local
    encoder and a gated global encoder), the linear projector, and the text model whose
    cross-attention layers (q/k norms, tanh gates) sit at `cross_attention_layers`. The text
    embedding has vocab_size + 8 rows (MllamaTextModel: extra image tokens); lm_head has vocab_size."""
    c = spec.config
    v, t = c.vision_config, c.text_config
    h, comp = v.hidden_size, "vision_tower"
    ratios = len(v.supported_aspect_ratios) + 1  # max_aspect_ratio_id + 1 rows
    p = v.positions_per_tile
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield Tensor("vision.class_embd", comp, (h,), "other")
    yield Tensor("vision.gated_position_embd.gate", comp, (1,), "other")
    yield Tensor("vision.gated_position_embd.embedding", comp, (p, h), "pos_embd")
    yield Tensor("vision.gated_position_embd.tile_embedding", comp, (ratios, v.max_num_tiles * p * h), "pos_embd")
    for name in ("pre_tile_position_embd", "post_tile_position_embd"):
        yield Tensor(f"vision.{name}.embedding", comp, (ratios, v.max_num_tiles * h), "pos_embd")
        yield Tensor(f"vision.{name}.gate", comp, (1,), "other")
    yield from _norm("vision.ln_pre", comp, h, None, bias=True)
    yield from _norm("vision.ln_post", comp, h, None, bias=True)
    for stack, layers, gated in (("local", v.num_hidden_layers, False), ("global", v.num_global_layers, True)):
        for i in range(layers):
            q = f"vision.{stack}.{i}"
            for role in ("attn_q", "attn_k", "attn_v", "attn_output"):
                yield from _linear(f"{q}.{role}", comp, h, h, role, False, i)  # type: ignore[arg-type]
            yield from _linear(f"{q}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
            yield from _linear(f"{q}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
            yield from _norm(f"{q}.ln1", comp, h, i, bias=True)
            yield from _norm(f"{q}.ln2", comp, h, i, bias=True)
            if gated:
                yield Tensor(f"{q}.gate_attn", comp, (1,), "other", i)
                yield Tensor(f"{q}.gate_ffn", comp, (1,), "other", i)

    yield from _linear("projector", "projector", t.hidden_size, v.vision_output_dim, "projector", True, None)

    th, hd = t.hidden_size, t.head_size
    yield Tensor("token_embd.weight", "embeddings", (t.vocab_size + 8, th), "token_embd")
    cross = set(t.cross_attention_layers)
    for i in range(t.num_hidden_layers):
        q = f"decoder.{i}"
        if i in cross:
            q = f"{q}.cross"
            yield from _llama_attention(q, "decoder", t, i, hidden=th, heads=t.num_attention_heads,
                                        kv_heads=t.kv_heads, head_dim=hd, bias=False)
            yield from _norm(f"{q}.q_norm", "decoder", hd, i)
            yield from _norm(f"{q}.k_norm", "decoder", hd, i)
            yield Tensor(f"{q}.attn_gate", "decoder", (1,), "other", i)
            yield Tensor(f"{q}.mlp_gate", "decoder", (1,), "other", i)
        else:
            yield from _llama_attention(q, "decoder", t, i, hidden=th, heads=t.num_attention_heads,
                                        kv_heads=t.kv_heads, head_dim=hd, bias=False)
        yield from _norm(f"{q}.attn_norm", "decoder", th, i)
        yield from _gated_mlp(q, "decoder", th, t.intermediate_size, False, i)
        yield from _norm(f"{q}.ffn_norm", "decoder", th, i)
    yield from _norm("decoder.output_norm", "decoder", th, None)
    # MllamaForConditionalGeneration never ties: its embedding has vocab_size + 8 rows, lm_head vocab_size
    yield Tensor("output.weight", "lm_head", (t.vocab_size, th), "output")


def model_tensors(spec: LlamaSpec | T5Spec | WhisperSpec | LlavaSpec | MllamaSpec) -> list[Tensor]:
    """Every weight tensor of the model, tied tensors once, in module order."""
    if isinstance(spec, LlamaSpec):
        return list(llama_lm(spec.config))
    if isinstance(spec, T5Spec):
        return list(t5(spec))
    if isinstance(spec, WhisperSpec):
        return list(whisper(spec))
    if isinstance(spec, LlavaSpec):
        return list(llava(spec))
    return list(mllama(spec))
