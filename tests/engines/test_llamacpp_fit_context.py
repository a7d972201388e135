"""What a llama.cpp build takes when -c is not given: 4096 before --fit; from --fit (ggml-org/llama.cpp PR #16653,
mid-December 2025) the trained window, which common/fit.cpp shrinks to what fits the card less its target
(1024 MiB): measured at n_ctx_train and at fit_params_min_ctx (4096), interpolated linearly, rounded down to a
multiple of 256 x n_streams, never below 4096 (the PR's log: "context size reduced from 65536 to 4096")."""

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


def test_without_a_card_the_build_takes_the_trained_window():
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions())
    assert e.facts["build_default_n_ctx"] == 131072
    assert e.context_tokens == 4096  # the answer stays at --context's default (every command the same)


def test_what_fits_is_kept_whole():
    spec = CATALOG.resolve("model", "llama-3.2-1b")
    e = engine_estimate(spec, Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(vram_bytes=24 * GiB))
    assert e.facts["build_default_n_ctx"] == 131072


@pytest.mark.parametrize("vram_gib", [16, 20, 24])
def test_fit_shrinks_the_window_to_the_card_less_its_target(vram_gib):
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    opt = LlamaCppOptions(vram_bytes=vram_gib * GiB)
    ctx = engine_estimate(spec, Request(dtype="q8_0"), "llama.cpp", opt).facts["build_default_n_ctx"]
    assert isinstance(ctx, int) and LLAMACPP_FIT_MIN_CTX < ctx < 131072 and ctx % 256 == 0
    # the secant over-states the memory between the two probes (the compute buffer grows slower than the
    # cache), so the context it picks fits; the next 256 cells' worth more would pass the card's budget
    at = engine_estimate(spec, Request(dtype="q8_0", context=ctx), "llama.cpp", opt)
    assert _peak(at) <= vram_gib * GiB - 1024 * MiB
    larger = engine_estimate(spec, Request(dtype="q8_0", context=ctx * 11 // 10), "llama.cpp", opt)
    assert _peak(larger) > vram_gib * GiB - 1024 * MiB


def test_when_even_4096_does_not_fit_fit_keeps_4096():
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="bf16"), "llama.cpp", LlamaCppOptions(vram_bytes=8 * GiB))
    assert e.facts["build_default_n_ctx"] == LLAMACPP_FIT_MIN_CTX
    assert any("moves layers to the host" in n for n in e.notes)


def test_a_given_context_is_left_alone():
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(dtype="q4_k_m", context=8192), "llama.cpp", LlamaCppOptions(vram_bytes=8 * GiB))
    assert "build_default_n_ctx" not in e.facts
