"""The CUDA graph memory a vLLM log prints reaches the estimate through `explain` (VllmOptions.cudagraph_bytes)."""

from __future__ import annotations

from willitrun.engines.logs import read_log
from willitrun.engines.registry import engine_class
from willitrun.engines.vllm import vllm_estimate
from willitrun.memory import Request

GiB = 1 << 30

# gpustack/runner PR #251 ("upgrade vllm from 0.25.1 to 0.27.1"), lines of its pasted vLLM 0.27.1 log.
LOG_0271 = [
    "(Worker_TP1 pid=448) INFO 08-14 14:07:20 [gpu_model_runner.py:6681] Profiling CUDA graph memory: PIECEWISE=16 "
    "(largest=16)",
    "(Worker_TP1 pid=448) INFO 08-14 14:07:22 [gpu_model_runner.py:6806] Estimated CUDA graph memory: 0.36 GiB total",
    "(Worker_TP0 pid=447) INFO 08-14 14:07:22 [gpu_worker.py:563] Available KV cache memory: 6.87 GiB",
]


def test_the_estimate_line_is_read_and_comes_off_the_pool(catalog):
    run = read_log("\n".join(LOG_0271))
    assert run is not None and run.engine == "vllm"
    assert run.facts["cudagraph_bytes"] == round(0.36 * GiB)
    settings: dict = {}
    opt = engine_class("vllm").options_from_log(run.facts, "0.24", 24 * GiB, settings)
    assert opt.cudagraph_bytes == round(0.36 * GiB) and settings["cudagraph_bytes"]["from"].startswith("log")
    spec = catalog.resolve("model", "llama-3.1-8b")
    with_graphs = vllm_estimate(spec, Request(context=8192), opt)
    without = vllm_estimate(spec, Request(context=8192), type(opt)(total_memory_bytes=24 * GiB, version="0.24"))
    assert with_graphs.find("CUDA graphs").bytes == round(0.36 * GiB)
    assert with_graphs.kind_bytes("kv_self") < without.kind_bytes("kv_self")


def test_the_capture_line_counts_when_no_estimate_is_printed():
    """'Graph capturing finished in N secs, took X GiB' (the line the V1 runner prints after capture) is the figure
    when the log has no 0.21+ estimate line. Lines of the log pasted in aivrar/vllm-windows-build issue #17."""
    run = read_log(
        "\n".join(
            [
                "(EngineCore pid=5744) INFO 09-22 12:15:35 [model_runner.py:960] Graph capturing finished in 4 secs, "
                "took 0.11 GiB",
                "(EngineCore pid=5744) INFO 09-22 12:15:36 [gpu_worker.py:625] Available KV cache memory: 6.13 GiB",
            ]
        )
    )
    assert run is not None and run.facts["cudagraph_bytes"] == round(0.11 * GiB)
