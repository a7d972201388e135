"""Crashes of issue 17 section 1: each was an internal error (exit 70); each is now a documented code
and one line naming the file and field.

Each case runs through the real entry point (`python -m willitrun`), as a user meets it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml

from willitrun.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = (0, 1, 5)  # fits, does not fit, tight (README "Exit codes")
TINY = {
    "model_type": "llama",
    "hidden_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "intermediate_size": 1024,
    "vocab_size": 1000,
}


def run(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_")}
    full = {**base, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "willitrun", *map(str, args)],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_line(r: subprocess.CompletedProcess[str], code: int, *says: str) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert all(s in lines[0] for s in says), lines[0]
    return lines[0]


def config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("model_type", [["llama"], {"a": 1}, 7, None])
@pytest.mark.parametrize("where", ["text_config", "vision_config"])
def test_a_nested_model_type_that_is_not_a_string(tmp_path, model_type, where):
    cfg = config(tmp_path, {"model_type": "llava", where: {"model_type": model_type}})
    r = run(cfg, "--gpu", "t4")
    if model_type is None:  # null: the class default, as transformers reads it... or a clean refusal
        assert r.returncode in (0, 1, 2, 3, 5) and "internal error" not in r.stderr, r.stderr
        return
    one_line(r, ExitCode.SPEC, f"{where}.model_type must be a string, not {type(model_type).__name__}")


def test_a_10kb_model_type_gives_a_short_line(tmp_path):
    """Today's main echoed all of it: a 10,872-character error line."""
    line = one_line(
        run(config(tmp_path, {**TINY, "model_type": "x" * 10_000}), "--gpu", "t4"),
        ExitCode.USAGE,
        "model_type 'xxx",
        "more characters",
    )
    assert len(line) <= len("error: ") + 400  # errors.ERROR_LINE_MAX


def test_an_fp8_block_size_that_is_not_a_pair(tmp_path):
    cfg = config(tmp_path, {**TINY, "quantization_config": {"quant_method": "fp8", "weight_block_size": 128}})
    one_line(
        run(cfg, "--gpu", "t4"),
        ExitCode.SPEC,
        "quantization_config.weight_block_size: a pair of integers such as [128, 128], not 128",
    )


@pytest.mark.parametrize("side", [None, "big", 0])
def test_idefics3_image_size_null(tmp_path, side):
    cfg = config(tmp_path, {"model_type": "idefics3", "vision_config": {"image_size": side}})
    one_line(run(cfg, "--gpu", "t4"), ExitCode.SPEC, f"vision_config.image_size: a positive integer, not {side!r}")


@pytest.fixture
def bad_gpus(tmp_path) -> Path:
    d = tmp_path / "specs" / "hardware_specs"
    d.mkdir(parents=True)
    data = yaml.safe_load((ROOT / "hardware_specs" / "t4.yaml").read_text())
    data.pop("reported_total_mib")
    for name, change in (("tiny", {"memory_gib": 1.0e-300}), ("slow", {"bandwidth_gb_s": 1.0e-300})):
        (d / f"{name}.yaml").write_text(yaml.safe_dump({**data, "id": name, "aliases": [], "nvml_names": [], **change}))
    return d.parent


@pytest.mark.parametrize(
    "command",
    [
        ["llama-2-7b"],
        ["llama-2-7b", "--offload", "--speed"],
        ["ladder", "llama-2-7b"],
        ["sweep", "llama-2-7b"],
        ["check", "llama-2-7b"],
        ["llama-2-7b", "--engine", "llama.cpp"],
    ],
)
@pytest.mark.parametrize(
    ("gpu", "says"),
    [
        ("tiny", "memory_gib: 1e-300 GiB is less than one byte"),
        ("slow", "bandwidth_gb_s: 1e-300 GB/s is less than one byte per second"),
    ],
)
def test_a_gpu_validate_refuses_is_refused_by_every_answer(bad_gpus, command, gpu, says):
    """`--offload --speed` on the slow one divided by zero (exit 70); the tiny one answered "does not fit"."""
    one_line(run(*command, "--gpu", gpu, "--specs-dir", bad_gpus), ExitCode.SPEC, f"{gpu}.yaml:", says)
    r = run("validate", bad_gpus)
    assert r.returncode == ExitCode.SPEC and says in r.stdout + r.stderr


def test_validate_on_a_folder_with_symlink_loops(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "loop.yaml").symlink_to("loop.yaml")
    (d / "a.yaml").symlink_to("b.yaml")
    (d / "b.yaml").symlink_to("a.yaml")
    (tmp_path / "self").symlink_to("self")
    r = run("validate", tmp_path)
    assert r.returncode == ExitCode.SPEC and "internal error" not in r.stderr, r.stderr
    for name in ("a.yaml", "b.yaml", "loop.yaml"):
        assert f"model_specs/{name}: cannot read: Too many levels of symbolic links" in r.stdout + r.stderr
    one_line(run("validate", tmp_path / "self"), ExitCode.SPEC, "self: cannot read")


@pytest.mark.parametrize("text", ["gpu = " + "[" * 3000 + "]" * 3000, "gpu = " + "{a = " * 3000 + "1" + "}" * 3000])
def test_a_config_toml_nested_3000_deep(tmp_path, text):
    if sys.version_info < (3, 11):
        pytest.skip("3.10 reads config.toml line by line, without nesting")
    (tmp_path / "willitrun").mkdir()
    (tmp_path / "willitrun" / "config.toml").write_text(text)
    one_line(
        run("llama-2-7b", "-q", env={"XDG_CONFIG_HOME": str(tmp_path)}),
        ExitCode.USAGE,
        "config.toml: nested too deeply",
    )


def _tamper(cache_dir: Path, change) -> None:  # type: ignore[no-untyped-def]
    [path] = cache_dir.glob("catalog-*.json")
    head, _, body = path.read_bytes().partition(b"\n")
    entries = json.loads(body)
    change(entries)
    body = json.dumps(entries, separators=(",", ":")).encode()
    header = {**json.loads(head), "crc32": zlib.crc32(body)}  # a valid checksum
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


def _key(entries: dict, name: str) -> str:
    return next(k for k in entries if k.endswith(os.sep + name))


CHANGES = {
    "a GPU spec where a model spec belongs": lambda e: e[_key(e, "llama-2-7b.yaml")].__setitem__(
        "spec", e[_key(e, "t4.yaml")]["spec"]
    ),
    "a string for the spec": lambda e: e[_key(e, "llama-2-7b.yaml")].__setitem__("spec", "x"),
    "another model's spec": lambda e: e[_key(e, "llama-2-7b.yaml")].__setitem__(
        "spec", e[_key(e, "mistral-7b.yaml")]["spec"]
    ),
    "an index that is a string": lambda e: e[_key(e, "llama-2-7b.yaml")].__setitem__("index", "x"),
    "aliases that are numbers": lambda e: e[_key(e, "t4.yaml")].__setitem__(
        "index", {"aliases": [1], "nvml_names": 5, "name": 3}
    ),
    "an entry that is a list": lambda e: e.__setitem__(_key(e, "llama-2-7b.yaml"), []),
    # the leaves: each value must have its field's type and bounds (catalog/cache.py _conforms)
    "a string for hidden_size": lambda e: e[_key(e, "llama-2-7b.yaml")]["spec"][4]["config"][4].__setitem__(
        "hidden_size", "x"
    ),
    "zero attention heads": lambda e: e[_key(e, "llama-2-7b.yaml")]["spec"][4]["config"][4].__setitem__(
        "num_attention_heads", 0
    ),
    "a list for dtype": lambda e: e[_key(e, "llama-2-7b.yaml")]["spec"][4].__setitem__("dtype", ["L", ["x"]]),
    "a string for the config": lambda e: e[_key(e, "llama-2-7b.yaml")]["spec"][4].__setitem__("config", "x"),
    "a string for a GPU's memory": lambda e: e[_key(e, "t4.yaml")]["spec"][4].__setitem__("memory_gib", "16"),
    "a negative reported memory": lambda e: e[_key(e, "t4.yaml")]["spec"][4].__setitem__("reported_total_mib", -5),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_cache_entry_of_the_wrong_shape_with_a_valid_checksum(tmp_path, change):
    env = {"WILLITRUN_CACHE_DIR": str(tmp_path / "cache")}
    args = ("llama-2-7b", "--gpu", "tesla-t4", "--json")
    good = run(*args, env=env)
    assert run("mistral-7b", "--gpu", "t4", "-q", env=env).returncode in VERDICTS
    assert good.returncode in VERDICTS, good.stderr
    _tamper(tmp_path / "cache", change)
    again = run(*args, env=env)  # the damaged entry is a miss: the file is read again
    assert (again.returncode, again.stdout, again.stderr) == (good.returncode, good.stdout, good.stderr)
