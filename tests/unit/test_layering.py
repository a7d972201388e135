"""The house's layering (issue 17 §2): a lower floor never imports a higher one, and the CLI's
modules import one another without a circle. Every import statement counts, those inside
functions and under TYPE_CHECKING too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "willitrun"


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, src: Path = SRC) -> set[str]:
    """Every willitrun module `path` imports (absolute names; `from . import x` names x too)."""
    name = _module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("willitrun"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("willitrun"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)  # `from . import parse` is a module
    return out


def _files(*names: str) -> list[Path]:
    paths: list[Path] = []
    for n in names:
        p = PACKAGE / n
        paths += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return paths


def _under(imported: str, forbidden: str) -> bool:
    return imported == forbidden or imported.startswith(forbidden + ".")


# (importing files, forbidden modules, the rule in shared/house.json's words)
RULES = [
    (("gpu.py", "detect"), ("willitrun.cli",), "detection knows no CLI"),
    (
        (
            "validate.py",
            "specs.py",
            "catalog",
            "errors.py",
            "files.py",
            "records.py",
            "limits.py",
            "units.py",
            "gpu_names.py",
            "devices.py",
        ),
        ("willitrun.fit", "willitrun.placement", "willitrun.answers", "willitrun.cluster", "willitrun.speed"),
        "specs know no verdict",
    ),
    (
        ("specs.py", "catalog", "validate.py", "units.py", "gpu_names.py", "devices.py"),
        ("willitrun.gpu", "willitrun.detect", "willitrun.cli"),
        "specs never probe hardware, know no CLI",
    ),
    (
        ("render.py", "render_answers.py", "table_width.py"),
        ("willitrun.gpu", "willitrun.detect"),
        "rendering never probes hardware",
    ),
    (
        ("memory.py", "overrides.py", "tensors.py", "dtypes.py", "layers.py"),
        ("willitrun.importers", "willitrun.cli", "willitrun.engines", "willitrun.gpu", "willitrun.render"),
        "the arithmetic knows no file format, CLI, engine, hardware or display",
    ),
]


@pytest.mark.parametrize(("files", "forbidden", "rule"), RULES, ids=[r[2] for r in RULES])
def test_a_lower_floor_never_imports_a_higher_one(
    files: tuple[str, ...], forbidden: tuple[str, ...], rule: str
) -> None:
    broken = [
        f"{p.relative_to(SRC)} imports {m}"
        for p in _files(*files)
        for m in sorted(_imports(p))
        if any(_under(m, f) for f in forbidden)
    ]
    assert broken == [], rule


def test_the_floor_modules_import_nothing_above_them() -> None:
    """units, gpu_names, devices and overrides import only errors (and, for type names only, specs and
    memory): they are what the higher floors share."""
    allowed = {
        "willitrun.errors",
        "willitrun.errors.UsageError",
        "willitrun.specs",
        "willitrun.specs.GPUSpec",
        "willitrun.memory",
        "willitrun.memory.Component",
        "willitrun.memory.Resolved",
    }
    for name in ("units.py", "gpu_names.py", "devices.py", "overrides.py"):
        assert _imports(PACKAGE / name) <= allowed, name


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in `graph`, as the modules along it, or None."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cli_modules_import_one_another_without_a_circle() -> None:
    """cli/estimation, cli/cluster and cli/engine_extras (now in cli/extras) imported one another (issue 17 §2); what they
    share is cli/engine_options.py. No circle anywhere in cli/ (commands/ excepted: each is a leaf)."""
    modules = {_module_name(p): p for p in (PACKAGE / "cli").glob("*.py")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    graph = {m: deps - {"willitrun.cli"} for m, deps in graph.items()}  # the package itself imports lazily
    assert _cycle(graph) is None, _cycle(graph)


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_modules(tmp_path: Path) -> None:
    """The reader sees `from ..cli.parse import size` in gpu.py as willitrun.cli.parse (the import
    the first rule forbids, as it stood before units.py)."""
    assert "willitrun.cli.parse" in _imports_of_text("src/willitrun/gpu.py", "from .cli.parse import size\n", tmp_path)
    assert "willitrun.cli.parse" in _imports_of_text(
        "src/willitrun/detect/config.py", "from ..cli.parse import looks_like_size\n", tmp_path
    )
    assert "willitrun.cli.parse" in _imports_of_text("src/willitrun/cli/cluster.py", "from . import parse\n", tmp_path)


def _imports_of_text(where: str, text: str, tmp_path: Path) -> set[str]:
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return _imports(path, tmp_path / "src")
