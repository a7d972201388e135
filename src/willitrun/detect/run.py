"""Run a system tool with a timeout: its stdout, or None. Never raises, never hangs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence

Runner = Callable[[Sequence[str], float], str | None]

MAX_OUTPUT_BYTES = 1 << 20  # rocm-smi on 8 cards prints a few KiB; more than 1 MiB is not its answer


def run_tool(argv: Sequence[str], timeout: float = 5.0) -> str | None:
    """The tool's stdout as text whatever its exit status (sysctl exits 1 when one of several names
    is unknown but prints the others), or None when it is missing, cannot start, times out or
    prints more than MAX_OUTPUT_BYTES."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        # A session of its own, so a timeout kills the tool and any child holding our pipe open
        # (rocm-smi is a Python script; communicate() would otherwise wait for the grandchild).
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=os.name == "posix",
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except Exception:
        _kill(proc)
        return None
    if len(out) > MAX_OUTPUT_BYTES:
        return None
    return out.decode("utf-8", errors="replace")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass
    with contextlib.suppress(Exception):
        proc.communicate(timeout=1.0)


def read_small_file(path: str, max_bytes: int = 4096) -> str | None:
    """A small text file (a sysfs attribute), or None when absent, not a regular file or too long."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block open()
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return None
    return data.decode("utf-8", errors="replace")
