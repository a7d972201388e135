"""The engine options, each declared once: what the command line, the lean argument path, the bounds,
the JSON echo and docs/engines.md are generated from.

Each `Option` is the option as the command line takes it (its flags, including the engines' own
spellings, its type, bounds, help and default as help prints it); the engine classes
(engines/registry.py) say which of them each engine takes and which field of its options dataclass
each fills. This module is on the start-up path of every command line (cli/lean.py, cli/parse.py):
it imports nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OptionKind = Literal["int", "decimal", "text", "switch", "bool"]


@dataclass(frozen=True)
class Option:
    """One engine option as the command line takes it.

    `key` names it everywhere (the EstimateArgs field, the JSON `engine_options` key, the docs row);
    `flags` are willitrun's spelling first, then the engines' own ones it also accepts; `kind`: int
    and decimal are bounded by `low`..`high`, text is checked by the engine, switch is a flag that
    only turns something on, bool a --x/--no-x pair (`off` names the second flag)."""

    key: str
    flags: tuple[str, ...]
    kind: OptionKind
    help: str
    default: str = ""  # as the help prints it: [default: ...]
    metavar: str = "N"
    low: float = 0
    high: float = 0
    off: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # a text option's only values (checked at the edge, cli/estimation.py)

    @property
    def flag(self) -> str:
        """The spelling error messages use."""
        return self.flags[0]

    @property
    def takes_value(self) -> bool:
        return self.kind in ("int", "decimal", "text")

    def help_text(self, choices: str = "") -> str:
        """The help line: what it sets, the choices (a version table's keys), the default."""
        text = self.help if self.help.endswith(".") else f"{self.help}."
        return f"{text}{f' Choose {choices}.' if choices else ''}" + (
            f" [default: {self.default}]." if self.default else ""
        )


def _o(key: str, flags: tuple[str, ...], kind: OptionKind, help: str, default: str = "", **kw: Any) -> Option:
    return Option(key, flags, kind, help, default, **kw)


# Flag spellings of the engines checked against their own argument parsers:
# llama.cpp common/arg.cpp (ggml-org/llama.cpp, late 2025: {"-ngl", "--gpu-layers", "--n-gpu-layers"},
#   {"-np", "--parallel"}, {"-ub", "--ubatch-size"}, {"-ncmoe", "--n-cpu-moe"}, {"-cmoe", "--cpu-moe"},
#   {"-c", "--ctx-size"}, {"-fa", "--flash-attn"} "[on|off|auto]", {"-ctk", "--cache-type-k"}, "--swa-full",
#   "--no-op-offload"); whisper.cpp examples/cli/cli.cpp (ggml-org/whisper.cpp 233fe1fc, lines 166-209:
#   "-bo"/"--best-of", "-bs"/"--beam-size", "-nf"/"--no-fallback", "-fa"/"-nfa");
# vLLM vllm/engine/arg_utils.py ("--max-model-len", "--gpu-memory-utilization", "--max-num-seqs",
#   "--tensor-parallel-size"/"-tp", "--pipeline-parallel-size"/"-pp", "--data-parallel-size"/"-dp");
# ollama api/types.go Runner options (num_ctx, num_batch, num_gpu) and envconfig (OLLAMA_NUM_PARALLEL).
OPTIONS: tuple[Option, ...] = (
    _o(
        "ubatch",
        ("--ubatch", "-ub", "--ubatch-size", "--num-batch"),
        "int",
        "llama.cpp -ub / ollama num_batch: the micro-batch of the compute graph",
        "512",
        low=1,
        high=1 << 20,
    ),
    _o(
        "flash_attn",
        ("--flash-attn",),
        "bool",
        "llama.cpp, ollama, whisper.cpp: flash attention",
        "the engine's (whisper.cpp: the version's)",
        off=("--no-flash-attn",),
    ),
    _o(
        "parallel",
        ("--parallel", "-np", "--num-parallel"),
        "int",
        "llama.cpp -np / OLLAMA_NUM_PARALLEL, 1 to 4096: sequences sharing the context's cells",
        "llama-server's auto, 4 slots sharing one cache (builds since PR #16736); ollama 1 (2 in 0.6)",
        low=1,
        high=4096,
    ),
    _o(
        "gpu_layers",
        ("--gpu-layers", "-ngl", "--n-gpu-layers", "--num-gpu"),
        "int",
        "llama.cpp -ngl / ollama num_gpu: layers on the GPU",
        "all",
        low=0,
        high=100_000,
    ),
    _o(
        "gpu_memory_utilization",
        ("--gpu-memory-utilization",),
        "decimal",
        "vLLM's share of the card, 0.01 to 1",
        "0.9",
        metavar="SHARE",
        low=0.01,
        high=1.0,
    ),
    _o(
        "op_offload",
        ("--op-offload",),
        "bool",
        "llama.cpp: run host-weight ops of large batches on the GPU (PR #6083, flag from PR #13386)",
        "on; builds before March 2024 have none",
        off=("--no-op-offload",),
    ),
    _o(
        "llamacpp_version",
        ("--llamacpp-version",),
        "text",
        "llama.cpp build range (KV padding, flash-attention default, op offload; docs/engines.md)",
        "current",
        metavar="KEY",
    ),
    _o(
        "n_cpu_moe",
        ("--n-cpu-moe", "-ncmoe"),
        "int",
        "llama.cpp: keep the expert tensors of the first N layers in host memory (mixture-of-experts models)",
        "0",
        low=0,
        high=100_000,
    ),
    _o("cpu_moe", ("--cpu-moe", "-cmoe"), "switch", "llama.cpp: keep the expert tensors of every layer in host memory"),
    _o(
        "override_tensor",
        ("--override-tensor", "-ot"),
        "text",
        "llama.cpp -ot PATTERN=CPU[,PATTERN=CPU...]: the layers' tensors whose GGUF name the regex finds stay in host "
        "memory (-ot exps=CPU is --cpu-moe); at most 64 patterns of 256 characters",
        metavar="PATTERN=CPU",
    ),
    _o(
        "mmproj",
        ("--mmproj", "-mm"),
        "text",
        "llama.cpp, ollama: the vision model's mmproj GGUF (its tensor table sizes the projector's weights; "
        "its clip.projector_type and clip.vision keys must match the model)",
        "the file convert_hf_to_gguf.py --mmproj writes",
        metavar="FILE",
    ),
    _o(
        "fit_target",
        ("--fit-target", "-fitt"),
        "int",
        "llama.cpp --fit-target: MiB its --fit keeps free per device (PR #16653)",
        "1024 on builds with --fit, else 0",
        metavar="MIB",
        low=0,
        high=1 << 20,
    ),
    _o(
        "ollama_version",
        ("--ollama-version",),
        "text",
        "ollama release line (default context, parallel requests, flash attention): 0.6 (v0.6.7-v0.9.6), 0.10 "
        "(v0.10-v0.13.3), 0.13 (v0.13.4-v0.15.4), 0.15 (v0.15.5-v0.29), 0.30 (v0.30 on: the llama-server runner)",
        "0.30",
        metavar="KEY",
        choices=("0.6", "0.10", "0.13", "0.15", "0.30"),
    ),
    _o(
        "whisper_version",
        ("--whisper-version",),
        "text",
        "whisper.cpp release line: 1.5 (1.5.0-1.5.4), 1.5.5, 1.6, 1.7, 1.8 or latest; tags like v1.7.4 work; "
        "sets cache sizes and the flash-attention default",
        "latest",
        metavar="KEY",
    ),
    _o(
        "best_of",
        ("--best-of", "-bo"),
        "int",
        "whisper.cpp -bo / faster-whisper best_of: decoders at a fallback temperature",
        "5",
        low=1,
        high=1024,
    ),
    _o(
        "no_fallback",
        ("--no-fallback", "-nf"),
        "switch",
        "whisper.cpp -nf / faster-whisper temperature=0: no temperature fallback (no best_of decoders)",
    ),
    _o(
        "compute_type",
        ("--compute-type",),
        "text",
        "ctranslate2 compute_type: default, float16, bfloat16, float32, int8, int8_float16, int8_bfloat16, "
        "int8_float32",
        "default",
        metavar="TYPE",
    ),
    _o(
        "cuda",
        ("--cuda",),
        "text",
        "ctranslate2: the CUDA major version of the build (CTranslate2 4.x: 12, 3.x: 11)",
        "the version's",
        metavar="11|12",
        choices=("11", "12"),
    ),
    _o(
        "ct2_version",
        ("--ct2-version",),
        "text",
        "CTranslate2 release line: 3.5 (before 3.6.0: beam search copies the encoder state per beam), 3.6 "
        "(3.6.0-3.24.0), 4 (4.x); release numbers like 3.24.0 work; sets the CUDA major version and the beam state",
        "4",
        metavar="KEY",
    ),
    _o(
        "ct2_allocator",
        ("--ct2-allocator",),
        "text",
        "ctranslate2 CT2_CUDA_ALLOCATOR: cuda_malloc_async (CTranslate2's default with CUDA >= 11.2) or cub_caching "
        "(allocations rounded up to a power of 4 up to 16 MiB, 200 MiB of freed blocks kept)",
        "cuda_malloc_async",
        metavar="NAME",
        choices=("cuda_malloc_async", "cub_caching"),
    ),
    _o(
        "swa_full", ("--swa-full",), "switch", "llama.cpp: sliding-window layers keep every cell, not just their window"
    ),
    _o("max_num_seqs", ("--max-num-seqs",), "int", "vLLM --max-num-seqs", "the version's", low=1, high=1 << 20),
    _o(
        "max_num_batched_tokens",
        ("--max-num-batched-tokens",),
        "int",
        "vLLM --max-num-batched-tokens",
        "the version's",
        low=1,
        high=1 << 32,
    ),
    _o(
        "vllm_version",
        ("--vllm-version",),
        "text",
        "vLLM version (docs/engines.md)",
        "the newest modelled",
        metavar="KEY",
    ),
    _o(
        "tensor_parallel_size",
        ("--tensor-parallel-size", "-tp"),
        "int",
        "vLLM tensor parallel size (per-rank memory)",
        "1; several nodes: searched",
        low=1,
        high=1024,
    ),
    _o(
        "pipeline_parallel_size",
        ("--pipeline-parallel-size", "-pp"),
        "int",
        "vLLM pipeline parallel size",
        "1; several nodes: searched",
        low=1,
        high=1024,
    ),
    _o(
        "data_parallel_size",
        ("--data-parallel-size", "-dp"),
        "int",
        "vLLM data parallel size: engine replicas, each with its own KV pool (with --enable-expert-parallel the "
        "experts spread over TP x DP)",
        "1",
        low=1,
        high=1024,
    ),
    _o(
        "enable_expert_parallel",
        ("--enable-expert-parallel",),
        "switch",
        "vLLM: whole experts per rank over TP x DP ranks instead of TP-sharded experts (mixture-of-experts models)",
    ),
    _o(
        "disable_hybrid_kv_cache_manager",
        ("--disable-hybrid-kv-cache-manager",),
        "switch",
        "vLLM: sliding-window layers keep every token's KV, not just their window (one KV group)",
    ),
    _o(
        "flashinfer_sampler",
        ("--flashinfer-sampler",),
        "bool",
        "vLLM VLLM_USE_FLASHINFER_SAMPLER: FlashInfer's top-k/top-p in the profile's sampler (no sort: 12 B per "
        "logit besides the logits, where torch.sort takes 36)",
        "the version's pip install: on from 0.21, off before (FlashInfer was an extra before 0.12, opt-in 0.12-0.20)",
        off=("--no-flashinfer-sampler",),
    ),
)
OPTION = {o.key: o for o in OPTIONS}

# The engines' own spellings of options every engine takes (the request's): accepted as aliases.
# -c is willitrun's --context already and llama.cpp's --ctx-size: the same meaning. -bs is whisper-cli's
# --beam-size. ollama's num_ctx is spelled as a flag (--num-ctx).
REQUEST_ALIASES: dict[str, tuple[str, ...]] = {
    "context": ("--max-model-len", "--ctx-size", "--num-ctx"),
    "beams": ("-bs", "--beam-size"),
}


def lean_tables() -> tuple[dict[str, str], dict[str, tuple[str, bool]]]:
    """(flag -> key for options with a value, flag -> (key, value) for switches), every spelling."""
    values: dict[str, str] = {}
    switches: dict[str, tuple[str, bool]] = {}
    for o in OPTIONS:
        for flag in o.flags:
            if o.takes_value:
                values[flag] = o.key
            else:
                switches[flag] = (o.key, True)
        for flag in o.off:
            switches[flag] = (o.key, False)
    for key, flags in REQUEST_ALIASES.items():
        values.update(dict.fromkeys(flags, key))
    return values, switches


def bounds() -> dict[str, tuple[float, float]]:
    """willitrun's flag -> (low, high) for every bounded option."""
    return {o.flag: (o.low, o.high) for o in OPTIONS if o.kind in ("int", "decimal")}


def option_echo(given: Mapping[str, Any]) -> dict[str, Any]:
    """The engine options given, as JSON echoes them (`engine_options`): key -> value, declared order."""
    return {o.key: given[o.key] for o in OPTIONS if o.key in given}
