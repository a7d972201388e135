"""Real config.json files of popular models, answered with transformers' exact count (issue 20 "Done when").

tests/importers/data/real_configs holds verbatim config.json files of published checkpoints (2025-2026; the
SOURCES file there says where each was read). tests/reference/real_configs.json is what transformers says about
each (tests/reference/build_real_configs.py: the checkpoint's class built on the meta device, its parameters
counted; its caches measured by a short forward pass). Each config is imported as a user would
(`willitrun import config.json`) and must give that exact parameter count, and the same KV cache and recurrent
state bytes as the measured caches; a config transformers cannot build without the model's own code is refused
in one line. No expected number is typed in here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from willitrun import archs, estimate
from willitrun.errors import SpecError, UsageError
from willitrun.importers import spec_from_path
from willitrun.importers.configs import build_spec

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "data" / "real_configs"
REFERENCE = json.loads((HERE.parent / "reference" / "real_configs.json").read_text())["models"]
NAMES = sorted(p.stem for p in CONFIGS.glob("*.json"))
ANSWERED = [n for n in NAMES if "parameters" in REFERENCE.get(n, {})]
MEASURED = [n for n in NAMES if "caches" in REFERENCE.get(n, {})]
REFUSED = [n for n in NAMES if "refused" in REFERENCE.get(n, {})]


def test_every_real_config_is_recorded_and_sourced():
    assert len(NAMES) >= 16
    assert set(NAMES) == set(REFERENCE)  # tests/reference/build_real_configs.py covers every file
    sources = (CONFIGS / "SOURCES").read_text().splitlines()
    listed = {line.split("\t")[0].removesuffix(".json") for line in sources if line and not line.startswith("#")}
    assert listed == set(NAMES)


@pytest.mark.parametrize("name", ANSWERED)
def test_parameters_equal_transformers(name):
    spec, _ = spec_from_path(CONFIGS / f"{name}.json")
    if spec.architecture == "generic":  # transformers as the oracle: only for a model_type without a family
        assert spec.config.source_architecture not in archs.FAMILIES
    assert estimate(spec).parameters == REFERENCE[name]["parameters"]


@pytest.mark.parametrize("name", MEASURED)
@pytest.mark.parametrize("context", [1000, 40_000])
def test_caches_equal_the_measured_ones(name, context):
    """KV cache and recurrent state at a short and a long context, against the caches transformers returned
    from a forward pass (recorded as the oracle's `generic` config block: each layer's kind and widths)."""
    spec, _ = spec_from_path(CONFIGS / f"{name}.json")
    measured = build_spec(
        {
            "id": name,
            "name": name,
            "architecture": "generic",
            "dtype": spec.dtype,
            "sources": {"config": "tests/reference/real_configs.json"},
            "config": REFERENCE[name]["caches"],
        },
        "tests/reference/real_configs.json",
    )
    ours, theirs = (estimate(s, context=context, images=0) for s in (spec, measured))
    assert (ours.kv_self_bytes, ours.state_bytes) == (theirs.kv_self_bytes, theirs.state_bytes)


@pytest.mark.parametrize("name", REFUSED)
def test_what_transformers_cannot_build_is_refused_in_one_line(name):
    with pytest.raises((UsageError, SpecError)) as exc:
        spec_from_path(CONFIGS / f"{name}.json")
    assert "\n" not in str(exc.value)


def test_recorded_with_the_pinned_versions():
    """The cheap check, on every run: real_configs.json was built with the torch and transformers that
    tests/reference/requirements.txt pins (the rebuild below re-derives it)."""
    reference = HERE.parent / "reference"
    versions = json.loads((reference / "real_configs.json").read_text())["versions"]
    lines = (reference / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("#")[0].strip().split("==") for line in lines if "==" in line.split("#")[0])
    assert versions == {k: pins[k] for k in ("torch", "transformers")}


@pytest.mark.rebuild  # about a minute: deselected by default, `pytest -m rebuild` (CI) runs it
def test_committed_real_configs_reference_is_what_transformers_produces():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    script = HERE.parent / "reference" / "build_real_configs.py"
    p = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
