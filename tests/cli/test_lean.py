"""The lean path (cli/lean.py: plain estimate lines without typer) answers exactly as typer does."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from willitrun.cli import _lean, app
from willitrun.cli.lean import parse_check, parse_estimate, parse_ladder
from willitrun.cli.registry import COMMAND_NAMES

runner = CliRunner()


def lean(args: list[str]) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _lean(args)
    return code, out.getvalue(), err.getvalue()


def typer_path(args: list[str]) -> tuple[int, str, str]:
    r = runner.invoke(app, args, env={"NO_COLOR": "1"})
    return r.exit_code, r.stdout, r.stderr


def test_what_the_lean_path_takes():
    assert parse_estimate(["llava-7b", "--gpu", "rtx3090"], COMMAND_NAMES) is not None
    assert parse_estimate(["-q", "--gpu=rtx3090", "llava-7b", "--json"], COMMAND_NAMES) is not None
    for args in (
        ["check", "x"],
        ["llava-7b", "-h"],
        ["llava-7b", "--context", "-5"],
        ["a", "b"],
        ["llava-7b", "--gpu"],
        ["llava-7b", "-qg", "x"],
        ["--", "llava-7b"],
        ["llava-7b", "--nope"],
    ):
        assert parse_estimate(args, COMMAND_NAMES) is None, args


OPTIONS = st.sampled_from(
    [
        ["--gpu", "rtx3090"],
        ["-g", "t4"],
        ["--gpu", "2xrtx3090"],
        ["--vram", "24"],
        ["--vram", ""],
        ["--vram", "x"],
        ["-q"],
        ["--json"],
        ["--context", "2048"],
        ["-c", "0"],
        ["--context", "²"],
        ["--batch", "2"],
        ["-b", "99999999"],
        ["--dtype", "q4_k_m"],
        ["--dtype", "int4"],
        ["--kv-dtype", "q8_0"],
        ["--beams", "2"],
        ["--images", "2"],
        ["--engine", "VLLM"],
        ["-e", "llamacpp"],
        ["--engine", "ollama"],
        ["--ubatch", "256"],
        ["--parallel", "2"],
        ["--gpu-layers", "10"],
        ["--gpu-memory-utilization", "0.8"],
        ["--offload"],
        ["--speed"],
        ["--max-batch"],
        ["--system-bandwidth", "nan"],
        ["--system-bandwidth", "50"],
        ["--no-chart"],
        ["--flash-attn"],
        ["--no-flash-attn"],
        ["--split", "layer"],
        ["--image-size", "672x672"],
        ["--encoder-tokens", "100"],
        # the engines' own spellings and the options the lean path now reads from their one declaration
        ["-ngl", "10"],
        ["-np", "2"],
        ["-ub", "128"],
        ["--max-model-len", "2048"],
        ["--num-ctx", "1024"],
        ["-cmoe"],
        ["--n-cpu-moe", "2"],
        ["--llamacpp-version", "2024-05"],
        ["-bo", "2"],
        ["-nf"],
        ["-bs", "2"],
        ["--swa-full"],
        ["--max-num-seqs", "8"],
        ["-tp", "2"],
        ["--no-op-offload"],
        ["--compute-type", "int8"],
        ["--cuda", "13"],
    ]
)


@settings(max_examples=120, deadline=None)
@given(
    model=st.sampled_from(["llava-7b", "llama-2-7b", "whisper-tiny", "t5-small", "nope"]),
    opts=st.lists(OPTIONS, max_size=4),
    first=st.booleans(),
)
def test_lean_and_typer_agree(model, opts, first):
    args = [x for o in opts for x in o]
    args = [*args, model] if first else [model, *args]
    code, out, err = lean(args)
    if code is None:
        return  # typer parses it
    assert (code, out, err) == typer_path(args), args


def test_what_the_lean_check_takes():
    assert parse_check(["check", "llava-7b", "--gpu", "rtx3090"]) is not None
    assert parse_check(["check", "--rows", "rows.csv", "--json", "-q"]) is not None
    assert parse_check(["check", "a", "b", "-g", "t4", "--gpu=rtx3090", "-c", "512", "-e", "vllm"]) is not None
    for args in (
        ["check"],
        ["check", "--json"],
        ["check", "x", "-h"],
        ["check", "x", "--gpu"],
        ["check", "x", "--gpu", "-t4"],
        ["check", "x", "-qg", "t4"],
        ["check", "--", "x"],
        ["check", "x", "--vram", "24"],
        ["check", "x", "--json=1"],
        ["x", "--gpu", "t4"],
    ):
        assert parse_check(args) is None, args


ROWS = Path(__file__).parent / "data" / "check-rows.csv"  # good rows, an unknown model, an impossible context
CHECK_OPTIONS = st.sampled_from(
    [
        ["--gpu", "rtx3090"],
        ["-g", "t4"],
        ["--gpu=nope"],
        ["--json"],
        ["-q"],
        ["--quiet"],
        ["--context", "2048"],
        ["-c", "0"],
        ["--context", "x"],
        ["--dtype", "q4_k_m"],
        ["--dtype", "nope"],
        ["--kv-dtype", "q8_0"],
        ["--engine", "llama.cpp"],
        ["-e", "llamacpp"],
        ["--engine", "nope"],
        ["--rows", "/nonexistent/rows.csv"],
        ["--rows", str(ROWS)],
        ["--specs-dir", "/nonexistent"],
    ]
)


@settings(max_examples=80, deadline=None)
@given(
    models=st.lists(st.sampled_from(["llava-7b", "whisper-tiny", "mamba-2.8b", "nope"]), max_size=2),
    opts=st.lists(CHECK_OPTIONS, max_size=4),
)
def test_lean_and_typer_agree_on_check(models, opts):
    args = ["check", *models, *(x for o in opts for x in o)]
    code, out, err = lean(args)
    if code is None:
        return  # typer parses it
    assert (code, out, err) == typer_path(args), args


def test_what_the_lean_ladder_takes():
    assert parse_ladder(["ladder", "llava-7b", "--gpu", "rtx3090"]) is not None
    assert parse_ladder(["ladder", "-q", "x", "--vram=24", "-b", "2", "--json", "-e", "vllm"]) is not None
    for args in (
        ["ladder"],
        ["ladder", "a", "b"],
        ["ladder", "x", "--help"],
        ["ladder", "x", "--gpu"],
        ["ladder", "x", "--dtype", "q4_0"],  # not a ladder option: typer refuses it
        ["ladder", "x", "-qg", "t4"],
        ["ladder", "--", "x"],
    ):
        assert parse_ladder(args) is None, args


LADDER_OPTIONS = st.sampled_from(
    [
        ["--gpu", "rtx3090"],
        ["-g", "t4"],
        ["--gpu=nope"],
        ["--vram", "24"],
        ["--vram", "x"],
        ["--json"],
        ["-q"],
        ["--context", "2048"],
        ["-c", "0"],
        ["--batch", "2"],
        ["--beams", "2"],
        ["--images", "2"],
        ["--image-size", "672x672"],
        ["--encoder-tokens", "100"],
        ["--engine", "llama.cpp"],
        ["-e", "vllm"],
        ["--margin", "1"],
        ["--specs-dir", "/nonexistent"],
    ]
)


@settings(max_examples=30, deadline=None)
@given(
    model=st.sampled_from(["llava-7b", "whisper-tiny", "t5-small", "nope"]),
    opts=st.lists(LADDER_OPTIONS, max_size=3),
    first=st.booleans(),
)
def test_lean_and_typer_agree_on_ladder(model, opts, first):
    rest = [x for o in opts for x in o]
    args = ["ladder", *(rest + [model] if first else [model, *rest])]
    try:
        code, out, err = lean(args)
    except Exception as exc:  # a bug below the command (the entry point makes it exit 70): typer meets it too
        r = runner.invoke(app, args, env={"NO_COLOR": "1"})
        assert type(r.exception) is type(exc), args
        return
    if code is None:
        return  # typer parses it
    assert (code, out, err) == typer_path(args), args
