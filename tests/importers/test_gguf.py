"""GGUF files: architecture metadata -> spec, exact per-tensor bytes from the header, and hostile
headers failing in one line with little memory and time whatever they claim."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import tracemalloc

import pytest

from tests.importers.helpers import CONTEXT, FFN, HEADS, HIDDEN, KV_HEADS, LAYERS, VOCAB, write_llama_gguf
from willitrun import SpecError, UsageError, estimate
from willitrun.catalog import load_spec
from willitrun.dtypes import weight_dtype
from willitrun.importers import read_gguf_header, spec_from_path, write_spec_yaml
from willitrun.memory import weight_components
from willitrun.validate import validate_file

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType


def transformers_llama_parameters(tied: bool) -> int:
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    config = tf.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=tied,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.device("meta"):
        model = tf.LlamaForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("tied", [False, True])
def test_spec_and_bytes_from_a_llama_gguf(tmp_path, tied):
    path = write_llama_gguf(tmp_path / "Tiny-Llama-Q8_0.gguf", tied=tied)
    spec, weights = spec_from_path(path)
    assert spec.id == "tiny-llama-q8-0" and spec.name == "Tiny Llama" and spec.architecture == "llama"
    c = spec.config
    assert (
        c.vocab_size,
        c.hidden_size,
        c.intermediate_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.kv_heads,
        c.max_position_embeddings,
        c.tie_word_embeddings,
    ) == (VOCAB, HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, CONTEXT, tied)
    assert estimate(spec).parameters == transformers_llama_parameters(tied)

    # Every tensor's bytes equal what the file holds for it (gguf's own reader, data included).
    reader = gguf.GGUFReader(str(path))
    stored = {t.name: t.data.nbytes for t in reader.tensors}
    assert {t.name: t.nbytes for t in read_gguf_header(path).tensors} == stored
    assert weights.total_bytes == sum(stored.values()) and weights.format == "gguf"
    assert weights.dtype == "q8_0" and spec.dtype == "float16"
    assert weights.elements == estimate(spec).parameters and weights.notes == ()
    by_component = {c.name: c.bytes for c in weights.apply(weight_components(spec, weight_dtype("q8_0")))}
    assert by_component["embeddings"] == stored["token_embd.weight"]
    assert by_component.get("lm_head") == (None if tied else stored["output.weight"])
    assert sum(by_component.values()) == weights.total_bytes


def test_rope_freqs_is_stored_but_not_a_parameter(tmp_path):
    spec, weights = spec_from_path(write_llama_gguf(tmp_path / "m.gguf", rope_freqs=True))
    assert weights.elements == estimate(spec).parameters + HIDDEN // HEADS // 2
    assert weights.notes == ()  # the cross-check knows rope_freqs is a buffer


def test_gguf_spec_yaml_is_strictly_valid(tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf")
    spec, _ = spec_from_path(path)
    target = tmp_path / "model_specs" / f"{spec.id}.yaml"
    target.parent.mkdir()
    target.write_text(write_spec_yaml(spec, str(path)))
    kind, loaded, errors, warnings = validate_file(target)
    assert (kind, errors, warnings) == ("model", [], [])
    assert loaded == load_spec(target, "model") == spec
    assert spec.sources["config.hidden_size"] == f"{path}: llama.embedding_length"


@pytest.mark.parametrize(
    ("file_type", "spec_dtype", "stored"),
    [
        (gguf.LlamaFileType.ALL_F32, "float32", "fp32"),
        (gguf.LlamaFileType.MOSTLY_F16, "float16", "fp16"),
        (gguf.LlamaFileType.MOSTLY_BF16, "bfloat16", "bf16"),
        (gguf.LlamaFileType.MOSTLY_Q4_K_M, "float16", "q4_k_m"),
        (gguf.LlamaFileType.MOSTLY_Q4_K_S, "float16", None),  # no willitrun --dtype of that name
        (None, "float16", None),
    ],
)
def test_file_type(tmp_path, file_type, spec_dtype, stored):
    spec, weights = spec_from_path(write_llama_gguf(tmp_path / "m.gguf", file_type=file_type))
    assert (spec.dtype, weights.dtype) == (spec_dtype, stored)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"extra": {"llama.expert_count": 8}}, SpecError, "llama.expert_used_count: missing"),
        ({"extra": {"split.count": 3}}, UsageError, "one part of a GGUF split into 3 files; not supported yet"),
    ],
)
def test_unsupported_models(tmp_path, kwargs, error, words):
    with pytest.raises(error) as exc:
        spec_from_path(write_llama_gguf(tmp_path / "m.gguf", **kwargs))
    assert words in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arch": "bloom"},  # no family: read from the metadata (tests/importers/test_gguf_generic.py)
        {"arch": "qwen2", "extra": {"qwen2.expert_count": 8, "qwen2.expert_used_count": 2}},  # experts its reader lacks
        {"extra": {"llama.attention.key_length": 16, "llama.attention.value_length": 8}},  # K and V of different widths
    ],
)
def test_what_a_family_reader_does_not_model_is_read_from_the_metadata(tmp_path, kwargs):
    spec, weights = spec_from_path(write_llama_gguf(tmp_path / "m.gguf", **kwargs))
    assert spec.architecture == "generic" and estimate(spec).parameters == weights.elements


def test_expert_count_zero_is_a_dense_model(tmp_path):
    # issue 17: llama.cpp loads a dense file that says expert_count = 0 (hparams.n_expert 0)
    spec, _ = spec_from_path(write_llama_gguf(tmp_path / "m.gguf", extra={"llama.expert_count": 0}))
    assert spec.architecture == "llama"


def test_explicit_head_dim(tmp_path):
    spec, _ = spec_from_path(
        write_llama_gguf(
            tmp_path / "m.gguf", extra={"llama.attention.key_length": 16, "llama.attention.value_length": 16}
        )
    )
    assert spec.config.head_dim is None  # 16 = 64 / 4: nothing to state


# --------------------------------------------------------------------------------------------------
# Hostile and broken headers, byte by byte
# --------------------------------------------------------------------------------------------------
def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u64(len(raw)) + raw


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return s(key) + u32(vtype) + payload


def tensor(name: str, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return s(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ggml_type) + u64(offset)


def gguf_bytes(
    kvs: list[bytes] = (),
    tensors: list[bytes] = (),
    *,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    version: bytes = u32(3),
    magic: bytes = b"GGUF",
    data: bytes = b"",
) -> bytes:
    head = (
        magic
        + version
        + u64(len(tensors) if n_tensors is None else n_tensors)
        + u64(len(kvs) if n_kv is None else n_kv)
    )
    head += b"".join(kvs) + b"".join(tensors)
    return head + b"\0" * (-len(head) % 32) + data


ARCH = kv("general.architecture", 8, s("llama"))
HOSTILE = {
    "empty file": (b"", SpecError, "not a GGUF file"),
    "bad magic": (gguf_bytes(magic=b"GGML"), SpecError, "not a GGUF file"),
    "safetensors file": (u64(2) + b"{}", SpecError, "not a GGUF file"),
    "version 1": (gguf_bytes(version=u32(1)), SpecError, "GGUF version 1 is not supported"),
    "big-endian": (gguf_bytes(version=struct.pack(">I", 3)), UsageError, "big-endian GGUF files are not supported"),
    "header cut short": (b"GGUF" + u32(3) + u64(0), SpecError, "truncated: metadata count needs 8 bytes"),
    "2^40 metadata entries": (
        gguf_bytes(n_kv=1 << 40),
        SpecError,
        "declares 1,099,511,627,776 metadata entries: absurd",
    ),
    "2^63 tensors": (gguf_bytes(n_tensors=1 << 63), SpecError, "tensors: absurd"),
    "more entries than the file holds": (
        b"GGUF" + u32(3) + u64(0) + u64(1000) + ARCH,
        SpecError,
        "truncated: metadata key",
    ),
    "key of 2^62 bytes": (
        gguf_bytes([u64(1 << 62) + b"x"]),
        SpecError,
        "truncated: metadata key needs 4,611,686,018,427,387,904",
    ),
    "string value of 2^60 bytes": (gguf_bytes([s("k") + u32(8) + u64(1 << 60)]), SpecError, "truncated: k needs"),
    "2^40 bytes in an array": (
        gguf_bytes([kv("k", 9, u32(0) + u64(1 << 40))]),
        SpecError,
        "truncated: k needs 1,099,511,627,776",
    ),
    "2^40 strings in an array": (
        gguf_bytes([kv("k", 9, u32(8) + u64(1 << 40))]),
        SpecError,
        "truncated: k needs 8,796,093,022,208",
    ),
    "string longer than the file in an array": (
        gguf_bytes([kv("k", 9, u32(8) + u64(2) + u64(1 << 50))]),
        SpecError,
        "truncated",
    ),
    "nested arrays": (gguf_bytes([kv("k", 9, u32(9) + u64(1))]), SpecError, "arrays of type 9 are not supported"),
    "unknown value type": (gguf_bytes([kv("k", 99, b"")]), SpecError, "k: unknown metadata type 99"),
    "key not utf-8": (gguf_bytes([kv(b"\xff\xfe", 4, u32(1))]), SpecError, "metadata key: not UTF-8"),
    "duplicate key": (
        gguf_bytes([kv("k", 4, u32(1)), kv("k", 4, u32(2))]),
        SpecError,
        "metadata key 'k' appears twice",
    ),
    "alignment 3": (
        gguf_bytes([kv("general.alignment", 4, u32(3))]),
        SpecError,
        "general.alignment 3 is not a power of two",
    ),
    "alignment as a string": (gguf_bytes([kv("general.alignment", 8, s("32"))]), SpecError, "is not a power of two"),
    "9 dimensions": (gguf_bytes(tensors=[tensor("t", [1] * 9)]), SpecError, "tensor 't': 9 dimensions"),
    "0 dimensions": (gguf_bytes(tensors=[tensor("t", [])]), SpecError, "tensor 't': 0 dimensions"),
    "unknown ggml type": (gguf_bytes(tensors=[tensor("t", [4], 9999)]), SpecError, "unknown ggml type 9999"),
    "rows not whole blocks": (
        gguf_bytes(tensors=[tensor("t", [33, 2], int(Q.Q8_0))]),
        SpecError,
        "rows of 33 are not whole Q8_0 blocks of 32",
    ),
    "tensor data missing": (
        gguf_bytes(tensors=[tensor("t", [1 << 20, 1 << 20])]),
        SpecError,
        "truncated: tensor 't' ends at byte",
    ),
    "duplicate tensor": (
        gguf_bytes(tensors=[tensor("t", [8]), tensor("t", [8], offset=32)], data=b"\0" * 64),
        SpecError,
        "tensor 't' appears twice",
    ),
    "misaligned data": (
        gguf_bytes(tensors=[tensor("t", [8], offset=4)], data=b"\0" * 64),
        SpecError,
        "is not aligned to 32",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_fail_fast_in_one_line_with_little_memory(tmp_path, case):
    content, error, words = HOSTILE[case]
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(error) as exc:
        spec_from_path(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert type(exc.value) is error and words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert peak < 1 << 20 and seconds < 2


def test_every_truncation_of_a_real_file_is_one_spec_error(tmp_path):
    """Cut a valid file at every byte of its header and at points in its data: always SpecError."""
    full = write_llama_gguf(tmp_path / "full.gguf").read_bytes()
    data_offset = read_gguf_header(tmp_path / "full.gguf").data_offset
    cut = tmp_path / "cut.gguf"
    for n in [*range(data_offset), data_offset, len(full) // 2, len(full) - 1]:
        cut.write_bytes(full[:n])
        with pytest.raises(SpecError) as exc:
            spec_from_path(cut)
        assert "\n" not in str(exc.value)


def test_millions_of_strings_are_refused(tmp_path):
    """An array of more strings than any vocabulary, each of them present: refused by count."""
    path = tmp_path / "m.gguf"
    count = (1 << 23) + 1
    path.write_bytes(gguf_bytes([kv("tokenizer.ggml.tokens", 9, u32(8) + u64(count))]))
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size + 8 * count)  # zero-length strings, as a hole
    with pytest.raises(SpecError, match="an array of 8,388,609 strings is absurd"):
        spec_from_path(path)


@pytest.mark.parametrize(
    ("drop", "words"),
    [
        ("llama.block_count", "llama.block_count: missing"),
        ("token_embd.weight", "no 2-D token_embd.weight tensor"),
        ("general.architecture", "no general.architecture"),
    ],
)
def test_missing_metadata(tmp_path, drop, words):
    """A header like llama.cpp's, minus one thing a llama spec needs."""
    kvs = [
        ARCH,
        kv("llama.block_count", 4, u32(1)),
        kv("llama.embedding_length", 4, u32(32)),
        kv("llama.feed_forward_length", 4, u32(64)),
        kv("llama.attention.head_count", 4, u32(4)),
        kv("llama.context_length", 4, u32(128)),
    ]
    kvs = [k for k in kvs if drop.encode() not in k]
    tensors = [] if drop == "token_embd.weight" else [tensor("token_embd.weight", [32, 16], 1)]
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(kvs, tensors, data=b"\0" * 32 * 16 * 2))
    with pytest.raises(SpecError) as exc:
        spec_from_path(path)
    assert words in str(exc.value)


@pytest.mark.parametrize("block", [8, 9, 13, 64, 1 << 18])
def test_string_arrays_are_skipped_across_read_blocks(tmp_path, monkeypatch, block):
    """Strings straddling the blocks the skipper reads, one longer than a block, then a key after them."""
    from willitrun.importers import gguf_file

    strings = [b"", b"a", b"tok" * 7, b"x" * 100, b"\xff\xfe", b"end"]
    path = tmp_path / "m.gguf"
    path.write_bytes(
        gguf_bytes([kv("tokenizer.ggml.tokens", 9, u32(8) + u64(len(strings)) + b"".join(map(s, strings))), ARCH])
    )
    monkeypatch.setattr(gguf_file, "STRING_BLOCK", block)
    meta = read_gguf_header(path).metadata
    assert meta == {"tokenizer.ggml.tokens": gguf_file.SkippedArray(8, len(strings)), "general.architecture": "llama"}
    full = path.read_bytes()
    for n in range(len(full) - 40):  # every cut inside the strings and the key after them
        path.write_bytes(full[:n])
        with pytest.raises(SpecError):
            read_gguf_header(path)


def test_without_the_gguf_package_or_numpy(tmp_path):
    """A plain `pip install willitrun` reads GGUF files: neither gguf nor numpy is imported (a fresh interpreter
    where importing either fails), and the answer is the one read with them installed."""
    path = write_llama_gguf(tmp_path / "m.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    spec, weights = spec_from_path(path)
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('gguf', 'numpy'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from willitrun.importers import spec_from_path\n"
        f"spec, weights = spec_from_path({str(path)!r})\n"
        "print(spec.model_dump_json()); print(weights.total_bytes, weights.storage)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('gguf', 'numpy')]\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [spec.model_dump_json(), f"{weights.total_bytes} {weights.storage}"]
    assert "Q4_K_M" in (spec.notes or "")  # the file type name, from the bundled table


# --------------------------------------------------------------------------------------------------
# The llama-like families (read by their own GGUF rules: archs/family.py GGUFRules.decoder)
# --------------------------------------------------------------------------------------------------
def _family_gguf(path, arch: str, *, head_dim: int, tied: bool, window: int | None = None, extra: dict | None = None):
    """A small GGUF of `arch` with the per-layer tensors llama.cpp's converter writes for it
    (llama-arch.cpp LLM_TENSOR_NAMES): q/k/v biases (qwen2), q/k norms (qwen3), four norms (gemma2,
    gemma3 with q/k norms too), fused attn_qkv and gate+up in ffn_up with LongRoPE factors (phi3);
    StarCoder2 biases every projection, norm and ffn_up/ffn_down with no ffn_gate (src/models/starcoder2.cpp,
    output_norm.bias too); Cohere 2 has one attn_norm (weight only) and no ffn_norm (src/models/cohere2.cpp).
    `extra` adds metadata: ints as u32, floats as f32."""
    np = pytest.importorskip("numpy")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    if window:
        w.add_sliding_window(window)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    for key, value in (extra or {}).items():
        (w.add_float32 if isinstance(value, float) else w.add_uint32)(key, value)
    biased = arch in ("qwen2", "starcoder2")  # q/k/v biases; StarCoder2 biases everything

    def t(name, *shape):
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))

    t("token_embd.weight", VOCAB, HIDDEN)
    for i in range(LAYERS):
        b = f"blk.{i}"
        t(f"{b}.attn_norm.weight", HIDDEN)
        if arch == "starcoder2":
            t(f"{b}.attn_norm.bias", HIDDEN)
        if arch == "phi3":
            t(f"{b}.attn_qkv.weight", (HEADS + 2 * KV_HEADS) * head_dim, HIDDEN)
        else:
            for name, rows in (
                ("attn_q", HEADS * head_dim),
                ("attn_k", KV_HEADS * head_dim),
                ("attn_v", KV_HEADS * head_dim),
            ):
                t(f"{b}.{name}.weight", rows, HIDDEN)
                if biased:
                    t(f"{b}.{name}.bias", rows)
        t(f"{b}.attn_output.weight", HIDDEN, HEADS * head_dim)
        if arch == "starcoder2":
            t(f"{b}.attn_output.bias", HIDDEN)
        if arch in ("qwen3", "gemma3"):
            t(f"{b}.attn_q_norm.weight", head_dim)
            t(f"{b}.attn_k_norm.weight", head_dim)
        if arch in ("gemma2", "gemma3"):
            t(f"{b}.post_attention_norm.weight", HIDDEN)
            t(f"{b}.post_ffw_norm.weight", HIDDEN)
        if arch != "cohere2":  # Cohere 2's parallel block: attn_norm feeds the MLP too
            t(f"{b}.ffn_norm.weight", HIDDEN)
        if arch == "starcoder2":
            t(f"{b}.ffn_norm.bias", HIDDEN)
            t(f"{b}.ffn_up.weight", FFN, HIDDEN)  # c_fc: no gate
            t(f"{b}.ffn_up.bias", FFN)
            t(f"{b}.ffn_down.bias", HIDDEN)
        elif arch == "phi3":
            t(f"{b}.ffn_up.weight", 2 * FFN, HIDDEN)  # gate_up_proj, as convert_hf_to_gguf.py keeps it fused
        else:
            for name in ("ffn_gate", "ffn_up"):
                t(f"{b}.{name}.weight", FFN, HIDDEN)
        t(f"{b}.ffn_down.weight", HIDDEN, FFN)
    if arch == "phi3":  # LongRoPE factors (Phi-3.5 128k): config values in transformers, tensors in GGUF
        t("rope_factors_long.weight", head_dim // 2)
        t("rope_factors_short.weight", head_dim // 2)
    t("output_norm.weight", HIDDEN)
    if arch == "starcoder2":
        t("output_norm.bias", HIDDEN)
    if not tied:
        t("output.weight", VOCAB, HIDDEN)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    ("arch", "config_class", "head_dim", "tied", "window"),
    [
        ("qwen2", "Qwen2Config", HIDDEN // HEADS, False, None),
        ("qwen3", "Qwen3Config", 8, True, None),
        ("gemma2", "Gemma2Config", 8, True, 16),
        ("gemma3", "Gemma3TextConfig", 8, True, 16),
        ("phi3", "Phi3Config", HIDDEN // HEADS, False, None),
        ("starcoder2", "Starcoder2Config", HIDDEN // HEADS, False, 16),
        ("starcoder2", "Starcoder2Config", HIDDEN // HEADS, True, None),
        ("cohere2", "Cohere2Config", HIDDEN // HEADS, True, 16),
    ],
)
def test_family_gguf_equals_transformers(tmp_path, arch, config_class, head_dim, tied, window):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    spec, weights = spec_from_path(
        _family_gguf(tmp_path / f"{arch}.gguf", arch, head_dim=head_dim, tied=tied, window=window)
    )
    assert spec.architecture == {"gemma3": "gemma3_text"}.get(arch, arch) and spec.config.tie_word_embeddings is tied
    extra = {"head_dim": head_dim} if arch not in ("qwen2", "phi3", "starcoder2", "cohere2") else {}
    if window:
        extra["sliding_window"] = window
        assert spec.config.sliding_window == window
    config = getattr(tf, config_class)(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=tied,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(config)
    # the file's elements also hold Phi-3's LongRoPE factors, which transformers keeps in its config
    factors = 2 * (head_dim // 2) if arch == "phi3" else 0
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters()) == weights.elements - factors
    assert weights.notes == ()


# --------------------------------------------------------------------------------------------------
# Mixture-of-experts GGUFs (GGUFRules.moe; Mixtral files say "llama")
# --------------------------------------------------------------------------------------------------
EXPERTS, USED, EXPERT_FFN, SHARED_FFN = 4, 2, 24, 40


def _moe_gguf(path, arch: str, *, head_dim: int, tied: bool):
    """A small MoE GGUF with the tensors llama.cpp's converter writes (llama-arch.cpp LLM_TENSOR_NAMES):
    the router ffn_gate_inp, the experts stacked in ffn_{gate,up,down}_exps, Qwen2-MoE's shared
    expert ffn_*_shexp and its gate ffn_gate_inp_shexp, Qwen3-MoE's q/k norms, Qwen2-MoE's q/k/v biases."""
    np = pytest.importorskip("numpy")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_expert_count(EXPERTS)
    w.add_expert_used_count(USED)
    ffn = FFN if arch == "llama" else EXPERT_FFN
    if arch == "llama":
        w.add_feed_forward_length(FFN)
    else:
        w.add_expert_feed_forward_length(EXPERT_FFN)
    if arch == "qwen2moe":
        w.add_expert_shared_feed_forward_length(SHARED_FFN)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))

    def t(name, *shape):
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))

    t("token_embd.weight", VOCAB, HIDDEN)
    for i in range(LAYERS):
        b = f"blk.{i}"
        t(f"{b}.attn_norm.weight", HIDDEN)
        for name, rows in (
            ("attn_q", HEADS * head_dim),
            ("attn_k", KV_HEADS * head_dim),
            ("attn_v", KV_HEADS * head_dim),
        ):
            t(f"{b}.{name}.weight", rows, HIDDEN)
            if arch == "qwen2moe":
                t(f"{b}.{name}.bias", rows)
        t(f"{b}.attn_output.weight", HIDDEN, HEADS * head_dim)
        if arch == "qwen3moe":
            t(f"{b}.attn_q_norm.weight", head_dim)
            t(f"{b}.attn_k_norm.weight", head_dim)
        t(f"{b}.ffn_norm.weight", HIDDEN)
        t(f"{b}.ffn_gate_inp.weight", EXPERTS, HIDDEN)
        t(f"{b}.ffn_gate_exps.weight", EXPERTS, ffn, HIDDEN)
        t(f"{b}.ffn_up_exps.weight", EXPERTS, ffn, HIDDEN)
        t(f"{b}.ffn_down_exps.weight", EXPERTS, HIDDEN, ffn)
        if arch == "qwen2moe":
            t(f"{b}.ffn_gate_inp_shexp.weight", HIDDEN)
            t(f"{b}.ffn_gate_shexp.weight", SHARED_FFN, HIDDEN)
            t(f"{b}.ffn_up_shexp.weight", SHARED_FFN, HIDDEN)
            t(f"{b}.ffn_down_shexp.weight", HIDDEN, SHARED_FFN)
    t("output_norm.weight", HIDDEN)
    if not tied:
        t("output.weight", VOCAB, HIDDEN)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    ("arch", "spec_arch", "config_class", "head_dim", "tied", "extra"),
    [
        (
            "llama",
            "mixtral",
            "MixtralConfig",
            HIDDEN // HEADS,
            False,
            {"intermediate_size": FFN, "num_local_experts": EXPERTS},
        ),
        (
            "qwen3moe",
            "qwen3_moe",
            "Qwen3MoeConfig",
            8,
            True,
            {"head_dim": 8, "moe_intermediate_size": EXPERT_FFN, "num_experts": EXPERTS},
        ),
        (
            "qwen2moe",
            "qwen2_moe",
            "Qwen2MoeConfig",
            HIDDEN // HEADS,
            False,
            {
                "moe_intermediate_size": EXPERT_FFN,
                "num_experts": EXPERTS,
                "shared_expert_intermediate_size": SHARED_FFN,
            },
        ),
    ],
)
def test_moe_gguf_equals_transformers(tmp_path, arch, spec_arch, config_class, head_dim, tied, extra):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    spec, weights = spec_from_path(_moe_gguf(tmp_path / f"{arch}.gguf", arch, head_dim=head_dim, tied=tied))
    assert spec.architecture == spec_arch and spec.config.tie_word_embeddings is tied
    assert spec.config.num_experts_per_tok == USED
    config = getattr(tf, config_class)(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        num_experts_per_tok=USED,
        tie_word_embeddings=tied,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(config)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters()) == weights.elements
    assert weights.notes == ()
    assert {name for name, _ in weights.component_bytes} == {"embeddings", "decoder"} | (set() if tied else {"lm_head"})


def test_moe_gguf_without_expert_count_is_one_spec_error(tmp_path):
    path = _moe_gguf(tmp_path / "m.gguf", "qwen3moe", head_dim=8, tied=True)
    header = path.read_bytes().replace(b"qwen3moe.expert_count", b"qwen3moe.expert_xount")
    path.write_bytes(header)
    with pytest.raises(SpecError, match=r"qwen3moe\.expert_count: missing"):
        spec_from_path(path)


@pytest.mark.parametrize("arch", ["llama", "qwen3moe", "qwen2moe"])
def test_moe_gguf_spec_yaml_is_strictly_valid(tmp_path, arch):
    path = _moe_gguf(
        tmp_path / f"tiny-{arch}.gguf", arch, head_dim=8 if arch == "qwen3moe" else HIDDEN // HEADS, tied=False
    )
    spec, _ = spec_from_path(path)
    target = tmp_path / "model_specs" / f"{spec.id}.yaml"
    target.parent.mkdir()
    target.write_text(write_spec_yaml(spec, str(path)))
    kind, loaded, errors, warnings = validate_file(target)
    assert (kind, errors, warnings) == ("model", [], [])
    assert loaded == load_spec(target, "model") == spec
    assert spec.sources["config.num_experts_per_tok"] == f"{path}: {arch}.expert_used_count"


def test_cohere2_gguf_pattern_and_logit_scale(tmp_path):
    """cohere2.attention.sliding_window_pattern (optional, llama.cpp src/models/cohere2.cpp: default 4) and
    cohere2.logit_scale (convert_hf_to_gguf.py Cohere2Model) reach the spec; period 2 over 2 layers makes
    layer 0 slide and layer 1 global, as Cohere2Config's (i + 1) % pattern rule does."""
    from willitrun import archs

    path = _family_gguf(
        tmp_path / "c.gguf",
        "cohere2",
        head_dim=HIDDEN // HEADS,
        tied=True,
        window=16,
        extra={"cohere2.attention.sliding_window_pattern": 2, "cohere2.logit_scale": 0.25},
    )
    spec, _ = spec_from_path(path)
    assert (spec.config.sliding_window_pattern, spec.config.logit_scale) == (2, 0.25)
    assert spec.sources["config.sliding_window_pattern"] == f"{path}: cohere2.attention.sliding_window_pattern"
    g = archs.geometry(spec)
    assert [(k.kind, k.window) for k in g.self_kv] == [("sliding", 16), ("full", None)] and g.llamacpp_swa


def test_cohere2_gguf_without_its_window_is_one_spec_error(tmp_path):
    # src/models/cohere2.cpp reads cohere2.attention.sliding_window as a required key
    with pytest.raises(SpecError, match=r"cohere2\.attention\.sliding_window: missing"):
        spec_from_path(_family_gguf(tmp_path / "c.gguf", "cohere2", head_dim=HIDDEN // HEADS, tied=True))


def test_starcoder2_gguf_without_a_window_is_full_attention(tmp_path):
    from willitrun import archs

    spec, _ = spec_from_path(_family_gguf(tmp_path / "s.gguf", "starcoder2", head_dim=HIDDEN // HEADS, tied=True))
    assert spec.config.use_bias is True and spec.config.sliding_window is None
    assert {k.kind for k in archs.geometry(spec).self_kv} == {"full"}
