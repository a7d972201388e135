"""Wrong answers (issue 17 section 1): an alias claimed by two user spec folders went to the first
folder while an id went to the last, and the note called a user spec "bundled".

One rule now (catalog.Catalog._files and _aliases): the later folder wins, for ids and aliases alike
(bundled catalog, then WILLITRUN_SPECS_PATH in order, then each --specs-dir); an id beats an alias.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from willitrun import load_catalog
from willitrun.cli import app

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "model_specs" / "llama-3.2-1b.yaml").read_text())


def write(root: Path, spec_id: str, name: str, aliases: list[str]) -> None:
    (root / "model_specs").mkdir(parents=True, exist_ok=True)
    (root / "model_specs" / f"{spec_id}.yaml").write_text(
        yaml.safe_dump({**BASE, "id": spec_id, "name": name, "aliases": aliases})
    )


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "one", "From A", ["shared"])
    write(b, "two", "From B", ["shared"])
    write(a, "llama-3.2-1b", "Llama of A", [])
    write(b, "llama-3.2-1b", "Llama of B", [])
    return a, b


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_ids_and_aliases_follow_the_same_rule(folders, order):
    a, b = folders
    first, last = (a, b) if order == "ab" else (b, a)
    catalog = load_catalog([first, last])
    assert catalog.resolve("model", "llama-3.2-1b").name == f"Llama of {last.name.upper()}"
    assert catalog.resolve("model", "shared").name == f"From {last.name.upper()}"


def test_the_environment_folders_come_before_specs_dir(folders, monkeypatch):
    a, b = folders
    monkeypatch.setenv("WILLITRUN_SPECS_PATH", str(b))
    catalog = load_catalog([a])
    assert catalog.resolve("model", "shared").name == "From A" == catalog.resolve("model", "one").name
    assert catalog.resolve("model", "llama-3.2-1b").name == "Llama of A"


def test_an_id_beats_an_alias(tmp_path):
    write(tmp_path, "mine", "Mine", ["llama-3.2-1b"])  # claims a bundled id as its alias
    assert load_catalog([tmp_path]).resolve("model", "llama-3.2-1b").name != "Mine"


def test_notes_call_a_user_spec_a_user_spec(folders):
    a, b = folders
    r = CliRunner().invoke(app, ["shared", "--gpu", "t4", "-q", "--specs-dir", str(a), "--specs-dir", str(b)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["shared", "--gpu", "t4", "--specs-dir", str(a), "--specs-dir", str(b)])
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert (
        f"note: {b}/model_specs/llama-3.2-1b.yaml shadows the user ({a}/model_specs/llama-3.2-1b.yaml) "
        "model spec 'llama-3.2-1b'" in notes
    )
    assert f"note: {a}/model_specs/llama-3.2-1b.yaml shadows the bundled model spec 'llama-3.2-1b'" in notes
    assert (
        f"note: {b}/model_specs/two.yaml takes the alias 'shared' from the user ({a}/model_specs/one.yaml) "
        "model spec 'one'" in notes
    )
    assert not [n for n in notes if "bundled" in n and str(b) in n.split(" shadows ")[-1]]
    assert r.stdout.startswith("From B (two) on")
