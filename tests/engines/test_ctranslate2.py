"""CTranslate2 / faster-whisper profile: the exact parts worked out by hand for Whisper large-v2
(d_model 1280, 32 + 32 layers, FFN 5120, 51,865 tokens), each against the CTranslate2 or faster-whisper
source line that sets it; the fitted constants are checked in test_calibration.py against the README."""

from __future__ import annotations

import pytest

from willitrun import load_catalog
from willitrun.engines import CTranslate2Options, engine_estimate, engine_fit
from willitrun.engines.ctranslate2 import (
    CT2_CUDA_OVERHEAD_BYTES,
    CT2_DECODE_TOKENS,
    CT2_ENCODER_BASE_BYTES,
    CT2_INT8_SAVING_BYTES,
    ct2_weight_bytes,
)
from willitrun.errors import UsageError
from willitrun.memory import Request

MiB = 1 << 20
PARAMS = 1_543_304_960  # whisper-large-v2 (transformers' count; tests/reference)
LINEAR = 32 * (4 * 1280**2 + 2 * 1280 * 5120) + 32 * (8 * 1280**2 + 2 * 1280 * 5120) + 51865 * 1280  # + token embedding
ROWS = 32 * (4 * 1280 + 5120 + 1280) + 32 * (8 * 1280 + 5120 + 1280) + 51865  # one float32 scale each
ZERO_K_BIAS = (32 + 2 * 32) * 1280  # fuse_linear gives k_proj (no bias) zeros: encoder self, decoder self and cross
CROSS = 32 * 2 * 1500 * 1280 * 2  # per encoder-state copy, f16
MEMORY = 1500 * 1280 * 2  # the encoder output, per copy
SELF_TOKEN = 32 * 2 * 1280 * 2  # per token per hypothesis


@pytest.fixture(scope="module")
def large():
    return load_catalog().resolve("model", "whisper-large-v2")


def ct2(spec, req=None, engine="ctranslate2", **opts):
    return engine_estimate(spec, req or Request(), engine, CTranslate2Options(**opts))


def test_hand_counts_agree_with_the_inventory():
    assert LINEAR == 1_534_393_600 and ROWS == 952_985


def test_float16_weights(large):
    # every parameter in float16, the LM head stored once (aliased to the token embedding)
    assert ct2_weight_bytes(large, "float16") == 2 * PARAMS + 2 * ZERO_K_BIAS == 3_086_855_680  # 2943.9 MiB


def test_int8_float16_weights(large):
    # int8 linear layers and token embedding + a float32 scale per row; conv, biases, norms, positions in f16
    floats = PARAMS - LINEAR
    assert ct2_weight_bytes(large, "int8_float16") == LINEAR + 4 * ROWS + 2 * (floats + ZERO_K_BIAS) == 1_556_274_020


def test_int8_on_a_float16_model_is_int8_float16(large):
    # src/types.cc resolve_compute_type: ComputeType::INT8 takes the saved float type (float16)
    assert ct2(large, compute_type="int8").dtype == "int8_float16"
    assert ct2(large, Request(dtype="int8")).dtype == "int8_float16"
    assert ct2(large).dtype == "float16"  # "default" = the saved type of the Systran conversions


def test_default_peak_is_a_temperature_fallback(large):
    # faster-whisper defaults beam 5, best_of 5: a fallback samples 5 hypotheses and repeats every state,
    # the encoder output included (decoding.cc `if (num_hypotheses > 1) ... repeat_batch`)
    e = ct2(large)
    assert e.facts["encoder_state_copies"] == 5 and e.facts["hypotheses"] == 5
    assert e.find("cross-attention K/V").bytes == 5 * CROSS == 1_228_800_000
    assert e.find("encoder output").bytes == 5 * MEMORY
    assert e.find("self-attention K/V").bytes == 5 * CT2_DECODE_TOKENS * SELF_TOKEN == 122_880_000
    # + weights + 274 MiB = 4,745,045,504 B = 4525.2 MiB: the README's 4525MB row (the fit's anchor)
    assert e.gpu_bytes == 3_086_855_680 + 1_228_800_000 + 19_200_000 + 122_880_000 + 274 * MiB == 4_745_045_504


def test_beam_search_shares_the_encoder_state(large):
    # temperature=0 (no fallback): beam 5 holds one cross K/V (CTranslate2 >= 3.6.0 replicate_state)
    e = ct2(large, temperature_fallback=False)
    assert e.facts["encoder_state_copies"] == 1 and e.facts["hypotheses"] == 5
    assert e.find("cross-attention K/V").bytes == CROSS


def test_greedy_without_fallback(large):
    e = ct2(large, beam_size=1, temperature_fallback=False)
    assert (e.facts["encoder_state_copies"], e.facts["hypotheses"]) == (1, 1)


def test_batched_pipeline(large):
    # BatchedInferencePipeline: one generate call over the batch at temperatures[0], beam 5, no fallback
    e = ct2(large, Request(batch=8))
    assert e.facts["encoder_state_copies"] == 8 and e.facts["hypotheses"] == 40
    assert e.facts["temperature_fallback"] is False
    assert e.find("cross-attention K/V").bytes == 8 * CROSS
    assert e.find("self-attention K/V").bytes == 40 * 150 * SELF_TOKEN
    assert ct2(large, batch_size=8).gpu_bytes == e.gpu_bytes


def test_context_sets_the_decoded_tokens(large):
    e = ct2(large, Request(context=448), temperature_fallback=False)
    assert e.find("self-attention K/V").bytes == 5 * 448 * SELF_TOKEN
    with pytest.raises(UsageError, match="448"):
        ct2(large, decode_tokens=449)


def test_cuda_generation_overhead(large):
    assert ct2(large, cuda=11).gpu_bytes - ct2(large, cuda=12).gpu_bytes == (504 - 274) * MiB
    assert {12: 274 * MiB, 11: 504 * MiB} == CT2_CUDA_OVERHEAD_BYTES


def test_float32_doubles_the_state(large):
    f32 = ct2(large, compute_type="float32")
    f16 = ct2(large, compute_type="float16")
    assert f32.find("cross-attention K/V").bytes == 2 * f16.find("cross-attention K/V").bytes
    assert ct2_weight_bytes(large, "float32") == 4 * PARAMS + 4 * ZERO_K_BIAS
    i8f32 = ct2(large, compute_type="int8_float32")
    assert i8f32.kv_dtype == "f32" and i8f32.find("weights").bytes < f16.find("weights").bytes


@pytest.mark.parametrize("model", ["whisper-tiny", "whisper-small", "whisper-large-v3"])
def test_smaller_types_never_need_more(model):
    spec = load_catalog().resolve("model", model)
    sizes = [ct2(spec, compute_type=t).gpu_bytes for t in ("float32", "float16", "int8_float16")]
    assert sizes == sorted(sizes, reverse=True)


def test_alias_and_fit(large):
    assert ct2(large, engine="faster-whisper").gpu_bytes == ct2(large).gpu_bytes
    fit = engine_fit(large, Request(), "faster-whisper", CTranslate2Options(), 8 << 30)
    assert fit.fits and fit.max_context_tokens == 448


def test_encoder_pass_counts_when_it_is_the_peak():
    # tiny, beam 1, no fallback, 8 windows: the encoder pass (605 MiB fitted + 8 x (6 x 1500^2 scores +
    # 1500 x 1536 FFN) x 2 B) outweighs the decoding state
    tiny = load_catalog().resolve("model", "whisper-tiny")
    e = ct2(tiny, Request(batch=8), beam_size=1, decode_tokens=1)
    extra = e.find("encoder pass (beyond the decoding state)").bytes
    decoding = sum(e.find(n).bytes for n in ("cross-attention K/V", "encoder output", "self-attention K/V"))
    assert extra + decoding == CT2_ENCODER_BASE_BYTES + 8 * (6 * 1500**2 * 2 + 1500 * 1536 * 2)


def test_small_decoders_peak_in_the_encoder_pass(large):
    # distil-large-v3 shape (2 decoder layers): faster-whisper #1030 printed 2409 MiB; the model gives the
    # weights + 274 MiB + 605 MiB + 20 x 1500^2 x 2 B + 1500 x 5120 x 2 B = 2422 MiB (fitted there: E0)
    distil = large.model_copy(update={"config": large.config.model_copy(update={"decoder_layers": 2})})
    e = ct2(distil)
    assert e.gpu_bytes == (
        ct2_weight_bytes(distil, "float16") + 274 * MiB + CT2_ENCODER_BASE_BYTES + 20 * 1500**2 * 2 + 1500 * 5120 * 2
    )
    assert any("encoder pass" in n for n in e.notes)


def test_int8_runs_need_less_overhead(large):
    # the fp16/int8 pairs of large-v3 differ by 140 (README) and 109 MiB (#1030) more than their weights
    i8 = ct2(large, compute_type="int8")
    assert (
        i8.find("CUDA context, cuBLAS/cuDNN, allocator pool").bytes
        == (274 - 125) * MiB
        == 274 * MiB - CT2_INT8_SAVING_BYTES
    )


@pytest.mark.parametrize("model", ["llama-2-7b", "flan-t5-base"])
def test_other_architectures_are_refused(model):
    spec = load_catalog().resolve("model", model)
    with pytest.raises(UsageError, match="ctranslate2"):
        ct2(spec)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"compute_type": "q4_0"}, "compute type"),
        ({"cuda": 10}, "cuda"),
        ({"beam_size": 0}, "beam_size"),
        ({"best_of": 0}, "best_of"),
    ],
)
def test_bad_options(opts, match):
    with pytest.raises(UsageError, match=match):
        CTranslate2Options(**opts)


def test_gguf_dtype_is_refused(large):
    with pytest.raises(UsageError, match="CTranslate2 has no q4_k_m"):
        ct2(large, Request(dtype="q4_k_m"))
