"""The architecture registry: geometry read by the arithmetic, cached inventories, and the bounds
every count read from a file must respect (willitrun/limits.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from willitrun import archs, estimate, load_catalog
from willitrun.errors import UsageError
from willitrun.specs import parse_model_spec


def _spec_data(model_id: str) -> dict:
    spec = load_catalog().resolve("model", model_id)
    return spec.model_dump(exclude_unset=True)


def test_geometry_per_layer_roles():
    g = archs.geometry(load_catalog().resolve("model", "llama-3.2-11b-vision"))
    cross = [i for i, k in enumerate(g.cross_kv) if k is not None]
    assert cross == [i for i, k in enumerate(g.self_kv) if k is None]  # cross layers keep no self cache
    assert len(cross) == 8 and g.decoder_layers == 40
    mistral = archs.geometry(load_catalog().resolve("model", "mistral-7b"))
    assert {(k.kind, k.window) for k in mistral.self_layers} == {("sliding", 4096)}


def test_inventory_built_once_per_spec(monkeypatch):
    spec = parse_model_spec(_spec_data("llama-2-7b"))
    fam = archs.family(spec)
    calls = []
    original = fam.tensors

    def counting(s):
        calls.append(s)
        return original(s)

    monkeypatch.setitem(archs._LOADED, archs.FAMILIES[spec.architecture], replace(fam, tensors=counting))
    first = estimate(spec, context=1000)
    for context in (10, 2000, 4096):
        estimate(spec, context=context, dtype="q4_k_m")
        estimate(spec, context=context)
    assert len(calls) == 1
    assert estimate(spec, context=1000) == first


def test_cache_is_per_object():
    a = parse_model_spec(_spec_data("llama-2-7b"))
    data = _spec_data("llama-2-7b")
    data["config"]["num_hidden_layers"] = 2
    b = parse_model_spec(data)
    assert estimate(a).parameters != estimate(b).parameters


@pytest.mark.parametrize("value", [10**12, 2**63, 10**400, 1025])
def test_huge_layer_count_is_a_validation_error(value):
    data = _spec_data("llama-2-7b")
    data["config"]["num_hidden_layers"] = value
    with pytest.raises(ValidationError, match="num_hidden_layers"):
        parse_model_spec(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 10**400),
        ("hidden_size", 2**63),
        ("num_attention_heads", 10**6),
        ("max_position_embeddings", 10**30),
        ("intermediate_size", 2**40),
        ("head_dim", 2**20),
    ],
)
def test_every_count_is_bounded(field, value):
    data = _spec_data("llama-3-8b")
    data["config"][field] = value
    with pytest.raises(ValidationError, match=field):
        parse_model_spec(data)


def test_pinpoint_not_a_tile_multiple_is_refused():
    data = _spec_data("llava-1.6-mistral-7b")
    data["config"]["image_grid_pinpoints"] = [[1, 336]]
    with pytest.raises(ValidationError, match="image_grid_pinpoints"):
        parse_model_spec(data)


def test_huge_request_is_a_usage_error():
    spec = load_catalog().resolve("model", "llama-2-7b")
    for kwargs in ({"context": 10**400}, {"batch": 2**63}, {"beams": 10**6}):
        with pytest.raises(UsageError, match="maximum"):
            estimate(spec, **kwargs)


def test_whole_catalog_geometry_matches_attention():
    for spec in load_catalog().models():
        g = archs.geometry(spec)
        e = estimate(spec)
        assert e.attention.self_layers == len(g.self_layers)
        assert e.attention.cross_layers == len(g.cross_layers)


def _kinds(model_id: str, **config) -> str:
    data = _spec_data(model_id)
    data["config"].update(config)
    return "".join("s" if k.kind == "sliding" else "f" for k in archs.geometry(parse_model_spec(data)).self_layers)


def test_per_layer_attention_patterns():
    assert _kinds("gemma-2-2b") == "sf" * 13  # Gemma2Config: sliding when (i + 1) % 2
    assert _kinds("gemma-3-1b") == ("sssssf" * 5)[:26]  # sliding_window_pattern 6
    assert _kinds("gemma-3-1b", layer_types=["full_attention"] * 26) == "f" * 26
    assert _kinds("qwen2.5-7b") == "f" * 28  # use_sliding_window false
    assert _kinds("qwen2.5-7b", use_sliding_window=True, max_window_layers=20) == "f" * 20 + "s" * 8
    assert _kinds("phi-4") == "f" * 40 and _kinds("phi-3.5-mini") == "s" * 32


def test_layer_types_must_cover_every_layer():
    data = _spec_data("gemma-2-2b")
    data["config"]["layer_types"] = ["full_attention"] * 3
    with pytest.raises(ValidationError, match="layer_types has 3 entries for 26 layers"):
        parse_model_spec(data)


def test_transformers_kv_counts_every_position_of_sliding_layers():
    # Gemma 2 9B at 8192 tokens: the prefill peak holds the whole prompt in all 42 layers
    # (measured in tests/reference: kv_self_storage_elements), 2 x 8 x 256 x 2 B per position per layer.
    spec = load_catalog().resolve("model", "gemma-2-9b")
    assert estimate(spec, context=8192).kv_self_bytes == 42 * 2 * 8 * 256 * 2 * 8192


def test_layer_shares_of_the_cache_add_up_for_every_catalog_model():
    from willitrun.layers import layout
    from willitrun.memory import Request, estimate_resolved, resolve

    for spec in load_catalog().models():
        r = resolve(spec, Request())
        est = estimate_resolved(r, max(min(4000, r.att.hard_limit or 4000), r.image_tokens + 1), 1, 1)
        shares = layout(r).kv_per_layer(est)
        assert sum(shares) == est.kv_self_bytes + est.kv_cross_bytes + est.state_bytes, spec.id  # state too
