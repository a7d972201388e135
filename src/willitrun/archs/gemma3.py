"""Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): Gemma 2's layer plus per-head
RMSNorms of queries and keys (q_norm, k_norm over head_dim), and `sliding_window_pattern - 1` local
layers for each global one (Gemma3TextConfig.__post_init__: layer i slides when
(i + 1) % sliding_window_pattern, pattern 6 unless config.json says otherwise), or `layer_types`."""

from __future__ import annotations

from typing import Literal

from . import llama
from .base import Geometry, Layers, ModelSpecBase, Positions
from .gemma2 import Gemma2Config, SoftCap
from .llama import Anatomy, stages, tensors  # noqa: F401

ARCHITECTURES = ("gemma3_text",)


class Gemma3TextConfig(Gemma2Config):
    """Gemma3TextConfig fields (transformers models/gemma3/configuration_gemma3.py)."""

    model_type: Literal["gemma3_text"] | None = None  # type: ignore[assignment]
    sliding_window_pattern: Layers = 6  # read from config.json's kwargs; layer_types wins when given
    attn_logit_softcapping: SoftCap | None = None
    final_logit_softcapping: SoftCap | None = None
    max_position_embeddings: Positions = 131_072

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.attention_bias, o_bias=self.attention_bias, qk_norm=True, sandwich_norms=True)

    def _sliding(self, i: int) -> bool:
        return bool((i + 1) % self.sliding_window_pattern)


class Gemma3TextSpec(ModelSpecBase):
    architecture: Literal["gemma3_text"]
    config: Gemma3TextConfig


SPECS = {"gemma3_text": Gemma3TextSpec}


def geometry(spec: ModelSpecBase) -> Geometry:
    # llama.cpp names the architecture gemma3 (LLM_ARCH_GEMMA3) and keeps its local layers at the window
    return llama.decoder_geometry(spec.config, spec.architecture, llamacpp_swa=True,  # type: ignore[attr-defined]
                                  gguf_architecture="gemma3")
image_tokens = llama.image_tokens
cross_source_tokens = llama.cross_source_tokens
