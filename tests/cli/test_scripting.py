"""Scripting and CI surface: the JSON contract, several checks at once, validate, the hook."""

import json
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
DOCUMENTED_CODES = {int(c) for c in ExitCode}


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


def documented_keys(section: int = 0) -> dict[str, str]:
    """key -> type from a table in docs/json-output.md (0: the estimate, 1: with an engine profile).
    A row may document several keys (`a`, `b`); an empty type means "as above"."""
    text = (ROOT / "docs" / "json-output.md").read_text().split("## With an engine profile")[section]
    text = text.split("\n## ")[0]  # up to the next section (`explain --json`, check's error rows: tables of their own)
    keys: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`[a-z_]+`(, `[a-z_]+`)*", cells[0]):
            continue
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            keys[name] = cells[1] or documented_keys(0)[name]
    return keys


TYPES = {
    "int": int,
    "str": str,
    "bool": bool,
    "list": list,
    "list of str": list,
    "dict": dict,
    "list of str or null": (list, type(None)),
    "str or null": (str, type(None)),
}


def test_json_output_matches_the_documented_schema():
    doc = documented_keys()
    assert len(doc) > 30
    for args in (
        ("llava-7b", "--gpu", "rtx3090"),
        ("whisper-large-v3", "--vram", "4", "--beams", "3"),
        ("llama-3.2-11b-vision", "--gpu", "rtx4060-ti-16gb"),
        ("t5-11b", "--gpu", "a100-80gb"),
    ):
        r = run(*args, "--json")
        assert r.exit_code in (0, 1)
        d = json.loads(r.stdout)
        assert set(d) == set(doc), set(d) ^ set(doc)
        for key, typ in doc.items():
            assert isinstance(d[key], TYPES[typ]), (key, d[key])


def test_engine_json_matches_the_documented_schema():
    doc = documented_keys(1)
    for args in (
        ("llama-2-7b", "--gpu", "rtx3060", "--dtype", "q4_k_m"),
        ("whisper-small", "--gpu", "t4", "-e", "whisper.cpp"),
        ("llama-3-8b", "--gpu", "h100-sxm", "-e", "vllm"),
        ("llama-3-8b", "--vram", "8", "-e", "ollama"),
    ):
        r = run(*args, "--json")
        assert r.exit_code in (0, 1), r.output
        d = json.loads(r.stdout)
        assert set(d) == set(doc), set(d) ^ set(doc)
        for key, typ in doc.items():
            assert isinstance(d[key], {**TYPES, "dict": dict}[typ]), (key, d[key])


def test_check_several_pairs_jsonl():
    r = run("check", "llama-3-8b", "whisper-tiny", "--gpu", "rtx3060", "--gpu", "rtx4090", "--json")
    assert r.exit_code == 1  # llama-3-8b in bf16 does not fit 12 GiB
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["model"], d["gpu"], d["fits"]) for d in lines] == [
        ("llama-3-8b", "rtx3060", False),
        ("llama-3-8b", "rtx4090", True),
        ("whisper-tiny", "rtx3060", True),
        ("whisper-tiny", "rtx4090", True),
    ]


def test_check_rows_file(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("# model,gpu,context\nllama-3-8b,rtx4090,8192\nwhisper-tiny,t4\n")
    r = run("check", "--rows", rows, "--json")
    assert r.exit_code == 0
    assert [json.loads(x)["context_tokens"] for x in r.stdout.splitlines()] == [8192, 448]
    rows.write_text("llama-3-8b\n")
    r = run("check", "--rows", rows)
    assert r.exit_code == 2 and "rows.csv:1: expected model,gpu[,context]" in r.stderr


def test_validate_reports_every_file_with_lines(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    good = (ROOT / "model_specs" / "llama-2-7b.yaml").read_text()
    (d / "tagged.yaml").write_text("id: !!python/object/apply:os.system ['true']\n")
    (d / "empty.yaml").write_text("")
    (d / "wrong-type.yaml").write_text(
        good.replace("id: llama-2-7b", "id: wrong-type").replace("hidden_size: 4096", 'hidden_size: "4096"')
    )
    (d / "bad-heads.yaml").write_text(
        good.replace("id: llama-2-7b", "id: bad-heads").replace("num_key_value_heads: 32", "num_key_value_heads: 5")
    )
    (d / "bad-dtype.yaml").write_text(
        good.replace("id: llama-2-7b", "id: bad-dtype").replace("dtype: float16", "dtype: float12")
    )
    (d / "no-source.yaml").write_text(
        good.replace("id: llama-2-7b", "id: no-source")
        .replace("sources:\n", "sources:\n  other: x\n")
        .replace("  config: ", "  unrelated: ")
    )
    r = run("validate", tmp_path)
    assert r.exit_code == ExitCode.SPEC
    err = r.stderr
    assert "tagged.yaml:1: malformed YAML: could not determine a constructor for the tag" in err
    assert "empty.yaml: empty file" in err
    assert re.search(r"wrong-type.yaml:\d+: config.hidden_size: Input should be a valid integer", err)
    assert re.search(
        r"bad-heads.yaml:\d+: config: num_attention_heads \(32\) is not a multiple of num_key_value_heads \(5\)", err
    )
    assert re.search(r"bad-dtype.yaml:\d+: dtype: Input should be 'float32', 'float16' or 'bfloat16'", err)
    assert re.search(r"warning: .*no-source.yaml:\d+: config.vocab_size: number without a source", err)
    assert "Traceback" not in r.output


def test_strict_turns_warnings_into_errors(tmp_path):
    d = tmp_path / "hardware_specs"
    d.mkdir()
    src = (ROOT / "hardware_specs" / "rtx3090.yaml").read_text()
    (d / "rtx3090.yaml").write_text(re.sub(r"  bandwidth_gb_s: .*\n", "", src))
    assert run("validate", tmp_path).exit_code == 0
    r = run("validate", "--strict", tmp_path)
    assert r.exit_code == ExitCode.SPEC and "bandwidth_gb_s: number without a source" in r.stderr


def test_validate_empty_directory_is_a_usage_error(tmp_path):
    r = run("validate", tmp_path)
    assert r.exit_code == ExitCode.USAGE and "no spec files" in r.stderr


def test_pre_commit_hook_runs_validate():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "willitrun-validate" and hook["entry"].startswith("willitrun validate")
    assert re.search(hook["files"], "model_specs/llama-2-7b.yaml")
    assert not re.search(hook["files"], "docs/spec-format.md")


# ---- never a traceback, always a documented exit code ----------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.text(max_size=12)
)
documents = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5), max_leaves=20
)
KEYS = [
    "id",
    "name",
    "architecture",
    "dtype",
    "sources",
    "config",
    "vocab_size",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vendor",
    "memory_gib",
    "text_config",
    "cross_attention_layers",
]
spec_like = st.dictionaries(st.sampled_from(KEYS), documents, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(documents, spec_like), kind=st.sampled_from(["model_specs", "hardware_specs"]))
def test_any_spec_document_gives_a_documented_exit(tmp_path, doc, kind):
    d = tmp_path / kind
    d.mkdir(exist_ok=True)
    f = d / "fuzz.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = run("validate", f)
    assert r.exception is None or isinstance(r.exception, SystemExit), (doc, r.exception)
    assert r.exit_code in (ExitCode.FITS, ExitCode.SPEC), r.output
    assert "Traceback" not in r.output


ints = st.one_of(st.integers(-5, 3), st.integers(10**6, 10**12))


@settings(max_examples=80, deadline=None)
@given(
    model=st.sampled_from(["llava-7b", "whisper-tiny", "t5-small", "llama-3.2-11b-vision", "nope"]),
    opts=st.lists(
        st.tuples(st.sampled_from(["--context", "--batch", "--beams", "--images", "--encoder-tokens"]), ints),
        max_size=3,
    ),
    dtype=st.sampled_from([None, "fp16", "q4_k_m", "zz"]),
    vram=st.sampled_from(["24", "0.0001", "1e3GB", "x"]),
)
def test_any_arguments_give_a_documented_exit(model, opts, dtype, vram):
    args = [model, "--vram", vram, "-q"] + [str(x) for o in opts for x in o] + (["--dtype", dtype] if dtype else [])
    r = run(*args)
    assert isinstance(r.exception, SystemExit) or r.exception is None, (args, r.exception)
    assert r.exit_code in DOCUMENTED_CODES, (args, r.output)
    # input that is wrong on its face must say so (2), never look like "does not fit" (1)
    # a repeated option keeps its last value (click's rule), so only the last one can make it wrong
    last = dict(opts)
    bad = (
        model == "nope"
        or vram != "24"
        or dtype == "zz"
        or any(v < (0 if o == "--images" else 1) for o, v in last.items())
    )
    if bad:
        assert r.exit_code == ExitCode.USAGE, (args, r.exit_code)


# ---- every numeric option: huge, negative, zero, fractional, non-finite, unicode digits ------------
# The documented bounds (README, "Numbers on the command line"), written out here rather than imported.
WHOLE = {
    "--context": (1, 2**32),
    "--batch": (1, 2**20),
    "--beams": (1, 1024),
    "--images": (0, 1024),
    "--encoder-tokens": (1, 2**20),
    "--ubatch": (1, 2**20),
    "--parallel": (1, 4096),
    "--gpu-layers": (0, 100_000),
}
DECIMAL = {"--gpu-memory-utilization": (0.01, 1.0), "--system-bandwidth": (0.001, 1_000_000)}
numbers = st.one_of(
    st.integers(-3, 5),
    st.integers(-(10**30), 10**30),
    st.integers(0, 500).map(lambda k: 10**k),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2),
    st.sampled_from(["", " ", "²", "٣", "１２", "1e3", "0x10", "1_000", "--", "nan", "-inf", "4.0", "+7"]),
)


def text_of(value) -> str:
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def valid(option: str, text: str) -> bool:
    """What the README promises: a whole number (ASCII digits) or a finite decimal, within the bounds."""
    t = text.strip()
    if option in WHOLE:
        low, high = WHOLE[option]
        return re.fullmatch(r"[+-]?[0-9]+", t) is not None and low <= int(t) <= high
    low, high = DECIMAL[option]
    if not re.fullmatch(r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)", t):
        return False
    return low <= float(t) <= high


@settings(max_examples=150, deadline=None)
@given(
    opts=st.lists(st.tuples(st.sampled_from(sorted({**WHOLE, **DECIMAL})), numbers), min_size=1, max_size=3),
    engine=st.sampled_from([None, "llama.cpp", "vllm", "ollama"]),
    named=st.booleans(),
)
def test_every_numeric_option_is_bounded(opts, engine, named):
    """Any value of any numeric option: a documented exit code, never the internal-error code; a value
    outside the documented bounds (the last one given counts, as click keeps a repeated option's last
    value) exits 2 with one line that names an option."""
    args = ["llama-2-7b", "--vram", "24", "-q"] + [x for o, v in opts for x in (o, text_of(v))]
    if engine:
        args += ["--engine", engine]
    if named:
        args.insert(0, "estimate")  # the command named, or found by the default-command group
    r = run(*args)
    assert isinstance(r.exception, SystemExit) or r.exception is None, (args, r.exception)
    assert r.exit_code in DOCUMENTED_CODES - {ExitCode.INTERNAL}, (args, r.output)
    assert "Traceback" not in r.output
    last = {o: text_of(v) for o, v in opts}
    bad = [o for o, t in last.items() if not valid(o, t)]
    if bad:
        assert r.exit_code == ExitCode.USAGE, (args, r.exit_code)
        assert r.stderr.count("\n") == 1 and any(o in r.stderr for o in last), r.stderr


@settings(max_examples=60, deadline=None)
@given(context=numbers, size=numbers, count=numbers)
def test_other_numbers_are_bounded(context, size, count):
    """--vram SIZE, --gpu NxGPU and a rows file's context: exit 2 or an answer, never a crash."""
    for args in (
        ["llama-2-7b", "--vram", text_of(size), "-q"],
        ["llama-2-7b", "--gpu", f"{text_of(count)}xrtx3090", "-q"],
        ["ladder", "llama-2-7b", "--vram", "24", "--context", text_of(context)],
    ):
        r = run(*args)
        assert r.exit_code in DOCUMENTED_CODES - {ExitCode.INTERNAL}, (args, r.output)
        assert "Traceback" not in r.output


def readme_commands() -> list[list[str]]:
    """`$ willitrun ...` lines of the README's console blocks that name catalog models (not paths, hf:, names
    found in this machine's caches such as ORG/NAME or qwen3:8b, nor `scan` and `explain`, which read this
    machine's own models and logs)."""
    import shlex

    cmds = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("$ willitrun "):
            args = shlex.split(line[2:].split("#")[0])[1:]
            if any(a.startswith(("./", "hf:", "/")) or "/" in a or ":" in a for a in args) or args[:1] in (
                ["scan"],
                ["explain"],
            ):
                continue
            cmds.append(args)
    return cmds


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --plot writes relative to the working directory
    (tmp_path / "docs").mkdir()
    cmds = readme_commands()
    assert len(cmds) >= 6
    for args in cmds:
        r = run(*args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        assert r.exit_code in (0, 1, 5), (args, r.output)  # fits, does not fit, tight


def test_check_rows_refuse_context_zero(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("llama-2-7b,rtx3090,0\n")
    r = run("check", "--rows", rows)
    assert r.exit_code == 2 and "at least 1" in r.stderr
