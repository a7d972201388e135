"""Pydantic models of the YAML spec files (see docs/spec-format.md).

Architecture fields carry the names of Hugging Face `config.json`, so a spec can be checked line by
line against its source. Where config.json may omit a field, the default is the one transformers
applies itself (named per field), never another model's value.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
ID_PATTERN = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
CheckpointDtype = Literal["float32", "float16", "bfloat16"]


class _Strict(BaseModel):
    # strict: YAML's "24" stays a string and is refused where a number is expected.
    # defer_build: a schema is built on first use, so the CLI pays only for the classes it needs.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


def _check_heads(heads: int, kv_heads: int, where: str) -> None:
    if heads % kv_heads:
        raise ValueError(f"{where}num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")


# --------------------------------------------------------------------------------------------------
# Language-model blocks
# --------------------------------------------------------------------------------------------------
class LlamaConfig(_Strict):
    """LlamaConfig / MistralConfig fields (transformers models/llama/configuration_llama.py)."""

    model_type: Literal["llama", "mistral"] | None = None  # present inside llava's text_config
    vocab_size: PosInt
    hidden_size: PosInt
    intermediate_size: PosInt
    num_hidden_layers: PosInt
    num_attention_heads: PosInt
    num_key_value_heads: PosInt | None = None  # transformers: None -> num_attention_heads (MHA)
    head_dim: PosInt | None = None  # transformers: None -> hidden_size // num_attention_heads
    max_position_embeddings: PosInt
    hidden_act: Literal["silu", "gelu", "gelu_pytorch_tanh", "relu"] = "silu"
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    sliding_window: PosInt | None = None  # Mistral 7B v0.1: 4096

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @model_validator(mode="after")
    def _check(self) -> LlamaConfig:
        _check_heads(self.num_attention_heads, self.kv_heads, "")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); give head_dim explicitly"
            )
        return self


class T5Config(_Strict):
    """T5Config fields (transformers models/t5/configuration_t5.py)."""

    vocab_size: PosInt
    d_model: PosInt
    d_kv: PosInt  # per-head width; num_heads x d_kv need not equal d_model (t5-3b, t5-11b)
    d_ff: PosInt
    num_layers: PosInt
    num_decoder_layers: PosInt | None = None  # transformers: None -> num_layers
    num_heads: PosInt
    relative_attention_num_buckets: PosInt = 32
    relative_attention_max_distance: PosInt = 128
    feed_forward_proj: Literal["relu", "gated-gelu", "gated-relu", "gated-silu"] = "relu"
    tie_word_embeddings: bool = True  # T5 v1.0 ties lm_head to `shared`; flan-t5 sets false
    n_positions: PosInt | None = None  # trained input length; relative positions have no hard limit

    @property
    def decoder_layers(self) -> int:
        return self.num_decoder_layers or self.num_layers

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")


class WhisperConfig(_Strict):
    """WhisperConfig fields (transformers models/whisper/configuration_whisper.py)."""

    vocab_size: PosInt
    num_mel_bins: PosInt
    d_model: PosInt
    encoder_layers: PosInt
    encoder_attention_heads: PosInt
    encoder_ffn_dim: PosInt
    decoder_layers: PosInt
    decoder_attention_heads: PosInt
    decoder_ffn_dim: PosInt
    max_source_positions: PosInt  # encoder positions per 30 s window (1500)
    max_target_positions: PosInt  # learned decoder positions: a hard token limit (448)
    tie_word_embeddings: bool = True  # proj_out shares the decoder token embedding

    @model_validator(mode="after")
    def _check(self) -> WhisperConfig:
        for heads in (self.encoder_attention_heads, self.decoder_attention_heads):
            if self.d_model % heads:
                raise ValueError(f"d_model ({self.d_model}) is not a multiple of the attention heads ({heads})")
        return self


# --------------------------------------------------------------------------------------------------
# Vision blocks
# --------------------------------------------------------------------------------------------------
class ClipVisionConfig(_Strict):
    """CLIPVisionConfig fields (transformers models/clip/configuration_clip.py)."""

    model_type: Literal["clip_vision_model"] | None = None
    hidden_size: PosInt
    intermediate_size: PosInt
    num_hidden_layers: PosInt
    num_attention_heads: PosInt
    image_size: PosInt
    patch_size: PosInt
    num_channels: PosInt = 3
    projection_dim: PosInt | None = None  # unused by LLaVA's tower (no projection head)
    hidden_act: Literal["quick_gelu", "gelu"] = "quick_gelu"

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @model_validator(mode="after")
    def _check(self) -> ClipVisionConfig:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) is not a multiple of patch_size ({self.patch_size})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")
        return self


class LlavaConfig(_Strict):
    """LlavaConfig / LlavaNextConfig fields (transformers models/llava*/configuration_llava*.py)."""

    text_config: LlamaConfig
    vision_config: ClipVisionConfig
    projector_hidden_act: Literal["gelu"] = "gelu"
    multimodal_projector_bias: bool = True
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_grid_pinpoints: list[tuple[PosInt, PosInt]] | None = None  # llava_next: [height, width]
    image_token_index: NonNegInt | None = None
    image_seq_length: PosInt | None = None
    tie_word_embeddings: bool = False

    @model_validator(mode="after")
    def _mistral_window_explicit(self) -> LlavaConfig:
        t = self.text_config
        if t.model_type == "mistral" and "sliding_window" not in t.model_fields_set:
            raise ValueError("text_config.sliding_window: give it explicitly for mistral (null for no window)")
        return self

    @field_validator("image_grid_pinpoints", mode="before")
    @classmethod
    def _lists_to_tuples(cls, value: object) -> object:
        # YAML gives lists; strict mode only takes tuples for tuple fields.
        if isinstance(value, list):
            return [tuple(v) if isinstance(v, list) else v for v in value]
        return value


class MllamaTextConfig(_Strict):
    """MllamaTextConfig fields (transformers models/mllama/configuration_mllama.py)."""

    model_type: Literal["mllama_text_model"] | None = None
    vocab_size: PosInt
    hidden_size: PosInt
    intermediate_size: PosInt
    num_hidden_layers: PosInt  # self-attention and cross-attention layers together
    num_attention_heads: PosInt
    num_key_value_heads: PosInt
    max_position_embeddings: PosInt
    cross_attention_layers: list[NonNegInt]
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
        _check_heads(self.num_attention_heads, self.num_key_value_heads, "")
        bad = [i for i in self.cross_attention_layers if i >= self.num_hidden_layers]
        if bad:
            raise ValueError(f"cross_attention_layers {bad} out of range for {self.num_hidden_layers} layers")
        if len(set(self.cross_attention_layers)) != len(self.cross_attention_layers):
            raise ValueError("cross_attention_layers has duplicates")
        return self


class MllamaVisionConfig(_Strict):
    """MllamaVisionConfig fields (transformers models/mllama/configuration_mllama.py)."""

    model_type: Literal["mllama_vision_model"] | None = None
    hidden_size: PosInt
    intermediate_size: PosInt
    num_hidden_layers: PosInt
    num_global_layers: PosInt
    attention_heads: PosInt
    image_size: PosInt
    patch_size: PosInt
    num_channels: PosInt = 3
    max_num_tiles: PosInt
    vision_output_dim: PosInt
    intermediate_layers_indices: list[NonNegInt]
    supported_aspect_ratios: list[tuple[PosInt, PosInt]]

    @field_validator("supported_aspect_ratios", mode="before")
    @classmethod
    def _lists_to_tuples(cls, value: object) -> object:
        if isinstance(value, list):
            return [tuple(v) if isinstance(v, list) else v for v in value]
        return value

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


class MllamaConfig(_Strict):
    text_config: MllamaTextConfig
    vision_config: MllamaVisionConfig
    image_token_index: NonNegInt | None = None


# --------------------------------------------------------------------------------------------------
# Model spec files
# --------------------------------------------------------------------------------------------------
class _ModelSpecBase(_Strict):
    id: Id
    name: str = Field(min_length=1)
    aliases: list[Annotated[str, Field(pattern=ID_PATTERN)]] = []
    hf_id: str | None = None
    dtype: CheckpointDtype
    parameters_declared: PosInt | None = None
    sources: dict[str, str]
    notes: str | None = None


class LlamaSpec(_ModelSpecBase):
    architecture: Literal["llama", "mistral"]
    config: LlamaConfig

    @model_validator(mode="after")
    def _mistral_window_explicit(self) -> LlamaSpec:
        # transformers' MistralConfig defaults sliding_window to 4096 when the key is absent, while
        # null means no window: make the spec say which (Mistral 7B v0.1: 4096; v0.2: null).
        if self.architecture == "mistral" and "sliding_window" not in self.config.model_fields_set:
            raise ValueError("config.sliding_window: give it explicitly for mistral (null for no window)")
        return self


class T5Spec(_ModelSpecBase):
    architecture: Literal["t5"]
    config: T5Config


class WhisperSpec(_ModelSpecBase):
    architecture: Literal["whisper"]
    config: WhisperConfig


class LlavaSpec(_ModelSpecBase):
    architecture: Literal["llava", "llava_next"]
    config: LlavaConfig

    @model_validator(mode="after")
    def _check_pinpoints(self) -> LlavaSpec:
        if self.architecture == "llava_next" and not self.config.image_grid_pinpoints:
            raise ValueError("llava_next needs config.image_grid_pinpoints")
        return self


class MllamaSpec(_ModelSpecBase):
    architecture: Literal["mllama"]
    config: MllamaConfig


AnyModelSpec = Union[LlamaSpec, T5Spec, WhisperSpec, LlavaSpec, MllamaSpec]
ModelSpec = Annotated[AnyModelSpec, Field(discriminator="architecture")]
SPEC_CLASSES: dict[str, type[_ModelSpecBase]] = {
    "llama": LlamaSpec, "mistral": LlamaSpec, "t5": T5Spec, "whisper": WhisperSpec,
    "llava": LlavaSpec, "llava_next": LlavaSpec, "mllama": MllamaSpec,
}
ARCHITECTURES = tuple(SPEC_CLASSES)


class _Architecture(BaseModel):
    model_config = ConfigDict(defer_build=True)
    architecture: Literal["llama", "mistral", "t5", "whisper", "llava", "llava_next", "mllama"]


def parse_model_spec(data: object) -> AnyModelSpec:
    """Validate a model spec document; only the schema of its architecture is built (fast start-up)."""
    arch = data.get("architecture") if isinstance(data, dict) else None
    if not (isinstance(arch, str) and arch in SPEC_CLASSES):
        arch = _Architecture.model_validate(data).architecture  # raises the readable error
    return SPEC_CLASSES[arch].model_validate(data)  # type: ignore[return-value]


def model_spec_schema() -> dict[str, object]:
    """JSON Schema of a model spec file (all architectures)."""
    return TypeAdapter(ModelSpec).json_schema()


# --------------------------------------------------------------------------------------------------
# GPU spec files
# --------------------------------------------------------------------------------------------------
GIB = 1 << 30
MIB = 1 << 20


class GPUSpec(_Strict):
    id: Id
    name: str = Field(min_length=1)
    vendor: Literal["nvidia", "amd", "apple"]
    segment: Literal["consumer", "workstation", "datacenter", "apple"]
    aliases: list[Annotated[str, Field(pattern=ID_PATTERN)]] = []
    nvml_names: list[str] = []
    memory_gib: Annotated[float, Field(gt=0, le=4096)]
    memory_as_stated: str
    reported_total_mib: Annotated[int, Field(gt=0)] | None = None
    memory_type: str
    bandwidth_gb_s: Annotated[float, Field(gt=0, le=100_000)]
    architecture: str
    gpu_memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    notes: str | None = None
    sources: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> GPUSpec:
        if (self.vendor == "apple") != (self.gpu_memory_fraction is not None):
            raise ValueError("gpu_memory_fraction is required for Apple unified memory and only there")
        if self.reported_total_mib is not None and not (
            0.85 * self.memory_gib * GIB <= self.reported_total_mib * MIB <= 1.05 * self.memory_gib * GIB
        ):
            raise ValueError("reported_total_mib is not within -15%/+5% of memory_gib")
        return self

    @property
    def capacity_bytes(self) -> int:
        """Memory a model may use: the driver's reported total, else capacity (x GPU share on Apple)."""
        if self.reported_total_mib is not None:
            return self.reported_total_mib * MIB
        total = round(self.memory_gib * GIB)
        if self.gpu_memory_fraction is not None:
            return int(total * self.gpu_memory_fraction)
        return total

