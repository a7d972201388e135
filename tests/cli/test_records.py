"""The pydantic-free spec classes of the plain estimate (willitrun/records.py) answer exactly as
pydantic's do.

`willitrun MODEL --gpu GPU` from the console entry point builds its specs from the catalog cache
with stand-in classes, without importing pydantic; WILLITRUN_RECORDS=0 turns that off. Each command
line below is run both ways in real processes (`python -m willitrun`) and must print the same bytes
and exit with the same code; a cold cache (specs not yet validated) must fall back to pydantic and
still answer the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LINES = [
    ["llava-7b", "--gpu", "rtx3090"],
    ["llava-7b", "--gpu", "rtx3090", "--json"],
    ["llama-3.1-70b", "--gpu", "rtx4090", "-q"],
    ["flan-t5-xl", "--gpu", "t4", "--dtype", "float16", "--json"],
    ["whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp", "--json"],
    ["llama-3.2-11b-vision", "--gpu", "a100-80gb", "--images", "2", "--json"],
    ["qwen2.5-vl-7b", "--gpu", "rtx3090", "--images", "2", "--image-size", "1024x768"],
    ["deepseek-v2-lite", "--gpu", "rtx4090", "--engine", "llama.cpp", "--json"],
    ["qwen3-30b-a3b", "--gpu", "rtx4080", "--engine", "llama.cpp", "--n-cpu-moe", "20", "--json"],
    ["jamba-mini-1.5", "--gpu", "h100-sxm", "--engine", "vllm", "--json"],
    ["mamba-2.8b", "--gpu", "t4", "--json"],
    ["gemma-3-27b-text", "--gpu", "2xrtx3090", "--context", "32768", "--json"],
    ["llama-2-70b", "--gpu", "rtx3090", "--offload", "--speed"],
    ["llama-3.1-8b", "--gpu", "rtx4060", "--engine", "ollama", "--json"],
    ["whisper-medium", "--gpu", "t4", "--engine", "ctranslate2", "--beams", "5", "--json"],
    ["gpt-oss-20b", "--gpu", "rtx4090", "--max-batch", "--json"],
    ["mixtral-8x7b", "--gpu", "nope-gpu"],  # unknown GPU: exit 2 and the same message
    # `check` pairs (cli/lean.py parse_check): every pair checked before the first is printed
    ["check", "llava-7b", "llama-2-7b", "--gpu", "rtx3090", "--gpu", "t4"],
    ["check", "llava-7b", "nope", "--gpu", "t4", "--json"],
    ["check", "florence-2-base", "whisper-tiny", "--gpu", "t4", "--context", "512"],
    ["check", "qwen3-30b-a3b", "--gpu", "rtx4090", "--engine", "llama.cpp", "--json"],
    ["check", "mamba-2.8b", "t5-small", "--gpu", "t4", "-q"],
    # `ladder` (cli/lean.py parse_ladder)
    ["ladder", "llava-7b", "--gpu", "rtx3090"],
    ["ladder", "qwen3-30b-a3b", "--gpu", "rtx4090", "--json"],
    ["ladder", "whisper-large-v3", "--gpu", "t4", "--engine", "whisper.cpp"],
    ["ladder", "flan-t5-xl", "--vram", "8", "-q"],
]


def run(args: list[str], env: dict[str, str], importtime: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "willitrun", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def base_env(cache: Path) -> dict[str, str]:
    # WILLITRUN_RAM (tests/conftest.py) stays: the memory available now changes between the two runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_") or k == "WILLITRUN_RAM"}
    return {**env, "WILLITRUN_CACHE_DIR": str(cache), "NO_COLOR": "1", "COLUMNS": "120"}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    env = {**base_env(cache), "WILLITRUN_RECORDS": "0"}
    for args in LINES:  # validates each spec with pydantic and stores it
        run(args, env)
    return cache


@pytest.mark.parametrize("args", LINES, ids=[" ".join(a) for a in LINES])
def test_records_answer_as_pydantic_does(warm_cache: Path, args: list[str]) -> None:
    env = base_env(warm_cache)
    with_pydantic = run(args, {**env, "WILLITRUN_RECORDS": "0"})
    without = run(
        args, {**env, "WILLITRUN_RECORDS": "1"}
    )  # "1": an internal error, not a rerun, if pydantic were needed
    assert (without.returncode, without.stdout, without.stderr) == (
        with_pydantic.returncode,
        with_pydantic.stdout,
        with_pydantic.stderr,
    )
    assert with_pydantic.returncode in (0, 1, 2), with_pydantic.stderr


def test_a_warm_estimate_never_imports_pydantic(warm_cache: Path) -> None:
    p = run(["llava-7b", "--gpu", "rtx3090", "-q"], base_env(warm_cache), importtime=True)
    imported = [line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]
    assert p.returncode == 0 and "willitrun.memory" in imported
    assert not [m for m in imported if m.split(".")[0] == "pydantic"]


def test_a_cold_cache_falls_back_to_pydantic_with_the_same_answer(tmp_path: Path) -> None:
    args = ["llama-3.1-8b", "--gpu", "rtx3090", "--json"]
    cold = run(args, base_env(tmp_path / "cold"))  # nothing cached: the stand-ins cannot serve
    reference = run(args, {**base_env(tmp_path / "other"), "WILLITRUN_RECORDS": "0"})
    assert cold.returncode == reference.returncode == 0
    assert cold.stdout == reference.stdout and cold.stderr == reference.stderr
    # and the run that fell back stored the specs: the next one is served without pydantic
    warm = run(["llama-3.1-8b", "--gpu", "rtx3090", "-q"], base_env(tmp_path / "cold"), importtime=True)
    assert not [ln for ln in warm.stderr.splitlines() if ln.startswith("import time:") and "pydantic" in ln]


def test_a_cold_cache_check_answers_as_pydantic(tmp_path: Path) -> None:
    """`check` with the stand-ins on a cold cache (specs from the bundled catalog validated ahead of
    time, catalog/bundled.py) prints what validating each spec with pydantic prints."""
    args = ["check", "llama-3.1-8b", "llava-7b", "--gpu", "rtx3090", "--gpu", "t4"]
    cold = run(args, base_env(tmp_path / "cold"))
    reference = run(args, {**base_env(tmp_path / "other"), "WILLITRUN_RECORDS": "0"})
    assert cold.returncode == reference.returncode == 1
    assert cold.stdout == reference.stdout and cold.stderr == reference.stderr
    assert len(cold.stdout.splitlines()) == 5


FIELDS = """
import json, sys
from willitrun import records
records.enable()
from willitrun import archs, specs
classes = {}
for arch in archs.ARCHITECTURES:
    archs.spec_class(arch)
for name, mod in sorted(sys.modules.items()):
    if not name.startswith("willitrun."):
        continue
    for value in list(vars(mod).values()):
        if isinstance(value, type) and issubclass(value, records.Record) and value is not records.Record:
            classes[f"{value.__module__}.{value.__qualname__}"] = sorted(value.model_fields)
print(json.dumps(classes))
"""


def test_every_spec_class_has_pydantic_s_fields() -> None:
    """The cache decoder refuses an entry whose fields differ from the class's `model_fields`, so the
    stand-ins must find exactly the fields pydantic finds, for every spec class of every family."""
    import importlib

    from pydantic import BaseModel

    from willitrun import archs

    p = subprocess.run([sys.executable, "-c", FIELDS], capture_output=True, text=True, check=True, timeout=120)
    stand_ins = json.loads(p.stdout)
    for arch in archs.ARCHITECTURES:
        archs.spec_class(arch)
    expected = {}
    for key in stand_ins:
        module, _, qualname = key.rpartition(".")
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        assert isinstance(cls, type) and issubclass(cls, BaseModel), key
        expected[key] = sorted(cls.model_fields)
    assert stand_ins == expected
    assert len(stand_ins) >= len(set(archs.FAMILIES.values())), "every family defines at least one spec class"


def test_the_stand_ins_are_frozen_and_compare_by_value() -> None:
    code = """
from willitrun import records
records.enable()
from willitrun.records import BaseModel, Field
class A(BaseModel):
    x: int = Field(1, ge=0)
    y: list[int] = []
a, b = A.model_construct(x=2, y=[1]), A.model_construct(x=2, y=[1])
assert a == b and a.model_fields_set == {"x", "y"} and A.model_fields == {"x": None, "y": None}
try:
    a.x = 3
except TypeError:
    pass
else:
    raise SystemExit("not frozen")
try:
    A.model_validate({"x": 1})
except records.NeedsPydantic:
    print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert p.stdout.strip() == "ok", p.stderr


def test_spec_modules_take_pydantic_s_names_from_records() -> None:
    """A spec module that imported pydantic's BaseModel / Field / validators itself would load pydantic
    on every estimate and, worse, mix real models into the stand-in classes' hierarchy."""
    import re

    import willitrun

    src = Path(willitrun.__file__).parent
    offenders = []
    for path in [*sorted((src / "archs").glob("*.py")), src / "specs.py"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*from pydantic import (.+)", line)
            names = {x.strip().split(" as ")[0] for x in m.group(1).split(",")} if m else set()
            if names & {"BaseModel", "ConfigDict", "Field", "field_validator", "model_validator"}:
                offenders.append(f"{path.name}:{n}")
    assert offenders == []


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["table", "json"])
def test_a_rows_file_that_needs_pydantic_midway_prints_each_row_once(tmp_path: Path, extra: list[str]) -> None:
    """`check --rows` streams with the stand-ins: a spec neither cached nor bundled (a user spec), met
    after 300 rows were printed, starts the command again with pydantic, which skips the characters
    already printed (cli/checks.py SKIP_ENV): the output is the pydantic run's, byte for byte, each row once."""
    root = tmp_path / "specs"
    (root / "model_specs").mkdir(parents=True)
    bundled = Path(__file__).resolve().parents[2] / "model_specs" / "llama-2-7b.yaml"
    text = bundled.read_text().replace("id: llama-2-7b", "id: my-llama", 1)
    (root / "model_specs" / "my-llama.yaml").write_text(text)
    rows = tmp_path / "rows.csv"
    rows.write_text("llama-3.2-1b,rtx3090\n" * 300 + "my-llama,t4\nnope,t4\n" + "llama-3.2-1b,rtx3090,512\n" * 5)
    cache = tmp_path / "cache"
    env = {**base_env(cache), "WILLITRUN_SPECS_PATH": str(root)}
    warm = run(["check", "llama-3.2-1b", "--gpu", "rtx3090"], {**env, "WILLITRUN_RECORDS": "0"})
    assert warm.returncode == 0  # the cache now holds llama-3.2-1b and rtx3090, not my-llama
    args = ["check", "--rows", str(rows), *extra]
    strict = run(args, {**env, "WILLITRUN_RECORDS": "1"})  # no fallback allowed: it is needed here
    assert strict.returncode == 70 and "NeedsPydantic" in strict.stderr
    streamed = run(args, env)
    reference = run(args, {**base_env(tmp_path / "other"), "WILLITRUN_SPECS_PATH": str(root), "WILLITRUN_RECORDS": "0"})
    assert (streamed.returncode, streamed.stdout, streamed.stderr) == (
        reference.returncode,
        reference.stdout,
        reference.stderr,
    )
    assert reference.returncode == 2 and len(reference.stdout.splitlines()) == 307 + (not extra)


def test_the_output_skip_drops_exactly_what_was_printed() -> None:
    from willitrun.cli.checks import Output

    for skip in range(0, 12):
        got: list[str] = []
        out = Output(got.append, skip)
        for piece in ("abc", "", "defg", "hij", "k"):
            out(piece)
        assert "".join(got) == "abcdefghijk"[skip:] and out.count == 11
