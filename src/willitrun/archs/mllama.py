"""Llama 3.2 Vision (MllamaForConditionalGeneration): a decoder whose layers at
`cross_attention_layers` cross-attend to the vision features (and keep no self-attention cache)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from .. import limits as L
from ..records import Field, field_validator, model_validator
from . import llama
from .base import (
    Channels,
    Geometry,
    Heads,
    Hidden,
    ImageSide,
    Intermediate,
    LayerIndex,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Tiles,
    TokenId,
    Vocab,
    check_heads,
    linear,
    lists_to_tuples,
    norm,
)
from .family import ConfigClass, ConfigReading, Family, WeightRules

ARCHITECTURES = ("mllama",)


class MllamaTextConfig(Strict):
    """MllamaTextConfig fields (transformers models/mllama/configuration_mllama.py)."""

    model_type: Literal["mllama_text_model"] | None = None
    vocab_size: Vocab
    hidden_size: Hidden
    intermediate_size: Intermediate
    num_hidden_layers: Layers  # self-attention and cross-attention layers together
    num_attention_heads: Heads
    num_key_value_heads: Heads
    max_position_embeddings: Positions
    cross_attention_layers: list[LayerIndex] = Field(max_length=L.MAX_LAYERS)
    hidden_act: Literal["silu"] = "silu"
    tie_word_embeddings: Literal[False] = False  # transformers never ties mllama (embedding has vocab + 8 rows)

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @model_validator(mode="after")
    def _check(self) -> MllamaTextConfig:
        check_heads(self.num_attention_heads, self.num_key_value_heads, "")
        bad = [i for i in self.cross_attention_layers if i >= self.num_hidden_layers]
        if bad:
            raise ValueError(f"cross_attention_layers {bad} out of range for {self.num_hidden_layers} layers")
        if len(set(self.cross_attention_layers)) != len(self.cross_attention_layers):
            raise ValueError("cross_attention_layers has duplicates")
        return self


class MllamaVisionConfig(Strict):
    """MllamaVisionConfig fields (transformers models/mllama/configuration_mllama.py)."""

    model_type: Literal["mllama_vision_model"] | None = None
    hidden_size: Hidden
    intermediate_size: Intermediate
    num_hidden_layers: Layers
    num_global_layers: Layers
    attention_heads: Heads
    image_size: ImageSide
    patch_size: ImageSide
    num_channels: Channels = 3
    max_num_tiles: Tiles
    vision_output_dim: Hidden
    intermediate_layers_indices: list[LayerIndex] = Field(max_length=L.MAX_LAYERS)
    supported_aspect_ratios: list[tuple[Tiles, Tiles]] = Field(max_length=L.MAX_LIST)

    @field_validator("supported_aspect_ratios", mode="before")
    @classmethod
    def _lists_to_tuples(cls, value: object) -> object:
        return lists_to_tuples(value)

    @property
    def positions_per_tile(self) -> int:
        """Patches per tile plus the class token: (560/14)^2 + 1 = 1601 for Llama 3.2 Vision."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @model_validator(mode="after")
    def _check(self) -> MllamaVisionConfig:
        if self.vision_output_dim != self.hidden_size * (len(self.intermediate_layers_indices) + 1):
            raise ValueError(
                "vision_output_dim must equal hidden_size x (len(intermediate_layers_indices) + 1) "
                "(the final state concatenated with the intermediate ones)"
            )
        return self


class MllamaConfig(Strict):
    text_config: MllamaTextConfig
    vision_config: MllamaVisionConfig
    image_token_index: TokenId | None = None


class MllamaSpec(ModelSpecBase):
    architecture: Literal["mllama"]
    config: MllamaConfig


SPECS = {"mllama": MllamaSpec}


def tensors(spec: MllamaSpec) -> Iterator[Tensor]:
    """MllamaVisionModel (patch conv, class embedding, gated tile/position embeddings, a local
    encoder and a gated global encoder), the linear projector, and the text model whose
    cross-attention layers (q/k norms, tanh gates) sit at `cross_attention_layers`. The text
    embedding has vocab_size + 8 rows (MllamaTextModel: extra image tokens); lm_head has vocab_size."""
    c = spec.config
    v, t = c.vision_config, c.text_config
    h, comp = v.hidden_size, "vision_tower"
    ratios = len(v.supported_aspect_ratios) + 1  # max_aspect_ratio_id + 1 rows
    p = v.positions_per_tile
    yield Tensor("vision.patch_embd.weight", comp, (h, v.num_channels, v.patch_size, v.patch_size), "conv")
    yield Tensor("vision.class_embd", comp, (h,), "other")
    yield Tensor("vision.gated_position_embd.gate", comp, (1,), "other")
    yield Tensor("vision.gated_position_embd.embedding", comp, (p, h), "pos_embd")
    yield Tensor("vision.gated_position_embd.tile_embedding", comp, (ratios, v.max_num_tiles * p * h), "pos_embd")
    for name in ("pre_tile_position_embd", "post_tile_position_embd"):
        yield Tensor(f"vision.{name}.embedding", comp, (ratios, v.max_num_tiles * h), "pos_embd")
        yield Tensor(f"vision.{name}.gate", comp, (1,), "other")
    yield from norm("vision.ln_pre", comp, h, None, bias=True)
    yield from norm("vision.ln_post", comp, h, None, bias=True)
    for stack, layers, gated in (("local", v.num_hidden_layers, False), ("global", v.num_global_layers, True)):
        for i in range(layers):
            q = f"vision.{stack}.{i}"
            for role in ("attn_q", "attn_k", "attn_v", "attn_output"):
                yield from linear(f"{q}.{role}", comp, h, h, role, False, i)
            yield from linear(f"{q}.ffn_up", comp, v.intermediate_size, h, "ffn_up", True, i)
            yield from linear(f"{q}.ffn_down", comp, h, v.intermediate_size, "ffn_down", True, i)
            yield from norm(f"{q}.ln1", comp, h, i, bias=True)
            yield from norm(f"{q}.ln2", comp, h, i, bias=True)
            if gated:
                yield Tensor(f"{q}.gate_attn", comp, (1,), "other", i)
                yield Tensor(f"{q}.gate_ffn", comp, (1,), "other", i)

    yield from linear("projector", "projector", t.hidden_size, v.vision_output_dim, "projector", True, None)

    th, hd = t.hidden_size, t.head_size
    yield Tensor("token_embd.weight", "embeddings", (t.vocab_size + 8, th), "token_embd")
    cross = set(t.cross_attention_layers)
    for i in range(t.num_hidden_layers):
        q = f"decoder.{i}"
        if i in cross:
            q = f"{q}.cross"
            yield from llama.attention_tensors(
                q, "decoder", i, hidden=th, heads=t.num_attention_heads, kv_heads=t.kv_heads, head_dim=hd, bias=False
            )
            yield from norm(f"{q}.q_norm", "decoder", hd, i)
            yield from norm(f"{q}.k_norm", "decoder", hd, i)
            yield Tensor(f"{q}.attn_gate", "decoder", (1,), "other", i)
            yield Tensor(f"{q}.mlp_gate", "decoder", (1,), "other", i)
        else:
            yield from llama.attention_tensors(
                q, "decoder", i, hidden=th, heads=t.num_attention_heads, kv_heads=t.kv_heads, head_dim=hd, bias=False
            )
        yield from norm(f"{q}.attn_norm", "decoder", th, i)
        yield from llama.gated_mlp(q, "decoder", th, t.intermediate_size, False, i)
        yield from norm(f"{q}.ffn_norm", "decoder", th, i)
    yield from norm("decoder.output_norm", "decoder", th, None)
    # MllamaForConditionalGeneration never ties: its embedding has vocab_size + 8 rows, lm_head vocab_size
    yield Tensor("output.weight", "lm_head", (t.vocab_size, th), "output")


def geometry(spec: MllamaSpec) -> Geometry:
    t, v = spec.config.text_config, spec.config.vision_config
    cross = set(t.cross_attention_layers)
    kv = LayerKV("full", t.kv_heads, t.head_size, t.head_size)
    xkv = LayerKV("cross", t.kv_heads, t.head_size, t.head_size)
    n = t.num_hidden_layers
    return Geometry(
        architecture=spec.architecture,
        self_kv=tuple(None if i in cross else kv for i in range(n)),
        cross_kv=tuple(xkv if i in cross else None for i in range(n)),
        vocab_size=t.vocab_size,
        tied_embeddings=False,
        hidden_size=t.hidden_size,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        context_window=t.max_position_embeddings,
        tp_constraints=(
            ("attention heads", t.num_attention_heads, False),
            ("KV heads", t.num_key_value_heads, True),
            ("intermediate_size", t.intermediate_size, False),
            ("vision tower attention heads", v.attention_heads, False),
        ),
        tp_kv_heads=t.num_key_value_heads,
        cross_source="vision positions (tiles x (patches + 1) per image)",
        gguf_n_gqa=t.num_attention_heads // t.kv_heads,
        takes_images=True,
        vision_cross_attention=True,
        vision_tiles=(v.max_num_tiles, v.positions_per_tile),
        refusals={
            "llama.cpp": "llama.cpp has no Llama 3.2 Vision (mllama) support; ollama runs it with its own engine"
        },
    )


def stages(spec: MllamaSpec, context: int, source: int, images: int) -> list[Stage]:
    c, v = spec.config.text_config, spec.config.vision_config
    out = [
        Stage(
            context,
            c.hidden_size,
            c.hidden_size,
            c.kv_heads * c.head_size,
            c.intermediate_size,
            True,
            c.num_attention_heads,
            max(context, source),
        )
    ]
    if images:
        n = v.max_num_tiles * v.positions_per_tile * images
        out.append(
            Stage(
                n,
                v.hidden_size,
                v.hidden_size,
                v.hidden_size,
                v.intermediate_size,
                False,
                v.attention_heads,
                v.positions_per_tile,
                per_input=True,
            )
        )
    return out


def image_tokens(spec: MllamaSpec, image_size: tuple[int, int] | None) -> int:
    return 0  # the image is cross-attended, not placed in the context


def cross_source_tokens(spec: MllamaSpec, images: int, encoder_tokens: int) -> int:
    v = spec.config.vision_config
    # MllamaVisionModel outputs max_num_tiles x (patches + 1) positions per image; unused tiles
    # are masked, not dropped, so the keys/values always cover every tile.
    return images * v.max_num_tiles * v.positions_per_tile


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
MLLAMA_TEXT = ConfigClass(
    "MllamaTextConfig",
    "mllama/configuration_mllama.py",
    MllamaTextConfig,
    {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
    none_is_default=("cross_attention_layers",),
)
MLLAMA_VISION = ConfigClass(
    "MllamaVisionConfig",
    "mllama/configuration_mllama.py",
    MllamaVisionConfig,
    {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "attention_heads": 16,
        "image_size": 448,
        "patch_size": 14,
        "num_channels": 3,
        "max_num_tiles": 4,
        "vision_output_dim": 7680,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    },
    none_is_default=("intermediate_layers_indices", "supported_aspect_ratios"),
)
# MllamaForConditionalGeneration: vision_model.*, multi_modal_projector, the language model as LLaVA's
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?vision_model\..+", "vision_tower"),
    (r"(?:model\.)?multi_modal_projector\.(?:weight|bias)", "projector"),
    *llama.VLM_TEXT_WEIGHT_RULES,
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """MllamaConfig: its text_config and vision_config (each its class's defaults), image_token_index."""
    text = reading.block(reading.sub(cfg, "text_config") or {}, MLLAMA_TEXT, "config.text_config")
    vision = reading.block(reading.sub(cfg, "vision_config") or {}, MLLAMA_VISION, "config.vision_config")
    if text.get("tie_word_embeddings") is True:
        # MllamaForConditionalGeneration has no _tied_weights_keys: its lm_head is always separate.
        text["tie_word_embeddings"] = False
        reading.notes.append(
            "text_config.tie_word_embeddings is true in the source, but transformers never ties "
            "Mllama's LM head (MllamaForConditionalGeneration has no tied weights): written as false."
        )
    out: dict[str, Any] = {"text_config": text, "vision_config": vision}
    if "image_token_index" in cfg:
        out["image_token_index"] = cfg["image_token_index"]
    return out


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    read_config={"mllama": read_config},
    weight_rules={"mllama": WEIGHT_RULES},
)
