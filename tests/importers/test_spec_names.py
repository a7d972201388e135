"""`from willitrun.specs import <Family>Spec` works for every family in the registry, found lazily
(a new family is one module plus one registry line, no edit in specs.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import willitrun.specs
from willitrun.archs import FAMILIES

ARCHS = Path(willitrun.specs.__file__).parent / "archs"


def _family_classes() -> list[tuple[str, str]]:
    names = []
    for module in dict.fromkeys(FAMILIES.values()):
        source = (ARCHS / f"{module}.py").read_text()
        names += [(module, name) for name in re.findall(r"^class (\w+(?:Spec|Config))\b", source, re.MULTILINE)]
    return names


@pytest.mark.parametrize(("module", "name"), _family_classes())
def test_every_family_class_is_importable_from_specs(module, name):
    assert getattr(willitrun.specs, name) is getattr(import_module(f"willitrun.archs.{module}"), name)


def test_every_spec_class_is_reachable():
    for arch in FAMILIES:
        cls = willitrun.specs.SPEC_CLASSES[arch]
        assert getattr(willitrun.specs, cls.__name__) is cls


def test_unknown_names_are_attribute_errors():
    with pytest.raises(ImportError):
        from willitrun.specs import NoSuchSpec  # noqa: F401
    assert not hasattr(willitrun.specs, "__wrapped__")


def test_importing_specs_loads_no_family():
    """Only the shared modules (base, family, caches) load; no family module does."""
    code = (
        "import json, sys, willitrun.specs; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('willitrun.archs.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.removeprefix("willitrun.archs.") for m in json.loads(out)}
    assert loaded <= {"base", "family", "caches"} and not loaded & set(FAMILIES.values())


def test_the_type_checkers_union_names_every_spec_class():
    """specs.py spells AnyModelSpec out for mypy (at run time it is built from the registry): every spec
    class is one of its members or a subclass of one (DecoderSpec: the generic decoder's families)."""
    source = Path(willitrun.specs.__file__).read_text()
    union = source[source.index("AnyModelSpec = Union[") : source.index("ModelSpec = Annotated")]
    named = set(re.findall(r"\w+Spec\b", union)) - {"AnyModelSpec"}
    for arch in FAMILIES:
        cls = willitrun.specs.SPEC_CLASSES[arch]
        assert any(base.__name__ in named for base in cls.__mro__), f"{arch}: {cls.__name__} is in no union member"
