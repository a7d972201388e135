"""The estimate command's answers (--offload, --speed, --max-batch) on an engine profile other than
transformers (cli/extras.py answers those on the transformers arithmetic). Every search here is
fit.largest over the engine's estimate alone (engine_fit(search=False): no context search per probe);
no typer here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..engines.registry import engine_class
from ..errors import UsageError
from .extras import Extras
from .parse import BOUNDS

_MAX_BATCH = int(BOUNDS["--parallel"].high)  # llama.cpp's -np bound, as answers.engine_max_batch


def engine_extras(
    spec: Any,
    req: Any,
    engine: str,
    given: dict[str, Any],
    fit: Any,
    cards: list[Any],
    *,
    offload: bool,
    speed: bool,
    max_batch: bool,
    system_bandwidth_gb_s: float | None,
) -> Extras:
    """--offload (llama.cpp -ngl: the most layers that fit), --max-batch (the most sequences that fit
    at the context) and --speed (the decode bound) on `engine`'s buffers."""
    from ..memory import largest
    from ..speed import SYSTEM_BANDWIDTH_BYTES_S, engine_speed
    from .engine_options import engine_fit

    cls = engine_class(engine)
    x = Extras()
    moe = int(given.get("n_cpu_moe") or 0)
    if system_bandwidth_gb_s is not None and not ((offload or moe) and speed):
        raise UsageError(
            "--system-bandwidth applies to --offload --speed or --n-cpu-moe N --speed "
            "(the layers or experts read from system memory)"
        )
    if speed and not cards:
        raise UsageError("--speed needs a catalog GPU (--gpu) for its memory bandwidth")
    vram = fit.vram_bytes
    est = fit.estimate
    if offload:
        if not cls.places_layers:
            raise UsageError(f"--offload places layers as llama.cpp's -ngl does: use --engine llama.cpp, not {engine}")
        if "gpu_layers" in given:
            raise UsageError("--offload searches --gpu-layers itself: give one or the other")
        n_layer = int(est.facts["n_layer"])

        def at_layers(n: int) -> Any:
            return engine_fit(spec, req, engine, {**given, "gpu_layers": n}, vram, search=False)

        ngl = largest(lambda n: at_layers(n).max_device_bytes <= vram, 0, n_layer + 1)
        at = at_layers(ngl)
        x.data["engine_offload"] = {
            "gpu_layers": ngl,
            "n_layer": n_layer,
            "output_on_gpu": bool(at.facts["output_on_gpu"]),
            "gpu_bytes": at.max_device_bytes,
            "host_bytes": at.host_bytes,
            "fits": ngl > 0 or at.max_device_bytes <= vram,
        }
        x.views.append(
            _offload_view(
                ngl, n_layer, at.max_device_bytes, at.host_bytes, vram, cls.layers_flag, bool(at.facts["output_on_gpu"])
            )
        )
        if not fit.fits and at.max_device_bytes <= vram:  # the plan printed is the answer (issue 19 §5)
            x.plan_need = at.max_device_bytes
            x.plan_how = f"with {ngl} of {n_layer + 1} layers on the GPU ({cls.layers_flag} {ngl})"
        est = at
    if (
        "n_cpu_moe" in cls.takes
        and not fit.fits
        and len(cards) <= 1
        and not offload
        and "n_cpu_moe" not in given
        and "gpu_layers" not in given
    ):
        _expert_offload(spec, req, engine, given, vram, x)
    if max_batch:
        if not cls.places_layers:
            raise UsageError(
                f"--max-batch: {engine} sizes its own batch"
                + (" (give --max-num-seqs)" if "max_num_seqs" in cls.takes else "")
            )
        context = est.context_tokens // max(req.batch, 1)
        opts = {k: v for k, v in given.items() if k != "parallel"}

        def total(b: int) -> int:
            return int(
                engine_fit(
                    spec, replace(req, batch=b, context=context), engine, opts, vram, search=False
                ).max_device_bytes
            )

        n = largest(lambda b: total(b) <= vram, 1, _MAX_BATCH, grow=True)
        at = max(n, 1)
        after = total(at + 1)
        x.data["max_batch"] = {
            "context_tokens": context,
            "beams": 1,
            "vram_bytes": vram,
            "max_batch": n,
            "total_bytes": total(at),
            "next_total_bytes": after if n else total(at),
            "per_sequence_bytes": after - total(at),
        }
        x.views.append(
            f"Largest batch at context {context:,}: {n:,} sequences (llama.cpp -np {n} -c {n * context:,})"
            if n
            else f"Not even one sequence of {context:,} positions fits."
        )
    if speed:
        from ..answers import device
        from ..render_answers import speed_view

        gpu_bw = device(cards[0]).bandwidth_bytes_s
        if gpu_bw is None:
            raise UsageError(f"--speed needs the GPU's memory bandwidth; the spec of {cards[0].id} gives none")
        sys_bw = round(system_bandwidth_gb_s * 10**9) if system_bandwidth_gb_s else SYSTEM_BANDWIDTH_BYTES_S
        from ..archs import geometry

        # a token reads only its routed experts, not every buffer byte: llama.cpp on one card with every
        # layer on it (--n-cpu-moe moves only experts); other layouts keep the buffer-by-buffer bound
        if (
            cls.places_layers
            and len(cards) == 1
            and not offload
            and "gpu_layers" not in given
            and geometry(spec).experts
        ):
            from ..layers import layout
            from ..memory import estimate, resolve
            from ..speed import moe_offload_speed

            sp = moe_offload_speed(layout(resolve(spec, req)), estimate(spec, req), moe, gpu_bw, sys_bw)
        else:
            sp = engine_speed(
                [(b.name, b.placement, b.kind, b.bytes) for b in est.buffers],
                est.context_tokens,
                est.n_ctx,
                req.batch,
                gpu_bw,
                sys_bw,
            )
        from .extras import as_plain

        x.data["decode_speed"] = as_plain(sp)
        x.views.append(speed_view(sp, fits=fit.fits or offload))
    return x


def _offload_view(
    ngl: int, n_layer: int, gpu: int, host: int, vram: int, flag: str, output_on_gpu: bool = False
) -> str:
    from ..render import size

    if ngl > n_layer:
        return f"Offload: everything fits on the GPU ({flag} {ngl}: {n_layer} layers and the output layer)."
    if ngl == 0 and gpu > vram:
        return f"Offload: not even {flag} 0 fits: the KV cache and compute buffers alone need {size(gpu)}."
    # which layers: since llama.cpp PR #18148 the output layer goes first, then ngl - 1 repeating layers
    on_gpu = (
        f"the output layer and the last {ngl - 1} repeating layers"
        if output_on_gpu
        else f"the last {ngl} repeating layers"
    )
    return (
        f"Offload: {flag} {ngl} of {n_layer + 1} fits ({on_gpu}): {size(gpu)} on the GPU of {size(vram)}, "
        f"{size(host)} in system memory."
    )


def _expert_offload(spec: Any, req: Any, engine: str, given: dict[str, Any], vram: int, x: Extras) -> None:
    """A mixture-of-experts model that does not fit: the fewest --n-cpu-moe layers that make it fit
    (bisection: moving more layers' experts to host memory never adds GPU bytes)."""
    from ..archs import geometry
    from ..memory import largest
    from ..render import size
    from .engine_options import engine_fit

    g = geometry(spec)
    if not g.experts:
        return
    n_layer = g.decoder_layers

    def at_layers(n: int) -> Any:
        return engine_fit(spec, req, engine, {**given, "n_cpu_moe": n}, vram, search=False)

    last_over = largest(lambda n: at_layers(n).max_device_bytes > vram, 0, n_layer)
    n = last_over + 1
    if n > n_layer:
        x.data["expert_offload"] = {"n_cpu_moe": None, "n_layer": n_layer, "gpu_bytes": None, "host_bytes": None}
        x.views.append(
            f"Expert offload: even --cpu-moe (the experts of all {n_layer} layers in host memory) does not fit."
        )
        return
    at = at_layers(n)
    x.data["expert_offload"] = {
        "n_cpu_moe": n,
        "n_layer": n_layer,
        "gpu_bytes": at.max_device_bytes,
        "host_bytes": at.host_bytes,
    }
    x.views.append(
        f"  try --n-cpu-moe {n} (the experts of layers 0..{n - 1} in host memory): {size(at.max_device_bytes)} "
        f"on the GPU, {size(at.host_bytes)} in system memory."
    )


def engine_suggestions(spec: Any, req: Any, engine: str, given: dict[str, Any], vram: int, device: str) -> list[str]:
    """What would make an engine answer that does not fit one card fit (issue 19 §5: "when no single
    change fits, say what would"): partial offload (llama.cpp, ollama), more of the same card
    (llama.cpp's layer split, vLLM's tensor parallelism), a smaller weight type. Each is a probe of the
    same estimate with one setting changed (engine_fit(search=False)), the first that fits."""
    from ..fit import ladder_dtypes, largest
    from ..limits import MAX_CARDS
    from .engine_options import engine_fit

    def need(opts: dict[str, Any], r: Any = req) -> int:
        return int(engine_fit(spec, r, engine, opts, vram, search=False).need_bytes)

    def fits(opts: dict[str, Any], r: Any = req) -> bool:
        try:
            e = engine_fit(spec, r, engine, opts, vram, search=False)
        except UsageError:
            return False
        return cls.fits_estimate(e, vram)

    cls = engine_class(engine)
    out: list[str] = []
    base = engine_fit(spec, req, engine, given, vram, search=False)
    if cls.places_layers and "gpu_layers" not in given and given.get("gpus", 1) == 1:
        layers = int(base.facts.get("n_layer", 0))
        ngl = largest(lambda n: need({**given, "gpu_layers": n}) <= vram, 0, layers) if layers else 0
        if ngl:
            out.append(
                f"--offload: {ngl} of {layers + 1} layers on the GPU fit "
                f"({cls.layers_flag} {ngl}), the rest in system memory"
            )
    cards_opt = {"layers": "gpus", "tensor": "tensor_parallel_size", None: None}[cls.multi_card]
    if cards_opt and cards_opt not in given and given.get("gpus", 1) == 1:
        n = next((k for k in range(2, MAX_CARDS + 1) if fits({**given, cards_opt: k})), 0)
        card = device if device not in ("vram", "") and ":" not in device else "CARD"
        if n:
            out.append(f"--gpu {n}x{card}: {n} of these cards fit ({cls.cards_note(n)})")
        else:
            out.append(f"no count of these cards up to {MAX_CARDS} fits")
    from ..dtypes import WEIGHT_DTYPES

    dtype = req.dtype or base.dtype
    current = WEIGHT_DTYPES.get(dtype)
    for name in ladder_dtypes(spec):
        cand = WEIGHT_DTYPES[name]
        if name == dtype or (current is not None and cand.storage.bits_per_element >= current.storage.bits_per_element):
            continue
        # the types the engine loads: GGUF files on llama.cpp and ollama, checkpoints on vLLM; the speech
        # engines' types are their own options (--compute-type, the ggml file)
        if not cls.loads_dtype(name):
            continue
        if fits(given, replace(req, dtype=name)):
            out.append(f"--dtype {name} fits on one card")
            break
    return out
