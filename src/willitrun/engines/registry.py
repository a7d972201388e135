"""The engines, one class each: names, the options each takes (declared once in engines/options.py),
version tables, what it allocates (estimate), how that compares with a card (fit), the command that
runs it (launch) and the reader of its own log.

Light to import (the standard library, the engine names and the option declarations); the profiles
(llamacpp.py, vllm.py, ...) are imported by the methods that use them. docs/engines.md is generated
from here (scripts/engines_doc.py; tests/engines/test_registry.py fails when it drifts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..dtypes import ENGINE_ALIASES, ENGINES
from .options import OPTION, OPTIONS, REQUEST_ALIASES, Option, bounds, lean_tables, option_echo

if TYPE_CHECKING:
    from ..memory import AnySpec, Request
    from ..overrides import WeightsOverride
    from . import EngineFit
    from .base import EngineEstimate


def _q(value: object) -> str:
    return str(value)


def _py(text: str) -> str:
    """A Python string literal in double quotes (so the shell-quoted line stays readable)."""
    import json

    return json.dumps(text)


def log_setting(settings: dict[str, Any], name: str, value: Any, source: str) -> Any:
    """Record in `settings` (explain's answer) that `name` is `value`, and where it came from; return it."""
    settings[name] = {"value": value, "from": source}
    return value


def log_int(facts: Mapping[str, Any], *keys: str) -> int | None:
    """The first of `keys` a log reader stated as an integer (engines/logs.py facts), else None."""
    for key in keys:
        value = facts.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class Engine:
    """One inference engine: its names, the options it takes (CLI key -> field of its options
    dataclass), its version table, what it allocates (estimate), how that compares with a card
    (fit) and the command that runs the model that way (launch)."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    takes: ClassVar[Mapping[str, str]] = {}  # Option.key (or "beams") -> field of the options dataclass
    version_key: ClassVar[str | None] = None  # the Option that picks a version
    places_layers: ClassVar[bool] = False  # whole layers on the GPU or the host (-ngl, --offload, --split layer)
    layers_flag: ClassVar[str] = ""  # how its users say how many layers go on the GPU
    multi_card: ClassVar[Literal["layers", "tensor"] | None] = None  # how several identical cards of one node are used
    sized_by_card: ClassVar[bool] = False  # it sizes itself from the card's memory (vLLM's KV pool): needs --gpu/--vram
    strict_versions: ClassVar[bool] = True  # the version option must be a key of versions() (whisper.cpp: also tags)
    launch_note: ClassVar[str] = ""  # what the launch line is, for docs/engines.md
    ladder_kv: ClassVar[tuple[str, ...]] = ()  # the KV types `ladder` tries on it (empty: answers.LADDER_KV)
    label: ClassVar[str] = ""  # how sentences name it ("vLLM's share"); "" = its name
    # Against the memory free now (a detected card), what it keeps free beyond the buffers it sizes, and why
    # (fit.judge takes it off the free memory; vLLM's budget is its share of the TOTAL instead: `budget`).
    reserve_bytes: ClassVar[int] = 0
    reserve_source: ClassVar[str] = "no reserve of its own"
    # What its totals hold of the runtime beyond its own buffers (the CUDA context, cuBLAS, the allocator),
    # said beside totals that mix engines (ladder) so that they can be compared (issue 19).
    runtime_overhead: ClassVar[str] = ""
    # The fields of its options a measured runtime overhead replaces (bytes, the buffer's detail), or None when
    # its log cannot isolate one (`explain LOG --save` keeps it in the user config; the estimate uses it)
    measured_overhead: ClassVar[tuple[str, str] | None] = None

    # -- options ----------------------------------------------------------------------------------
    @classmethod
    def options_class(cls) -> type | None:
        return None

    @classmethod
    def option_defaults(cls, vram_bytes: int, gpu_name: str | None) -> dict[str, Any]:
        """Fields the engine's options take from the card (ollama's context tier, vLLM's memory)."""
        return {}

    @classmethod
    def make_options(cls, given: Mapping[str, Any], vram_bytes: int | None = None, gpu_name: str | None = None) -> Any:
        """The engine's options dataclass from the CLI keys given (already parsed and bounded); with
        `vram_bytes`, the fields an engine takes from the card (option_defaults)."""
        klass = cls.options_class()
        if klass is None:
            return None
        kwargs = {cls.takes.get(k, k): (not v if k == "no_fallback" else v) for k, v in given.items()}
        card = cls.option_defaults(vram_bytes, gpu_name) if vram_bytes is not None else {}
        return klass(**kwargs, **card)

    @classmethod
    def card_options(cls, vram_bytes: int, gpu_name: str | None = None) -> Any:
        """The options the main command gives the engine on one card with none typed: those it takes
        from the card (vLLM its memory and name, ollama its memory for the context tier), else None."""
        return cls.make_options({}, vram_bytes, gpu_name) if cls.option_defaults(vram_bytes, gpu_name) else None

    @classmethod
    def versions(cls) -> Mapping[str, Any]:
        """The version table (key -> row with its source), {} for an engine without one."""
        return {}

    @classmethod
    def refusal(cls, given: Mapping[str, Any]) -> str | None:
        """Why the engine cannot take options it has no equivalent of (None: it can)."""
        return None

    @classmethod
    def log_reader(cls) -> type | None:
        """The reader of the engine's own start-up log (engines/logs.py, used by `explain`), None without one."""
        from . import logs

        return next((r for r in logs.READERS if r.engine == cls.name), None)

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        """The engine options a start-up log states (engines/logs.py LogRun.facts; the rest at the engine's
        defaults), each recorded in `settings` with where it came from (`explain`); None: the defaults."""
        return None

    @classmethod
    def session_lines(cls, est: EngineEstimate, options: Any) -> list[str]:
        """What to type inside the launched program for options its command line cannot carry."""
        return []

    @classmethod
    def client(cls, spec: AnySpec, model: str | None = None) -> list[str] | None:
        """The command that talks to a launched server, when the model is given there (ollama run), else None."""
        return None

    # -- arithmetic -------------------------------------------------------------------------------
    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        raise NotImplementedError

    @classmethod
    def fit(
        cls, spec: AnySpec, request: Request, options: Any, vram_bytes: int, weights: WeightsOverride | None = None
    ) -> EngineFit:
        """The estimate against `vram_bytes` and the largest context that fits (searched up to the
        model's window, memory.context_limit)."""
        from ..memory import context_limit, largest, resolve
        from . import EngineFit

        est = cls.estimate(spec, request, options, weights)
        r = resolve(spec, request)
        limit = context_limit(r, est.context_tokens)
        best = largest(
            lambda n: cls.estimate(spec, replace(request, context=n), options, weights).max_device_bytes <= vram_bytes,
            r.image_tokens + 1,
            limit,
        )
        return EngineFit(est, vram_bytes, best, limit)

    @classmethod
    def fits(cls, f: EngineFit) -> bool:
        return cls.fits_estimate(f.estimate, f.vram_bytes)

    @classmethod
    def fits_estimate(cls, e: EngineEstimate, vram_bytes: int) -> bool:
        """Whether one estimate fits the card: its need on the fullest GPU (vLLM: its start-up check)."""
        return e.need_bytes <= vram_bytes

    @classmethod
    def headroom_bytes(cls, f: EngineFit) -> int:
        """What is left of the card at the total (vLLM: of its share)."""
        return f.vram_bytes - f.total_bytes

    @classmethod
    def budget(cls, e: EngineEstimate) -> tuple[int, float] | None:
        """The part of the card's total the engine takes as its whole budget at start, as (bytes, fraction
        of the total); None: it runs in what the card has (less --margin)."""
        return None

    @classmethod
    def budget_line(cls, f: EngineFit, size: Callable[[int], str]) -> str:
        """One sentence on how the need compares with the engine's own budget, said before the verdict ("");
        `size` writes bytes for display (render.size)."""
        return ""

    @classmethod
    def loads_dtype(cls, name: str) -> bool:
        """Whether the engine loads weights of type `name` (a smaller type is only suggested when it does)."""
        return True

    @classmethod
    def cards_note(cls, n: int) -> str:
        """How n of the same card are used, for the suggestion that names them (multi_card engines)."""
        return ""

    # -- the command line that runs it --------------------------------------------------------------
    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        """The argv that runs `spec` as estimated (shell-quote it with shlex.join to print it)."""
        raise NotImplementedError


def _hf(spec: Any, model: str | None) -> str:
    """The model as the engine loads it: the path or repo given, else the checkpoint's repo, else the id."""
    if model and ("/" in model or model.endswith((".gguf", ".json", ".bin"))):
        return model
    return str(getattr(spec, "hf_id", None) or getattr(spec, "id", model or "MODEL"))


class Transformers(Engine):
    name = "transformers"
    # memory.TRANSFORMERS_OVERHEAD_BYTES, measured (lm-sys/FastChat#2005)
    runtime_overhead = "totals include a measured 360 MiB CUDA context and allocator (FastChat#2005)"
    reserve_source = "the measured runtime overhead is part of the total"
    launch_note = (
        "python -c: transformers.pipeline(model=..., dtype=..., device_map='auto'); int8/int4 load through bitsandbytes"
    )

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .transformers import transformers_estimate

        return transformers_estimate(spec, request, weights)

    @classmethod
    def fit(
        cls, spec: AnySpec, request: Request, options: Any, vram_bytes: int, weights: WeightsOverride | None = None
    ) -> EngineFit:
        """memory's own search (memory.max_context over the resolved model, no engine round trip)."""
        from ..memory import context_limit, default_context, estimate_resolved, max_context, resolve
        from . import EngineFit
        from .transformers import estimate_buffers

        r = resolve(spec, request, weights)
        context = request.context or default_context(r)
        e = estimate_resolved(r, context, request.batch, request.beams)
        limit = context_limit(r, context)
        return EngineFit(
            estimate_buffers(e), vram_bytes, max_context(r, vram_bytes, request.batch, request.beams, limit), limit
        )

    @classmethod
    def launch(cls, spec: AnySpec, est: Any, options: Any, model: str | None = None) -> list[str]:
        """`est`: this profile's EngineEstimate or memory's Estimate (only its weight type is read)."""
        dtypes = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
        quant = {"int8": "load_in_8bit=True", "int4": "load_in_4bit=True"}
        name = _hf(spec, model)
        if est.dtype in quant:
            code = (
                "from transformers import BitsAndBytesConfig, pipeline; "
                f'p = pipeline(model={_py(name)}, device_map="auto", '
                f'model_kwargs={{"quantization_config": BitsAndBytesConfig({quant[est.dtype]})}})'
            )
        else:
            code = (
                f"from transformers import pipeline; p = pipeline(model={_py(name)}, "
                f'dtype={_py(dtypes.get(est.dtype, "auto"))}, device_map="auto")'
            )
        return ["python", "-c", code]


class LlamaCpp(Engine):
    name = "llama.cpp"
    # llama.cpp common/arg.cpp: `-fitt, --fit-target MiB0,MiB1,...`: "target margin per device for --fit
    # ... default: 1024" (params.fit_params_target); llama_params_fit keeps that much free on each device
    reserve_bytes = 1024 * 2**20
    reserve_source = "llama.cpp's --fit-target default (common/arg.cpp: 1024 MiB kept free per device)"
    # engines/llamacpp.py: "not in llama.cpp's printed buffers; nvidia-smi shows a few hundred MiB more"
    runtime_overhead = "totals are its printed buffers; the CUDA context (a few hundred MiB) is not in them"
    # the exit memory breakdown's unaccounted
    measured_overhead: ClassVar[tuple[str, str] | None] = ("cuda_overhead_bytes", "cuda_overhead_detail")
    takes = {
        "ubatch": "n_ubatch",
        "flash_attn": "flash_attn",
        "parallel": "parallel",
        "gpu_layers": "gpu_layers",
        "op_offload": "op_offload",
        "llamacpp_version": "version",
        "swa_full": "swa_full",
        "n_cpu_moe": "n_cpu_moe",
        "cpu_moe": "cpu_moe",
        "override_tensor": "override_tensor",
        "fit_target": "fit_target_mib",
        "mmproj": "mmproj_file",
    }
    version_key = "llamacpp_version"
    places_layers = True
    layers_flag = "-ngl"
    multi_card: ClassVar[Literal["layers", "tensor"] | None] = "layers"
    launch_note = (
        "llama-server (common/arg.cpp spellings; builds before August 2025: a bare -fa, and -ot with the "
        "expert-tensor pattern for --n-cpu-moe); without a .gguf path the file name is the one the type suggests"
    )

    @classmethod
    def options_class(cls) -> type:
        from .llamacpp import LlamaCppOptions

        return LlamaCppOptions

    @classmethod
    def option_defaults(cls, vram_bytes: int, gpu_name: str | None) -> dict[str, Any]:
        return {"vram_bytes": vram_bytes}  # --fit's default context (engines/llamacpp.py _default_context)

    @classmethod
    def versions(cls) -> Mapping[str, Any]:
        from .llamacpp import LLAMACPP_VERSIONS

        return LLAMACPP_VERSIONS

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .llamacpp import llamacpp_estimate

        return llamacpp_estimate(spec, request, options)

    @classmethod
    def loads_dtype(cls, name: str) -> bool:
        from . import GGUF_DTYPES

        return name in GGUF_DTYPES  # GGUF files

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        from .llamacpp import LlamaCppOptions

        kw: dict[str, Any] = {}
        if (n := log_int(facts, "n_ubatch")) is not None:
            kw["n_ubatch"] = log_setting(settings, "n_ubatch", n, "log")
        if isinstance(facts.get("flash_attn"), bool):
            kw["flash_attn"] = log_setting(settings, "flash_attn", facts["flash_attn"], "log")
        if (n := log_int(facts, "n_seq_max")) is not None and n > 1:
            kw["parallel"] = log_setting(settings, "parallel", n, "log")
        if (n := log_int(facts, "layers_offloaded")) is not None:
            kw["gpu_layers"] = log_setting(settings, "gpu_layers", n, "log")
        from .llamacpp_builds import version_for_build

        by_build = version_for_build(b, "n_slots" in facts) if (b := log_int(facts, "build")) is not None else None
        if version is None and by_build is not None:
            version = log_setting(settings, "llamacpp_version", by_build[0], f"log ({by_build[1]})")
        elif version is None:
            era = facts.get("log_era")
            version = "2024-05" if era == "2024" else "current"
            log_setting(settings, "llamacpp_version", version, f"log format ({era})")
        else:
            log_setting(settings, "llamacpp_version", version, "given")
        return LlamaCppOptions(version=version, **kw)

    @classmethod
    def cards_note(cls, n: int) -> str:
        return "llama.cpp's layer split"

    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        f = est.facts
        gguf = (
            model
            if model and model.lower().endswith(".gguf")
            else f"{getattr(spec, 'id', 'model')}-{est.dtype.upper()}.gguf"
        )
        argv = ["llama-server", "-m", gguf]
        if any(b.name.startswith("mmproj") for b in est.buffers):  # the vision tower is its own file (--mmproj)
            mmproj_type = str(getattr(options, "mmproj_dtype", "f16")).upper()
            given = getattr(options, "mmproj_file", None)
            argv += ["--mmproj", given.path if given else f"mmproj-{getattr(spec, 'id', 'model')}-{mmproj_type}.gguf"]
        argv += ["-c", _q(f.get("n_ctx", est.n_ctx)), "-ngl", _q(f.get("gpu_layers", 999))]
        from .llamacpp import LLAMACPP_VERSIONS

        # builds from August 2025 (the version rows whose flash-attention default is auto) take `-fa on|off|auto`
        # and have --n-cpu-moe / --cpu-moe (common/arg.cpp); older ones take a bare -fa and need the
        # tensor override these flags stand for: -ot with llm_ffn_exps_block_regex (blk\.N\.ffn_(up|down|gate)_(ch|)exps)
        recent = LLAMACPP_VERSIONS[str(f.get("version", "current"))].flash_attn_default
        moe = int(f.get("n_cpu_moe") or 0)
        every = options is not None and getattr(options, "cpu_moe", False)
        if every:
            argv += ["--cpu-moe"] if recent else ["-ot", "\\.ffn_(up|down|gate)_(ch|)exps=CPU"]
        elif recent and moe:
            argv += ["--n-cpu-moe", _q(moe)]
        elif moe:
            layers = "|".join(str(i) for i in range(min(moe, int(f.get("n_layer", moe)))))
            argv += ["-ot", f"blk\\.({layers})\\.ffn_(up|down|gate)_(ch|)exps=CPU"]
        if "flash_attn" in f and recent:
            argv += ["-fa", "on" if f["flash_attn"] else "off"]
        elif f.get("flash_attn"):
            argv.append("-fa")
        if est.kv_dtype not in ("f16", "fp16"):
            argv += ["-ctk", est.kv_dtype, "-ctv", est.kv_dtype]
        argv += ["-np", _q(f.get("parallel", 1)), "-ub", _q(f.get("n_ubatch", 512))]
        if options is not None and getattr(options, "gpus", 1) > 1:  # whole layers, split evenly over the cards
            argv += ["-sm", "layer"]
        if options is not None and getattr(options, "swa_full", False):
            argv.append("--swa-full")
        if options is not None and not getattr(options, "op_offload", True):
            argv.append("--no-op-offload")
        return argv


class Ollama(LlamaCpp):
    name = "ollama"
    # its 457 MiB minimum is already a buffer of its total (engines/ollama.py OLLAMA_MINIMUM_MEMORY_BYTES,
    # ollama discover/gpu.go cudaMinimumMemory), so nothing is kept free twice
    reserve_bytes = 0
    reserve_source = "ollama's 457 MiB minimum free memory is a buffer of its total"
    runtime_overhead = "totals include ollama's 457 MiB minimum free memory (discover/gpu.go)"
    measured_overhead = None
    layers_flag = "num_gpu"
    # several identical cards: one of them when ollama's prediction fits 80 % of it, else layers over all
    # (engines/ollama.py ollama_gpus, server/sched.go selectLlamaServerPlacement)
    multi_card = "layers"
    takes = {
        "ubatch": "num_batch",
        "flash_attn": "flash_attn",
        "parallel": "num_parallel",
        "gpu_layers": "num_gpu",
        "llamacpp_version": "version",
        "ollama_version": "release",
        "mmproj": "mmproj_file",
    }
    launch_note = (
        "the server with its environment (OLLAMA_CONTEXT_LENGTH, OLLAMA_NUM_PARALLEL, "
        "OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE), then `ollama run NAME`; num_gpu and num_batch "
        "have no variable: `/set parameter num_gpu N` in the session"
    )

    @classmethod
    def options_class(cls) -> type:
        from .ollama import OllamaOptions

        return OllamaOptions

    @classmethod
    def option_defaults(cls, vram_bytes: int, gpu_name: str | None) -> dict[str, Any]:
        return {"vram_bytes": vram_bytes}

    @classmethod
    def refusal(cls, given: Mapping[str, Any]) -> str | None:
        if {"n_cpu_moe", "cpu_moe"} & given.keys():
            from .ollama import expert_offload_refusal

            return expert_offload_refusal("--cpu-moe" if "cpu_moe" in given else "--n-cpu-moe")
        return None

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        from .ollama import OllamaOptions

        kw: dict[str, Any] = {}
        if (n := log_int(facts, "n_ctx")) is not None:
            kw["num_ctx"] = log_setting(settings, "num_ctx", n, "log")
        if (n := log_int(facts, "n_seq_max")) is not None:
            kw["num_parallel"] = log_setting(settings, "num_parallel", n, "log")
        if (n := log_int(facts, "layers_offloaded", "n_gpu_layers")) is not None:
            kw["num_gpu"] = log_setting(settings, "num_gpu", n, "log")
        if isinstance(facts.get("flash_attn"), bool):  # the runner's own llama_context line, not ollama's guess
            kw["flash_attn"] = log_setting(settings, "flash_attn", facts["flash_attn"], "log")
        if vram_bytes is not None:
            kw["vram_bytes"] = vram_bytes
        return OllamaOptions(**kw)

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .ollama import ollama_estimate

        return ollama_estimate(spec, request, options)

    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        """The server with its environment (ollama envconfig/config.go: ContextLength =
        Uint("OLLAMA_CONTEXT_LENGTH", 0), 0 meaning "by VRAM" in 2025-26 releases; NumParallel =
        Uint("OLLAMA_NUM_PARALLEL", 1); OLLAMA_FLASH_ATTENTION; OLLAMA_KV_CACHE_TYPE): the context is
        always stated, so the server does not pick its own."""
        f = est.facts
        env = [
            f"OLLAMA_CONTEXT_LENGTH={f.get('num_ctx', est.n_ctx)}",
            f"OLLAMA_NUM_PARALLEL={f.get('num_parallel', 1)}",
        ]
        if options is not None and getattr(options, "flash_attn", None) is not None:
            env.append(f"OLLAMA_FLASH_ATTENTION={int(bool(options.flash_attn))}")
        if est.kv_dtype in ("q8_0", "q4_0"):
            env.append(f"OLLAMA_KV_CACHE_TYPE={est.kv_dtype}")
        cards = int(getattr(options, "gpus", 1) or 1) if options is not None else 1
        if cards > 1:  # the cards the answer counts; the scheduler picks one or spreads (engines/ollama.py)
            env.insert(0, "CUDA_VISIBLE_DEVICES=" + ",".join(str(d) for d in range(cards)))
        if options is not None and getattr(options, "sched_spread", False):
            env.append("OLLAMA_SCHED_SPREAD=1")
        return ["env", *env, "ollama", "serve"]

    @classmethod
    def client(cls, spec: AnySpec, model: str | None = None) -> list[str] | None:
        """`ollama run NAME`: the ollama name given (NAME:TAG), else the catalog id as a placeholder."""
        name = model if model and ":" in model and not model.lower().endswith((".gguf", ".json")) else None
        return ["ollama", "run", name or str(getattr(spec, "id", "MODEL"))]

    @classmethod
    def cards_note(cls, n: int) -> str:
        return "ollama's scheduler: one card when it fits 80 % of one, else layers spread over all"

    @classmethod
    def session_lines(cls, est: EngineEstimate, options: Any) -> list[str]:
        """What `ollama run MODEL` takes inside the session for options without an environment variable."""
        out = []
        if options is not None and getattr(options, "num_gpu", None) is not None:
            out.append(f"/set parameter num_gpu {options.num_gpu}")
        if options is not None and getattr(options, "num_batch", None) not in (None, 512):
            out.append(f"/set parameter num_batch {options.num_batch}")
        return out


class WhisperCpp(Engine):
    name = "whisper.cpp"
    runtime_overhead = "totals are its printed buffers; the CUDA context is not in them"
    takes = {
        "flash_attn": "flash_attn",
        "whisper_version": "version",
        "best_of": "best_of",
        "no_fallback": "temperature_fallback",
        "beams": "beam_size",
    }
    version_key = "whisper_version"
    strict_versions = False
    launch_note = (
        "whisper-cli (examples/cli/cli.cpp spellings; -bs always, as its own default is a beam of 5); "
        "the ggml model file and audio.wav are placeholders"
    )

    @classmethod
    def loads_dtype(cls, name: str) -> bool:
        return False  # its type is the ggml file's

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        from .whispercpp import WhisperCppOptions

        kw: dict[str, Any] = {
            "decoders": log_setting(settings, "decoders", 1, "whisper_init_state sizes the self cache for one decoder")
        }
        if isinstance(facts.get("flash_attn"), bool):
            kw["flash_attn"] = log_setting(settings, "flash_attn", facts["flash_attn"], "log")
        if version is None and isinstance(facts.get("version"), str):
            version = log_setting(settings, "whisper_version", str(facts["version"]), "log")
        return WhisperCppOptions(version=version, **kw) if version else WhisperCppOptions(**kw)

    @classmethod
    def options_class(cls) -> type:
        from .whispercpp import WhisperCppOptions

        return WhisperCppOptions

    @classmethod
    def versions(cls) -> Mapping[str, Any]:
        from .whispercpp import WHISPERCPP_VERSIONS

        return WHISPERCPP_VERSIONS

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .whispercpp import whispercpp_estimate

        return whispercpp_estimate(spec, request, options)

    @classmethod
    def fit(
        cls, spec: AnySpec, request: Request, options: Any, vram_bytes: int, weights: WeightsOverride | None = None
    ) -> EngineFit:
        """The text context is fixed at 448 (padded to 512): nothing to search."""
        from . import EngineFit

        est = cls.estimate(spec, request, options, weights)
        return EngineFit(
            est, vram_bytes, est.context_tokens if est.max_device_bytes <= vram_bytes else 0, est.context_tokens
        )

    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        f = est.facts
        name = str(getattr(spec, "id", "model")).removeprefix("whisper-").removeprefix("openai-whisper-")
        argv = [
            "whisper-cli",
            "-m",
            model if model and model.endswith(".bin") else f"models/ggml-{name}.bin",
            "-f",
            "audio.wav",
        ]
        # always -bs: whisper-cli's own default is beam search of 5 (cli.cpp: beam_size =
        # whisper_full_default_params(WHISPER_SAMPLING_BEAM_SEARCH).beam_search.beam_size; greedy only when
        # beam_size <= 1), while the estimate's first pass runs the request's beams (1: greedy)
        argv += ["-bs", _q(f.get("decoders_first_pass", 1))]
        best_of = getattr(options, "best_of", 5) if options is not None else 5
        argv += ["-bo", _q(best_of)]
        if options is not None and not options.temperature_fallback:
            argv.append("-nf")
        if "flash_attn" in f:
            argv.append("-fa" if f["flash_attn"] else "-nfa")
        return argv


class CTranslate2(Engine):
    name = "ctranslate2"
    aliases = ("faster-whisper",)
    # engines/ctranslate2.py CT2_CUDA_OVERHEAD_BYTES, fitted to faster-whisper's README benchmark
    runtime_overhead = "totals include the measured CUDA overhead (274 MiB on CUDA 12, 504 MiB on CUDA 11)"
    takes = {
        "compute_type": "compute_type",
        "best_of": "best_of",
        "no_fallback": "temperature_fallback",
        "beams": "beam_size",
        "cuda": "cuda",
        "ct2_version": "version",
        "ct2_allocator": "allocator",
    }
    version_key = "ct2_version"
    strict_versions = False  # also release numbers (3.24.0, 4.8.1): ctranslate2.ct2_version_key
    launch_note = "python -c with faster-whisper's WhisperModel (not faster-whisper-server); audio.wav is a placeholder"

    @classmethod
    def loads_dtype(cls, name: str) -> bool:
        return False  # its type is --compute-type

    @classmethod
    def options_class(cls) -> type:
        from .ctranslate2 import CTranslate2Options

        return CTranslate2Options

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        from .ctranslate2 import COMPUTE_ALIASES, CT2_ALLOCATORS, CT2_CUDA_OVERHEAD_BYTES, CTranslate2Options

        kw: dict[str, Any] = {}
        if str(facts.get("compute_type", "")).lower() in COMPUTE_ALIASES:
            kw["compute_type"] = log_setting(settings, "compute_type", str(facts["compute_type"]).lower(), "log")
        if facts.get("allocator") in CT2_ALLOCATORS:
            kw["allocator"] = log_setting(settings, "ct2_allocator", facts["allocator"], "log")
        if facts.get("cuda_major") in CT2_CUDA_OVERHEAD_BYTES:
            kw["cuda"] = log_setting(settings, "cuda", facts["cuda_major"], "log (cuBLAS library version)")
        if version is not None:
            kw["version"] = log_setting(settings, "ct2_version", version, "given")
        return CTranslate2Options(**kw)

    @classmethod
    def versions(cls) -> Mapping[str, Any]:
        from .ctranslate2 import CT2_VERSIONS

        return CT2_VERSIONS

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .ctranslate2 import ctranslate2_estimate

        return ctranslate2_estimate(spec, request, options)

    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        f = est.facts
        # faster-whisper's WhisperModel takes its own size names (large-v3: Systran's CTranslate2 conversion)
        # or a converted model's path, not the transformers checkpoint
        name = model if model and "/" in model else str(getattr(spec, "id", "large-v3")).removeprefix("whisper-")
        args = [f"beam_size={f.get('beam_size', 5)}", f"best_of={f.get('best_of', 5)}"]
        if not f.get("temperature_fallback", True):
            args.append("temperature=0")
        model_call = (
            f'WhisperModel({_py(name)}, device="cuda", compute_type={_py(str(f.get("compute_type", "default")))})'
        )
        if int(f.get("batch_size", 1)) > 1:
            code = (
                "from faster_whisper import BatchedInferencePipeline, WhisperModel; "
                f"m = BatchedInferencePipeline({model_call}); "
                f'segments, info = m.transcribe("audio.wav", batch_size={f["batch_size"]}, {", ".join(args)}); '
                'print("".join(s.text for s in segments))'
            )
        else:
            code = (
                f"from faster_whisper import WhisperModel; m = {model_call}; "
                f'segments, info = m.transcribe("audio.wav", {", ".join(args)}); '
                'print("".join(s.text for s in segments))'
            )
        env = (
            []
            if f.get("allocator", "cuda_malloc_async") == "cuda_malloc_async"
            else ["env", "CT2_CUDA_ALLOCATOR=cub_caching"]
        )
        return [*env, "python", "-c", code]


class Vllm(Engine):
    name = "vllm"
    label = "vLLM"
    reserve_source = "vLLM takes its share of the card's total"
    # engines/vllm.py: before 0.34 the CUDA context sits in the 1 - gpu_memory_utilization headroom (vLLM PR #12126);
    # 0.34's extensible KV cache sizes its pool against it (VLLM_CUDA_CONTEXT_BYTES)
    runtime_overhead = (
        "totals are what vLLM needs of its utilization share; they hold the CUDA context from 0.34 (the default), "
        "before it the context sits outside them"
    )
    measured_overhead: ClassVar[tuple[str, str] | None] = ("non_torch_bytes", "non_torch_detail")  # non_torch_memory
    takes = {
        "gpu_memory_utilization": "gpu_memory_utilization",
        "max_num_seqs": "max_num_seqs",
        "max_num_batched_tokens": "max_num_batched_tokens",
        "vllm_version": "version",
        "tensor_parallel_size": "tensor_parallel",
        "pipeline_parallel_size": "pipeline_parallel",
        "data_parallel_size": "data_parallel",
        "enable_expert_parallel": "expert_parallel",
        "disable_hybrid_kv_cache_manager": "disable_hybrid_kv_cache_manager",
        "flashinfer_sampler": "flashinfer_sampler",
    }
    version_key = "vllm_version"
    multi_card = "tensor"
    sized_by_card = True
    launch_note = "vllm serve (vllm/engine/arg_utils.py spellings)"
    ladder_kv = ("f16", "fp8")  # --kv-cache-dtype auto / fp8 (engines/vllm.py VLLM_KV_TYPES)

    @classmethod
    def options_from_log(
        cls, facts: Mapping[str, Any], version: str | None, vram_bytes: int | None, settings: dict[str, Any]
    ) -> Any:
        import contextlib

        from .vllm import VllmOptions

        kw: dict[str, Any] = {}
        total = facts.get("total_gpu_memory_bytes")
        if isinstance(total, int):
            kw["total_memory_bytes"] = log_setting(settings, "total_memory_bytes", total, "log")
        elif vram_bytes is not None:
            kw["total_memory_bytes"] = log_setting(settings, "total_memory_bytes", vram_bytes, "the card")
        if isinstance(facts.get("gpu_memory_utilization"), str):
            with contextlib.suppress(ValueError):
                kw["gpu_memory_utilization"] = log_setting(
                    settings, "gpu_memory_utilization", float(str(facts["gpu_memory_utilization"])), "log"
                )
        for key, name in (
            ("max_model_len", "max_model_len"),
            ("tensor_parallel_size", "tensor_parallel"),
            ("pipeline_parallel_size", "pipeline_parallel"),
            ("max_num_seqs", "max_num_seqs"),
            ("max_num_batched_tokens", "max_num_batched_tokens"),
        ):
            if (n := log_int(facts, key)) is not None and n > 0:
                kw[name] = log_setting(settings, name, n, "log")
        if (n := log_int(facts, "cudagraph_bytes")) is not None and n > 0:
            kw["cudagraph_bytes"] = log_setting(settings, "cudagraph_bytes", n, "log (CUDA graph memory)")
        if version is None and isinstance(facts.get("version"), str):
            from .vllm import version_for_release

            covering = version_for_release(str(facts["version"]))
            if covering is not None:
                version = covering
                log_setting(settings, "vllm_version", version, f"log (vLLM {str(facts['version'])[:20]})")
        if version is not None:
            kw["version"] = version
            settings.setdefault("vllm_version", {"value": version, "from": "given"})
        return VllmOptions(**kw)

    @classmethod
    def options_class(cls) -> type:
        from .vllm import VllmOptions

        return VllmOptions

    @classmethod
    def option_defaults(cls, vram_bytes: int, gpu_name: str | None) -> dict[str, Any]:
        return {"total_memory_bytes": vram_bytes, "gpu_name": gpu_name}

    @classmethod
    def versions(cls) -> Mapping[str, Any]:
        from .vllm import VLLM_VERSIONS

        return VLLM_VERSIONS

    @classmethod
    def estimate(
        cls, spec: AnySpec, request: Request, options: Any = None, weights: WeightsOverride | None = None
    ) -> EngineEstimate:
        from .vllm import vllm_estimate

        return vllm_estimate(spec, request, options)

    @classmethod
    def fit(
        cls, spec: AnySpec, request: Request, options: Any, vram_bytes: int, weights: WeightsOverride | None = None
    ) -> EngineFit:
        """vLLM sizes its KV pool from the card: what fits is the window its pool holds."""
        from . import EngineFit
        from .vllm import VllmOptions

        opts = options if isinstance(options, VllmOptions) else VllmOptions()
        if opts.total_memory_bytes is None:
            opts = replace(opts, total_memory_bytes=vram_bytes)
        est = cls.estimate(spec, request, opts)
        window = int(est.facts["max_model_len"])
        return EngineFit(est, vram_bytes, min(window, int(est.facts["kv_tokens"])), window)

    @classmethod
    def fits_estimate(cls, e: EngineEstimate, vram_bytes: int) -> bool:
        """vLLM's start-up check: its KV pool holds one request of max_model_len."""
        return bool(e.facts["fits_window"])

    @classmethod
    def headroom_bytes(cls, f: EngineFit) -> int:
        return int(f.estimate.facts["usable_bytes"]) - f.total_bytes

    @classmethod
    def budget(cls, e: EngineEstimate) -> tuple[int, float] | None:
        """--gpu-memory-utilization of the card's total (vllm/v1/worker/gpu_worker.py `init_device`). None on 0.34's
        whole-card default: the extensible KV cache takes no share up front and does not refuse when less is free
        (vllm==0.34.0 v1/worker/utils.py `request_memory`); it sizes the pool from what is free, judged as free."""
        if e.facts.get("extensible_kv") and int(e.facts["gpu_memory_utilization_pct"]) == 100:
            return None
        return int(e.facts["usable_bytes"]), int(e.facts["gpu_memory_utilization_pct"]) / 100

    @classmethod
    def budget_line(cls, f: EngineFit, size: Callable[[int], str]) -> str:
        facts = f.estimate.facts
        return (
            f"vLLM needs {size(f.total_bytes)} of its {size(int(facts['usable_bytes']))} share for one request "
            f"of max_model_len {int(facts['max_model_len']):,}; its KV pool holds {int(facts['kv_tokens']):,} "
            "tokens: "
            + (
                "the window fits."
                if f.fits
                else "vLLM refuses to start (lower --context or raise --gpu-memory-utilization)."
            )
        )

    @classmethod
    def loads_dtype(cls, name: str) -> bool:
        from . import GGUF_DTYPES

        return name not in GGUF_DTYPES  # checkpoints

    @classmethod
    def cards_note(cls, n: int) -> str:
        return f"vLLM -tp {n}"

    @classmethod
    def launch(cls, spec: AnySpec, est: EngineEstimate, options: Any, model: str | None = None) -> list[str]:
        f = est.facts
        from .vllm import VLLM_VERSIONS

        share = getattr(options, "gpu_memory_utilization", None) if options is not None else None
        if share is None:  # the version's default (CacheConfig), as the estimate took it
            share = VLLM_VERSIONS[str(f.get("version"))].gpu_memory_utilization
        argv = [
            "vllm",
            "serve",
            _hf(spec, model),
            "--max-model-len",
            _q(f["max_model_len"]),
            "--gpu-memory-utilization",
            f"{share:g}",
        ]
        for fact, flag in (("tensor_parallel", "-tp"), ("pipeline_parallel", "-pp"), ("data_parallel", "-dp")):
            if int(f.get(fact, 1)) > 1:
                argv += [flag, _q(f[fact])]
        argv += ["--max-num-seqs", _q(f["max_num_seqs"]), "--max-num-batched-tokens", _q(f["max_num_batched_tokens"])]
        dtype = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(est.dtype)
        if dtype:
            argv += ["--dtype", dtype]
        elif est.dtype == "fp8":
            argv += ["--quantization", "fp8"]
        if est.kv_dtype == "fp8":
            argv += ["--kv-cache-dtype", "fp8"]
        if f.get("expert_parallel"):
            argv.append("--enable-expert-parallel")
        if options is not None and getattr(options, "disable_hybrid_kv_cache_manager", False):
            argv.append("--disable-hybrid-kv-cache-manager")
        flashinfer = getattr(options, "flashinfer_sampler", None) if options is not None else None
        if flashinfer is not None:  # given: the environment variable vLLM reads (vllm/envs.py)
            argv = ["env", f"VLLM_USE_FLASHINFER_SAMPLER={int(flashinfer)}", *argv]
        return argv


REGISTRY: dict[str, type[Engine]] = {e.name: e for e in (Transformers, LlamaCpp, Ollama, WhisperCpp, Vllm, CTranslate2)}
assert tuple(REGISTRY) == ENGINES, "dtypes.ENGINES and the registry name the same engines in the same order"
assert {a: e.name for e in REGISTRY.values() for a in e.aliases} == ENGINE_ALIASES


def engine_class(name: str) -> type[Engine]:
    """The class of engine `name` (an alias or any case); UsageError for an unknown name."""
    key = name.lower()
    key = ENGINE_ALIASES.get(key, key)
    if key not in REGISTRY:
        from ..errors import UsageError

        raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return REGISTRY[key]


def engines_taking(key: str) -> list[str]:
    """The engines that take option `key`, in registry order."""
    return [e.name for e in REGISTRY.values() if key in e.takes]


# -- what the declarations generate (the typer flags are built in cli/commands/estimate.py) ----------


def quoted(argv: list[str]) -> str:
    """The argv as a shell reads it back (shlex.split(quoted(argv)) == argv)."""
    import shlex

    return shlex.join(argv)


def docs_markdown() -> str:
    """docs/engines.md, generated from the declarations (scripts/engines_doc.py writes it)."""
    lines = [
        "# Engines",
        "",
        "Generated from `src/willitrun/engines/options.py` (the options, each declared once) and "
        "`src/willitrun/engines/registry.py` (one class per engine) by `python scripts/engines_doc.py`; "
        "tests/engines/test_registry.py fails when this file drifts from the code.",
        "",
        "An engine option is one `Option` in engines/options.py (flags, the engines' own spellings, type, "
        "bounds, help, default): the typer flags, the lean argument path, the bounds, the JSON "
        "`engine_options` echo and this page come from it. The engine class that takes it maps it to a "
        "field of its options dataclass (`takes`), where the arithmetic reads it.",
        "",
        "## Engines",
        "",
        "| engine | aliases | options | versions | launch line |",
        "|---|---|---|---|---|",
    ]
    for e in REGISTRY.values():
        opts = ", ".join(f"`{OPTION[k].flag}`" if k in OPTION else f"`--{k}`" for k in e.takes)
        versions = ", ".join(f"`{v}`" for v in e.versions()) or "-"
        lines.append(f"| {e.name} | {', '.join(e.aliases) or '-'} | {opts or '-'} | {versions} | {e.launch_note} |")
    lines += [
        "",
        "## Options",
        "",
        "| option | also spelled | engines | takes | default | what it sets |",
        "|---|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        takes = {
            "int": f"whole number {o.low:,.0f} to {o.high:,.0f}",
            "decimal": f"number {o.low:g} to {o.high:g}",
            "text": o.metavar.replace("|", " or "),
            "switch": "flag",
            "bool": f"flag / `{'`, `'.join(o.off)}`",
        }[o.kind]
        also = ", ".join(f"`{f}`" for f in o.flags[1:]) or "-"
        lines.append(
            f"| `{o.flag}` | {also} | {', '.join(engines_taking(o.key))} | {takes} | "
            f"{o.default or '-'} | {o.help.replace('|', '/')} |"
        )
    lines += [
        "",
        "The request's own options keep their names for every engine; the engines' spellings are accepted as aliases:",
        "",
    ]
    for key, flags in REQUEST_ALIASES.items():
        lines.append(f"- `--{key}`: {', '.join(f'`{f}`' for f in flags)}")
    lines += ["", "## Versions", "", "Each row is data in the engine's module, with its source.", ""]
    for e in REGISTRY.values():
        table = e.versions()
        if not table:
            continue
        lines += [
            f"### {e.name} (`{OPTION[e.version_key].flag if e.version_key else ''}`)",
            "",
            "| key | what the version sets | source |",
            "|---|---|---|",
        ]
        for key, row in table.items():
            source = ": ".join(str(getattr(row, a)) for a in ("since", "source") if getattr(row, a, None)) or "-"
            sets = ", ".join(
                f"{f.name}={getattr(row, f.name)}"
                for f in fields(row)
                if f.name not in ("key", "name", "since", "source")
            )
            lines.append(f"| `{key}` | {sets} | {source.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


__all__ = [
    "OPTION",
    "OPTIONS",
    "REGISTRY",
    "REQUEST_ALIASES",
    "Engine",
    "Option",
    "bounds",
    "docs_markdown",
    "engine_class",
    "engines_taking",
    "lean_tables",
    "option_echo",
    "quoted",
]
