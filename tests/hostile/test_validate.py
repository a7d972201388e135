"""`validate` checks every file, says each problem once, and approves only what the estimator handles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from willitrun import UsageError
from willitrun.validate import default_roots, validate_paths

ROOT = Path(__file__).resolve().parents[2]


def spec_text(kind: str, spec_id: str, **changes: object) -> str:
    src = "llama-2-7b" if kind == "model_specs" else "rtx3090"
    data = yaml.safe_load((ROOT / kind / f"{src}.yaml").read_text())
    data["id"] = spec_id
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def test_every_file_is_checked_after_bad_ones(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "a-bad.yaml").write_text("id: [\n")
    (d / "b-dup.yaml").write_text("id: b-dup\nid: b-dup\n")
    (d / "c-good.yml").write_text(spec_text("model_specs", "c-good"))
    (d / "d-bomb.yaml").write_text("a: &a [1]\nb: [*a, *a]\n")
    (d / "e-huge.yaml").write_text(f"id: e-huge\nn: {'1' * 5000}\n")
    report = validate_paths([tmp_path])
    assert report.checked == 5
    assert [e.split(":")[0].rsplit("/", 1)[-1] for e in report.errors] == [
        "a-bad.yaml",
        "b-dup.yaml",
        "d-bomb.yaml",
        "e-huge.yaml",
    ]


def test_each_problem_once(tmp_path):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    text = spec_text("hardware_specs", "rtx3090", sources=None)
    (d / "rtx3090.yaml").write_text(text)
    # the same file reached three ways: as a directory, as itself, and through a symlink
    (tmp_path / "again.yaml").symlink_to(d / "rtx3090.yaml")
    report = validate_paths([tmp_path, d / "rtx3090.yaml", tmp_path / "again.yaml"])
    assert report.checked == 1
    assert len(report.errors) == len(set(report.errors)) >= 1
    assert len(report.warnings) == len(set(report.warnings))


def test_the_bundled_root_given_twice_is_checked_once(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WILLITRUN_SPECS_PATH", str(ROOT))
    report = validate_paths(None)
    assert report.errors == [] and report.notes == []
    assert report.checked == len(list((ROOT / "model_specs").glob("*.yaml"))) + len(
        list((ROOT / "hardware_specs").glob("*.yaml"))
    )


def test_yml_is_a_spec_file_everywhere(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "my-llama.yml").write_text(spec_text("model_specs", "my-llama"))
    assert validate_paths([tmp_path]) == ([], [], [], 1)
    from willitrun import load_catalog

    assert load_catalog([tmp_path]).resolve("model", "my-llama").id == "my-llama"


def test_no_path_inside_a_spec_repository_checks_it(tmp_path, monkeypatch):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    (d / "mine.yaml").write_text(spec_text("hardware_specs", "mine", memory_gib="24"))
    monkeypatch.chdir(tmp_path)
    assert default_roots() == [tmp_path]
    report = validate_paths(None)
    assert report.checked == 1 and report.errors and "mine.yaml" in report.errors[0]
    monkeypatch.chdir(tmp_path / "hardware_specs")  # not a spec repository: the bundled catalog
    assert default_roots()[0] == ROOT


def test_missing_paths_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file or directory"):
        validate_paths([tmp_path / "nope"])
    with pytest.raises(UsageError, match=r"no spec files \(\*.yaml, \*.yml\)"):
        validate_paths([tmp_path])


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        # the bounds of limits.py (shared by the spec models and so by validate and the estimator) refuse them first
        (
            {"config__vocab_size": 10**400, "parameters_declared": None},
            "config.vocab_size: Input should be less than or equal to",
        ),
        (
            {"config__hidden_size": 2**1100, "config__head_dim": 128, "parameters_declared": None},
            "config.hidden_size: Input should be less than or equal to",
        ),
    ],
)
def test_validate_approves_only_what_the_estimator_handles(tmp_path, changes, says):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "extreme.yaml").write_text(spec_text("model_specs", "extreme", **changes))
    report = validate_paths([tmp_path])
    assert len(report.errors) == 1 and says in report.errors[0] and "extreme.yaml" in report.errors[0]


def test_a_gpu_the_answers_cannot_use_is_refused(tmp_path):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    (d / "slow.yaml").write_text(spec_text("hardware_specs", "slow", bandwidth_gb_s=1.0e-300))
    (d / "tiny.yaml").write_text(spec_text("hardware_specs", "tiny", memory_gib=1.0e-300, reported_total_mib=None))
    errors = validate_paths([tmp_path]).errors
    assert any(
        re.search(r"slow.yaml:\d+: bandwidth_gb_s: 1e-300 GB/s is less than one byte per second", e) for e in errors
    )
    assert any(re.search(r"tiny.yaml:\d+: memory_gib: 1e-300 GiB is less than one byte", e) for e in errors)


def test_names_with_escape_sequences_are_not_printed_raw(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    text = spec_text("model_specs", "evil").replace("\nconfig:", '\n"\\e]0;pwned\\a\\e[2J": 1\nconfig:', 1)
    (d / "evil.yaml").write_text(text)
    errors = validate_paths([tmp_path]).errors
    assert errors and all("\x1b" not in e and "\x07" not in e for e in errors)
    assert any("\\x1b]0;pwned\\x07\\x1b[2J: unknown field" in e for e in errors)
