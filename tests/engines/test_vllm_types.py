"""What vLLM loads (engines/vllm.py `accepts`): --kv-cache-dtype takes auto/float16/bfloat16/fp8 (vllm==0.11.0,
0.22.0 and 0.33.0 vllm/config/cache.py CacheDType), not llama.cpp's q8_0/q4_0; GGUF files load up to 0.23.0
(model_executor/layers/quantization/gguf.py) and not from 0.24.0 (the wheels hold no gguf.py)."""

from __future__ import annotations

import pytest

from willitrun.answers import quant_ladder
from willitrun.engines import engine_estimate
from willitrun.engines.vllm import VLLM_VERSIONS, VllmOptions
from willitrun.errors import UsageError
from willitrun.memory import Request

GiB = 1 << 30


def _est(catalog, version, dtype=None, kv=None):
    spec = catalog.resolve("model", "llama-3.1-8b")
    opt = VllmOptions(total_memory_bytes=24 * GiB, version=version)
    return engine_estimate(spec, Request(context=8192, dtype=dtype, kv_dtype=kv), "vllm", opt)


@pytest.mark.parametrize("kv", ["q8_0", "q4_0"])
def test_llamacpp_kv_types_are_refused(catalog, kv):
    with pytest.raises(UsageError, match="fp8"):
        _est(catalog, "0.33", kv=kv)


@pytest.mark.parametrize("kv", ["f16", "fp8"])
def test_vllm_kv_types_are_taken(catalog, kv):
    assert _est(catalog, "0.33", kv=kv).kv_dtype == kv


@pytest.mark.parametrize(("version", "loads"), [("0.10", True), ("0.22", True), ("0.24", False), ("0.33", False)])
def test_gguf_weights_by_release(catalog, version, loads):
    if loads:
        assert _est(catalog, version, dtype="q4_k_m").dtype == "q4_k_m"
    else:
        with pytest.raises(UsageError, match=r"0\.24\.0"):
            _est(catalog, version, dtype="q4_k_m")


def test_version_ranges_split_at_gguf_removal():
    assert VLLM_VERSIONS["0.22"].since == "0.21 to 0.23 (V1)" and VLLM_VERSIONS["0.22"].gguf
    assert VLLM_VERSIONS["0.24"].since == "0.24 to 0.32 (V1)" and not VLLM_VERSIONS["0.24"].gguf


def test_ladder_lists_only_what_vllm_loads(catalog):
    """`ladder --engine vllm` tries f16 and fp8 caches (the Vllm class's ladder_kv) and drops GGUF rows on 0.33."""
    spec = catalog.resolve("model", "llama-3.1-8b")
    ladder = quant_ladder(spec, Request(context=8192), 24 * GiB, engine="vllm", gpu_name="NVIDIA GeForce RTX 4090")
    kinds = {(r.dtype, r.kv_dtype) for r in ladder.rows}
    assert {k for _, k in kinds} == {"f16", "fp8"}
    assert not any(d.startswith("q") for d, _ in kinds)
    assert ("fp8", "fp8") in kinds


@pytest.mark.parametrize(
    ("release", "key"), [("0.21.0", "0.22"), ("0.23.1", "0.22"), ("0.24.0", "0.24"), ("0.32.0", "0.24")]
)
def test_a_printed_release_maps_to_its_key(release, key):
    from willitrun.engines.vllm import version_for_release

    assert version_for_release(release) == key
