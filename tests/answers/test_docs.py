"""docs/answers-json.md documents every key of the answers' JSON, with its type, and nothing else."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.answers.test_commands import extras
from willitrun.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "answers-json.md"
runner = CliRunner()


def documented() -> dict[str, dict[str, str]]:
    """`### `path`` heading -> {key: type} from the table under it."""
    out: dict[str, dict[str, str]] = {}
    path = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^### `([a-z_.\[\]]+)`$", line)
        if m:
            path = m.group(1)
            out[path] = {}
            continue
        m = re.match(r"^\| `([a-z_]+)` \| ([a-z ]+?) \|", line)
        if m and path:
            out[path][m.group(1)] = m.group(2)
    return out


def cli_json(*args):
    r = runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def roundtrip(data):
    return json.loads(json.dumps(data))


@pytest.fixture(scope="module")
def samples():
    ladder = cli_json("ladder", "llama-3.1-8b", "--gpu", "rtx4060-ti-16gb", "--json")
    gpus = cli_json("gpus", "llama-3.2-11b-vision", "--json")
    count = cli_json("gpus", "llama-2-70b", "--count", "rtx3090", "--json")
    sweep = cli_json("sweep", "whisper-large-v3", "--gpu", "t4", "--json")
    _, one = extras("llama-2-70b", ["rtx3090"], offload=True, speed=True, max_batch=True)
    _, several = extras("llama-2-70b", ["2xa100-80gb"], speed=True)
    one, several = roundtrip(one.data), roundtrip(several.data)
    engine = cli_json("llama-3.1-8b", "--vram", "6", "--dtype", "q4_k_m", "-c", "32768", "--offload", "--json")
    # with a context: no --fit plan, the expert offload willitrun searches; without: --fit's own plan (engine_plan)
    moe = cli_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "-c", "4096", "--json")
    plan = cli_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--json")
    return {
        "engine_plan": plan["engine_plan"],
        "engine_offload": engine["engine_offload"],
        "host_memory": engine["host_memory"],
        "expert_offload": moe["expert_offload"],
        "ladder": ladder,
        "ladder.rows[]": ladder["rows"][0],
        "gpus": gpus,
        "gpus.rows[]": gpus["rows"][0],
        "count": count,
        "sweep": sweep,
        "sweep.points[]": sweep["points"][0],
        "max_batch": one["max_batch"],
        "offload": one["offload"],
        "split": several["split"],
        "split.cards[]": several["split"]["cards"][0],
        "decode_speed": one["decode_speed"],
        "decode_speed.terms[]": one["decode_speed"]["terms"][1],
    }


TYPES = {
    "int": int,
    "str": str,
    "bool": bool,
    "float": float,
    "object": dict,
    "list of object": list,
    "list of str": list,
    "list of int": list,
}


def check_type(value, typ: str) -> bool:
    if value is None:
        return typ.endswith(" or null")
    base = TYPES[typ.removesuffix(" or null")]
    if base is int and isinstance(value, bool):
        return False
    if typ.startswith("list of ") and value:
        item = {"object": dict, "str": str, "int": int}[typ.removeprefix("list of ")]
        return all(isinstance(v, item) for v in value)
    return isinstance(value, base)


def test_every_documented_object_is_sampled(samples):
    assert set(documented()) == set(samples)


@pytest.mark.parametrize("path", sorted(documented()))
def test_keys_and_types_match_the_doc(samples, path):
    doc, data = documented()[path], samples[path]
    assert set(data) == set(doc), f"{path}: undocumented {set(data) - set(doc)}, missing {set(doc) - set(data)}"
    for key, typ in doc.items():
        assert check_type(data[key], typ), (path, key, typ, data[key])


def test_nested_copies_have_the_same_keys(samples):
    doc = documented()
    assert set(samples["ladder"]["best"]) == set(doc["ladder.rows[]"])
    assert set(samples["count"]["split"]) == set(doc["split"])
    assert set(samples["count"]["split"]["cards"][0]) == set(doc["split.cards[]"])


def test_answer_keys_are_not_estimate_keys():
    # the estimate's own keys (docs/json-output.md) and the answers' objects do not collide
    base = set(re.findall(r"^\| `([a-z_]+)` \|", (DOC.parent / "json-output.md").read_text(), re.M))
    assert not base & {"max_batch", "split", "offload", "decode_speed", "expert_offload", "host_memory"}
