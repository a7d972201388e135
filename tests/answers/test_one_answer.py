"""One question, one answer: the main command, `check`, `ladder` and `gpus` give the same total and the
same largest context for the same model, type and engine (issue 12: the main command said 5.05 GiB /
11,776 tokens for llama-3.1-8b q4_k_m on an RTX 2060, check/ladder/gpus 5.82 GiB / 4,932)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun.cli import app

CASES = [
    ("llama-3.1-8b", "rtx2060", "q4_k_m", None),
    ("llama-3.1-8b", "rtx2060", "q4_k_m", "transformers"),
    ("llama-2-7b", "rtx3090", "q8_0", None),
    ("mistral-7b", "rtx4060", "fp16", None),
    ("qwen2.5-7b", "rtx4090", "q4_0", None),
    ("llama-3.2-1b", "rtx3060", "bf16", None),
    ("llama-2-7b", "rtx4090", "q4_k_m", "ollama"),
]


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, r.output


@pytest.mark.parametrize(("model", "gpu", "dtype", "engine"), CASES)
def test_main_check_ladder_gpus_agree(model, gpu, dtype, engine):
    eng = ["--engine", engine] if engine else []
    _, out = _run(model, "--gpu", gpu, "--dtype", dtype, "--json", *eng)
    main = json.loads(out)
    total = main.get("max_device_bytes", main["total_bytes"])
    assert main["total_bytes"] == total
    context = main["max_context_tokens"]

    _, out = _run("check", model, "--gpu", gpu, "--dtype", dtype, "--json", *eng)
    check = json.loads(out)
    assert (check["total_bytes"], check["max_context_tokens"]) == (total, context)

    _, out = _run("ladder", model, "--gpu", gpu, "--json", *eng)
    rows = [r for r in json.loads(out)["rows"] if r["dtype"] in (dtype, "fp16" if dtype == "bf16" else dtype)
            and r["kv_dtype"] in ("f16", main["kv_dtype"])]
    if rows and main["kv_dtype"] in ("f16", "bf16", "fp16"):
        assert (rows[0]["total_bytes"], rows[0]["max_context_tokens"]) == (total, context)

    _, out = _run("gpus", model, "--dtype", dtype, "--json", *eng)
    table = json.loads(out)
    row = next(r for r in table["rows"] if r["gpu"] == gpu)
    assert table["total_bytes"] == total
    assert row["max_context_tokens"] == context


def test_an_imported_gguf_gives_the_same_answer_in_gpus_and_sweep(tmp_path):
    """Imported weights flow through gpus and sweep as through the main command (a q8_0 file: llama.cpp)."""
    from tests.importers.helpers import write_llama_gguf

    path = str(write_llama_gguf(tmp_path / "tiny-q8_0.gguf"))
    _, out = _run(path, "--gpu", "rtx3060", "--json")
    main = json.loads(out)
    assert main["engine"] == "llama.cpp" and main["dtype"] == "q8_0"
    _, out = _run("gpus", path, "--json")
    table = json.loads(out)
    row = next(r for r in table["rows"] if r["gpu"] == "rtx3060")
    assert (table["total_bytes"], row["max_context_tokens"]) == (main["total_bytes"], main["max_context_tokens"])
    _, out = _run("sweep", path, "--gpu", "rtx3060", "--json")
    assert json.loads(out)["max_context_tokens"] == main["max_context_tokens"]


def test_ladder_rows_on_llama_cpp_give_the_main_command_max_batch():
    """A llama.cpp row's largest batch is the main command's --max-batch for that type."""
    _, out = _run("ladder", "llama-2-7b", "--gpu", "rtx3060", "--engine", "llama.cpp", "--json")
    row = next(r for r in json.loads(out)["rows"] if (r["dtype"], r["kv_dtype"]) == ("q8_0", "f16"))
    assert row["fits"] and row["max_batch"] >= 1
    _, out = _run("llama-2-7b", "--gpu", "rtx3060", "--dtype", "q8_0", "--max-batch", "--json")
    assert json.loads(out)["max_batch"]["max_batch"] == row["max_batch"]
