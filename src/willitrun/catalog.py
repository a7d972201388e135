"""Find, load and validate spec files: the bundled catalog, then user directories.

User directories (WILLITRUN_SPECS_PATH, os.pathsep-separated, then --specs-dir) hold
`model_specs/` and/or `hardware_specs/` subdirectories; a user spec with a bundled id shadows it.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from .errors import SpecError, UsageError
from .specs import GPUSpec, parse_model_spec

Kind = Literal["model", "gpu"]
SUBDIR: dict[Kind, str] = {"model": "model_specs", "gpu": "hardware_specs"}
ENV_VAR = "WILLITRUN_SPECS_PATH"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe: tags that build objects are refused


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


# --------------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------------
def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            if match is None:
                match = next((k for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


_UNION_TAGS = {"LlamaSpec", "T5Spec", "WhisperSpec", "LlavaSpec", "MllamaSpec", "llama", "mistral", "t5",
               "whisper", "llava", "llava_next", "mllama"}


def render_validation_error(path: Path, text: str, err: ValidationError) -> list[str]:
    """One line per problem: `file:line: field.path: message` (pydantic never reaches the user)."""
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(part for i, part in enumerate(e["loc"]) if not (i == 0 and part in _UNION_TAGS))
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (see docs/spec-format.md)"
        line = _line_of(text, loc)
        lines.append(f"{path}:{line}: {where}: {msg}" if line else f"{path}: {where}: {msg}")
    return lines


def read_yaml(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: malformed YAML: {problem}") from None
    if data is None:
        raise SpecError(f"{path}: empty file")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping, not {type(data).__name__}")
    return text, data


def load_spec(path: Path, kind: Kind) -> Any:
    """Read and validate one spec file; SpecError carries one line per problem."""
    text, data = read_yaml(path)
    try:
        spec = parse_model_spec(data) if kind == "model" else GPUSpec.model_validate(data)
    except ValidationError as err:
        problems = render_validation_error(path, text, err)
        raise SpecError(problems[0], problems) from None
    if spec.id != path.stem:
        line = _line_of(text, ("id",))
        msg = f"{path}:{line}: id: {spec.id!r} does not match the file name {path.stem!r}"
        raise SpecError(msg)
    return spec


# --------------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------------
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
            if i > 0 and not root.is_dir():
                what = "is not a directory" if root.exists() else "does not exist"
                raise UsageError(f"spec directory {root} {what}")
            for kind, sub in SUBDIR.items():
                d = root / sub
                if not d.is_dir():
                    continue
                for f in sorted(d.glob("*.yaml")):
                    if f.stem in out[kind] and i > 0:
                        self.shadowed.append(f"{f} shadows the bundled {kind} spec {f.stem!r}")
                    out[kind][f.stem] = f
        return out

    def get(self, kind: Kind, spec_id: str) -> Any:
        key = (kind, spec_id)
        if key not in self._cache:
            self._cache[key] = load_spec(self.files(kind)[spec_id], kind)
        return self._cache[key]

    def all(self, kind: Kind) -> list[Any]:
        return [self.get(kind, i) for i in self.files(kind)]

    def _aliases(self, kind: Kind) -> dict[str, str]:
        """alias -> id, read from the YAML without validating every file (validation is per use)."""
        out: dict[str, str] = {}
        for spec_id, path in self.files(kind).items():
            try:
                aliases = read_yaml(path)[1].get("aliases") or []
            except SpecError:
                continue  # a broken file is reported when it is used or validated
            for alias in aliases if isinstance(aliases, list) else []:
                out.setdefault(str(alias).lower(), spec_id)
        return out

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
            from .gpu import match_gpu

            found = match_gpu(name, self.gpus())
            if found is not None:
                return found
        what = "model" if kind == "model" else "GPU"
        close = difflib.get_close_matches(key, [*files, *aliases], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; see `willitrun list`"
        raise UsageError(f"unknown {what} {name!r}{hint}")

    def models(self) -> list[BaseModel]:
        return self.all("model")

    def gpus(self) -> list[GPUSpec]:
        return self.all("gpu")


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """The bundled catalog plus user spec directories (WILLITRUN_SPECS_PATH, then `extra_dirs`)."""
    return Catalog(list(extra_dirs or []))
