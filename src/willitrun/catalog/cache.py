"""The catalog's cache: index entries and validated specs, keyed by file and by the code that
validated them, in one JSON file under the user cache directory.

What a lookup would otherwise redo on every run (parse YAML, build a pydantic validator, validate)
is kept per file; an entry answers only for the file exactly as it was (device, inode, size, mtime,
ctime) and for the same willitrun source files, pydantic, PyYAML and Python.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError

if TYPE_CHECKING:
    from . import Kind

PACKAGE = Path(__file__).resolve().parents[1]  # willitrun/

CACHE_DIR_ENV = "WILLITRUN_CACHE_DIR"  # default: $XDG_CACHE_HOME/willitrun, else ~/.cache/willitrun
NO_CACHE_ENV = "WILLITRUN_NO_CACHE"  # set (non-empty) to read and write no cache
CACHE_FORMAT = 1
# A file changed within this long before it was read may change again within the same timestamp
# tick (file systems stamp with a coarse clock): such entries are not stored ("racy git").
RACY_NS = 2_000_000_000
MAX_ENTRIES = 4096


def cache_dir() -> Path | None:
    if os.environ.get(NO_CACHE_ENV):
        return None
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is ignored
        return Path(xdg) / "willitrun"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "willitrun" / "cache"
    return Path.home() / ".cache" / "willitrun"


def _fingerprint() -> list[Any]:
    """What a cached entry was computed with: the version and every source file of willitrun (an
    editable install changes code without changing its version), pydantic, PyYAML and Python."""
    import sys
    from importlib.util import find_spec

    newest = count = total = 0
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "_data")]
        for name in filenames:
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                newest, count, total = max(newest, st.st_mtime_ns), count + 1, total + st.st_size
    libraries = []
    for name in ("pydantic", "pydantic_core", "yaml"):
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module else getattr(find_spec(name), "origin", None)
        lib = os.stat(origin) if origin else None
        libraries.append([name, lib.st_size, lib.st_mtime_ns] if lib else [name])
    version = getattr(sys.modules.get("willitrun"), "__version__", None)
    return [CACHE_FORMAT, version, sys.version, [newest, count, total], libraries]


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class _Uncacheable(Exception):
    pass


def _encode(value: Any) -> Any:
    """JSON for a validated spec: models keep their class, set fields and fields; tuples stay tuples."""
    from ..records import BaseModel

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, BaseModel):
        cls = type(value)
        if not cls.__module__.startswith("willitrun.") or value.__pydantic_extra__ or value.__pydantic_private__:
            raise _Uncacheable
        return [
            "M",
            cls.__module__,
            cls.__qualname__,
            sorted(value.model_fields_set),
            {k: _encode(v) for k, v in value.__dict__.items()},
        ]
    if isinstance(value, (list, tuple)):
        return ["L" if isinstance(value, list) else "T", [_encode(v) for v in value]]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return ["D", {k: _encode(v) for k, v in value.items()}]
    raise _Uncacheable


def _decode(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    tag, body = value[0], value[1:]
    if tag == "L":
        return [_decode(v) for v in body[0]]
    if tag == "T":
        return tuple(_decode(v) for v in body[0])
    if tag == "D":
        return {k: _decode(v) for k, v in body[0].items()}
    if tag == "M":
        import importlib

        from ..records import BaseModel

        module, qualname, fields_set, fields = body
        if not module.startswith("willitrun."):
            raise _Uncacheable
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or set(fields) != set(cls.model_fields):
            raise _Uncacheable
        return cls.model_construct(_fields_set=set(fields_set), **{k: _decode(v) for k, v in fields.items()})
    raise _Uncacheable


def decode_spec(value: Any, kind: Kind, spec_id: str) -> Any:
    """A spec from its cache entry, or None when the entry is damaged or of the wrong shape (the file
    is then read and validated again): it must be a spec of `kind` whose id is `spec_id`."""
    try:
        spec = _decode(value)
    except Exception:  # a damaged entry is a miss: the file is read and validated again
        return None
    from ..archs import ARCHITECTURES
    from ..specs import SPEC_CLASSES, GPUSpec

    if kind == "gpu":
        right = type(spec) is GPUSpec
    else:
        arch = getattr(spec, "architecture", None)
        right = isinstance(arch, str) and arch in ARCHITECTURES and type(spec) is SPEC_CLASSES[arch]
    try:
        return spec if right and getattr(spec, "id", None) == spec_id and _conforms_model(spec) else None
    except Exception:  # an annotation that cannot be read: validate the file instead
        return None


# --------------------------------------------------------------------------------------------------
# A cached spec is built without validation: its values must at least have the types and bounds
# its class declares (an entry of the wrong shape with a valid checksum is a miss, not a crash).
# Cross-field rules are not re-checked: a checksum-valid entry that breaks only those was written
# on purpose, and the arithmetic reads it as the pydantic path would have refused it.
# --------------------------------------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Field name -> annotation (evaluated in the module that wrote it), for the class's fields."""
    if cls not in _HINTS:
        import sys

        out: dict[str, Any] = {}
        fields = getattr(cls, "model_fields", {})
        for klass in reversed(cls.__mro__):
            namespace = vars(sys.modules[klass.__module__])
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if name in fields:  # the annotation is willitrun's own source text, never the cache's
                    out[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        _HINTS[cls] = out
    return _HINTS[cls]


def _conforms_model(obj: Any) -> bool:
    names, checks = _model_checks(type(obj))
    values = obj.__dict__
    return names == values.keys() and all(check(values[k]) for k, check in checks)


_MODEL_CHECKS: dict[type, tuple[Any, list[tuple[str, Callable[[Any], bool]]]]] = {}


def _model_checks(cls: type) -> tuple[Any, list[tuple[str, Callable[[Any], bool]]]]:
    """The class's field names and each field's checker (`_checker`), built once per class."""
    held = _MODEL_CHECKS.get(cls)
    if held is None:
        hints = _hints(cls)
        held = _MODEL_CHECKS[cls] = (dict.fromkeys(hints).keys(), [(k, _checker(t)) for k, t in hints.items()])
    return held


def _bounds(meta: Any) -> list[tuple[str, Any]]:
    """The bounds of one Annotated item: pydantic's FieldInfo (its metadata) or records._Default."""
    items = [*getattr(meta, "metadata", ()), meta] if hasattr(meta, "metadata") else [meta]
    out: list[tuple[str, Any]] = []
    for item in items:
        bounds = getattr(item, "constraints", None)
        if isinstance(bounds, dict):
            out += bounds.items()
        else:
            out += [
                (k, getattr(item, k))
                for k in ("gt", "ge", "lt", "le", "max_length")
                if getattr(item, k, None) is not None
            ]
    return out


def _within(value: Any, bounds: list[tuple[str, Any]]) -> bool:
    for k, limit in bounds:
        if k == "max_length":
            if isinstance(value, (str, list, tuple, dict)) and len(value) > limit:
                return False
        elif (
            isinstance(value, (int, float))
            and not {"gt": value > limit, "ge": value >= limit, "lt": value < limit, "le": value <= limit}[k]
        ):
            return False
    return True


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is of the type `hint` describes (strict, as the specs are: no "24" for 24)."""
    return _checker(hint)(value)


# id(hint) -> (hint, its checker): a hint's checker is built once (a cached spec's ~60 values are checked
# against the same few dozen hints); the hint is kept so its id stays its own
_CHECKERS: dict[int, tuple[Any, Callable[[Any], bool]]] = {}


def _checker(hint: Any) -> Callable[[Any], bool]:
    held = _CHECKERS.get(id(hint))
    if held is None or held[0] is not hint:
        held = _CHECKERS[id(hint)] = (hint, _build_checker(hint))
    return held[1]


def _true(value: Any) -> bool:
    return True


def _build_checker(hint: Any) -> Callable[[Any], bool]:
    """A function telling whether a value is of the type `hint` describes."""
    import types
    import typing

    from ..records import BaseModel

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return _true
    if origin is typing.Annotated:
        inner, bounds = _checker(args[0]), [b for m in args[1:] for b in _bounds(m)]
        return lambda v: inner(v) and _within(v, bounds)
    if origin is typing.Union or origin is types.UnionType:
        options = [_checker(a) for a in args]
        return lambda v: any(c(v) for c in options)
    if origin is typing.Literal:
        return lambda v: any(v == a and type(v) is type(a) for a in args)
    if hint is None or hint is type(None):
        return lambda v: v is None
    if origin in (list, tuple, dict, set, frozenset) or hint in (list, tuple, dict):
        container = origin or hint
        if container is dict:
            key, item = args if args else (Any, Any)
            kc, ic = _checker(key), _checker(item)
            return lambda v: isinstance(v, dict) and all(kc(k) and ic(x) for k, x in v.items())
        if container is tuple and args and args[-1] is not Ellipsis:
            each = [_checker(a) for a in args]
            return lambda v: (
                isinstance(v, tuple) and len(v) == len(each) and all(c(x) for c, x in zip(each, v, strict=True))
            )
        ic = _checker(args[0] if args else Any)
        return lambda v: isinstance(v, container) and all(ic(x) for x in v)
    if hint is bool:
        return lambda v: type(v) is bool
    if hint is int:
        return lambda v: type(v) is int
    if hint is float:
        return lambda v: type(v) in (int, float)
    if hint is str:
        return lambda v: type(v) is str
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return lambda v: isinstance(v, hint) and _conforms_model(v)
    return _true  # a type the specs do not use: not checked here


def index_entry_ok(entry: Any) -> bool:
    """An index entry as catalog._index_entry writes it: aliases and NVML names (lists of strings), a name."""
    return (
        isinstance(entry, dict)
        and set(entry) == {"aliases", "nvml_names", "name"}
        and all(
            isinstance(entry[k], list) and all(isinstance(v, str) for v in entry[k]) for k in ("aliases", "nvml_names")
        )
        and (entry["name"] is None or isinstance(entry["name"], str))
    )


class DiskCache:
    """Index entries and validated specs by file, in one JSON file written atomically.

    An entry is used only when the file's device, inode, size, mtime and ctime and the code
    fingerprint (`_fingerprint`) are those it was stored with; a cache that does not parse or fails
    its checksum is ignored and rewritten. Set WILLITRUN_NO_CACHE=1 to bypass it.
    """

    def __init__(self, path: Path | None, entries: dict[str, Any], fingerprint: list[Any]) -> None:
        self.path, self.entries, self.fingerprint = path, entries, fingerprint
        self.dirty = False
        self.touched: set[str] = set()

    @classmethod
    def open(cls) -> DiskCache:
        import json
        import zlib

        directory = cache_dir()
        if directory is None:
            return cls(None, {}, [])
        package = str(PACKAGE).encode("utf-8", "surrogateescape")
        path = directory / f"catalog-{zlib.crc32(package):08x}.json"
        fingerprint = _fingerprint()
        entries: dict[str, Any] = {}
        try:
            from ..files import CACHE_CAP, read_bytes

            head, _, body = read_bytes(path, CACHE_CAP, "cache file").partition(b"\n")
            header = json.loads(head)
            if header == {"fingerprint": fingerprint, "crc32": zlib.crc32(body)}:
                loaded = json.loads(body)
                entries = loaded if isinstance(loaded, dict) else {}
        except (SpecError, ValueError, RecursionError, TypeError):
            entries = {}  # absent, unreadable, damaged or from other code: start afresh
        return cls(path, entries, json.loads(json.dumps(fingerprint)))

    def find(self, path: Path, kind: Kind) -> tuple[dict[str, Any] | None, list[int] | None]:
        """(the entry stored for this file as it is now, or None; the file's stamp now)."""
        stamp = _stamp(path)
        if self.path is None or stamp is None:
            return None, stamp
        key = os.path.abspath(path)
        self.touched.add(key)
        entry = self.entries.get(key)
        if (
            isinstance(entry, dict)
            and entry.get("stamp") == stamp
            and entry.get("kind") == kind
            and index_entry_ok(entry.get("index"))
        ):
            return entry, stamp
        return None, stamp

    def store(
        self,
        path: Path,
        kind: Kind,
        stamp: list[int] | None,
        index: dict[str, Any],
        spec: Any = None,
        encoded: Any = None,
    ) -> None:
        """Keep what was computed from the file as it was at `stamp` (taken before it was read); a spec
        already encoded (catalog/bundled.py) as `encoded`."""
        import time

        if self.path is None or stamp is None or time.time_ns() - max(stamp[3], stamp[4]) < RACY_NS:
            return
        entry: dict[str, Any] = {"stamp": stamp, "kind": kind, "index": index}
        if encoded is not None:
            entry["spec"] = encoded
        elif spec is not None:
            with contextlib.suppress(_Uncacheable):
                entry["spec"] = _encode(spec)
        self.entries[os.path.abspath(path)] = entry
        self.dirty = True

    def keep(self, path: Path, derived: dict[str, Any]) -> None:
        """Keep what was derived from the spec of `path`'s entry (catalog.Catalog.keep_derived)."""
        entry = self.entries.get(os.path.abspath(path))
        if self.path is not None and isinstance(entry, dict):
            entry["derived"] = derived
            self.dirty = True

    def save(self) -> None:
        """Write the cache atomically if anything was added; a cache that cannot be written is skipped."""
        if self.path is None or not self.dirty:
            return  # the common warm run: nothing to write, and tempfile (~6 ms to import) is not needed
        import json
        import zlib

        from ..errors import WillItRunError
        from ..files import write_atomic

        self.dirty = False
        keep = {k: v for k, v in self.entries.items() if k in self.touched or os.path.exists(k)}
        if len(keep) > MAX_ENTRIES:
            keep = {k: v for k, v in keep.items() if k in self.touched}
        body = json.dumps(keep, separators=(",", ":")).encode()
        head = json.dumps({"fingerprint": self.fingerprint, "crc32": zlib.crc32(body)}).encode()
        with contextlib.suppress(OSError, WillItRunError):  # a cache that cannot be written is skipped
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, head + b"\n" + body, "cache file")
