"""The estimate with a checkpoint's stored weight bytes (memory.resolve/estimate, fit.check_fit and
the estimate command taking a WeightsOverride)."""

from __future__ import annotations

import inspect
import json

import pytest
from typer.testing import CliRunner

from tests.importers.helpers import write_config, write_llama_gguf
from willitrun import Request, check_fit, estimate
from willitrun.dtypes import weight_dtype
from willitrun.importers import spec_from_path
from willitrun.memory import weight_components

WIRED = "weights" in inspect.signature(estimate).parameters
pytestmark = pytest.mark.skipif(not WIRED, reason="memory.estimate/resolve and fit.check_fit do not take `weights` yet")


@pytest.fixture
def q8_file(tmp_path):
    return write_llama_gguf(tmp_path / "tiny-q8_0.gguf")


def test_stored_bytes_replace_the_computed_ones(q8_file):
    spec, weights = spec_from_path(q8_file)
    e = estimate(spec, weights=weights)
    assert e.dtype == "q8_0" and e.kv_dtype == "f16"
    assert e.weights_bytes == weights.total_bytes
    assert {c.name: c.parameters for c in e.components} == {
        c.name: c.parameters for c in weight_components(spec, weight_dtype("q8_0"))
    }
    assert any(n.startswith("weights: ") and str(q8_file) in n for n in e.notes)
    assert (
        e.total_bytes
        == estimate(spec, dtype="q8_0").total_bytes - estimate(spec, dtype="q8_0").weights_bytes + weights.total_bytes
    )


def test_another_dtype_is_computed(q8_file):
    spec, weights = spec_from_path(q8_file)
    e = estimate(spec, dtype="fp16", weights=weights)
    assert e.weights_bytes == estimate(spec, dtype="fp16").weights_bytes != weights.total_bytes
    assert any("weights computed from the architecture" in n for n in e.notes)
    assert estimate(spec, dtype="q8_0", weights=weights).weights_bytes == weights.total_bytes


def test_fit_and_its_suggestions_keep_the_stored_bytes(q8_file):
    spec, weights = spec_from_path(q8_file)
    need = estimate(spec, weights=weights, context=256).total_bytes
    fit = check_fit(spec, Request(context=256), need, "test", weights)
    assert fit.fits and fit.estimate.weights_bytes == weights.total_bytes
    tight = check_fit(spec, Request(context=256), need - 1, "test", weights)
    assert not tight.fits and tight.suggestions


def test_estimate_command_reads_a_model_directory(tmp_path):
    from willitrun.cli import app  # registers `import` when cli.py is wired

    header = {"model.embed_tokens.weight": {"dtype": "BF16", "shape": [256, 64], "data_offsets": [0, 32768]}}
    write_config(
        tmp_path / "m",
        {
            "model_type": "llama",
            "vocab_size": 256,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "torch_dtype": "bfloat16",
        },
    )
    raw = json.dumps(header).encode()
    (tmp_path / "m" / "model.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 32768)
    r = CliRunner().invoke(app, [str(tmp_path / "m"), "--vram", "24GiB", "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # Only the embedding is stored: the names do not cover every component, so one "checkpoint" part.
    assert d["weights_bytes"] == 32768 and [c["name"] for c in d["components"]] == ["checkpoint"]
    assert "import" in CliRunner().invoke(app, ["--help"]).stdout
