"""The typed contract every architecture family fulfils, and what a family declares about itself.

A family module (`willitrun/archs/<module>.py`) ends with one `FAMILY = Family(...)`: its spec
classes, the functions the arithmetic calls (tensors, geometry, activation stages, image and
cross-attention source tokens), and the declarations other parts of willitrun read instead of keeping
their own tables: the config.json keys per model_type with transformers' defaults (`config_json`,
read by importers/configs.py), where the safetensors names land (`weight_rules`, read by
importers/weights.py) and the llama.cpp architecture names of its GGUF files (`gguf_architectures`).

The registry (`willitrun.archs`) loads a module on first use and checks what it finds is a `Family`
serving exactly the architectures the registry's table gives that module (docs/adding-an-architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .base import Geometry, ModelSpecBase, Stage, Tensor

TRANSFORMERS_VERSION = "5.23.0"
TRANSFORMERS_MODELS_URL = (
    f"https://github.com/huggingface/transformers/blob/v{TRANSFORMERS_VERSION}/src/transformers/models/"
)


@dataclass(frozen=True)
class ConfigClass:
    """The fields of one transformers config class that a willitrun spec models, with its defaults.

    `defaults` maps a field to the value transformers uses when config.json leaves it out; None
    means transformers derives it from other fields (num_key_value_heads -> num_attention_heads),
    which the spec does the same way. Fields missing from `defaults` are not read by that model
    class (Mistral has no attention_bias) and are dropped. `copied` fields are kept when present and
    never filled. `none_is_default` fields treat an explicit null like an absent field (their
    __post_init__ replaces None with the default).
    """

    name: str
    path: str
    spec_model: Any
    defaults: Mapping[str, Any]
    copied: tuple[str, ...] = ()
    none_is_default: tuple[str, ...] = ()
    # a remote-code class transformers does not ship: the Hub file it is read from (never executed)
    remote: str = ""
    # config.json key -> field, the class's attribute_map (transformers 5 saves Qwen3VLMoeTextConfig's num_experts as
    # num_local_experts): read under the field's name when the field itself is absent
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.remote or TRANSFORMERS_MODELS_URL + self.path


class ConfigReading(Protocol):
    """What importers/configs.py lends a family that reads its config.json with code of its own
    (`Family.read_config`: nested text / vision configs, a flag derived from two keys, a note): the
    generic filling of one block from a `ConfigClass`, sub-config access and the two errors, so a family
    module imports nothing above archs/ (shared/house.json). `sources` and `notes` collect what the
    import cites and says."""

    source: str
    sources: dict[str, str]
    notes: list[str]

    def block(
        self, cfg: Mapping[str, Any], cls: ConfigClass, where: str, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The fields of `cls` from `cfg`; an absent one gets `defaults` (else the class's), cited."""
        ...

    def sub(self, cfg: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        """`cfg[key]` when it is a JSON object, None when absent; anything else is refused."""
        ...

    def typed(
        self, cfg: Mapping[str, Any] | None, where: str, classes: Mapping[str, ConfigClass], default: str
    ) -> dict[str, Any]:
        """A sub-config whose model_type (`default` when absent) picks one of `classes`: its model_type and
        fields; another model_type is refused naming the supported ones."""
        ...

    def sub_config(
        self,
        cfg: Mapping[str, Any] | None,
        key: str,
        default_type: str,
        classes: Mapping[str, ConfigClass],
        init: Mapping[str, Any],
        top: ConfigClass,
    ) -> dict[str, Any]:
        """One sub-config as transformers' SubConfigSpec.create_subconfig builds it (`init`: the composite
        class's init_kwargs, used only when the dict is absent)."""
        ...

    def malformed(self, message: str) -> Exception:
        """The error for a value no model can be built from (a SpecError naming the source)."""
        ...

    def shown(self, value: object) -> str:
        """A value read from the file, for a message: its repr, clipped."""
        ...


# (reading, the config.json mapping, its model_type) -> the spec's `config` block
ConfigReader = Callable[[ConfigReading, Mapping[str, Any], str], dict[str, Any]]
# (reading, the spec's config block) -> the spec's `preprocessor` block: what preprocessor_config.json would say,
# assumed and said in a note
PreprocessorReader = Callable[[ConfigReading, Mapping[str, Any]], dict[str, Any]]


# (block_count, the file's <arch>.attention.sliding_window or None) -> (window, period of set_swa_pattern) of the
# sliding layers llama.cpp's loader sets up, or None when every layer attends in full
SwaRule = Callable[[int, int | None], tuple[int, int] | None]


@dataclass(frozen=True)
class GGUFRules:
    """How the family reads one GGUF architecture into its own spec (`decoder`, `moe`, `ssm`), and what llama.cpp's
    loader (src/llama-model.cpp load_hparams) knows about one GGUF architecture of the family that the file's
    metadata does not say; importers/gguf_generic.py reads everything else from the metadata.

    `swa`: which layers slide when the file carries no `attention.sliding_window_pattern` (Gemma 2's
    set_swa_pattern(2), EXAONE 4.0 32B's window by layer count); `chunked`: the windowed layers attend within
    chunks (Llama 4); `kv_free_tail`: a metadata key counting trailing layers llama.cpp gives no cache
    (GLM-4.5's multi-token-prediction layers: n_layer_kv_from_start = n_layer - nextn_predict_layers; their tensors
    are created with TENSOR_SKIP, so their weights are not counted either: importers/gguf_generic.py skipped_from);
    `latent_cache` False: a file with `attention.kv_lora_rank` whose graph expands the latent and caches every
    head's keys and values (MiniCPM3: src/models/minicpm3.cpp build_attn of k_states / v_states);
    `kv_layers`: a count of leading layers the loader gives a cache whatever the file says (Gemma 3n:
    src/models/gemma3n.cpp load_arch_hparams `hparams.n_layer_kv_from_start = 20`)."""

    swa: SwaRule | None = None
    chunked: bool = False
    kv_free_tail: str | None = None
    latent_cache: bool = True
    kv_layers: int | None = None
    # the `kv_free_tail` layers' tensors are skipped on load too (GLM-4.5's NextN layer: TENSOR_SKIP), not only their
    # cache (Gemma 4's KV-shared layers keep their weights)
    skips_tail: bool = False
    # the family reads the file into its own spec (archs/__init__.py: GGUF_READERS finds it): a dense file, a file
    # with experts, a state-space file; a file none of them takes is read from its metadata (importers/gguf_generic.py)
    decoder: GGUFDecoder | None = None
    moe: GGUFMoe | None = None
    ssm: GGUFSsm | None = None


# (regular expression over a checkpoint's tensor name, component or None for a stored duplicate tied on load),
# first match wins; the component may also be IGNORED_ON_LOAD or BUFFER (below, after the family's spec types)
WeightRules = Sequence[tuple[str, str | None]]


@dataclass(frozen=True)
class GGUFDecoder:
    """A llama-shaped GGUF architecture read into the family's own spec (importers/gguf_file.py: decoder_config
    reads the keys every such file has, as convert_hf_to_gguf.py writes them; this says the rest)."""

    spec_architecture: str  # the spec's architecture (llama.cpp's gemma3 is transformers' gemma3_text)
    explicit_head_dim: bool = False  # the config has head_dim as its own field: always set from key_length
    flags: Mapping[str, str] = field(default_factory=dict)  # config flag -> the tensor whose presence sets it
    window: str = ""  # "optional" / "required": <arch>.attention.sliding_window is the config's sliding_window
    ints: Mapping[str, str] = field(default_factory=dict)  # config field -> optional key after "<arch>."
    floats: Mapping[str, str] = field(default_factory=dict)  # config field -> key after "<arch>.", a positive float
    note: str = ""  # said about every file of this architecture
    weight_rules: WeightRules = ()  # tensor names beyond llama.cpp's common ones (importers/weights.py)


@dataclass(frozen=True)
class GGUFMoe:
    """A mixture-of-experts GGUF architecture read into the family's own spec (importers/gguf_file.py: moe_config;
    keys as convert_hf_to_gguf.py writes them: <arch>.expert_count, expert_used_count, expert_feed_forward_length)."""

    spec_architecture: str
    experts_field: str = "num_experts"  # the config field of <arch>.expert_count
    expert_width_is_ffn: bool = False  # Mixtral: the experts' width is feed_forward_length (intermediate_size)
    shared_width: bool = False  # Qwen2-MoE: expert_shared_feed_forward_length
    explicit_head_dim: bool = False
    flags: Mapping[str, str] = field(default_factory=dict)  # config flag -> the tensor whose presence sets it
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values every file of it has


@dataclass(frozen=True)
class GGUFSsm:
    """A Mamba-2 GGUF architecture read into the family's own spec (importers/gguf_file.py: ssm_config);
    `hybrid`: Granite 4.0-H's attention layers (a per-layer head_count_kv), experts and multipliers, its mixer
    fields named mamba_*."""

    spec_architecture: str
    hybrid: bool = False


def swa_period(period: int) -> SwaRule:
    """llama.cpp's `set_swa_pattern(period)` when the file has a sliding window (layer il slides when
    il % period < period - 1), every layer in full when it has none."""

    def rule(layers: int, window: int | None) -> tuple[int, int] | None:
        return (window, period) if window else None

    return rule


S = TypeVar("S", bound=ModelSpecBase)
ImageSize = tuple[int, int] | None
# A stored tensor the model class does not build, so transformers never loads it (it is an "unexpected key" that
# `_keys_to_ignore_on_load_unexpected` silences; PreTrainedModel._adjust_missing_and_unexpected_keys): left out of the
# weights and said in one note with its count and bytes (importers/weights.py). The multi-token-prediction layers
# real checkpoints carry: Qwen3-Next's and Qwen3.5's `mtp.*` (modeling_qwen3_next.py, modeling_qwen3_5.py:
# [r"^mtp.*"]); DeepSeek-V3's model.layers.61.*, GLM-4.5's model.layers.92.* (modeling_deepseek_v3.py,
# modeling_glm4_moe.py), the layers past num_hidden_layers that the model never builds
# (`range(config.num_hidden_layers)`). A rule whose pattern has a group named `layer` applies only when that index
# is at least the model's layer count (transformers' own patterns spell the index of the released sizes, 61, 92, 46,
# 78; any layer past the count is as absent from the model). The engines agree for a plain launch: vLLM's main models
# skip them (vllm/model_executor/models/deepseek_v2.py load_weights: "skip spec decode layers for main model";
# qwen3_next.py: AutoWeightsLoader(skip_prefixes=["mtp."])) and load them only into the MTP draft model
# (deepseek_mtp.py, glm4_moe_mtp.py, qwen3_next_mtp.py) when --speculative-config asks for it; llama.cpp's converter
# drops DeepSeek's (conversion/deepseek.py DeepseekV2Model.modify_tensors, skip_mtp: layers >= num_hidden_layers;
# ggml-org/llama.cpp commit 01a723dc) and keeps GLM-4.5's nextn layer in the GGUF, where the loader gives it no cache
# and skips its tensors (TENSOR_SKIP; GGUFRules.kv_free_tail, importers/gguf_generic.py skipped_from).
IGNORED_ON_LOAD = "(ignored on load)"
# A stored tensor that is a buffer, not a parameter (BART's final_logits_bias, DeepSeek-V3's router
# e_score_correction_bias, an nn.Buffer): left out of the weights like the buffers willitrun does not model, and said
# so in a note (importers/weights.py).
BUFFER = "(buffer)"


@dataclass(frozen=True)
class Family(Generic[S]):
    """One architecture family: what the registry hands the arithmetic for a spec of it."""

    module: str  # the module's __name__
    specs: Mapping[str, type[S]]  # architecture -> spec class
    tensors: Callable[[S], Iterable[Tensor]]  # every weight tensor, tied ones once, in module order
    geometry: Callable[[S], Geometry]
    stages: Callable[[S, int, int, int], list[Stage]]  # (spec, context, source, images)
    image_tokens: Callable[[S, ImageSize], int]
    cross_source_tokens: Callable[[S, int, int], int]  # (spec, images, encoder_tokens)
    # the vision pass depends on the image's size (Qwen2-VL): stages(..., image_size=) when one is asked
    sized_stages: Callable[..., list[Stage]] | None = None
    video_tokens: Callable[[S, int, ImageSize], int] | None = None  # (spec, frames, frame size)
    config_json: Mapping[str, ConfigClass] = field(default_factory=dict)  # model_type -> its keys and defaults
    weight_rules: Mapping[str, WeightRules] = field(default_factory=dict)  # architecture -> safetensors rules
    gguf_architectures: tuple[str, ...] = ()  # llama.cpp's general.architecture names of this family's files
    gguf_rules: Mapping[str, GGUFRules] = field(default_factory=dict)  # GGUF name -> what its metadata lacks
    # audio tokens in the self-attention context (Qwen2-Audio, Voxtral, Gemma 3n, Gemma 4): (spec, seconds of audio) ->
    # positions; 0 for a model of the family without an audio tower (it then takes no --audio-seconds)
    audio_tokens: Callable[[S, int], int] | None = None
    # model_type -> its own config.json reader, where taking keys is not all (nested configs, derived flags)
    read_config: Mapping[str, ConfigReader] = field(default_factory=dict)
    # the spec's preprocessor block assumed on import, when config.json lacks what the image tokens need
    config_preprocessor: PreprocessorReader | None = None
    # why config.json alone cannot be imported (Florence-2's image tokens need preprocessor_config.json)
    config_json_refusal: str = ""

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(self.specs)


def check_family(value: object, module: str, architectures: Iterable[str]) -> Family[Any]:
    """`value` (a module's FAMILY) as the registry needs it, or a TypeError naming what is wrong."""
    if not isinstance(value, Family):
        raise TypeError(f"{module} defines no FAMILY = Family(...) (willitrun/archs/family.py)")
    want = set(architectures)
    if set(value.specs) != want:
        raise TypeError(f"{module}: FAMILY serves {sorted(value.specs)}, the registry gives it {sorted(want)}")
    for arch, cls in value.specs.items():
        if not (isinstance(cls, type) and issubclass(cls, ModelSpecBase)):
            raise TypeError(f"{module}: FAMILY.specs[{arch!r}] is not a ModelSpecBase subclass")
    unknown = set(value.config_json) - want
    if unknown:
        raise TypeError(f"{module}: config_json names model types it does not serve: {sorted(unknown)}")
    unknown = set(value.read_config) - want
    if unknown:
        raise TypeError(f"{module}: read_config names model types it does not serve: {sorted(unknown)}")
    stray = set(value.gguf_rules) - set(value.gguf_architectures)
    if stray:
        raise TypeError(f"{module}: gguf_rules names GGUF architectures it does not declare: {sorted(stray)}")
    return value


def no_image_tokens(spec: Any, image_size: tuple[int, int] | None) -> int:
    """A text-only family's image tokens (Family.image_tokens): none."""
    return 0


def no_cross_source(spec: Any, images: int, encoder_tokens: int) -> int:
    """A decoder-only family's cross-attention source (Family.cross_source_tokens): none."""
    return 0
