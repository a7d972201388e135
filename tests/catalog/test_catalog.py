"""Every shipped spec loads and validates; ids are what the design promises."""

from pathlib import Path

import pytest

from willitrun.catalog import bundled_root, load_spec
from willitrun.validate import unsourced, validate_paths

ROOT = Path(__file__).resolve().parents[2]
MODEL_IDS = [
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.2-11b-vision",
    "llama-3.2-90b-vision",
    "mistral-7b",
    "llava-1.5-7b",
    "llava-1.5-13b",
    "llava-1.6-mistral-7b",
    "t5-small",
    "t5-base",
    "t5-large",
    "t5-3b",
    "t5-11b",
    "flan-t5-base",
    "flan-t5-xl",
    "flan-t5-xxl",
    "whisper-tiny",
    "whisper-base",
    "whisper-small",
    "whisper-medium",
    "whisper-large-v2",
    "whisper-large-v3",
    "whisper-large-v3-turbo",
]
GPU_IDS = [
    "rtx3090",
    "rtx4090",
    "rtx4080",
    "rtx3060",
    "rtx4060-ti-16gb",
    "a100-80gb",
    "h100-sxm",
    "h200",
    "m2-max-96gb",
]


def test_bundled_root_in_a_checkout_is_the_repository():
    # editable install / source checkout: no willitrun/_data, so the repository root
    assert bundled_root() == ROOT


def test_catalog_has_the_seed_models(catalog):
    assert set(MODEL_IDS) <= set(catalog.files("model"))


def test_catalog_has_enough_gpus(catalog):
    gpus = catalog.gpus()
    assert len(gpus) >= 60  # issue 18: at least 60 cards, the ones people buy for local models in 2025-2026
    assert set(GPU_IDS) <= {g.id for g in gpus}
    vendors = {g.vendor for g in gpus}
    assert vendors == {"nvidia", "amd", "apple", "intel"}
    # the cards issue 18 names
    assert {
        "dgx-spark",
        "ryzen-ai-max-395-128gb",
        "m3-ultra-512gb",
        "rtx-pro-6000-blackwell",
        "mi325x",
        "mi355x",
        "rx-9070-xt",
        "arc-b580",
        "arc-a770-16gb",
        "tesla-p40",
        "tesla-p100-16gb",
        "rtx3090-ti",
    } <= {g.id for g in gpus}


def test_unified_memory_cards(catalog):
    """CPU and GPU share one memory on Apple chips, DGX Spark and Strix Halo; only there may a spec give the GPU's
    share, and the capacity a fit is judged against is that share (Strix Halo: 108 of 128 GB, its spec's source)."""
    halo = catalog.resolve("gpu", "strix-halo")
    assert halo.unified and halo.capacity_bytes == int(128 * 2**30 * 0.84375)
    spark = catalog.resolve("gpu", "dgx-spark")
    assert spark.unified and spark.capacity_bytes == 124610 * 2**20  # CUDA's total, MiaAI-Lab issue 47
    assert catalog.resolve("gpu", "m3-ultra-512gb").unified
    assert not catalog.resolve("gpu", "rtx4090").unified


@pytest.mark.parametrize(
    ("alias", "model_id"), [("llava-7b", "llava-1.5-7b"), ("llava-13b", "llava-1.5-13b"), ("LLAMA-2-7B", "llama-2-7b")]
)
def test_aliases(catalog, alias, model_id):
    assert catalog.resolve("model", alias).id == model_id


def test_every_spec_valid_and_sourced():
    errors, warnings, notes, checked = validate_paths(None)
    assert errors == [] and warnings == [] and notes == []
    assert checked == len(list((ROOT / "model_specs").glob("*.yaml"))) + len(
        list((ROOT / "hardware_specs").glob("*.yaml"))
    )


def test_declared_totals_match_derived(catalog):
    from willitrun import estimate

    for spec in catalog.models():
        if spec.parameters_declared:
            assert estimate(spec).parameters == spec.parameters_declared, spec.id


def test_gpu_memory_is_what_the_driver_reports(catalog):
    # RTX 3090: 24576 MiB as nvidia-smi prints it = 24 GiB
    assert catalog.resolve("gpu", "rtx3090").capacity_bytes == 24576 << 20
    # Apple: unified memory x the GPU's default share (recommendedMaxWorkingSetSize): 96 GiB x 0.75
    assert catalog.resolve("gpu", "m2-max-96gb").capacity_bytes == int(96 * (1 << 30) * 0.75)


def test_unsourced_numbers_are_found():
    data = {"sources": {"config": "x"}, "config": {"a": 1}, "memory_gib": 3, "name": "n"}
    assert unsourced(data) == [("memory_gib",)]
    assert unsourced({**data, "sources": {"config": "x", "memory_gib": "y"}}) == []


def test_id_must_match_file_name(tmp_path):
    src = (ROOT / "hardware_specs" / "rtx3090.yaml").read_text()
    bad = tmp_path / "hardware_specs" / "rtx9999.yaml"
    bad.parent.mkdir()
    bad.write_text(src)
    from willitrun import SpecError

    with pytest.raises(SpecError, match=r"rtx9999.yaml:1: id: 'rtx3090' does not match the file name"):
        load_spec(bad, "gpu")


def test_gpu_memory_fraction_only_on_unified_memory():
    """A discrete card's memory is its own: a share of it makes no sense and is refused; on unified memory it is allowed
    (and required on Apple, whose default Metal share is always below the total)."""
    from pydantic import ValidationError

    from willitrun.specs import GPUSpec

    base = {
        "id": "x",
        "name": "X",
        "vendor": "nvidia",
        "segment": "consumer",
        "memory_gib": 24,
        "memory_as_stated": "24 GB",
        "memory_type": "GDDR6",
        "bandwidth_gb_s": 900.0,
        "architecture": "A",
        "sources": {"memory_gib": "test"},
    }
    with pytest.raises(ValidationError, match="unified memory only"):
        GPUSpec(**{**base, "gpu_memory_fraction": 0.5})
    assert GPUSpec(**{**base, "gpu_memory_fraction": 0.5, "unified_memory": True}).capacity_bytes == 12 * 2**30
    with pytest.raises(ValidationError, match="required for Apple"):
        GPUSpec(**{**base, "vendor": "apple", "segment": "apple"})
