"""Gemma 3n text models (Gemma3nForCausalLM, model_type gemma3n_text; transformers 5.23
models/gemma3n/{configuration,modeling}_gemma3n.py), on Gemma 4's text code (archs/gemma4.py), whose layer it is
without per-layer head sizes, k-equals-v or experts, plus:
- AltUp (Gemma3nTextAltUp): per layer a router (altup_num_inputs x hidden) and its norm, prediction
  (inputs^2 x inputs) and correction (inputs x inputs) coefficients and an output scale (hidden); in the model,
  altup_num_inputs - 1 projections in and as many out (hidden x hidden each);
- LAuReL (Gemma3nTextLaurelBlock): per layer a rank-`laurel_rank` pair of projections and a norm;
- per-layer embeddings always (no flag): the packed table, its projection and norm, and per layer a gate, a
  projection and a norm;
- KV sharing: the last `num_kv_shared_layers` (15 of 35 by default) compute no keys or values and keep no cache;
- `intermediate_size` one width or one per layer; layer i attends in full when (i + 1) % 5 == 0, else slides over
  `sliding_window` (512), or `layer_types` (the last layer is not forced to full, unlike Gemma 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from ..records import Field, model_validator
from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, Family, GGUFRules, swa_period
from .gemma4 import Gemma4TextConfig, text_geometry, text_stage, text_tensors

ARCHITECTURES = ("gemma3n_text",)
FULL_EVERY = 5  # Gemma3nTextConfig.__post_init__: "full_attention" if (i + 1) % 5 == 0
# Gemma 4's fields Gemma3nTextConfig does not have: a gemma3n_text spec leaves them at their (off) defaults
GEMMA4_ONLY = (
    "use_bidirectional_attention",
    "attention_k_eq_v",
    "enable_moe_block",
    "use_double_wide_mlp",
    "num_experts",
    "top_k_experts",
    "moe_intermediate_size",
    "global_head_dim",
    "num_global_key_value_heads",
    "per_layer_config",
)


class Gemma3nTextConfig(Gemma4TextConfig):
    """Gemma3nTextConfig fields (transformers models/gemma3n/configuration_gemma3n.py)."""

    model_type: Literal["gemma3n_text"] | None = None  # type: ignore[assignment]
    vocab_size: Vocab = 262_400
    hidden_size: Hidden = 2048
    intermediate_size: Intermediate | list[Intermediate] = 16_384  # type: ignore[assignment]
    num_hidden_layers: Layers = 35
    num_attention_heads: Heads = 8
    num_key_value_heads: Heads = 2
    head_dim: HeadDim = 256
    max_position_embeddings: Positions = 32_768
    num_kv_shared_layers: Annotated[int, Field(ge=0, le=1 << 12)] = 15
    altup_num_inputs: Annotated[int, Field(gt=0, le=64)] = 4
    laurel_rank: Annotated[int, Field(ge=0, le=1 << 16)] = 64

    @model_validator(mode="after")
    def _check_gemma3n(self) -> Gemma3nTextConfig:
        stray = sorted(set(GEMMA4_ONLY) & self.model_fields_set)
        if stray:
            raise ValueError(f"gemma3n_text has no {', '.join(stray)} (Gemma 4's fields)")
        if isinstance(self.intermediate_size, list) and len(self.intermediate_size) != self.num_hidden_layers:
            raise ValueError(
                f"intermediate_size has {len(self.intermediate_size)} widths for {self.num_hidden_layers} layers"
            )
        return self

    @property
    def types(self) -> list[str]:
        if self.layer_types is not None:
            return list(self.layer_types)
        return [
            "full_attention" if (i + 1) % FULL_EVERY == 0 else "sliding_attention"
            for i in range(self.num_hidden_layers)
        ]

    def _override(self, i: int) -> None:
        return None  # one head shape on every layer

    def mlp_width(self, i: int) -> int:
        w = self.intermediate_size
        return w[i] if isinstance(w, list) else w

    @property
    def ffn_size(self) -> int:
        return max(self.mlp_width(i) for i in range(self.num_hidden_layers))


class Gemma3nTextSpec(ModelSpecBase):
    architecture: Literal["gemma3n_text"]
    config: Gemma3nTextConfig


SPECS = {"gemma3n_text": Gemma3nTextSpec}


def _altup_laurel(c: Gemma3nTextConfig, p: str, i: int) -> Iterator[Tensor]:
    h, a = c.hidden_size, c.altup_num_inputs
    yield Tensor(f"{p}.altup_correct_scale", "decoder", (h,), "other", i)
    yield from linear(f"{p}.altup_correct_coef", "decoder", a, a, "other", False, i)
    yield from linear(f"{p}.altup_predict_coef", "decoder", a * a, a, "other", False, i)
    yield from linear(f"{p}.altup_router", "decoder", a, h, "other", False, i)
    yield from norm(f"{p}.altup_router_norm", "decoder", h, i)
    yield from linear(f"{p}.laurel_l", "decoder", c.laurel_rank, h, "other", False, i)
    yield from linear(f"{p}.laurel_r", "decoder", h, c.laurel_rank, "other", False, i)
    yield from norm(f"{p}.laurel_post_norm", "decoder", h, i)


def _altup_projections(c: Gemma3nTextConfig) -> Iterable[Tensor]:
    for which in ("altup_proj", "altup_unembd_proj"):
        for k in range(1, c.altup_num_inputs):
            yield from linear(f"decoder.{which}.{k}", "decoder", c.hidden_size, c.hidden_size, "other", False, None)


def tensors(spec: Gemma3nTextSpec) -> Iterator[Tensor]:
    c = spec.config
    return text_tensors(c, c.tie_word_embeddings, _altup_laurel, _altup_projections(c))


def geometry(spec: Gemma3nTextSpec) -> Geometry:
    return text_geometry(spec.config, spec.architecture, "gemma3n")


def stages(spec: Gemma3nTextSpec, context: int, source: int, images: int) -> list[Stage]:
    return [text_stage(spec.config, context)]


def image_tokens(spec: Gemma3nTextSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: Gemma3nTextSpec, images: int, encoder_tokens: int) -> int:
    return 0


TEXT_DEFAULTS: Mapping[str, Any] = {
    "vocab_size": 262_400,
    "hidden_size": 2048,
    "num_hidden_layers": 35,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 32_768,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "sliding_window": 512,
    "vocab_size_per_layer_input": 262_144,
    "hidden_size_per_layer_input": 256,
    "num_kv_shared_layers": 15,
    "altup_num_inputs": 4,
    "laurel_rank": 64,
}

# Gemma3nForCausalLM's safetensors names (Gemma3nTextModel under `model.`)
WEIGHT_RULES = (
    (r"(?:model\.)?embed_tokens(?:_per_layer)?\.weight", "embeddings"),
    (
        r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight|per_layer_model_projection\.weight"
        r"|per_layer_projection_norm\.weight|altup_(?:unembed_)?projections\.\d+\.weight)",
        "decoder",
    ),
    (r"lm_head\.weight", "lm_head"),
)

FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={
        "gemma3n_text": ConfigClass(
            "Gemma3nTextConfig",
            "gemma3n/configuration_gemma3n.py",
            Gemma3nTextConfig,
            TEXT_DEFAULTS,
            # filled by __post_init__: layer_types, and intermediate_size turned into one width per layer (the class
            # default 16384 becomes [16384] * 35, so it is the spec's default rather than a declared one)
            copied=("layer_types", "intermediate_size"),
        )
    },
    weight_rules={"gemma3n_text": WEIGHT_RULES},
    # llama.cpp's LLM_ARCH_GEMMA3N (src/models/gemma3n.cpp load_arch_hparams): set_swa_pattern(5) unless the file
    # says otherwise, and `hparams.n_layer_kv_from_start = 20` whatever attention.shared_kv_layers says (E2B: 30
    # layers, 10 shared; E4B: 35, 15)
    gguf_architectures=("gemma3n",),
    gguf_rules={"gemma3n": GGUFRules(swa=swa_period(FULL_EVERY), kv_layers=20)},
)
