"""Storage types: how many bytes a run of weights or cache elements takes.

Block formats store `block_bytes` for every `block_size` elements (scales included), so the
effective bits per weight exceed the nominal bits. GGUF block layouts come from ggml's
`ggml/src/ggml-common.h` (block_q8_0, block_q4_0, block_q2_K ... with QK_K = 256).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Literal


@dataclass(frozen=True)
class StorageType:
    name: str
    block_size: int  # elements per block
    block_bytes: int  # bytes per block, scales included
    # a 2-D tile of block_rows x (block_size / block_rows) elements per scale (fp8 128 x 128): a matrix whose
    # sides are not multiples of the tile still stores a whole scale for each partial tile
    block_rows: int = 0
    scale_bytes: int = 0

    def nbytes(self, elements: int) -> int:
        """Bytes for `elements` values: whole blocks (ggml asserts rows are whole blocks)."""
        blocks = -(-elements // self.block_size)
        return blocks * self.block_bytes

    def tensor_bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of one tensor of `shape`: `nbytes`, except that a 2-D tiled format stores one scale per
        partial tile of each matrix (DeepSeek-V3's kv_a_proj_with_mqa [576, 7168]: 5 x 56 scales)."""
        if not self.block_rows or len(shape) < 2:
            return self.nbytes(prod(shape))
        rows, cols = shape[-2], shape[-1]
        matrices = prod(shape[:-2])
        tile_cols = self.block_size // self.block_rows
        tiles = -(-rows // self.block_rows) * -(-cols // tile_cols)
        values = rows * cols * (self.block_bytes - self.scale_bytes) // self.block_size
        return matrices * (values + tiles * self.scale_bytes)

    @property
    def bits_per_element(self) -> float:
        return self.block_bytes * 8 / self.block_size


# Plain types.
F32 = StorageType("f32", 1, 4)
F16 = StorageType("f16", 1, 2)
BF16 = StorageType("bf16", 1, 2)
FP8 = StorageType("fp8", 1, 1)  # e4m3 with a per-tensor scale (negligible)
INT8 = StorageType("int8", 1, 1)  # bitsandbytes LLM.int8: int8 weights; per-row scales not counted
# GPTQ / AWQ 4-bit with group_size 128: 128 x 4-bit weights (64 B) + an fp16 scale (2 B) + a packed
# 4-bit zero point (0.5 B) per group = 66.5 B per 128 weights, written as 133 B per 256.
INT4 = StorageType("int4", 256, 133)

# Checkpoint formats of MoE releases (issue 10).
# DeepSeek-V3/R1: float8 e4m3 weights with one fp32 scale (weight_scale_inv) per 128 x 128 block
# (config.json quantization_config: fmt e4m3, weight_block_size [128, 128]); a matrix takes 1 B per weight
# and 4 B per 128 x 128 tile, partial tiles included (V3's kv_a_proj_with_mqa is [576, 7168]: 5 x 56 scales, the
# checkpoint's weight_scale_inv; Kimi-K2-Instruct's tensor table, tests/importers/test_real_configs.py).
FP8_BLOCK = StorageType("fp8_block128", 128 * 128, 128 * 128 + 4, block_rows=128, scale_bytes=4)
# gpt-oss: MXFP4 (OCP Microscaling v1.0): 32 e2m1 values (16 B) share one E8M0 scale byte; the
# checkpoint stores them as `*_blocks` and `*_scales` (config.json quantization_config quant_method mxfp4).
MXFP4_HF = StorageType("mxfp4", 32, 17)

# ggml block types (ggml-common.h).
Q8_0 = StorageType("q8_0", 32, 34)  # fp16 scale + 32 int8
Q4_0 = StorageType("q4_0", 32, 18)  # fp16 scale + 16 bytes of nibbles
Q4_1 = StorageType("q4_1", 32, 20)  # fp16 scale + fp16 min + 16 bytes
Q5_0 = StorageType("q5_0", 32, 22)  # fp16 scale + 4 bytes high bits + 16 bytes
Q5_1 = StorageType("q5_1", 32, 24)
Q2_K = StorageType("q2_K", 256, 84)  # 16 B scales + 64 B quants + 2 x fp16
Q3_K = StorageType("q3_K", 256, 110)  # 32 B hmask + 64 B quants + 12 B scales + fp16
Q4_K = StorageType("q4_K", 256, 144)  # 2 x fp16 + 12 B scales + 128 B quants
Q5_K = StorageType("q5_K", 256, 176)  # 2 x fp16 + 12 B scales + 32 B high bits + 128 B quants
Q6_K = StorageType("q6_K", 256, 210)  # 128 B low + 64 B high + 16 B scales + fp16
# i-quants and MXFP4 (ggml-common.h, llama.cpp as vendored in llama-cpp-python 0.3.16).
IQ2_XXS = StorageType("iq2_xxs", 256, 66)  # fp16 + 32 x uint16 (2.0625 bpw)
IQ2_S = StorageType("iq2_s", 256, 82)  # fp16 + 64 B qs + 8 B qh + 8 B scales (2.5625 bpw)
IQ3_XXS = StorageType("iq3_xxs", 256, 98)  # fp16 + 3 x 32 B (3.0625 bpw)
IQ3_S = StorageType("iq3_s", 256, 110)  # fp16 + 64 B qs + 8 B qh + 32 B signs + 4 B scales (3.4375 bpw)
IQ4_NL = StorageType("iq4_nl", 32, 18)  # fp16 + 16 B nibbles (4.5 bpw)
IQ4_XS = StorageType("iq4_xs", 256, 136)  # fp16 + uint16 scales_h + 4 B scales_l + 128 B (4.25 bpw)
MXFP4 = StorageType("mxfp4", 32, 17)  # one E8M0 scale byte + 16 B of e2m1 nibbles (4.25 bpw); OCP MX v1.0

GGML_TYPES = {
    t.name: t
    for t in (
        F32,
        F16,
        BF16,
        Q8_0,
        Q4_0,
        Q4_1,
        Q5_0,
        Q5_1,
        Q2_K,
        Q3_K,
        Q4_K,
        Q5_K,
        Q6_K,
        IQ2_XXS,
        IQ2_S,
        IQ3_XXS,
        IQ3_S,
        IQ4_NL,
        IQ4_XS,
        MXFP4,
    )
}

WeightFamily = Literal["float", "quantized", "gguf"]


@dataclass(frozen=True)
class WeightDtype:
    """A --dtype choice: how every weight tensor of a model is stored.

    - float: every tensor in that type (what transformers loads with torch_dtype=...).
    - quantized: linear layers inside the transformer blocks take `storage`; embeddings, lm_head,
      norms, biases and convolutions stay 16-bit (bitsandbytes / GPTQ / AWQ keep lm_head unquantized).
    - gguf: llama.cpp's per-tensor rules for the file type (see gguf.py), 1-D tensors in f32.
    """

    name: str
    family: WeightFamily
    storage: StorageType
    ftype: str | None = None  # llama.cpp file type for gguf mixes
    activation_bytes: int = 2  # bytes of the compute dtype for activations
    experts_only: bool = False  # quantized: only the routed expert tensors take `storage` (gpt-oss MXFP4)


WEIGHT_DTYPES: dict[str, WeightDtype] = {
    d.name: d
    for d in (
        WeightDtype("fp32", "float", F32, activation_bytes=4),
        WeightDtype("fp16", "float", F16),
        WeightDtype("bf16", "float", BF16),
        WeightDtype("fp8", "quantized", FP8),
        WeightDtype("int8", "quantized", INT8),
        WeightDtype("int4", "quantized", INT4),
        # the checkpoint formats of DeepSeek-V3/R1 and gpt-oss as transformers / vLLM load them
        WeightDtype("fp8-block", "quantized", FP8_BLOCK),
        WeightDtype("mxfp4-experts", "quantized", MXFP4_HF, experts_only=True),
        WeightDtype("q8_0", "gguf", Q8_0, ftype="Q8_0"),
        WeightDtype("q6_k", "gguf", Q6_K, ftype="Q6_K"),
        WeightDtype("q5_k_m", "gguf", Q5_K, ftype="Q5_K_M"),
        WeightDtype("q4_k_m", "gguf", Q4_K, ftype="Q4_K_M"),
        WeightDtype("q4_0", "gguf", Q4_0, ftype="Q4_0"),
        WeightDtype("q3_k_m", "gguf", Q3_K, ftype="Q3_K_M"),
        WeightDtype("q2_k", "gguf", Q2_K, ftype="Q2_K"),
        WeightDtype("q5_1", "gguf", Q5_1, ftype="Q5_1"),
        WeightDtype("q5_0", "gguf", Q5_0, ftype="Q5_0"),
        WeightDtype("q4_1", "gguf", Q4_1, ftype="Q4_1"),
        WeightDtype("iq4_xs", "gguf", IQ4_XS, ftype="IQ4_XS"),
        WeightDtype("iq3_xxs", "gguf", IQ3_XXS, ftype="IQ3_XXS"),
        WeightDtype("iq2_xxs", "gguf", IQ2_XXS, ftype="IQ2_XXS"),
        # llama-quantize MXFP4_MOE: 3-D expert tensors MXFP4, every other 2-D tensor q8_0 (gpt-oss GGUFs)
        WeightDtype("mxfp4", "gguf", MXFP4, ftype="MXFP4_MOE"),
    )
}
# Names people also type; the checkpoint's torch_dtype spelling maps here too.
WEIGHT_ALIASES = {
    "float32": "fp32",
    "f32": "fp32",
    "float16": "fp16",
    "f16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float8": "fp8",
    "f8": "fp8",
    "q4_k": "q4_k_m",
    "q5_k": "q5_k_m",
    "q3_k": "q3_k_m",
    "q6": "q6_k",
    "q8": "q8_0",
    "mxfp4_moe": "mxfp4",
}

KV_DTYPES: dict[str, StorageType] = {
    "f32": F32,
    "f16": F16,
    "bf16": BF16,
    "fp8": FP8,
    "q8_0": Q8_0,  # llama.cpp --cache-type-k/v q8_0
    "q4_0": Q4_0,
}
KV_ALIASES = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16", "bfloat16": "bf16", "float8": "fp8"}


def weight_dtype(name: str) -> WeightDtype:
    key = name.lower()
    key = WEIGHT_ALIASES.get(key, key)
    if key not in WEIGHT_DTYPES:
        raise KeyError(name)
    return WEIGHT_DTYPES[key]


def kv_dtype(name: str) -> StorageType:
    key = name.lower()
    key = KV_ALIASES.get(key, key)
    if key not in KV_DTYPES:
        raise KeyError(name)
    return KV_DTYPES[key]


# The engine profiles willitrun.engines sizes, and the names that stand for one: here, beside
# default_engine, so the command line (cli/parse.py) reads them without importing every profile.
ENGINES = ("transformers", "llama.cpp", "ollama", "whisper.cpp", "vllm", "ctranslate2")
ENGINE_ALIASES = {"faster-whisper": "ctranslate2"}  # faster-whisper runs Whisper on CTranslate2


def default_engine(dtype: str | None) -> str:
    """The engine a --dtype implies: llama.cpp for GGUF types, else transformers (also for the
    checkpoint's own type, and for an unknown name, which resolve() then reports). Lives here, not
    in willitrun.engines, so the CLI can decide without importing every engine profile."""
    if dtype is None:
        return "transformers"
    try:
        return "llama.cpp" if weight_dtype(dtype).family == "gguf" else "transformers"
    except KeyError:
        return "transformers"
