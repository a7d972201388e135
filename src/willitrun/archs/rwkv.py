"""RWKV: a recurrent language model, no attention cache. transformers ships RWKV-4 (model_type `rwkv`,
RwkvForCausalLM: models/rwkv/modeling_rwkv.py); llama.cpp loads RWKV-6 and RWKV-7 (`rwkv6`, `rwkv6qwen2`, `rwkv7`,
`arwkv7`: src/llama-arch.cpp), not RWKV-4, and their GGUFs are read from their metadata (importers/gguf_generic.py:
per layer token_shift_count x n_embd shift state and n_embd x wkv.head_size wkv state, llama-hparams.cpp n_embd_r /
n_embd_s, kept in f32 by llama_memory_recurrent).

RWKV-4 per block (RwkvBlock): LayerNorms ln1, ln2 (and pre_ln in block 0), time mixing (RwkvSelfAttention:
time_decay, time_first of attention_hidden_size, time_mix_key / value / receptance of hidden_size, bias-free key,
value, receptance hidden -> attention_hidden and output back) and channel mixing (RwkvFeedForward: time_mix_key,
time_mix_receptance, key hidden -> intermediate, receptance hidden -> hidden, value intermediate -> hidden); ln_out
and a head tied to the embeddings when tie_word_embeddings. Its state (RwkvModel.forward with use_cache): five
tensors of hidden_size per layer and sequence, the two token shifts in the model's dtype, the wkv numerator,
denominator and maximum in float32 (`dtype=inputs_embeds.dtype if i <= 1 else torch.float32`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..records import Field
from .base import (
    Geometry,
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
from .caches import RecurrentState
from .family import ConfigClass, Family, WeightRules

ARCHITECTURES = ("rwkv",)


@dataclass(frozen=True, slots=True)
class WkvState(RecurrentState):
    """RWKV's state per layer and sequence: `conv` elements of token shift (the previous token's hidden state, for
    time and channel mixing) and `ssm` elements of wkv state, constant in the context."""


class RwkvConfig(Strict):
    """RwkvConfig fields (transformers models/rwkv/configuration_rwkv.py)."""

    model_type: Literal["rwkv"] | None = None
    vocab_size: Vocab
    context_length: Positions
    hidden_size: Hidden
    num_hidden_layers: Layers
    attention_hidden_size: Hidden | None = Field(default=None)  # None: hidden_size
    intermediate_size: Intermediate | None = Field(default=None)  # None: 4 x hidden_size
    tie_word_embeddings: bool = False

    @property
    def attention(self) -> int:
        return self.attention_hidden_size or self.hidden_size

    @property
    def ffn(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size


class RwkvSpec(ModelSpecBase):
    architecture: Literal["rwkv"]
    config: RwkvConfig


SPECS = {"rwkv": RwkvSpec}


def tensors(spec: RwkvSpec) -> Iterator[Tensor]:
    c = spec.config
    h, a, f = c.hidden_size, c.attention, c.ffn
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        if i == 0:
            yield from norm(f"{p}.pre_ln", "decoder", h, i, bias=True)
        yield from norm(f"{p}.ln1", "decoder", h, i, bias=True)
        yield from norm(f"{p}.ln2", "decoder", h, i, bias=True)
        for name, width in (("time_decay", a), ("time_first", a), ("time_mix_k", h), ("time_mix_v", h)):
            yield Tensor(f"{p}.{name}", "decoder", (width,), "other", i)
        yield Tensor(f"{p}.time_mix_r", "decoder", (h,), "other", i)
        yield from linear(f"{p}.attn_k", "decoder", a, h, "attn_k", False, i)
        yield from linear(f"{p}.attn_v", "decoder", a, h, "attn_v", False, i)
        yield from linear(f"{p}.attn_r", "decoder", a, h, "attn_q", False, i)
        yield from linear(f"{p}.attn_output", "decoder", h, a, "attn_output", False, i)
        yield Tensor(f"{p}.channel_mix_k", "decoder", (h,), "other", i)
        yield Tensor(f"{p}.channel_mix_r", "decoder", (h,), "other", i)
        yield from linear(f"{p}.ffn_up", "decoder", f, h, "ffn_up", False, i)
        yield from linear(f"{p}.ffn_gate", "decoder", h, h, "ffn_gate", False, i)
        yield from linear(f"{p}.ffn_down", "decoder", h, f, "ffn_down", False, i)
    yield from norm("decoder.output_norm", "decoder", h, None, bias=True)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def geometry(spec: RwkvSpec) -> Geometry:
    c = spec.config
    n, h = c.num_hidden_layers, c.hidden_size
    state = WkvState(2 * h, 3 * h, ssm_f32=True)
    return Geometry(
        architecture=spec.architecture,
        self_kv=(None,) * n,
        cross_kv=(None,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=h,
        num_attention_heads=1,
        intermediate_size=c.ffn,
        context_window=None,  # a recurrent model: context_length is its training window, not a limit
        tp_constraints=(("intermediate_size", c.ffn, False),),
        tp_kv_heads=1,
        no_cross_reason="decoder-only: no cross-attention",
        ssm_state=((2 * h, 3 * h),) * n,
        ssm_state_f32=True,
        cache_kinds=((state,),) * n,
        refusals={
            "llama.cpp": "llama.cpp loads RWKV-6 and RWKV-7 GGUFs (rwkv6, rwkv7), not RWKV-4",
            "ollama": "ollama runs llama.cpp, which loads RWKV-6 and RWKV-7, not RWKV-4",
            "vllm": "vLLM has no RWKV model",
        },
    )


def stages(spec: RwkvSpec, context: int, source: int, images: int) -> list[Stage]:
    """One token's mixing widths: attention_hidden for time mixing (no attention over positions) and the
    channel mixing's intermediate width."""
    c = spec.config
    return [Stage(context, c.hidden_size, c.attention, 0, c.ffn, True, 1, 0)]


def image_tokens(spec: RwkvSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: RwkvSpec, images: int, encoder_tokens: int) -> int:
    return 0


# RwkvForCausalLM's names: rwkv.embeddings, rwkv.blocks.N.*, rwkv.ln_out, head
WEIGHT_RULES: WeightRules = (
    (r"rwkv\.embeddings\.weight", "embeddings"),
    (r"rwkv\.(?:blocks\.\d+\..+|ln_out\.(?:weight|bias))", "decoder"),
    (r"head\.weight", "lm_head"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={
        "rwkv": ConfigClass(
            "RwkvConfig",
            "rwkv/configuration_rwkv.py",
            RwkvConfig,
            {
                "vocab_size": 50277,
                "context_length": 1024,
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "tie_word_embeddings": False,
            },
            copied=("attention_hidden_size", "intermediate_size"),
        )
    },
    weight_rules={"rwkv": WEIGHT_RULES},
    gguf_architectures=("rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"),
)
