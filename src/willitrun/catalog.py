"""Find, load and validate spec files: the bundled catalog, then user directories.

User directories (WILLITRUN_SPECS_PATH, os.pathsep-separated, then --specs-dir) hold
`model_specs/` and/or `hardware_specs/` subdirectories of `<id>.yaml` (or `.yml`) files; a user spec
with a bundled id shadows it.

A lookup reads only what it needs: an index of every file's aliases and NVML names finds the one
file to validate. Index entries and validated specs are kept in a cache file (`DiskCache`) so a
repeated lookup parses no YAML and builds no validator.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from .errors import SpecError, UsageError
from .files import YamlDoc, path_type, read_yaml_mapping, safe_path, safe_text

Kind = Literal["model", "gpu"]
SUBDIR: dict[Kind, str] = {"model": "model_specs", "gpu": "hardware_specs"}
SPEC_SUFFIXES = (".yaml", ".yml")
ENV_VAR = "WILLITRUN_SPECS_PATH"


def bundled_root() -> Path:
    """Where the bundled specs are: inside the installed package, else the repository root.

    A wheel carries them as willitrun/_data/ (hatch force-include); an editable install does not
    (a known hatch limitation), so there the repository checkout two levels above this file is used.
    """
    data = Path(__file__).resolve().parent / "_data"
    if (data / "model_specs").is_dir():
        return data
    return Path(__file__).resolve().parents[2]


def user_roots(extra: list[Path] | None = None) -> list[Path]:
    roots = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return roots + list(extra or [])


def spec_files(directory: Path) -> list[Path]:
    """The spec files of one directory (*.yaml and *.yml), sorted; a .yaml wins over a .yml of the same id."""
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.name.endswith(SPEC_SUFFIXES))
    except OSError:
        return []
    by_id: dict[str, Path] = {}
    for name in names:
        p = directory / name
        if p.suffix == ".yaml" or p.stem not in by_id:
            by_id[p.stem] = p
    return sorted(by_id.values())


# --------------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------------
def spec_class(kind: Kind, data: dict[str, Any]) -> type | None:
    """The pydantic model a document is validated against (None: its architecture is unknown)."""
    from .specs import SPEC_CLASSES, GPUSpec

    if kind == "gpu":
        return GPUSpec
    arch = data.get("architecture")
    return SPEC_CLASSES.get(arch) if isinstance(arch, str) else None


def _fields_at(cls: type | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by following `loc` from `cls` (empty when it leads elsewhere)."""
    import typing

    from pydantic import BaseModel

    for part in loc:
        fields = getattr(cls, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            return []
        args = [fields[part].annotation]
        found = None
        while args:
            a = args.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                found = a
                break
            args.extend(typing.get_args(a))
        cls = found
    return list(getattr(cls, "model_fields", None) or [])


def render_validation_error(path: Path, doc: YamlDoc, err: Any, cls: type | None = None) -> list[str]:
    """One line per problem: `file:line: field.path: message` (pydantic never reaches the user);
    an unknown field names the closest known one."""
    lines = []
    where_file = safe_path(path)
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = safe_text(".".join(str(p) for p in loc)) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(cls, loc[:-1]), n=1, cutoff=0.6) if loc else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msg = f"unknown field{hint} (see docs/spec-format.md)"
        line = doc.line(loc)
        lines.append(f"{where_file}:{line}: {where}: {msg}" if line else f"{where_file}: {where}: {msg}")
    return lines


def spec_from_document(path: Path, doc: YamlDoc, kind: Kind) -> Any:
    """Validate a parsed spec file; SpecError carries one line per problem."""
    from pydantic import ValidationError

    from .specs import GPUSpec, parse_model_spec

    try:
        spec = parse_model_spec(doc.data) if kind == "model" else GPUSpec.model_validate(doc.data)
    except ValidationError as err:
        problems = render_validation_error(path, doc, err, spec_class(kind, doc.data))
        raise SpecError(problems[0], problems) from None
    if spec.id != path.stem:
        line = doc.line(("id",))
        raise SpecError(f"{safe_path(path)}:{line}: id: {spec.id!r} does not match the file name {path.stem!r}")
    return spec


def load_spec(path: Path, kind: Kind) -> Any:
    """Read and validate one spec file; SpecError carries one line per problem."""
    return spec_from_document(path, read_yaml_mapping(path), kind)


# --------------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------------
def _index_entry(data: dict[str, Any]) -> dict[str, Any]:
    """What a lookup needs of a file before validating it: aliases, NVML names, display name."""
    def strings(key: str) -> list[str]:
        value = data.get(key)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    name = data.get("name")
    return {"aliases": strings("aliases"), "nvml_names": strings("nvml_names"),
            "name": name if isinstance(name, str) else None}


@dataclass
class Catalog:
    """Spec files by id, loaded on demand: looking up an id reads one file, not the whole catalog."""

    extra_dirs: list[Path] = field(default_factory=list)
    _cache: dict[tuple[Kind, str], Any] = field(default_factory=dict)
    shadowed: list[str] = field(default_factory=list)

    def roots(self) -> list[Path]:
        return [bundled_root(), *user_roots(self.extra_dirs)]

    def files(self, kind: Kind) -> dict[str, Path]:
        """id -> file; later roots (user directories) override earlier ones (the bundled catalog)."""
        return self._files[kind]

    @cached_property
    def _files(self) -> dict[Kind, dict[str, Path]]:
        out: dict[Kind, dict[str, Path]] = {"model": {}, "gpu": {}}
        for i, root in enumerate(self.roots()):
            if i > 0:
                kind_of_root = path_type(root)
                if kind_of_root.kind != "directory":
                    what = "does not exist" if kind_of_root.kind == "missing" else f"is not a directory ({kind_of_root.what})"
                    raise UsageError(f"spec directory {safe_path(root)} {what}")
            for kind, sub in SUBDIR.items():
                for f in spec_files(root / sub):
                    if f.stem in out[kind] and i > 0:
                        self.shadowed.append(f"{safe_path(f)} shadows the bundled {kind} spec {f.stem!r}")
                    out[kind][f.stem] = f
        return out

    @cached_property
    def _disk(self) -> DiskCache:
        return DiskCache.open()

    def _index(self, kind: Kind) -> dict[str, dict[str, Any]]:
        """id -> index entry for every file of `kind` (from the cache, else from a parse of the file;
        a file that does not parse has no aliases: its error is reported when it is used)."""
        key = f"_index_{kind}"
        if key not in self.__dict__:
            out = {}
            for spec_id, path in self.files(kind).items():
                hit, stamp = self._disk.find(path, kind)
                entry = hit.get("index") if hit else None
                if entry is None:
                    try:
                        entry = _index_entry(read_yaml_mapping(path).data)
                    except SpecError:
                        entry = {"aliases": [], "nvml_names": [], "name": None}  # reported when used
                    self._disk.store(path, kind, stamp, entry)
                out[spec_id] = entry
            self._disk.save()
            self.__dict__[key] = out
        return self.__dict__[key]  # type: ignore[no-any-return]

    def get(self, kind: Kind, spec_id: str) -> Any:
        """The validated spec with this id (UsageError when there is none)."""
        key = (kind, spec_id)
        if key not in self._cache:
            path = self.files(kind).get(spec_id)
            if path is None:
                raise UsageError(f"unknown {'model' if kind == 'model' else 'GPU'} {spec_id!r}")
            hit, stamp = self._disk.find(path, kind)
            spec = _decode_spec(hit["spec"]) if hit and "spec" in hit else None
            if spec is None:
                doc = read_yaml_mapping(path)
                spec = spec_from_document(path, doc, kind)
                self._disk.store(path, kind, stamp, _index_entry(doc.data), spec)
                self._disk.save()
            self._cache[key] = spec
        return self._cache[key]

    def all(self, kind: Kind) -> list[Any]:
        return [self.get(kind, i) for i in self.files(kind)]

    def _aliases(self, kind: Kind) -> dict[str, str]:
        """alias -> id, from the index (validation is per use)."""
        out: dict[str, str] = {}
        for spec_id, entry in self._index(kind).items():
            for alias in entry["aliases"]:
                out.setdefault(alias.lower(), spec_id)
        return out

    def _gpu_by_name(self, name: str) -> Any:
        """A catalog GPU whose NVML or display name is `name` (ignoring case and punctuation);
        only the candidate files are validated."""
        from .gpu import _norm, match_gpu

        key = _norm(name)
        ids = [i for i, e in self._index("gpu").items()
               if any(_norm(n) == key for n in e["nvml_names"]) or (e["name"] and _norm(e["name"]) == key)]
        return match_gpu(name, [self.get("gpu", i) for i in ids]) if ids else None

    def resolve(self, kind: Kind, name: str) -> Any:
        """A spec by id or alias, case-insensitive; unknown names suggest close matches."""
        key = name.strip().lower()
        files = self.files(kind)
        if key in files:
            return self.get(kind, key)
        aliases = self._aliases(kind)
        if key in aliases:
            return self.get(kind, aliases[key])
        if kind == "gpu":
            found = self._gpu_by_name(name)
            if found is not None:
                return found
        what = "model" if kind == "model" else "GPU"
        close = difflib.get_close_matches(key, [*files, *aliases], n=3, cutoff=0.6) if len(key) <= 200 else []
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `willitrun list`"
        raise UsageError(f"unknown {what} {name!r}{hint}")

    def models(self) -> list[Any]:
        return self.all("model")

    def gpus(self) -> list[Any]:
        return self.all("gpu")


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """The bundled catalog plus user spec directories (WILLITRUN_SPECS_PATH, then `extra_dirs`)."""
    return Catalog(list(extra_dirs or []))


# --------------------------------------------------------------------------------------------------
# The cache: index entries and validated specs, keyed by file and by the code that validated them
# --------------------------------------------------------------------------------------------------
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

    package = Path(__file__).parent
    newest = count = total = 0
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "_data")]
        for name in filenames:
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                newest, count, total = max(newest, st.st_mtime_ns), count + 1, total + st.st_size
    libraries = []
    for name in ("pydantic", "pydantic_core", "yaml"):
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module else getattr(find_spec(name), "origin", None)
        st = os.stat(origin) if origin else None
        libraries.append([name, st.st_size, st.st_mtime_ns] if st else [name])
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
    from pydantic import BaseModel

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return value
    if isinstance(value, BaseModel):
        cls = type(value)
        if not cls.__module__.startswith("willitrun.") or value.__pydantic_extra__ or value.__pydantic_private__:
            raise _Uncacheable
        return ["M", cls.__module__, cls.__qualname__, sorted(value.model_fields_set),
                {k: _encode(v) for k, v in value.__dict__.items()}]
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

        from pydantic import BaseModel

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


def _decode_spec(value: Any) -> Any:
    try:
        return _decode(value)
    except Exception:  # noqa: BLE001 - a damaged entry is a miss: the file is read and validated again
        return None


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
        package = str(Path(__file__).parent).encode("utf-8", "surrogateescape")
        path = directory / f"catalog-{zlib.crc32(package):08x}.json"
        fingerprint = _fingerprint()
        entries: dict[str, Any] = {}
        try:
            from .files import CACHE_CAP, read_bytes

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
        if isinstance(entry, dict) and entry.get("stamp") == stamp and entry.get("kind") == kind:
            return entry, stamp
        return None, stamp

    def store(self, path: Path, kind: Kind, stamp: list[int] | None, index: dict[str, Any], spec: Any = None) -> None:
        """Keep what was computed from the file as it was at `stamp` (taken before it was read)."""
        import time

        if self.path is None or stamp is None or time.time_ns() - max(stamp[3], stamp[4]) < RACY_NS:
            return
        entry: dict[str, Any] = {"stamp": stamp, "kind": kind, "index": index}
        if spec is not None:
            try:
                entry["spec"] = _encode(spec)
            except _Uncacheable:
                pass
        self.entries[os.path.abspath(path)] = entry
        self.dirty = True

    def save(self) -> None:
        """Write the cache atomically if anything was added; a cache that cannot be written is skipped."""
        import json
        import tempfile
        import zlib

        if self.path is None or not self.dirty:
            return
        self.dirty = False
        keep = {k: v for k, v in self.entries.items() if k in self.touched or os.path.exists(k)}
        if len(keep) > MAX_ENTRIES:
            keep = {k: v for k, v in keep.items() if k in self.touched}
        body = json.dumps(keep, separators=(",", ":")).encode()
        head = json.dumps({"fingerprint": self.fingerprint, "crc32": zlib.crc32(body)}).encode()
        tmp = None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(head + b"\n" + body)
            os.replace(tmp, self.path)
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
