"""MiniMax-M2 (MiniMaxM2ForCausalLM): Llama's bias-free attention with RMSNorms of the queries and keys
over every head (q_norm over heads x head_dim, k_norm over KV heads x head_dim: the checkpoints'
`qk_norm_type: per_layer`), full attention in every layer, and a routed feed-forward in every layer:
`num_local_experts` experts of `intermediate_size`, top `num_experts_per_tok`, a bias-free router (its
e_score_correction_bias is a buffer, not a parameter), no shared expert (transformers
models/minimax_m2/modeling_minimax_m2.py: MiniMaxM2Attention, MiniMaxM2TopKRouter, MiniMaxM2Experts'
gate_up_proj / down_proj, MiniMaxM2SparseMoeBlock). Partial rotary (`rotary_dim`) changes no tensor or cache."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .llama import Anatomy
from .moe import Experts, MoeConfig


class MiniMaxM2Config(MoeConfig):
    """MiniMaxM2Config fields (transformers models/minimax_m2/configuration_minimax_m2.py)."""

    model_type: Literal["minimax_m2"] | None = None
    hidden_act: Literal["silu"] = "silu"
    num_local_experts: Experts
    num_experts_per_tok: Experts

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qk_norm=True, qk_norm_full=True)


class MiniMaxM2Spec(DecoderSpec):
    architecture: Literal["minimax_m2"]
    config: MiniMaxM2Config


FAMILY = moe_family(
    __name__,
    "minimax_m2",
    MiniMaxM2Spec,
    ConfigClass(
        "MiniMaxM2Config",
        "minimax_m2/configuration_minimax_m2.py",
        MiniMaxM2Config,
        {
            "vocab_size": 200064,
            "hidden_size": 3072,
            "intermediate_size": 1536,
            "num_hidden_layers": 62,
            "num_attention_heads": 48,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "max_position_embeddings": 196608,
            "tie_word_embeddings": False,
            "num_experts_per_tok": 8,
            "num_local_experts": 256,
        },
    ),
    gguf=("minimax-m2",),  # convert_hf_to_gguf.py: MiniMaxM2ForCausalLM -> MODEL_ARCH.MINIMAXM2; llama-arch.cpp
)
