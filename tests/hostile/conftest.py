"""Hostile input: every reader answers at once with one clean error line.

A reader that blocks (a FIFO opened for reading waits for a writer) would hang the suite rather than
fail it, so each test here runs under a watchdog that turns a hang into a failure. It is a net, not
a timing assertion: every case is built to finish in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

WATCHDOG_SECONDS = 60


@pytest.fixture(autouse=True)
def _watchdog():
    if sys.platform == "win32" or not hasattr(signal, "setitimer"):
        yield
        return

    def hung(signum, frame):
        raise TimeoutError(f"no answer within {WATCHDOG_SECONDS} s: a reader blocked or looped")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path
