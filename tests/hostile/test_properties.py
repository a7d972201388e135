"""Properties that would have found the hostile-input bugs of issue 13.

Each example is small by construction: paths are made once per module, YAML texts stay under
~100 KB, and spec values that size a loop (layer counts) or a search (context windows) are drawn
from ranges that keep one estimate to milliseconds, while widths, vocabularies and memory sizes
take every extreme (zero, negative, 2**63, 10**400, 1e-300).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from willitrun import SpecError, WillItRunError, check_fit, estimate
from willitrun.catalog import load_catalog, load_spec
from willitrun.files import YAML_MAX_INT_DIGITS, parse_yaml, read_text
from willitrun.importers import read_config, read_safetensors_header, spec_from_path
from willitrun.memory import Request
from willitrun.validate import validate_paths

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------------------------------
# Paths that are not regular files, through every reader
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """name -> a path that is not a regular file (made once: examples only pick one)."""
    base = tmp_path_factory.mktemp("odd")
    out: dict[str, Path] = {
        "directory": base / "dir",
        "missing": base / "missing",
        "long name": base / ("n" * 256),
        "missing parent": base / "missing" / "x.yaml",
    }
    out["directory"].mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(base / "fifo")
        out["fifo"] = base / "fifo"
    for dev in ("/dev/zero", "/dev/urandom", "/dev/null"):
        if os.path.exists(dev):
            out[dev] = Path(dev)
    for name, target in list(out.items()):
        link = base / f"link{len(out)}.yaml"
        link.symlink_to(target)
        out[f"symlink to {name}"] = link
        chain = base / f"chain{len(out)}.json"
        chain.symlink_to(link)
        out[f"symlink to a symlink to {name}"] = chain
    loop = base / "loop.yaml"
    loop.symlink_to(loop)
    out["symlink loop"] = loop
    return out


READERS = {
    "read_text": lambda p: read_text(p, 1 << 20),
    "load_spec model": lambda p: load_spec(p, "model"),
    "load_spec gpu": lambda p: load_spec(p, "gpu"),
    "read_config": read_config,
    "read_safetensors_header": read_safetensors_header,
    "spec_from_path": spec_from_path,
    "validate": lambda p: validate_paths([p]),
    "specs-dir": lambda p: load_catalog([p]).resolve("model", "llama-2-7b"),
}


@SETTINGS
@given(data=st.data(), reader=st.sampled_from(sorted(READERS)))
def test_no_reader_accepts_or_blocks_on_a_path_that_is_not_a_regular_file(odd, data, reader):
    name = data.draw(st.sampled_from(sorted(odd)))
    path = odd[name]
    try:
        result = READERS[reader](path)
    except WillItRunError as exc:
        assert exc.exit_code in (2, 3)
        lines = exc.problems if isinstance(exc, SpecError) else [str(exc)]
        assert all("\n" not in line and line for line in lines)
        return
    # Only two outcomes are not errors: validate reports the path as a problem of its own, and a
    # spec directory that does not hold the bundled id leaves the bundled one in place.
    if reader == "validate":
        assert result.errors and all("\n" not in e for e in result.errors)
    else:
        assert reader == "specs-dir" and result.id == "llama-2-7b", (reader, name)


# --------------------------------------------------------------------------------------------------
# YAML: valid documents load as yaml.safe_load loads them; hostile ones are refused at their line
# --------------------------------------------------------------------------------------------------
class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**60), 10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
keys = st.one_of(st.text(max_size=12), st.integers(-100, 100))
documents = st.recursive(
    scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(keys, c, max_size=5), max_leaves=30
)
mappings = st.dictionaries(st.text(min_size=1, max_size=12), documents, min_size=1, max_size=6)
# keys the hostile fragments use: a document holding one would fail for another reason first
FRAGMENT_KEYS = re.compile(r"huge|deep|big|dup|x\d+")
clean_mappings = mappings.map(lambda d: {k: v for k, v in d.items() if not FRAGMENT_KEYS.fullmatch(k)}).filter(bool)


def dump(doc: object) -> str:
    return yaml.dump(doc, Dumper=_NoAliases, allow_unicode=True, sort_keys=False)


@SETTINGS
@given(doc=documents)
def test_the_loader_reads_what_safe_load_reads(doc):
    text = dump(doc)
    assert parse_yaml(text, "f").data == yaml.safe_load(text)


def alias_bomb(levels: int, width: int) -> str:
    out = ['x0: &x0 ["lol"]']
    out += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(out) + "\n"


hostile = st.one_of(
    st.builds(lambda n: ("digits", f"huge: {'7' * n}\n"), st.integers(YAML_MAX_INT_DIGITS + 1, 50_000)),
    st.builds(lambda lv, w: ("anchors and aliases", alias_bomb(lv, w)), st.integers(1, 30), st.integers(1, 30)),
    st.builds(lambda d: ("nested deeper", "deep: " + "[" * d + "]" * d + "\n"), st.integers(40, 20_000)),
    st.builds(lambda e: ("beyond the float range", f"big: 1.0e+{e}\n"), st.integers(309, 100_000)),
    st.just(("duplicate key", "dup: 1\ndup: 2\n")),
)


@SETTINGS
@given(doc=clean_mappings, bad=hostile, where=st.integers(0, 100))
def test_hostile_yaml_is_refused_at_its_line(doc, bad, where):
    says, fragment = bad
    lines = dump(doc).splitlines(keepends=True)
    # a fragment goes between two top-level entries (a line not indented, or the end)
    tops = [i for i, line in enumerate(lines) if line[:1] not in (" ", "-", "") and ":" in line] + [len(lines)]
    at = tops[where % len(tops)]
    text = "".join(lines[:at]) + fragment + "".join(lines[at:])
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "f.yaml")
    message = str(info.value)
    assert message.startswith("f.yaml:") and "\n" not in message
    assert says in message, (message, fragment[:60])
    first_line = int(message.split(":")[1])
    assert at + 1 <= first_line <= at + fragment.count("\n"), (message, at)


# --------------------------------------------------------------------------------------------------
# Specs with extreme values: what validate approves, the estimator handles
# --------------------------------------------------------------------------------------------------
EXTREME_INTS = [0, -1, 1, 2, 3, 5, 7, 64, 4095, 2**31 - 1, 2**53 + 1, 2**63, 2**64 + 1, 10**30, 10**400]
EXTREME_FLOATS = [5e-324, 1e-300, 1e-10, 0.001, 1.0, 4096.0, 1e5, 1e308]
MODELS = [
    "llama-2-7b",
    "mistral-7b",
    "t5-small",
    "whisper-tiny",
    "llava-1.5-7b",
    "llava-1.6-mistral-7b",
    "llama-3.2-11b-vision",
]


def bounded(path: tuple[str, ...]) -> bool:
    """Fields that size a loop (layers) or a search (positions, windows): drawn small, see the module doc."""
    name = path[-1]
    return "layers" in name or "position" in name or "window" in name or name == "max_num_tiles"


def int_fields(data: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in int_fields(v, (*path, k))]
    if type(data) is int:
        return [path]
    return []


def with_value(data: dict, path: tuple[str, ...], value: object) -> dict:
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = with_value(out[path[0]], path[1:], value)
    return out


@st.composite
def extreme_models(draw):
    data = yaml.safe_load((ROOT / "model_specs" / f"{draw(st.sampled_from(MODELS))}.yaml").read_text())
    data.pop("parameters_declared", None)  # else nearly every change is refused by the declared total
    data["id"] = "extreme"
    fields = int_fields(data["config"], ("config",))
    for path in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
        value = draw(
            st.sampled_from([v for v in EXTREME_INTS if v <= 2**64 + 1])
            if bounded(path)
            else st.sampled_from(EXTREME_INTS) | st.integers(-3, 10**6)
        )
        if bounded(path) and "layers" in path[-1]:
            value = min(value, 256)
        data = with_value(data, path, value)
    return data


def approved(kind: str, data: dict) -> object | None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / kind / f"{data['id']}.yaml"
        f.parent.mkdir()
        f.write_text(yaml.safe_dump(data, sort_keys=False))
        report = validate_paths([Path(d)])
        assert all("\n" not in e for e in report.errors)
        return None if report.errors else load_spec(f, "model" if kind == "model_specs" else "gpu")


@settings(max_examples=80, deadline=None)
@given(data=extreme_models())
def test_every_model_spec_validate_approves_can_be_estimated(data):
    spec = approved("model_specs", data)
    if spec is None:
        return
    e = estimate(spec)
    fit = check_fit(spec, Request(), 24 << 30, "test")
    for n in (e.total_bytes, e.parameters, fit.estimate.total_bytes, fit.max_context_tokens):
        assert type(n) is int and n >= 0 and math.isfinite(float(n))


@st.composite
def extreme_gpus(draw):
    data = yaml.safe_load((ROOT / "hardware_specs" / "rtx3090.yaml").read_text())
    data["id"] = "extreme"
    data["memory_gib"] = draw(st.sampled_from(EXTREME_FLOATS) | st.floats(0, 5000, allow_nan=False))
    data["bandwidth_gb_s"] = draw(st.sampled_from(EXTREME_FLOATS) | st.floats(0, 2e5, allow_nan=False))
    data["reported_total_mib"] = draw(st.none() | st.sampled_from(EXTREME_INTS))
    return data


@settings(max_examples=60, deadline=None)
@given(data=extreme_gpus())
def test_every_gpu_spec_validate_approves_can_be_used(data, catalog):
    gpu = approved("hardware_specs", data)
    if gpu is None:
        return
    from willitrun.answers import cards_needed
    from willitrun.placement import device

    card = device(gpu)
    assert card.vram_bytes >= 1 and card.bandwidth_bytes_s >= 1
    model = catalog.get("model", "llama-3.2-1b")
    assert check_fit(model, Request(), gpu.capacity_bytes, gpu.id).vram_bytes == gpu.capacity_bytes
    assert cards_needed(model, Request(context=512), card, max_cards=8).cards >= 0
