"""Encoders used alone (CLIP, SigLIP): no KV cache of any kind, activations by batch and images, and an
output that says there is no cache instead of printing a zero-sized one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun import archs, estimate, load_catalog
from willitrun.cli import app
from willitrun.errors import UsageError

runner = CliRunner()
CLIP = "clip-vit-large-patch14"
SIGLIP = "siglip-so400m-patch14-384"


def spec(model_id: str):
    return load_catalog().resolve("model", model_id)


def run(*args: str):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def stage_peak(tokens: int, hidden: int, inner: int, act: int = 4) -> int:
    """memory.stage_peak for an ungated SDPA layer: residual in/out + max(q, k, v, out; fc1 + activation)."""
    return 2 * hidden * tokens * act + max(4 * hidden * tokens * act, 2 * inner * tokens * act)


@pytest.mark.parametrize("model_id", [CLIP, SIGLIP])
def test_no_cache_at_all(model_id):
    s = spec(model_id)
    g = archs.geometry(s)
    assert g.encoder_only and g.decoder_layers == 0 and not g.cross_layers
    e = estimate(s, batch=8)
    assert not e.kv_cache and e.kv_self_bytes == e.kv_cross_bytes == e.state_bytes == 0
    assert e.total_bytes == e.weights_bytes + e.activations_bytes + e.overhead_bytes


def test_clip_activations_are_the_larger_tower_and_carry_no_logits():
    # CLIP ViT-L/14 (spec config): text 77 tokens x 768 wide, FFN 3072; vision 257 positions (256 patches +
    # the class token) x 1024, FFN 4096; float32 (4 bytes). No LM head, so no vocab x 4 logits on top.
    s = spec(CLIP)
    text = stage_peak(77, 768, 3072)
    vision = stage_peak(257, 1024, 4096)
    assert estimate(s, images=1).activations_bytes == max(text, vision) == vision == 10_526_720
    assert estimate(s, images=0).activations_bytes == text == 2_365_440
    # the towers run once per input: 16 inputs, 16 times the peak
    assert estimate(s, batch=16).activations_bytes == 16 * vision
    # the text is capped by the learned positions (77), and shorter text needs less
    assert estimate(s, images=0, context=10).activations_bytes == stage_peak(10, 768, 3072)


def test_siglip_vision_pass_has_no_class_token():
    # SigLIP so400m at 384 px, patch 14: 27 x 27 = 729 positions (no class token), 1152 wide, FFN 4304
    e = estimate(spec(SIGLIP), images=1)
    assert e.activations_bytes == stage_peak(729, 1152, 4304)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beams": 2}, "--beams does not apply"),
        ({"context": 78}, "learned positions for 77 tokens"),
    ],
)
def test_what_an_encoder_refuses(kwargs, message):
    with pytest.raises(UsageError, match=message):
        estimate(spec(CLIP), **kwargs)


def test_table_says_there_is_no_cache_and_no_largest_context():
    r = run(CLIP, "--gpu", "rtx3090")
    assert r.exit_code == 0, r.output
    assert "no KV cache" in r.stdout
    kv = next(line for line in r.stdout.splitlines() if line.startswith("KV cache"))
    assert kv.split()[2] == "none"
    assert "self-attention KV cache" not in r.stdout and "cross-attention KV cache" not in r.stdout
    assert "Largest context: does not apply" in r.stdout and "Largest context that fits" not in r.stdout


def test_json_says_there_is_no_cache():
    r = run(SIGLIP, "--gpu", "rtx3090", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["kv_cache"] is False and d["context_applies"] is False and d["memory_bounds_context"] is False
    assert d["kv_self_bytes"] == d["kv_cross_bytes"] == 0  # schema_version 2's keys stay, with no cache
    assert not [b for b in d["buffers"] if b["kind"] in ("kv_self", "kv_cross")]
    assert sum(b["bytes"] for b in d["buffers"]) == d["total_bytes"]


def test_json_of_a_decoder_still_has_a_cache():
    d = json.loads(run("llama-2-7b", "--gpu", "rtx3090", "--json").stdout)
    assert d["kv_cache"] is True and d["context_applies"] is True
    assert any(b["kind"] == "kv_self" for b in d["buffers"])


def test_check_table_says_no_cache():
    r = run("check", CLIP, "--gpu", "rtx3090")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith(CLIP))
    assert row.endswith("n/a (no KV cache)")


@pytest.mark.parametrize(
    "args",
    [
        ("--speed",),
        ("--offload",),
        ("--split", "layer"),
        ("--engine", "llama.cpp"),
        ("--engine", "vllm"),
        ("--engine", "ollama"),
        ("--dtype", "q4_k_m"),
    ],
)
def test_decoder_answers_and_engines_are_refused(args):
    r = run(CLIP, "--gpu", "rtx3090", *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_sweep_shows_no_kv_column():
    r = run("sweep", CLIP, "--gpu", "rtx3090")
    assert r.exit_code == 0, r.output
    header = next(line for line in r.stdout.splitlines() if line.startswith("context"))
    assert "KV" not in header.split()
    assert "No KV cache" in r.stdout and "Largest context" not in r.stdout


# ---- properties (hypothesis) ------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from([CLIP, SIGLIP]),
    batch=st.integers(1, 512),
    images=st.integers(0, 8),
    text=st.integers(1, 64),
    dtype=st.sampled_from(["fp32", "fp16", "int8"]),
)
def test_an_encoder_is_weights_activations_and_overhead_only(model, batch, images, text, dtype):
    """Whatever the request, nothing is cached, the parts add up, and one more input never needs less."""
    s = spec(model)
    e = estimate(s, batch=batch, images=images, context=text, dtype=dtype)
    assert not e.kv_cache and e.kv_self_bytes == e.kv_cross_bytes == e.state_bytes == 0
    assert e.total_bytes == e.weights_bytes + e.activations_bytes + e.overhead_bytes
    more = estimate(s, batch=batch + 1, images=images, context=text, dtype=dtype)
    assert more.total_bytes >= e.total_bytes and more.weights_bytes == e.weights_bytes
    assert estimate(s, batch=batch, images=images + 1, context=text, dtype=dtype).total_bytes >= e.total_bytes
