"""BART-shaped encoder-decoders (BartForConditionalGeneration, MBartForConditionalGeneration,
M2M100ForConditionalGeneration for M2M-100 and NLLB, MarianMTModel, PegasusForConditionalGeneration):
a shared token embedding, an encoder, and a decoder whose every layer cross-attends to the encoder
output (its K/V cached once per source token, reused at every step).

The five differ only in positions and extra norms (transformers 5.23 modeling_<family>.py):

| family  | positions                                    | layernorm_embedding | final layer_norm |
|---------|----------------------------------------------|---------------------|------------------|
| bart    | learned, max_position_embeddings + 2 rows     | yes                 | no               |
| mbart   | learned, max_position_embeddings + 2 rows     | yes                 | yes              |
| m2m_100 | sinusoidal, computed (no weights)            | no                  | yes              |
| marian  | sinusoidal, stored as max_position_embeddings | no                  | no               |
| pegasus | sinusoidal, stored as max_position_embeddings | no                  | yes              |

Every linear layer has a bias; every norm is a LayerNorm (weight and bias); `final_logits_bias` is a
buffer, not a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ..records import model_validator
from .base import (
    Geometry,
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
    linear,
    norm,
)
from .family import BUFFER, ConfigClass, Family, WeightRules

ARCHITECTURES = ("bart", "mbart", "m2m_100", "marian", "pegasus")
LEARNED_POSITION_OFFSET = 2  # BartLearnedPositionalEmbedding / MBartLearnedPositionalEmbedding: offset = 2


class BartConfig(Strict):
    """BartConfig / MBartConfig / M2M100Config / MarianConfig / PegasusConfig fields (same names)."""

    vocab_size: Vocab
    d_model: Hidden
    encoder_layers: Layers
    decoder_layers: Layers
    encoder_attention_heads: Heads
    decoder_attention_heads: Heads
    encoder_ffn_dim: Intermediate
    decoder_ffn_dim: Intermediate
    max_position_embeddings: Positions
    activation_function: Literal["gelu", "relu", "swish", "silu", "gelu_new"] = "gelu"
    scale_embedding: bool = False
    tie_word_embeddings: bool = True
    # MarianConfig: a separate decoder vocabulary when not shared (not modelled: refused below)
    share_encoder_decoder_embeddings: bool = True
    decoder_vocab_size: Vocab | None = None

    @model_validator(mode="after")
    def _check(self) -> BartConfig:
        if not self.share_encoder_decoder_embeddings or self.decoder_vocab_size not in (None, self.vocab_size):
            raise ValueError("Marian with separate encoder and decoder vocabularies is not modelled")
        for heads in (self.encoder_attention_heads, self.decoder_attention_heads):
            if self.d_model % heads:
                raise ValueError(f"d_model ({self.d_model}) is not a multiple of the attention heads ({heads})")
        return self


class BartSpec(ModelSpecBase):
    architecture: Literal["bart", "mbart", "m2m_100", "marian", "pegasus"]
    config: BartConfig


SPECS = dict.fromkeys(ARCHITECTURES, BartSpec)
_LEARNED = ("bart", "mbart")
_STORED_SINUSOIDS = ("marian", "pegasus")
_EMBEDDING_NORM = ("bart", "mbart")
_FINAL_NORM = ("mbart", "m2m_100", "pegasus")
_NAMES = {"bart": "BART", "mbart": "mBART", "m2m_100": "M2M-100/NLLB", "marian": "Marian", "pegasus": "Pegasus"}


def tensors(spec: BartSpec) -> Iterator[Tensor]:
    yield from bart_tensors(spec.config, spec.architecture)


def bart_tensors(c: BartConfig, arch: str, encoder: bool = True) -> Iterator[Tensor]:
    """The BART-shaped model of `arch` (Florence-2's language model is a `bart` one); `encoder` False: the
    decoder alone, as MBartForCausalLM / BartForCausalLM hold it (a vision encoder-decoder's decoder)."""
    d = c.d_model
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, d), "token_embd")

    def attention(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        for role in ("attn_k", "attn_v", "attn_q", "attn_output"):
            yield from linear(f"{prefix}.{role}", comp, d, d, role, True, i)

    stacks = (("encoder", c.encoder_layers, c.encoder_ffn_dim),) if encoder else ()
    for stack, layers, ffn in (*stacks, ("decoder", c.decoder_layers, c.decoder_ffn_dim)):
        if arch in _LEARNED:
            yield Tensor(
                f"{stack}.position_embd.weight",
                stack,
                (c.max_position_embeddings + LEARNED_POSITION_OFFSET, d),
                "pos_embd",
            )
        elif arch in _STORED_SINUSOIDS:
            yield Tensor(f"{stack}.position_embd.weight", stack, (c.max_position_embeddings, d), "pos_embd")
        for i in range(layers):
            p = f"{stack}.{i}"
            yield from attention(f"{p}.self", stack, i)
            yield from norm(f"{p}.attn_norm", stack, d, i, bias=True)
            if stack == "decoder":
                yield from attention(f"{p}.cross", stack, i)
                yield from norm(f"{p}.cross_attn_norm", stack, d, i, bias=True)
            yield from linear(f"{p}.ffn_up", stack, ffn, d, "ffn_up", True, i)
            yield from linear(f"{p}.ffn_down", stack, d, ffn, "ffn_down", True, i)
            yield from norm(f"{p}.ffn_norm", stack, d, i, bias=True)
        if arch in _EMBEDDING_NORM:
            yield from norm(f"{stack}.embd_norm", stack, d, None, bias=True)
        if arch in _FINAL_NORM:
            yield from norm(f"{stack}.output_norm", stack, d, None, bias=True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, d), "output")


def geometry(spec: BartSpec) -> Geometry:
    c, arch = spec.config, spec.architecture
    heads = c.decoder_attention_heads
    head_dim = c.d_model // heads
    n = c.decoder_layers
    # Learned or stored position tables end at max_position_embeddings: a hard limit. M2M-100's
    # sinusoids are computed and extended on demand (M2M100SinusoidalPositionalEmbedding), so its
    # max_position_embeddings is the trained window only.
    learned = arch != "m2m_100"
    name = _NAMES[arch]
    return Geometry(
        architecture=arch,
        self_kv=(LayerKV("full", heads, head_dim, head_dim),) * n,
        cross_kv=(LayerKV("cross", heads, head_dim, head_dim),) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.d_model,
        num_attention_heads=heads,
        intermediate_size=c.decoder_ffn_dim,
        context_window=c.max_position_embeddings,
        hard_limit=c.max_position_embeddings if learned else None,
        tp_constraints=(
            ("decoder attention heads", heads, False),
            ("encoder attention heads", c.encoder_attention_heads, False),
            ("decoder_ffn_dim", c.decoder_ffn_dim, False),
        ),
        tp_kv_heads=heads,
        cross_source="encoder tokens",
        encoder_tokens_option=True,
        encoder_limit=c.max_position_embeddings if learned else None,
        refusals={
            "ollama": f"ollama runs no {name} models",
            "llama.cpp": f"llama.cpp has no {name} architecture",
            "vllm": f"the vLLM profile covers decoder LMs, LLaVA and Llama 3.2 Vision; not {arch}",
        },
    )


def stages(spec: BartSpec, context: int, source: int, images: int) -> list[Stage]:
    """The encoder over the source once per input, then the decoder over the prompt (SDPA: no whole
    score matrix in either)."""
    c = spec.config
    d = c.d_model
    return [
        Stage(source, d, d, d, c.encoder_ffn_dim, False, c.encoder_attention_heads, source, per_input=True),
        Stage(context, d, d, d, c.decoder_ffn_dim, False, c.decoder_attention_heads, max(context, source)),
    ]


def image_tokens(spec: BartSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: BartSpec, images: int, encoder_tokens: int) -> int:
    return encoder_tokens


# the config.json keys of each class and its defaults (moved from importers/configs.py)
_BART_SHAPE = {
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}
BART_FAMILY = {  # model_type -> its class
    "bart": ConfigClass(
        "BartConfig",
        "bart/configuration_bart.py",
        BartConfig,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
    "mbart": ConfigClass(
        "MBartConfig",
        "mbart/configuration_mbart.py",
        BartConfig,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
    "m2m_100": ConfigClass(
        "M2M100Config",
        "m2m_100/configuration_m2m_100.py",
        BartConfig,
        {"vocab_size": 128112, **_BART_SHAPE, "activation_function": "relu", "scale_embedding": True},
    ),
    "marian": ConfigClass(
        "MarianConfig",
        "marian/configuration_marian.py",
        BartConfig,
        {
            "vocab_size": 58101,
            **_BART_SHAPE,
            "activation_function": "gelu",
            "scale_embedding": False,
            "share_encoder_decoder_embeddings": True,
        },
        copied=("decoder_vocab_size",),
    ),
    "pegasus": ConfigClass(
        "PegasusConfig",
        "pegasus/configuration_pegasus.py",
        BartConfig,
        {"vocab_size": 50265, **_BART_SHAPE, "activation_function": "gelu", "scale_embedding": False},
    ),
}
# BART, mBART, M2M-100, Marian, Pegasus (transformers models/bart/modeling_bart.py and kin): the
# shared embedding, then each stack with its positions and norms. Older checkpoints also store the
# stacks' embed_tokens, tied to model.shared on load. final_logits_bias is a buffer, not a parameter.
WEIGHT_RULES: WeightRules = (
    (r"model\.shared\.weight", "embeddings"),
    (r"model\.(?:encoder|decoder)\.embed_tokens\.weight", None),
    (r"model\.encoder\..+", "encoder"),
    (r"model\.decoder\..+", "decoder"),
    (r"lm_head\.weight", "lm_head"),
    (r"final_logits_bias", BUFFER),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json=BART_FAMILY,
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
