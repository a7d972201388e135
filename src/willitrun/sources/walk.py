"""Listing folders that may be huge, hostile or half-deleted: every listing is counted against one
budget of entries, depth is capped, directory symlinks are never followed (a loop cannot form), and
what cannot be read becomes a Problem, never an exception."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..files import safe_path

# Bounds of one scan: a hub cache with a thousand repositories lists ~10k entries; a home folder
# given by mistake stops here instead of walking for minutes.
MAX_ENTRIES = 200_000  # directory entries looked at, over the whole scan
MAX_DEPTH = 8  # folders below a folder given on the command line
MAX_FOUND = 5_000  # models reported


@dataclass(frozen=True)
class Problem:
    """Something skipped: where, and why (one line)."""

    path: str
    reason: str


@dataclass
class Budget:
    """What one scan may still look at; `exhausted` says a cap was reached (the scan says so)."""

    entries: int = MAX_ENTRIES
    exhausted: bool = False
    problems: list[Problem] = field(default_factory=list)

    def problem(self, path: str | os.PathLike[str], reason: str) -> None:
        self.problems.append(Problem(safe_path(path), reason))

    def listdir(self, path: Path) -> list[os.DirEntry[str]]:
        """The entries of `path`, sorted by name, within the budget; unreadable: [] and a problem."""
        out: list[os.DirEntry[str]] = []
        try:
            with os.scandir(path) as it:
                for entry in it:
                    if self.entries <= 0:
                        if not self.exhausted:
                            self.exhausted = True
                            self.problem(path, f"stopped: more than {MAX_ENTRIES:,} entries looked at")
                        break
                    self.entries -= 1
                    out.append(entry)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.problem(path, f"cannot list: {exc.strerror or type(exc).__name__}")
            return []
        return sorted(out, key=lambda e: e.name)


def is_dir(entry: os.DirEntry[str]) -> bool:
    """A real directory (a symlink to one is not followed: no loops, no escaping the tree)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def file_size(path: Path | os.DirEntry[str], budget: Budget) -> int | None:
    """The size of a regular file (symlinks followed, as into an HF cache's blobs); anything else is
    a problem and None: a broken symlink, a FIFO, a device."""
    try:
        st = os.stat(path)
    except OSError as exc:
        name = path.path if isinstance(path, os.DirEntry) else path
        broken = exc.errno == errno.ENOENT and os.path.islink(name)
        budget.problem(name, "broken symlink" if broken else f"cannot read: {exc.strerror or type(exc).__name__}")
        return None
    if not stat.S_ISREG(st.st_mode):
        budget.problem(path.path if isinstance(path, os.DirEntry) else path, "not a regular file")
        return None
    return st.st_size


def walk(root: Path, budget: Budget, max_depth: int = MAX_DEPTH) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    """(directory, its entries) for `root` and every real directory below it, breadth first, at most
    `max_depth` levels down."""
    level = [root]
    for _ in range(max_depth + 1):
        below: list[Path] = []
        for directory in level:
            entries = budget.listdir(directory)
            yield directory, entries
            below += [Path(e.path) for e in entries if is_dir(e)]
            if budget.exhausted:
                return
        if not below:
            return
        level = below
