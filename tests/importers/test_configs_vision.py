"""config.json import of the vision-language families Gemma 3, PaliGemma and Mistral 3 (issue 11).

Parameter counts are transformers' own (the model built on the meta device from the same file), the
default tables are read back from transformers' classes, and the research configs of
docs/research/issue11/ import to the catalog spec's estimate (the keys they lack are named per test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.importers.helpers import transformers_parameters, write_config
from willitrun import SpecError, estimate
from willitrun.archs.gemma3 import GEMMA3
from willitrun.archs.mistral3 import _MISTRAL3_TEXT_INIT, _MISTRAL3_VISION_INIT, MISTRAL3, PIXTRAL_VISION
from willitrun.archs.paligemma import _PALIGEMMA_TEXT_INIT, _PALIGEMMA_VISION_INIT, PALIGEMMA
from willitrun.archs.siglip import SIGLIP_VISION
from willitrun.catalog import load_spec
from willitrun.importers import spec_from_config, spec_from_path, write_spec_yaml
from willitrun.validate import validate_file

RESEARCH = Path(__file__).resolve().parents[2] / "docs" / "research" / "issue11"
IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SMALL_SIGLIP = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
    "vision_use_head": False,
}
SMALL_GEMMA = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    **IDS,
}
SMALL_PIXTRAL = {
    "model_type": "pixtral",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
}

CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "gemma3-small",
        {
            "model_type": "gemma3",
            "mm_tokens_per_image": 4,
            "image_token_index": 299,
            "boi_token_index": 297,
            "eoi_token_index": 298,
            "text_config": {**SMALL_GEMMA, "sliding_window": 32},
            "vision_config": SMALL_SIGLIP,
        },
    ),
    (
        "gemma3-vision-head-default",
        {
            "model_type": "gemma3",
            "mm_tokens_per_image": 4,
            "image_token_index": 299,
            "text_config": SMALL_GEMMA,
            "vision_config": {k: v for k, v in SMALL_SIGLIP.items() if k != "vision_use_head"},
        },
    ),
    (
        "paligemma-gemma",
        {
            "model_type": "paligemma",
            "projection_dim": 64,
            "image_token_index": 299,
            "text_config": {"model_type": "gemma", **SMALL_GEMMA},
            "vision_config": SMALL_SIGLIP,
        },
    ),
    (
        "paligemma2-gemma2",
        {
            "model_type": "paligemma",
            "projection_dim": 64,
            "image_token_index": 299,
            "text_config": {"model_type": "gemma2", **SMALL_GEMMA, "sliding_window": 32},
            "vision_config": SMALL_SIGLIP,
        },
    ),
    ("paligemma-all-defaults", {"model_type": "paligemma", "dtype": "bfloat16"}),
    (
        "mistral3-small",
        {
            "model_type": "mistral3",
            "image_token_index": 299,
            "tie_word_embeddings": False,
            "text_config": {"model_type": "mistral", **SMALL_GEMMA, "sliding_window": None},
            "vision_config": SMALL_PIXTRAL,
        },
    ),
    (
        "mistral3-llama-text",
        {
            "model_type": "mistral3",
            "image_token_index": 299,
            "vision_feature_layer": [-1, -2],
            "text_config": {"model_type": "llama", **SMALL_GEMMA},
            "vision_config": SMALL_PIXTRAL,
        },
    ),
    ("mistral3-all-defaults", {"model_type": "mistral3", "dtype": "bfloat16"}),
]


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_equal_transformers(tmp_path, case_id, config):
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    assert estimate(spec).parameters == transformers_parameters(path.parent)


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_written_yaml_is_strictly_valid_and_reloads(tmp_path, case_id, config):
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    target = tmp_path / "specs" / "model_specs" / f"{spec.id}.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(write_spec_yaml(spec, str(path)))
    kind, loaded, errors, warnings = validate_file(target)
    assert (kind, errors, warnings) == ("model", [], [])
    assert loaded == load_spec(target, "model") == spec
    assert estimate(loaded) == estimate(spec)


@pytest.mark.parametrize("table", [SIGLIP_VISION, PIXTRAL_VISION, GEMMA3, PALIGEMMA, MISTRAL3], ids=lambda t: t.name)
def test_default_tables_equal_transformers(table):
    tf = pytest.importorskip("transformers")
    config = getattr(tf, table.name)()
    for field, default in table.defaults.items():
        assert getattr(config, field) == default, f"{table.name}.{field}"


@pytest.mark.parametrize(
    ("name", "key", "init"),
    [
        ("PaliGemmaConfig", "vision_config", _PALIGEMMA_VISION_INIT),
        ("PaliGemmaConfig", "text_config", _PALIGEMMA_TEXT_INIT),
        ("Mistral3Config", "vision_config", _MISTRAL3_VISION_INIT),
        ("Mistral3Config", "text_config", _MISTRAL3_TEXT_INIT),
    ],
)
def test_sub_config_init_kwargs_equal_transformers(name, key, init):
    """Without the sub-config, transformers builds it from sub_configs_defaults' init_kwargs."""
    tf = pytest.importorskip("transformers")
    sub = getattr(getattr(tf, name)(), key)
    for field, value in init.items():
        assert getattr(sub, field) == value, f"{name}.{key}.{field}"


def test_absent_sub_configs_take_the_init_kwargs():
    spec = spec_from_config({"model_type": "mistral3"}, "test")
    assert spec.config.vision_config.image_size == 1540 and spec.config.vision_config.patch_size == 14
    assert spec.config.text_config.num_hidden_layers == 40 and spec.config.text_config.sliding_window is None
    assert spec.sources["config.vision_config.image_size"].endswith("mistral3/configuration_mistral3.py")
    # a vision_config dict gets PixtralVisionConfig's own defaults instead (patch 16, 1024 px)
    spec = spec_from_config({"model_type": "mistral3", "vision_config": {"model_type": "pixtral"}}, "test")
    assert (spec.config.vision_config.patch_size, spec.config.vision_config.image_size) == (16, 1024)
    assert spec.sources["config.vision_config.patch_size"].endswith("pixtral/configuration_pixtral.py")


def test_defaults_taken_are_warned():
    spec = spec_from_config(
        {
            "model_type": "gemma3",
            "text_config": {"hidden_size": 2560},
            "vision_config": {
                "hidden_size": 1152,
                "image_size": 896,
                "intermediate_size": 4304,
                "num_attention_heads": 16,
                "num_hidden_layers": 27,
                "patch_size": 14,
            },
        },
        "test",
    )
    warning = (spec.notes or "").split(". ")[0]
    for field in ("text_config.num_attention_heads", "text_config.head_dim", "text_config.vocab_size"):
        assert field in warning
    assert "vision_use_head" in (spec.notes or "")  # SiglipVisionConfig's default head: said


def test_unpoolable_gemma3_default_is_warned_not_refused():
    # SiglipVisionConfig's defaults (224 px / 16) leave 14 patches a side, which 256 tokens (16 a side) cannot
    # pool; transformers builds Gemma3ForConditionalGeneration from it all the same (issue 20: warn, not refuse)
    spec = spec_from_config({"model_type": "gemma3"}, "test")
    assert "Warning: mm_tokens_per_image (256) is not a square whose side divides the 14 patches" in (spec.notes or "")


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"model_type": "paligemma", "text_config": {"model_type": "llama"}}, "text_config.model_type 'llama'"),
        (
            {"model_type": "mistral3", "vision_config": {"model_type": "siglip_vision_model"}},
            "vision_config.model_type",
        ),
    ],
)
def test_bad_vision_configs_fail_in_one_line(config, words):
    from willitrun import UsageError

    with pytest.raises((SpecError, UsageError)) as err:
        spec_from_config(config, "test")
    assert words in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------------
# The research configs give the catalog's estimate
# --------------------------------------------------------------------------------------------------
def _research(model_id: str) -> dict[str, Any]:
    return yaml.safe_load((RESEARCH / f"{model_id}.yaml").read_text())["config"]


# Fields the catalog spec writes out that the import leaves at None, read by no size arithmetic: Gemma 3's
# activation name (config.json omits it; Gemma3TextConfig's default gelu_pytorch_tanh), Pixtral's head_dim
# (PixtralVisionConfig.__post_init__ derives hidden_size // num_attention_heads whatever the file says).
UNREAD = {
    "gemma-3-4b": {("text_config", "hidden_activation")},
    "mistral-small-3.1-24b": {("vision_config", "head_dim")},
}


def _same_estimate(catalog, model_id: str, config: dict[str, Any]) -> None:
    imported = spec_from_config(config, f"docs/research/issue11/{model_id}.yaml")
    spec = catalog.resolve("model", model_id)
    assert estimate(imported).parameters == estimate(spec).parameters
    assert estimate(imported).total_bytes == estimate(spec).total_bytes
    a, b = imported.config.model_dump(), spec.config.model_dump()
    for sub, field in UNREAD.get(model_id, set()):
        assert a[sub][field] is None and b[sub][field] is not None
        del a[sub][field], b[sub][field]
    assert a == b


def test_gemma_3_4b_research_config_gives_the_catalog_estimate(catalog):
    # the verbatim config: 4,300,079,472 parameters (the checkpoint's declared total)
    _same_estimate(catalog, "gemma-3-4b", _research("gemma-3-4b"))
    assert estimate(catalog.resolve("model", "gemma-3-4b")).parameters == 4_300_079_472


def test_paligemma2_3b_research_config_gives_the_catalog_estimate(catalog):
    # the copy stops after vision_config.num_hidden_layers; the catalog spec cites the rest
    # (patch_size 14 and vision_use_head false from the 448 px siblings, image_size 224 from the name)
    config = _research("paligemma2-3b")
    config["vision_config"] |= {"patch_size": 14, "image_size": 224, "vision_use_head": False}
    _same_estimate(catalog, "paligemma2-3b", config)


def test_mistral_small_3_1_research_config_gives_the_catalog_estimate(catalog):
    config = _research("mistral-small-3.1-24b")
    imported = spec_from_config(config, "research")
    # without the flag transformers ties the head: one 131072 x 5120 matrix fewer than the checkpoint stores
    spec = catalog.resolve("model", "mistral-small-3.1-24b")
    assert estimate(spec).parameters - estimate(imported).parameters == 131072 * 5120
    assert "lm_head.weight" in (imported.notes or "")
    # with the checkpoint's separate head (the catalog's tie_word_embeddings false): the catalog's estimate
    _same_estimate(catalog, "mistral-small-3.1-24b", {**config, "tie_word_embeddings": False})
    assert estimate(spec).parameters == 24_011_361_280  # keras-hub's declared total for the architecture
