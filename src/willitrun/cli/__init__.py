"""The `willitrun` command: parse arguments, call the core, choose a renderer, map errors to exit codes.

Only this package imports typer, and only cli/group.py, cli/options.py and cli/commands/ do: the
common estimate (`willitrun MODEL --gpu GPU`) is read by cli/lean.py without it. `app` (the typer
application) is loaded on first use.
"""

from __future__ import annotations

import contextlib
import gc
import io
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


def _lean(args: list[str], records: bool = False) -> int | None:
    """The exit code of a plain estimate command line, or None when typer has to parse it.

    `records`: the spec classes may be pydantic-free stand-ins (willitrun/records.py) when the
    specs can come from the catalog cache; if one has to be validated after all, the command starts
    again with pydantic. Only the entry point asks for it: one process never mixes the two modes."""
    from .lean import parse_estimate, records_may_serve
    from .registry import COMMAND_NAMES

    parsed = parse_estimate(args, COMMAND_NAMES)
    if parsed is None:
        return _lean_command(args, records)
    if records and records_may_serve(parsed):
        from .. import records as rec

        records = rec.enable()
    else:
        records = False
    from .estimation import run_estimate
    from .registry import report

    try:
        return run_estimate(parsed)
    except WillItRunError as exc:
        return report(exc)
    except Exception as exc:
        from ..records import NeedsPydantic

        if records and isinstance(exc, NeedsPydantic) and os.environ.get(RECORDS_ENV) != "1":
            _again_with_pydantic()
        raise


def _lean_command(args: list[str], records: bool) -> int | None:
    """`willitrun check ...` or `willitrun ladder MODEL ...` without typer (cli/lean.py), or None when
    typer has to parse it. Both may use the pydantic-free spec classes: a spec that needs pydantic runs
    the command again with them (`check` skipping what it printed already: cli/checks.py run_check;
    `ladder` prints only once everything is computed)."""
    from .lean import parse_check, parse_ladder

    check = parse_check(args)
    ladder = parse_ladder(args) if check is None else None
    if check is None and ladder is None:
        return None
    from .. import records as rec
    from ..catalog.cache import NO_CACHE_ENV

    records = records and not os.environ.get(NO_CACHE_ENV) and rec.enable()
    from .registry import report

    try:
        if check is not None:
            from .checks import run_check

            return run_check(check, records=records)
        from .ladders import run_ladder

        return run_ladder(ladder)  # type: ignore[arg-type]
    except WillItRunError as exc:
        return report(exc)
    except Exception as exc:
        from ..records import NeedsPydantic

        if records and isinstance(exc, NeedsPydantic) and os.environ.get(RECORDS_ENV) != "1":
            from .checks import SKIP_ENV

            _again_with_pydantic({SKIP_ENV: str(getattr(exc, "printed", 0))})
        raise


def _again_with_pydantic(extra: dict[str, str] | None = None) -> None:
    """Run this command line again in a fresh process whose spec classes are pydantic's (an estimate
    has printed nothing yet: specs are loaded before any output; `check` says in `extra` how much it
    printed, cli/checks.py run_check)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    env = {**os.environ, **(extra or {}), RECORDS_ENV: "0"}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# "0": never use the pydantic-free spec classes (set for the second run); "1": use them and fail rather
# than run again (tests/cli/test_records.py proves with it that no fallback happened).
RECORDS_ENV = "WILLITRUN_RECORDS"


def _run(records: bool = False) -> int:
    if sys.argv[1:] in (["-V"], ["--version"]):  # answered without typer, like the lean estimate
        from .. import __version__

        sys.stdout.write(f"willitrun {__version__}\n")
        return 0
    code = _lean(sys.argv[1:], records=records and os.environ.get(RECORDS_ENV) != "0")
    if code is not None:
        return code
    import willitrun.cli as this  # through the module, so a test can replace `app`

    writes = contextlib.nullcontext()
    if any(arg.startswith("--install-completion") for arg in sys.argv[1:]):
        from ..files import atomic_text_writes

        writes = atomic_text_writes()  # type: ignore[assignment]  # the script and the shell's rc file
    try:
        with writes:
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
    _streams()
    try:
        code = _run(records=True)
    except WillItRunError as exc:  # raised outside a command body
        from ..render import error

        error(str(exc))
        code = int(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: never exit 1, which scripts read as "does not fit"
        code = _internal_error(exc)
    _exit(code)


def _streams() -> None:
    """A closed stdout or stderr (`>&-`: Python then has None for it) is /dev/null, as a reader that
    left (`| head -1`) is: the command runs and its exit code is the answer's. Text the stream's encoding
    cannot hold (LC_ALL=C without UTF-8 mode, PYTHONIOENCODING=ascii) is written as backslash escapes.
    stdout becomes `_Stdout`, which turns a failed write (a full device) into OutputError."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (open until os._exit)
            continue
        if name == "stdout" and type(stream) is io.TextIOWrapper:
            encoding, line_buffering = stream.encoding, stream.line_buffering
            stream.flush()
            sys.stdout = _Stdout(
                stream.detach(), encoding=encoding, errors="backslashreplace", line_buffering=line_buffering
            )
            continue
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")


class _Stdout(io.TextIOWrapper):
    """stdout whose write errors, except a closed pipe (handled where output is written: the rest is
    silenced), are OutputError: one line and exit OUTPUT, never an internal error or a verdict's code."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None


def _output_error(exc: OSError) -> WillItRunError:
    from ..errors import OutputError

    return OutputError(f"cannot write the output to stdout: {exc.strerror or type(exc).__name__}")


def _say(line: str) -> None:
    """A line on stderr; a stderr that cannot take it (closed, full) changes nothing: the code says it."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _internal_error(exc: BaseException) -> int:
    """One line for a bug (the traceback too with WILLITRUN_DEBUG set); the code is always INTERNAL,
    debug or not: letting the exception escape would exit 1, "does not fit"."""
    if os.environ.get("WILLITRUN_DEBUG"):
        import traceback

        with contextlib.suppress(OSError, ValueError):
            traceback.print_exception(exc)
    from ..errors import bounded

    _say(f"internal error: {type(exc).__name__}: {bounded(str(exc))} (set WILLITRUN_DEBUG=1 for a traceback)")
    return int(ExitCode.INTERNAL)


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown. Output that fails only here (a short
    answer waits in the buffer until exit) is reported as any other output error, once."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # a closed pipe (`| head -1`): the code stands
        pass
    except (OSError, ValueError, WillItRunError) as exc:
        if code != ExitCode.OUTPUT:
            _say(f"error: {exc}")
            code = int(ExitCode.OUTPUT)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


__all__ = ["main"]
