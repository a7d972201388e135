"""Paths that are not regular files, names too long, files too large: one clean error, never a read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.importers.helpers import write_config
from willitrun import SpecError, UsageError, WillItRunError, load_catalog
from willitrun.catalog import load_spec
from willitrun.files import (
    CONFIG_JSON_CAP,
    SPEC_YAML_CAP,
    open_regular,
    path_type,
    read_bytes,
    read_text,
    safe_text,
)
from willitrun.importers import import_model, read_config, read_safetensors_header, spec_from_path
from willitrun.validate import validate_paths

ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "a" * 256  # one byte over NAME_MAX (255) on Linux and macOS: ENAMETOOLONG


def devices() -> list[Path]:
    return [Path(p) for p in ("/dev/zero", "/dev/urandom", "/dev/null") if os.path.exists(p)]


def odd_paths(tmp_path: Path, fifo: Path) -> dict[str, Path]:
    """Every kind of path that is not a regular file, and symlinks to each."""
    out = {"fifo": fifo, "directory": tmp_path / "adir"}
    out["directory"].mkdir()
    for dev in devices():
        out[dev.name] = dev
    for name, target in list(out.items()):
        link = tmp_path / f"link-to-{name}"
        link.symlink_to(target)
        out[f"symlink to {name}"] = link
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    out["symlink loop"] = loop
    return out


@pytest.mark.parametrize(
    "reader",
    [
        lambda p: read_bytes(p, 1 << 20),
        lambda p: read_text(p, 1 << 20),
        lambda p: open_regular(p),
        lambda p: load_spec(p, "model"),
        read_config,
        read_safetensors_header,
    ],
    ids=["read_bytes", "read_text", "open_regular", "load_spec", "read_config", "read_safetensors_header"],
)
def test_readers_refuse_what_is_not_a_regular_file(tmp_path, fifo, reader):
    for name, path in odd_paths(tmp_path, fifo).items():
        with pytest.raises(SpecError) as info:
            reader(path)
        line = str(info.value)
        assert "\n" not in line and str(path) in line, (name, line)


@pytest.mark.parametrize(
    "load", [spec_from_path, lambda p: import_model(str(p))], ids=["spec_from_path", "import_model"]
)
def test_a_model_path_that_is_not_a_file_or_directory_is_a_usage_error(tmp_path, fifo, load):
    for name, path in odd_paths(tmp_path, fifo).items():
        if "directory" in name:
            continue  # a directory is a model directory (here: one without config.json)
        with pytest.raises(UsageError, match=r"not a regular file|cannot read"):
            load(path)
    with pytest.raises(UsageError, match=r"no config.json"):
        load(tmp_path / "adir")


def test_messages_say_what_the_path_is(tmp_path, fifo):
    with pytest.raises(SpecError, match=r"pipe: is a FIFO, not a regular file$"):
        read_text(fifo, 10)
    if Path("/dev/zero").exists():
        with pytest.raises(SpecError, match=r"/dev/zero: is a character device, not a regular file$"):
            read_text("/dev/zero", 10)
    with pytest.raises(SpecError, match=r"is a directory, not a regular file$"):
        read_text(tmp_path, 10)
    with pytest.raises(SpecError, match=r"missing: no such file$"):
        read_text(tmp_path / "missing", 10)


def test_a_name_too_long_is_a_clean_error(tmp_path):
    path = tmp_path / LONG_NAME
    assert path_type(path) == ("other", "file name too long")
    with pytest.raises(SpecError, match="cannot read: file name too long"):
        read_text(path, 10)
    with pytest.raises(UsageError, match="cannot read: file name too long"):
        spec_from_path(path)
    with pytest.raises(UsageError, match="file name too long"):
        load_catalog([path]).files("model")
    with pytest.raises(UsageError, match=r"unknown model 'a{20}"):
        load_catalog().resolve("model", LONG_NAME)


def test_a_nul_byte_in_a_path_is_a_clean_error():
    assert path_type("a\0b").kind == "other"
    with pytest.raises(SpecError):
        read_text("a\0b", 10)


def test_size_caps_refuse_by_size_not_by_reading(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(SPEC_YAML_CAP + 1)  # a hole: nothing is written, and nothing may be read
    with pytest.raises(SpecError, match=f"too large for a spec file \\(the limit is {SPEC_YAML_CAP:,}\\)"):
        load_spec(big, "model")
    cfg = tmp_path / "config.json"
    with cfg.open("wb") as f:
        f.truncate(CONFIG_JSON_CAP + 1)
    with pytest.raises(SpecError, match=r"too large for a config.json"):
        read_config(cfg)
    assert read_bytes(big, SPEC_YAML_CAP + 1) == b"\0" * (SPEC_YAML_CAP + 1)


def test_a_byte_order_mark_and_non_utf8(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"\xef\xbb\xbfhello")
    assert read_text(f, 100) == "hello"
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        read_text(f, 100)


def test_config_json_and_safetensors_inside_a_model_directory(tmp_path, fifo):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").symlink_to("/dev/zero" if Path("/dev/zero").exists() else fifo)
    with pytest.raises(SpecError, match=r"config.json: is a"):
        spec_from_path(model)
    (model / "config.json").unlink()
    write_config(
        model,
        {
            "model_type": "llama",
            "vocab_size": 256,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
    )
    (model / "model.safetensors").symlink_to(fifo)
    with pytest.raises(SpecError, match=r"model.safetensors: is a FIFO"):
        spec_from_path(model)
    (model / "model.safetensors").unlink()
    (model / "model.safetensors.index.json").symlink_to(fifo)
    with pytest.raises(SpecError, match=r"index.json: is a FIFO"):
        spec_from_path(model)


def test_a_safetensors_dtype_that_is_a_list(tmp_path):
    raw = json.dumps({"w": {"dtype": ["F16"], "shape": [2], "data_offsets": [0, 4]}}).encode()
    f = tmp_path / "model.safetensors"
    f.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 4)
    with pytest.raises(SpecError, match=r"tensor 'w': unknown dtype \['F16'\]"):
        read_safetensors_header(f)


def test_spec_files_inside_specs_dir(tmp_path, fifo):
    d = tmp_path / "specs" / "model_specs"
    d.mkdir(parents=True)
    os.rename(fifo, d / "piped.yaml")
    if Path("/dev/urandom").exists():
        (d / "random.yml").symlink_to("/dev/urandom")
    cat = load_catalog([tmp_path / "specs"])
    assert cat.resolve("model", "llama-2-7b").id == "llama-2-7b"  # the alias index skips what it cannot read
    with pytest.raises(SpecError, match=r"piped.yaml: is a FIFO, not a regular file"):
        cat.resolve("model", "piped")
    report = validate_paths([tmp_path / "specs"])
    assert any("piped.yaml: is a FIFO" in e for e in report.errors)
    assert all(isinstance(e, str) and "\n" not in e for e in report.errors)


def test_validate_a_fifo_given_as_a_path_is_checked_with_the_rest(tmp_path, fifo):
    good = tmp_path / "hardware_specs" / "rtx3090.yaml"
    good.parent.mkdir()
    good.write_text((ROOT / "hardware_specs" / "rtx3090.yaml").read_text())
    report = validate_paths([fifo, good])
    assert report.errors == [f"{fifo}: is a FIFO, not a regular file"] and report.checked == 2


def test_safe_text_escapes_terminal_control():
    assert safe_text("plain Ünïcode 名前") == "plain Ünïcode 名前"
    assert safe_text("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert safe_text("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert safe_text("\u202eevil\x9b") == "\\u202eevil\\x9b"  # a bidi override and the C1 CSI
    assert safe_text(Path("x\x07")) == "x\\x07"


def test_errors_never_carry_raw_control_characters(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "evil\x1b[2J.yaml").write_text("id: [\n")
    report = validate_paths([tmp_path])
    assert report.errors and all("\x1b" not in e for e in report.errors)
    assert "evil\\x1b[2J.yaml:" in report.errors[0]


def test_every_error_here_is_a_willitrun_error(tmp_path, fifo):
    # Whatever the reader, the CLI maps these to exit 2 or 3: never an OSError or a traceback.
    for path in odd_paths(tmp_path, fifo).values():
        for call in (lambda p: load_spec(p, "gpu"), read_config):
            with pytest.raises(WillItRunError) as info:
                call(path)
            assert info.value.exit_code in (2, 3)


def test_an_imported_name_with_escape_sequences_is_escaped_and_written_loadable(tmp_path):
    from willitrun.files import parse_yaml
    from willitrun.importers import write_spec_yaml

    model = tmp_path / "evil\x1b[31m"
    write_config(
        model,
        {
            "model_type": "llama",
            "vocab_size": 256,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
    )
    spec, _ = spec_from_path(model)
    assert spec.name == "evil\\x1b[31m"
    text = write_spec_yaml(spec, str(model / "config.json"))
    assert "\x1b" not in text.splitlines()[0]
    assert parse_yaml(text, "written").data["sources"]["config"] == str(model / "config.json")
