"""Which engine takes which of the estimate command's options, and the engine fit built from them.

Shared by the estimate command (cli/estimation.py), its engine answers (cli/engine_extras.py) and
the multi-node plans (cli/cluster.py); it imports none of them, so the three form no import circle.
No typer here.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError
from . import parse

# Which engine takes which option: (option name, the engine's options field). --beams and --batch are
# the request's for every engine; the speech engines also take them as their own (beam_size, batch_size).
ENGINE_OPTIONS = {
    "llama.cpp": {"ubatch": "n_ubatch", "flash_attn": "flash_attn", "parallel": "parallel", "gpu_layers": "gpu_layers",
                  "op_offload": "op_offload", "llamacpp_version": "version", "swa_full": "swa_full",
                  "n_cpu_moe": "n_cpu_moe", "cpu_moe": "cpu_moe"},
    "ollama": {"ubatch": "num_batch", "flash_attn": "flash_attn", "parallel": "num_parallel", "gpu_layers": "num_gpu",
               "llamacpp_version": "version"},
    "whisper.cpp": {"flash_attn": "flash_attn", "whisper_version": "version", "best_of": "best_of",
                    "no_fallback": "temperature_fallback", "beams": "beam_size"},
    "ctranslate2": {"compute_type": "compute_type", "best_of": "best_of", "no_fallback": "temperature_fallback",
                    "beams": "beam_size", "cuda": "cuda"},
    "vllm": {"gpu_memory_utilization": "gpu_memory_utilization", "max_num_seqs": "max_num_seqs",
             "max_num_batched_tokens": "max_num_batched_tokens", "vllm_version": "version",
             "tensor_parallel_size": "tensor_parallel", "pipeline_parallel_size": "pipeline_parallel",
             "data_parallel_size": "data_parallel", "enable_expert_parallel": "expert_parallel",
             "disable_hybrid_kv_cache_manager": "disable_hybrid_kv_cache_manager"},
}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _flags(names: Any) -> str:
    """The flags the user typed: --cpu-moe also sets n_cpu_moe (every layer), which is not a flag given."""
    keys = list(names)
    return ", ".join(_flag(k) for k in keys if not (k == "n_cpu_moe" and "cpu_moe" in keys))


def _engines_taking(option: str) -> str:
    """'llama.cpp or ollama' for --ubatch; 'vllm' for --gpu-memory-utilization."""
    names = [e for e, opts in ENGINE_OPTIONS.items() if option in opts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_versions(given: dict[str, Any]) -> None:
    """--llamacpp-version and --vllm-version name a key of the engine's version table."""
    from ..engines.llamacpp import LLAMACPP_VERSIONS
    from ..engines.vllm import VLLM_VERSIONS

    for option, table in (("llamacpp_version", LLAMACPP_VERSIONS), ("vllm_version", VLLM_VERSIONS)):
        value = given.get(option)
        if value is not None and value not in table:
            raise UsageError(f"{_flag(option)} {parse._show(value)}: choose one of {', '.join(table)}")


def engine_fit(spec: Any, req: Any, engine: str, given: dict[str, Any], vram_bytes: int,
               gpu_name: str | None = None, weights: Any = None, *, search: bool = True) -> Any:
    """Build the engine's options from the CLI's, refusing options the engine does not take, and fit
    them; `search=False` returns the engine's estimate alone, without the largest-context search (what
    a probe of another setting needs: -ngl, --n-cpu-moe, the batch)."""
    from ..engines import (
        CTranslate2Options,
        LlamaCppOptions,
        OllamaOptions,
        VllmOptions,
        WhisperCppOptions,
        engine_estimate,
    )
    from ..engines import engine_fit as fit

    accepted = {**ENGINE_OPTIONS.get(engine, {}), "gpus": "gpus"}
    if engine == "ollama" and {"n_cpu_moe", "cpu_moe"} & given.keys():
        from ..engines.ollama import expert_offload_refusal

        raise UsageError(expert_offload_refusal("--cpu-moe" if "cpu_moe" in given else "--n-cpu-moe"))
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{_flags(wrong)} does not apply to {engine} "
                         f"(only to {_engines_taking(wrong[0])})")
    if "parallel" in given:  # each of -np sequences gets n_ctx / np cells: at least one
        from ..memory import default_context, resolve

        context = req.context or default_context(resolve(spec, req))
        if given["parallel"] > context:
            raise UsageError(f"--parallel {given['parallel']} is more than the context ({context:,}): "
                             "each sequence needs at least one cell")
    check_versions(given)
    kwargs: dict[str, Any] = {accepted[k]: (not v if k == "no_fallback" else v) for k, v in given.items()}
    options: Any
    try:
        if engine == "llama.cpp":
            options = LlamaCppOptions(**kwargs)
        elif engine == "ollama":
            options = OllamaOptions(**kwargs, vram_bytes=vram_bytes)
        elif engine == "whisper.cpp":
            options = WhisperCppOptions(**kwargs)
        elif engine == "ctranslate2":
            options = CTranslate2Options(**kwargs)
        else:
            options = VllmOptions(**kwargs, total_memory_bytes=vram_bytes, gpu_name=gpu_name)
        return fit(spec, req, engine, options, vram_bytes, weights) if search else \
            engine_estimate(spec, req, engine, options, weights)
    except UsageError as exc:  # the options classes name their fields; the user typed flags
        flags: dict[str, str] = {}
        for flag, name in [*accepted.items(), *ENGINE_OPTIONS["llama.cpp"].items()]:  # ollama runs llama.cpp's
            flags.setdefault(name, _flag(flag))
        names = "|".join(sorted((re.escape(n) for n in flags if n != "version"), key=len, reverse=True))
        # one pass, whole field names only (`tensor_parallel` must not become --tensor---parallel-size)
        message = re.sub(rf"(?<![\w-])({names})(?![\w-])", lambda m: flags[m.group(1)], str(exc))
        raise UsageError(message) from None
