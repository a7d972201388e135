"""What an engine printed: its buffers and settings, read back from a log (llama.cpp / llama-server, ollama's
server log, vLLM, whisper.cpp) or from `nvidia-smi` / `ollama ps` output.

Each engine's reader is one class (`LlamaCppLog`, `OllamaLog`, `VllmLog`, `WhisperCppLog`, `CTranslate2Log`, and `NvidiaSmi`,
`OllamaPs` for the two tools' tables); `read_log` picks the reader whose markers the text carries. A reader
returns a `LogRun`: the printed buffers as bytes with their kind, placement and device (the vocabulary of
engines.base.Buffer, so they line up with an estimate), and the facts the log states (context, micro-batch,
slots, layers offloaded, types, version). Nothing here estimates: willitrun.explain sets a LogRun beside an
estimate.

The text is untrusted: the caller caps what it reads (LOG_CAP); every line is cut at LINE_CAP characters
before a pattern sees it, every number is bounded before it is kept, and at most MAX_BUFFERS buffers are
kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from .base import Kind, Placement

LOG_CAP = 32 << 20  # bytes of a log read; llama-server logs of a day are a few MiB
LINE_CAP = 4096  # characters of one line a pattern sees
MAX_BUFFERS = 4096  # printed buffers kept (a 16-GPU llama.cpp run prints ~100)
MAX_BYTES = 1 << 50  # a printed size above 1 PiB is not a size
MAX_COUNT = 1 << 32  # contexts, layers, slots, batches
MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Printed:
    """One buffer (or total) the engine printed, in bytes, and the line that printed it."""

    label: str  # as the engine names it: "CUDA0 model buffer", "kv self", "Available KV cache memory"
    bytes: int
    kind: Kind
    placement: Placement
    device: int
    line: int  # 1-based line number in the log
    # compare with the estimate's buffers whose name starts with this, instead of every buffer of the kind
    estimate_name: str | None = None


@dataclass(frozen=True)
class LogRun:
    """A run reconstructed from what its log says."""

    engine: str  # a willitrun engine name, or "nvidia-smi" / "ollama ps" for the tools' tables
    buffers: tuple[Printed, ...]
    facts: dict[str, int | str | bool] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the reader noticed: CPU spill, context cut short, defaults


def _num(text: str) -> float:
    value = float(text.replace(",", ""))
    if not 0 <= value < MAX_BYTES:
        raise ValueError(text)
    return value


def _count(text: str) -> int | None:
    try:
        value = int(text.replace(",", ""))
    except ValueError:
        return None
    return value if 0 <= value <= MAX_COUNT else None


_UNITS = {
    "b": 1,
    "kib": 1 << 10,
    "kb": 1000,
    "mib": MIB,
    "mb": 1000**2,
    "gib": GIB,
    "gb": 1000**3,
    "tib": 1 << 40,
    "tb": 1000**4,
}


def size_bytes(value: str, unit: str) -> int:
    """`value` `unit` as bytes (GiB/MiB are 2^30/2^20, GB/MB 10^9/10^6: each reader says which its engine means)."""
    return round(_num(value) * _UNITS[unit.lower()])


# ggml backend buffer names: a GPU device and its index, or host memory (llama.cpp's ggml_backend_buft_name)
_GPU_DEVICE = re.compile(r"^(CUDA|ROCm|Vulkan|SYCL|MUSA|CANN|OpenCL|RPC\[[^\]]*\])(\d*)$")


def ggml_device(name: str) -> tuple[Placement, int] | None:
    """'CUDA1' -> ('gpu', 1); 'Metal' / 'Metal_Mapped' -> ('gpu', 0) (Apple's one GPU); 'CPU', 'CPU_Mapped',
    'CUDA_Host', 'Vulkan_Host', 'CPU_REPACK' -> ('host', 0); anything else None."""
    if name in ("Metal", "Metal_Mapped", "MTL0", "MTL0_Mapped"):
        return "gpu", 0
    if name.startswith("CPU") or name.endswith("_Host") or name in ("AMX", "BLAS"):
        return "host", 0
    m = _GPU_DEVICE.match(name)
    if m:
        return "gpu", int(m.group(2) or 0)
    return None


class LogReader:
    """One engine's log format: `markers` say a text is this engine's; `read` turns it into a LogRun."""

    engine: ClassVar[str]
    markers: ClassVar[tuple[str, ...]]

    @classmethod
    def claims(cls, text: str) -> int:
        """How many of this reader's markers the text carries (the reader with most wins)."""
        return sum(marker in text for marker in cls.markers)

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# llama.cpp and llama-server (every log format from 2023-12 to 2026)
# --------------------------------------------------------------------------------------------------
_LC_WEIGHTS = re.compile(r"\b(?:llm_)?load_tensors:\s+(\S+)\s+(?:model )?buffer size\s*=\s*([\d.]+) MiB")
_LC_KV = re.compile(r"\bllama_kv_cache\w*:\s+(\S+)\s+KV buffer size\s*=\s*([\d.]+) MiB")
_LC_COMPUTE = re.compile(
    r"\b(?:llama_new_context_with_model|llama_context|sched_reserve):\s+(\S+)\s+compute buffer size\s*=\s*([\d.]+) MiB"
)
_LC_OUTPUT = re.compile(
    r"\b(?:llama_new_context_with_model|llama_context|llama_output_reserve):\s+(\S+)\s+output buffer size\s*=\s*([\d.]+) MiB"
)
_LC_MMPROJ = re.compile(r"\b(?:alloc_compute_meta|clip_\w+):\s+(\S+)\s+compute buffer size\s*=\s*([\d.]+) MiB")
_LC_MMPROJ_SIZE = re.compile(r"\bload_hparams:\s+model size:\s+([\d.]+) MiB")
_LC_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_LC_FACT = re.compile(
    r"\b(?:llama_new_context_with_model|llama_context|llama_init_from_model|llama_kv_cache\w*|"
    r"print_info|llm_load_print_meta):\s+(n_ctx|n_ctx_per_seq|n_ctx_seq|n_batch|n_ubatch|n_seq_max|"
    r"flash_attn|n_ctx_train|n_layer|n_embd|n_head|n_head_kv|n_vocab|causal_attn|kv_unified|"
    r"n_swa|arch|file type|model type|model ftype|general\.name|model params)\s*=\s*(.+?)\s*$"
)
_LC_KV_SUMMARY = re.compile(
    r"\bllama_kv_cache\w*: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/?(\d*) seqs\), "
    r"K \((\w+)\):\s*([\d.]+) MiB, V \((\w+)\):\s*([\d.]+) MiB"
)
_LC_KV_INIT_TYPES = re.compile(r"\bllama_kv_cache_init:.*type_k = '(\w+)', type_v = '(\w+)'")
# `build: 6895 (4341dc8bc) with ...` (common.cpp until 2026), `build_info: b8833-45cac7ca7` (2026 builds); docker's
# git-less builds print b1, which no pattern of 3 digits or more takes
_LC_BUILD = re.compile(r"\b(?:build|version|build_info)[:=]\s*b?(\d{3,6})\b")
_LC_CUT_SHORT = re.compile(r"n_ctx_(?:per_)?seq \((\d+)\) < n_ctx_train \((\d+)\)")
_LC_SERVER_SLOTS = re.compile(
    r"\binitializing slots, n_slots = (\d+)|n_parallel is set to auto, using n_parallel = (\d+)"
)
_LC_FIT = re.compile(r"(?:llama|common)_params_fit")
# The memory breakdown llama-cli and llama-server print at exit (llama.cpp PR #16740 added it to the server;
# common/fit.cpp common_memory_breakdown_print, formerly llama_memory_breakdown_print): per GPU
# `total = free + (self = model + context + compute) + unaccounted`, in MiB, where unaccounted =
# total - free - self is what the device holds beyond llama.cpp's own buffers (the CUDA context, cuBLAS,
# ggml's pool, other programs). --fit prints the same table for its trial allocations (before
# `common_params_fit` lines; unaccounted then often negative): only a table after the last fit line counts.
_LC_BREAKDOWN = re.compile(
    r"\b(?:llama|common)_memory_breakdown_print:\s*\|\s*-\s*(\S+)\s+\((.{1,100}?)\)\s*\|\s*(\d+)\s*=\s*(\d+)\s*\+"
    r"\s*\(\s*(\d+)\s*=\s*\d+\s*\+\s*\d+\s*\+\s*\d+\s*\)\s*\+\s*(-?\d+)\s*\|"
)


def _llamacpp_buffers(lines: list[str]) -> tuple[list[Printed], dict[str, int | str | bool], list[str]]:
    buffers: list[Printed] = []
    facts: dict[str, int | str | bool] = {}
    notes: list[str] = []
    breakdown: dict[str, tuple[str, int, int, int, int]] = {}  # device -> (its name, total, self, unaccounted, line)
    last_fit = 0

    def add(label: str, mib: str, kind: Kind, dev_name: str, i: int, estimate_name: str | None = None) -> None:
        where = ggml_device(dev_name)
        if where is None or len(buffers) >= MAX_BUFFERS:
            return
        buffers.append(
            Printed(f"{dev_name} {label}", size_bytes(mib, "MiB"), kind, where[0], where[1], i, estimate_name)
        )

    for i, raw in enumerate(lines, 1):
        line = raw[:LINE_CAP]
        if m := _LC_WEIGHTS.search(line):
            add("model buffer", m.group(2), "weights", m.group(1), i)
        elif m := _LC_KV.search(line):
            add("KV buffer", m.group(2), "kv_self", m.group(1), i)
        elif m := _LC_MMPROJ.search(line):
            add("compute buffer (mmproj)", m.group(2), "compute", m.group(1), i, "mmproj")
        elif m := _LC_COMPUTE.search(line):
            add("compute buffer", m.group(2), "compute", m.group(1), i)
        elif m := _LC_OUTPUT.search(line):
            add("output buffer", m.group(2), "other", m.group(1), i, "output buffer")
        elif m := _LC_MMPROJ_SIZE.search(line):
            facts["mmproj_bytes"] = size_bytes(m.group(1), "MiB")
        elif m := _LC_OFFLOADED.search(line):
            done, total = _count(m.group(1)), _count(m.group(2))
            if done is not None and total is not None:
                facts["layers_offloaded"], facts["layers_total"] = done, total
        elif m := _LC_KV_SUMMARY.search(line):
            cells, layers, seqs = _count(m.group(2)), _count(m.group(3)), _count(m.group(4))
            if cells is not None:
                facts["kv_cells"] = cells
            if layers is not None:
                facts["kv_layers"] = layers
            if seqs is not None:
                facts["n_seq_max"] = seqs
            facts["type_k"], facts["type_v"] = m.group(6).lower(), m.group(8).lower()
        elif m := _LC_KV_INIT_TYPES.search(line):
            facts["type_k"], facts["type_v"] = m.group(1).lower(), m.group(2).lower()
        elif m := _LC_FACT.search(line):
            key, value = m.group(1).replace(" ", "_").replace(".", "_"), m.group(2)[:200]
            number = _count(value.split()[0]) if value.split() else None
            facts.setdefault(key, number if number is not None else value)
        elif (m := _LC_SERVER_SLOTS.search(line)) and (n := _count(m.group(1) or m.group(2))) is not None:
            facts["n_slots"] = n
        if (m := _LC_CUT_SHORT.search(line)) and "context_cut_short" not in facts:
            facts["context_cut_short"] = True
            notes.append(
                f"context cut short: {m.group(1)} positions per sequence of the {m.group(2)} the model "
                "was trained on (line " + str(i) + ")"
            )
        if "build" not in facts and (m := _LC_BUILD.search(line)):
            facts["build"] = int(m.group(1))
        if _LC_FIT.search(line):
            facts["fit_used"] = True
            last_fit = i
        if (m := _LC_BREAKDOWN.search(line)) and len(breakdown) < 256:
            total, used, extra = _count(m.group(3)), _count(m.group(5)), m.group(6)
            if total is not None and used is not None and len(extra) < 12:
                breakdown[m.group(1)] = (m.group(2).strip()[:100], total, used, int(extra), i)
    _breakdown(breakdown, last_fit, buffers, facts, notes)
    if "layers_offloaded" in facts and facts["layers_offloaded"] != facts["layers_total"]:
        notes.append(
            f"CPU spill: {facts['layers_offloaded']} of {facts['layers_total']} layers on the GPU; the rest "
            "run from host memory"
        )
    flash = facts.get("flash_attn")
    if isinstance(flash, str):
        facts["flash_attn"] = flash.lower() in ("1", "true", "enabled", "on")
    elif isinstance(flash, int):
        facts["flash_attn"] = bool(flash)
    # log formats by era (llama.cpp's own function names): llama_new_context_with_model until 2025-01,
    # llama_context after (src/llama-context.cpp); llama_kv_cache_unified 2025-04 to 2025-09, llama_kv_cache after
    text = "\n".join(lines[:20000])
    facts["log_era"] = (
        "2025+"
        if "llama_context:" in text or ("load_tensors:" in text and "llm_load_tensors" not in text)
        else "2024"
        if "llama_new_context_with_model" in text
        else "unknown"
    )
    return buffers, facts, notes


def _breakdown(
    rows: dict[str, tuple[str, int, int, int, int]],
    last_fit: int,
    buffers: list[Printed],
    facts: dict[str, int | str | bool],
    notes: list[str],
) -> None:
    """The exit memory breakdown's unaccounted MiB per GPU as an `overhead` figure (and the card's name and
    total as facts); a --fit trial table or a negative figure (free + self above the total: managed or shared
    memory) is not a measurement, and a note says so."""
    for device, (name, total_mib, self_mib, extra_mib, line) in rows.items():
        where = ggml_device(device)
        if where is None or where[0] != "gpu":
            continue
        if line < last_fit:
            notes.append(f"the memory breakdown of {device} (line {line}) is --fit's trial, not the run's")
            continue
        facts[f"gpu{where[1]}_name"] = name
        facts[f"gpu{where[1]}_total_bytes"] = total_mib * MIB
        if not 0 <= extra_mib <= total_mib:
            notes.append(
                f"the memory breakdown of {device} (line {line}) leaves {extra_mib} MiB unaccounted: free + self "
                f"({self_mib} MiB) exceed the total, so it measures no overhead"
            )
        elif len(buffers) < MAX_BUFFERS:
            buffers.append(
                Printed(
                    f"{device} unaccounted (memory breakdown)", extra_mib * MIB, "overhead", where[0], where[1], line
                )
            )


class LlamaCppLog(LogReader):
    engine = "llama.cpp"
    markers = (
        "llama_model_loader",
        "load_tensors:",
        "llama_kv_cache",
        "llama_context:",
        "llama_new_context_with_model",
        "print_info:",
        "llm_load_print_meta",
        "main: server is listening",
        "srv ",
        "slot ",
        "ggml_cuda_init",
        "memory_breakdown_print",
    )

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers, facts, notes = _llamacpp_buffers(lines)
        return LogRun(cls.engine, tuple(buffers), facts, tuple(notes))


# --------------------------------------------------------------------------------------------------
# ollama: its server log (logfmt lines from server.go / sched.go / ggml.go) around the llama.cpp runner's
# own lines (the old llama runner) or the new engine's "model weights" / "kv cache" / "compute graph" lines
# --------------------------------------------------------------------------------------------------
_LOGFMT = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')
_OLLAMA_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?i?B)\s*$", re.IGNORECASE)
# the new engine (ollama 0.6 on, ml/backend/ggml/ggml.go): one line per device and purpose
_OLLAMA_NEW = {"model weights": "weights", "kv cache": "kv_self", "compute graph": "compute"}


def _logfmt(line: str) -> dict[str, str]:
    fields = {}
    for k, v in _LOGFMT.findall(line[:LINE_CAP]):
        fields[k] = v[1:-1] if v.startswith('"') else v
        if len(fields) > 256:
            break
    return fields


def _ollama_size(text: str) -> int | None:
    m = _OLLAMA_SIZE.match(text)
    if not m:
        return None
    try:
        return size_bytes(m.group(1), m.group(2).replace("KB", "KiB") if m.group(2) == "KB" else m.group(2))
    except (ValueError, KeyError):
        return None


class OllamaLog(LogReader):
    engine = "ollama"
    markers = (
        "source=server.go",
        "source=sched.go",
        "source=ggml.go",
        "source=routes.go",
        'msg="offload to',
        "msg=offload",
        "ollama",
        "OLLAMA_",
    )

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers, facts, notes = _llamacpp_buffers(lines)  # the old runner prints llama.cpp's own lines
        # device.go's "model weights" / "kv cache" / "compute graph" lines: what the Go engine allocated, but for the
        # llama runner (v0.13 on) ollama's estimate before loading (v0.17.0 printed compute graph "2.0 GiB" where
        # llama.cpp then allocated 108.01 MiB): kept only when llama.cpp's own lines are absent
        from_llamacpp = bool(buffers)
        for i, raw in enumerate(lines, 1):
            if "level=" not in raw or "msg=" not in raw:
                continue
            f = _logfmt(raw)
            msg = f.get("msg", "")
            device = f.get("device") or f.get("buffer")  # ollama 0.6 prints buffer=CUDA0, later device=CUDA0
            if msg in _OLLAMA_NEW and device and "size" in f and len(buffers) < MAX_BUFFERS and not from_llamacpp:
                size, where = _ollama_size(f["size"]), ggml_device(device)
                if size is not None and where is not None:
                    buffers.append(Printed(f"{device} {msg}", size, _OLLAMA_NEW[msg], where[0], where[1], i))  # type: ignore[arg-type]
            elif msg.startswith("offload to") or msg == "offload":
                for key, name in (("layers.offload", "layers_offloaded"), ("layers.model", "layers_total")):
                    if key in f and (n := _count(f[key])) is not None:
                        facts[name] = n
                for key in (
                    "memory.required.full",
                    "memory.required.kv",
                    "memory.weights.total",
                    "memory.graph.full",
                    "memory.required.partial",
                ):
                    if key in f and (size := _ollama_size(f[key])) is not None:
                        facts[key.replace(".", "_")] = size
            elif msg.startswith(("starting llama server", "starting llama-server")) or msg == "starting runner":
                cmd = f.get("cmd", "")
                # v0.30+ (llm/llama_server.go) starts llama-server with -c, -np, -ub and -ngl
                for flag, name in (
                    ("--ctx-size", "n_ctx"),
                    ("-c", "n_ctx"),
                    ("--batch-size", "n_batch"),
                    ("-ub", "n_ubatch"),
                    ("--n-gpu-layers", "n_gpu_layers"),
                    ("-ngl", "n_gpu_layers"),
                    ("--parallel", "n_seq_max"),
                    ("-np", "n_seq_max"),
                ):
                    m = re.search(r"(?:^|\s)" + re.escape(flag) + r"\s+(\d+)", cmd)
                    if m and (n := _count(m.group(1))) is not None:
                        facts.setdefault(name, n)
            for key in (
                "OLLAMA_CONTEXT_LENGTH",
                "OLLAMA_NUM_PARALLEL",
                "OLLAMA_FLASH_ATTENTION",
                "OLLAMA_KV_CACHE_TYPE",
            ):
                if (m := re.search(key + r":(\S+?)[\s\]]", raw[:LINE_CAP])) and key not in facts:
                    facts[key] = m.group(1)[:64]
        if (
            "layers_offloaded" in facts
            and facts.get("layers_offloaded") != facts.get("layers_total")
            and not any(n.startswith("CPU spill") for n in notes)
        ):
            notes.append(f"CPU spill: {facts['layers_offloaded']} of {facts['layers_total']} layers on the GPU")
        return LogRun(cls.engine, tuple(buffers), facts, tuple(notes))


# --------------------------------------------------------------------------------------------------
# vLLM (V0 worker.py / model_runner.py and V1 gpu_worker.py / gpu_model_runner.py / kv_cache_utils.py)
# --------------------------------------------------------------------------------------------------
# vLLM divides by GiB_bytes everywhere and printed the unit as "GB" before late 2024, "GiB" after
# (vllm/worker/model_runner.py `self.model_memory_usage / float(2**30)`): both are GiB.
_V_WEIGHTS = re.compile(r"(?:model weights take|Loading model weights took|Model loading took)\s+([\d.]+)\s*Gi?B")
_V_NON_TORCH = re.compile(r"non_torch_memory(?: takes)?\s+([\d.]+)\s*Gi?B")
# vllm==0.34.0 extensible_kv_cache.py `measure_kv_cache_blocks` (the extensible KV cache): "Memory after warmup: F GiB
# free, C GiB committed to the KV cache, K GiB kept for transient activations (P GiB allocated at peak, G GiB of torch
# reservation growth); N KV cache blocks (B GiB) fit within the requested R GiB. ..." -- P is the profiled peak, B the pool
_V_ACT = re.compile(
    r"(?:PyTorch activation peak memory(?: takes)?|kept for transient activations \()\s*([\d.]+)\s*Gi?B(?: allocated)?"
)
_V_KV = re.compile(
    r"(?:Available KV cache memory:|the rest of the memory reserved for KV Cache is|KV Cache is|KV cache blocks \()"
    r"\s*([\d.]+)\s*Gi?B"
)
_V_KV_TOKENS = re.compile(r"GPU KV cache size:\s*([\d,]+) tokens")
# V1's config/scheduler.py: "Chunked prefill is enabled with max_num_batched_tokens=N." (the profile batch it chose)
_V_BATCHED = re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)")
_V_CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request:\s*([\d.]+)x")
_V_GRAPHS = re.compile(r"Graph capturing finished in [\d.]+ secs?, took ([\d.]+) GiB")
# vllm==0.22.0 gpu_model_runner.py `profile_cudagraph_memory` (0.21 on): the estimate taken off the KV budget
_V_GRAPHS_ESTIMATE = re.compile(r"Estimated CUDA graph memory: ([\d.]+) GiB total")
_V_VERSION = re.compile(
    r"(?:vLLM API server version|LLM engine \(v|V1 LLM engine \(v|vLLM version)\s*v?(\d+\.\d+(?:\.\d+)?)"
)
_V_TOTAL = re.compile(r"total_gpu_memory \(([\d.]+)GiB\) x gpu_memory_utilization \(([\d.]+)\)")
_V_ARG = re.compile(
    r"'(max_model_len|gpu_memory_utilization|tensor_parallel_size|pipeline_parallel_size|max_num_seqs|"
    r"max_num_batched_tokens|model|kv_cache_dtype|dtype|quantization)': ('[^']{0,300}'|[\d.]+)"
)
_V_MAX_LEN_REFUSED = re.compile(
    r"max seq len \((\d+)\).*?([\d.]+) GiB KV cache is needed.*?estimated maximum model length is (\d+)"
)


class VllmLog(LogReader):
    engine = "vllm"
    markers = (
        "vllm",
        "gpu_worker.py",
        "gpu_model_runner.py",
        "model_runner.py",
        "worker.py",
        "EngineCore",
        "KV cache",
        "non_torch_memory",
    )

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers: list[Printed] = []
        facts: dict[str, int | str | bool] = {}
        notes: list[str] = []
        for i, raw in enumerate(lines, 1):
            line = raw[:LINE_CAP]
            for pattern, label, kind in (
                (_V_WEIGHTS, "model weights", "weights"),
                (_V_NON_TORCH, "non-torch memory", "overhead"),
                (_V_ACT, "activation peak (profile run)", "compute"),
                (_V_KV, "KV cache memory", "kv_self"),
                (_V_GRAPHS, "CUDA graphs", "other"),
            ):
                if (
                    (m := pattern.search(line))
                    and len(buffers) < MAX_BUFFERS
                    and not any(b.label == label for b in buffers)
                ):
                    buffers.append(Printed(label, size_bytes(m.group(1), "GiB"), kind, "gpu", 0, i))  # type: ignore[arg-type]
            if (m := _V_KV_TOKENS.search(line)) and (n := _count(m.group(1))) is not None:
                facts["kv_tokens"] = n
            if (m := _V_BATCHED.search(line)) and (n := _count(m.group(1))) is not None:
                facts.setdefault("max_num_batched_tokens", n)
            # the graphs' memory: the 0.21+ estimate (the figure the budget subtracts), else what the capture took
            if (m := _V_GRAPHS_ESTIMATE.search(line)) or (
                (m := _V_GRAPHS.search(line)) and "cudagraph_bytes" not in facts
            ):
                facts["cudagraph_bytes"] = size_bytes(m.group(1), "GiB")
            if m := _V_CONCURRENCY.search(line):
                if (n := _count(m.group(1))) is not None:
                    facts["max_model_len"] = n
                facts["concurrency"] = m.group(2)
            if (m := _V_VERSION.search(line)) and "version" not in facts:
                facts["version"] = m.group(1)
            if m := _V_TOTAL.search(line):
                facts["total_gpu_memory_bytes"] = size_bytes(m.group(1), "GiB")
                facts["gpu_memory_utilization"] = m.group(2)
            for key, value in _V_ARG.findall(line):
                number = _count(value) if value[0] != "'" else None
                if key == "gpu_memory_utilization":
                    facts.setdefault(key, value)
                else:
                    facts.setdefault(key, number if number is not None else value.strip("'"))
            if m := _V_MAX_LEN_REFUSED.search(line):
                facts["refused"] = True
                notes.append(
                    f"context cut short: vLLM refused max_model_len {m.group(1)} ({m.group(2)} GiB of KV cache "
                    f"needed); it estimates {m.group(3)} fits (line {i})"
                )
        return LogRun(cls.engine, tuple(buffers), facts, tuple(notes))


# --------------------------------------------------------------------------------------------------
# whisper.cpp (whisper_model_load / whisper_init_state print MB = 10^6 bytes: `size / 1e6` in whisper.cpp)
# --------------------------------------------------------------------------------------------------
_W_MODEL = re.compile(r"\bwhisper_model_load:\s+(\S+) total size\s*=\s*([\d.]+) MB")
_W_STATE = re.compile(r"\bwhisper_init_state: (kv self|kv cross|kv pad)\s+size\s*=\s*([\d.]+) MB")
_W_COMPUTE = re.compile(r"\bwhisper_init_state: compute buffer \((conv|encode|cross|decode)\)\s*=\s*([\d.]+) MB")
_W_FLASH = re.compile(r"\bwhisper_init_with_params_no_state:.*flash attn = ([01])")
_W_VERSION = re.compile(r"whisper\.cpp\s+v?(\d+\.\d+(?:\.\d+)?)|WHISPER_VERSION\s*=\s*\"?(\d+\.\d+\.\d+)")


class WhisperCppLog(LogReader):
    engine = "whisper.cpp"
    markers = (
        "whisper_init_state",
        "whisper_model_load",
        "whisper_init_with_params",
        "whisper_backend_init",
        "whisper_print_timings",
    )

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers: list[Printed] = []
        facts: dict[str, int | str | bool] = {}
        for i, raw in enumerate(lines, 1):
            line = raw[:LINE_CAP]
            if len(buffers) >= MAX_BUFFERS:
                break
            if m := _W_MODEL.search(line):
                where = ggml_device(m.group(1)) or ("gpu", 0)
                buffers.append(
                    Printed(f"{m.group(1)} model", size_bytes(m.group(2), "MB"), "weights", where[0], where[1], i)
                )
            elif m := _W_STATE.search(line):
                kind: Kind = {"kv self": "kv_self", "kv cross": "kv_cross", "kv pad": "other"}[m.group(1)]  # type: ignore[assignment]
                buffers.append(
                    Printed(
                        m.group(1),
                        size_bytes(m.group(2), "MB"),
                        kind,
                        "gpu",
                        0,
                        i,
                        "kv pad" if m.group(1) == "kv pad" else None,
                    )
                )
            elif m := _W_COMPUTE.search(line):
                name = f"compute buffer ({m.group(1)})"
                buffers.append(Printed(name, size_bytes(m.group(2), "MB"), "compute", "gpu", 0, i, name))
            elif m := _W_FLASH.search(line):
                facts["flash_attn"] = m.group(1) == "1"
            elif (m := _W_VERSION.search(line)) and "version" not in facts:
                facts["version"] = m.group(1) or m.group(2)
        return LogRun(cls.engine, tuple(buffers), facts)


# --------------------------------------------------------------------------------------------------
# CTranslate2 (faster-whisper) with CT2_VERBOSE=1 / ctranslate2.set_log_level(logging.INFO): it prints no buffer
# sizes, only settings (OpenNMT/CTranslate2 4.8.1: src/utils.cc `GPU #{}: {} (CC={}.{})`, src/cuda/allocator.cc
# `Using CUDA allocator: {}`, src/cuda/cublas_stub.cc `Loaded cuBLAS library version {}.{}.{}`, src/models/model.cc
# `Loaded model {} on device {}:{}` and ` - Selected compute type: {}`)
# --------------------------------------------------------------------------------------------------
_CT2_GPU = re.compile(r"\[info\] GPU #(\d+): (.{1,200}?) \(CC=(\d+)\.(\d+)\)")
_CT2_ALLOCATOR = re.compile(r"\[info\] Using CUDA allocator: (\w{1,40})")
_CT2_CUBLAS = re.compile(r"\[info\] Loaded cuBLAS library version (\d{1,3})\.(\d{1,3})\.(\d{1,4})")
_CT2_DEVICE = re.compile(r"\[info\] Loaded model .{0,1000} on device (cuda|cpu):(\d+)")
_CT2_COMPUTE = re.compile(r"\[info\]\s+- Selected compute type: (\w{1,40})")


class CTranslate2Log(LogReader):
    engine = "ctranslate2"
    markers = ("[ctranslate2]", "Using CUDA allocator:", "Selected compute type:", "Loaded cuBLAS library version")

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        facts: dict[str, int | str | bool] = {}
        for raw in lines:
            line = raw[:LINE_CAP]
            if (m := _CT2_GPU.search(line)) and m.group(1) == "0":
                facts["gpu_name"], facts["compute_capability"] = m.group(2).strip(), f"{m.group(3)}.{m.group(4)}"
            elif m := _CT2_ALLOCATOR.search(line):
                facts["allocator"] = m.group(1)
            elif m := _CT2_CUBLAS.search(line):
                facts["cublas_version"] = ".".join(m.groups())
                facts["cuda_major"] = int(m.group(1))
            elif m := _CT2_DEVICE.search(line):
                facts["device"] = f"{m.group(1)}:{m.group(2)}"
            elif m := _CT2_COMPUTE.search(line):
                facts.setdefault("compute_type", m.group(1))
        notes = ("CTranslate2 prints no buffer sizes: only its settings are read (nvidia-smi shows the total)",)
        return LogRun(cls.engine, (), facts, notes)


# --------------------------------------------------------------------------------------------------
# nvidia-smi's table and `ollama ps`: whole-device or whole-model totals
# --------------------------------------------------------------------------------------------------
_SMI_GPU = re.compile(r"^\|\s*(\d+)\s+(.+?)\s{2,}.*$")
_SMI_MEM = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")
_SMI_PROC = re.compile(r"^\|\s+(\d+)\s+\S+\s+\S+\s+(\d+)\s+(?:C|G|C\+G|M)\s+(.+?)\s+(\d+)MiB\s*\|")


class NvidiaSmi(LogReader):
    engine = "nvidia-smi"
    markers = ("NVIDIA-SMI", "Driver Version", "GPU-Util", "Memory-Usage")

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers: list[Printed] = []
        facts: dict[str, int | str | bool] = {}
        gpu: int | None = None
        for i, raw in enumerate(lines, 1):
            line = raw[:LINE_CAP]
            if (m := _SMI_GPU.match(line)) and "MiB" not in line and (n := _count(m.group(1))) is not None and n < 1024:
                gpu = n
                facts.setdefault(f"gpu{n}_name", m.group(2).split("  ")[0].strip()[:100])
            elif (m := _SMI_MEM.search(line)) and gpu is not None and len(buffers) < MAX_BUFFERS:
                used, total = _count(m.group(1)), _count(m.group(2))
                if used is not None and total is not None:
                    buffers.append(Printed(f"GPU {gpu} memory used", used * MIB, "other", "gpu", gpu, i))
                    facts[f"gpu{gpu}_total_bytes"] = total * MIB
                gpu = None
            elif (m := _SMI_PROC.match(line)) and len(buffers) < MAX_BUFFERS:
                dev, mib = _count(m.group(1)), _count(m.group(4))
                if dev is not None and mib is not None:
                    buffers.append(
                        Printed(f"process {m.group(2)} ({m.group(3).strip()[:60]})", mib * MIB, "other", "gpu", dev, i)
                    )
        return LogRun(cls.engine, tuple(buffers), facts)


_PS_ROW = re.compile(r"^(\S+)\s+([0-9a-f]{12})\s+([\d.]+)\s*(GB|MB|KB|B)\s+(.+?)\s{2,}(?:(\d+)\s{2,})?(.+)$")
_PS_SPLIT = re.compile(r"(\d+)%/(\d+)%\s+CPU/GPU|(\d+)%\s+(GPU|CPU)")


class OllamaPs(LogReader):
    engine = "ollama ps"
    markers = ("NAME", "ID", "SIZE", "PROCESSOR", "UNTIL")

    @classmethod
    def claims(cls, text: str) -> int:
        head = text[:2000]
        return 10 if re.search(r"^NAME\s+ID\s+SIZE\s+PROCESSOR\s+", head, re.MULTILINE) else 0

    @classmethod
    def read(cls, lines: list[str]) -> LogRun:
        buffers: list[Printed] = []
        facts: dict[str, int | str | bool] = {}
        notes: list[str] = []
        for i, raw in enumerate(lines, 1):
            m = _PS_ROW.match(raw[:LINE_CAP].rstrip())
            if not m or len(buffers) >= MAX_BUFFERS:
                continue
            # ollama ps prints sizes with format.HumanBytes: decimal units (1 GB = 10^9 B)
            total = size_bytes(m.group(3), m.group(4))
            facts.setdefault("model", m.group(1)[:200])
            if m.group(6) and (n := _count(m.group(6))) is not None:
                facts.setdefault("n_ctx", n)
            split = _PS_SPLIT.search(m.group(5))
            gpu_share = 100
            if split and split.group(1):
                gpu_share = int(split.group(2))
                notes.append(f"CPU spill: {m.group(1)} runs {split.group(1)}% on the CPU")
            elif split and split.group(4) == "CPU":
                gpu_share = 0
            buffers.append(
                Printed(
                    f"{m.group(1)} (whole model, {m.group(5).strip()})", total * gpu_share // 100, "other", "gpu", 0, i
                )
            )
        return LogRun(cls.engine, tuple(buffers), facts, tuple(notes))


READERS: tuple[type[LogReader], ...] = (
    OllamaPs,
    NvidiaSmi,
    WhisperCppLog,
    VllmLog,
    OllamaLog,
    LlamaCppLog,
    CTranslate2Log,
)


# lines only ollama's server writes (its scheduler and runner start-up), whatever llama.cpp prints after them
_OLLAMA_OWN = ("source=server.go", "source=sched.go", "msg=offload", 'msg="starting llama server"')


def read_log(text: str) -> LogRun | None:
    """The run a log describes, read by the reader whose markers it carries most; None when no reader knows it.
    An ollama log also carries llama.cpp's lines: ollama's own markers decide it."""
    head = text[:LOG_CAP]
    scores = [(reader.claims(head), -n, reader) for n, reader in enumerate(READERS)]
    best = max(scores, key=lambda s: (s[0], s[1]))
    if best[2] is LlamaCppLog and any(m in head for m in _OLLAMA_OWN):  # the runner's lines outnumber ollama's own
        best = (best[0], 0, OllamaLog)
    if best[0] == 0:
        return None
    lines = head.splitlines()
    run = best[2].read(lines)
    if not run.buffers and best[2] is OllamaLog and LlamaCppLog.claims(head):
        run = LlamaCppLog.read(lines)
    return run
