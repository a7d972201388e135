"""The catalog against Hugging Face transformers itself (tests/reference/reference.json).

Every expected number here is read from reference.json, which build_reference.py produced by
building each model with transformers on the meta device (parameter counts) and running small
random-weight copies on the CPU (the KV cache elements transformers really holds). The last test
re-runs that script and checks the committed file is what transformers produces now.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from willitrun import archs, estimate, load_catalog
from willitrun.archs.florence2 import image_tokens_of
from willitrun.catalog import load_spec
from willitrun.dtypes import weight_dtype
from willitrun.memory import image_tokens_per_image, weight_components
from willitrun.specs import parse_model_spec

JOBS = str(min(2, os.cpu_count() or 1))  # build_reference.py --jobs: one process per core (CI has 2)
HERE = Path(__file__).resolve().parent
REFERENCE = json.loads((HERE / "reference.json").read_text())
MODELS = REFERENCE["models"]
CASES = [(mid, case) for mid, m in MODELS.items() for case in m["cases"]]
F32 = 4  # the small copies run in float32: bytes = elements x 4
# issue 20 (fammm): families whose image tokens sit in the self-attention context, sized per image
# (build_reference.FAMMM_IMAGE_IN_CONTEXT, repeated so this test needs no torch)
FAMMM_IMAGE_IN_CONTEXT = ("qwen3_vl", "qwen3_vl_moe", "glm4v", "glm4v_moe", "internvl", "qwen3_5", "qwen3_5_moe")
FAMMM_IMAGE_IN_CONTEXT += ("llama4",)  # session 6 (mmvision): Llama 4 multimodal
# Families with no catalog model yet are measured on test shapes (build_reference.FAMILY_SPEC_DIR).
FAMILY_SPECS = {p.stem: p for p in sorted((HERE / "family_specs").glob("*.yaml"))}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def full_spec(model_id: str):
    if model_id in FAMILY_SPECS:
        return load_spec(FAMILY_SPECS[model_id], "model")
    return load_catalog().resolve("model", model_id)


def test_reference_covers_the_whole_catalog():
    assert set(MODELS) == set(load_catalog().files("model")) | set(FAMILY_SPECS)
    assert not set(FAMILY_SPECS) & set(load_catalog().files("model"))
    assert REFERENCE["errors"] == {}


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_parameter_counts_equal_transformers(model_id):
    ref = MODELS[model_id]["parameters"]
    e = estimate(full_spec(model_id))
    assert e.parameters == ref["total"]
    assert {c.name: c.parameters for c in e.components} == ref["components"]


def small_spec(model_id: str, case: dict):
    extra = {"preprocessor": case["preprocessor"]} if "preprocessor" in case else {}  # Florence-2's image size
    return parse_model_spec(
        {
            "id": f"{model_id}-small",
            "name": "small copy",
            "architecture": MODELS[model_id]["architecture"],
            "dtype": "float32",
            "sources": {"config": "tests/reference/reference.json"},
            "config": case["config"],
            **extra,
        }
    )


@pytest.mark.parametrize(("model_id", "case"), CASES, ids=[f"{m}-{c['name']}" for m, c in CASES])
def test_small_copy_parameters(model_id, case):
    comps = weight_components(small_spec(model_id, case), weight_dtype("fp32"))
    assert sum(c.parameters for c in comps) == case["parameters"]["total"]
    assert {c.name: c.parameters for c in comps} == case["parameters"]["components"]


@pytest.mark.parametrize(("model_id", "case"), CASES, ids=[f"{m}-{c['name']}" for m, c in CASES])
def test_kv_cache_equals_what_transformers_holds(model_id, case):
    spec = small_spec(model_id, case)
    inputs = case["inputs"]
    kwargs = {"batch": inputs["batch"], "kv_dtype": "f32", "dtype": "fp32"}
    context = inputs["text_tokens"]
    if spec.architecture in (
        "llava",
        "llava_next",
        "qwen2_vl",
        "qwen2_5_vl",
        "gemma3",
        "paligemma",
        "mistral3",
        "llava_onevision",
        "idefics3",
        "smolvlm",
        *FAMMM_IMAGE_IN_CONTEXT,
    ):
        size = (
            tuple(inputs["image_size"])
            if spec.architecture
            in (
                "llava_next",
                "qwen2_vl",
                "qwen2_5_vl",
                "mistral3",
                "llava_onevision",
                "idefics3",
                "smolvlm",
                *FAMMM_IMAGE_IN_CONTEXT,
            )
            else None
        )
        # the image token count is transformers' own (its feature extraction), not a formula
        assert image_tokens_per_image(spec, size) == case["image_tokens"]
        context += case["image_tokens"]
        kwargs.update(images=inputs["images"], image_size=size)
    if spec.architecture == "mllama":
        kwargs.update(images=inputs["images"])
    if spec.architecture == "florence2":
        # the image's tokens (counted by transformers' get_image_features) and the prompt's share the
        # BART encoder, so its cross cache covers both
        assert image_tokens_of(spec) == case["image_tokens"]
        kwargs.update(images=inputs["images"], encoder_tokens=inputs["encoder_tokens"])
    if spec.architecture in (
        "t5",
        "mt5",
        "bart",
        "mbart",
        "m2m_100",
        "marian",
        "pegasus",
        "pix2struct",
        "moonshine",
    ):  # pix2struct: max_patches
        kwargs.update(encoder_tokens=inputs["encoder_tokens"])
    e = estimate(spec, context=context, **kwargs)
    assert e.attention.self_layers == case["self_layers"]
    assert e.attention.cross_layers == case["cross_layers"]
    # the storage the cache keeps alive: equal to the cached tensors' elements, except right after
    # a prefill longer than a sliding window, where the view keeps the whole prompt's storage
    assert e.kv_self_bytes == case["kv_self_storage_elements"] * F32
    assert e.kv_cross_bytes == case["kv_cross_storage_elements"] * F32
    if case["cross_layers"]:
        assert e.cross_source_tokens == case["cross_positions"]
    # CLIP / SigLIP: the model returned no cache object at all (cache_class None), and the estimate says
    # there is none rather than a zero-sized one
    assert e.kv_cache is (case.get("cache_class", "") is not None)


STATE_CASES = [(mid, case) for mid, case in CASES if case.get("state_layers")]


@pytest.mark.parametrize(("model_id", "case"), STATE_CASES, ids=[f"{m}-{c['name']}" for m, c in STATE_CASES])
def test_recurrent_state_equals_what_transformers_holds(model_id, case):
    """State-space layers: conv and SSM state per sequence, whatever the context (issue 10)."""
    spec = small_spec(model_id, case)
    inputs = case["inputs"]
    text_only = {"images": 0} if archs.geometry(spec).takes_images else {}  # Qwen3.5: the state has no image part
    for context in (inputs["text_tokens"], 10 * inputs["text_tokens"]):
        e = estimate(spec, context=context, batch=inputs["batch"], kv_dtype="f32", dtype="fp32", **text_only)
        assert e.state_bytes == (case["conv_state_elements"] + case["ssm_state_elements"]) * F32


@pytest.mark.parametrize(("model_id", "case"), STATE_CASES, ids=[f"{m}-{c['name']}" for m, c in STATE_CASES])
def test_recurrent_state_dtypes_equal_what_transformers_holds(model_id, case):
    """In a bfloat16 run transformers keeps the conv state in bfloat16 and the SSM state in the dtype
    its scan computed it in (float32): the bf16 estimate prices each part at the measured dtype."""
    dtypes = case["state_dtypes_bf16"]
    # a short convolution (LFM2) keeps a conv state and no SSM state
    assert len(dtypes["conv"]) == 1 and len(dtypes["ssm"]) == (1 if case["ssm_state_elements"] else 0)
    spec = small_spec(model_id, case)
    assert archs.geometry(spec).ssm_state_f32 == (dtypes["ssm"] == ["float32"])
    inputs = case["inputs"]
    text_only = {"images": 0} if archs.geometry(spec).takes_images else {}
    e = estimate(spec, context=inputs["text_tokens"], batch=inputs["batch"], dtype="bf16", kv_dtype="bf16", **text_only)
    assert e.state_bytes == (
        case["conv_state_elements"] * DTYPE_BYTES[dtypes["conv"][0]]
        + (case["ssm_state_elements"] * DTYPE_BYTES[dtypes["ssm"][0]] if dtypes["ssm"] else 0)
    )


def _pinned() -> dict[str, str]:
    """name -> version of tests/reference/requirements.txt's `name==version` lines."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line.split("#")[0])


@pytest.mark.parametrize("name", ["reference.json", "families.json"])
def test_committed_reference_was_built_with_the_pinned_versions(name):
    """The cheap check, on every run: the committed reference says it was built with the torch and
    transformers that requirements.txt pins (the rebuild below, `pytest -m rebuild`, re-derives it)."""
    versions = json.loads((HERE / name).read_text())["versions"]
    pins = _pinned()
    assert versions == {k: pins[k] for k in ("torch", "transformers")}


@pytest.mark.rebuild  # minutes: deselected by default, `pytest -m rebuild` (CI) runs it
def test_committed_reference_is_what_transformers_produces():
    """Re-run build_reference.py --check (needs tests/reference/requirements.txt installed)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must install tests/reference/requirements.txt (torch, transformers)")
        pytest.skip("torch/transformers not installed (pip install -r tests/reference/requirements.txt)")
    p = subprocess.run(
        [sys.executable, str(HERE / "build_reference.py"), "--check", "--jobs", JOBS], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


FP32_KEPT = [mid for mid, m in MODELS.items() if m.get("keep_in_fp32")]


@pytest.mark.parametrize("model_id", FP32_KEPT)
def test_fp16_weights_keep_transformers_fp32_modules(model_id):
    """`_keep_in_fp32_modules` (T5: ["wo"]; gpt-oss: its norms), as transformers matches them: those
    parameters take 4 bytes in a float16 load, the rest 2."""
    ref = MODELS[model_id]
    kept, total = ref["keep_in_fp32"]["parameters"], ref["parameters"]["total"]
    spec = full_spec(model_id)  # DeepSeek-V3.2's indexer.weights_proj: a family test shape
    assert estimate(spec, dtype="fp16").weights_bytes == 2 * (total - kept) + 4 * kept
    assert estimate(spec, dtype="bf16").weights_bytes == 2 * total  # the rule applies to float16 only
