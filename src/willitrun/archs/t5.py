"""T5 and flan-t5 (T5ForConditionalGeneration) and mT5 (MT5ForConditionalGeneration, the same
modules): an encoder-decoder whose every decoder layer cross-attends to the encoder output."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from .base import (
    T5_PRETRAINING_LENGTH,
    Buckets,
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    LayerKV,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
    linear,
    norm,
)
from .family import ConfigClass, ConfigReading, Family, WeightRules

ARCHITECTURES = ("t5", "mt5")


class T5Config(Strict):
    """T5Config fields (transformers models/t5/configuration_t5.py)."""

    vocab_size: Vocab
    d_model: Hidden
    d_kv: HeadDim  # per-head width; num_heads x d_kv need not equal d_model (t5-3b, t5-11b)
    d_ff: Intermediate
    num_layers: Layers
    num_decoder_layers: Layers | None = None  # transformers: None -> num_layers
    num_heads: Heads
    relative_attention_num_buckets: Buckets = 32
    relative_attention_max_distance: Positions = 128
    feed_forward_proj: Literal["relu", "gated-gelu", "gated-relu", "gated-silu"] = "relu"
    tie_word_embeddings: bool = True  # T5 v1.0 ties lm_head to `shared`; flan-t5 sets false
    n_positions: Positions | None = None  # trained input length; relative positions have no hard limit

    @property
    def decoder_layers(self) -> int:
        return self.num_decoder_layers or self.num_layers

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")


class T5Spec(ModelSpecBase):
    architecture: Literal["t5", "mt5"]
    config: T5Config


SPECS = {"t5": T5Spec, "mt5": T5Spec}


def tensors(spec: T5Spec) -> Iterator[Tensor]:
    """T5ForConditionalGeneration: `shared` embedding (used by encoder and decoder), encoder blocks
    (self-attention, FF), decoder blocks (self-attention, cross-attention, FF), lm_head unless tied.
    Attention projections have no bias; the relative position bias table (buckets x heads) exists
    only in the first block of each stack; T5's LayerNorm is weight-only."""
    c = spec.config
    d, inner = c.d_model, c.num_heads * c.d_kv
    yield Tensor("token_embd.weight", "embeddings", (c.vocab_size, d), "token_embd")

    def attention(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from linear(f"{prefix}.attn_q", comp, inner, d, "attn_q", False, i)
        yield from linear(f"{prefix}.attn_k", comp, inner, d, "attn_k", False, i)
        yield from linear(f"{prefix}.attn_v", comp, inner, d, "attn_v", False, i)
        yield from linear(f"{prefix}.attn_output", comp, d, inner, "attn_output", False, i)

    def feed_forward(prefix: str, comp: str, i: int) -> Iterator[Tensor]:
        yield from norm(f"{prefix}.ffn_norm", comp, d, i)
        if c.gated:
            yield from linear(f"{prefix}.ffn_gate", comp, c.d_ff, d, "ffn_gate", False, i)
        yield from linear(f"{prefix}.ffn_up", comp, c.d_ff, d, "ffn_up", False, i)
        yield from linear(f"{prefix}.ffn_down", comp, d, c.d_ff, "ffn_down", False, i)

    for stack, layers in (("encoder", c.num_layers), ("decoder", c.decoder_layers)):
        for i in range(layers):
            p = f"{stack}.{i}"
            yield from norm(f"{p}.attn_norm", stack, d, i)
            yield from attention(p, stack, i)
            if i == 0:
                yield Tensor(
                    f"{p}.attn_rel_b.weight", stack, (c.relative_attention_num_buckets, c.num_heads), "rel_bias", i
                )
            if stack == "decoder":
                yield from norm(f"{p}.cross_attn_norm", stack, d, i)
                yield from attention(f"{p}.cross", stack, i)
            yield from feed_forward(p, stack, i)
        yield from norm(f"{stack}.output_norm", stack, d, None)
    if not c.tie_word_embeddings:
        yield Tensor("output.weight", "lm_head", (c.vocab_size, d), "output")


def geometry(spec: T5Spec) -> Geometry:
    c = spec.config
    kv = LayerKV("full", c.num_heads, c.d_kv, c.d_kv)
    cross = LayerKV("cross", c.num_heads, c.d_kv, c.d_kv)
    n = c.decoder_layers
    # Relative position buckets set no hard limit; the window is the configured n_positions, else
    # 512, the length T5 was pre-trained with (Raffel et al. 2020, "Exploring the Limits of
    # Transfer Learning...", section 3.1.2), which flan-t5's configs leave out.
    return Geometry(
        architecture=spec.architecture,
        self_kv=(kv,) * n,
        cross_kv=(cross,) * n,
        vocab_size=c.vocab_size,
        tied_embeddings=c.tie_word_embeddings,
        hidden_size=c.d_model,
        num_attention_heads=c.num_heads,
        intermediate_size=c.d_ff,
        context_window=c.n_positions or T5_PRETRAINING_LENGTH,
        tp_constraints=(("attention heads (num_heads)", c.num_heads, False), ("d_ff", c.d_ff, False)),
        tp_kv_heads=c.num_heads,
        cross_source="encoder tokens",
        encoder_tokens_option=True,
        relative_position_bias=True,
        # T5PreTrainedModel._keep_in_fp32_modules = ["wo"] (transformers models/t5/modeling_t5.py; the
        # same in MT5PreTrainedModel, models/mt5/modeling_mt5.py): every FFN output projection (ffn_down here) stays float32 in a float16 load.
        keep_in_fp32_modules=("wo",),
        keep_in_fp32_roles=frozenset({"ffn_down"}),
        refusals={
            "ollama": "ollama runs no encoder-decoder (T5) models; llama.cpp does (llama-cli, llama-server)",
            "vllm": f"the vLLM profile covers decoder LMs, LLaVA and Llama 3.2 Vision; not {spec.architecture}",
        },
    )


def stages(spec: T5Spec, context: int, source: int, images: int) -> list[Stage]:
    c = spec.config
    inner = c.num_heads * c.d_kv
    # T5Attention adds a relative position bias to explicit scores: no fused kernel (eager).
    return [
        Stage(source, c.d_model, inner, inner, c.d_ff, c.gated, c.num_heads, source, eager_scores=True, per_input=True),
        Stage(context, c.d_model, inner, inner, c.d_ff, c.gated, c.num_heads, max(context, source), eager_scores=True),
    ]


def image_tokens(spec: T5Spec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: T5Spec, images: int, encoder_tokens: int) -> int:
    return encoder_tokens


# the config.json keys transformers' class reads and its defaults (transformers 5.23; moved from importers/configs.py)
T5 = ConfigClass(
    "T5Config",
    "t5/configuration_t5.py",
    T5Config,
    {
        "vocab_size": 32128,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 6,
        "num_decoder_layers": None,
        "num_heads": 8,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "relu",
    },
    copied=("n_positions",),
)  # tie_word_embeddings: see _t5_tied
MT5 = ConfigClass(
    "MT5Config",
    "mt5/configuration_mt5.py",
    T5Config,
    {
        "vocab_size": 250112,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 1024,
        "num_layers": 8,
        "num_decoder_layers": None,
        "num_heads": 6,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
    },
    copied=("n_positions",),
)  # tie_word_embeddings: see _t5_tied
# T5ForConditionalGeneration (and MT5ForConditionalGeneration, T5's module names): `shared`, encoder.block.N,
# decoder.block.N; the stacks' embed_tokens are tied to shared on load
WEIGHT_RULES: WeightRules = (
    (r"shared\.weight", "embeddings"),
    (r"(?:encoder|decoder)\.embed_tokens\.weight", None),
    (r"encoder\.(?:block\.\d+\..+|final_layer_norm\.weight)", "encoder"),
    (r"decoder\.(?:block\.\d+\..+|final_layer_norm\.weight)", "decoder"),
    (r"lm_head\.weight", "lm_head"),
)


def _tied(cfg: Mapping[str, Any]) -> bool:
    """Whether a T5 checkpoint shares its LM head with `shared`.

    config.json files written by transformers 4.x say `tie_word_embeddings: false` for the untied
    v1.1 / flan-t5 checkpoints (absent means tied, T5 v1.0). transformers 5.x T5Config turns that flag
    into `scale_decoder_outputs` and always writes `tie_word_embeddings: true`, so a config it saved
    carries the untied case as `scale_decoder_outputs: false`.
    """
    return cfg.get("tie_word_embeddings") is not False and cfg.get("scale_decoder_outputs") is not False


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """T5Config / MT5Config's keys, and whether the LM head is tied (`_tied`)."""
    out = reading.block(cfg, T5 if model_type == "t5" else MT5, "config")
    out["tie_word_embeddings"] = _tied(cfg)
    return out


FAMILY = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={"t5": T5, "mt5": MT5},
    read_config=dict.fromkeys(ARCHITECTURES, read_config),
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
