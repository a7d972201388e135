"""Find, load and validate spec files: the bundled catalog, then user directories.

User directories (WILLITRUN_SPECS_PATH, os.pathsep-separated, then --specs-dir) hold
`model_specs/` and/or `hardware_specs/` subdirectories of `<id>.yaml` (or `.yml`) files; a user spec
with a bundled id shadows it. Ids and aliases follow one rule: the later root wins.

A lookup reads only what it needs: an index of every file's aliases and NVML names finds the one
file to validate. Index entries and validated specs are kept in a cache file (`DiskCache`) so a
repeated lookup parses no YAML and builds no validator (catalog/cache.py).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from ..errors import SpecError, UsageError
from ..files import YamlDoc, path_type, read_yaml_mapping, safe_path, safe_text
from . import bundled
from .cache import PACKAGE, DiskCache, decode_spec, index_entry_ok

Kind = Literal["model", "gpu"]
SUBDIR: dict[Kind, str] = {"model": "model_specs", "gpu": "hardware_specs"}
SPEC_SUFFIXES = (".yaml", ".yml")
ENV_VAR = "WILLITRUN_SPECS_PATH"


def bundled_root() -> Path:
    """Where the bundled specs are: inside the installed package, else the repository root.

    A wheel carries them as willitrun/_data/ (hatch force-include); an editable install does not
    (a known hatch limitation), so there the repository checkout two levels above this file is used.
    """
    data = PACKAGE / "_data"
    if (data / "model_specs").is_dir():
        return data
    return PACKAGE.parents[1]


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
    from ..specs import SPEC_CLASSES, GPUSpec

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
        msg = safe_text(e["msg"].removeprefix("Value error, "))  # some messages quote the input
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

    from ..specs import GPUSpec, parse_model_spec

    try:
        spec = parse_model_spec(doc.data) if kind == "model" else GPUSpec.model_validate(doc.data)
    except ValidationError as err:
        problems = render_validation_error(path, doc, err, spec_class(kind, doc.data))
        raise SpecError(problems[0], problems) from None
    if spec.id != path.stem:
        line = doc.line(("id",))
        raise SpecError(f"{safe_path(path)}:{line}: id: {spec.id!r} does not match the file name {path.stem!r}")
    if isinstance(spec, GPUSpec) and spec.unusable():  # the same refusal for `validate` and for every answer
        problems = [f"{safe_path(path)}:{doc.line((name,))}: {name}: {why}" for name, why in spec.unusable()]
        raise SpecError(problems[0], problems)
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
    return {
        "aliases": strings("aliases"),
        "nvml_names": strings("nvml_names"),
        "name": name if isinstance(name, str) else None,
    }


@dataclass
class Catalog:
    """Spec files by id, loaded on demand: looking up an id reads one file, not the whole catalog."""

    extra_dirs: list[Path] = field(default_factory=list)
    _cache: dict[tuple[Kind, str], Any] = field(default_factory=dict)
    shadowed: list[str] = field(default_factory=list)
    _rank: dict[Kind, dict[str, int]] = field(default_factory=dict)  # id -> index of its root in roots()

    def roots(self) -> list[Path]:
        return [bundled_root(), *user_roots(self.extra_dirs)]

    def files(self, kind: Kind) -> dict[str, Path]:
        """id -> file; later roots (user directories) override earlier ones (the bundled catalog)."""
        return self._files[kind]

    @cached_property
    def _files(self) -> dict[Kind, dict[str, Path]]:
        """One precedence rule, for ids here and for aliases in `_aliases`: a later root wins (the
        bundled catalog, then WILLITRUN_SPECS_PATH's folders in order, then each --specs-dir)."""
        out: dict[Kind, dict[str, Path]] = {"model": {}, "gpu": {}}
        rank: dict[Kind, dict[str, int]] = {"model": {}, "gpu": {}}
        for i, root in enumerate(self.roots()):
            if i > 0:
                kind_of_root = path_type(root)
                if kind_of_root.kind != "directory":
                    what = (
                        "does not exist"
                        if kind_of_root.kind == "missing"
                        else f"is not a directory ({kind_of_root.what})"
                    )
                    raise UsageError(f"spec directory {safe_path(root)} {what}")
            for kind, sub in SUBDIR.items():
                for f in spec_files(root / sub):
                    if f.stem in out[kind] and i > 0:
                        self.shadowed.append(
                            f"{safe_path(f)} shadows the {_whose(rank[kind][f.stem], out[kind][f.stem])} "
                            f"{kind} spec {f.stem!r}"
                        )
                    out[kind][f.stem] = f
                    rank[kind][f.stem] = i
        self._rank = rank
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
                if entry is None:  # the first run after install: the prebuilt entry (catalog/bundled.py)
                    pre = bundled.entry(path, kind)
                    entry = pre["index"] if pre is not None and index_entry_ok(pre.get("index")) else None
                    if entry is not None:  # kept as a parsed entry is: the next run reads no spec file for it
                        self._disk.store(path, kind, stamp, entry)
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
            spec = decode_spec(hit["spec"], kind, spec_id) if hit and "spec" in hit else None
            if spec is not None and "derived" in hit:  # type: ignore[operator]
                from ..memory import prime_derived

                prime_derived(spec, hit["derived"])  # type: ignore[index]
            if spec is None:  # the first run after install: the prebuilt spec (catalog/bundled.py)
                pre = bundled.entry(path, kind)
                if pre is not None and index_entry_ok(pre.get("index")):
                    spec = decode_spec(pre.get("spec"), kind, spec_id)
                    if spec is not None:
                        self._disk.store(path, kind, stamp, pre["index"], encoded=pre["spec"])
                        self._disk.save()
            if spec is None:
                doc = read_yaml_mapping(path)
                spec = spec_from_document(path, doc, kind)
                self._disk.store(path, kind, stamp, _index_entry(doc.data), spec)
                self._disk.save()
            self._cache[key] = spec
        return self._cache[key]

    def keep_derived(self) -> None:
        """Store in the cache what was derived from each model spec used (memory.derived_values: its
        weights per component, active parameters), beside the spec, so the next command that loads it
        has them without building its tensor inventory. Only beside an entry of the file as it is now."""
        from ..memory import derived_values

        models = [(spec_id, spec) for (kind, spec_id), spec in self._cache.items() if kind == "model"]
        for (spec_id, _), values in zip(models, derived_values([s for _, s in models]), strict=True):
            path = self.files("model").get(spec_id)
            if not values or path is None:
                continue
            hit, _ = self._disk.find(path, "model")
            if hit is None or "spec" not in hit:
                continue
            kept = hit.get("derived")
            merged = {**(kept if isinstance(kept, dict) else {}), **values}
            if merged != kept:
                self._disk.keep(path, merged)
        self._disk.save()

    def all(self, kind: Kind) -> list[Any]:
        return [self.get(kind, i) for i in self.files(kind)]

    def _aliases(self, kind: Kind) -> dict[str, str]:
        """alias -> id, from the index (validation is per use). An alias claimed by several specs goes
        to the one from the latest root, as an id does (`_files`); within one root, to the first id in
        sorted order (`validate` reports the clash). An id always wins over an alias (`resolve`)."""
        out: dict[str, str] = {}
        index = self._index(kind)
        rank = self._rank[kind]
        files = self.files(kind)
        for spec_id in sorted(index, key=lambda i: (-rank[i], i)):
            for alias in index[spec_id]["aliases"]:
                key = alias.lower()
                if key not in out:
                    out[key] = spec_id
                elif out[key] != spec_id and rank[out[key]] > rank[spec_id]:
                    line = (
                        f"{safe_path(files[out[key]])} takes the alias {safe_text(repr(alias))} from the "
                        f"{_whose(rank[spec_id], files[spec_id])} {kind} spec {spec_id!r}"
                    )
                    if line not in self.shadowed:
                        self.shadowed.append(line)
        return out

    def _gpu_by_name(self, name: str) -> Any:
        """A catalog GPU whose NVML or display name is `name` (ignoring case and punctuation);
        only the candidate files are validated."""
        from ..gpu_names import match_gpu, norm_name

        key = norm_name(name)
        ids = [
            i
            for i, e in self._index("gpu").items()
            if any(norm_name(n) == key for n in e["nvml_names"]) or (e["name"] and norm_name(e["name"]) == key)
        ]
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


def _whose(rank: int, path: Path) -> str:
    """'bundled' for the bundled catalog's spec, else where the user spec is."""
    return "bundled" if rank == 0 else f"user ({safe_path(path)})"


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """The bundled catalog plus user spec directories (WILLITRUN_SPECS_PATH, then `extra_dirs`)."""
    return Catalog(list(extra_dirs or []))
