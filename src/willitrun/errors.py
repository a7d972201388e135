"""Exit codes and the exceptions that carry them.

One map, documented in the README: scripts branch on these numbers, so they never change meaning.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    FITS = 0
    DOES_NOT_FIT = 1
    USAGE = 2  # bad arguments, unknown model or GPU, impossible numbers
    SPEC = 3  # a spec file is missing, malformed or invalid
    GPU_DETECTION = 4  # no --gpu/--vram given and no NVIDIA GPU could be queried
    TIGHT = 5  # fits the card, but not what is free on it now, or the headroom is inside the measured error
    OUTPUT = 74  # the answer could not be written to stdout (a full device, an I/O error): EX_IOERR
    INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE from sysexits.h)


class WillItRunError(Exception):
    """An error meant for the user: one clear line, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(WillItRunError):
    """Bad input on the command line or to the API (unknown name, impossible number)."""

    exit_code = ExitCode.USAGE


class SpecError(WillItRunError):
    """A spec file cannot be read or does not validate; `problems` holds one line per problem."""

    exit_code = ExitCode.SPEC

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class OutputError(WillItRunError):
    """The answer could not be written to stdout (a full device, an I/O error)."""

    exit_code = ExitCode.OUTPUT


class GPUDetectionError(WillItRunError):
    """NVML is missing or reports no GPU, and no --gpu/--vram was given."""

    exit_code = ExitCode.GPU_DETECTION


# An error line quotes what the user gave (a model name, a config.json value, a rows-file line); a
# 10 kB model_type must not become a 10 kB line. Every error line goes through `bounded` (render.error
# and the entry point), and a message that quotes a value may clip it first with `clip`.
ERROR_LINE_MAX = 400  # characters of one error line
ECHO_MAX = 80  # characters of one quoted value


def clip(text: str, limit: int = ECHO_MAX) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def bounded(line: str, limit: int = ERROR_LINE_MAX) -> str:
    """One error line of at most `limit` characters: a longer one keeps its start and its end
    (where the problem is usually said) and says how much of the middle was left out."""
    if len(line) <= limit:
        return line
    room = limit - 48  # the marker below takes at most 48 characters
    head, tail = room * 3 // 4, room // 4
    return f"{line[:head]} ...[{len(line) - head - tail:,} characters left out]... {line[-tail:]}"
