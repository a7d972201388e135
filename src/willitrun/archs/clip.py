"""CLIP and SigLIP used alone (CLIPModel, SiglipModel): a text encoder and a vision encoder, each run
once per input, whose pooled outputs are projected into one embedding space. Nothing is generated,
so there is no decoder and no key/value cache of any kind: memory is the weights, the activations of
one pass over the batch (text tokens and images) and the runtime overhead.

Tensors (transformers 5.23 models/clip/modeling_clip.py, models/siglip/modeling_siglip.py):
- text tower: token and position embeddings, pre-LN layers with biased q/k/v/out and fc1/fc2 (the
  same layer as the vision tower's), a final LayerNorm; SigLIP adds `head`, a biased
  Linear(hidden, projection_size);
- vision tower: CLIP's (class token, unbiased patch conv, pre- and post-LN; archs/llava.py) or
  SigLIP's (biased patch conv, no class token, post-LN, attention-pooling head; archs/siglip.py);
- CLIP: `visual_projection` and `text_projection` (no bias) to projection_dim, and `logit_scale`;
  SigLIP: `logit_scale` and `logit_bias` (one element each).
Components: `embeddings` (the token embedding), `encoder` (the text tower), `vision_tower`,
`projector` (projections, SigLIP's text head, the logit scale/bias).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ..records import model_validator
from .base import (
    Geometry,
    Heads,
    Hidden,
    Intermediate,
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
from .family import BUFFER, ConfigClass, ConfigReading, Family, WeightRules
from .llava import CLIP_VISION, ClipVisionConfig, clip_encoder_layer, clip_vision_tensors
from .siglip import SIGLIP_VISION, SiglipVisionConfig
from .siglip import stage as siglip_stage
from .siglip import tensors as siglip_vision_tensors

ARCHITECTURES = ("clip", "siglip")


class ClipTextConfig(Strict):
    """CLIPTextConfig fields with its defaults (transformers models/clip/configuration_clip.py)."""

    model_type: Literal["clip_text_model"] | None = None
    vocab_size: Vocab = 49408
    hidden_size: Hidden = 512
    intermediate_size: Intermediate = 2048
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 8
    max_position_embeddings: Positions = 77  # learned positions: a hard input limit
    hidden_act: Literal["quick_gelu", "gelu"] = "quick_gelu"
    projection_dim: Hidden | None = None  # read by CLIPTextModelWithProjection only; CLIPModel uses the top-level one

    @model_validator(mode="after")
    def _check(self) -> ClipTextConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("text_config: hidden_size is not a multiple of num_attention_heads")
        return self


class SiglipTextConfig(Strict):
    """SiglipTextConfig fields with its defaults (transformers models/siglip/configuration_siglip.py)."""

    model_type: Literal["siglip_text_model"] | None = None
    vocab_size: Vocab = 32000
    hidden_size: Hidden = 768
    intermediate_size: Intermediate = 3072
    num_hidden_layers: Layers = 12
    num_attention_heads: Heads = 12
    max_position_embeddings: Positions = 64
    hidden_act: Literal["gelu_pytorch_tanh"] = "gelu_pytorch_tanh"
    projection_size: Hidden | None = None  # the text head's output; None: hidden_size

    @model_validator(mode="after")
    def _check(self) -> SiglipTextConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("text_config: hidden_size is not a multiple of num_attention_heads")
        return self


class ClipConfig(Strict):
    """CLIPConfig: the two towers and the shared projection width (default 512)."""

    text_config: ClipTextConfig = ClipTextConfig()
    vision_config: ClipVisionConfig
    projection_dim: Hidden = 512


class SiglipConfig(Strict):
    """SiglipConfig: the two towers (no projection width: the towers' heads project)."""

    text_config: SiglipTextConfig = SiglipTextConfig()
    vision_config: SiglipVisionConfig = SiglipVisionConfig()


class ClipSpec(ModelSpecBase):
    architecture: Literal["clip"]
    config: ClipConfig


class SiglipSpec(ModelSpecBase):
    architecture: Literal["siglip"]
    config: SiglipConfig


SPECS = {"clip": ClipSpec, "siglip": SiglipSpec}
_NAMES = {"clip": "CLIP", "siglip": "SigLIP"}


def _text_tower(t: ClipTextConfig | SiglipTextConfig) -> Iterator[Tensor]:
    h = t.hidden_size
    yield Tensor("token_embd.weight", "embeddings", (t.vocab_size, h), "token_embd")
    yield Tensor("text.position_embd.weight", "encoder", (t.max_position_embeddings, h), "pos_embd")
    for i in range(t.num_hidden_layers):
        yield from clip_encoder_layer(f"text.{i}", "encoder", h, t.intermediate_size, i)
    yield from norm("text.output_norm", "encoder", h, None, bias=True)


def tensors(spec: ClipSpec | SiglipSpec) -> Iterator[Tensor]:
    yield from _text_tower(spec.config.text_config)
    if isinstance(spec, ClipSpec):
        c = spec.config
        yield from clip_vision_tensors(c.vision_config)
        yield from linear(
            "projector.visual_projection",
            "projector",
            c.projection_dim,
            c.vision_config.hidden_size,
            "projector",
            False,
            None,
        )
        yield from linear(
            "projector.text_projection",
            "projector",
            c.projection_dim,
            c.text_config.hidden_size,
            "projector",
            False,
            None,
        )
        yield Tensor("projector.logit_scale", "projector", (), "other")  # a 0-d Parameter
        return
    t = spec.config.text_config
    yield from linear(
        "projector.text_head", "projector", t.projection_size or t.hidden_size, t.hidden_size, "projector", True, None
    )
    yield from siglip_vision_tensors(spec.config.vision_config)
    yield Tensor("projector.logit_scale", "projector", (1,), "other")
    yield Tensor("projector.logit_bias", "projector", (1,), "other")


def geometry(spec: ClipSpec | SiglipSpec) -> Geometry:
    c, arch = spec.config, spec.architecture
    t, v = c.text_config, c.vision_config
    name = _NAMES[arch]
    return Geometry(
        architecture=arch,
        self_kv=(),
        cross_kv=(),
        vocab_size=t.vocab_size,
        tied_embeddings=False,
        hidden_size=t.hidden_size,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        # the text tower's learned positions: longer text is impossible (CLIPTextEmbeddings raises)
        context_window=t.max_position_embeddings,
        hard_limit=t.max_position_embeddings,
        tp_constraints=(
            ("text attention heads", t.num_attention_heads, False),
            ("vision attention heads", v.num_attention_heads, False),
        ),
        tp_kv_heads=t.num_attention_heads,
        takes_images=True,
        encoder_only=True,
        no_cross_reason=f"{name} is an encoder run once per input: nothing is generated, so nothing is cached",
        refusals={
            "llama.cpp": f"llama.cpp runs {name} only as a multimodal projector (mmproj) of a language "
            "model, not as a model of its own",
            "ollama": f"ollama runs no {name} models on their own",
            # vLLM registers CLIPModel / SiglipModel as pooling (embedding) models
            # (vllm/model_executor/models/registry.py _EMBEDDING_MODELS: CLIPEmbeddingModel,
            # SiglipEmbeddingModel); the profile sizes generative models' KV pools only
            "vllm": f"vLLM serves {name} as an embedding (pooling) model, which the vLLM profile does not "
            "size (it covers decoder LMs, LLaVA and Llama 3.2 Vision); use --engine transformers",
        },
    )


def stages(spec: ClipSpec | SiglipSpec, context: int, source: int, images: int) -> list[Stage]:
    """The text tower over `context` tokens and the vision tower over `images` images, each once per
    input (SDPA: no whole score matrix)."""
    t, v = spec.config.text_config, spec.config.vision_config
    h = t.hidden_size
    out = [Stage(context, h, h, h, t.intermediate_size, False, t.num_attention_heads, context, per_input=True)]
    if images:
        if isinstance(v, SiglipVisionConfig):
            out.append(siglip_stage(v, images))
        else:
            n = v.patches + 1  # the class token
            out.append(
                Stage(
                    n * images,
                    v.hidden_size,
                    v.hidden_size,
                    v.hidden_size,
                    v.intermediate_size,
                    False,
                    v.num_attention_heads,
                    n,
                    per_input=True,
                )
            )
    return out


def image_tokens(spec: ClipSpec | SiglipSpec, image_size: tuple[int, int] | None) -> int:
    return 0  # images go through the vision tower only, never into a text context


def cross_source_tokens(spec: ClipSpec | SiglipSpec, images: int, encoder_tokens: int) -> int:
    return 0


# the config.json keys of transformers' classes and their defaults (moved from importers/configs.py)
CLIP_TEXT = ConfigClass(
    "CLIPTextConfig",
    "clip/configuration_clip.py",
    ClipTextConfig,
    {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
    },
)
CLIP = ConfigClass("CLIPConfig", "clip/configuration_clip.py", ClipConfig, {"projection_dim": 512})

SIGLIP_TEXT = ConfigClass(
    "SiglipTextConfig",
    "siglip/configuration_siglip.py",
    SiglipTextConfig,
    {
        "vocab_size": 32000,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 64,
        "hidden_act": "gelu_pytorch_tanh",
    },
    copied=("projection_size",),
)
# model_type -> class of the configs a CLIPModel / SiglipModel config.json holds
CLASSES = {
    "clip_text_model": CLIP_TEXT,
    "clip": CLIP,
    "siglip_text_model": SIGLIP_TEXT,
    "siglip_vision_model": SIGLIP_VISION,
}
# CLIPModel / SiglipModel (issue 11): older CLIP files also store the position_ids buffers
WEIGHT_RULES: WeightRules = (
    (r"(?:text_model|vision_model)\.embeddings\.position_ids", BUFFER),
    (r"text_model\.embeddings\.token_embedding\.weight", "embeddings"),
    (r"text_model\.head\..+", "projector"),
    (r"text_model\..+", "encoder"),
    (r"vision_model\..+", "vision_tower"),
    (r"(?:visual_projection|text_projection)\.weight|logit_scale|logit_bias", "projector"),
)


def read_config(reading: ConfigReading, cfg: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """CLIP / SigLIP used alone: a text_config and a vision_config of the model's own towers, CLIPConfig's keys."""
    text_type, vision_type, vision_cls = {
        "clip": ("clip_text_model", "clip_vision_model", CLIP_VISION),
        "siglip": ("siglip_text_model", "siglip_vision_model", SIGLIP_VISION),
    }[model_type]
    text = reading.typed(
        reading.sub(cfg, "text_config"), "config.text_config", {text_type: CLASSES[text_type]}, text_type
    )
    vision = reading.typed(
        reading.sub(cfg, "vision_config"), "config.vision_config", {vision_type: vision_cls}, vision_type
    )
    out = {"text_config": text, "vision_config": vision}
    if model_type == "clip":
        out.update(reading.block(cfg, CLIP, "config"))
    return out


FAMILY: Family[Any] = Family(
    __name__,
    SPECS,
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    read_config=dict.fromkeys(ARCHITECTURES, read_config),
    weight_rules=dict.fromkeys(ARCHITECTURES, WEIGHT_RULES),
)
