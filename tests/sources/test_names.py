"""Names people type, resolved offline from the HF cache and ollama's store (layouts.py), through
the same hook the CLI uses; ambiguity is one question, catalog ids keep precedence."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.sources.layouts import QWEN3_06B, gguf_bytes, hf_file, ollama_model
from willitrun.cli import app
from willitrun.cli.models import resolve_model_arg
from willitrun.errors import SpecError, UsageError
from willitrun.importers import spec_from_path
from willitrun.sources import resolve_name


def test_org_name_from_the_hf_cache_offline(populated):
    _home, paths = populated
    spec, weights = resolve_name("Qwen/Qwen3-0.6B")
    local, _ = spec_from_path(paths["qwen"])
    assert spec.architecture == "qwen3" and spec.config == local.config
    assert spec.name == "Qwen3-0.6B" and spec.id == "qwen3-0.6b"
    assert weights is None  # a config.json alone: the weights are computed from it
    assert resolve_name("qwen/QWEN3-0.6b")[0].config == local.config  # the Hub's ids ignore case


def test_quant_and_file_pick_one_gguf(populated):
    _, paths = populated
    q8, _ = resolve_name("org/Tiny-GGUF:Q8_0")
    assert q8.sources["config"] == str(paths["gguf_q8"])
    q4, _ = resolve_name("org/Tiny-GGUF/Tiny-Q4_0.gguf")
    assert q4.sources["config"] == str(paths["gguf_q4"])


def test_several_ggufs_are_a_question_not_a_guess(populated):
    with pytest.raises(UsageError) as exc:
        resolve_name("org/Tiny-GGUF")
    assert str(exc.value) == (
        "org/Tiny-GGUF: 2 GGUF files match in the local Hugging Face cache: which one? "
        "org/Tiny-GGUF/Tiny-Q4_0.gguf, org/Tiny-GGUF/Tiny-Q8_0.gguf"
    )
    assert "\n" not in str(exc.value)


def test_two_snapshots_without_refs_main_are_a_question(home, tmp_path):
    hub = home / ".cache" / "huggingface" / "hub"
    for rev in ("a" * 40, "b" * 40):
        hf_file(hub, "Qwen/Qwen3-0.6B", "config.json", json.dumps(QWEN3_06B).encode(), rev=rev)
    (hub / "models--Qwen--Qwen3-0.6B" / "refs" / "main").unlink()
    with pytest.raises(UsageError, match=r"Qwen/Qwen3-0.6B has 2 snapshots .* and no refs/main: which one\? "):
        resolve_name("Qwen/Qwen3-0.6B")


def test_a_file_not_in_the_cache_points_to_hf_ranges(populated):
    with pytest.raises(UsageError, match=r"not in the local Hugging Face cache .*; hf:org/Other-GGUF/x.gguf reads"):
        resolve_name("org/Other-GGUF/x.gguf")


@pytest.mark.parametrize(
    "name", ["tiny", "tiny:latest", "TINY:Latest", "library/tiny", "registry.ollama.ai/library/tiny:latest"]
)
def test_ollama_names(populated, name):
    _, _paths = populated
    spec, weights = resolve_name(name)
    assert spec.architecture == "llama" and spec.id == "tiny-latest"
    assert weights.dtype == "q8_0" and weights.engine == "ollama"


def test_ollama_hf_co_names(populated):
    spec, weights = resolve_name("hf.co/org/Tiny-GGUF:Q4_0")
    assert spec.id == "hf.co-org-tiny-gguf-q4-0"
    assert weights.dtype == "q4_0"


def test_unknown_names_are_none(populated):
    assert resolve_name("no-such-model") is None
    assert resolve_name("nothing:here") is None
    with pytest.raises(UsageError) as exc:  # no such quant, and no ollama model of that name
        resolve_name("org/Tiny-GGUF:Q2_K")
    assert str(exc.value) == (
        "org/Tiny-GGUF:Q2_K: no GGUF file of org/Tiny-GGUF in the local Hugging Face cache "
        "matches Q2_K; it has: Tiny-Q4_0.gguf, Tiny-Q8_0.gguf"
    )
    assert resolve_name("other/Repo:Q2_K") is None  # neither cached nor in ollama's store


def test_a_damaged_ollama_manifest_is_one_line(populated):
    with pytest.raises(SpecError) as exc:
        resolve_name("broken")
    assert str(exc.value).endswith("not an ollama manifest (not JSON)")


def test_catalog_ids_keep_precedence(populated, catalog):
    home, _ = populated
    ollama_model(
        home / ".ollama" / "models", ("registry.ollama.ai", "library", "llama-3.1-8b", "latest"), gguf_bytes(home)
    )
    spec, weights = resolve_model_arg("llama-3.1-8b", catalog)
    assert spec.id == "llama-3.1-8b" and weights is None  # the catalog's, not the ollama store's


def test_cli_estimates_names_like_their_files(populated):
    _, paths = populated
    runner = CliRunner()
    for name, path, engine in (
        ("Qwen/Qwen3-0.6B", paths["qwen"], "transformers"),
        ("org/Tiny-GGUF:Q8_0", paths["gguf_q8"], "llama.cpp"),
        ("tiny", paths["gguf_q8"], "ollama"),
    ):
        by_name = runner.invoke(app, [name, "--vram", "24", "--json"])
        by_path = runner.invoke(app, [str(path), "--vram", "24", "--json", "--engine", engine])
        assert by_name.exit_code == 0, by_name.output
        named, pathed = json.loads(by_name.stdout), json.loads(by_path.stdout)
        assert named["total_bytes"] == pathed["total_bytes"], name
        assert named.get("engine", "transformers") == engine  # an ollama name is sized as ollama runs it


def test_ollama_names_answer_on_ollama_everywhere(populated):
    runner = CliRunner()
    gpus = json.loads(runner.invoke(app, ["gpus", "tiny", "--json"]).stdout)
    explicit = json.loads(runner.invoke(app, ["gpus", "tiny", "--engine", "ollama", "--json"]).stdout)
    assert gpus == explicit
    llamacpp = json.loads(runner.invoke(app, ["gpus", "tiny", "--engine", "llama.cpp", "--json"]).stdout)
    assert llamacpp != gpus  # --engine still decides


def test_cli_ambiguity_is_exit_2_and_one_line(populated):
    result = CliRunner().invoke(app, ["org/Tiny-GGUF", "--vram", "24"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "which one?" in result.stderr


def test_without_the_hub_extra_an_unknown_repo_says_what_to_do(populated, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    result = CliRunner().invoke(app, ["Some-Org/Some-Model", "--vram", "24"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown model 'Some-Org/Some-Model'")
    assert "is not in the local Hugging Face cache" in result.stderr and "willitrun[hub]" in result.stderr


def test_with_the_hub_extra_an_uncached_repo_asks_the_hub(populated, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at its import, which may predate conftest's variable
    result = CliRunner().invoke(app, ["Some-Org/Some-Model", "--vram", "24"])
    assert result.exit_code == 2
    assert "hf:Some-Org/Some-Model: cannot reach the Hugging Face Hub (HF_HUB_OFFLINE is set)" in result.stderr


def test_hostile_ollama_manifests(populated):
    home, _ = populated
    store = home / ".ollama" / "models"
    cases = {
        "traversal": json.dumps(
            {"layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:../../../../etc/passwd"}]}
        ),
        "nolayer": json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.license", "digest": "x"}]}),
        "notalist": json.dumps({"layers": {"a": 1}}),
        "huge": " " * ((1 << 20) + 1),
    }
    for name, text in cases.items():
        path = store / "manifests" / "registry.ollama.ai" / "library" / name / "latest"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    from willitrun.sources import default_places, scan_places

    reasons = {
        p.path.rsplit("/", 2)[-2]: p.reason for p in scan_places(default_places()).problems if "/manifests/" in p.path
    }
    assert reasons["traversal"] == "the model layer's digest is not sha256:<64 hex digits>"
    assert reasons["nolayer"] == "no model layer (application/vnd.ollama.image.model) in the manifest"
    assert reasons["notalist"] == "not an ollama manifest (no list of layers)"
    assert reasons["huge"].startswith("1,048,577 bytes is too large for a manifest")
    for name in cases:
        with pytest.raises(SpecError):
            resolve_name(name)


def test_ollama_names_round_trip():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from willitrun.sources.ollama_store import DEFAULT_HOST, DEFAULT_NAMESPACE, parse_name

    part = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)

    @settings(max_examples=200, deadline=None)
    @given(
        host=st.one_of(st.just(DEFAULT_HOST), st.just("hf.co"), part),
        namespace=st.one_of(st.just(DEFAULT_NAMESPACE), part),
        model=part,
        tag=part,
    )
    def check(host, namespace, model, tag):
        full = f"{host}/{namespace}/{model}:{tag}"
        name = parse_name(full)
        assert name is not None and (name.host, name.namespace, name.model, name.tag) == (host, namespace, model, tag)
        # what `ollama list` shows parses back to the same model
        assert parse_name(str(name)) == name

    check()


def test_import_takes_the_same_names(populated, tmp_path):
    runner = CliRunner()
    for name, expected_id in (
        ("Qwen/Qwen3-0.6B", "qwen3-0.6b"),
        ("tiny", "tiny-latest"),
        ("org/Tiny-GGUF:Q4_0", "tiny-q4-0"),
    ):
        result = runner.invoke(app, ["import", name, "-o", str(tmp_path / "specs")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "specs" / f"{expected_id}.yaml").is_file()
    result = runner.invoke(app, ["import", "tiny", "--id", "my-tiny"])
    assert result.exit_code == 0 and "id: my-tiny" in result.stdout
    missing = runner.invoke(app, ["import", "no-such-thing"])
    assert missing.exit_code == 2 and "no such file or directory" in missing.stderr


def test_an_uncached_quant_says_how_to_read_it(populated):
    result = CliRunner().invoke(app, ["other/Repo-GGUF:Q4_K_M", "--vram", "24"])
    assert result.exit_code == 2
    assert "give hf:other/Repo-GGUF/FILE.gguf to read its header from the Hub" in result.stderr


def test_an_ollama_name_with_a_tag_runs_without_a_second_start(populated):
    """`qwen3:8b` cannot be a catalog id, so the lean path loads pydantic from the start: with
    WILLITRUN_RECORDS=1 a fallback would be an internal error (tests/cli/test_records.py)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "WILLITRUN_RECORDS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "willitrun", "tiny:latest", "--vram", "24", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
