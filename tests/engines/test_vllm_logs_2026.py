"""vLLM logs of 2026 (tests/engines/data/calibration_extra.yaml) checked for what the calibration rows do not
compare: the batch defaults a log prints."""

from __future__ import annotations

from willitrun.engines.vllm import VllmOptions, batch_defaults, version_for_release

GiB = 1 << 30


def test_llm_class_on_an_a100_40gb_profiles_8192_tokens():
    """vllm-0.15.1-llama-3.1-8b-bf16-a100-40gb-llm-eager-ctx131072: `LLM(model=...)` on a GCE a2-highgpu-1g prints
    'Chunked prefill is enabled with max_num_batched_tokens=8192': the LLM class's defaults of the small tier (a card
    under 70 GiB, engine/arg_utils.py), 256 sequences; `vllm serve` there would profile 2048 tokens."""
    assert version_for_release("0.15.1") == "0.12"
    card = {"total_memory_bytes": round(39.5 * GiB), "gpu_name": "NVIDIA A100-SXM4-40GB", "version": "0.12"}
    assert batch_defaults(VllmOptions(usage="llm", **card), 131072) == (8192, 256)
    assert batch_defaults(VllmOptions(**card), 131072) == (2048, 256)
