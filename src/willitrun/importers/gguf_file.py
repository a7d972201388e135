"""GGUF files: the architecture metadata and the exact bytes of every tensor, from the header alone.

The header is read sequentially with every declared length checked against what is left of the
file before anything is allocated, so a hostile or truncated file costs at most one read block of
memory and fails with one line. `gguf.GGUFReader` is not used for this: it memory-maps the file and
does not read tensor data eagerly, but it builds numpy arrays for every string of the vocabulary
(26 s for a header of 800k strings, against 0.35 s here) and trusts declared array lengths (an array
claiming 2^40 entries past the end of the file makes it loop and grow without bound). ggml's block
sizes and the file type names are bundled (willitrun/ggml_types.py, checked against the `gguf` package
by the tests), so a GGUF reads on a plain install: no `gguf`, no numpy.

Layout (ggml docs/gguf.md): magic "GGUF", version u32 (2 or 3), tensor count u64, metadata count u64,
metadata (key string, type u32, value), tensor infos (name, n_dims u32, dims u64..., ggml type u32,
offset u64), padding to `general.alignment` (32), tensor data. Strings are a u64 length + UTF-8 bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO, Any

from ..archs.family import GGUFDecoder, GGUFMoe, GGUFRules, GGUFSsm
from ..errors import SpecError, UsageError
from ..files import GGUF_HEADER_CAP, open_regular
from ..ggml_types import FILE_TYPES, GGML_TYPES
from .weights import StoredTensor

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ENTRIES = 1 << 20  # metadata entries or tensors; real files have tens and a few thousand
MAX_ARRAY_STRINGS = 1 << 23  # strings in one array; vocabularies and merge lists hold < 1M
MAX_KEEP_STRING = 1 << 16  # longer string values (chat templates) are skipped, not kept
MAX_KEEP_ARRAY = 4096  # numeric arrays up to this length are kept (per-layer head counts)
STRING_BLOCK = 1 << 18  # bytes read at a time while skipping string arrays

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_INTS = {0, 1, 2, 3, 4, 5, 10, 11}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class SkippedArray:
    """An array value that was not kept: its element type and length."""

    item_type: int
    count: int


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensors: list[StoredTensor]
    data_offset: int
    file_size: int


class _Reader:
    def __init__(self, f: IO[bytes], size: int, path: Path) -> None:
        self.f, self.size, self.path, self.pos = f, size, path, 0

    def fail(self, what: str) -> SpecError:
        return SpecError(f"{self.path}: {what}")

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(
                f"truncated: {what} needs {n:,} bytes at offset {self.pos:,}, the file has "
                f"{self.size - self.pos:,} left"
            )

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        if self.pos + n > GGUF_HEADER_CAP:  # a header is metadata: real ones are a few MiB (the vocabulary)
            raise self.fail(f"the header runs past {GGUF_HEADER_CAP >> 20} MiB ({what}): refused")
        data = self.f.read(n)
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n

    def skip_strings(self, count: int, what: str) -> None:
        """Skip `count` strings (u64 length + bytes) reading the file in blocks: a vocabulary and its
        merges are hundreds of thousands of short strings, too many for a read call each."""
        buf, base, off = b"", self.pos, 0  # buf starts at file offset `base`; `off` is the next string
        for _ in range(count):
            if len(buf) - off < 8:
                base, off = base + off, 0
                self.f.seek(base)
                buf = self.f.read(STRING_BLOCK)
                if len(buf) < 8:
                    self.pos = base
                    self.need(8, what)
            (n,) = struct.unpack_from("<Q", buf, off)
            off += 8
            if n > self.size - (base + off):
                self.pos = base + off
                self.need(n, what)
            off += n
        self.pos = base + off
        self.f.seek(self.pos)

    def scalar(self, vtype: int, what: str) -> Any:
        fmt = _SCALARS[vtype]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str, keep: int = MAX_KEEP_STRING) -> str | None:
        n = self.scalar(10, what)
        if n > keep:
            self.skip(n, what)
            return None
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: not UTF-8") from None

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype, key)
        if vtype == STRING:
            return self.string(key)
        if vtype != ARRAY:
            raise self.fail(f"{key}: unknown metadata type {vtype}")
        item, count = self.scalar(4, key), self.scalar(10, key)
        if item in _SCALARS:
            width = struct.calcsize(_SCALARS[item])
            if count <= MAX_KEEP_ARRAY:
                self.need(count * width, key)
                return [self.scalar(item, key) for _ in range(count)]
            self.skip(count * width, key)
            return SkippedArray(item, count)
        if item == STRING:
            self.need(count * 8, key)  # every string has at least its 8-byte length
            if count > MAX_ARRAY_STRINGS:
                raise self.fail(f"{key}: an array of {count:,} strings is absurd")
            self.skip_strings(count, key)
            return SkippedArray(item, count)
        raise self.fail(f"{key}: arrays of type {item} are not supported")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Metadata (scalars, short strings, short numeric arrays) and every tensor's exact bytes."""
    try:
        with open_regular(path, "GGUF file") as f:  # regular files only: a FIFO or device never blocks
            return read_gguf_stream(f, os.fstat(f.fileno()).st_size, path)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_gguf_stream(f: IO[bytes], size: int, path: Path | str) -> GGUFHeader:
    """The header of a GGUF of `size` bytes read from a seekable binary stream (a local file, or a
    bounded reader of HTTP ranges); `path` names it in messages. OSError is the caller's to report."""
    r = _Reader(f, size, Path(path))
    if r.size < 4 or r.take(4, "magic") != GGUF_MAGIC:
        raise SpecError(f"{path}: not a GGUF file (it does not start with 'GGUF')")
    version = r.scalar(4, "version")
    if version & 0xFFFF == 0 and version:
        raise UsageError(f"{path}: big-endian GGUF files are not supported")
    if version not in (2, 3):
        raise SpecError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = r.scalar(10, "tensor count"), r.scalar(10, "metadata count")
    for n, what in ((n_tensors, "tensors"), (n_kv, "metadata entries")):
        if n > MAX_ENTRIES:
            raise SpecError(f"{path}: header declares {n:,} {what}: absurd")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string("metadata key")
        if key is None:
            raise SpecError(f"{path}: a metadata key longer than {MAX_KEEP_STRING} bytes")
        if key in metadata:
            raise SpecError(f"{path}: metadata key {key!r} appears twice")
        metadata[key] = r.value(r.scalar(4, key), key)
    tensors = []
    offsets = []
    for _ in range(n_tensors):
        name = r.string("tensor name")
        if name is None:
            raise SpecError(f"{path}: a tensor name longer than {MAX_KEEP_STRING} bytes")
        n_dims = r.scalar(4, name)
        if not 1 <= n_dims <= MAX_DIMS:
            raise SpecError(f"{path}: tensor {name!r}: {n_dims} dimensions (ggml allows 1 to {MAX_DIMS})")
        dims = [r.scalar(10, name) for _ in range(n_dims)]
        ggml_type, offset = r.scalar(4, name), r.scalar(10, name)
        if ggml_type not in GGML_TYPES:
            raise SpecError(f"{path}: tensor {name!r}: unknown ggml type {ggml_type}")
        type_name, block, block_bytes = GGML_TYPES[ggml_type]
        if dims[0] % block:
            raise SpecError(f"{path}: tensor {name!r}: rows of {dims[0]} are not whole {type_name} blocks of {block}")
        nbytes = dims[0] // block * block_bytes * prod(dims[1:])
        # GGUF dims run fastest first (ne[0] is the row); shapes here are PyTorch-ordered.
        tensors.append(StoredTensor(name, type_name, tuple(reversed(dims)), nbytes))
        offsets.append(offset)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise SpecError(f"{path}: general.alignment {alignment!r} is not a power of two")
    data_offset = -(-r.pos // alignment) * alignment
    seen = set()
    for t, offset in zip(tensors, offsets, strict=True):
        if t.name in seen:
            raise SpecError(f"{path}: tensor {t.name!r} appears twice")
        seen.add(t.name)
        if offset % alignment:
            raise SpecError(f"{path}: tensor {t.name!r}: data offset {offset} is not aligned to {alignment}")
        if data_offset + offset + t.nbytes > size:
            raise SpecError(
                f"{path}: truncated: tensor {t.name!r} ends at byte {data_offset + offset + t.nbytes:,}, "
                f"the file has {size:,}"
            )
    return GGUFHeader(version, metadata, tensors, data_offset, size)


# --------------------------------------------------------------------------------------------------
# GGUF architecture metadata -> a spec config block
# --------------------------------------------------------------------------------------------------
# A family reads the GGUF architectures it declares into its own spec (archs/family.py: GGUFRules.decoder, .moe,
# .ssm; archs/__init__.py: GGUF_READERS finds the family): this module holds the readers, the family what differs.
# Tensors llama.cpp stores that transformers keeps as config values or buffers, not parameters: Llama 3.1's
# rope scaling factors and Phi-3's LongRoPE factors (llama-arch.cpp LLM_TENSOR_ROPE_FREQS/ROPE_FACTORS_*).
NOT_PARAMETERS = ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight")


def family_rules(arch: str) -> GGUFRules | None:
    """The rules of the family that reads GGUF architecture `arch` into its own spec (loading that family only),
    or None when none does."""
    from .. import archs

    spec_arch = archs.GGUF_READERS.get(arch)
    return None if spec_arch is None else archs.family(spec_arch).gguf_rules.get(arch)


def _int(meta: dict[str, Any], key: str, path: Path, required: bool = True) -> int | None:
    value = meta.get(key)
    if isinstance(value, list) and value and all(type(v) is int for v in value):
        if len(set(value)) != 1:
            raise UsageError(f"{path}: {key} differs per layer ({sorted(set(value))}); not supported yet")
        value = value[0]
    if value is None and not required:
        return None
    if type(value) is not int or value <= 0:
        what = "missing" if value is None else f"{value!r} is not a positive integer"
        raise SpecError(f"{path}: {key}: {what}")
    return value


def decoder_config(header: GGUFHeader, path: Path, d: GGUFDecoder) -> tuple[dict[str, Any], dict[str, str]]:
    """A spec config block from `<arch>.*` metadata and tensor shapes, and the source of each number, for a
    llama-shaped GGUF architecture; `d` (its family's GGUFRules.decoder) says what differs from Llama.

    Keys as llama.cpp's convert_hf_to_gguf.py writes them (gguf-py/gguf/constants.py Keys.LLM/Attention).
    """
    meta, tensors = header.metadata, {t.name: t for t in header.tensors}
    a = meta.get("general.architecture", "llama")
    # expert_count 0 is a dense model (llama.cpp loads it so: hparams.n_expert 0); is_moe sends larger ones elsewhere
    if type(meta.get(f"{a}.expert_count")) is int and meta[f"{a}.expert_count"] > 0:
        raise UsageError(
            f"{path}: a mixture-of-experts model ({a}.expert_count = {meta[f'{a}.expert_count']}); not supported yet"
        )
    keys = {
        "num_hidden_layers": f"{a}.block_count",
        "hidden_size": f"{a}.embedding_length",
        "intermediate_size": f"{a}.feed_forward_length",
        "num_attention_heads": f"{a}.attention.head_count",
        "max_position_embeddings": f"{a}.context_length",
    }
    cfg: dict[str, Any] = {field: _int(meta, key, path) for field, key in keys.items()}
    sources = {f"config.{field}": f"{path}: {key}" for field, key in keys.items()}
    kv = _int(meta, f"{a}.attention.head_count_kv", path, required=False)
    if kv is not None:
        cfg["num_key_value_heads"] = kv
        sources["config.num_key_value_heads"] = f"{path}: {a}.attention.head_count_kv"
    key_len = _int(meta, f"{a}.attention.key_length", path, required=False)
    value_len = _int(meta, f"{a}.attention.value_length", path, required=False)
    if key_len is not None and value_len is not None and key_len != value_len:
        raise UsageError(f"{path}: key_length {key_len} != value_length {value_len}; not supported")
    if key_len is not None and (d.explicit_head_dim or key_len * cfg["num_attention_heads"] != cfg["hidden_size"]):
        cfg["head_dim"] = key_len
        sources["config.head_dim"] = f"{path}: {a}.attention.key_length"
    embd = tensors.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise SpecError(f"{path}: no 2-D token_embd.weight tensor: not a llama model file")
    cfg["vocab_size"] = embd.shape[0]
    sources["config.vocab_size"] = f"{path}: token_embd.weight shape"
    cfg["tie_word_embeddings"] = "output.weight" not in tensors  # llama.cpp reuses token_embd when absent
    for flag, tensor in d.flags.items():
        cfg[flag] = tensor in tensors
    if d.window:
        window = _int(meta, f"{a}.attention.sliding_window", path, required=d.window == "required")
        if window is not None:
            cfg["sliding_window"] = window
            sources["config.sliding_window"] = f"{path}: {a}.attention.sliding_window"
    for field, key in d.ints.items():
        number = _int(meta, f"{a}.{key}", path, required=False)
        if number is not None:
            cfg[field] = number
            sources[f"config.{field}"] = f"{path}: {a}.{key}"
    for field, key in d.floats.items():
        value = meta.get(f"{a}.{key}")
        if type(value) is float and 0 < value <= 1e6:
            cfg[field] = value
            sources[f"config.{field}"] = f"{path}: {a}.{key}"
    return cfg, sources


def file_type_dtypes(header: GGUFHeader) -> tuple[str, str | None, str]:
    """(spec dtype, willitrun --dtype of the stored weights or None, file type name) from general.file_type."""
    from ..dtypes import weight_dtype

    value = header.metadata.get("general.file_type")
    name = FILE_TYPES.get(value, "").removeprefix("MOSTLY_") if type(value) is int else ""
    spec_dtype = {"ALL_F32": "float32", "BF16": "bfloat16"}.get(name, "float16")
    try:
        wd = weight_dtype("fp32" if name == "ALL_F32" else name).name if name else None
    except KeyError:
        wd = None
    return spec_dtype, wd, name or "unknown file type"


# --------------------------------------------------------------------------------------------------
# Mixture-of-experts GGUFs (issue 10)
# --------------------------------------------------------------------------------------------------
def is_moe(header: GGUFHeader) -> bool:
    arch = header.metadata.get("general.architecture")
    count = header.metadata.get(f"{arch}.expert_count")
    return isinstance(arch, str) and type(count) is int and count > 0


def moe_config(header: GGUFHeader, path: Path, m: GGUFMoe) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(spec architecture, config block, source of each number) of a mixture-of-experts GGUF; `m` (its family's
    GGUFRules.moe) says what differs: Mixtral (llama + expert_count; its experts use `feed_forward_length`),
    qwen3moe, qwen2moe. Keys as convert_hf_to_gguf.py writes them: `<arch>.expert_count`, `expert_used_count`,
    `expert_feed_forward_length`, `expert_shared_feed_forward_length` (Qwen2-MoE)."""
    meta, tensors = header.metadata, {t.name: t for t in header.tensors}
    a = meta.get("general.architecture")
    arch = m.spec_architecture
    keys = {
        "num_hidden_layers": f"{a}.block_count",
        "hidden_size": f"{a}.embedding_length",
        "num_attention_heads": f"{a}.attention.head_count",
        "max_position_embeddings": f"{a}.context_length",
        "num_key_value_heads": f"{a}.attention.head_count_kv",
        "num_experts_per_tok": f"{a}.expert_used_count",
        m.experts_field: f"{a}.expert_count",
    }
    if m.expert_width_is_ffn:
        keys["intermediate_size"] = f"{a}.feed_forward_length"
    else:
        keys["moe_intermediate_size"] = f"{a}.expert_feed_forward_length"
    if m.shared_width:
        keys["shared_expert_intermediate_size"] = f"{a}.expert_shared_feed_forward_length"
    cfg: dict[str, Any] = {field: _int(meta, key, path) for field, key in keys.items()}
    sources = {f"config.{field}": f"{path}: {key}" for field, key in keys.items()}
    if not m.expert_width_is_ffn:
        # the dense MLP width of mlp_only_layers (none in released files): feed_forward_length when written
        ff = _int(meta, f"{a}.feed_forward_length", path, required=False)
        cfg["intermediate_size"] = ff or cfg["moe_intermediate_size"]
        sources["config.intermediate_size"] = (
            f"{path}: {a}.feed_forward_length" if ff else f"{path}: {a}.expert_feed_forward_length (no dense layers)"
        )
    key_len = _int(meta, f"{a}.attention.key_length", path, required=False)
    if key_len is not None and (m.explicit_head_dim or key_len * cfg["num_attention_heads"] != cfg["hidden_size"]):
        cfg["head_dim"] = key_len
        sources["config.head_dim"] = f"{path}: {a}.attention.key_length"
    embd = tensors.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise SpecError(f"{path}: no 2-D token_embd.weight tensor: not a decoder model file")
    cfg["vocab_size"] = embd.shape[0]
    sources["config.vocab_size"] = f"{path}: token_embd.weight shape"
    cfg["tie_word_embeddings"] = "output.weight" not in tensors
    cfg.update(m.fixed)
    for flag, tensor in m.flags.items():
        cfg[flag] = tensor in tensors
    return arch, cfg, sources


# --------------------------------------------------------------------------------------------------
# State-space GGUFs (issue 10): Mamba-2 and Granite 4.0-H
# --------------------------------------------------------------------------------------------------
def _ssm_mixer(
    meta: dict[str, Any], tensors: dict[str, StoredTensor], a: str, hidden: int, path: Path, prefix: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Mamba-2 mixer fields. convert_hf_to_gguf.py (Mamba2Model, GraniteHybridModel) writes
    `<arch>.ssm.inner_size` (expand x hidden_size), `ssm.time_step_rank` (the number of heads, which
    llama.cpp's Mamba-2 graph reads as n_head), `ssm.group_count`, `ssm.state_size`, `ssm.conv_kernel`."""
    keys = {
        "state_size": f"{a}.ssm.state_size",
        "conv_kernel": f"{a}.ssm.conv_kernel",
        "n_groups": f"{a}.ssm.group_count",
        "num_heads": f"{a}.ssm.time_step_rank",
    }
    got = {field: _int(meta, key, path) for field, key in keys.items()}
    inner = _int(meta, f"{a}.ssm.inner_size", path)
    assert inner is not None  # _int raises when a required key is missing
    if inner % hidden:
        raise SpecError(f"{path}: {a}.ssm.inner_size {inner} is not a multiple of embedding_length {hidden}")
    heads = got["num_heads"]
    assert heads is not None
    if inner % heads:
        raise SpecError(f"{path}: {a}.ssm.inner_size {inner} is not a multiple of ssm.time_step_rank {heads} (heads)")
    names = {"state_size": "d_state", "conv_kernel": "d_conv", "n_groups": "n_groups", "num_heads": "n_heads"}
    cfg: dict[str, Any] = {f"{prefix}{names[f]}" if prefix else f: v for f, v in got.items()}
    sources = {f"config.{prefix}{names[f]}" if prefix else f"config.{f}": f"{path}: {k}" for f, k in keys.items()}
    expand_field, head_field = (f"{prefix}expand", f"{prefix}d_head") if prefix else ("expand", "head_dim")
    cfg[expand_field], cfg[head_field] = inner // hidden, inner // heads
    sources[f"config.{expand_field}"] = f"{path}: {a}.ssm.inner_size / embedding_length"
    sources[f"config.{head_field}"] = f"{path}: {a}.ssm.inner_size / ssm.time_step_rank"
    # blk.N.ssm_in.weight; a name whose N is no layer number (blk.x.ssm_in.weight) is not one of them
    layer = next(
        (
            int(n)
            for t in tensors
            if t.endswith(".ssm_in.weight") and t.startswith("blk.")
            for n in [t.split(".")[1]]
            if n.isdigit() and len(n) < 6
        ),
        None,
    )
    if layer is None:
        raise SpecError(f"{path}: no blk.N.ssm_in.weight tensor: not a Mamba-2 model file")
    a_log = tensors.get(f"blk.{layer}.ssm_a")
    if a_log is None or prod(a_log.shape) != heads:
        raise SpecError(f"{path}: blk.{layer}.ssm_a does not hold one value per head ({a}.ssm.time_step_rank {heads})")
    cfg["mamba_proj_bias" if prefix else "use_bias"] = f"blk.{layer}.ssm_in.bias" in tensors
    cfg["mamba_conv_bias" if prefix else "use_conv_bias"] = f"blk.{layer}.ssm_conv1d.bias" in tensors
    return cfg, sources


def ssm_config(header: GGUFHeader, path: Path, ssm: GGUFSsm) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(spec architecture, config block, source of each number) of a Mamba-2 or Granite 4.0-H GGUF.

    Granite 4.0-H (convert_hf_to_gguf.py GraniteHybridModel.set_gguf_parameters over GraniteMoeModel's):
    `attention.head_count_kv` is a per-layer list, the KV heads on attention layers and 0 on Mamba layers;
    `feed_forward_length` is the experts' width, `expert_shared_feed_forward_length` the shared MLP's,
    `expert_count` 0 for a model without routed experts; `context_length` is 2^20 for a hybrid without
    rope (the converter's placeholder, not a trained window)."""
    meta, tensors = header.metadata, {t.name: t for t in header.tensors}
    a = str(meta.get("general.architecture"))  # the caller found its family by it: a string
    arch = ssm.spec_architecture
    hidden = _int(meta, f"{a}.embedding_length", path)
    layers = _int(meta, f"{a}.block_count", path)
    assert hidden is not None and layers is not None
    cfg: dict[str, Any] = {"num_hidden_layers": layers, "hidden_size": hidden}
    sources = {
        "config.num_hidden_layers": f"{path}: {a}.block_count",
        "config.hidden_size": f"{path}: {a}.embedding_length",
    }
    mixer, mixer_sources = _ssm_mixer(meta, tensors, a, hidden, path, "mamba_" if ssm.hybrid else "")
    cfg.update(mixer)
    sources.update(mixer_sources)
    if ssm.hybrid:
        kv = meta.get(f"{a}.attention.head_count_kv")
        if not (isinstance(kv, list) and len(kv) == layers and all(type(v) is int and v >= 0 for v in kv)):
            raise SpecError(f"{path}: {a}.attention.head_count_kv: expected one count per layer ({layers})")
        kv_heads = sorted({v for v in kv if v})
        if len(kv_heads) > 1:
            raise UsageError(
                f"{path}: {a}.attention.head_count_kv differs per attention layer ({kv_heads}); not supported yet"
            )
        cfg["layer_types"] = ["attention" if v else "mamba" for v in kv]
        sources["config.layer_types"] = f"{path}: {a}.attention.head_count_kv (0 on Mamba layers)"
        keys = {
            "num_attention_heads": f"{a}.attention.head_count",
            "max_position_embeddings": f"{a}.context_length",
            "intermediate_size": f"{a}.feed_forward_length",
            "shared_intermediate_size": f"{a}.expert_shared_feed_forward_length",
        }
        cfg.update({field: _int(meta, key, path) for field, key in keys.items()})
        sources.update({f"config.{field}": f"{path}: {key}" for field, key in keys.items()})
        if kv_heads:
            cfg["num_key_value_heads"] = kv_heads[0]
            sources["config.num_key_value_heads"] = f"{path}: {a}.attention.head_count_kv"
        for field, key in (
            ("num_local_experts", f"{a}.expert_count"),
            ("num_experts_per_tok", f"{a}.expert_used_count"),
        ):
            value = meta.get(key, 0)
            if type(value) is not int or value < 0:
                raise SpecError(f"{path}: {key}: {value!r} is not a count")
            cfg[field] = value
            sources[f"config.{field}"] = f"{path}: {key}"
        key_len = _int(meta, f"{a}.attention.key_length", path, required=False)
        if key_len is not None and key_len * cfg["num_attention_heads"] != hidden:
            cfg["head_dim"] = key_len
            sources["config.head_dim"] = f"{path}: {a}.attention.key_length"
        attn = next((i for i, v in enumerate(kv) if v), None)
        cfg["attention_bias"] = attn is not None and f"blk.{attn}.attn_q.bias" in tensors
        for field, suffix in (
            ("embedding_multiplier", "embedding_scale"),
            ("residual_multiplier", "residual_scale"),
            ("attention_multiplier", "attention.scale"),
            ("logits_scaling", "logit_scale"),
        ):
            value = meta.get(f"{a}.{suffix}")
            if type(value) is float and 0 < value <= 1e6:
                cfg[field] = value
                sources[f"config.{field}"] = f"{path}: {a}.{suffix}"
    embd = tensors.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise SpecError(f"{path}: no 2-D token_embd.weight tensor: not a decoder model file")
    cfg["vocab_size"] = embd.shape[0]
    sources["config.vocab_size"] = f"{path}: token_embd.weight shape (padded by the converter)"
    cfg["tie_word_embeddings"] = "output.weight" not in tensors
    return arch, cfg, sources


def read_names(spec_architecture: str) -> list[str]:
    """The GGUF general.architecture names `willitrun import` reads for an architecture: those a family reads into
    specs of it (archs/family.py: GGUFRules.decoder / moe / ssm), then the ones its family declares
    (gguf_architectures) that no such reader takes, read from their metadata with the family's rules
    (importers/gguf_generic.py)."""
    from .. import archs

    pairs = []
    for g in archs.GGUF_READERS:
        rules = family_rules(g)
        assert rules is not None  # tests/importers: every GGUF_READERS entry names a family that reads it
        pairs += [(g, r.spec_architecture) for r in (rules.decoder, rules.moe, rules.ssm) if r is not None]
    names = [g for g, spec in pairs if spec == spec_architecture]
    taken = {g for g, _ in pairs}
    return names + [g for g in archs.family(spec_architecture).gguf_architectures if g not in taken and g not in names]
