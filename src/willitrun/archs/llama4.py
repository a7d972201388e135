"""Llama 4 text (Llama4ForCausalLM, the language model of Llama4ForConditionalGeneration):
attention with chunked local attention on the RoPE layers and full attention on every
`no_rope_layer_interval`-th layer (NoPE), and a routed feed-forward (`num_local_experts` experts of
`intermediate_size`, top `num_experts_per_tok`, plus one shared expert of the same width) on the
layers listed in `moe_layers` (every `interleave_moe_layer_step`-th), a dense MLP of
`intermediate_size_mlp` elsewhere (transformers models/llama4/modeling_llama4.py,
configuration_llama4.py Llama4TextConfig.__post_init__).

Cache: a chunked layer attends within `attention_chunk_size` (8192) positions; transformers caches
it as a sliding layer of that size (right after a prefill the whole prompt is still held), llama.cpp
gives it its own chunk-sized cache (iswa). Only the NoPE layers (12 of Scout's 48) grow with the
context. Scout's query/key L2 norm has no parameters.

The multimodal checkpoint (Llama4ForConditionalGeneration, model_type llama4) adds a vision tower
(Llama4VisionModel: an unfold-and-linear patch embedding, a class embedding, learned positions, 34 pre-norm ViT
layers with biases and LayerNorms, then the pixel-shuffle adapter Llama4VisionPixelShuffleMLP, two bias-free
linears) and a projector (Llama4MultiModalProjector: one bias-free linear from vision_output_dim to the text width,
whatever multi_modal_projector_bias says). Only text_config.tie_word_embeddings ties the LM head (the inner
Llama4ForCausalLM ties it; the top-level flag changes nothing: measured on transformers 5.23).

Image tokens (processing_llama4.py, image_processing_llama4.py): the image is fitted without distortion onto the
best canvas of h x w tiles of `image_size` (336) with h * w <= max_patches (16) (find_supported_resolutions,
get_best_fit), each tile costing (image_size // patch_size)^2 // round(1 / pixel_shuffle_ratio^2) tokens (144); with
more than one tile a global tile of the whole image is added. The prompt (Llama4Processor._prompt_split_image):
<|image_start|>, per tile its <|patch|> tokens and a <|tile_x_separator|> between tiles of a row, a
<|tile_y_separator|> after each row, then <|image|>, the global tile's tokens, <|image_end|>.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from .. import limits as L
from ..records import Field, model_validator
from .base import (
    Channels,
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    ImageSide,
    Intermediate,
    LayerIndex,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    linear,
    norm,
)
from .family import ConfigClass, Family, GGUFRules
from .llama import LM_WEIGHT_RULES, attention_tensors, gated_mlp
from .mixtral import moe_geometry
from .moe import Experts, MoeConfig, expert_tensors, moe_stage

ARCHITECTURES = ("llama4_text", "llama4")


class Llama4TextConfig(MoeConfig):
    """Llama4TextConfig fields (transformers models/llama4/configuration_llama4.py)."""

    model_type: Literal["llama4_text"] | None = None
    hidden_act: Literal["silu"] = "silu"
    head_dim: HeadDim = 128
    attention_bias: bool = False
    intermediate_size_mlp: Intermediate = 16384
    num_local_experts: Experts = 16
    num_experts_per_tok: Experts = 1
    attention_chunk_size: Positions | None = 8192
    interleave_moe_layer_step: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 1
    no_rope_layer_interval: Annotated[int, Field(gt=0, le=L.MAX_LAYERS)] = 4
    no_rope_layers: list[Annotated[int, Field(ge=0, le=1)]] | None = Field(default=None, max_length=L.MAX_LAYERS)
    moe_layers: list[LayerIndex] | None = Field(default=None, max_length=L.MAX_LAYERS)
    use_qk_norm: bool = True

    @property
    def n_experts(self) -> int:
        return self.num_local_experts

    @property
    def shared_width(self) -> int:
        return self.intermediate_size

    def is_moe(self, i: int) -> bool:
        if self.moe_layers is not None:
            return i in self.moe_layers
        step = self.interleave_moe_layer_step
        return i in range(step - 1, self.num_hidden_layers, step)

    def uses_rope(self, i: int) -> bool:
        if self.no_rope_layers:
            return bool(self.no_rope_layers[i])
        return (i + 1) % self.no_rope_layer_interval != 0

    def layer_kind(self, i: int) -> tuple[Literal["full", "sliding", "chunked"], int | None]:
        if self.uses_rope(i) and self.attention_chunk_size:
            return "chunked", self.attention_chunk_size
        return "full", None

    @model_validator(mode="after")
    def _check_lists(self) -> Llama4TextConfig:
        if self.no_rope_layers and len(self.no_rope_layers) != self.num_hidden_layers:
            raise ValueError(
                f"no_rope_layers has {len(self.no_rope_layers)} entries for {self.num_hidden_layers} layers"
            )
        return self


class Llama4TextSpec(ModelSpecBase):
    architecture: Literal["llama4_text"]
    config: Llama4TextConfig


class Llama4VisionConfig(Strict):
    """Llama4VisionConfig fields that shape a tensor (transformers models/llama4/configuration_llama4.py), with the
    class's defaults (not Scout's: its config.json gives hidden_size 1408, image_size 336, vision_output_dim 4096)."""

    model_type: Literal["llama4_vision_model"] | None = None
    hidden_size: Hidden = 768
    intermediate_size: Intermediate = 5632
    num_hidden_layers: Layers = 34
    num_attention_heads: Heads = 16
    num_channels: Channels = 3
    image_size: ImageSide = 448
    patch_size: ImageSide = 14
    vision_output_dim: Hidden = 7680
    pixel_shuffle_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    projector_input_dim: Hidden = 4096
    projector_output_dim: Hidden = 4096

    @model_validator(mode="after")
    def _check(self) -> Llama4VisionConfig:
        if self.patch_size > self.image_size:  # transformers 5.23 cannot build it (Llama4VisionRotaryEmbedding)
            raise ValueError(f"vision_config.patch_size ({self.patch_size}) exceeds image_size ({self.image_size})")
        return self

    @property
    def attention_width(self) -> int:
        """Llama4VisionAttention: num_heads x (hidden_size // num_heads) (below hidden_size when not a multiple)."""
        return self.num_attention_heads * (self.hidden_size // self.num_attention_heads)

    @property
    def positions(self) -> int:
        """Positions of one tile in the tower: its patches and the class token (Llama4VisionModel.num_patches)."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @property
    def tokens_per_tile(self) -> int:
        """Llama4Processor: (tile side // patch)^2 // downsample_ratio, downsample_ratio = round(1 / ratio^2)."""
        return (self.image_size // self.patch_size) ** 2 // round(1.0 / self.pixel_shuffle_ratio**2)


class Llama4Config(Strict):
    """Llama4Config fields (configuration_llama4.py). Its tie_word_embeddings is not read: the inner
    Llama4ForCausalLM ties its head by text_config.tie_word_embeddings alone."""

    model_type: Literal["llama4"] | None = None
    text_config: Llama4TextConfig
    vision_config: Llama4VisionConfig = Llama4VisionConfig()


class Llama4Spec(ModelSpecBase):
    architecture: Literal["llama4"]
    config: Llama4Config


SPECS: dict[str, type[ModelSpecBase]] = {"llama4_text": Llama4TextSpec, "llama4": Llama4Spec}
# Llama4ImageProcessor (image_processing_llama4.py): max_patches 16, the most tiles one image is cut into
MAX_TILES = 16


def text_tensors(c: Llama4TextConfig) -> Iterator[Tensor]:
    h = c.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, h), "token_embd")
    for i in range(c.num_hidden_layers):
        p = f"decoder.{i}"
        yield from norm(f"{p}.attn_norm", "decoder", h, i)
        yield from attention_tensors(
            p,
            "decoder",
            i,
            hidden=h,
            heads=c.num_attention_heads,
            kv_heads=c.kv_heads,
            head_dim=c.head_size,
            bias=c.attention_bias,
        )
        yield from norm(f"{p}.ffn_norm", "decoder", h, i)
        if c.is_moe(i):
            yield from expert_tensors(p, "decoder", i, hidden=h, inter=c.expert_width, experts=c.n_experts)
            yield from gated_mlp(f"{p}.shexp", "decoder", h, c.shared_width, False, i)
        else:
            yield from gated_mlp(p, "decoder", h, c.intermediate_size_mlp, False, i)
    yield from norm("decoder.output_norm", "decoder", h, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, h), "output")


def vision_tensors(v: Llama4VisionConfig, text_hidden: int) -> Iterator[Tensor]:
    """Llama4VisionModel in module order, its pixel-shuffle adapter counted with the projector it feeds, then
    Llama4MultiModalProjector (modeling_llama4.py)."""
    h, comp = v.hidden_size, "vision_tower"
    yield from linear("vision.patch_embd", comp, h, v.num_channels * v.patch_size**2, "other", False, None)
    yield Tensor("vision.class_embd", comp, (h,), "other")
    yield Tensor("vision.position_embd", comp, (v.positions, h), "pos_embd")
    yield from norm("vision.pre_ln", comp, h, None, bias=True)
    yield from norm("vision.post_ln", comp, h, None, bias=True)
    for i in range(v.num_hidden_layers):
        p = f"vision.{i}"
        a = v.attention_width
        for role in ("attn_q", "attn_k", "attn_v"):
            yield from linear(f"{p}.{role}", comp, a, h, role, True, i)
        yield from linear(f"{p}.attn_output", comp, h, a, "attn_output", True, i)
        yield from linear(f"{p}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
        yield from linear(f"{p}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
        yield from norm(f"{p}.ln1", comp, h, i, bias=True)
        yield from norm(f"{p}.ln2", comp, h, i, bias=True)
    # Llama4VisionMLP2: fc1 reads the pixel-shuffled patches (intermediate_size wide), fc2 is square
    yield from linear(
        "projector.adapter_fc1", "projector", v.projector_input_dim, v.intermediate_size, "projector", False, None
    )
    yield from linear(
        "projector.adapter_fc2", "projector", v.projector_output_dim, v.projector_output_dim, "projector", False, None
    )
    yield Tensor("projector.linear_1", "projector", (text_hidden, v.vision_output_dim), "projector")


def tensors(spec: ModelSpecBase) -> Iterator[Tensor]:
    if isinstance(spec, Llama4Spec):
        c = spec.config
        yield from vision_tensors(c.vision_config, c.text_config.hidden_size)
        yield from text_tensors(c.text_config)
        return
    yield from text_tensors(spec.config)  # type: ignore[attr-defined]


# llama.cpp loads a Llama 4 GGUF (LLM_ARCH_LLAMA4) and reads images through an mmproj file (tools/mtmd: clip.cpp
# PROJECTOR_TYPE_LLAMA4, models/llama4.cpp clip_graph_llama4); engines/llamacpp.py's clip_graph does not size that
# mmproj yet, so its answer for this config is the language model's GGUF alone


def geometry(spec: ModelSpecBase) -> Geometry:
    if isinstance(spec, Llama4Spec):
        c, v = spec.config.text_config, spec.config.vision_config
        return moe_geometry(
            c,
            spec.architecture,
            llamacpp_swa=True,
            gguf_architecture="llama4",
            takes_images=True,
            image_size_option=True,
            no_cross_reason="Llama 4 has no cross-attention: image tokens sit in the self-attention context",
            tp_constraints=(
                ("attention heads", c.num_attention_heads, False),
                ("KV heads", c.kv_heads, True),
                ("moe_intermediate_size", c.expert_width, False),
                ("vision tower attention heads", v.num_attention_heads, False),
            ),
        )
    return moe_geometry(
        spec.config,  # type: ignore[attr-defined]
        spec.architecture,  # type: ignore[attr-defined]
        llamacpp_swa=True,
        gguf_architecture="llama4",
    )


def supported_canvases(max_tiles: int) -> list[tuple[int, int]]:
    """find_supported_resolutions' grids (rows, columns) of at most `max_tiles` tiles, in its order."""
    by_ratio: dict[float, list[tuple[int, int]]] = {}
    for n in range(max_tiles, 0, -1):
        for rows in sorted(d for d in range(1, n + 1) if n % d == 0):
            by_ratio.setdefault(rows / (n // rows), []).append((rows, n // rows))
    return [g for grids in by_ratio.values() for g in grids]


def tile_grid(height: int, width: int, side: int, max_tiles: int = MAX_TILES) -> tuple[int, int]:
    """get_best_fit (image_processing_llama4.py): the canvas needing the least upscaling (or, when every canvas
    shrinks the image, the least downscaling) without distortion, the smallest such canvas on a tie."""
    grids = supported_canvases(max_tiles)
    scales = [min(rows * side / height, cols * side / width) for rows, cols in grids]
    up = [s for s in scales if s >= 1]
    chosen = min(up) if up else max(scales)
    best = [g for g, s in zip(grids, scales, strict=True) if s == chosen]
    return min(best, key=lambda g: g[0] * g[1])


def tiles(spec: Llama4Spec, image_size: tuple[int, int] | None) -> int:
    """Tiles one image sends through the tower: its canvas's, plus the global tile when there is more than one;
    without a size the most (max_patches + 1)."""
    v = spec.config.vision_config
    n = MAX_TILES if image_size is None else math.prod(tile_grid(*image_size, v.image_size))
    return n + 1 if n > 1 else 1


def image_tokens(spec: ModelSpecBase, image_size: tuple[int, int] | None) -> int:
    """Positions of one image in the prompt (Llama4Processor._prompt_split_image): with n tiles > 1, n tiles of
    tokens_per_tile and one separator each, then <|image|> and the global tile; <|image_start|>, <|image_end|>."""
    if not isinstance(spec, Llama4Spec):
        return 0
    per_tile = spec.config.vision_config.tokens_per_tile
    n = tiles(spec, image_size) - 1
    return n * (per_tile + 1) + per_tile + 3


def stages(
    spec: ModelSpecBase, context: int, source: int, images: int, image_size: tuple[int, int] | None = None
) -> list[Stage]:
    if not isinstance(spec, Llama4Spec):
        return [moe_stage(spec.config, context)]  # type: ignore[attr-defined]
    out = [moe_stage(spec.config.text_config, context)]
    if images:
        v = spec.config.vision_config
        h, n = v.hidden_size, v.positions
        # every tile of every image through the tower at once (SDPA: no whole score matrix)
        out.append(
            Stage(
                n * tiles(spec, image_size) * images,
                h,
                h,
                h,
                v.intermediate_size,
                False,
                v.num_attention_heads,
                n,
                per_input=True,
            )
        )
    return out


def cross_source_tokens(spec: ModelSpecBase, images: int, encoder_tokens: int) -> int:
    return 0


def _llamacpp_chunks(layers: int, window: int | None) -> tuple[int, int] | None:
    """llama.cpp LLM_ARCH_LLAMA4 (src/llama-model.cpp load_hparams): chunked attention over n_swa 8192 with
    set_swa_pattern(4) (3 chunked : 1 full), unless the file's sliding_window is 0 (no chunking)."""
    return None if window == 0 else (8192, 4)


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
LLAMA4_TEXT = ConfigClass(
    "Llama4TextConfig",
    "llama4/configuration_llama4.py",
    Llama4TextConfig,
    {
        "vocab_size": 202048,
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "attention_chunk_size": 8192,
        "max_position_embeddings": 131072,
        "attention_bias": False,
        "tie_word_embeddings": False,
        "interleave_moe_layer_step": 1,
        "no_rope_layer_interval": 4,
        "use_qk_norm": True,
        "hidden_act": "silu",
    },
    copied=("no_rope_layers", "moe_layers"),
)
# Llama4VisionConfig's defaults (the same file)
VISION_DEFAULTS: Mapping[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 5632,
    "num_hidden_layers": 34,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 448,
    "patch_size": 14,
    "vision_output_dim": 7680,
    "pixel_shuffle_ratio": 0.5,
    "projector_input_dim": 4096,
    "projector_output_dim": 4096,
}
PATH = "llama4/configuration_llama4.py"
MM_CONFIG = ConfigClass(
    "Llama4Config",
    PATH,
    Llama4Config,
    {
        "text_config": LLAMA4_TEXT,
        "vision_config": ConfigClass("Llama4VisionConfig", PATH, Llama4VisionConfig, VISION_DEFAULTS),
    },
)
# Llama4ForConditionalGeneration's safetensors names (modeling_llama4.py; the pixel-shuffle adapter is the
# projector's first half, as in vision_tensors)
MM_WEIGHT_RULES = (
    (r"language_model\.model\.embed_tokens\.weight", "embeddings"),
    (r"language_model\.model\.(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"language_model\.lm_head\.weight", "lm_head"),
    (r"vision_model\.vision_adapter\..+", "projector"),
    (r"vision_model\..+", "vision_tower"),
    (r"multi_modal_projector\..+", "projector"),
)

FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    sized_stages=stages,
    gguf_architectures=("llama4",),
    gguf_rules={"llama4": GGUFRules(swa=_llamacpp_chunks, chunked=True)},
    config_json={"llama4_text": LLAMA4_TEXT, "llama4": MM_CONFIG},
    weight_rules={"llama4_text": LM_WEIGHT_RULES, "llama4": MM_WEIGHT_RULES},
)
