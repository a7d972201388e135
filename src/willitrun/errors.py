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


class GPUDetectionError(WillItRunError):
    """NVML is missing or reports no GPU, and no --gpu/--vram was given."""

    exit_code = ExitCode.GPU_DETECTION
