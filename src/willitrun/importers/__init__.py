"""Bring your own model: a spec (and the exact weight bytes) from a Hugging Face config.json, a model
directory, a GGUF file or `hf:ORG/NAME`.

    spec, weights = spec_from_path(Path("Llama-3.1-8B"))   # config.json + *.safetensors headers
    estimate(spec, weights=weights)                        # weight bytes as stored, not computed
    Path("model_specs/llama-3.1-8b.yaml").write_text(write_spec_yaml(spec, "Llama-3.1-8B/config.json"))

Errors: UsageError (exit 2) for what willitrun does not model or cannot reach (a model_type or GGUF
architecture it does not support, a missing path, the Hub offline); SpecError (exit 3) for a file
that is malformed, truncated or hostile (bad magic, absurd header lengths, JSON that is no config).
Only file headers are read, never tensor data. No typer, rich or heavy import happens here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SpecError, UsageError
from ..files import CONFIG_JSON_CAP, not_regular, open_regular, path_type, read_text, safe_path, safe_text
from ..specs import AnyModelSpec
from .configs import (
    build_spec,
    check_id,
    config_dtype,
    name_from_source,
    reads_config,
    slug,
    spec_from_config,
)
from .gguf_file import (
    NOT_PARAMETERS,
    GGUFHeader,
    decoder_config,
    family_rules,
    file_type_dtypes,
    is_moe,
    moe_config,
    read_gguf_header,
    ssm_config,
)
from .hub import fetch_hf_config, fetch_hf_safetensors, parse_repo_id, revision_of
from .spec_yaml import write_spec_yaml
from .weights import (
    StoredTensor,
    WeightsOverride,
    first_float_dtype,
    read_checkpoint,
    read_safetensors_header,
    storage_summary,
    weight_files,
    weights_override,
)

__all__ = [
    "StoredTensor",
    "WeightsOverride",
    "fetch_hf_config",
    "import_model",
    "read_config",
    "read_gguf_header",
    "read_safetensors_header",
    "spec_from_config",
    "spec_from_gguf_header",
    "spec_from_path",
    "write_spec_yaml",
]

MAX_CONFIG_BYTES = CONFIG_JSON_CAP  # config.json files are kilobytes


def read_config(path: Path) -> dict[str, Any]:
    """A config.json as a mapping (a regular file of at most CONFIG_JSON_CAP bytes); anything else
    is one SpecError line."""
    text = read_text(path, CONFIG_JSON_CAP, "config.json")
    where = safe_path(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}:{exc.lineno}: not JSON: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise SpecError(f"{where}: not JSON: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise SpecError(f"{where}: not a config.json: nested too deeply") from None
    if not isinstance(data, dict):
        raise SpecError(f"{where}: not a config.json: a JSON {type(data).__name__}, not an object")
    return data


_ORACLE: dict[str, dict[str, Any]] = {}  # config.json text -> the oracle's config block (it takes seconds)

# model_types that only name a copy of a class transformers ships: model_type -> (the checkpoint's
# architectures[0], its auto_map AutoConfig, the model_type of the class it copies). Kimi K2
# (moonshotai/Kimi-K2-Instruct config.json: model_type kimi_k2, DeepseekV3ForCausalLM,
# configuration_deepseek.DeepseekV3Config) is DeepSeek-V3's architecture, which engines pick by `architectures`
# (vLLM's model registry: DeepseekV3ForCausalLM). Read as transformers' class, the file's code never executed.
REMOTE_COPIES = {
    "kimi_k2": ("DeepseekV3ForCausalLM", "configuration_deepseek.DeepseekV3Config", "deepseek_v3"),
}


def _known_remote_config(cfg: dict[str, Any], notes: list[str] | None) -> tuple[dict[str, Any], list[str] | None]:
    model_type = cfg.get("model_type")
    copy = REMOTE_COPIES.get(model_type) if isinstance(model_type, str) else None
    auto_map = cfg.get("auto_map")
    if copy is None or not isinstance(auto_map, dict):
        return cfg, notes
    architecture, config_class, as_type = copy
    if cfg.get("architectures") != [architecture] or auto_map.get("AutoConfig") != config_class:
        return cfg, notes
    note = (
        f"model_type {model_type!r} is the model's own copy of {config_class.rsplit('.', 1)[-1]} ({architecture}): "
        f"read as transformers' {as_type!r}, its code never run."
    )
    return {**cfg, "model_type": as_type}, [*(notes or []), note]


def _config_spec(
    cfg: dict[str, Any],
    source: str,
    *,
    model_id: str | None = None,
    name: str | None = None,
    hf_id: str | None = None,
    weights_dtype: str | None = None,
    weights_source: str | None = None,
    notes: list[str] | None = None,
) -> AnyModelSpec:
    """spec_from_config, or, for a model_type without a family, transformers as the oracle (importers/oracle.py:
    built on the meta device, parameters counted, caches measured; issue 20 §4)."""
    cfg, notes = _known_remote_config(cfg, notes)
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or reads_config(model_type):  # a family's own file (archs/family.py)
        return spec_from_config(
            cfg,
            source,
            model_id=model_id,
            name=name,
            hf_id=hf_id,
            weights_dtype=weights_dtype,
            weights_source=weights_source,
            notes=notes,
        )
    from . import oracle

    key = json.dumps(cfg, sort_keys=True, default=str)
    if key not in _ORACLE:
        _ORACLE.clear()  # one model at a time
        _ORACLE[key] = oracle.generic_config(cfg, source)
    block = _ORACLE[key]
    notes = list(notes or [])
    sources = {"config": source}
    dtype = config_dtype(cfg, source)
    if dtype is not None:
        sources["dtype"] = source
    elif weights_dtype is not None:
        dtype = weights_dtype
        sources["dtype"] = weights_source or source
        notes.append(
            f"config.json names no dtype: {dtype} is the type of the first floating-point tensor of the weights."
        )
    else:
        dtype = "float32"
        notes.append(
            "config.json names no dtype: float32 assumed (torch's default); pass --dtype if the checkpoint is "
            "stored in 16 bits."
        )
    name = name or name_from_source(source)
    data: dict[str, Any] = {
        "id": check_id(model_id) if model_id else slug(name),
        "name": name,
        "architecture": "generic",
        "dtype": dtype,
        "sources": sources,
        "config": block,
    }
    if hf_id:
        data["hf_id"] = hf_id
    if notes:
        data["notes"] = " ".join(notes)
    return build_spec(data, source)


def _crosscheck(spec: AnyModelSpec, weights: WeightsOverride, exact: bool) -> WeightsOverride:
    """Note when the weights hold a different number of elements than the config describes."""
    from ..dtypes import weight_dtype
    from ..memory import weight_components

    derived = sum(c.parameters for c in weight_components(spec, weight_dtype(spec.dtype)))
    if not exact or weights.elements == derived:
        return weights
    note = (
        f"the weights hold {weights.elements:,} elements but the config describes {derived:,} parameters: "
        "check that they belong together"
    )
    return replace(weights, notes=(*weights.notes, note))


def _unsaved_positions(spec: AnyModelSpec, weights: WeightsOverride, tensors: list[StoredTensor]) -> WeightsOverride:
    """Marian's sinusoidal position tables are parameters transformers 5 leaves out of the files it saves
    (MarianSinusoidalPositionalEmbedding, `_keys_to_ignore_on_save`) and rebuilds on load; older
    checkpoints store them. When absent, their bytes are added at the stored type's width."""
    width = {"fp32": 4, "fp16": 2, "bf16": 2}.get(weights.dtype or "")
    if spec.architecture != "marian" or width is None or any("embed_positions" in t.name for t in tensors):
        return weights
    from ..archs import model_tensors

    added = {t.component: t.numel for t in model_tensors(spec) if t.name.endswith("position_embd.weight")}
    per = dict(weights.component_bytes)
    for component, numel in added.items():
        if component in per:
            per[component] += numel * width
    return replace(
        weights,
        total_bytes=weights.total_bytes + sum(added.values()) * width,
        elements=weights.elements + sum(added.values()),
        component_bytes=tuple(sorted(per.items())),
        notes=(
            *weights.notes,
            "the sinusoidal position tables transformers rebuilds on load are not in the files: their bytes are added",
        ),
    )


def _checkpoint(
    spec_args: dict[str, Any],
    cfg: dict[str, Any],
    source: str,
    tensors: list[StoredTensor] | None,
    weights_source: str,
    weight_notes: list[str],
) -> tuple[AnyModelSpec, WeightsOverride | None]:
    if not tensors:
        spec = _config_spec(cfg, source, notes=weight_notes, **spec_args)
        return spec, None
    spec = _config_spec(
        cfg, source, weights_dtype=first_float_dtype(tensors), weights_source=weights_source, **spec_args
    )
    if spec.architecture == "generic":  # the oracle's module-name rules place the stored tensors too
        from .oracle import COMPONENTS
        from .weights import COMPONENT_RULES

        COMPONENT_RULES.setdefault("generic", list(COMPONENTS))
    from ..archs import geometry  # the decoder's layer count: layers stored past it are not built (archs/family.py)

    layers = len(geometry(spec).self_kv)
    weights = weights_override(
        spec.architecture, tensors, weights_source, "safetensors", notes=weight_notes, layers=layers
    )
    weights = _unsaved_positions(spec, weights, tensors)
    return spec, _crosscheck(spec, weights, exact=weights.dtype is not None)


def _from_directory(
    directory: Path, model_id: str | None, name: str | None = None
) -> tuple[AnyModelSpec, WeightsOverride | None]:
    config = directory / "config.json"
    if path_type(config).kind == "missing":
        ggufs = sorted(directory.glob("*.gguf"))
        hint = f"; pass a GGUF file itself, e.g. {safe_path(ggufs[0])}" if ggufs else ""
        raise UsageError(f"{safe_path(directory)}: no config.json in this directory{hint}")
    cfg = read_config(config)
    name = safe_text(name or directory.resolve().name)
    # Check the config (and its model_type) before reading any weight file.
    _config_spec(cfg, str(config), model_id=model_id, name=name)
    files, notes = weight_files(directory)
    if not files and any(directory.glob("*.bin")):
        notes.append("weights in *.bin (pickle) files are not read; their size is computed from the config")
    tensors = read_checkpoint(files) if files else None
    source = str(files[0]) if len(files) == 1 else str(directory)
    return _checkpoint({"model_id": model_id, "name": name}, cfg, str(config), tensors, source, notes)


def _is_gguf(path: Path) -> bool:
    if path.suffix.lower() == ".gguf":
        return True
    try:
        with open_regular(path) as f:
            return f.read(4) == b"GGUF"
    except (OSError, SpecError):
        return False


def _from_gguf(path: Path, model_id: str | None) -> tuple[AnyModelSpec, WeightsOverride]:
    return spec_from_gguf_header(read_gguf_header(path), str(path), path.stem, model_id=model_id)


def spec_from_gguf_header(
    header: GGUFHeader, label: str, stem: str, *, model_id: str | None = None
) -> tuple[AnyModelSpec, WeightsOverride]:
    """A spec and the stored weights from a GGUF header read anywhere (a local file, HTTP ranges):
    `label` names the file in messages and sources, `stem` gives the id and the fallback name."""
    path = Path(label)  # the metadata readers name the file in their messages
    arch = header.metadata.get("general.architecture")
    if not isinstance(arch, str):
        raise SpecError(f"{label}: no general.architecture in the GGUF metadata")
    if arch == "clip":
        # convert_hf_to_gguf.py --mmproj writes general.architecture "clip" (gguf MODEL_ARCH.MMPROJ): a vision
        # tower and projector, never a language model; llama.cpp loads it beside one (--mmproj FILE).
        raise UsageError(
            f"{label}: an mmproj file (a vision tower and projector, general.architecture 'clip'), not "
            "a language model: give the model's GGUF, or its catalog id (e.g. gemma-3-4b) to size "
            "the mmproj with llama.cpp"
        )
    split = header.metadata.get("split.count")
    if type(split) is int and split > 1:
        raise UsageError(
            f"{label}: one part of a GGUF split into {split} files; not supported yet (merge them with "
            "llama-gguf-split --merge)"
        )
    # The family that declares the architecture reads the file into its own spec (archs/family.py: GGUFRules):
    # Mixtral files say "llama" with llama.expert_count > 0; qwen3moe/qwen2moe are MoE whatever they say
    # (moe_config refuses one without <arch>.expert_count). An architecture without a family, or a file its
    # family's reader does not model (per-layer head counts, experts where it expects none), is read from its
    # metadata alone (importers/gguf_generic.py): any GGUF llama.cpp writes gets an answer (issue 20 §5).
    generic_why = ""
    family = family_rules(arch)
    try:
        if family is not None and family.ssm is not None:  # Granite 4.0-H may have experts too: its own reader
            spec_arch, config, field_sources = ssm_config(header, path, family.ssm)
        elif family is not None and family.moe is not None and (is_moe(header) or family.decoder is None):
            spec_arch, config, field_sources = moe_config(header, path, family.moe)
        elif family is not None and family.decoder is not None and not is_moe(header):
            spec_arch = family.decoder.spec_architecture
            config, field_sources = decoder_config(header, path, family.decoder)
        else:
            raise UsageError("")
    except UsageError as exc:
        from .gguf_generic import generic_config

        generic_why = str(exc).removeprefix(f"{path}: ")
        spec_arch = "generic"
        config, field_sources = generic_config(header, path)
        if generic_why:
            config["provenance"] += f" (its family's reader: {generic_why[:300]})"
    spec_dtype, stored_dtype, file_type = file_type_dtypes(header)
    general_name = header.metadata.get("general.name")
    # A name read from the file is printed later: control characters and escape sequences are escaped.
    name = (
        safe_text(" ".join(general_name.split())[:120])
        if isinstance(general_name, str) and general_name.strip()
        else stem
    )
    notes = [
        f"Read from a GGUF file ({file_type}): dtype {spec_dtype} is the type the weights are computed in, "
        f"not stored in" + (f"; --dtype {stored_dtype} sizes them as stored." if stored_dtype else ".")
    ]
    if family is not None and family.decoder is not None and family.decoder.note:
        notes.append(family.decoder.note)  # what the family says of every such file (Gemma 3: no vision tower)
    data = {
        "id": check_id(model_id) if model_id else slug(stem),
        "name": name,
        "architecture": spec_arch,
        "dtype": spec_dtype,
        "notes": " ".join(notes),
        "sources": {"config": label, **field_sources},
        "config": config,
    }
    spec = build_spec(data, label)
    rules = "gguf:generic" if spec_arch == "generic" else f"gguf:{arch}"
    from .gguf_generic import skipped_from  # the trailing layers llama.cpp's loader skips (GLM-4.5's MTP layer)

    weights = weights_override(
        rules,
        header.tensors,
        label,
        "gguf",
        dtype=stored_dtype,
        storage=f"{file_type}: {storage_summary(header.tensors)}",
        layers=skipped_from(header) if spec_arch == "generic" else None,
    )
    # GGUF shapes are logical, so element counts are parameters whatever the block type; rope_freqs
    # (Llama 3.1's rope scaling factors) and Phi-3's rope_factors_* are not parameters in transformers.
    rope = sum(t.numel for t in header.tensors if t.name in NOT_PARAMETERS)
    checked = _crosscheck(spec, replace(weights, elements=weights.elements - rope), exact=True)
    return spec, replace(checked, elements=weights.elements)


def spec_from_path(
    path: Path, *, model_id: str | None = None, name: str | None = None
) -> tuple[AnyModelSpec, WeightsOverride | None]:
    """A spec from a config.json, a directory with config.json (and *.safetensors), or a .gguf file,
    with the exact stored weight bytes when weight files are there (read from their headers only);
    `name` names a directory's model (an HF cache snapshot is a commit hash)."""
    path = Path(path)
    kind = path_type(path)
    if kind.kind == "missing":
        raise UsageError(f"{safe_path(path)}: no such file or directory")
    if kind.kind == "other":  # a FIFO, a device, a socket, a name too long: never opened
        raise UsageError(f"{safe_path(path)}: {not_regular(kind.what)} or directory")
    if kind.kind == "directory":
        return _from_directory(path, model_id, name)
    if _is_gguf(path):
        return _from_gguf(path, model_id)
    if path.suffix == ".safetensors":
        raise UsageError(f"{safe_path(path)}: pass the model directory (with its config.json), not one weight file")
    name = safe_text(path.resolve().parent.name if path.name == "config.json" else path.stem)
    return _config_spec(read_config(path), str(path), model_id=model_id, name=name), None


def import_model(source: str, *, model_id: str | None = None) -> tuple[AnyModelSpec, WeightsOverride | None]:
    """`source` is a path (see spec_from_path) or hf:ORG/NAME (config.json and safetensors headers from the Hub)."""
    if not source.startswith("hf:"):
        return spec_from_path(Path(source), model_id=model_id)
    repo_id = parse_repo_id(source)
    config_path = fetch_hf_config(repo_id)
    revision = revision_of(config_path)
    url = f"https://huggingface.co/{repo_id}/blob/{revision}/config.json"
    cfg = read_config(config_path)
    args: dict[str, Any] = {"model_id": model_id, "name": repo_id.rsplit("/", 1)[-1], "hf_id": repo_id}
    _config_spec(cfg, url, **args)  # an unsupported model_type fails before any further request
    tensors, why = fetch_hf_safetensors(repo_id, revision)
    notes = [] if tensors else [f"Weights computed from the config: {why}."]
    return _checkpoint(args, cfg, url, tensors, f"https://huggingface.co/{repo_id}/tree/{revision}", notes)
