"""`willitrun scan`: exit code first, then the output; --json parsed and checked against the
estimate command on each file (one question, one answer)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from willitrun.cli import app


def _scan(*args: str):
    return CliRunner().invoke(app, ["scan", *args])


def test_scan_json_lists_ranks_and_skips(populated):
    _home, paths = populated
    result = _scan("--vram", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["vram_bytes"] == 1 << 30 and data["truncated"] is False
    rows = data["models"]
    assert len(rows) == 7  # 8 found, the truncated one skipped
    fits = [r["fits"] for r in rows]
    assert fits == sorted(fits, reverse=True)  # fits first
    for group in (True, False):
        sizes = [r["size_bytes"] for r in rows if r["fits"] is group]
        assert sizes == sorted(sizes, reverse=True)  # then by size, largest first
    by_name = {r["name"]: r for r in rows}
    # Qwen3-0.6B in bf16 needs ~2 GiB on transformers: not on 1 GiB
    assert by_name["Qwen/Qwen3-0.6B"]["fits"] is False and by_name["Qwen/Qwen3-0.6B"]["engine"] == "transformers"
    # transformers' count for Qwen3-0.6B, the tied head once (model_specs/qwen3-0.6b.yaml's note)
    assert by_name["Qwen/Qwen3-0.6B"]["parameters"] == 596_049_920
    skipped = {s["path"]: s["reason"] for s in data["skipped"]}
    assert skipped[str(paths["broken"])] == "broken symlink"
    assert skipped[str(paths["bad_manifest"])] == "not an ollama manifest (not JSON)"
    assert skipped[str(paths["truncated"])].startswith("truncated: tensor ")


def test_each_row_is_what_the_estimate_command_says(populated):
    _home, _paths = populated
    rows = {r["name"]: r for r in json.loads(_scan("--vram", "24", "--json").stdout)["models"]}
    runner = CliRunner()
    for name, engine in (
        ("Qwen/Qwen3-0.6B", "transformers"),
        ("org/Tiny-GGUF/Tiny-Q4_0.gguf", "llama.cpp"),
        ("tiny:latest", "ollama"),
    ):
        row = rows[name]
        est = json.loads(runner.invoke(app, [row["path"], "--vram", "24", "--json", "--engine", engine]).stdout)
        assert row["total_bytes"] == est["total_bytes"], name
        assert row["context_tokens"] == est["context_tokens"], name
        assert row["max_context_tokens"] == est["max_context_tokens"], name


def test_the_cached_config_answers_as_the_catalog_spec(populated):
    row = next(
        r for r in json.loads(_scan("--vram", "24", "--json").stdout)["models"] if r["name"] == "Qwen/Qwen3-0.6B"
    )
    catalog = json.loads(CliRunner().invoke(app, ["qwen3-0.6b", "--vram", "24", "--json"]).stdout)
    assert (row["total_bytes"], row["max_context_tokens"]) == (catalog["total_bytes"], catalog["max_context_tokens"])


def test_scan_table_and_problems_on_stderr(populated):
    _home, paths = populated
    result = _scan("--vram", "24")
    assert result.exit_code == 0
    assert "Qwen/Qwen3-0.6B" in result.stdout and "7 of 7 models fit at their default context." in result.stdout
    assert f"skipped: {paths['broken']}: broken symlink\n" in result.stderr


def test_nothing_fits_is_exit_1(populated):
    _, paths = populated
    result = _scan(str(paths["qwen"]), "--vram", "1", "--json")  # Qwen3-0.6B in bf16: ~2 GiB
    assert result.exit_code == 1
    rows = json.loads(result.stdout)["models"]
    assert len(rows) == 1 and rows[0]["fits"] is False


def test_scan_a_folder(populated, tmp_path):
    _, paths = populated
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "Tiny.gguf").write_bytes(paths["gguf_q8"].read_bytes())
    result = _scan(str(folder), "--vram", "24", "--json")
    assert result.exit_code == 0
    assert [r["name"] for r in json.loads(result.stdout)["models"]] == [str(folder / "Tiny.gguf")]


def test_empty_machine(home):
    result = _scan("--vram", "24")
    assert result.exit_code == 1
    assert result.stdout.startswith("No model found in the Hugging Face cache")


def test_progress_goes_to_a_terminal_on_stderr_only(populated):
    """With stderr a real terminal (a pty), the scan shows its progress there; stdout keeps only the table."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "willitrun", "scan", "--vram", "24"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        timeout=120,
        check=False,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0
    assert b"Estimating" in seen or b"Looking for models" in seen
    assert b"skipped: " in seen
    assert b"Estimating" not in proc.stdout and b"\x1b[?25l" not in proc.stdout  # no progress, no cursor codes
    assert b"7 of 7 models fit" in proc.stdout


def test_each_model_is_judged_with_the_verdict_rule(populated, monkeypatch):
    """A detected 24 GiB card with 1 GiB free: Qwen3-0.6B in bf16 (~2 GiB) fits the card but not what is
    free, TIGHT as `willitrun MODEL` says on that card (fit.judge), and the scan exits 5 (errors.ExitCode)."""
    from willitrun.cli import models
    from willitrun.fit import Memory

    _, paths = populated
    card = ("nvml:0", "a detected card", Memory(24 << 30, free_bytes=1 << 30))
    monkeypatch.setattr(models, "device_memory", lambda *a, **k: card)
    result = _scan(str(paths["qwen"]), "--json")
    assert result.exit_code == 5, result.output
    (row,) = json.loads(result.stdout)["models"]
    assert (row["verdict"], row["fits"]) == ("tight", True)
    monkeypatch.setattr(models, "device_memory", lambda *a, **k: (*card[:2], Memory(24 << 30, free_bytes=20 << 30)))
    result = _scan(str(paths["qwen"]))
    assert result.exit_code == 0 and "FITS" in result.stdout
    monkeypatch.undo()
    assert (
        json.loads(_scan(str(paths["qwen"]), "--vram", "1", "--json").stdout)["models"][0]["verdict"] == "does_not_fit"
    )


def test_scan_follows_lmstudio_moved_models_folder(populated, tmp_path):
    """LM Studio's "My Models" folder moved: settings.json's downloadsFolder (lmstudio-bug-tracker#1601)."""
    home, _paths = populated
    moved = tmp_path / "big-disk" / "lms"
    repo = moved / "bartowski" / "Tiny-GGUF"
    repo.mkdir(parents=True)
    (repo / "Tiny-Q4_0.gguf").write_bytes((home / ".cache" / "llama.cpp" / "org_Tiny-GGUF_Tiny-Q4_0.gguf").read_bytes())
    (home / ".lmstudio" / "settings.json").write_text(json.dumps({"downloadsFolder": str(moved)}))
    rows = {r["name"]: r for r in json.loads(_scan("--vram", "24", "--json").stdout)["models"]}
    row = rows["bartowski/Tiny-GGUF/Tiny-Q4_0.gguf"]
    assert row["place"] == "lm-studio" and row["engine"] == "llama.cpp" and row["path"] == str(repo / "Tiny-Q4_0.gguf")
    assert "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf" in rows  # the default folder is still scanned


def test_scan_notes_damaged_lmstudio_settings_and_goes_on(populated):
    home, _paths = populated
    settings = home / ".lmstudio" / "settings.json"
    settings.write_text("{truncated")
    result = _scan("--vram", "24", "--json")
    data = json.loads(result.stdout)
    skipped = {s["path"]: s["reason"] for s in data["skipped"]}
    assert skipped[str(settings)] == "LM Studio's settings not JSON: its models folder setting is ignored"
    assert "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf" in {r["name"] for r in data["models"]}
