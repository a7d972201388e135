"""OPT (OPTForCausalLM): learned absolute positions with an offset of 2 (`embed_positions`,
max_position_embeddings + 2 rows: a hard limit on the context), token embeddings of `word_embed_proj_dim`
projected in and out of hidden_size when the two differ (project_in, project_out; OPT-350m), q/k/v/out
projections and a plain MLP (fc1 of ffn_dim, fc2) biased when `enable_bias`, LayerNorms
(self_attn_layer_norm, final_layer_norm per layer) holding a weight and a bias unless
`layer_norm_elementwise_affine` is false, a final LayerNorm only when `do_layer_norm_before`, and the LM
head (vocab x word_embed_proj_dim) tied to embed_tokens by default (transformers models/opt/modeling_opt.py:
OPTLearnedPositionalEmbedding, OPTAttention, OPTDecoderLayer, OPTDecoder, OPTForCausalLM).
config.json names the feed-forward width `ffn_dim`; the spec reads it as the decoder's intermediate_size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import Geometry, Hidden, Intermediate, Tensor, linear, norm
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig

# llama.cpp's convert_hf_to_gguf.py registers no OPTForCausalLM and llama-arch.cpp has no OPT architecture
NO_GGUF = "llama.cpp has no OPT architecture (convert_hf_to_gguf.py cannot convert OPTForCausalLM)"
POSITION_OFFSET = 2  # OPTLearnedPositionalEmbedding: num_embeddings + 2


class OptConfig(DecoderConfig):
    """OPTConfig fields (transformers models/opt/configuration_opt.py)."""

    model_type: Literal["opt"] | None = None
    ffn_dim: Intermediate | None = None  # read as intermediate_size
    word_embed_proj_dim: Hidden | None = None  # null: hidden_size (OPTConfig.__post_init__)
    do_layer_norm_before: bool = True
    enable_bias: bool = True
    layer_norm_elementwise_affine: bool = True
    tie_word_embeddings: bool = True

    @model_validator(mode="before")
    @classmethod
    def _ffn_dim(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("ffn_dim") is not None:
            data = dict(data)
            if data.setdefault("intermediate_size", data["ffn_dim"]) != data["ffn_dim"]:
                raise ValueError(
                    f"ffn_dim ({data['ffn_dim']}) and intermediate_size ({data['intermediate_size']}) differ"
                )
        return data

    @model_validator(mode="after")
    def _mha(self) -> OptConfig:
        if self.num_key_value_heads not in (None, self.num_attention_heads) or self.head_dim not in (
            None,
            self.hidden_size // self.num_attention_heads,
        ):
            raise ValueError("OPT has neither grouped-query attention nor an explicit head_dim")
        return self

    @property
    def embed_width(self) -> int:
        return self.word_embed_proj_dim or self.hidden_size

    @property
    def anatomy(self) -> Anatomy:
        b = self.enable_bias
        return Anatomy(qkv_bias=b, o_bias=b, norm_bias=True, gated=False, mlp_bias=b)


class OptSpec(DecoderSpec):
    architecture: Literal["opt"]
    config: OptConfig


def _tensors(spec: OptSpec) -> Iterator[Tensor]:
    c = spec.config
    h, e, comp = c.hidden_size, c.embed_width, "decoder"
    affine = c.layer_norm_elementwise_affine
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, e), "token_embd")
    yield Tensor("position_embd.weight", "embeddings", (c.max_position_embeddings + POSITION_OFFSET, h), "pos_embd")
    if e != h:
        yield Tensor("decoder.project_out.weight", comp, (e, h), "other")
        yield Tensor("decoder.project_in.weight", comp, (h, e), "other")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        if affine:
            yield from norm(f"{p}.attn_norm", comp, h, i, True)
        yield from llama.attention_tensors(
            p,
            comp,
            i,
            hidden=h,
            heads=c.num_attention_heads,
            kv_heads=c.kv_heads,
            head_dim=c.head_size,
            bias=c.enable_bias,
        )
        if affine:
            yield from norm(f"{p}.ffn_norm", comp, h, i, True)
        yield from linear(f"{p}.ffn_up", comp, c.intermediate_size, h, "ffn_up", c.enable_bias, i)
        yield from linear(f"{p}.ffn_down", comp, h, c.intermediate_size, "ffn_down", c.enable_bias, i)
    if c.do_layer_norm_before and affine:
        yield from norm("decoder.output_norm", comp, h, None, True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, e), "output")


def _geometry(spec: OptSpec) -> Geometry:
    c = spec.config
    return replace(
        llama.decoder_geometry(c, spec.architecture),
        hard_limit=c.max_position_embeddings,
        refusals={"llama.cpp": NO_GGUF, "ollama": NO_GGUF},
    )


# OPTForCausalLM: model.decoder.{embed_tokens, embed_positions, project_in, project_out, layers.N, final_layer_norm}
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?(?:decoder\.)?embed_(?:tokens|positions)\.weight", "embeddings"),
    (
        r"(?:model\.)?(?:decoder\.)?(?:layers\.\d+\..+|final_layer_norm\.(?:weight|bias)|project_(?:in|out)\.weight)",
        "decoder",
    ),
    (r"lm_head\.weight", "lm_head"),
)


FAMILY = decoder_family(
    __name__,
    "opt",
    OptSpec,
    ConfigClass(
        "OPTConfig",
        "opt/configuration_opt.py",
        OptConfig,
        {
            "vocab_size": 50272,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "ffn_dim": 3072,
            "max_position_embeddings": 2048,
            "do_layer_norm_before": True,
            "num_attention_heads": 12,
            "enable_bias": True,
            "layer_norm_elementwise_affine": True,
            "tie_word_embeddings": True,
        },
        copied=("word_embed_proj_dim",),  # null: hidden_size, which OPTConfig.__post_init__ writes in
    ),
    gguf=(),  # llama.cpp's convert_hf_to_gguf.py has no OPTForCausalLM
    tensors=_tensors,
    geometry=_geometry,
    weight_rules=WEIGHT_RULES,
)
