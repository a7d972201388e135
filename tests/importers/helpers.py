"""Shared by the importer tests: transformers as the independent count, and file writers."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

MODEL_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "t5": "T5ForConditionalGeneration",
    "whisper": "WhisperForConditionalGeneration",
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "mllama": "MllamaForConditionalGeneration",
    "gemma3": "Gemma3ForConditionalGeneration",
    "paligemma": "PaliGemmaForConditionalGeneration",
    "mistral3": "Mistral3ForConditionalGeneration",
}


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def transformers_parameters(config_dir: Path, t5_untied: bool = False) -> int:
    """sum(p.numel() for p in Model(config).parameters()) with the config transformers reads from
    config_dir, built on the meta device (tied weights count once).

    transformers 5.x always ties T5's lm_head to `shared` when building from a config, while the
    untied checkpoints (flan-t5) keep a separate one (from_pretrained does not re-tie differing
    weights): for those the separate vocab x d_model head is added, as tests/reference does.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        model = getattr(transformers, MODEL_CLASSES[config.model_type])(config)
    total = sum(p.numel() for p in model.parameters())
    if config.model_type == "t5" and t5_untied:
        assert model.lm_head.weight is model.shared.weight
        total += model.shared.weight.numel()
    return total


def safetensors_file(
    path: Path, header: dict[str, Any], data: bytes | None = None, sparse_size: int | None = None
) -> Path:
    """A .safetensors file with this header; its data is `data`, or a hole of `sparse_size` bytes."""
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        if data is not None:
            f.write(data)
        elif sparse_size is not None:
            f.truncate(8 + len(raw) + sparse_size)  # a hole: no tensor data is ever written or read
    return path


def header_for(
    shapes: dict[str, tuple[int, ...]], dtype: str = "F16", bytes_per: int = 2
) -> tuple[dict[str, Any], int]:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = bytes_per
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    return header, offset


VOCAB, HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, CONTEXT = 96, 64, 128, 2, 4, 2, 256


def write_llama_gguf(
    path: Path,
    *,
    tied: bool = False,
    rope_freqs: bool = False,
    arch: str = "llama",
    file_type: int | str | None = "default",
    extra: dict | None = None,
    name: str | None = "Tiny Llama",
) -> Path:
    """A small llama GGUF as llama.cpp lays it out (gguf's GGUFWriter): F16 token embedding, Q8_0
    matrices, F32 norms, Q4_0 output head; file type MOSTLY_Q8_0 unless given."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    Q = gguf.GGMLQuantizationType
    if file_type == "default":
        file_type = gguf.LlamaFileType.MOSTLY_Q8_0
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    if name:
        w.add_name(name)
    if file_type is not None:
        w.add_file_type(int(file_type))
    w.add_token_list([f"tok{i}" for i in range(VOCAB)])
    for key, value in (extra or {}).items():
        w.add_uint32(key, value)

    def matrix(name: str, rows: int, cols: int, qtype=Q.Q8_0) -> None:
        data = rng.standard_normal((rows, cols), dtype=np.float32)
        if qtype == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    def vector(name: str, n: int) -> None:
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    matrix("token_embd.weight", VOCAB, HIDDEN, Q.F16)
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        vector(f"blk.{i}.attn_norm.weight", HIDDEN)
        matrix(f"blk.{i}.attn_q.weight", HEADS * head_dim, HIDDEN)
        matrix(f"blk.{i}.attn_k.weight", KV_HEADS * head_dim, HIDDEN)
        matrix(f"blk.{i}.attn_v.weight", KV_HEADS * head_dim, HIDDEN)
        matrix(f"blk.{i}.attn_output.weight", HIDDEN, HEADS * head_dim)
        vector(f"blk.{i}.ffn_norm.weight", HIDDEN)
        matrix(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    vector("output_norm.weight", HIDDEN)
    if not tied:
        matrix("output.weight", VOCAB, HIDDEN, Q.Q4_0)
    if rope_freqs:
        vector("rope_freqs.weight", head_dim // 2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
