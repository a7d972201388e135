"""GPT-J (GPTJForCausalLM: GPT-J 6B): GPT-2's config.json names (archs/gpt2.py: n_embd, n_layer, n_head,
n_positions, n_inner) on a parallel block: one LayerNorm with a bias (ln_1) feeds both the bias-free
q/k/v/out projections and the biased MLP (fc_in of n_inner, 4 x n_embd when null; fc_out); rotary
positions over the first `rotary_dim` channels (no learned positions: n_positions is the trained window, not
a limit), ln_f, and an untied LM head with a bias (transformers models/gptj/modeling_gptj.py: GPTJAttention,
GPTJMLP, GPTJBlock, GPTJModel, GPTJForCausalLM: nn.Linear(n_embd, vocab_size))."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from . import llama
from .base import Geometry, HeadDim
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .gpt2 import Gpt2LikeConfig
from .llama import Anatomy


class GptjConfig(Gpt2LikeConfig):
    """GPTJConfig fields (transformers models/gptj/configuration_gptj.py)."""

    model_type: Literal["gptj"] | None = None
    rotary_dim: HeadDim = 64  # changes no tensor or cache; GPTJConfig refuses null (an int field)
    tie_word_embeddings: bool = False

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(parallel_block=True, norm_bias=True, gated=False, mlp_bias=True, lm_head_bias=True)


class GptjSpec(DecoderSpec):
    architecture: Literal["gptj"]
    config: GptjConfig


# llama.cpp names LLM_ARCH_GPTJ ("gptj", llama-arch.cpp) but declares no llm_build_gptj graph (src/models/models.h
# has llm_build_gpt2, llm_build_starcoder ... and none for GPT-J) and convert_hf_to_gguf.py registers no
# GPTJForCausalLM, so no GGUF of GPT-J loads
NO_GGUF = "llama.cpp cannot load GPT-J (no GPTJForCausalLM converter, no gptj graph in llama-model.cpp)"


def _geometry(spec: GptjSpec) -> Geometry:
    g = llama.decoder_geometry(spec.config, spec.architecture)
    return replace(g, refusals={"llama.cpp": NO_GGUF, "ollama": NO_GGUF})


# GPTJForCausalLM: transformer.{wte, h.N, ln_f}, lm_head (weight and bias)
WEIGHT_RULES: WeightRules = (
    (r"(?:transformer\.)?wte\.weight", "embeddings"),
    (r"(?:transformer\.)?(?:h\.\d+\..+|ln_f\.(?:weight|bias))", "decoder"),
    (r"lm_head\.(?:weight|bias)", "lm_head"),
)


FAMILY = decoder_family(
    __name__,
    "gptj",
    GptjSpec,
    ConfigClass(
        "GPTJConfig",
        "gptj/configuration_gptj.py",
        GptjConfig,
        {
            "vocab_size": 50400,
            "n_positions": 2048,
            "n_embd": 4096,
            "n_layer": 28,
            "n_head": 16,
            "rotary_dim": 64,
            "n_inner": None,
            "tie_word_embeddings": False,
        },
    ),
    gguf=("gptj",),  # llama.cpp gguf-py constants.py: MODEL_ARCH.GPTJ -> "gptj"
    weight_rules=WEIGHT_RULES,
    geometry=_geometry,
)
