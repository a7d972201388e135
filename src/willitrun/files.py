"""Reading what a user hands over: regular files only, at most a documented number of bytes, YAML
without aliases, and text from files made safe to print; writing what willitrun writes (specs, plots,
its cache) atomically, through `write_atomic` only.

Every reader goes through `open_regular` (or `read_bytes`/`read_text` on top of it): the path is
stat-ed first and opened with O_NONBLOCK, so a FIFO never blocks; anything but a regular file (a
FIFO, /dev/zero, /dev/urandom, a directory, a socket, a symlink to any of those) is refused before a
byte is read; a file larger than its cap is refused by its size, never by reading it; an OSError
(ENAMETOOLONG, EACCES, ELOOP) is one line naming the file, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from .errors import SpecError, UsageError, WillItRunError, clip

# Caps, in bytes: each far above what the real file holds, small enough to read at once.
SPEC_YAML_CAP = 256 << 10  # a spec file: the bundled ones are 1-3 KB
CONFIG_JSON_CAP = 16 << 20  # a config.json: kilobytes (tokenizer files are not read)
SAFETENSORS_INDEX_CAP = 64 << 20  # model.safetensors.index.json: ~25 KB for a 405B model
SAFETENSORS_HEADER_CAP = 100 << 20  # one safetensors header: ~100 KB for a 405B model's largest shard
# GGUF metadata and tensor table: a 256k-token vocabulary with its merges is ~15 MB.
GGUF_HEADER_CAP = 256 << 20
CACHE_CAP = 16 << 20  # willitrun's own catalog cache: ~100 KB
CLUSTER_CAP = 1 << 20  # a --cluster file: 64 nodes x 64 GPUs take a few KB

# YAML structure: a spec nests 4 levels and holds ~100 nodes.
YAML_MAX_DEPTH = 32
YAML_MAX_NODES = 20_000
# Python refuses to convert a decimal string of more than 4,300 digits (sys.int_info); a longer
# YAML integer is refused first, with the file and line, whatever the interpreter's setting.
YAML_MAX_INT_DIGITS = 4300

_ODD = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


# --------------------------------------------------------------------------------------------------
# Printing what came from a file
# --------------------------------------------------------------------------------------------------
def safe_text(value: object) -> str:
    """`value` as text that cannot drive a terminal: control characters, escape sequences,
    bidirectional overrides and other non-printable characters become backslash escapes (as repr
    writes them); printable text, including non-ASCII letters, is unchanged."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def safe_path(path: object) -> str:
    return safe_text(os.fspath(path) if isinstance(path, os.PathLike) else path)


# --------------------------------------------------------------------------------------------------
# Regular files only
# --------------------------------------------------------------------------------------------------
def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or type(exc).__name__


class PathType(NamedTuple):
    """What a path is: `kind` is "file", "directory", "missing" or "other"; `what` says it for people."""

    kind: str
    what: str


def path_type(path: str | os.PathLike[str]) -> PathType:
    """What `path` is, following symlinks; never raises (a name too long or unreadable is "other")."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return PathType("missing", "no such file or directory")
        return PathType("other", _reason(exc))
    except ValueError:  # an embedded NUL byte
        return PathType("other", "not a valid file name")
    if stat.S_ISREG(mode):
        return PathType("file", "a regular file")
    if stat.S_ISDIR(mode):
        return PathType("directory", "a directory")
    return PathType("other", _ODD.get(stat.S_IFMT(mode), "not a regular file"))


def not_regular(what: str) -> str:
    """'is a FIFO, not a regular file' (or the reason the path could not be examined)."""
    return f"is {what}, not a regular file" if what.startswith("a ") else f"cannot read: {what}"


def open_regular(
    path: str | os.PathLike[str], what: str = "file", error: type[WillItRunError] = SpecError
) -> IO[bytes]:
    """`path` opened for binary reading if it is a regular file (symlinks followed), else `error`
    with one line naming it. Stat-ed before it is opened, opened with O_NONBLOCK (a FIFO swapped in
    between never blocks) and fstat-ed after, so what is read is what was checked."""
    name = safe_path(path)
    kind = path_type(path)
    if kind.kind == "missing":
        raise error(f"{name}: no such file")
    if kind.kind != "file":
        raise error(f"{name}: {not_regular(kind.what)}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{name}: cannot read: {_reason(exc)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{name}: {not_regular(_ODD.get(stat.S_IFMT(mode), 'something else'))}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(
    path: str | os.PathLike[str], cap: int, what: str = "file", error: type[WillItRunError] = SpecError
) -> bytes:
    """The whole of a regular file of at most `cap` bytes (see open_regular)."""
    name = safe_path(path)
    with open_regular(path, what, error) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > cap:
                raise error(f"{name}: {size:,} bytes is too large for a {what} (the limit is {cap:,})")
            chunks: list[bytes] = []
            total, want = 0, size + 1  # buffers sized by the file, not by the cap
            while chunk := f.read(want):
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:  # it grew while being read
                    raise error(f"{name}: more than {cap:,} bytes is too large for a {what}")
                want = min(1 << 20, cap + 1 - total)
        except OSError as exc:
            raise error(f"{name}: cannot read: {_reason(exc)}") from None
    return b"".join(chunks)


def read_text(
    path: str | os.PathLike[str], cap: int, what: str = "file", error: type[WillItRunError] = SpecError
) -> str:
    """A regular file of at most `cap` bytes as UTF-8 text (a byte-order mark is dropped)."""
    try:
        return read_bytes(path, cap, what, error).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{safe_path(path)}: not UTF-8 text (byte {exc.start:,})") from None


# --------------------------------------------------------------------------------------------------
# YAML: one parse gives the data and the line of every field
# --------------------------------------------------------------------------------------------------
class YamlDoc(NamedTuple):
    """A YAML mapping and the 1-based line of every key path in it (for error messages)."""

    data: Any
    lines: dict[tuple[Any, ...], int]

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """Line of the field at `loc`, or of its nearest parent that the file has."""
        for n in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return line
        return self.lines.get(())


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Problem(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line


def _events(loader: Any) -> Iterator[Any]:
    while loader.check_event():
        yield loader.get_event()


def _scalar(loader: Any, event: Any, line: int) -> Any:
    import yaml

    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == "tag:yaml.org,2002:int" and len(event.value) > YAML_MAX_INT_DIGITS:
        raise _Problem(line, f"an integer of {len(event.value):,} digits (more than {YAML_MAX_INT_DIGITS:,})")
    if tag == "tag:yaml.org,2002:merge":
        raise _Problem(line, "merge keys (<<) are not allowed in spec files")
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        value = loader.construct_object(node)
    except ValueError as exc:  # an integer over the interpreter's digit limit
        raise _Problem(line, str(exc).splitlines()[0]) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _Problem(line, f"{event.value!r} is {'not a number' if math.isnan(value) else 'beyond the float range'}")
    return value


def _build(loader: Any) -> YamlDoc:
    """Data from the parser's events, iteratively (deep nesting cannot crash the interpreter), with
    anchors, aliases, duplicate keys, non-standard tags and huge numbers refused at their line."""
    import yaml

    lines: dict[tuple[Any, ...], int] = {}
    # Each open collection: [container, path, pending mapping key or _NO_KEY].
    stack: list[list[Any]] = []
    root: Any = None
    documents = nodes = 0
    no_key = object()
    collection_tags = {
        yaml.MappingStartEvent: "tag:yaml.org,2002:map",
        yaml.SequenceStartEvent: "tag:yaml.org,2002:seq",
    }
    for event in _events(loader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Problem(line, "more than one YAML document in a spec file")
            continue
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
            continue
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Problem(line, "YAML anchors and aliases (&name, *name) are not allowed in spec files")
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            value = stack.pop()[0]
            if not stack:
                root = value
                continue
        else:
            nodes += 1
            if nodes > YAML_MAX_NODES:
                raise _Problem(line, f"more than {YAML_MAX_NODES:,} values: not a spec file")
            if isinstance(event, yaml.ScalarEvent):
                value = _scalar(loader, event, line)
            else:
                tag = event.tag
                if tag not in (None, "!", collection_tags[type(event)]):
                    raise _Problem(
                        line, f"malformed YAML: could not determine a constructor for the tag {safe_text(repr(tag))}"
                    )
                if len(stack) >= YAML_MAX_DEPTH:
                    raise _Problem(line, f"nested deeper than {YAML_MAX_DEPTH} levels")
                parent = stack[-1] if stack else None
                if parent is not None and isinstance(parent[0], dict) and parent[2] is no_key:
                    raise _Problem(line, "a mapping key must be a plain value, not a list or mapping")
                path = (
                    () if parent is None else (*parent[1], parent[2] if isinstance(parent[0], dict) else len(parent[0]))
                )
                lines.setdefault(path, line)
                stack.append([{} if isinstance(event, yaml.MappingStartEvent) else [], path, no_key])
                continue
            if not stack:
                root = value
                lines[()] = line
                continue
        parent = stack[-1]
        container, path, key = parent
        if isinstance(container, list):
            item_path = (*path, len(container))
            lines.setdefault(item_path, line)
            container.append(value)
        elif key is no_key:
            try:
                hash(value)
            except TypeError:
                raise _Problem(line, "a mapping key must be a plain value, not a list or mapping") from None
            if value in container:
                raise _Problem(line, f"duplicate key {safe_text(repr(value))}")
            parent[2] = value
            entry_path = (*path, value)
            lines[entry_path] = line
        else:
            container[key] = value
            parent[2] = no_key
    return YamlDoc(root, lines)


def _too_deep(text: str, end: int) -> int | None:
    """The line where flow collections (`[`, `{`) outside quotes and comments first nest deeper than
    YAML_MAX_DEPTH in text[:end], or None. Only asked when the parser failed: whichever limit a
    parser version has (libyaml's own, from PyYAML 6.0.4's wheels on, is reached while it scans
    ahead, before the events that `_build` counts), a file nested too deeply gets the same answer."""
    depth, line, quote, i = 0, 1, "", 0
    end = min(end + 1, len(text))
    while i < end:
        c = text[i]
        if c == "\n":
            line += 1
        elif quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            nl = text.find("\n", i)
            i = end if nl < 0 else nl
            continue
        elif c in "[{":
            depth += 1
            if depth > YAML_MAX_DEPTH:
                return line
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return None


def parse_yaml(text: str, where: str) -> YamlDoc:
    """Parse one YAML document; `SpecError` as `where:line: problem` for anything malformed or hostile."""
    import yaml

    loader = _loader()(text)
    try:
        return _build(loader)
    except _Problem as exc:
        at = f"{where}:{exc.line}" if exc.line else where
        raise SpecError(f"{at}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        deep = _too_deep(text, mark.index if mark else len(text))
        if deep is not None:  # the parser's own depth limit came first (libyaml scans flow collections ahead)
            raise SpecError(f"{where}:{deep}: nested deeper than {YAML_MAX_DEPTH} levels") from None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f"{where}:{mark.line + 1}" if mark else where
        raise SpecError(f"{at}: malformed YAML: {clip(safe_text(problem))}") from None
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path) -> YamlDoc:
    """A spec file: a regular file of at most SPEC_YAML_CAP bytes holding one YAML mapping."""
    where = safe_path(path)
    doc = parse_yaml(read_text(path, SPEC_YAML_CAP, "spec file"), where)
    if doc.data is None:
        raise SpecError(f"{where}: empty file")
    if not isinstance(doc.data, dict):
        raise SpecError(f"{where}: a spec must be a YAML mapping, not {type(doc.data).__name__}")
    return doc


# --------------------------------------------------------------------------------------------------
# Writing: atomically, or not at all
# --------------------------------------------------------------------------------------------------
def _write_all(fd: int, data: bytes) -> None:
    """Every byte of `data` to `fd` (os.write may write fewer; a full disk raises ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(
    path: str | os.PathLike[str], data: bytes, what: str = "file", error: type[WillItRunError] = UsageError
) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`, never a
    part: a temporary file in the same folder is written, flushed to the disk (fsync) and renamed over
    `path` (os.replace, atomic on POSIX and Windows). A full disk, a name too long or a folder that
    cannot be written is `error`, one line naming the file, and the temporary file is removed.

    The new file takes the old one's permission bits, or the usual ones (0o666 less the umask) for a
    new file: mkstemp's 0o600 would hide a spec from the other users of a shared spec folder."""
    import tempfile

    name = safe_path(path)
    target = os.fspath(path)
    if os.path.islink(target):  # a dotfile manager's symlink stays a symlink: its target is replaced
        target = os.path.realpath(target)
    folder = os.path.dirname(target) or "."
    tmp = None
    try:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        # A short temporary name: the target's own name may already be at the file system's limit.
        fd, tmp = tempfile.mkstemp(prefix=".willitrun-", suffix=".tmp", dir=folder)
        try:
            _write_all(fd, data)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        tmp = None
        _sync_folder(folder)
    except OSError as exc:
        raise error(f"{name}: cannot write the {what}: {_reason(exc)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_text_writes() -> Iterator[None]:
    """`Path.write_text` goes through write_atomic while the block runs: for the library code that
    writes files on willitrun's behalf (typer's --install-completion writes the completion script and
    rewrites the shell's rc file, ~/.bashrc or ~/.zshrc, whole: on a full disk that truncated it)."""
    original = Path.write_text

    def write_text(
        self: Path, data: str, encoding: str | None = None, errors: str | None = None, newline: str | None = None
    ) -> int:
        if newline is None and os.linesep != "\n":
            data = data.replace("\n", os.linesep)
        elif newline:
            data = data.replace("\n", newline)
        write_atomic(self, data.encode(encoding or "utf-8", errors or "strict"), "file")
        return len(data)

    Path.write_text = write_text  # type: ignore[method-assign]
    try:
        yield
    finally:
        Path.write_text = original  # type: ignore[method-assign]


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); where a folder cannot be opened, the rename stands."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
