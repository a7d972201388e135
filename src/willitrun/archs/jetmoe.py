"""JetMoE (JetMoeForCausalLM: jetmoe-8b): a mixture of attention heads and a mixture of MLP experts in every
layer (transformers models/jetmoe/modeling_jetmoe.py: JetMoeAttention, JetMoeMoA, JetMoeMoE,
JetMoeParallelExperts, JetMoeTopKGating).

- Attention (MoA): one shared kv_proj (hidden -> 2 x num_key_value_heads x kv_channels); the queries and the
  output go through `num_local_experts` attention experts, each an input_linear (hidden -> num_key_value_heads
  x kv_channels) and an output_linear back, top `num_experts_per_tok` per token, a bias-free router and one
  output bias of hidden_size. Each chosen expert's queries attend to the shared keys and values, so the model
  has num_key_value_heads x num_experts_per_tok query heads (JetMoeConfig.__post_init__) and caches
  num_key_value_heads keys and values of kv_channels per position and layer.
- MLP (MoE): `num_local_experts` GLU experts of `intermediate_size` (input_linear 2 x intermediate_size,
  output_linear), top `num_experts_per_tok`, a bias-free router, one output bias of hidden_size.
- RMSNorms before attention and MLP and after the last layer; the LM head is tied by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from ..records import model_validator
from . import llama
from .base import Geometry, HeadDim, Stage, Tensor, linear, norm
from .decoder import DecoderSpec, moe_family
from .family import ConfigClass
from .moe import Experts, MoeConfig, moe_stage


class JetMoeConfig(MoeConfig):
    """JetMoeConfig fields (transformers models/jetmoe/configuration_jetmoe.py)."""

    model_type: Literal["jetmoe"] | None = None
    kv_channels: HeadDim
    num_local_experts: Experts
    num_experts_per_tok: Experts
    activation_function: Literal["silu"] = "silu"
    tie_word_embeddings: bool = True

    @model_validator(mode="before")
    @classmethod
    def _heads(cls, data: Any) -> Any:
        """JetMoeConfig.__post_init__: num_attention_heads = num_key_value_heads x num_experts_per_tok;
        JetMoeConfig.attribute_map: head_dim is kv_channels."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kv, k = data.get("num_key_value_heads"), data.get("num_experts_per_tok")
        if isinstance(kv, int) and isinstance(k, int):  # whatever config.json says: __post_init__ overwrites it
            data["num_attention_heads"] = kv * k
        if data.get("kv_channels") is not None:
            data["head_dim"] = data["kv_channels"]
        return data

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.kv_channels


class JetMoeSpec(DecoderSpec):
    architecture: Literal["jetmoe"]
    config: JetMoeConfig


def _tensors(spec: JetMoeSpec) -> Iterator[Tensor]:
    c = spec.config
    h, e, kv, comp = c.hidden_size, c.n_experts, c.kv_width, "decoder"
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        # mlp (JetMoeMoE): bias, input_linear (gate and up of every expert), output_linear, router
        yield Tensor(f"{p}.ffn_bias", comp, (h,), "bias", i)
        yield Tensor(f"{p}.ffn_gate_exps.weight", comp, (e, c.intermediate_size, h), "ffn_gate_exps", i)
        yield Tensor(f"{p}.ffn_up_exps.weight", comp, (e, c.intermediate_size, h), "ffn_up_exps", i)
        yield Tensor(f"{p}.ffn_down_exps.weight", comp, (e, h, c.intermediate_size), "ffn_down_exps", i)
        yield from linear(f"{p}.ffn_gate_inp", comp, e, h, "ffn_gate_inp", False, i)
        yield from norm(f"{p}.attn_norm", comp, h, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
        # self_attention (JetMoeAttention): experts (JetMoeMoA: bias, input_linear = the queries, output_linear
        # = the output projection, router), then kv_proj
        yield Tensor(f"{p}.attn_output.bias", comp, (h,), "bias", i)
        yield Tensor(f"{p}.attn_q_exps.weight", comp, (e, kv, h), "other", i)
        yield Tensor(f"{p}.attn_output_exps.weight", comp, (e, h, kv), "other", i)
        yield from linear(f"{p}.attn_gate_inp", comp, e, h, "ffn_gate_inp", False, i)
        yield from linear(f"{p}.attn_kv", comp, 2 * kv, h, "attn_qkv", False, i)
    yield from norm("decoder.output_norm", comp, h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


# llama.cpp's llama-arch.cpp names no JetMoE architecture and convert_hf_to_gguf.py registers no JetMoeForCausalLM
NO_GGUF = "llama.cpp cannot load JetMoE (no JetMoeForCausalLM converter, no jetmoe architecture in llama-arch.cpp)"


def _geometry(spec: JetMoeSpec) -> Geometry:
    c = spec.config
    return replace(
        llama.decoder_geometry(c, spec.architecture),
        experts=c.n_experts,
        experts_per_token=c.num_experts_per_tok,
        intermediate_size=c.active_ffn_width,
        refusals={"llama.cpp": NO_GGUF, "ollama": NO_GGUF},
    )


def _stages(spec: JetMoeSpec, context: int, source: int, images: int) -> list[Stage]:
    return [moe_stage(spec.config, context)]


FAMILY = moe_family(
    __name__,
    "jetmoe",
    JetMoeSpec,
    ConfigClass(
        "JetMoeConfig",
        "jetmoe/configuration_jetmoe.py",
        JetMoeConfig,
        {
            "vocab_size": 32000,
            "hidden_size": 2048,
            "num_hidden_layers": 12,
            "num_key_value_heads": 16,
            "kv_channels": 128,
            "intermediate_size": 5632,
            "max_position_embeddings": 4096,
            "activation_function": "silu",
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "tie_word_embeddings": True,
        },
    ),
    gguf=(),  # llama.cpp's llama-arch.cpp names no JetMoE architecture and convert_hf_to_gguf.py has no converter
    tensors=_tensors,
    geometry=_geometry,
    stages=_stages,
)
