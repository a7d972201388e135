"""`willitrun validate`: check every spec file before failing, one line per problem.

Beyond the schema: the id equals the file name, ids and aliases are unique, a declared parameter
total is within 0.5 % of the derived one, and every number names its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .catalog import SUBDIR, Kind, _line_of, bundled_root, load_spec, read_yaml, user_roots
from .errors import SpecError, UsageError

DECLARED_TOLERANCE = 0.005


def _kind_of(path: Path, data: dict[str, Any]) -> Kind | None:
    for kind, sub in SUBDIR.items():
        if path.parent.name == sub:
            return kind
    if "architecture" in data:
        return "model"
    if "vendor" in data:
        return "gpu"
    return None


def _numbers(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() if k not in ("sources",) or path for p in _numbers(v, (*path, k))]
    if isinstance(data, list):
        # A list of numbers (layer indices, pinpoints) is one field.
        if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            return [path]
        return [p for i, v in enumerate(data) for p in _numbers(v, (*path, i))]
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return [path]
    return []


def unsourced(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Paths of numeric fields that no key of `sources` covers (a key covers its whole subtree)."""
    sources = data.get("sources") or {}
    keys = {tuple(str(k).split(".")) for k in sources} if isinstance(sources, dict) else set()
    missing = []
    for path in _numbers({k: v for k, v in data.items() if k != "sources"}):
        parts = tuple(str(p) for p in path)
        if not any(parts[: len(k)] == k for k in keys):
            missing.append(path)
    return missing


def _files(paths: list[Path], catalog_roots: bool = False) -> list[Path]:
    """Spec files under `paths`: a directory's own *.yaml and those of its model_specs/ and
    hardware_specs/; a catalog root (bundled or user directory) only the latter two."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            own = [] if catalog_roots else sorted(p.glob("*.yaml"))
            found = own + sorted(f for sub in SUBDIR.values() for f in (p / sub).glob("*.yaml"))
            if not found:
                raise UsageError(f"{p}: no spec files (*.yaml) here or in {'/ or '.join(SUBDIR.values())}/")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out


def validate_file(path: Path) -> tuple[Kind | None, Any, list[str], list[str]]:
    """(kind, spec or None, errors, warnings) for one file."""
    try:
        text, data = read_yaml(path)
    except SpecError as exc:
        return None, None, exc.problems, []
    kind = _kind_of(path, data)
    if kind is None:
        return None, None, [f"{path}: cannot tell a model spec (has `architecture`) from a GPU spec (has `vendor`)"], []
    try:
        spec = load_spec(path, kind)
    except SpecError as exc:
        return kind, None, exc.problems, []
    errors: list[str] = []
    warnings = [f"{path}:{_line_of(text, p)}: {'.'.join(map(str, p))}: number without a source (add a `sources` key covering it)"
                for p in unsourced(data)]
    if kind == "model" and spec.parameters_declared:
        from .dtypes import weight_dtype
        from .memory import weight_components

        derived = sum(c.parameters for c in weight_components(spec, weight_dtype(spec.dtype)))
        if abs(derived - spec.parameters_declared) > DECLARED_TOLERANCE * spec.parameters_declared:
            errors.append(f"{path}:{_line_of(text, ('parameters_declared',))}: parameters_declared: "
                          f"{spec.parameters_declared:,} differs from the {derived:,} derived from the architecture by more than 0.5 %")
    return kind, spec, errors, warnings


class Report(NamedTuple):
    errors: list[str]
    warnings: list[str]
    notes: list[str]
    checked: int


def validate_paths(paths: list[Path] | None, extra_dirs: list[Path] | None = None) -> Report:
    """Check the given files/directories, or the bundled catalog plus the user spec directories.

    Ids and aliases must be unique among the files checked; a user spec that reuses a bundled id
    shadows it on purpose, which is a note, not an error.
    """
    bundled = bundled_root().resolve()
    roots = paths if paths else [bundled, *user_roots(extra_dirs)]
    files = _files(roots, catalog_roots=not paths)
    report = Report([], [], [], len(files))
    seen: dict[tuple[str, str], Path] = {}
    for f in files:
        kind, spec, errs, warns = validate_file(f)
        report.errors.extend(errs)
        report.warnings.extend(warns)
        if spec is None:
            continue
        for name in dict.fromkeys((spec.id, *spec.aliases)):
            prev = seen.get((kind, name))
            if prev is not None and prev != f:
                if bundled in prev.resolve().parents and bundled not in f.resolve().parents:
                    report.notes.append(f"{f} shadows the bundled {kind} spec {name!r} ({prev})")
                else:
                    report.errors.append(f"{f}: id: {name!r} is already used by {prev}")
            seen[(kind, name)] = f
    return report
