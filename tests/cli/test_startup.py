"""What start-up imports: the plain estimate never loads typer, and rich only to print a table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, json, sys
from willitrun.cli import _lean
with contextlib.redirect_stdout(io.StringIO()):
    code = _lean({args!r})
# the engines package itself is light (names, declared options, buffer types: the lean parser reads the
# engine flags from it); its profiles are the heavy part
heavy = ("typer", "rich", "pynvml", "willitrun.engines.llamacpp", "willitrun.engines.transformers",
         "willitrun.answers", "willitrun.render_answers")
print(json.dumps([code, sorted(m for m in heavy if m in sys.modules)]))
"""


def loaded(args: list[str]) -> tuple[int, list[str]]:
    p = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    code, modules = json.loads(p.stdout)
    return code, modules


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["llava-7b", "--gpu", "rtx3090", "-q"], []),
        (["-q", "--gpu", "rtx3090", "llava-7b"], []),
        (["llava-7b", "--gpu", "rtx3090", "--json"], []),
        (["llava-7b", "--gpu", "rtx3090"], ["rich"]),
        (["llama-2-7b", "--gpu", "rtx3090", "--engine", "llama.cpp", "-q"], ["willitrun.engines.llamacpp"]),
        (
            ["llama-2-7b", "--gpu", "rtx3090", "--dtype", "q4_k_m", "-ngl", "20", "-np", "2", "-c", "2048", "-q"],
            ["willitrun.engines.llamacpp"],
        ),
    ],
)
def test_the_plain_estimate_imports_only_what_it_prints_with(args, expected):
    code, modules = loaded(args)
    assert code == 0 and modules == expected


def test_package_import_is_lazy_and_complete():
    code = (
        "import sys, willitrun; light = 'pydantic' not in sys.modules; "
        "from willitrun import estimate, load_catalog, Request, ExitCode, __version__; "
        "print(light, callable(estimate), sorted(set(willitrun.__all__) - set(dir(willitrun))))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.split(maxsplit=2) == ["True", "True", "[]\n"]


EMOJI_PROBE = """
import contextlib, io, json, sys
from willitrun.cli import _lean
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = _lean({args!r})
print(json.dumps([code, "rich.console" in sys.modules, "rich._emoji_codes" in sys.modules, len(out.getvalue())]))
"""


@pytest.mark.parametrize("args", [["llava-7b", "--gpu", "rtx3090"], ["ladder", "llava-7b", "--gpu", "rtx3090"]])
def test_a_table_loads_no_emoji_table(args):
    """The consoles and Text.from_markup take emoji=False: rich's 4,000-entry emoji table (~3 ms) is not loaded."""
    p = subprocess.run([sys.executable, "-c", EMOJI_PROBE.format(args=args)], capture_output=True, text=True)
    code, console, emoji, printed = json.loads(p.stdout)
    assert code == 0 and console and not emoji and printed > 500


def test_emoji_codes_in_names_print_as_written(capsys):
    """A name from a spec file is shown as written: `:fire:` stays text (escape() does not touch emoji codes)."""
    from willitrun import Request, check_fit, load_catalog
    from willitrun.answers import quant_ladder
    from willitrun.render import out, print_answer
    from willitrun.render_answers import ladder_view

    cat = load_catalog()
    spec = cat.resolve("model", "llama-3.2-1b")
    print_answer(check_fit(spec, Request(), 8 << 30, "t"), ":fire: Llama", ":zap: card")
    out.print(ladder_view(quant_ladder(spec, Request(), 8 << 30), ":rocket: on :zap: card"))
    text = capsys.readouterr().out
    assert ":fire: Llama" in text and ":zap: card" in text and ":rocket: on :zap: card" in text
    assert not any(c in text for c in "\N{FIRE}\N{HIGH VOLTAGE SIGN}\N{ROCKET}")


def test_the_ladder_loads_no_placement_or_speed():
    """answers.py re-exports placement.py and speed.py on first use: a ladder needs neither (~8 ms)."""
    probe = (
        "import contextlib, io, json, sys\n"
        "from willitrun.cli import _lean\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = _lean(['ladder', 'llava-7b', '--gpu', 'rtx3090'])\n"
        "mods = ('willitrun.answers', 'willitrun.placement', 'willitrun.speed', 'willitrun.devices')\n"
        "print(json.dumps([code, [m for m in mods if m in sys.modules]]))\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(p.stdout) == [0, ["willitrun.answers"]]
    from willitrun import answers, placement, speed

    assert answers.Split is placement.Split and answers.decode_speed is speed.decode_speed
