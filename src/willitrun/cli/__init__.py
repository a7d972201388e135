"""The `willitrun` command: parse arguments, call the core, choose a renderer, map errors to exit codes.

Only this package imports typer, and only cli/group.py, cli/options.py and cli/commands/ do: the
common estimate (`willitrun MODEL --gpu GPU`) is read by cli/lean.py without it. `app` (the typer
application) is loaded on first use.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Any

from ..errors import ExitCode, WillItRunError


def __getattr__(name: str) -> Any:
    """`willitrun.cli.app`: the typer application, imported on first use."""
    if name == "app":
        from .group import app

        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lean(args: list[str]) -> int | None:
    """The exit code of a plain estimate command line, or None when typer has to parse it."""
    from .lean import parse_estimate
    from .registry import COMMAND_NAMES

    parsed = parse_estimate(args, COMMAND_NAMES)
    if parsed is None:
        return None
    from .estimation import run_estimate
    from .registry import report

    try:
        return run_estimate(parsed)
    except WillItRunError as exc:
        return report(exc)


def _run() -> int:
    if sys.argv[1:] in (["-V"], ["--version"]):  # answered without typer, like the lean estimate
        from .. import __version__

        sys.stdout.write(f"willitrun {__version__}\n")
        return 0
    code = _lean(sys.argv[1:])
    if code is not None:
        return code
    import willitrun.cli as this  # through the module, so a test can replace `app`

    try:
        this.app(prog_name="willitrun")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        sys.stderr.write(f"internal error: exit with {exc.code!r}\n")  # never 1, "does not fit"
        return int(ExitCode.INTERNAL)
    return 0


def main() -> None:
    """Console entry point: no exception leaves as a traceback unless WILLITRUN_DEBUG is set.

    The process ends with os._exit once the output is flushed: a short-lived command gains nothing
    from the interpreter freeing every object at shutdown (~20 ms, benchmarks/startup.py)."""
    # pydantic looks for plugins through importlib.metadata when it builds the first model; the
    # command uses none (a user can still set PYDANTIC_DISABLE_PLUGINS to something else).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # Start-up creates ~100k objects and no garbage cycles worth collecting: the collector stays off
    # for a single estimate (check turns it back on for a long rows file).
    gc.disable()
    try:
        code = _run()
    except WillItRunError as exc:  # raised outside a command body
        sys.stderr.write(f"error: {exc}\n")
        code = int(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: never exit 1, which scripts read as "does not fit"
        if os.environ.get("WILLITRUN_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc} (set WILLITRUN_DEBUG=1 for a traceback)\n")
        code = int(ExitCode.INTERNAL)
    _exit(code)


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a closed pipe (`| head -1`): the code stands
            stream.flush()
    os._exit(code)


__all__ = ["main"]
