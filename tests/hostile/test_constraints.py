"""The test environment's versions are pinned in one file, tests/constraints.txt, used by the README's
test command and by .ci/run; its pins agree with every other pin and range in the repository, so the
install command resolves (checked with `pip install --dry-run` when the file was written: 66 packages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "pip install -e . --group test -c tests/constraints.txt -r tests/reference/requirements.txt"


def pins(path: Path) -> dict[str, Version]:
    out: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert m, f"{path.name}: {line!r} is not name==version"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{path.name}: {name} twice"
        out[name] = Version(m.group(2))
    return out


CONSTRAINTS = pins(ROOT / "tests" / "constraints.txt")


def test_the_readme_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert COMMAND in readme and COMMAND in ci
    assert not re.search(r"--group test(?!(?: --group \w+)* -c tests/constraints\.txt)", readme + ci)


def test_the_reference_pins_agree():
    for name, version in pins(ROOT / "tests" / "reference" / "requirements.txt").items():
        assert CONSTRAINTS[name] == Version(version.base_version) or CONSTRAINTS[name] == version, name


def test_every_declared_requirement_is_met_by_its_pin():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
        *(r for group in pyproject["dependency-groups"].values() for r in group),
    ]
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in CONSTRAINTS, f"{name} is not pinned in tests/constraints.txt"
        assert req.specifier.contains(CONSTRAINTS[name], prereleases=True), (text, CONSTRAINTS[name])
