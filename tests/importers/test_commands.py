"""`willitrun import` and the model argument: exit code first, then the output."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import yaml
from typer.testing import CliRunner

from tests.importers.helpers import write_config
from tests.importers.test_configs import LLAVA_15_7B
from willitrun import estimate, load_catalog
from willitrun.cli import app
from willitrun.cli.models import resolve_model_arg
from willitrun.importers import spec_from_path
from willitrun.validate import validate_file

runner = CliRunner()
SMALL = {
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "torch_dtype": "bfloat16",
}


def run(*args: str):
    return runner.invoke(app, ["import", *map(str, args)], env={"NO_COLOR": "1"})


@pytest.fixture
def model_dir(tmp_path):
    write_config(tmp_path / "Tiny-Llama", SMALL)
    return tmp_path / "Tiny-Llama"


def test_prints_the_spec(model_dir):
    r = run(model_dir)
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.stdout)
    assert data["id"] == "tiny-llama" and data["config"]["hidden_size"] == 64
    assert data["sources"]["config"] == str(model_dir / "config.json")
    assert r.stderr == ""


@pytest.mark.parametrize("exists", [True, False])
def test_writes_into_a_directory(tmp_path, model_dir, exists):
    out = tmp_path / "specs" / "model_specs"
    if exists:
        out.mkdir(parents=True)
    r = run(model_dir, "-o", f"{out}/")
    assert r.exit_code == 0, r.output
    target = out / "tiny-llama.yaml"
    assert (
        r.stderr
        == f"wrote {target} (id tiny-llama); estimate it with: willitrun tiny-llama --specs-dir {tmp_path / 'specs'}\n"
    )
    assert validate_file(target)[2:] == ([], [])


def test_file_name_is_the_id(tmp_path, model_dir):
    target = tmp_path / "mine" / "my-model.yaml"
    r = run(model_dir, "-o", target)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(target.read_text())["id"] == "my-model"
    assert validate_file(target)[2:] == ([], [])
    assert run(model_dir, "-o", target).exit_code == 2  # exists
    assert run(model_dir, "-o", target, "--force").exit_code == 0


def test_specs_dir(tmp_path, model_dir):
    r = run(model_dir, "--specs-dir", tmp_path / "user-specs", "--id", "tiny")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "user-specs" / "model_specs" / "tiny.yaml").is_file()
    spec = load_catalog([tmp_path / "user-specs"]).resolve("model", "tiny")
    assert spec == spec_from_path(model_dir, model_id="tiny")[0]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("{tmp}/nope",), 2, "error: {tmp}/nope: no such file or directory"),
        (("{model}", "-o", "{tmp}/spec.txt"), 2, "a spec file is named <id>.yaml"),
        (("{model}", "-o", "{tmp}/Bad Name.yaml"), 2, "is not a catalog id"),
        (("{model}", "-o", "{tmp}/a.yaml", "--id", "b"), 2, "--id b and -o {tmp}/a.yaml disagree"),
        (("{model}", "-o", "{tmp}/a.yaml", "--specs-dir", "{tmp}"), 2, "give -o/--output or --specs-dir, not both"),
        # a model_type transformers does not ship either: it would need the model's own code (importers/oracle.py)
        (("{bigcode}",), 2, "does not know model_type 'not_a_model': it would need the model's own code"),
        (("{broken}",), 3, "not a GGUF file"),
    ],
)
def test_errors_are_one_line_with_the_exit_code(tmp_path, model_dir, args, code, words):
    write_config(tmp_path / "bigcode", {"model_type": "not_a_model"})
    (tmp_path / "broken.gguf").write_bytes(b"GGML" + b"\0" * 28)
    fill = {"tmp": tmp_path, "model": model_dir, "bigcode": tmp_path / "bigcode", "broken": tmp_path / "broken.gguf"}
    r = run(*(a.format(**fill) for a in args))
    assert r.exit_code == code, r.output
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert words.format(**fill) in r.stderr


def test_help():
    r = runner.invoke(app, ["import", "--help"])
    assert r.exit_code == 0
    assert "Write a model spec (YAML) from a config.json" in r.stdout


# --------------------------------------------------------------------------------------------------
# The model argument of the estimate command
# --------------------------------------------------------------------------------------------------
def test_catalog_ids_still_resolve(catalog):
    spec, weights = resolve_model_arg("llava-7b", catalog)
    assert spec.id == "llava-1.5-7b" and weights is None


def test_paths_are_imported(tmp_path, catalog):
    write_config(tmp_path / "llava", LLAVA_15_7B)
    spec, weights = resolve_model_arg(str(tmp_path / "llava"), catalog)
    same = replace(estimate(catalog.resolve("model", "llava-7b")), model=spec.id)
    assert estimate(spec) == same and weights is None
    spec, _ = resolve_model_arg(str(tmp_path / "llava" / "config.json"), catalog)
    assert spec.id == "llava"


def test_spec_files_are_loaded(tmp_path, catalog, model_dir):
    target = tmp_path / "model_specs" / "tiny.yaml"
    assert run(model_dir, "-o", target).exit_code == 0
    spec, weights = resolve_model_arg(str(target), catalog)
    assert spec.id == "tiny" and weights is None


def test_hf_sources_are_imported(monkeypatch, catalog):
    import willitrun.importers as importers

    monkeypatch.setattr(importers, "import_model", lambda arg: ("imported", arg))
    assert resolve_model_arg("hf:org/name", catalog) == ("imported", "hf:org/name")


def test_runs_as_a_process(model_dir):
    """`python -m willitrun import DIR`: the default-command group routes it, no import cycle."""
    r = subprocess.run(
        [sys.executable, "-m", "willitrun", "import", str(model_dir)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["id"] == "tiny-llama"


def test_a_catalog_id_wins_over_a_same_named_folder(tmp_path, monkeypatch):
    """A folder called like a catalog model in the working directory does not silently replace it:
    the catalog's is used and a warning names the ambiguity; `./name` picks the folder."""
    monkeypatch.chdir(tmp_path)
    write_config(
        tmp_path / "llama-2-7b",
        {
            "model_type": "llama",
            "vocab_size": 256,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 512,
        },
    )
    import json

    r = runner.invoke(app, ["llama-2-7b", "--vram", "24", "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parameters"] == 6_738_415_616  # the catalog's Llama-2-7B, not the folder
    assert "is a catalog model and a path here" in r.stderr
    r = runner.invoke(app, ["./llama-2-7b", "--vram", "24", "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0 and json.loads(r.stdout)["parameters"] < 10**6
