"""Streams and locales (issue 17 section 1), through the real entry point in a shell that closes or
redirects its streams as a user's would.

- stdout or stderr closed (`>&-`, `2>&-`): Python starts with None for it; the command runs and exits
  with its answer's code, as with a reader that left (`| head -1`), never a traceback or 70.
- stdout on a full device (`> /dev/full`): one line, "cannot write the output", exit 74 (OUTPUT).
- An encoding that cannot hold a name (LC_ALL=C without UTF-8 mode, PYTHONIOENCODING=ascii/latin-1):
  the name is written with backslash escapes; the answer and its code are unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from willitrun.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
FITS = ("llama-3.2-1b", "--gpu", "rtx3090")  # fits: exit 0
TOO_BIG = ("llama-2-70b", "--gpu", "t4")  # does not fit: exit 1
COMMANDS = [
    (FITS, 0),
    (TOO_BIG, 1),
    ((*FITS, "--json"), 0),
    (("ladder", *FITS), 0),
    (("list", "models"), 0),
    (("check", "llama-3.2-1b", "llama-2-70b", "--gpu", "t4"), 1),
    (("llama-2-7b", "--gpu", "nope"), 2),
    (("--version",), 0),
]


def shell(redirect: str, args: tuple[str, ...], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WILLITRUN_")}
    full = {**base, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", **env}
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", sys.executable, "-m", "willitrun", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=full,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("args", "code"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_closed_stdout_keeps_the_answer_code(args, code):
    r = shell(">&-", args)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


@pytest.mark.parametrize(("args", "code"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_closed_stderr_keeps_the_answer_code(args, code):
    r = shell("2>&-", args)
    assert r.returncode == code
    assert (r.stdout == "") == (code == 2)  # the answer is still printed


@pytest.mark.parametrize(("args", "code"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_both_closed(args, code):
    assert shell(">&- 2>&-", args).returncode == code


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize(("args", "code"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_stdout_on_a_full_device(args, code):
    r = shell("> /dev/full", args)
    if code == 2:  # nothing for stdout: the usage error as usual
        assert r.returncode == 2 and r.stderr.startswith("error: unknown GPU")
        return
    assert r.returncode == ExitCode.OUTPUT == 74
    assert r.stderr == "error: cannot write the output to stdout: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_quiet_on_a_full_device_writes_nothing_and_answers():
    assert shell("> /dev/full", (*TOO_BIG, "-q")).returncode == 1
    assert shell("> /dev/full 2> /dev/full", ("llama-2-7b", "--gpu", "nope")).returncode == 2


@pytest.fixture(scope="module")
def unicode_specs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "model_specs").mkdir()
    lines = (ROOT / "model_specs" / "llama-3.2-1b.yaml").read_text().splitlines()
    lines = [
        "id: unicode" if ln.startswith("id:") else 'name: "Llämä ② 模型 🚀"' if ln.startswith("name:") else ln
        for ln in lines
        if not ln.startswith("aliases:")
    ]
    (root / "model_specs" / "unicode.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "env",
    [
        {"LC_ALL": "C", "PYTHONUTF8": "0"},
        {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"},
        {"PYTHONIOENCODING": "latin-1"},
        {"LC_ALL": "C"},
    ],
    ids=str,
)
@pytest.mark.parametrize(
    "args",
    [
        ("unicode", "--gpu", "rtx3090"),
        ("ladder", "unicode", "--gpu", "rtx3090"),
        ("show", "unicode"),
        ("list", "models"),
        ("check", "unicode", "--gpu", "rtx3090"),
    ],
    ids=" ".join,
)
def test_a_locale_that_cannot_write_a_name_degrades(unicode_specs, env, args):
    r = shell("", (*args, "--specs-dir", str(unicode_specs)), **env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    if args[0] not in ("list", "check"):  # those print the id
        assert "Ll" in r.stdout  # the name is there, escaped where the encoding cannot hold it


def test_a_non_utf8_argument_under_lc_all_c():
    r = shell("", ("llama-2-7b", "--gpu", "n\u00f6pe"), LC_ALL="C", PYTHONUTF8="0")
    assert r.returncode == 2 and r.stderr.startswith("error: unknown GPU") and r.stderr.count("\n") == 1
