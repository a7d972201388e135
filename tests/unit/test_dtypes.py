"""Storage types: bits per weight from the ggml block layouts (ggml/src/ggml-common.h)."""

import pytest

from willitrun.dtypes import GGML_TYPES, INT4, KV_DTYPES, WEIGHT_DTYPES, kv_dtype, weight_dtype


@pytest.mark.parametrize(
    ("name", "bpw"),
    [
        # block_q8_0: fp16 d + 32 x int8 = 34 B / 32 weights
        ("q8_0", 34 * 8 / 32),
        # block_q4_0: fp16 d + 16 B of nibbles = 18 B / 32
        ("q4_0", 18 * 8 / 32),
        # block_q2_K: 16 B scales + 64 B qs + 2 fp16 = 84 B / 256
        ("q2_K", 84 * 8 / 256),
        # block_q3_K: 32 B hmask + 64 B qs + 12 B scales + fp16 = 110 B / 256
        ("q3_K", 110 * 8 / 256),
        # block_q4_K: 2 fp16 + 12 B scales + 128 B qs = 144 B / 256
        ("q4_K", 144 * 8 / 256),
        # block_q5_K: 2 fp16 + 12 B scales + 32 B qh + 128 B qs = 176 B / 256
        ("q5_K", 176 * 8 / 256),
        # block_q6_K: 128 B ql + 64 B qh + 16 B scales + fp16 = 210 B / 256
        ("q6_K", 210 * 8 / 256),
    ],
)
def test_ggml_bits_per_weight(name, bpw):
    assert GGML_TYPES[name].bits_per_element == bpw


def test_int4_is_gptq_group_128():
    # 4-bit weights + fp16 scale + 4-bit zero per 128 weights: (512 + 16 + 4) / 128 bits
    assert INT4.bits_per_element == (512 + 16 + 4) / 128


def test_block_bytes_round_up_to_whole_blocks():
    q8 = kv_dtype("q8_0")
    assert q8.nbytes(32) == 34
    assert q8.nbytes(33) == 68


def test_aliases():
    assert weight_dtype("float16").name == "fp16"
    assert weight_dtype("BF16").name == "bf16"
    assert kv_dtype("fp16").name == "f16"
    with pytest.raises(KeyError):
        weight_dtype("fp12")


def test_every_kv_and_weight_type_listed():
    assert set(KV_DTYPES) == {"f32", "f16", "bf16", "fp8", "q8_0", "q4_0"}
    assert set(WEIGHT_DTYPES) >= {
        "fp32",
        "fp16",
        "bf16",
        "fp8",
        "int8",
        "int4",
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q4_k_m",
        "q4_0",
        "q3_k_m",
        "q2_k",
    }
