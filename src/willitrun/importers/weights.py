"""The exact bytes of a checkpoint's weights, read from file headers only (never tensor data).

A safetensors file is an 8-byte little-endian header length, a JSON header naming every tensor's
dtype, shape and byte range, then the data (https://huggingface.co/docs/safetensors, "Format").
`WeightsOverride` carries the stored bytes per willitrun component so an estimate can use them in
place of the bytes it computes from the architecture.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from math import prod
from pathlib import Path

from ..archs import GGUF_READERS
from ..archs.family import BUFFER as BUFFER  # declared low: family modules name it in their rules
from ..archs.family import IGNORED_ON_LOAD
from ..errors import SpecError
from ..files import (
    SAFETENSORS_HEADER_CAP,
    SAFETENSORS_INDEX_CAP,
    open_regular,
    path_type,
    read_text,
    safe_path,
    safe_text,
)
from ..overrides import WeightsOverride as WeightsOverride  # defined low (memory uses it); kept importable here

# A header is JSON text describing tensors: real ones are kilobytes to a few megabytes (a 405B model's
# largest shard header is ~100 KB). Anything beyond this is refused before a byte of it is read.
MAX_HEADER_BYTES = SAFETENSORS_HEADER_CAP
MAX_INDEX_BYTES = SAFETENSORS_INDEX_CAP

# Bits per element of each safetensors dtype (safetensors `Dtype`, safetensors/src/tensor.rs);
# sub-byte types are packed, so a tensor takes ceil(elements x bits / 8) bytes.
SAFETENSORS_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_WEIGHT_DTYPE = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


@dataclass(frozen=True)
class StoredTensor:
    """One tensor as a weight file stores it: its type name in that format, shape and exact bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape)


# --------------------------------------------------------------------------------------------------
# safetensors headers
# --------------------------------------------------------------------------------------------------
def _shown(value: object) -> str:
    """A value read from a file, for an error line: repr (control characters escaped), kept short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def header_tensors(header: object, where: str, data_bytes: int | None) -> list[StoredTensor]:
    """Tensors of a parsed safetensors header; `data_bytes` (the file's data section) bounds the offsets."""
    where = safe_text(where)
    if not isinstance(header, dict):
        raise SpecError(f"{where}: not a safetensors file: the header is not a JSON object")
    out = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: tensor {_shown(name)}: malformed header entry")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise SpecError(f"{where}: tensor {_shown(name)}: malformed shape {_shown(shape)}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise SpecError(f"{where}: tensor {_shown(name)}: malformed data_offsets {_shown(offsets)}")
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_BITS:
            raise SpecError(f"{where}: tensor {_shown(name)}: unknown dtype {_shown(dtype)}")
        nbytes = -(-prod(shape) * SAFETENSORS_BITS[dtype] // 8)
        if offsets[1] - offsets[0] != nbytes:
            raise SpecError(
                f"{where}: tensor {_shown(name)}: {dtype} {_shown(shape)} is {nbytes} bytes but its "
                f"data_offsets span {offsets[1] - offsets[0]}"
            )
        if data_bytes is not None and offsets[1] > data_bytes:
            raise SpecError(
                f"{where}: truncated: tensor {_shown(name)} ends at byte {offsets[1]} of the data, "
                f"which holds {data_bytes}"
            )
        out.append(StoredTensor(name, dtype, tuple(shape), nbytes))
    return out


def read_safetensors_header(path: Path) -> list[StoredTensor]:
    """Every tensor of a .safetensors file from its header alone (the data is never read); a regular
    file only, and a header of at most MAX_HEADER_BYTES (the safetensors format's own limit)."""
    where = safe_path(path)
    with open_regular(path, "safetensors file") as f:
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise SpecError(f"{where}: not a safetensors file: {size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise SpecError(
                    f"{where}: not a safetensors file: header length {n:,} bytes is absurd "
                    f"(more than {MAX_HEADER_BYTES >> 20} MiB)"
                )
            if 8 + n > size:
                raise SpecError(
                    f"{where}: truncated: the header claims {n:,} bytes but the file has {size - 8:,} after its length"
                )
            raw = f.read(n)
        except OSError as exc:
            raise SpecError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(raw) < n:
        raise SpecError(f"{where}: truncated while being read")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SpecError(f"{where}: not a safetensors file: the header is not JSON") from None
    return header_tensors(header, str(path), size - 8 - n)


def weight_files(directory: Path) -> tuple[list[Path], list[str]]:
    """The safetensors files transformers would load from `directory`, and notes on what was skipped.

    As `from_pretrained` does: the shards listed in model.safetensors.index.json, else
    model.safetensors. Other .safetensors files (Mistral's consolidated.safetensors, adapters) are
    not the transformers checkpoint and would count the weights twice.
    """
    index = directory / "model.safetensors.index.json"
    where = safe_path(index)
    notes: list[str] = []
    if path_type(index).kind != "missing":
        text = read_text(index, MAX_INDEX_BYTES, "safetensors index")
        try:
            weight_map = json.loads(text).get("weight_map")
        except (ValueError, RecursionError, AttributeError):
            raise SpecError(f"{where}: not a safetensors index (JSON with a weight_map)") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise SpecError(f"{where}: not a safetensors index (JSON with a weight_map)")
        files = []
        for name in sorted(set(weight_map.values())):
            shard = directory / name
            if Path(name).name != name or path_type(shard).kind == "missing":
                raise SpecError(f"{where}: lists shard {_shown(name)}, which is not in {safe_path(directory)}")
            files.append(shard)  # anything but a regular file is refused when its header is read
    elif path_type(directory / "model.safetensors").kind != "missing":
        files = [directory / "model.safetensors"]
    else:
        files = []
    others = sorted(p.name for p in directory.glob("*.safetensors") if p not in files)
    if others:
        notes.append(
            f"not counted (not the transformers checkpoint): {', '.join(map(safe_text, others[:5]))}"
            + (" ..." if len(others) > 5 else "")
        )
    return files, notes


def read_checkpoint(files: Iterable[Path]) -> list[StoredTensor]:
    tensors: list[StoredTensor] = []
    seen: dict[str, Path] = {}
    for path in files:
        for t in read_safetensors_header(path):
            if t.name in seen:
                raise SpecError(f"{safe_path(path)}: tensor {_shown(t.name)} is also in {safe_path(seen[t.name])}")
            seen[t.name] = path
            tensors.append(t)
    return tensors


def first_float_dtype(tensors: list[StoredTensor]) -> str | None:
    """The checkpoint type transformers' dtype="auto" picks without a config dtype: the first
    floating-point tensor's (modeling_utils.get_state_dict_dtype; float8/float4 are skipped)."""
    for t in tensors:
        if t.dtype in FLOAT_DTYPES:
            return FLOAT_DTYPES[t.dtype]
    return None


# --------------------------------------------------------------------------------------------------
# Tensor names -> willitrun components
# --------------------------------------------------------------------------------------------------
# A component of None is a stored duplicate transformers ties on load (it takes no memory of its own); BUFFER
# marks a buffer (archs/family.py). The rules of an architecture are its family's (`weight_rules`); this table
# holds llama.cpp's GGUF names, which the families share.
COMPONENT_RULES: dict[str, list[tuple[str, str | None]]] = {}
# GGUF names (llama.cpp gguf-py/gguf/constants.py MODEL_TENSORS): every per-layer tensor is blk.N.*,
# the experts included (ffn_{gate,up,down}_exps stacked 3-D, the router ffn_gate_inp, Qwen2-MoE's
# shared expert ffn_*_shexp and its gate ffn_gate_inp_shexp), so the llama-like and MoE
# architectures share one table. rope_freqs holds the Llama 3.1 rope scaling factors and
# rope_factors_* Phi-3's LongRoPE factors, which transformers keeps as buffers (counted here as
# stored bytes; the importer leaves them out of the parameter cross-check).
_GGUF_DECODER: list[tuple[str, str | None]] = [
    (r"token_embd\.weight", "embeddings"),
    (r"blk\.\d+\..+|output_norm\.weight|rope_freqs\.weight|rope_factors_(long|short)\.weight", "decoder"),
    (r"output\.weight", "lm_head"),
]


def _gguf_rules(arch: str) -> list[tuple[str, str | None]]:
    """The names of a GGUF architecture a family reads into its own spec (archs/__init__.py: GGUF_READERS; Mixtral
    files say llama; Mamba-2 and Granite 4.0-H files name their tensors as the other decoders do), with what the
    family adds (GGUFDecoder.weight_rules: StarCoder2's biased output norm)."""
    from .gguf_file import family_rules

    family = family_rules(arch)
    extra = family.decoder.weight_rules if family is not None and family.decoder is not None else ()
    return [*_GGUF_DECODER, *extra]


def storage_summary(tensors: list[StoredTensor]) -> str:
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.dtype] = counts.get(t.dtype, 0) + t.nbytes
    return ", ".join(name for name, _ in sorted(counts.items(), key=lambda kv: -kv[1]))


def component_rules(rules_key: str) -> list[tuple[str, str | None]]:
    """The naming rules of `rules_key` (an architecture, or gguf:<llama.cpp architecture>): this table's,
    else what the architecture's family module declares (archs/family.py: `weight_rules`)."""
    if rules_key.startswith("gguf:") and rules_key[5:] in GGUF_READERS:
        return _gguf_rules(rules_key[5:])
    if rules_key in COMPONENT_RULES:
        return COMPONENT_RULES[rules_key]
    from .. import archs

    if rules_key in archs.FAMILIES:
        declared = archs.family(rules_key).weight_rules.get(rules_key)
        if declared is not None:
            return list(declared)
    raise KeyError(rules_key)


# --------------------------------------------------------------------------------------------------
# Tensors the model class never builds (archs/family.py IGNORED_ON_LOAD)
# --------------------------------------------------------------------------------------------------
def _rule_applies(pattern: re.Pattern[str], component: str | None, name: str, layers: int | None) -> bool:
    """Whether a naming rule takes tensor `name`: its pattern matches, and an ignored-on-load rule with a `layer`
    group only for a layer index at or past `layers`, the model's layer count (never when it is unknown)."""
    match = pattern.fullmatch(name)
    if match is None or component != IGNORED_ON_LOAD or "layer" not in pattern.groupindex:
        return match is not None
    digits = match["layer"]
    return layers is not None and (len(digits) > 9 or int(digits) >= layers)  # a name's digits are untrusted


def _ignored_note(ignored: list[StoredTensor], fmt: str) -> str:
    nbytes = sum(t.nbytes for t in ignored)
    size = f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"
    why = (
        "skipped by llama.cpp's loader (TENSOR_SKIP; multi-token-prediction layers)"
        if fmt == "gguf"
        else "not built by the model class (transformers ignores them on load; multi-token-prediction layers)"
    )
    return f"not counted, {why}: {len(ignored)} tensor(s), {nbytes:,} bytes ({size}), e.g. {safe_text(ignored[0].name[:120])}"


def weights_override(
    rules_key: str,
    tensors: list[StoredTensor],
    source: str,
    fmt: str,
    *,
    dtype: str | None = None,
    storage: str | None = None,
    notes: Iterable[str] = (),
    layers: int | None = None,
) -> WeightsOverride:
    """Sum `tensors` per component with the naming rules of `rules_key` (an architecture); `layers`, the model's
    decoder layer count, lets the rules leave out the layers stored past it (DeepSeek-V3's model.layers.61)."""
    rules = [(re.compile(p), c) for p, c in component_rules(rules_key)]
    per: dict[str, int] = {}
    unmapped: list[str] = []
    skipped: list[str] = []
    buffers: list[str] = []
    ignored: list[StoredTensor] = []
    total = elements = 0
    for t in tensors:
        comp = next((c for p, c in rules if _rule_applies(p, c, t.name, layers)), "?")
        if comp == IGNORED_ON_LOAD:
            ignored.append(t)
            continue
        if comp is None:
            skipped.append(t.name)
            continue
        if comp == BUFFER:
            buffers.append(t.name)
            continue
        total += t.nbytes
        elements += t.numel
        if comp == "?":
            unmapped.append(t.name)
        else:
            per[comp] = per.get(comp, 0) + t.nbytes
    out_notes = list(notes)
    if ignored:  # the files hold them, the model does not: the rest is what loads
        out_notes.append(_ignored_note(ignored, fmt))
        gone = {t.name for t in ignored}
        tensors = [t for t in tensors if t.name not in gone]
    if skipped:
        out_notes.append(f"not counted, tied on load: {', '.join(skipped)}")
    if buffers:
        shown = ", ".join(buffers) if len(buffers) <= 3 else f"{len(buffers)} tensors, e.g. {', '.join(buffers[:2])}"
        out_notes.append(f"not counted, buffers rather than parameters: {shown}")
    if unmapped:
        out_notes.append(
            f"{len(unmapped)} tensor name(s) not placed in a component (e.g. {unmapped[0]}); only the total is used"
        )
    if dtype is None and fmt == "safetensors":
        kinds = {t.dtype for t in tensors}
        dtype = _WEIGHT_DTYPE.get(next(iter(kinds))) if len(kinds) == 1 else None
    return WeightsOverride(
        source=source,
        format=fmt,
        storage=storage or storage_summary(tensors),
        total_bytes=total,
        elements=elements,
        tensors=len(tensors) - len(skipped) - len(buffers),
        component_bytes=() if unmapped else tuple(sorted(per.items())),
        dtype=dtype,
        notes=tuple(out_notes),
    )
