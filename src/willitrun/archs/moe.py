"""What every mixture-of-experts family shares: the expert fields of a config, the MoE feed-forward
tensors, and a llama-like decoder whose feed-forward is sparse in some layers.

Experts are one 3-D tensor per projection and layer, (n_expert, out, in), as transformers 5 holds
them (`mlp.experts.gate_up_proj`, `mlp.experts.down_proj`) and GGUF stores them (`ffn_gate_exps`,
`ffn_up_exps`, `ffn_down_exps`); transformers' fused gate_up is listed as GGUF's gate and up (the
same elements). The router (`mlp.gate`, GGUF `ffn_gate_inp`) is n_expert x hidden.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from .. import limits as L
from ..records import Field, model_validator
from .base import Stage, Tensor, linear, norm
from .llama import DecoderConfig, attention_tensors, gated_mlp, lm_stage

Experts = Annotated[int, Field(gt=0, le=L.MAX_EXPERTS)]


def check_experts(experts: int, per_token: int, where: str = "") -> None:
    """One line for the contradiction transformers itself would only hit in a forward pass."""
    if per_token > experts:
        raise ValueError(f"{where}num_experts_per_tok ({per_token}) is more than the {experts} experts per layer")


def expert_tensors(
    prefix: str,
    comp: str,
    i: int,
    *,
    hidden: int,
    inter: int,
    experts: int,
    router_bias: bool = False,
    bias: bool = False,
) -> Iterator[Tensor]:
    """Router + the routed experts of one layer, every expert of a projection in one tensor."""
    yield from linear(f"{prefix}.ffn_gate_inp", comp, experts, hidden, "ffn_gate_inp", router_bias, i)
    yield Tensor(f"{prefix}.ffn_gate_exps.weight", comp, (experts, inter, hidden), "ffn_gate_exps", i)
    if bias:
        yield Tensor(f"{prefix}.ffn_gate_exps.bias", comp, (experts, inter), "bias", i)
    yield Tensor(f"{prefix}.ffn_up_exps.weight", comp, (experts, inter, hidden), "ffn_up_exps", i)
    if bias:
        yield Tensor(f"{prefix}.ffn_up_exps.bias", comp, (experts, inter), "bias", i)
    yield Tensor(f"{prefix}.ffn_down_exps.weight", comp, (experts, hidden, inter), "ffn_down_exps", i)
    if bias:
        yield Tensor(f"{prefix}.ffn_down_exps.bias", comp, (experts, hidden), "bias", i)


class MoeConfig(DecoderConfig):
    """A llama-like decoder whose feed-forward is a routed set of experts in `is_moe(i)` layers.
    Subclasses name the fields (`num_local_experts` / `num_experts`, `moe_intermediate_size` ...)."""

    num_experts_per_tok: Experts

    @property
    def n_experts(self) -> int:
        raise NotImplementedError

    @property
    def expert_width(self) -> int:
        return self.intermediate_size

    @property
    def shared_width(self) -> int:
        """Width of the always-on shared expert (0: none)."""
        return 0

    def is_moe(self, i: int) -> bool:
        return True

    @property
    def active_ffn_width(self) -> int:
        """What one token's feed-forward computes: experts_per_token routed experts and the shared one
        (the width llama.cpp's and transformers' MoE graphs hold per token)."""
        return self.num_experts_per_tok * self.expert_width + self.shared_width

    @model_validator(mode="after")
    def _check_experts(self) -> MoeConfig:
        check_experts(self.n_experts, self.num_experts_per_tok)
        return self

    def shared_expert(self, prefix: str, i: int) -> Iterator[Tensor]:
        return iter(())


def moe_decoder_lm(c: MoeConfig) -> Iterator[Tensor]:
    """embed_tokens, layers (norms, attention, dense MLP or router + experts [+ shared expert]),
    norm, lm_head -- transformers' Mixtral/Qwen2Moe/Qwen3Moe ...ForCausalLM module order."""
    a = c.anatomy
    h, hd = c.hidden_size, c.head_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
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
        )
        if a.qk_norm:  # per head, or over every head (OLMoE: q_norm over heads x head_dim)
            yield from norm(f"{p}.attn_q_norm", "decoder", hd * (c.num_attention_heads if a.qk_norm_full else 1), i)
            yield from norm(f"{p}.attn_k_norm", "decoder", hd * (c.kv_heads if a.qk_norm_full else 1), i)
        yield from norm(f"{p}.ffn_norm", "decoder", h, i, a.norm_bias)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
            yield from c.shared_expert(p, i)
        else:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size, a.mlp_bias, i)
    yield from norm("decoder.output_norm", "decoder", h, None, a.norm_bias)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")
    if a.lm_head_bias:  # its own even when the weight is tied to the embedding (PhiMoE)
        yield Tensor("output.bias", "lm_head", (c.vocab_size,), "bias")


def moe_stage(c: MoeConfig, context: int) -> Stage:
    """Llama's stage with the feed-forward width one token computes (its routed experts + shared)."""
    st = lm_stage(c, context)
    width = max(
        c.active_ffn_width, c.intermediate_size if any(not c.is_moe(i) for i in range(c.num_hidden_layers)) else 0
    )
    return Stage(st.tokens, st.hidden, st.q_width, st.kv_width, width, True, st.heads, st.kv_tokens)


__all__ = ["Experts", "MoeConfig", "check_experts", "expert_tensors", "moe_decoder_lm", "moe_stage"]
