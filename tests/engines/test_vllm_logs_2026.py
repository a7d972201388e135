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


def test_034_memory_after_warmup_line_is_read():
    """No 0.34 log was found in public material; this line is written in the format of vllm==0.34.0
    v1/worker/extensible_kv_cache.py `measure_kv_cache_blocks` ("Memory after warmup: ...") with made-up figures:
    the pool (the blocks' GiB) is the KV cache, the peak allocated the activation peak."""
    from willitrun.engines.logs import read_log

    line = (
        "(EngineCore pid=1) INFO 12-01 10:00:00 [extensible_kv_cache.py:694] Memory after warmup: 2.10 GiB free, "
        "0.50 GiB committed to the KV cache, 1.21 GiB kept for transient activations (1.17 GiB allocated at peak, "
        "1.21 GiB of torch reservation growth); 1234 KV cache blocks (19.28 GiB) fit within the requested 23.99 GiB. "
        "Torch may reserve up to 18.00 GiB."
    )
    run = read_log("(EngineCore pid=1) INFO vLLM version 0.34.0\n" + line)
    assert run is not None and run.engine == "vllm"
    got = {b.label: b.bytes for b in run.buffers}
    assert got["KV cache memory"] == round(19.28 * GiB)
    assert got["activation peak (profile run)"] == round(1.17 * GiB)


def test_the_printed_profile_batch_is_read():
    """The 0.15.1 log's 'Chunked prefill is enabled with max_num_batched_tokens=8192.' (config/scheduler.py) sets the
    profile batch explain estimates with (calibration_extra.yaml vllm-0.15.1-...-a100-40gb-llm-eager-ctx131072)."""
    from willitrun.engines.logs import read_log
    from willitrun.engines.registry import engine_class

    run = read_log(
        "INFO 02-06 03:33:17 [scheduler.py:226] Chunked prefill is enabled with max_num_batched_tokens=8192.\n"
        "(EngineCore_DP0 pid=10479) INFO 02-06 03:33:33 [gpu_worker.py:356] Available KV cache memory: 19.28 GiB"
    )
    assert run is not None and run.facts["max_num_batched_tokens"] == 8192
    opt = engine_class("vllm").options_from_log(run.facts, None, 40 * GiB, {})
    assert opt.max_num_batched_tokens == 8192
