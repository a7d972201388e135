"""MiniCPM 1/2/4 (MiniCPMForCausalLM, remote code: transformers ships no MiniCPM): Llama's layer (q/k/v/o biased
when `attention_bias`), with scale_emb / dim_model_base / scale_depth multipliers that hold no parameter
(openbmb/MiniCPM-2B-sft-bf16 modeling_minicpm.py). llama.cpp loads it as `minicpm` (src/llama-arch.cpp
LLM_ARCH_MINICPM) and MiniCPM3's latent attention as `minicpm3` (LLM_ARCH_MINICPM3), read from its GGUF's
metadata: its graph (src/models/minicpm3.cpp) expands the kv_lora_rank latent and caches every head's keys
(qk_nope + qk_rope) and values, so the family declares that (GGUFRules latent_cache=False).

MiniCPM3 (MiniCPM3ForCausalLM, model_type minicpm3) is no longer remote code: transformers 5.23 ships it
(models/minicpm3/modeling_minicpm3.py, modular_minicpm3.py). Its layer is DeepSeek-V2's multi-head latent attention
(MiniCPM3Attention subclasses DeepseekV2Attention: q_a_proj + q_a_layernorm + q_b_proj, or q_proj without
q_lora_rank; kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj; attention_bias on q_a, kv_a and o) and Llama's
MLP (mlp_bias), with RMSNorms and a head tied to the embeddings by default; scale_emb / scale_depth / dim_model_base
hold no parameter. transformers caches the compressed latent and the rope key (`past_key_values.update(k_pass,
k_rot)`, one "head" each), as for DeepSeek (archs/deepseek.py). llama.cpp's minicpm3 graph expands the latent and
caches every head (above), and so does vLLM's MiniCPM3Attention: from a config.json those engines are refused (with a
pointer to the GGUF, whose metadata answers llama.cpp)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from .. import limits as L
from ..records import Field
from .base import Geometry, HeadDim, LayerKV, Stage, Tensor, linear, norm
from .decoder import LM_WEIGHT_RULES, DecoderSpec, decoder_family
from .family import ConfigClass, Family, GGUFRules, no_cross_source, no_image_tokens
from .llama import Anatomy, DecoderConfig, decoder_geometry, decoder_lm, gated_mlp, lm_stage

Rank = Annotated[int, Field(gt=0, le=L.MAX_STATE)]


class MiniCPMConfig(DecoderConfig):
    """MiniCPMConfig fields (the Hub's configuration_minicpm.py, never executed)."""

    model_type: Literal["minicpm"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b)


class MiniCPMSpec(DecoderSpec):
    architecture: Literal["minicpm"]
    config: MiniCPMConfig


class MiniCPM3Config(DecoderConfig):
    """MiniCPM3Config fields (transformers models/minicpm3/configuration_minicpm3.py, 5.23)."""

    model_type: Literal["minicpm3"] | None = None
    hidden_act: Literal["silu"] = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    kv_lora_rank: Rank
    q_lora_rank: Rank | None  # null: one q_proj (MiniCPM3Attention as DeepseekV2Attention)
    qk_nope_head_dim: HeadDim
    qk_rope_head_dim: HeadDim
    v_head_dim: HeadDim | None = None  # MiniCPM3Config.__post_init__: None -> hidden_size // num_attention_heads

    @property
    def value_dim(self) -> int:
        return self.v_head_dim or self.hidden_size // self.num_attention_heads

    @property
    def qk_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


class MiniCPM3Spec(DecoderSpec):
    architecture: Literal["minicpm3"]
    config: MiniCPM3Config


def _minicpm3_tensors(c: MiniCPM3Config) -> Iterator[Tensor]:
    """MiniCPM3ForCausalLM's parameters: DeepseekV2Attention's MLA projections (modeling_deepseek_v2.py), LlamaMLP."""
    h, heads, comp, b = c.hidden_size, c.num_attention_heads, "decoder", c.attention_bias
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", comp, h, i)
        if c.q_lora_rank is None:
            yield from linear(f"{p}.attn_q", comp, heads * c.qk_dim, h, "attn_q", False, i)
        else:
            yield from linear(f"{p}.attn_q_a", comp, c.q_lora_rank, h, "attn_q_a", b, i)
            yield from norm(f"{p}.attn_q_a_norm", comp, c.q_lora_rank, i)
            yield from linear(f"{p}.attn_q_b", comp, heads * c.qk_dim, c.q_lora_rank, "attn_q_b", False, i)
        yield from linear(f"{p}.attn_kv_a_mqa", comp, c.kv_lora_rank + c.qk_rope_head_dim, h, "attn_kv_a_mqa", b, i)
        yield from norm(f"{p}.attn_kv_a_norm", comp, c.kv_lora_rank, i)
        kv_b = heads * (c.qk_nope_head_dim + c.value_dim)
        yield from linear(f"{p}.attn_kv_b", comp, kv_b, c.kv_lora_rank, "attn_kv_b", False, i)
        yield from linear(f"{p}.attn_output", comp, h, heads * c.value_dim, "attn_output", b, i)
        yield from norm(f"{p}.ffn_norm", comp, h, i)
        yield from gated_mlp(p, comp, h, c.intermediate_size, c.mlp_bias, i)
    yield from norm("decoder.output_norm", comp, h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


# The engines that do not cache what transformers caches: llama.cpp's minicpm3 graph (src/models/minicpm3.cpp) and so
# ollama expand the latent and cache every head, sized from the GGUF's metadata (GGUFRules latent_cache=False below);
# vLLM's MiniCPM3Attention caches every head's keys and values too, the values padded to qk_nope + qk_rope
# (vllm-project/vllm vllm/model_executor/models/minicpm3.py, commit 009ccee0: Attention(num_local_heads, qk_head_dim,
# num_kv_heads=num_local_heads)), which its profile does not size from the latent geometry.
_GGUF_ONLY = (
    "llama.cpp's minicpm3 graph expands the latent and caches every head's keys and values, which willitrun sizes "
    "from the model's GGUF only: give the .gguf file"
)
_VLLM_FULL_HEADS = (
    "vLLM's MiniCPM3Attention caches every head's keys and values (values padded to qk_nope + qk_rope), not the "
    "latent transformers caches; willitrun's vLLM profile does not size that yet"
)


def _minicpm3_geometry(c: MiniCPM3Config) -> Geometry:
    heads = c.num_attention_heads
    latent = LayerKV("full", 1, c.kv_lora_rank, c.qk_rope_head_dim)
    return decoder_geometry(
        c,
        "minicpm3",
        self_kv=(latent,) * c.num_hidden_layers,
        tp_constraints=(("attention heads", heads, False), ("intermediate_size", c.intermediate_size, False)),
        tp_kv_heads=1,
        gguf_n_gqa=1,
        gguf_70b=False,
        gguf_architecture="minicpm3",
        mla=(c.kv_lora_rank, c.qk_rope_head_dim, heads, c.qk_dim, c.value_dim),
        refusals={"llama.cpp": _GGUF_ONLY, "ollama": _GGUF_ONLY, "vllm": _VLLM_FULL_HEADS},
    )


def _minicpm3_stages(c: MiniCPM3Config, context: int) -> list[Stage]:
    """Per step the latent is decompressed to every head's K (qk_nope + qk_rope) and V (as archs/deepseek.py)."""
    heads = c.num_attention_heads
    qk = c.qk_dim
    return [
        Stage(
            context,
            c.hidden_size,
            heads * qk,
            heads * (qk + c.value_dim) // 2,
            c.intermediate_size,
            True,
            heads,
            context,
        )
    ]


_MINICPM = decoder_family(
    __name__,
    "minicpm",
    MiniCPMSpec,
    ConfigClass(
        "MiniCPMConfig",
        "minicpm/configuration_minicpm.py",
        MiniCPMConfig,
        {
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "attention_bias": False,
        },
        remote="https://huggingface.co/openbmb/MiniCPM-2B-sft-bf16/blob/main/configuration_minicpm.py",
    ),
    gguf=("minicpm", "minicpm3"),
    gguf_rules={"minicpm3": GGUFRules(latent_cache=False)},
)


def _tensors(spec: DecoderSpec) -> Iterator[Tensor]:
    if isinstance(spec, MiniCPM3Spec):
        return _minicpm3_tensors(spec.config)
    return decoder_lm(spec.config)


def _geometry(spec: DecoderSpec) -> Geometry:
    if isinstance(spec, MiniCPM3Spec):
        return _minicpm3_geometry(spec.config)
    return decoder_geometry(spec.config, spec.architecture)


def _stages(spec: DecoderSpec, context: int, source: int, images: int) -> list[Stage]:
    if isinstance(spec, MiniCPM3Spec):
        return _minicpm3_stages(spec.config, context)
    return [lm_stage(spec.config, context)]


MINICPM3_CONFIG = ConfigClass(
    "MiniCPM3Config",
    "minicpm3/configuration_minicpm3.py",
    MiniCPM3Config,
    {
        "vocab_size": 73448,
        "hidden_size": 2560,
        "intermediate_size": 6400,
        "num_hidden_layers": 62,
        "num_attention_heads": 40,
        # num_key_value_heads (40) is not read: MLA's shapes never use it (MiniCPM3Attention builds one latent)
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "kv_lora_rank": 256,
        "q_lora_rank": 768,
        "qk_nope_head_dim": 64,
        "qk_rope_head_dim": 32,
        "v_head_dim": None,
    },
)
# the minicpm declaration above (its config.json keys, GGUF names and rules) with MiniCPM3 beside it
FAMILY: Family[DecoderSpec] = Family(
    __name__,
    {"minicpm": MiniCPMSpec, "minicpm3": MiniCPM3Spec},
    _tensors,
    _geometry,
    _stages,
    no_image_tokens,
    no_cross_source,
    config_json={**_MINICPM.config_json, "minicpm3": MINICPM3_CONFIG},
    weight_rules=dict.fromkeys(("minicpm", "minicpm3"), LM_WEIGHT_RULES),
    gguf_architectures=_MINICPM.gguf_architectures,
    gguf_rules=_MINICPM.gguf_rules,
)
