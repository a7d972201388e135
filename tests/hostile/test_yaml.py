"""Spec YAML that is malformed on purpose: one line naming the file and line, at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from willitrun import SpecError
from willitrun.catalog import load_spec
from willitrun.files import YAML_MAX_DEPTH, YAML_MAX_NODES, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
LLAMA = (ROOT / "model_specs" / "llama-2-7b.yaml").read_text()


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["id: lol", 'a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"aliases: [*a{levels}]")
    return "\n".join(lines) + "\n"


def problem(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "f.yaml")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_an_alias_bomb_is_refused_at_its_first_anchor():
    assert (
        problem(billion_laughs()) == "f.yaml:2: YAML anchors and aliases (&name, *name) are not allowed in spec files"
    )


def test_an_alias_anywhere_is_refused_with_its_line():
    assert problem("a: 1\nb: [x, *y]\n").startswith("f.yaml:2: YAML anchors and aliases")
    assert problem("a: &x 1\n").startswith("f.yaml:1: YAML anchors")


def test_merge_keys_are_refused():
    assert "merge keys (<<)" in problem("a:\n  <<: {b: 1}\n")


def test_duplicate_keys_say_so():
    text = LLAMA.replace("  hidden_size: 4096\n", "  hidden_size: 4096\n  hidden_size: 8192\n")
    line = text.splitlines().index("  hidden_size: 8192") + 1
    assert problem(text) == f"f.yaml:{line}: duplicate key 'hidden_size'"
    assert problem("a: 1\nb: 2\na: 3\n") == "f.yaml:3: duplicate key 'a'"


@pytest.mark.parametrize("digits", [4301, 5000, 100_000])
def test_integers_over_4300_digits(digits):
    assert problem(f"id: x\nvocab_size: {'9' * digits}\n") == (
        f"f.yaml:2: an integer of {digits:,} digits (more than 4,300)"
    )


def test_an_integer_of_4300_digits_loads():
    assert parse_yaml(f"n: {'9' * 4300}\n", "f").data["n"] == 10**4300 - 1


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1.0e+400", "beyond the float range"),
        ("-1.0e+309", "beyond the float range"),
        (".inf", "beyond the float range"),
        (".nan", "not a number"),
    ],
)
def test_floats_beyond_range(value, says):
    assert problem(f"memory_gib: {value}\n") == f"f.yaml:1: {value!r} is {says}"


def test_deep_nesting_stops_early():
    # libyaml's own composer recurses in C (a segfault at ~100k levels) and its scanner is
    # quadratic in flow depth: the event reader stops at the first level too deep.
    assert problem("[" * 200_000 + "]" * 200_000) == f"f.yaml:1: nested deeper than {YAML_MAX_DEPTH} levels"
    block = "".join(" " * i + "- \n" for i in range(YAML_MAX_DEPTH + 2))
    assert problem(block).endswith(f"nested deeper than {YAML_MAX_DEPTH} levels")


def test_too_many_values():
    assert (
        problem("[" + "0," * (YAML_MAX_NODES + 5) + "0]")
        == f"f.yaml:1: more than {YAML_MAX_NODES:,} values: not a spec file"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "a: !!python/object/apply:os.system ['true']\n",
            "malformed YAML: could not determine a constructor for the tag",
        ),
        ("a: !!python/name:os.system\n", "malformed YAML: could not determine a constructor for the tag"),
        ("a: !!set {x: null}\n", "malformed YAML: could not determine a constructor for the tag"),
        ("? [a]\n: 1\n", "a mapping key must be a plain value"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("a: [1\n", "malformed YAML"),
        ('a: "\\e[31m\n', "malformed YAML"),
    ],
)
def test_other_malformed_yaml(text, says):
    assert says in problem(text)


def test_lines_of_every_field_from_one_parse():
    doc = parse_yaml(LLAMA, "f")
    lines = LLAMA.splitlines()
    assert lines[doc.line(("config", "num_key_value_heads")) - 1].strip().startswith("num_key_value_heads:")
    assert lines[doc.line(("config",)) - 1] == "config:"
    assert doc.line(("config", "no_such_field")) == doc.line(("config",))  # the nearest parent
    assert doc.line(("sources", "config")) is not None
    doc = parse_yaml("a:\n  - [1, 2]\n  - [3, 4]\n", "f")
    assert doc.line(("a", 1, 0)) == 3 and doc.data == {"a": [[1, 2], [3, 4]]}


def test_the_loader_agrees_with_safe_load_on_every_shipped_spec():
    for f in sorted((ROOT / "model_specs").glob("*.yaml")) + sorted((ROOT / "hardware_specs").glob("*.yaml")):
        text = f.read_text()
        assert parse_yaml(text, str(f)).data == yaml.safe_load(text), f


def test_many_validation_errors_are_located_in_linear_time(tmp_path):
    # 2,000 errors re-parsed the file once each (12 s); the lines now come from the one parse.
    extra = "".join(f"  k{i}: {i}\n" for i in range(2000))
    f = tmp_path / "model_specs" / "errs.yaml"
    f.parent.mkdir()
    f.write_text(LLAMA.replace("id: llama-2-7b", "id: errs").replace("sources:\n", "sources:\n" + extra))
    with pytest.raises(SpecError) as info:
        load_spec(f, "model")
    problems = info.value.problems
    assert len(problems) == 2000
    assert problems[0] == f"{f}:{LLAMA.splitlines().index('sources:') + 2}: sources.k0: Input should be a valid string"


def test_unknown_fields_suggest_the_closest(tmp_path):
    f = tmp_path / "model_specs" / "typo.yaml"
    f.parent.mkdir()
    f.write_text(
        LLAMA.replace("id: llama-2-7b", "id: typo")
        .replace("num_key_value_heads:", "num_key_valu_heads:")
        .replace("dtype: float16", "dtype: float16\nparameters_declard: 1")
    )
    with pytest.raises(SpecError) as info:
        load_spec(f, "model")
    text = "\n".join(info.value.problems)
    assert "config.num_key_valu_heads: unknown field; did you mean 'num_key_value_heads'?" in text
    assert "parameters_declard: unknown field; did you mean 'parameters_declared'?" in text
    g = tmp_path / "hardware_specs" / "gpu.yaml"
    g.parent.mkdir()
    g.write_text(
        (ROOT / "hardware_specs" / "rtx3090.yaml")
        .read_text()
        .replace('id: "rtx3090"', "id: gpu")
        .replace("memory_type:", "memory_typ:")
    )
    with pytest.raises(SpecError) as info:
        load_spec(g, "gpu")
    assert any(
        p.endswith("memory_typ: unknown field; did you mean 'memory_type'? (see docs/spec-format.md)")
        for p in info.value.problems
    )


def test_nesting_is_refused_whichever_limit_the_parser_has(monkeypatch):
    """PyYAML 6.0.4's libyaml stops flow nesting at its own depth while scanning ahead, before the
    events `_build` counts: a file nested too deeply gets willitrun's answer either way. A parser that
    fails with a message of its own at the end of the input stands in for any such release."""
    import willitrun.files as files

    class Failing(yaml.SafeLoader):
        def check_event(self, *choices):  # type: ignore[no-untyped-def]
            mark = yaml.Mark("f", len(self.buffer) - 2, 0, len(self.buffer) - 2, None, None)
            raise yaml.parser.ParserError(None, None, "some release's own words", mark)

    monkeypatch.setattr(files, "_loader", lambda: Failing)
    assert problem("a: 1\nb: " + "[" * 40 + "]" * 40 + "\n") == f"f.yaml:2: nested deeper than {YAML_MAX_DEPTH} levels"
    assert (
        problem("a: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n") == "f.yaml:1: malformed YAML: some release's own words"
    )
