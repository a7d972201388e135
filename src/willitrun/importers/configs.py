"""A Hugging Face config.json -> a willitrun model spec.

The spec's `config` block uses the names and nesting of config.json, so importing is mostly
choosing the fields the spec models. A field the file leaves out gets the default transformers
itself applies for that model_type, cited per field in the spec's `sources`; never another model's value.

Everything about a family is declared in its module (archs/family.py: `Family`): the keys and transformers'
defaults per model_type (`config_json`, read from transformers v5.23.0 and checked against it by
tests/importers), or its own reader where taking keys is not all (`read_config`: nested text / vision
configs, derived flags; it is lent `_Reading`, the filling of one block below), an assumed preprocessor block
(`config_preprocessor`) and a refusal (`config_json_refusal`). This module is the generic machinery only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .. import archs
from ..archs import ARCHITECTURES
from ..archs.base import ID_PATTERN
from ..archs.family import ConfigClass
from ..errors import SpecError, UsageError, clip
from ..specs import AnyModelSpec, parse_model_spec

CHECKPOINT_DTYPES = ("float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"float": "float32", "half": "float16", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# Fields that fix a model's size: when config.json omits one, the estimate rests on transformers'
# default for it, which is some other model's value -- said in a warning-worthy note.
SHAPE_FIELDS = frozenset(
    {
        # ChatGLM's names for them (archs/chatglm.py; num_layers is T5's too)
        "padded_vocab_size",
        "ffn_hidden_size",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "d_model",
        "d_kv",
        "d_ff",
        "num_layers",
        "num_heads",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "encoder_ffn_dim",
        "decoder_ffn_dim",
        "num_mel_bins",
        "image_size",
        "patch_size",
        # state-space and mixture-of-experts widths (mamba2, granitemoehybrid)
        "state_size",
        "n_groups",
        "mamba_n_heads",
        "mamba_d_head",
        "mamba_d_state",
        "mamba_n_groups",
        "num_local_experts",
        "num_experts_per_tok",
        "shared_intermediate_size",
    }
)


def reads_config(model_type: str) -> bool:
    """Whether a family answers `model_type`'s config.json (its keys, its own reader, or a refusal saying why
    not), loading only that family; otherwise the oracle may (importers/oracle.py)."""
    if model_type not in archs.FAMILIES:
        return False
    fam = archs.family(model_type)
    return model_type in fam.config_json or model_type in fam.read_config or bool(fam.config_json_refusal)


def importable() -> tuple[str, ...]:
    """Every model_type `willitrun import` reads (loads every family module: for listings)."""
    return tuple(a for a in ARCHITECTURES if _family_reads(a))


def _family_reads(model_type: str) -> bool:
    fam = archs.family(model_type)
    return model_type in fam.config_json or model_type in fam.read_config


def supported() -> str:
    return ", ".join(importable())


# Ends every "not supported" refusal of a model_type or GGUF architecture (one line).
HOW_TO_ADD = "see `willitrun list architectures`; docs/adding-an-architecture.md says how to add one"


# --------------------------------------------------------------------------------------------------
# Ids and names
# --------------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """A catalog id from a free name: 'Meta-Llama-3.1-8B_Q4_K_M' -> 'meta-llama-3.1-8b-q4-k-m'."""
    s = re.sub(r"[^a-z0-9]+", lambda m: "." if m.group() == "." else "-", text.lower())
    s = s[:64].strip("-.")
    return s if re.fullmatch(ID_PATTERN, s) else "imported-model"


def name_from_source(source: str) -> str:
    """A model name from where a config came from: its directory, or the repository of a Hub URL."""
    parts = [p for p in source.replace("\\", "/").split("/") if p]
    if parts and parts[-1] == "config.json":
        parts = parts[:-1]
        if len(parts) >= 3 and parts[-2] in ("blob", "resolve", "raw"):
            parts = parts[:-2]  # https://huggingface.co/ORG/NAME/blob/REVISION/config.json
    return parts[-1] if parts else "imported-model"


def check_id(model_id: str) -> str:
    if not re.fullmatch(ID_PATTERN, model_id) or len(model_id) > 64:
        raise UsageError(
            f"id {clip(repr(model_id))} is not a catalog id: lowercase letters and digits separated by "
            "'-' or '.', at most 64 characters (e.g. my-llama-3.1-8b)"
        )
    return model_id


# --------------------------------------------------------------------------------------------------
# Filling one config block
# --------------------------------------------------------------------------------------------------
def _spec_default(model: Any, field: str) -> tuple[bool, Any]:
    info = model.model_fields[field]
    return info.is_required(), None if info.is_required() else info.default


def _block(
    cfg: Mapping[str, Any],
    cls: ConfigClass,
    where: str,
    sources: dict[str, str],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of `cls` from `cfg`; an absent field gets transformers' default (cited in `sources`)
    where the spec needs it or would otherwise assume something else."""
    out: dict[str, Any] = {}
    if cls.aliases:  # the class's attribute_map: a config.json saved under the attribute's own name
        cfg = {**{f: cfg[a] for a, f in cls.aliases.items() if a in cfg and f not in cfg}, **cfg}
    for field, default in (defaults or cls.defaults).items():
        if isinstance(default, ConfigClass):  # a nested sub-config (text_config, vision_config): its own keys
            out[field] = _block(_sub(cfg, field, where) or {}, default, f"{where}.{field}", sources)
            continue
        if field in cfg and not (cfg[field] is None and field in cls.none_is_default):
            out[field] = cfg[field]
            continue
        if default is None:
            continue
        required, spec_default = _spec_default(cls.spec_model, field)
        if required or spec_default != default:
            out[field] = copy.deepcopy(default)
            sources[f"{where}.{field}"] = cls.url
    for field in cls.copied:
        if field in cfg:
            out[field] = cfg[field]
    return out


def _sub(cfg: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any] | None:
    value = cfg.get(key)
    if value is not None and not isinstance(value, dict):
        raise SpecError(f"{source}: {key}: must be a JSON object, not {type(value).__name__}")
    return value


def _model_type(cfg: Mapping[str, Any], default: str, where: str, source: str) -> str:
    """A sub-config's `model_type` (`default` when absent); anything but a string is a SpecError."""
    model_type = cfg.get("model_type", default)
    if not isinstance(model_type, str):
        raise SpecError(
            f"{source}: {where.removeprefix('config.')}.model_type must be a string, not {type(model_type).__name__}"
        )
    return model_type


# --------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------
def config_dtype(cfg: Mapping[str, Any], source: str) -> str | None:
    """The checkpoint's dtype as config.json states it (`dtype`, or `torch_dtype` before transformers 5); a
    multimodal config.json that states it only for its language model (Qwen/Qwen3.5-0.8B: no top-level dtype,
    `text_config.dtype: bfloat16`) gives the language model's, which holds nearly every weight."""
    text = cfg.get("text_config")
    for key, value in (
        *((k, cfg.get(k)) for k in ("dtype", "torch_dtype")),
        *((f"text_config.{k}", text.get(k)) for k in ("dtype", "torch_dtype") if isinstance(text, Mapping)),
    ):
        if value is None:
            continue
        if not isinstance(value, str):
            raise SpecError(f'{source}: {key}: must be a string such as "bfloat16", not {value!r}')
        name = _DTYPE_ALIASES.get(value, value)
        if name not in CHECKPOINT_DTYPES:
            raise UsageError(
                f"{source}: {key} {value!r} is not a checkpoint type willitrun models ({', '.join(CHECKPOINT_DTYPES)})"
            )
        return name
    return None


def config_block(
    cfg: Mapping[str, Any], source: str, sources: dict[str, str], notes: list[str]
) -> tuple[str, dict[str, Any]]:
    """(architecture, spec `config` block) of a config.json mapping."""
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise SpecError(f"{source}: no model_type: not a transformers config.json")
    if model_type in archs.FAMILIES:
        fam = archs.family(model_type)  # everything about a family is declared in its module (archs/family.py)
        if fam.config_json_refusal:
            raise UsageError(f"{source}: {fam.config_json_refusal}")
        reader = fam.read_config.get(model_type)
        if reader is not None:  # its own reader: nested text / vision configs, derived flags, notes
            return model_type, reader(_Reading(source, sources, notes), cfg, model_type)
        declared = fam.config_json.get(model_type)
        if declared is not None:  # its keys and transformers' defaults
            return model_type, _block(cfg, declared, "config", sources)
    raise UsageError(
        f"{source}: model_type {clip(repr(model_type))} is not supported; supported: {supported()}; {HOW_TO_ADD}"
    )


def _sub_config(
    cfg: Mapping[str, Any] | None,
    key: str,
    default_type: str,
    classes: Mapping[str, ConfigClass],
    init: Mapping[str, Any],
    top: ConfigClass,
    source: str,
    sources: dict[str, str],
) -> dict[str, Any]:
    """One sub-config as SubConfigSpec.create_subconfig builds it: the dict's model_type (else the default)
    picks the class, whose plain defaults fill the dict; without a dict, the class's defaults overlaid with
    `init` (cited to the composite class that declares them)."""
    where = f"config.{key}"
    model_type = _model_type(cfg or {}, default_type, where, source)
    if model_type not in classes:
        raise UsageError(
            f"{source}: {key}.model_type {clip(repr(model_type))} is not supported; supported: "
            f"{', '.join(classes)}; {HOW_TO_ADD}"
        )
    cls = classes[model_type]
    out: dict[str, Any] = {"model_type": model_type}
    if cfg is not None:
        out.update(_block(cfg, cls, where, sources))
        for field, default in cls.defaults.items():
            # written out even where the spec's default is the same: these files leave out shapes
            # (Gemma 3's heads, PaliGemma's patch size), and the warning must name every one taken
            if field not in cfg and default is not None and field not in out:
                out[field] = copy.deepcopy(default)
                sources[f"{where}.{field}"] = cls.url
        return out
    out.update(_block({}, cls, where, sources, {**cls.defaults, **init}))
    for field in init:
        if f"{where}.{field}" in sources:
            sources[f"{where}.{field}"] = top.url
    for field, value in init.items():  # what _block leaves out: an explicit null (Mistral 3's sliding_window)
        if field not in out and (field in cls.defaults or field in cls.copied):
            out[field] = value
            sources[f"{where}.{field}"] = top.url
    return out


class _Reading:
    """archs/family.py: ConfigReading, lent to a family's own config.json reader."""

    def __init__(self, source: str, sources: dict[str, str], notes: list[str]) -> None:
        self.source, self.sources, self.notes = source, sources, notes

    def block(
        self, cfg: Mapping[str, Any], cls: ConfigClass, where: str, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return _block(cfg, cls, where, self.sources, defaults)

    def sub(self, cfg: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        return _sub(cfg, key, self.source)

    def typed(
        self, cfg: Mapping[str, Any] | None, where: str, classes: Mapping[str, ConfigClass], default: str
    ) -> dict[str, Any]:
        cfg = cfg or {}
        model_type = _model_type(cfg, default, where, self.source)
        if model_type not in classes:
            raise UsageError(
                f"{self.source}: {where.removeprefix('config.')}.model_type {clip(repr(model_type))} is not "
                f"supported; supported: {', '.join(classes)}; {HOW_TO_ADD}"
            )
        return {"model_type": model_type, **_block(cfg, classes[model_type], where, self.sources)}

    def sub_config(
        self,
        cfg: Mapping[str, Any] | None,
        key: str,
        default_type: str,
        classes: Mapping[str, ConfigClass],
        init: Mapping[str, Any],
        top: ConfigClass,
    ) -> dict[str, Any]:
        return _sub_config(cfg, key, default_type, classes, init, top, self.source, self.sources)

    def malformed(self, message: str) -> Exception:
        return SpecError(f"{self.source}: {message}")

    def shown(self, value: object) -> str:
        return clip(repr(value))


def _render_validation(err: ValidationError, source: str) -> list[str]:
    lines = []
    for e in err.errors(include_url=False):
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        if loc and loc[0] == "config":
            loc = loc[1:]
        where = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{source}: {where}: {e['msg'].removeprefix('Value error, ')}")
    return lines


def spec_from_config(
    config: object,
    source: str,
    *,
    model_id: str | None = None,
    name: str | None = None,
    hf_id: str | None = None,
    weights_dtype: str | None = None,
    weights_source: str | None = None,
    notes: list[str] | None = None,
) -> AnyModelSpec:
    """A model spec from a config.json mapping; `source` names where it came from (cited in `sources`).

    `weights_dtype`/`weights_source`: the checkpoint's float type read from its weights, used when
    config.json names no dtype (what transformers' `dtype="auto"` does).
    Raises UsageError for a model_type willitrun does not model, SpecError for a malformed config.
    """
    if not isinstance(config, dict):
        raise SpecError(f"{source}: a config.json must be a JSON object, not {type(config).__name__}")
    notes = list(notes or [])
    sources: dict[str, str] = {"config": source}
    field_sources: dict[str, str] = {}
    arch, block = config_block(config, source, field_sources, notes)
    dtype = config_dtype(config, source)
    if dtype is not None:
        sources["dtype"] = source
    elif weights_dtype is not None:
        dtype = weights_dtype
        sources["dtype"] = weights_source or source
        notes.append(
            f"config.json names no dtype: {dtype} is the type of the first floating-point tensor of "
            'the weights (what transformers\' dtype="auto" loads).'
        )
    else:
        dtype = "float32"
        notes.append(
            "config.json names no dtype: float32 assumed (torch's default, what transformers builds "
            "without a dtype); pass --dtype if the checkpoint is stored in 16 bits."
        )
    try:
        quantization = checkpoint_quantization(config)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None
    if quantization is not None:
        notes.append(
            f"The checkpoint is quantized ({quantization}, config.json quantization_config): weights sized as stored."
        )
    elif isinstance(config.get("quantization_config"), dict):
        method = config["quantization_config"].get("quant_method", "unknown")
        notes.append(
            f"The checkpoint is quantized ({method}); without its weight files the estimate sizes the "
            "weights at --dtype, not as stored."
        )
    assumed = archs.family(arch).config_preprocessor
    preprocessor = assumed(_Reading(source, {}, notes), block) if assumed is not None else None
    defaulted = sorted(k.removeprefix("config.") for k in field_sources if k.rsplit(".", 1)[-1] in SHAPE_FIELDS)
    if defaulted:
        notes.insert(
            0,
            f"Warning: config.json omits {', '.join(defaulted)}: "
            + (
                "the remote-code class's"
                if any("/blob/main/configuration_" in v for v in field_sources.values())
                else "transformers'"
            )
            + " defaults taken "
            "(see sources); they belong to no particular checkpoint, so check them.",
        )
    sources.update(field_sources)
    data: dict[str, Any] = {
        "id": check_id(model_id) if model_id else slug(name or name_from_source(source)),
        "name": name or name_from_source(source),
        "architecture": arch,
        "dtype": dtype,
        "sources": sources,
        "config": block,
    }
    if hf_id:
        data["hf_id"] = hf_id
    if preprocessor is not None:
        data["preprocessor"] = preprocessor
    if quantization is not None:
        data["quantization"] = quantization
        if dtype == "float32" and "dtype" not in sources:
            data["dtype"] = "bfloat16"  # gpt-oss names no dtype; its unquantized tensors are bf16
    if notes:
        data["notes"] = " ".join(notes)
    spec = build_spec(data, source)
    unusable = unusable_values(spec)
    if unusable:  # said first, as warnings: the model builds, but a forward pass would fail (issue 20)
        spec = spec.model_copy(update={"notes": " ".join((*unusable, *([spec.notes] if spec.notes else [])))})
    return spec


def unusable_values(spec: AnyModelSpec) -> list[str]:
    """Warnings for values transformers builds a model from but could not run (a forward pass would fail):
    validation follows what transformers accepts, so these are warned about, never refused (issue 20)."""

    out = []
    own = getattr(spec, "unusable_values", None)  # a family module states its own (archs/qwen3_vl.py)
    if callable(own):
        out.extend(own())
    return out


def checkpoint_quantization(config: Mapping[str, Any]) -> str | None:
    """The stored formats of MoE releases willitrun sizes (issue 10): DeepSeek-V3's block-scaled fp8
    (quant_method fp8, weight_block_size [128, 128]) and gpt-oss's MXFP4 experts (quant_method mxfp4)."""
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return None
    block = q.get("weight_block_size")
    if block is not None and not (isinstance(block, list) and all(type(n) is int for n in block)):
        # transformers' FineGrainedFP8Config takes a pair (rows, columns), e.g. [128, 128]
        raise SpecError(
            f"quantization_config.weight_block_size: a pair of integers such as [128, 128], not {clip(repr(block))}"
        )
    if q.get("quant_method") == "fp8" and block == [128, 128]:
        return "fp8-block"
    if q.get("quant_method") == "mxfp4":
        return "mxfp4-experts"
    return None


def build_spec(data: dict[str, Any], source: str) -> AnyModelSpec:
    """Validate a spec document built from `source`; problems become SpecError lines naming its fields."""
    try:
        return parse_model_spec(data)
    except ValidationError as err:
        lines = _render_validation(err, source)
        raise SpecError(lines[0], lines) from None
