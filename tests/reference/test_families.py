"""Families with no catalog model yet, against Hugging Face transformers (tests/reference/families.json).

Idefics3 and SmolVLM have no checkpoint whose config.json could be read in full, so model_specs/ has none;
their arithmetic is still checked against transformers on the fixture specs in tests/reference/families/
(transformers class defaults plus a stated tower geometry). families.json is built by the same script as
reference.json (`build_reference.py --specs-dir tests/reference/families --output tests/reference/families.json`):
parameter counts of the full-size model on `meta`, and small CPU copies run on a real image through the
family's own image processor, with the prompt the processor writes. Every expected number is read from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from willitrun import estimate
from willitrun.dtypes import weight_dtype
from willitrun.files import read_yaml_mapping
from willitrun.memory import image_tokens_per_image, weight_components
from willitrun.specs import parse_model_spec

HERE = Path(__file__).resolve().parent
SPEC_DIR = HERE / "families"
REFERENCE = json.loads((HERE / "families.json").read_text())
MODELS = REFERENCE["models"]
CASES = [(mid, case) for mid, m in MODELS.items() for case in m["cases"]]
F32 = 4  # the small copies run in float32


def fixture_spec(model_id: str):
    return parse_model_spec(read_yaml_mapping(SPEC_DIR / f"{model_id}.yaml").data)


def small_spec(model_id: str, case: dict):
    return parse_model_spec(
        {
            "id": f"{model_id}-small",
            "name": "small copy",
            "architecture": MODELS[model_id]["architecture"],
            "dtype": "float32",
            "sources": {"config": "tests/reference/families.json"},
            "config": case["config"],
            "preprocessor": case["preprocessor"],
        }
    )


def test_every_fixture_is_in_the_reference():
    assert set(MODELS) == {p.stem for p in SPEC_DIR.glob("*.yaml")}
    assert REFERENCE["errors"] == {}
    assert {m["architecture"] for m in MODELS.values()} == {"idefics3", "smolvlm"}


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_parameter_counts_equal_transformers(model_id):
    ref = MODELS[model_id]["parameters"]
    e = estimate(fixture_spec(model_id))
    assert e.parameters == ref["total"]
    assert {c.name: c.parameters for c in e.components} == ref["components"]
    assert ref["lm_head_tied"] is False


@pytest.mark.parametrize(("model_id", "case"), CASES, ids=[f"{m}-{c['name']}" for m, c in CASES])
def test_small_copy_parameters(model_id, case):
    comps = weight_components(small_spec(model_id, case), weight_dtype("fp32"))
    assert {c.name: c.parameters for c in comps} == case["parameters"]["components"]


@pytest.mark.parametrize(("model_id", "case"), CASES, ids=[f"{m}-{c['name']}" for m, c in CASES])
def test_image_tokens_and_kv_cache_equal_what_transformers_holds(model_id, case):
    """The image's positions: the tokens of the prompt the processor writes for the crops its image
    processor returned (features checked against get_image_features); the cache the forward pass kept."""
    spec = small_spec(model_id, case)
    size = tuple(case["inputs"]["image_size"])
    assert image_tokens_per_image(spec, size) == case["image_tokens"]
    from willitrun.archs import idefics3

    assert idefics3.crops(spec, size) == case["image_crops"]
    assert list(idefics3.grid(spec, size)) == case["rows_cols"]
    assert idefics3.crops(spec, size) * spec.config.image_seq_len == case["image_features"]
    e = estimate(
        spec,
        context=case["inputs"]["text_tokens"] + case["image_tokens"],
        batch=1,
        kv_dtype="f32",
        dtype="fp32",
        images=1,
        image_size=size,
    )
    assert e.attention.self_layers == case["self_layers"]
    assert e.kv_self_bytes == case["kv_self_storage_elements"] * F32
    assert e.image_kv_bytes == case["image_tokens"] * case["kv_self_elements"] // case["self_positions"] * F32


@pytest.mark.rebuild  # minutes: deselected by default, `pytest -m rebuild` (CI) runs it
def test_committed_families_reference_is_what_transformers_produces():
    """Re-run build_reference.py --check on the fixtures (needs tests/reference/requirements.txt)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must install tests/reference/requirements.txt (torch, transformers)")
        pytest.skip("torch/transformers not installed (pip install -r tests/reference/requirements.txt)")
    p = subprocess.run(
        [
            sys.executable,
            str(HERE / "build_reference.py"),
            "--check",
            "--specs-dir",
            str(SPEC_DIR),
            "--output",
            str(HERE / "families.json"),
            "--jobs",
            str(min(2, os.cpu_count() or 1)),  # one process per core (CI has 2)
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
