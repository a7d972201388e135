"""`willitrun explain`: real logs from the project's calibration data read back and set beside the estimate.

Each test builds a log from an entry's verbatim excerpt (tests/engines/data/*.yaml, each entry names its
source), adding in the engine's own wording only the settings the entry records from the same log (context,
micro-batch, flash attention, file type). The reader must return the printed sizes to the byte, and the
estimate must land within the calibration tolerances (weights and caches 1 %, compute 5 %).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from willitrun.engines.logs import LOG_CAP, MAX_BUFFERS, read_log
from willitrun.explain import explain

DATA = Path(__file__).resolve().parents[1] / "engines" / "data"
MIB, GIB = 1 << 20, 1 << 30


def entry(name: str) -> dict:
    for f in ("calibration_extra.yaml", "measured.yaml"):
        for e in yaml.safe_load((DATA / f).read_text())["entries"]:
            if e["id"] == name:
                return e
    raise KeyError(name)


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "willitrun", "explain", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def llamacpp_log(e: dict) -> str:
    """The entry's excerpt after the context lines llama.cpp of that era prints (llama_new_context_with_model)."""
    return "\n".join(
        [
            "llm_load_print_meta: model ftype      = Q4_K - Medium",
            f"llama_new_context_with_model: n_ctx      = {e['n_ctx']}",
            f"llama_new_context_with_model: n_ubatch   = {e['n_ubatch']}",
            f"llama_new_context_with_model: flash_attn = {int(e['flash_attn'])}",
            *e["excerpt"],
        ]
    )


def rows(x) -> dict[str, tuple[int, int]]:
    return {r.part: (r.printed_bytes, r.estimated_bytes) for r in x.rows}


def close(pair: tuple[int, int], tolerance: float) -> bool:
    printed, estimated = pair
    return abs(estimated - printed) <= tolerance * printed


def test_llamacpp_log_reproduces_the_printed_buffers(catalog):
    """utilityai/llama-cpp-rs README (llama.cpp of early 2024): Llama-2-7B Q4_K_M on an RTX 3090, n_ctx 2048."""
    e = entry("llamacpp-rs-readme-llama2-7b-q4km-3090-ctx2048")
    run = read_log(llamacpp_log(e))
    assert run is not None and run.engine == "llama.cpp"
    assert run.facts["n_ctx"] == 2048 and run.facts["flash_attn"] is False and run.facts["log_era"] == "2024"
    printed = {b.label: b.bytes for b in run.buffers}
    assert printed["CUDA0 model buffer"] == round(e["weights_mib"] * MIB)
    assert printed["CUDA0 KV buffer"] == round(e["kv_self_mib"] * MIB)
    assert printed["CUDA0 compute buffer"] == round(e["compute_mib"] * MIB)
    x = explain(run, catalog.resolve("model", "llama-2-7b"), version=e["version_key"])
    r = rows(x)
    assert x.settings["dtype"] == {"value": "q4_k_m", "from": "log"}
    assert close(r["weights (GPU 0)"], 0.01) and close(r["weights (host)"], 0.01)
    assert close(r["KV cache (GPU 0)"], 0.01)
    assert close(r["compute (GPU 0)"], 0.05)


def test_llamacpp_2025_log_with_two_gpus_and_host_experts(catalog):
    """A b5622 log (2025 format: load_tensors / llama_kv_cache_unified / llama_context): Qwen3-30B-A3B with its
    experts in host memory over two GPUs. Its summary line gives cells, seqs and the K/V types."""
    e = entry("llamacpp-b5622-qwen3-30b-a3b-q4km-cpumoe-2gpu-ctx16384")
    run = read_log("\n".join(e["excerpt"]))
    assert run is not None and run.engine == "llama.cpp" and run.facts["log_era"] == "2025+"
    assert run.facts["kv_cells"] == 16384 and run.facts["type_k"] == "f16"
    devices = {(b.kind, b.placement, b.device) for b in run.buffers}
    assert {("weights", "gpu", 0), ("weights", "gpu", 1), ("weights", "host", 0), ("compute", "gpu", 1)} <= devices


def test_vllm_log_reproduces_the_printed_weights(catalog):
    """vLLM PR #10511's profile (Llama 3 8B bf16, one H100): the weights exact, the rest shown beside the log."""
    e = entry("vllm-pr10511-llama3-8b-bf16-h100-tp1")
    log = "\n".join(
        [
            "INFO 12-14 10:00:00 worker.py:240] Memory profiling takes 5.0 seconds; total_gpu_memory "
            "(79.22GiB) x gpu_memory_utilization (0.90) = 71.29GiB",
            *e["excerpt"],
        ]
    )
    run = read_log(log)
    assert run is not None and run.engine == "vllm"
    assert run.facts["total_gpu_memory_bytes"] == round(79.22 * GIB)
    x = explain(run, catalog.resolve("model", "llama-3-8b"), version="0.6")
    r = rows(x)
    assert r["weights (GPU 0)"][0] == round(14.96 * GIB)
    assert close(r["weights (GPU 0)"], 0.01)
    assert "overhead (GPU 0)" in r and "compute (GPU 0)" in r


def test_whispercpp_log_reproduces_weights_and_caches(catalog):
    """ggml-org CI, whisper.cpp 05ce7476 (v1.7.4+) bench of large-v2 on a V100 (MB = 10^6 bytes)."""
    e = entry("whispercpp-ci-v100-large-v2-f16")
    run = read_log("\n".join(e["excerpt"]))
    assert run is not None and run.engine == "whisper.cpp"
    x = explain(run, catalog.resolve("model", "whisper-large-v2"), version="1.7")
    r = rows(x)
    assert r["weights (GPU 0)"][0] == round(3093.99e6)
    assert close(r["weights (GPU 0)"], 0.01)
    assert close(r["KV cache (GPU 0)"], 0.01) and close(r["cross-attention KV (GPU 0)"], 0.01)
    assert close(r["kv pad (GPU 0)"], 0.01)


def test_nvidia_smi_and_ollama_ps_are_read():
    smi = """+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 4090        Off |   00000000:01:00.0 Off |                  Off |
|  0%   43C    P8             20W /  450W |    6213MiB /  24564MiB |      0%      Default |
+-----------------------------------------+------------------------+----------------------+
"""
    run = read_log(smi)
    assert run is not None and run.engine == "nvidia-smi"
    assert run.buffers[0].bytes == 6213 * MIB and run.facts["gpu0_total_bytes"] == 24564 * MIB
    ps = (
        "NAME        ID              SIZE      PROCESSOR          CONTEXT    UNTIL\n"
        "qwen3:8b    500a1f067a9f    6.5 GB    25%/75% CPU/GPU    4096       4 minutes from now\n"
    )
    run = read_log(ps)
    assert run is not None and run.engine == "ollama ps"
    assert run.facts == {"model": "qwen3:8b", "n_ctx": 4096}
    assert run.buffers[0].bytes == 6_500_000_000 * 75 // 100
    assert any(n.startswith("CPU spill") for n in run.notes)


def test_spill_and_cut_short_are_flagged():
    log = (
        "llama_context: n_ctx_per_seq (4096) < n_ctx_train (131072) -- the full capacity of the model will not be utilized\n"
        "load_tensors: offloaded 20/33 layers to GPU\n"
        "load_tensors:        CUDA0 model buffer size =  2000.00 MiB\n"
    )
    run = read_log(log)
    assert run is not None
    assert [n.split(":")[0] for n in run.notes] == ["context cut short", "CPU spill"]


def test_hostile_logs_stay_bounded():
    """A log of a million buffer lines keeps MAX_BUFFERS; absurd numbers and unknown devices are dropped."""
    line = "llama_kv_cache:      CUDA0 KV buffer size =  1.00 MiB\n"
    run = read_log(line * (MAX_BUFFERS + 10))
    assert run is not None and len(run.buffers) == MAX_BUFFERS
    run = read_log("load_tensors:   Bogus9 model buffer size = 1.00 MiB\nllama_context: n_ctx = 99999999999999999999\n")
    assert run is not None and run.buffers == () and "n_ctx" in run.facts and not isinstance(run.facts["n_ctx"], int)
    assert read_log("hello world\n") is None
    assert LOG_CAP == 32 << 20


def test_cli_explains_a_log_from_a_file_and_stdin(tmp_path):
    e = entry("llamacpp-rs-readme-llama2-7b-q4km-3090-ctx2048")
    log = tmp_path / "server.log"
    log.write_text(llamacpp_log(e))
    p = run_cli(str(log), "--model", "llama-2-7b", "--engine-version", "2023-12")
    assert p.returncode == 0, p.stderr
    assert "KV cache (GPU 0)" in p.stdout and "1.00 GiB" in p.stdout and "settings: context 2048 (log)" in p.stdout
    p = run_cli("-", "--model", "llama-2-7b", "--json", stdin=llamacpp_log(e))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["engine"] == "llama.cpp" and data["schema_version"] == 1
    kv = next(r for r in data["rows"] if r["part"] == "KV cache (GPU 0)")
    assert kv["printed_bytes"] == kv["estimated_bytes"] == 1 << 30


def test_cli_refusals_are_one_line(tmp_path):
    p = run_cli(str(tmp_path / "missing.log"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no such file" in p.stderr
    (tmp_path / "notes.txt").write_text("nothing an engine printed\n")
    p = run_cli(str(tmp_path / "notes.txt"))
    assert p.returncode == 2 and "not a log willitrun reads" in p.stderr
    p = run_cli(str(tmp_path / "notes.txt").replace("notes.txt", ""))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    (tmp_path / "kv.log").write_text("llama_kv_cache:      CUDA0 KV buffer size =  1.00 MiB\n")
    p = run_cli(str(tmp_path / "kv.log"))
    assert p.returncode == 2 and "give --model" in p.stderr


def test_ollama_server_log_is_read():
    """ollama/ollama issue #11819 (ollama of August 2025, new engine): the scheduler's offload line and the
    runner's command line, verbatim."""
    log = (
        "Aug 08 23:02:37 j-360 ollama[1617]: time=2025-08-08T23:02:37.146+01:00 level=INFO source=server.go:175 "
        'msg=offload library=cuda layers.requested=49 layers.model=49 layers.offload=48 layers.split="" '
        'memory.available="[10.9 GiB]" memory.gpu_overhead="0 B" memory.required.full="11.0 GiB" '
        'memory.required.partial="8.5 GiB" memory.required.kv="608.0 MiB" memory.required.allocations="[8.5 GiB]" '
        'memory.weights.total="6.8 GiB" memory.weights.repeating="6.0 GiB" memory.weights.nonrepeating="787.5 MiB" '
        'memory.graph.full="519.5 MiB" memory.graph.partial="1.3 GiB" projector.weights="795.9 MiB" '
        'projector.graph="1.0 GiB"\n'
        "Aug 08 23:02:37 j-360 ollama[1617]: time=2025-08-08T23:02:37.187+01:00 level=INFO source=server.go:438 "
        'msg="starting llama server" cmd="/usr/local/bin/ollama runner --ollama-engine --model '
        "/usr/share/ollama/.ollama/models/blobs/sha256-e8ad13eff07a78d89926e9e8b882317d082ef5bf9768ad7b50fcdbbcd63748de "
        '--ctx-size 2048 --batch-size 512 --n-gpu-layers 49 --threads 6 --parallel 1 --port 39041"\n'
    )
    run = read_log(log)
    assert run is not None and run.engine == "ollama"
    f = run.facts
    assert (f["layers_offloaded"], f["layers_total"], f["n_ctx"], f["n_seq_max"]) == (48, 49, 2048, 1)
    assert f["memory_required_kv"] == 608 * MIB and f["memory_required_partial"] == round(8.5 * GIB)
    assert any(n.startswith("CPU spill: 48 of 49") for n in run.notes)


def test_ollama_log_reproduces_the_printed_buffers(catalog):
    """ollama 0.7.0 (the CGO llama runner) on an Apple M2 Pro: llama2 7B Q4_0, --ctx-size 8192 --parallel 2
    (tests/engines/data/calibration_extra.yaml, its source named there). ollama's own lines come first and the
    runner's llama.cpp lines after them: the log is ollama's (its scheduler lines decide, not the count of
    llama.cpp lines), and the runner's `flash_attn = 0` is what ran, not ollama's per-architecture guess."""
    e = entry("ollama-0.7.0-llama2-7b-q4_0-metal-m2pro-np2")
    log = "\n".join([*e["excerpt"][:2], "llm_load_print_meta: model ftype      = Q4_0", *e["excerpt"][2:]])
    run = read_log(log)
    assert run is not None and run.engine == "ollama"
    assert (run.facts["n_ctx"], run.facts["n_seq_max"], run.facts["flash_attn"]) == (8192, 2, False)
    x = explain(run, catalog.resolve("model", "llama-2-7b"))
    r = rows(x)
    assert x.settings["flash_attn"] == {"value": False, "from": "log"}
    assert r["KV cache (GPU 0)"][0] == round(e["printed"]["kv_self_mib"] * MIB)
    assert close(r["weights (GPU 0)"], 0.01) and close(r["weights (host)"], 0.01)
    assert close(r["KV cache (GPU 0)"], 0.01)
    assert close(r["compute (GPU 0)"], 0.05) and close(r["compute (host)"], 0.05)


def test_a_vllm_release_maps_to_the_key_whose_range_holds_it():
    """A log prints its release (0.11.0); the version table is keyed by ranges (engines/vllm.py `since`)."""
    from willitrun.engines.vllm import version_for_release

    assert [version_for_release(r) for r in ("0.11.0", "0.10.1.1", "0.17.1", "0.21.0", "0.33.0")] == [
        "0.10",
        "0.10",
        "0.17",
        "0.22",
        "0.33",
    ]
    assert version_for_release("0.9.0") is None and version_for_release("banana") is None
    run = read_log(
        "INFO 10-31 [api_server.py:1] vLLM API server version 0.11.0\n"
        "INFO [gpu_model_runner.py:1] Model loading took 14.9888 GiB and 28.7 seconds\n"
    )
    assert run is not None and run.facts["version"] == "0.11.0"
