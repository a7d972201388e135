"""GLM-5 (GlmMoeDsaForCausalLM, model_type glm_moe_dsa): DeepSeek-V3.2's layer (archs/deepseek_v32.py:
multi-head latent attention, the DeepSeek Sparse Attention indexer, dense first layers and a routed
feed-forward with a shared expert) with GLM's sizes, where a layer may reuse the previous layer's top-k
selection instead of running its own indexer: `indexer_types[i]` "full" runs one (its wq_b, wk, k_norm and
weights_proj, and its keys in the cache), "shared" has none (GlmMoeDsaAttention: `self.indexer = None if
self.skip_topk`). Without indexer_types, GlmMoeDsaConfig.__post_init__ reads `index_topk_pattern` ("F"/"S"
per layer) or the schedule `index_topk_freq` (1) / `index_skip_topk_offset` (2): layer i is full when
max(i - offset + 1, 0) % freq == 0 (transformers models/glm_moe_dsa/configuration_glm_moe_dsa.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import Geometry, ModelSpecBase
from .decoder import NEXTN_WEIGHT_RULES, DecoderSpec, decoder_family
from .deepseek_v32 import DeepseekV32Config, IndexerType, _defaults, stages, tensors
from .deepseek_v32 import geometry as v32_geometry
from .family import ConfigClass


class GlmMoeDsaConfig(DeepseekV32Config):
    """GlmMoeDsaConfig fields (transformers models/glm_moe_dsa/configuration_glm_moe_dsa.py)."""

    model_type: Literal["glm_moe_dsa"] | None = None  # type: ignore[assignment]
    indexer_types: list[IndexerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    index_topk_pattern: str | list[IndexerType] | None = Field(default=None, max_length=L.MAX_LAYERS)
    index_topk_freq: Annotated[int, Field(ge=0, le=L.MAX_LAYERS)] = 1
    index_skip_topk_offset: Annotated[int, Field(ge=-L.MAX_LAYERS, le=L.MAX_LAYERS)] = 2

    @model_validator(mode="before")
    @classmethod
    def _pattern(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("index_topk_pattern"), str):
            bad = set(data["index_topk_pattern"]) - set("FS")
            if bad:
                raise ValueError(f"index_topk_pattern: only F (full) and S (shared) per layer, not {sorted(bad)}")
        return data

    def indexer_type(self, i: int) -> IndexerType:
        if self.indexer_types is not None:
            return self.indexer_types[i]
        pattern = self.index_topk_pattern
        if pattern is not None:
            if isinstance(pattern, str):
                return "full" if pattern[i] == "F" else "shared"
            return pattern[i]
        freq = max(self.index_topk_freq, 1)
        return "full" if max(i - self.index_skip_topk_offset + 1, 0) % freq == 0 else "shared"

    def has_indexer(self, i: int) -> bool:
        return self.indexer_type(i) == "full"

    @model_validator(mode="after")
    def _check_indexers(self) -> GlmMoeDsaConfig:
        for name in ("indexer_types", "index_topk_pattern"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != self.num_hidden_layers:
                    raise ValueError(f"{name} has {len(value)} entries for {self.num_hidden_layers} layers")
                break
        if self.num_hidden_layers and not self.has_indexer(0):
            # GlmMoeDsaAttention: a shared layer reuses the previous full layer's selection; the first has none
            raise ValueError("the first layer's indexer is shared: there is no earlier layer to share with")
        return self


class GlmMoeDsaSpec(DecoderSpec):
    architecture: Literal["glm_moe_dsa"]
    config: GlmMoeDsaConfig


def geometry(spec: ModelSpecBase) -> Geometry:
    return v32_geometry(spec, "glm-dsa")


FAMILY = decoder_family(
    __name__,
    "glm_moe_dsa",
    GlmMoeDsaSpec,
    ConfigClass(
        "GlmMoeDsaConfig",
        "glm_moe_dsa/configuration_glm_moe_dsa.py",
        GlmMoeDsaConfig,
        _defaults(
            vocab_size=154880,
            hidden_size=6144,
            intermediate_size=12288,
            num_hidden_layers=78,
            num_attention_heads=64,
            q_lora_rank=2048,
            v_head_dim=256,
            qk_nope_head_dim=192,
            max_position_embeddings=202752,
            index_n_heads=32,
        ),
        copied=("mlp_layer_types", "indexer_types", "index_topk_pattern", "index_topk_freq", "index_skip_topk_offset"),
    ),
    gguf=("glm-dsa",),  # convert_hf_to_gguf.py: GlmMoeDsaForCausalLM -> MODEL_ARCH.GLM_DSA; llama-arch.cpp "glm-dsa"
    # GLM-5's MTP layer model.layers.78.* is not built: GlmMoeDsaForCausalLM [r"model\.layers\.78.*"]
    weight_rules=NEXTN_WEIGHT_RULES,
    tensors=tensors,
    geometry=geometry,
    stages=stages,
)
