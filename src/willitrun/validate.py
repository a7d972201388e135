"""`willitrun validate`: check every spec file before failing, one line per problem.

Beyond the schema: the id equals the file name, ids and aliases are unique, a declared parameter
total is within 0.5 % of the derived one, every number names its source, and the estimator can
handle the spec (validate approves nothing that `willitrun MODEL` would then fail on).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from .catalog import SUBDIR, Kind, bundled_root, spec_files, spec_from_document, user_roots
from .errors import SpecError, UsageError, WillItRunError
from .files import not_regular, path_type, read_yaml_mapping, safe_path, safe_text

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


def is_spec_repository(directory: Path) -> bool:
    """A directory holding model_specs/ or hardware_specs/ (the catalog's layout)."""
    return any(path_type(directory / sub).kind == "directory" for sub in SUBDIR.values())


def _files(paths: list[Path], catalog_roots: bool = False) -> tuple[list[Path], list[str]]:
    """(spec files under `paths`, problems with paths that are not spec files or directories).

    A directory gives its own *.yaml/*.yml and those of its model_specs/ and hardware_specs/; a
    catalog root (bundled or user directory) only the latter two. A path that does not exist, or a
    directory with no spec files, is a usage error (nothing can be checked).
    """
    out: list[Path] = []
    problems: list[str] = []
    for p in paths:
        kind = path_type(p)
        if kind.kind == "directory":
            own = [] if catalog_roots else spec_files(p)
            found = own + [f for sub in SUBDIR.values() for f in spec_files(p / sub)]
            if not found:
                raise UsageError(
                    f"{safe_path(p)}: no spec files (*.yaml, *.yml) here or in {'/ or '.join(SUBDIR.values())}/"
                )
            out.extend(found)
        elif kind.kind == "file":
            out.append(p)
        elif kind.kind == "missing":
            raise UsageError(f"{safe_path(p)}: no such file or directory")
        else:
            problems.append(f"{safe_path(p)}: {not_regular(kind.what)}")
    unique: dict[str, Path] = {}
    for f in out:
        unique.setdefault(str(_real(f)), f)  # a file reached twice is checked once
    return list(unique.values()), problems


def _real(path: Path) -> Path:
    """The path with symlinks resolved as far as they go: a symlink loop is reported by the reader
    ("too many levels of symbolic links"), not raised here (Path.resolve raises RuntimeError on 3.11-3.12)."""
    return Path(os.path.realpath(path))


def estimator_problems(path: Path, spec: Any) -> list[str]:
    """Why the estimator cannot handle a schema-valid model spec: the default request is estimated
    at the shortest context, the default one and the longest one a fit check searches (the total
    grows with the context, so these bound every estimate of that search)."""
    from .memory import Request, context_limit, default_context, estimate_resolved, resolve

    where = safe_path(path)
    try:
        r = resolve(spec, Request())
        default = default_context(r)
        for context in dict.fromkeys((r.image_tokens + 1, default, max(default, context_limit(r, default)))):
            e = estimate_resolved(r, context, 1, 1)
            float(e.total_bytes), float(e.parameters)  # every output converts sizes to GiB/GB floats
    except SpecError as exc:
        return [f"{where}: {line}" for line in exc.problems]
    except WillItRunError as exc:
        return [f"{where}: the estimator cannot handle this spec: {safe_text(exc)}"]
    except RecursionError:
        return [f"{where}: the estimator cannot handle this spec (nested too deeply)"]
    except Exception as exc:  # any failure is this spec's problem, reported with its file
        text = str(exc).splitlines()[0] if str(exc) else ""
        return [f"{where}: the estimator cannot handle this spec: {type(exc).__name__}: {safe_text(text[:200])}"]
    return []


def validate_file(path: Path) -> tuple[Kind | None, Any, list[str], list[str]]:
    """(kind, spec or None, errors, warnings) for one file, read and parsed once."""
    try:
        doc = read_yaml_mapping(path)
    except SpecError as exc:
        return None, None, exc.problems, []
    where = safe_path(path)
    kind = _kind_of(path, doc.data)
    if kind is None:
        return (
            None,
            None,
            [f"{where}: cannot tell a model spec (has `architecture`) from a GPU spec (has `vendor`)"],
            [],
        )
    try:
        spec = spec_from_document(path, doc, kind)
    except SpecError as exc:
        return kind, None, exc.problems, []
    warnings = [
        f"{where}:{doc.line(p)}: {safe_text('.'.join(map(str, p)))}: number without a source "
        "(add a `sources` key covering it)"
        for p in unsourced(doc.data)
    ]
    if kind == "gpu":  # a GPU the answers cannot use was refused by spec_from_document (GPUSpec.unusable)
        return kind, spec, [], warnings
    errors = estimator_problems(path, spec)
    if errors:
        return kind, None, errors, warnings
    if spec.parameters_declared:
        from .dtypes import weight_dtype
        from .memory import weight_components

        derived = sum(c.parameters for c in weight_components(spec, weight_dtype(spec.dtype)))
        if abs(derived - spec.parameters_declared) > DECLARED_TOLERANCE * spec.parameters_declared:
            errors.append(
                f"{where}:{doc.line(('parameters_declared',))}: parameters_declared: "
                f"{spec.parameters_declared:,} differs from the {derived:,} derived from the architecture by more than 0.5 %"
            )
    return kind, spec, errors, warnings


class Report(NamedTuple):
    errors: list[str]
    warnings: list[str]
    notes: list[str]
    checked: int


def default_roots(extra_dirs: list[Path] | None = None) -> list[Path]:
    """What `validate` with no path checks: the spec repository in the current directory (one with
    model_specs/ or hardware_specs/), else the bundled catalog; then the user spec directories."""
    here = Path.cwd()
    return [here if is_spec_repository(here) else bundled_root(), *user_roots(extra_dirs)]


def validate_paths(paths: list[Path] | None, extra_dirs: list[Path] | None = None) -> Report:
    """Check the given files/directories, or (no path) `default_roots()`; every file is checked,
    whatever the others hold, and each problem is reported once.

    Ids and aliases must be unique among the files checked; a user spec that reuses a bundled id
    shadows it on purpose, which is a note, not an error.
    """
    bundled = _real(bundled_root())
    roots = list(paths) if paths else default_roots(extra_dirs)
    files, problems = _files(roots, catalog_roots=not paths)
    report = Report(problems, [], [], len(files) + len(problems))
    seen: dict[tuple[Kind | None, str], Path] = {}
    for f in files:
        kind, spec, errs, warns = validate_file(f)
        report.errors.extend(errs)
        report.warnings.extend(warns)
        if spec is None:
            continue
        for name in dict.fromkeys((spec.id, *spec.aliases)):
            prev = seen.get((kind, name))
            if prev is not None and prev != f:
                if bundled in _real(prev).parents and bundled not in _real(f).parents:
                    report.notes.append(f"{safe_path(f)} shadows the bundled {kind} spec {name!r} ({safe_path(prev)})")
                else:
                    report.errors.append(f"{safe_path(f)}: id: {name!r} is already used by {safe_path(prev)}")
            seen[(kind, name)] = f
    for lines in (report.errors, report.warnings, report.notes):
        lines[:] = dict.fromkeys(lines)
    return report
