"""Pydantic models of the YAML spec files (see docs/spec-format.md).

Architecture fields carry the names of Hugging Face `config.json`, so a spec can be checked line by
line against its source. Where config.json may omit a field, the default is the one transformers
applies itself (named per field), never another model's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union

# The architecture families live in willitrun.archs (one module each); their names stay importable
# from here.
from .archs import ARCHITECTURES, spec_class
from .archs.base import ID_PATTERN, CheckpointDtype, Id, NonNegInt, PosInt  # noqa: F401  (re-exported)
from .archs.base import ModelSpecBase as _ModelSpecBase
from .archs.base import Strict as _Strict
from .archs.base import check_heads as _check_heads  # noqa: F401
from .records import BaseModel, ConfigDict, Field, model_validator

# Family classes load on first use (start-up reads one family, not all of them): `from
# willitrun.specs import LlamaSpec` still works through the module __getattr__ below, which finds a
# `*Spec` or `*Config` class in the registry's modules (archs.FAMILIES), so a new family needs no
# edit here.
_FAMILY_CLASS_SUFFIXES = ("Spec", "Config")


def _family_modules(name: str) -> list[str]:
    """The family modules in registry order, the one the class name starts with first
    (Gemma3TextConfig -> gemma3, Qwen2VLSpec -> qwen2_vl)."""
    from .archs import FAMILIES

    modules = list(dict.fromkeys(FAMILIES.values()))
    key = name.lower()
    return sorted(modules, key=lambda m: -len(m.replace("_", "")) if key.startswith(m.replace("_", "")) else 1)


def _family_class(name: str) -> type | None:
    """The spec or config class `name` of some family module, importing modules until it is found."""
    from importlib import import_module

    if not name.endswith(_FAMILY_CLASS_SUFFIXES) or name.startswith("_"):
        return None
    for module in _family_modules(name):
        value = getattr(import_module(f".archs.{module}", __package__), name, None)
        if isinstance(value, type) and value.__name__ == name:
            return value
    return None


if TYPE_CHECKING:
    # The union the type checker sees (at run time __getattr__ builds it over every family). The older
    # families are named; a family declared on the generic decoder needs no line here (DecoderSpec).
    from .archs.bart import BartSpec
    from .archs.clip import ClipSpec, SiglipSpec
    from .archs.cohere2 import Cohere2Spec
    from .archs.decoder import DecoderSpec
    from .archs.deepseek import DeepseekSpec
    from .archs.falcon_h1 import FalconH1Spec
    from .archs.florence2 import Florence2Spec
    from .archs.gemma import GemmaSpec
    from .archs.gemma2 import Gemma2Spec
    from .archs.gemma3 import Gemma3Spec, Gemma3TextSpec
    from .archs.gemma3n import Gemma3nSpec, Gemma3nTextSpec
    from .archs.gemma4 import Gemma4Spec, Gemma4TextSpec
    from .archs.generic import GenericSpec
    from .archs.glm4v import Glm4vMoeSpec, Glm4vSpec
    from .archs.gpt_oss import GptOssSpec
    from .archs.granite import GraniteSpec
    from .archs.granitemoehybrid import GraniteMoeHybridSpec
    from .archs.idefics3 import Idefics3Spec
    from .archs.internvl import InternVLSpec
    from .archs.jamba import JambaSpec
    from .archs.kimi_linear import KimiLinearSpec
    from .archs.llama import LlamaSpec
    from .archs.llama4 import Llama4Spec, Llama4TextSpec
    from .archs.llava import LlavaSpec
    from .archs.llava_onevision import LlavaOnevisionSpec
    from .archs.mamba import MambaSpec
    from .archs.mamba2 import Mamba2Spec
    from .archs.mistral3 import Mistral3Spec
    from .archs.mixtral import MixtralSpec
    from .archs.mllama import MllamaSpec
    from .archs.moonshine import MoonshineSpec
    from .archs.nemotron_h import NemotronHSpec
    from .archs.paligemma import PaliGemmaSpec
    from .archs.phi3 import Phi3Spec
    from .archs.pix2struct import Pix2StructSpec
    from .archs.qwen2 import Qwen2Spec
    from .archs.qwen2_audio import Qwen2AudioSpec
    from .archs.qwen2_vl import QwenVLSpec
    from .archs.qwen3 import Qwen3Spec
    from .archs.qwen3_5 import Qwen3_5MoeTextSpec, Qwen3_5TextSpec
    from .archs.qwen3_5_vl import Qwen3_5MoeSpec, Qwen3_5Spec
    from .archs.qwen3_next import Qwen3NextSpec
    from .archs.qwen3_vl import Qwen3VLMoeSpec, Qwen3VLSpec
    from .archs.qwen_moe import Qwen2MoeSpec, Qwen3MoeSpec
    from .archs.rwkv import RwkvSpec
    from .archs.starcoder2 import Starcoder2Spec
    from .archs.t5 import T5Spec
    from .archs.vision_encoder_decoder import VisionEncoderDecoderSpec
    from .archs.voxtral import VoxtralSpec
    from .archs.whisper import WhisperSpec
    from .archs.zamba2 import Zamba2Spec

    AnyModelSpec = Union[
        LlamaSpec,
        T5Spec,
        WhisperSpec,
        LlavaSpec,
        MllamaSpec,
        Qwen2Spec,
        Qwen3Spec,
        GemmaSpec,
        Gemma2Spec,
        Gemma3TextSpec,
        Phi3Spec,
        GraniteSpec,
        Starcoder2Spec,
        Cohere2Spec,
        QwenVLSpec,
        Gemma3Spec,
        PaliGemmaSpec,
        Mistral3Spec,
        BartSpec,
        MixtralSpec,
        Qwen2MoeSpec,
        Qwen3MoeSpec,
        DeepseekSpec,
        GptOssSpec,
        Llama4TextSpec,
        Llama4Spec,
        Gemma3nSpec,
        MambaSpec,
        JambaSpec,
        FalconH1Spec,
        Mamba2Spec,
        GraniteMoeHybridSpec,
        ClipSpec,
        SiglipSpec,
        Pix2StructSpec,
        Florence2Spec,
        VisionEncoderDecoderSpec,
        LlavaOnevisionSpec,
        Idefics3Spec,
        GenericSpec,
        Qwen3NextSpec,
        Qwen3_5TextSpec,
        Qwen3_5MoeTextSpec,
        NemotronHSpec,
        Zamba2Spec,
        KimiLinearSpec,
        RwkvSpec,
        # every family declared on the generic decoder (archs/decoder.py) subclasses it
        DecoderSpec,
        Qwen3VLSpec,
        Qwen3VLMoeSpec,
        Glm4vSpec,
        Glm4vMoeSpec,
        InternVLSpec,
        MoonshineSpec,
        Qwen3_5Spec,
        Qwen3_5MoeSpec,
        Gemma4TextSpec,
        Gemma3nTextSpec,
        Gemma4Spec,
        Qwen2AudioSpec,
        VoxtralSpec,
    ]
    ModelSpec = Annotated[AnyModelSpec, Field(discriminator="architecture")]


def __getattr__(name: str) -> object:
    """Family classes, and the union of every family's spec class (registry order: a new family
    needs no edit here), built on first use."""
    if name in ("AnyModelSpec", "ModelSpec"):
        union = Union[tuple(dict.fromkeys(spec_class(arch) for arch in ARCHITECTURES))]  # type: ignore[valid-type]
        globals().update(AnyModelSpec=union, ModelSpec=Annotated[union, Field(discriminator="architecture")])
        return globals()[name]
    cls = _family_class(name)
    if cls is not None:
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _LazySpecClasses(dict):  # type: ignore[type-arg]
    def __missing__(self, arch: str) -> type:
        cls = self[arch] = spec_class(arch)
        return cls


# architecture -> spec class, each family imported when first asked for
SPEC_CLASSES: dict[str, type[_ModelSpecBase]] = _LazySpecClasses()


class _Architecture(BaseModel):
    model_config = ConfigDict(defer_build=True)
    architecture: Literal[ARCHITECTURES]  # type: ignore[valid-type]


def parse_model_spec(data: object) -> AnyModelSpec:
    """Validate a model spec document; only the schema of its architecture is built (fast start-up)."""
    arch = data.get("architecture") if isinstance(data, dict) else None
    if not (isinstance(arch, str) and arch in ARCHITECTURES):
        arch = _Architecture.model_validate(data).architecture  # raises the readable error
    return SPEC_CLASSES[arch].model_validate(data)  # type: ignore[return-value]


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic's json_schema() writes


def _schema_document(schema: dict[str, object], title: str, description: str) -> dict[str, object]:
    """A schema as an editor expects a file's schema: the dialect, a title and a description first.
    The model spec is a union discriminated by `architecture` (pydantic writes the mapping), so an
    editor reports a file's problems against its own architecture's schema, once each."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": title,
        "description": description,
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def model_spec_schema() -> dict[str, object]:
    """JSON Schema of a model spec file (all architectures)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(__getattr__("ModelSpec")).json_schema()  # type: ignore[arg-type]
    return _schema_document(
        schema,
        "willitrun model spec",
        "A model's architecture as in its config.json, with a source for every number (docs/spec-format.md).",
    )


def gpu_spec_schema() -> dict[str, object]:
    """JSON Schema of a GPU spec file."""
    return _schema_document(
        GPUSpec.model_json_schema(),
        "willitrun GPU spec",
        "A GPU's memory and bandwidth with a source for each (docs/spec-format.md).",
    )


# --------------------------------------------------------------------------------------------------
# GPU spec files
# --------------------------------------------------------------------------------------------------
GIB = 1 << 30
MIB = 1 << 20


class GPUSpec(_Strict):
    id: Id
    name: str = Field(min_length=1)
    vendor: Literal["nvidia", "amd", "apple", "intel"]
    segment: Literal["consumer", "workstation", "datacenter", "apple"]
    aliases: list[Annotated[str, Field(pattern=ID_PATTERN)]] = []
    nvml_names: list[str] = []
    memory_gib: Annotated[float, Field(gt=0, le=4096)]
    memory_as_stated: str
    reported_total_mib: Annotated[int, Field(gt=0, le=1 << 30)] | None = None
    memory_type: str
    bandwidth_gb_s: Annotated[float, Field(gt=0, le=100_000)]
    architecture: str
    gpu_memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    # one memory shared by CPU and GPU (Apple silicon, DGX Spark's GB10, AMD Strix Halo): layers "offloaded"
    # to the host stay in the same memory, so offloading frees nothing
    unified_memory: bool = False
    notes: str | None = None
    sources: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> GPUSpec:
        if self.vendor == "apple" and self.gpu_memory_fraction is None:
            raise ValueError("gpu_memory_fraction is required for Apple unified memory")
        if self.gpu_memory_fraction is not None and not self.unified:
            raise ValueError("gpu_memory_fraction applies to unified memory only (Apple, or unified_memory: true)")
        if self.reported_total_mib is not None and not (
            0.85 * self.memory_gib * GIB <= self.reported_total_mib * MIB <= 1.05 * self.memory_gib * GIB
        ):
            raise ValueError("reported_total_mib is not within -15%/+5% of memory_gib")
        return self

    def unusable(self) -> list[tuple[str, str]]:
        """(field, why) for the numbers the schema accepts but the answers cannot use: memory or
        bandwidth that round to zero bytes (e.g. 1.0e-300). The catalog refuses such a GPU when it
        loads it, so `validate` and every estimate refuse it alike."""
        out = []
        if self.capacity_bytes < 1:
            out.append(("memory_gib", f"{self.memory_gib!r} GiB is less than one byte"))
        if round(self.bandwidth_gb_s * 10**9) < 1:
            out.append(("bandwidth_gb_s", f"{self.bandwidth_gb_s!r} GB/s is less than one byte per second"))
        return out

    @property
    def unified(self) -> bool:
        """CPU and GPU share one memory (every Apple chip; others say `unified_memory: true`)."""
        return self.vendor == "apple" or self.unified_memory

    @property
    def capacity_bytes(self) -> int:
        """Memory a model may use: the driver's reported total, else capacity (x GPU share on Apple)."""
        if self.reported_total_mib is not None:
            return self.reported_total_mib * MIB
        total = round(self.memory_gib * GIB)
        if self.gpu_memory_fraction is not None:
            return int(total * self.gpu_memory_fraction)
        return total
