"""What the estimate command does once its arguments are read. No typer here: the typer command
(cli/commands/estimate.py) and the lean path (cli/lean.py) both fill an `EstimateArgs` and call
`run_estimate`, so they cannot disagree."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ExitCode, UsageError
from . import parse
from .models import devices, request, resolve_model_arg


@dataclass
class EstimateArgs:
    """The estimate command's options as typed (text, so cli/parse.py bounds every number)."""

    model: str
    gpu: list[str] | None = None
    vram: str | None = None
    margin: str | None = None
    context: str | None = None
    batch: str = "1"
    dtype: str | None = None
    kv_dtype: str | None = None
    images: str | None = None
    image_size: str | None = None
    encoder_tokens: str | None = None
    video_frames: str | None = None
    beams: str | None = None  # None: 1, and the speech engines' own beam default
    split: str | None = None
    offload: bool = False
    speed: bool = False
    system_bandwidth: str | None = None
    max_batch: bool = False
    no_chart: bool = False
    engine: str | None = None
    ubatch: str | None = None
    flash_attn: bool | None = None
    parallel: str | None = None
    gpu_layers: str | None = None
    gpu_memory_utilization: str | None = None
    op_offload: bool | None = None
    llamacpp_version: str | None = None
    ollama_version: str | None = None
    swa_full: bool = False
    override_tensor: list[str] | None = None
    fit_target: str | None = None
    max_num_seqs: str | None = None
    max_num_batched_tokens: str | None = None
    vllm_version: str | None = None
    tensor_parallel_size: str | None = None
    pipeline_parallel_size: str | None = None
    data_parallel_size: str | None = None
    enable_expert_parallel: bool = False
    disable_hybrid_kv_cache_manager: bool = False
    n_cpu_moe: str | None = None
    cpu_moe: bool = False
    whisper_version: str | None = None
    best_of: str | None = None
    no_fallback: bool = False
    compute_type: str | None = None
    cuda: str | None = None
    gpus_per_node: str | None = None
    cluster: Path | None = None
    json_out: bool = False
    quiet: bool = False
    specs_dir: list[Path] | None = field(default=None)


# Which engine takes which option: (option name, the engine's options field). --beams and --batch are
# the request's for every engine; the speech engines also take them as their own (beam_size, batch_size).
ENGINE_OPTIONS = {
    "llama.cpp": {"ubatch": "n_ubatch", "flash_attn": "flash_attn", "parallel": "parallel", "gpu_layers": "gpu_layers",
                  "op_offload": "op_offload", "llamacpp_version": "version", "swa_full": "swa_full",
                  "n_cpu_moe": "n_cpu_moe", "cpu_moe": "cpu_moe", "override_tensor": "override_tensor",
                  "fit_target": "fit_target_bytes"},
    "ollama": {"ubatch": "num_batch", "flash_attn": "flash_attn", "parallel": "num_parallel", "gpu_layers": "num_gpu",
               "llamacpp_version": "version", "ollama_version": "release"},
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


def _engine_options(a: EstimateArgs) -> dict[str, Any]:
    """The engine options given, parsed and bounded."""
    given = {"ubatch": parse.whole("--ubatch", a.ubatch), "flash_attn": a.flash_attn,
             "parallel": parse.whole("--parallel", a.parallel), "gpu_layers": parse.whole("--gpu-layers", a.gpu_layers),
             "gpu_memory_utilization": parse.decimal("--gpu-memory-utilization", a.gpu_memory_utilization),
             "op_offload": a.op_offload, "llamacpp_version": a.llamacpp_version, "swa_full": a.swa_full or None,
             "ollama_version": a.ollama_version,
             "max_num_seqs": parse.whole("--max-num-seqs", a.max_num_seqs),
             "max_num_batched_tokens": parse.whole("--max-num-batched-tokens", a.max_num_batched_tokens),
             "vllm_version": a.vllm_version,
             "tensor_parallel_size": parse.whole("--tensor-parallel-size", a.tensor_parallel_size),
             "pipeline_parallel_size": parse.whole("--pipeline-parallel-size", a.pipeline_parallel_size),
             "data_parallel_size": parse.whole("--data-parallel-size", a.data_parallel_size),
             "enable_expert_parallel": a.enable_expert_parallel or None,
             "disable_hybrid_kv_cache_manager": a.disable_hybrid_kv_cache_manager or None,
             "n_cpu_moe": parse.whole("--n-cpu-moe", a.n_cpu_moe), "whisper_version": a.whisper_version,
             "best_of": parse.whole("--best-of", a.best_of), "no_fallback": a.no_fallback or None,
             "compute_type": a.compute_type, "cuda": _cuda(a.cuda),
             "override_tensor": tuple(a.override_tensor) if a.override_tensor else None,
             "fit_target": _mib(parse.whole("--fit-target", a.fit_target))}
    if a.cpu_moe:
        if given["n_cpu_moe"] is not None:
            raise UsageError("--cpu-moe keeps the experts of every layer in host memory: give it or --n-cpu-moe N, not both")
        given["n_cpu_moe"] = CPU_MOE_ALL
    return {k: v for k, v in given.items() if v is not None}


def _mib(n: int | None) -> int | None:
    return None if n is None else n << 20


# --cpu-moe: every layer's experts (llama.cpp -cmoe); LlamaCppOptions.n_cpu_moe counts min(N, layers),
# and run_estimate turns this into the model's own layer count before anything prints it.
CPU_MOE_ALL = 1 << 30


def _cuda(text: str | None) -> int | None:
    """--cuda 11 or 12 (the CUDA major version a CTranslate2 build was made for)."""
    if text is None:
        return None
    if text.strip() not in ("11", "12"):
        raise UsageError(f"--cuda {parse._show(text)}: choose 11 or 12 (the CUDA major version CTranslate2 was built for)")
    return int(text)


def _engines_taking(option: str) -> str:
    """'llama.cpp or ollama' for --ubatch; 'vllm' for --gpu-memory-utilization."""
    names = [e for e, opts in ENGINE_OPTIONS.items() if option in opts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def run_estimate(a: EstimateArgs) -> int:
    """Estimate, print as asked, and return the exit code (0 fits, 1 does not)."""
    from ..catalog import load_catalog
    from ..dtypes import default_engine

    engine = parse.engine(a.engine)
    engine_opts = _engine_options(a)
    system_bandwidth = parse.decimal("--system-bandwidth", a.system_bandwidth)
    cat = load_catalog(a.specs_dir)
    spec, weights = resolve_model_arg(a.model, cat)
    if not a.quiet:
        spec_warnings(spec)
    req = request(a.context, a.batch, "1" if a.beams is None else a.beams, a.dtype, a.kv_dtype, a.images, a.image_size, a.encoder_tokens,
                  a.video_frames)
    if a.speed or a.offload or a.split is not None or (a.gpu and len(a.gpu) > 1):
        _refuse_layer_answers(spec, a)
    if engine_opts.get("n_cpu_moe") == CPU_MOE_ALL:
        from ..archs import geometry

        g = geometry(spec)
        if not g.experts:
            raise UsageError(f"--cpu-moe applies to mixture-of-experts models; {spec.id} has no experts")
        engine_opts["n_cpu_moe"] = g.decoder_layers
        engine_opts["cpu_moe"] = True  # so the answer names --cpu-moe, the flag given
    if a.gpus_per_node is not None or a.cluster is not None:
        from .cluster import run_cluster

        return run_cluster(a, engine, engine_opts, spec, req, cat)
    # memory: the card's total, what is free on it (detected) and --margin; estimates fit its card_bytes
    device, device_name, memory, cards = devices(cat, a.gpu, a.vram, a.quiet or a.json_out, a.margin)
    # One default everywhere (main command, check, ladder, gpus, sweep): a GGUF type (given, or stored
    # in an imported .gguf file) is llama.cpp, anything else transformers; the answers (--offload,
    # --speed, --max-batch, several cards) follow the engine instead of switching it.
    stored = weights.dtype if weights is not None else None
    # a model named from ollama's store (`qwen3:8b`) is sized as ollama runs it unless --engine says otherwise
    eng = engine or (weights.engine if weights is not None else None) or default_engine(a.dtype or stored)
    from ..archs import SPEECH_ONLY

    if eng in SPEECH_ONLY and a.beams is not None:  # beam_size only when given: None is the engine's default
        engine_opts["beams"] = req.beams  # (whisper.cpp: the request's beams; ctranslate2: 5). The batch is the request's.
    if eng != "transformers":
        if req.dtype is None and stored:
            req = replace(req, dtype=stored)  # the engine sizes the file's own type
        return _run_engine(a, eng, engine_opts, spec, req, device, device_name, memory, cards, weights,
                           system_bandwidth)
    if engine_opts:
        first = next(iter(engine_opts))
        engine_for = next(e for e, opts in ENGINE_OPTIONS.items() if first in opts)
        names = _flags(engine_opts)
        raise UsageError(f"{names} {'applies' if ',' not in names else 'apply'} to "
                         f"{_engines_taking(first)}; add --engine {engine_for}")
    return _run_transformers(a, spec, req, weights, cat, device, device_name, memory, cards, system_bandwidth)


def check_versions(given: dict[str, Any]) -> None:
    """--llamacpp-version and --vllm-version name a key of the engine's version table."""
    from ..engines.llamacpp import LLAMACPP_VERSIONS
    from ..engines.ollama import OLLAMA_RELEASES
    from ..engines.vllm import VLLM_VERSIONS

    tables: tuple[tuple[str, Any], ...] = (("llamacpp_version", LLAMACPP_VERSIONS), ("vllm_version", VLLM_VERSIONS),
                                           ("ollama_version", OLLAMA_RELEASES))
    for option, table in tables:
        value = given.get(option)
        if value is not None and value not in table:
            raise UsageError(f"{_flag(option)} {parse._show(value)}: choose one of {', '.join(table)}")


def spec_warnings(spec: Any) -> None:
    """The sentences of a spec's notes that start with "Warning:" (importers/configs.py writes one
    when a config.json omits shape fields and transformers' defaults are taken), on stderr."""
    notes = getattr(spec, "notes", None)
    if not notes:
        return
    from ..render import error

    for sentence in re.findall(r"Warning:.*?\.(?=\s|$)", notes, flags=re.DOTALL):
        error(sentence.removeprefix("Warning:").strip(), prefix="warning")


def _judged(fit: Any, memory: Any, extras: Any, engine: str) -> tuple[Any, str]:
    """The verdict and how it fits: the estimate's, or the offload plan's when the command printed one
    that fits where the estimate does not (its exit code follows the plan printed, issue 19 §5)."""
    from ..fit import judge, verdict

    judged = verdict(fit, memory)
    if extras.plan_need is not None and not judged.fits:
        return judge(extras.plan_need, memory, engine), extras.plan_how
    return judged, ""


def _run_engine(a: EstimateArgs, engine: str, engine_opts: dict[str, Any], spec: Any, req: Any, device: str,
                device_name: str, memory: Any, cards: list[Any], weights: Any, system_bandwidth: float | None) -> int:
    vram_bytes = memory.card_bytes
    if a.split is not None and engine not in ("llama.cpp", "ollama"):
        raise UsageError(f"--split applies to the transformers and llama.cpp engines, not {engine}")
    if a.split == "tensor":
        raise UsageError("llama.cpp splits whole layers over the cards (-sm layer): use --split layer or leave it out")
    if len(cards) > 1 and engine == "vllm":
        # vLLM on N identical cards of one node: tensor parallel over all of them (vllm serve -tp N),
        # unless -tp/-pp say how; each rank is sized against one card
        n = len(cards)
        if len({c.id for c in cards}) > 1:
            raise UsageError("vLLM shards over identical cards: --gpu 8xh200 (mixed cards: --engine transformers)")
        tp, pp = engine_opts.get("tensor_parallel_size"), engine_opts.get("pipeline_parallel_size", 1)
        if tp is None and n % pp == 0:
            engine_opts = {**engine_opts, "tensor_parallel_size": n // pp}
        elif (tp or 1) * pp != n:
            raise UsageError(f"--gpu gives {n} cards but -tp {tp or 1} x -pp {pp} = {(tp or 1) * pp} ranks")
        cards = cards[:1]
    if len(cards) > 1:
        if engine != "llama.cpp":
            raise UsageError(f"several --gpu: {engine} answers for one card")
        if len({c.id for c in cards}) > 1:
            raise UsageError("llama.cpp's layer split is estimated for identical cards (--gpu 2xrtx3090); "
                             "--engine transformers splits mixed cards")
        engine_opts = {**engine_opts, "gpus": len(cards)}
    fit = engine_fit(spec, req, engine, engine_opts, vram_bytes, device_name, weights)
    from .engine_extras import engine_extras

    extras = engine_extras(spec, req, engine, engine_opts, fit, cards, offload=a.offload, speed=a.speed,
                           max_batch=a.max_batch, system_bandwidth_gb_s=system_bandwidth)
    judged, how = _judged(fit, memory, extras, engine)
    hints: list[str] = []
    if not a.quiet and not judged.fits and not (a.offload or "n_cpu_moe" in engine_opts):
        from .engine_extras import engine_suggestions

        hints = engine_suggestions(spec, req, engine, engine_opts, vram_bytes, device)
        if 0 < fit.max_context_tokens < fit.estimate.context_tokens:  # as the transformers suggestions start
            hints.insert(0, f"--context {fit.max_context_tokens} fits (the largest that does)")
    _print(a, fit, spec, device, device_name, judged, how, extras, suggestions=hints)
    return int(judged.exit_code)


def _print(a: EstimateArgs, fit: Any, spec: Any, device: str, device_name: str, judged: Any, how: str, extras: Any,
           suggestions: list[str] | None = None) -> None:
    """The answer for people (render.print_answer, one renderer for every engine) or programs
    (render.answer_dict, one JSON writer), then the extra answers asked for."""
    if a.quiet:
        return
    from ..render import answer_dict, print_json

    if a.json_out:
        data = answer_dict(fit, device, _context_bound(spec), judged)
        if suggestions is not None:
            data["suggestions"] = suggestions
        print_json({**data, "gpu_name": device_name, **extras.data})
        return
    from ..render import out, print_answer

    print_answer(fit, spec.name, device_name, context_bound=_context_bound(spec), judged=judged, how=how,
                 verdict=extras.fits is None, chart=extras.chart, suggestions=suggestions or ())
    for view in extras.views:
        out.print(view)


def _run_transformers(a: EstimateArgs, spec: Any, req: Any, weights: Any, cat: Any, device: str, device_name: str,
                      memory: Any, cards: list[Any], system_bandwidth: float | None) -> int:
    from ..fit import check_fit
    from .extras import estimate_extras

    vram_bytes = memory.card_bytes

    result = check_fit(spec, req, vram_bytes, device, weights)
    chart = not (a.no_chart or a.quiet or a.json_out) and sys.stdout.isatty()
    extras = estimate_extras(spec, req, result, cards, split=a.split, offload=a.offload, speed=a.speed,
                             max_batch=a.max_batch, system_bandwidth_gb_s=system_bandwidth, chart=chart,
                             device_name=device_name, margin=memory.margin_bytes)
    judged, how = _judged(result, memory, extras, "transformers")
    hints = None
    if not a.quiet and not judged.fits and extras.fits is None:
        from .extras import more_cards_and_offload

        hints = [*result.suggestions, *more_cards_and_offload(spec, req, result, cards)]
    if not a.quiet:
        from ..render import error

        for line in cat.shadowed:
            error(line, prefix="note")
    _print(a, result, spec, device, device_name, judged, how, extras, suggestions=hints)
    if extras.fits is not None:  # several cards: the split decides
        return int(ExitCode.FITS if extras.fits else ExitCode.DOES_NOT_FIT)
    return int(judged.exit_code)


def _refuse_layer_answers(spec: Any, a: EstimateArgs) -> None:
    """Decode speed, layer offload and multi-card splits are about a decoder's layers and tokens: an
    encoder used alone (CLIP, SigLIP) has neither, so those answers would be numbers about nothing."""
    from ..archs import geometry

    if geometry(spec).encoder_only:
        asked = "--speed" if a.speed else "--offload" if a.offload else "--split" if a.split is not None else "several --gpu"
        raise UsageError(f"{asked} does not apply to {spec.id}: an encoder used alone has no decoder layers "
                         "and generates no tokens (try --batch, --images or --max-batch)")


def _context_bound(spec: Any) -> bool:
    """False for a pure state-space model: no KV cache, so memory does not bound the context."""
    from ..archs import geometry

    return geometry(spec).cache_grows_with_context


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
