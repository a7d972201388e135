"""Weight bytes per storage type."""

import pytest

from tests.conftest import llama
from willitrun import estimate
from willitrun.dtypes import weight_dtype
from willitrun.memory import weight_components

MiB = 1 << 20

# Llama-2-7B shapes, hand-counted: embeddings 32000 x 4096; per layer 4 x 4096^2 (attention)
# + 3 x 4096 x 11008 (gated MLP) + 2 x 4096 (RMSNorm); final norm 4096; untied lm_head 32000 x 4096.
EMB = 32000 * 4096
LAYER = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
TOTAL = EMB + 32 * LAYER + 4096 + EMB


def test_parameter_count_by_hand():
    e = estimate(llama(), context=1)
    assert e.parameters == TOTAL == 6_738_415_616
    assert {c.name: c.parameters for c in e.components} == {
        "embeddings": EMB,
        "decoder": 32 * LAYER + 4096,
        "lm_head": EMB,
    }


def test_tied_embeddings_counted_once():
    e = estimate(llama(tie_word_embeddings=True), context=1)
    assert e.parameters == TOTAL - EMB
    assert "lm_head" not in {c.name for c in e.components}


@pytest.mark.parametrize(("dtype", "bytes_per_param"), [("fp32", 4), ("fp16", 2), ("bf16", 2)])
def test_float_types(dtype, bytes_per_param):
    assert estimate(llama(), context=1, dtype=dtype).weights_bytes == TOTAL * bytes_per_param


def test_quantized_linear_layers_only():
    # int8: linear weights in the layers take 1 byte; embeddings, lm_head and norms stay 16-bit
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert estimate(llama(), context=1, dtype="int8").weights_bytes == linear + 2 * (TOTAL - linear)


# llama.cpp's own buffer sizes for OpenLLaMA-7B-v2 (Llama-2-7B tensor shapes), printed by the
# ggml-org CI on a V100 (tests/engines/data/measured.yaml, llama.cpp b2197):
# `llm_load_tensors: CUDA0 buffer size` (everything but token_embd) and `CPU buffer size` (token_embd).
@pytest.mark.parametrize(
    ("dtype", "gpu_mib", "cpu_mib"),
    [("fp16", 12603.02, 250.0), ("q8_0", 6695.84, 132.81), ("q4_0", 3577.56, 70.31), ("q4_k_m", 3820.94, 70.31)],
)
def test_gguf_sizes_match_llama_cpp(dtype, gpu_mib, cpu_mib):
    spec = llama(max_position_embeddings=2048)
    comps = {c.name: c.bytes for c in weight_components(spec, weight_dtype(dtype))}
    gpu = comps["decoder"] + comps["lm_head"]
    if dtype == "fp16":
        # a GGUF "f16" file keeps the 65 RMSNorm vectors (2 per layer + output_norm) in f32
        gpu += 65 * 4096 * 2
    # printed with two decimals; the backend also pads each tensor to its alignment (< 0.05 MiB in all)
    assert abs(gpu / MiB - gpu_mib) < 0.05
    assert abs(comps["embeddings"] / MiB - cpu_mib) < 0.01


def test_q4_k_m_mix_by_hand():
    # Llama-2-7B q4_k_m: output -> q6_K; attn_v and ffn_down -> q6_K in use_more_bits layers
    # (i < 4, i >= 28, or (i - 4) % 3 == 2: layers 0-3, 6, 9, ..., 27, 28-31 = 4 + 8 + 4 = 16 layers)
    q4k, q6k = 144 / 256, 210 / 256
    more = [i for i in range(32) if i < 4 or i >= 28 or (i - 4) % 3 == 2]
    assert len(more) == 16
    per_layer_q4 = (3 * 4096 * 4096 + 2 * 4096 * 11008) * q4k  # q, k, o, gate, up
    v_down_more = (4096 * 4096 + 4096 * 11008) * q6k
    v_down_rest = (4096 * 4096 + 4096 * 11008) * q4k
    expected = (
        EMB * q4k + 32 * (per_layer_q4 + 2 * 4096 * 4) + 16 * v_down_more + 16 * v_down_rest + 4096 * 4 + EMB * q6k
    )
    assert estimate(llama(), context=1, dtype="q4_k_m").weights_bytes == expected


def test_row_not_multiple_of_256_falls_back():
    # hidden 384 (whisper-tiny width) is not a multiple of 256: q4_K rows fall back to q5_0 (22 B / 32)
    spec = llama(
        hidden_size=384,
        num_attention_heads=6,
        num_key_value_heads=6,
        intermediate_size=1536,
        num_hidden_layers=1,
        vocab_size=512,
    )
    comps = {c.name: c.bytes for c in weight_components(spec, weight_dtype("q4_k_m"))}
    assert comps["embeddings"] == 512 * 384 * 22 // 32
