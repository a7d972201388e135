"""What a llama.cpp build takes when -c is not given, and the answer at it: 4096 before --fit; from --fit
(ggml-org/llama.cpp PR #16653, mid-December 2025) the trained window, which common/fit.cpp (read at
08033df02cc3, common_params_fit_impl) shrinks to what fits the card less its target (1024 MiB):
- `n_ctx_max = hp_nct * n_streams` with `n_streams = cparams->kv_unified ? 1 : max(1, n_seq_max)`;
- step 1: `if (projected_free_per_device[0] >= margins[0])` "no changes needed";
- step 2: measured again at `n_ctx_min_total` (fit_params_min_ctx 4096 x n_streams), `cparams->n_ctx +=
  (n_ctx_max - n_ctx_min_total) * (sum_used_target - sum_projected_used_min_ctx) / (sum_projected_used -
  sum_projected_used_min_ctx)`, then `align = 256 * n_streams`, `n_ctx = max(n_ctx - n_ctx % align, n_ctx_min_total)`;
- step 3, when even n_ctx_min_total does not fit: "fill the back to front with dense layers" (the most layers
  whose device memory meets `targets[id] = free - margin`), for a MoE model with the MoE tensors in system memory.
The PR's own log: "context size reduced from 65536 to 4096"."""

from __future__ import annotations

import pytest

from willitrun import load_catalog
from willitrun.engines import engine_estimate
from willitrun.engines.llamacpp import LLAMACPP_FIT_MIN_CTX, LlamaCppOptions
from willitrun.memory import Request

GiB, MiB = 1 << 30, 1 << 20
CATALOG = load_catalog()


def _peak(est) -> int:
    per: dict[int, int] = {}
    for b in est.buffers:
        if b.placement == "gpu":
            per[b.device] = per.get(b.device, 0) + b.bytes
    return max(per.values())


def test_builds_before_fit_say_nothing_of_their_own_default():
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(version="2025-11"))
    assert "build_default_n_ctx" not in e.facts
    assert e.context_tokens == 4096


def test_without_a_card_the_answer_is_at_4096_and_says_what_the_build_would_take():
    """The documented rule for library use without a card: 4096 (memory.DEFAULT_CONTEXT), the build's own
    choice (the trained window, which --fit shrinks to a card) in a note and `build_default_n_ctx`."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions())
    assert e.facts["build_default_n_ctx"] == 131072 and e.facts["context_source"] == "default"
    assert e.context_tokens == 4096
    assert any("give --gpu or --vram" in n for n in e.notes)


def test_what_fits_is_kept_whole_and_answered_at():
    spec = CATALOG.resolve("model", "llama-3.2-1b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(vram_bytes=24 * GiB))
    assert e.facts["build_default_n_ctx"] == e.context_tokens == 131072
    assert e.facts["context_source"] == "fit" and "keeps" in str(e.facts["context_reason"])
    assert _peak(e) <= 24 * GiB - 1024 * MiB


@pytest.mark.parametrize("vram_gib", [16, 20, 24])
def test_fit_shrinks_the_window_to_the_card_less_its_target(vram_gib):
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    opt = LlamaCppOptions(vram_bytes=vram_gib * GiB)
    answer = engine_estimate(spec, Request(dtype="q8_0"), "llama.cpp", opt)
    ctx = answer.facts["build_default_n_ctx"]
    assert isinstance(ctx, int) and LLAMACPP_FIT_MIN_CTX < ctx < 131072 and ctx % 256 == 0
    assert answer.context_tokens == ctx  # the answer is at the context the build takes
    # common/fit.cpp's secant, by hand from the two probes it measures (the window and 4096), one device
    full = engine_estimate(spec, Request(dtype="q8_0", context=131072), "llama.cpp", opt)
    least = engine_estimate(spec, Request(dtype="q8_0", context=4096), "llama.cpp", opt)
    target = vram_gib * GiB - 1024 * MiB
    expected = 4096 + (131072 - 4096) * (target - _peak(least)) // (_peak(full) - _peak(least))
    assert ctx == max(expected - expected % 256, 4096)
    # the secant over-states the memory between the two probes (the compute buffer grows slower than the
    # cache), so the context it picks fits; the next 256 cells' worth more would pass the card's budget
    at = engine_estimate(spec, Request(dtype="q8_0", context=ctx), "llama.cpp", opt)
    assert _peak(at) <= vram_gib * GiB - 1024 * MiB
    larger = engine_estimate(spec, Request(dtype="q8_0", context=ctx * 11 // 10), "llama.cpp", opt)
    assert _peak(larger) > vram_gib * GiB - 1024 * MiB


def test_when_even_4096_does_not_fit_fit_keeps_4096_and_moves_layers():
    """Step 3: the most layers (of n_layer + 1, the output layer counted) that meet the card less its target."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    opt = LlamaCppOptions(vram_bytes=8 * GiB)
    e = engine_estimate(spec, Request(dtype="bf16"), "llama.cpp", opt)
    assert e.facts["build_default_n_ctx"] == e.context_tokens == LLAMACPP_FIT_MIN_CTX
    ngl = e.facts["fit_gpu_layers"]
    assert isinstance(ngl, int) and 0 < ngl < 33
    assert any(f"moves {33 - ngl} of 33 layers to the host (-ngl {ngl}" in n for n in e.notes)
    budget = 8 * GiB - 1024 * MiB
    at = engine_estimate(spec, Request(dtype="bf16", context=4096), "llama.cpp", LlamaCppOptions(gpu_layers=ngl))
    more = engine_estimate(spec, Request(dtype="bf16", context=4096), "llama.cpp", LlamaCppOptions(gpu_layers=ngl + 1))
    assert _peak(at) <= budget < _peak(more)


def test_a_mixture_of_experts_moves_experts_first():
    """Step 3 on a MoE model keeps the MoE tensors in system memory first: as many layers' experts as
    --n-cpu-moe N moves, the fewest that meet the target."""
    spec = CATALOG.resolve("model", "mixtral-8x7b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(vram_bytes=24 * GiB))
    n = e.facts["fit_n_cpu_moe"]
    assert isinstance(n, int) and 0 < n < 32 and "fit_gpu_layers" not in e.facts
    budget = 24 * GiB - 1024 * MiB
    at = engine_estimate(spec, Request(dtype="q4_k_m", context=4096), "llama.cpp", LlamaCppOptions(n_cpu_moe=n))
    fewer = engine_estimate(spec, Request(dtype="q4_k_m", context=4096), "llama.cpp", LlamaCppOptions(n_cpu_moe=n - 1))
    assert _peak(at) <= budget < _peak(fewer)


def test_explicit_slots_are_streams_of_the_window_each():
    """-np 2 without -kvu: two streams, n_ctx_max = 2 x the window, the result a multiple of 256 x 2."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q8_0"), "llama.cpp", LlamaCppOptions(vram_bytes=16 * GiB, parallel=2))
    ctx = e.facts["build_default_n_ctx"]
    assert isinstance(ctx, int) and 2 * 4096 < ctx < 2 * 131072 and ctx % 512 == 0


def test_the_search_is_memoized_per_spec_request_and_options(monkeypatch):
    from willitrun.engines import llamacpp

    spec = CATALOG.resolve("model", "llama-3.1-8b")
    opt = LlamaCppOptions(vram_bytes=12 * GiB)
    first = engine_estimate(spec, Request(dtype="q8_0"), "llama.cpp", opt)
    calls = []
    monkeypatch.setattr(llamacpp, "_fit_context", lambda *a: calls.append(a))
    again = engine_estimate(spec, Request(dtype="q8_0"), "llama.cpp", opt)
    assert not calls and again.context_tokens == first.context_tokens


def test_a_given_context_is_left_alone(monkeypatch):
    from willitrun.engines import llamacpp

    monkeypatch.setattr(llamacpp, "fit_context", lambda *a: pytest.fail("no search with a context given"))
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q4_k_m", context=8192), "llama.cpp", LlamaCppOptions(vram_bytes=8 * GiB))
    assert "build_default_n_ctx" not in e.facts and e.context_tokens == 8192


def _cli(*args: str) -> tuple[int, dict]:
    import json

    from typer.testing import CliRunner

    from willitrun.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code in (0, 1, 5), r.output
    return r.exit_code, json.loads(r.stdout.splitlines()[0] if args[0] == "check" else r.stdout)


def test_fits_plan_is_the_answer_in_every_command():
    """70B q4_k_m on an RTX 4090 with no -c / -ngl: the whole model does not fit even at 4096, so the build keeps
    4096 and moves layers to the host (common/fit.cpp step 3) -- and starts. That plan is the answer (issue 19 §5:
    "an offload plan that fits exits as fitting, and the verdict says how"): FITS, exit 0, the launch line with its
    -ngl, the host side checked; check, gpus and ladder judge the same."""
    code, d = _cli("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--json")
    ngl = d["engine_facts"]["fit_gpu_layers"]
    assert code == 0 and d["verdict"] == "fits" and not d["fits"]  # fits: every layer on the GPU does not
    assert d["verdict_how"] == d["engine_plan"]["how"] and f"(-ngl {ngl})" in d["verdict_how"]
    assert d["need_bytes"] == d["engine_plan"]["gpu_bytes"] <= d["vram_bytes"] - 1024 * MiB
    assert d["host_memory"]["need_bytes"] == d["engine_plan"]["host_bytes"] and d["host_memory"]["fits"]
    argv = d["launch"]
    assert argv[argv.index("-ngl") + 1] == str(ngl) and argv[argv.index("-c") + 1] == "4096"
    # the plan, sized by hand: -ngl ngl at 4096 is within the card less the target, -ngl ngl + 1 is not
    spec = CATALOG.resolve("model", "llama-3.1-70b")
    at = engine_estimate(spec, Request(dtype="q4_k_m", context=4096), "llama.cpp", LlamaCppOptions(gpu_layers=ngl))
    assert at.max_device_bytes == d["need_bytes"]

    code_check, check = _cli("check", "llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--json")
    assert (code_check, check["verdict"], check["verdict_how"]) == (0, "fits", d["verdict_how"])
    _, table = _cli("gpus", "llama-3.1-70b", "--dtype", "q4_k_m", "--json")
    card = next(r for r in table["rows"] if r["gpu"] == "rtx4090")
    assert (card["verdict"], card["how"], card["cards_needed"]) == ("fits", d["verdict_how"], 2)
    _, ladder = _cli("ladder", "llama-3.1-70b", "--gpu", "rtx4090", "--json")
    row = next(r for r in ladder["rows"] if (r["dtype"], r["kv_dtype"]) == ("q4_k_m", "f16"))
    assert (row["verdict"], row["how"], row["total_bytes"]) == ("fits", d["verdict_how"], d["total_bytes"])


def test_a_context_given_keeps_the_old_answer():
    """With -c willitrun sizes the context asked with every layer on the GPU: DOES NOT FIT, exit 1, suggestions
    (--offload first). The build's own --fit would still run its layer step (common/fit.cpp: "context size set by
    user to %u -> no change", then step 3 unless n_gpu_layers was set): not taken as the answer at a given context."""
    code, d = _cli("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "-c", "4096", "--json")
    assert code == 1 and d["verdict"] == "does_not_fit" and d["verdict_how"] == "" and "engine_plan" not in d


def test_the_plans_decode_speed_reads_its_host_layers():
    """--speed on --fit's plan: the layers it moved are read from system memory (not every byte at GPU bandwidth)."""
    _, d = _cli("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--speed", "--json")
    host = next(t for t in d["decode_speed"]["terms"] if t["where"] == "system memory")
    assert host["bytes"] > 10 * GiB  # 36 of 81 layers of a 40 GiB file
    gpu = next(t for t in d["decode_speed"]["terms"] if t["where"] == "gpu")
    assert gpu["bytes"] <= d["engine_plan"]["gpu_bytes"]
