"""DeepSeek-V3.2 (DeepseekV32ForCausalLM: DeepSeek-V3.2-Exp, DeepSeek-V3.2): DeepSeek-V3's multi-head latent
attention and routed feed-forward (archs/deepseek.py) with the DeepSeek Sparse Attention (DSA) lightning
indexer in every attention layer (transformers models/deepseek_v32/modeling_deepseek_v32.py:
DeepseekV32Indexer, DeepseekV32Attention, DeepseekV32DecoderLayer).

The indexer: wq_b (q_lora_rank -> index_n_heads x index_head_dim, from the attention's normalised query
latent), wk (hidden -> index_head_dim), k_norm (a LayerNorm with a bias over index_head_dim) and
weights_proj (hidden -> index_n_heads), all bias-free linears. `_keep_in_fp32_modules = ["indexer.weights_proj"]`
keeps weights_proj in float32 in a float16 load. The query latent is always there (q_lora_rank; V3.2 has no
q_proj path). Which layers are dense: `mlp_layer_types`, else the first `first_k_dense_replace`.

The cache, per layer: the MLA latent as DeepSeek-V3 (kv_lora_rank + qk_rope_head_dim per position, one
"head") and the indexer's keys, index_head_dim per position (transformers cache_utils.py DynamicIndexedLayer:
`indexer_keys` of [batch, positions, index_head_dim], the model's dtype; archs/caches.py IndexerKeys). vLLM
keeps the indexer keys in its own cache layer, quantised to fp8 with a float32 scale per 128 elements
(vllm/model_executor/models/deepseek_v2.py: DeepseekV32IndexerCache, head_dim + head_dim // 128 x 4 bytes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Literal

from .. import limits as L
from ..records import Field, model_validator
from . import deepseek
from .base import Geometry, HeadDim, Heads, ModelSpecBase, Positions, Stage, Tensor, linear, norm
from .caches import CacheKind, IndexerKeys, MLALatent
from .decoder import NEXTN_WEIGHT_RULES, DecoderSpec, decoder_family
from .deepseek import DeepseekConfig, Rank
from .family import ConfigClass

MlpType = Literal["dense", "sparse"]
IndexerType = Literal["full", "shared"]


class DeepseekV32Config(DeepseekConfig):
    """DeepseekV32Config fields (transformers models/deepseek_v32/configuration_deepseek_v32.py)."""

    model_type: Literal["deepseek_v32"] | None = None  # type: ignore[assignment]
    q_lora_rank: Rank = 1536  # the indexer reads the query latent: never null
    index_head_dim: HeadDim = 128
    index_n_heads: Heads = 64
    index_topk: Positions = 2048  # keys each query attends to: changes no tensor or cache
    mlp_layer_types: list[MlpType] | None = Field(default=None, max_length=L.MAX_LAYERS)

    def is_moe(self, i: int) -> bool:
        if self.mlp_layer_types is not None:
            return self.mlp_layer_types[i] == "sparse"
        return i >= self.first_k_dense_replace

    def has_indexer(self, i: int) -> bool:
        """Whether layer i runs its own indexer (and so caches its keys)."""
        return True

    @model_validator(mode="after")
    def _check_types(self) -> DeepseekV32Config:
        if self.mlp_layer_types is not None and len(self.mlp_layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"mlp_layer_types has {len(self.mlp_layer_types)} entries for {self.num_hidden_layers} layers"
            )
        return self


class DeepseekV32Spec(DecoderSpec):
    architecture: Literal["deepseek_v32"]
    config: DeepseekV32Config


def indexer_tensors(p: str, i: int, c: DeepseekV32Config) -> Iterator[Tensor]:
    """DeepseekV32Indexer: wq_b, wk, k_norm (LayerNorm with a bias), weights_proj (role "other": the one
    module transformers keeps in float32 under float16)."""
    d = c.index_head_dim
    yield from linear(f"{p}.indexer.attn_q_b", "decoder", c.index_n_heads * d, c.q_lora_rank, "attn_q_b", False, i)
    yield from linear(f"{p}.indexer.attn_k", "decoder", d, c.hidden_size, "attn_k", False, i)
    yield from norm(f"{p}.indexer.k_norm", "decoder", d, i, True)
    yield from linear(f"{p}.indexer.proj", "decoder", c.index_n_heads, c.hidden_size, "other", False, i)


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    """DeepSeek-V3's tensors with each layer's indexer after its attention (DeepseekV32Attention's order)."""
    c: DeepseekV32Config = spec.config  # type: ignore[attr-defined]
    for t in deepseek.tensors(spec):
        yield t
        if t.layer is not None and t.name == f"decoder.{t.layer}.attn_output.weight" and c.has_indexer(t.layer):
            yield from indexer_tensors(f"decoder.{t.layer}", t.layer, c)


def layer_caches(c: DeepseekV32Config) -> tuple[tuple[CacheKind, ...], ...]:
    latent = MLALatent(c.kv_lora_rank, c.qk_rope_head_dim)
    keys = IndexerKeys(c.index_head_dim)
    return tuple((latent, keys) if c.has_indexer(i) else (latent,) for i in range(c.num_hidden_layers))


def geometry(spec: ModelSpecBase, gguf_architecture: str = "deepseek32") -> Geometry:
    c: DeepseekV32Config = spec.config  # type: ignore[attr-defined]
    return replace(
        deepseek.geometry(spec),
        gguf_architecture=gguf_architecture,
        cache_kinds=layer_caches(c),
        # DeepseekV32PreTrainedModel._keep_in_fp32_modules (its _keep_in_fp32_modules_strict names a buffer)
        keep_in_fp32_modules=("indexer.weights_proj",),
        keep_in_fp32_roles=frozenset({"other"}),
    )


def stages(spec: ModelSpecBase, context: int, source: int, images: int) -> list[Stage]:
    return deepseek.stages(spec, context, source, images)


def _defaults(**changes: object) -> dict[str, object]:
    """DeepseekV32Config's defaults (GlmMoeDsaConfig inherits the class and changes some)."""
    out: dict[str, object] = {
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "n_shared_experts": 1,
        "n_routed_experts": 256,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "qk_nope_head_dim": 128,
        "num_experts_per_tok": 8,
        "hidden_act": "silu",
        "max_position_embeddings": 163840,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "index_topk": 2048,
        "index_head_dim": 128,
        "index_n_heads": 64,
        "first_k_dense_replace": 3,
    }
    out.update(changes)
    return out


DEFAULTS: Sequence[tuple[str, object]] = tuple(_defaults().items())

FAMILY = decoder_family(
    __name__,
    "deepseek_v32",
    DeepseekV32Spec,
    ConfigClass(
        "DeepseekV32Config",
        "deepseek_v32/configuration_deepseek_v32.py",
        DeepseekV32Config,
        dict(DEFAULTS),
        copied=("mlp_layer_types",),
    ),
    gguf=("deepseek32",),  # convert_hf_to_gguf.py: DeepseekV32ForCausalLM -> MODEL_ARCH.DEEPSEEK32; llama-arch.cpp
    # model.layers.61.* (the MTP layer) is not built: DeepseekV32ForCausalLM [r"model\.layers\.61.*"]
    weight_rules=NEXTN_WEIGHT_RULES,
    tensors=tensors,
    geometry=geometry,
    stages=stages,
)
