"""Find the models already on this machine: walk each place as its owner lays it out and list what
can be estimated, with its size on disk and the engine it belongs to. Damaged entries (a broken
symlink, a manifest that is not JSON, a blob that is gone) become Problems; nothing here raises for
what it finds, and nothing is imported or estimated (the scan command does that, per model)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import hf_cache, ollama_store
from .places import FOLDER, HF_CACHE, LLAMA_CPP, LM_STUDIO, OLLAMA, Place
from .walk import MAX_DEPTH, MAX_FOUND, Budget, Problem, file_size, is_dir, walk

GGUF, SAFETENSORS = "gguf", "safetensors"
LMSTUDIO_DEPTH = 3  # <publisher>/<repository>/<file>.gguf, and one sub-folder more


@dataclass(frozen=True)
class Found:
    """A model on disk: what to type to estimate it (`name`), the file or checkpoint folder, where it
    was found (`place`, a places.* kind), its format and its bytes on disk."""

    name: str
    path: Path
    place: str
    format: str
    size_bytes: int

    @property
    def engine(self) -> str:
        """The engine that loads it from there: ollama's store → ollama; a GGUF → llama.cpp; a
        safetensors checkpoint → transformers (vLLM loads the same folder)."""
        if self.place == OLLAMA:
            return "ollama"
        return "llama.cpp" if self.format == GGUF else "transformers"


@dataclass
class ScanResult:
    found: list[Found] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False  # a cap (entries, models) was reached


class _Scan:
    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.found: list[Found] = []
        self.seen: set[str] = set()
        self.full = False

    def add(self, name: str, path: Path, place: str, fmt: str, size: int) -> None:
        key = os.path.realpath(path)
        if key in self.seen:
            return
        if len(self.found) >= MAX_FOUND:
            if not self.full:
                self.full = True
                self.budget.problem(path, f"stopped: more than {MAX_FOUND:,} models found")
            return
        self.seen.add(key)
        self.found.append(Found(name, path, place, fmt, size))

    def hf_cache(self, cache: Path, place: str = HF_CACHE) -> None:
        for repo_id, repo in hf_cache.cached_repos(cache, self.budget):
            snaps = hf_cache.snapshots(repo, repo_id, self.budget)
            if not snaps and (repo / "snapshots").exists():
                self.budget.problem(repo, "no snapshot in the cache (an interrupted download?)")
            for snap in snaps:
                label = repo_id if len(snaps) == 1 else f"{repo_id}@{snap.revision[:12]}"
                has_config, ggufs = hf_cache.snapshot_files(snap.path, self.budget)
                if has_config:
                    self.add(label, snap.path, place, SAFETENSORS, hf_cache.checkpoint_bytes(snap.path, self.budget))
                for g in ggufs:
                    size = file_size(g, self.budget)
                    if size is not None:
                        self.add(f"{label}/{g.relative_to(snap.path).as_posix()}", g, place, GGUF, size)

    def ollama(self, store: Path) -> None:
        for name, manifest in ollama_store.list_models(store, self.budget):
            model = ollama_store.load_model(store, name, manifest, self.budget)
            if model is not None:
                self.add(str(name), model.blob, OLLAMA, GGUF, model.size_bytes)

    def ggufs(self, root: Path, place: str, depth: int, named: bool) -> None:
        """Every loadable .gguf below `root`; `named`: call it by its path below root (LM Studio's
        publisher/repository/file), else by its full path."""
        for directory, entries in walk(root, self.budget, depth):
            if place == FOLDER and any(e.name.startswith(hf_cache.REPO_PREFIX) and is_dir(e) for e in entries):
                self.hf_cache(directory, FOLDER)  # a hub cache given as a folder
            for e in entries:
                if is_dir(e):
                    continue
                path = Path(e.path)
                if place == FOLDER and e.name == "config.json" and file_size(e, self.budget) is not None:
                    self.add(str(directory), directory, place, SAFETENSORS, _folder_bytes(directory, self.budget))
                elif hf_cache.is_loadable_gguf(e.name):
                    size = file_size(e, self.budget)
                    if size is not None:
                        self.add(path.relative_to(root).as_posix() if named else str(path), path, place, GGUF, size)

    def llamacpp(self, cache: Path) -> None:
        """llama.cpp's cache: <org>_<repo>_<file>.gguf files side by side (common/arg.cpp: hf_repo + "_" +
        hf_file with '/' replaced by '_'), and since the 2026 move to the hub layout (PR #21009)
        models--ORG--NAME folders."""
        self.hf_cache(cache, LLAMA_CPP)
        for e in self.budget.listdir(cache):
            if not is_dir(e) and hf_cache.is_loadable_gguf(e.name):
                size = file_size(e, self.budget)
                if size is not None:
                    self.add(e.name, Path(e.path), LLAMA_CPP, GGUF, size)


def _folder_bytes(directory: Path, budget: Budget) -> int:
    """Bytes of a checkpoint folder's own files (not its sub-folders)."""
    return sum(file_size(e, budget) or 0 for e in budget.listdir(directory) if not is_dir(e))


def scan_places(places: Iterable[Place], budget: Budget | None = None) -> ScanResult:
    """Every model found in `places` (missing places are skipped quietly), each file once."""
    budget = budget or Budget()
    s = _Scan(budget)
    for place in places:
        if place.note is not None:
            budget.problem(*place.note)
        if not place.path.is_dir():
            if place.kind == FOLDER and place.path.name.lower().endswith(".gguf"):  # a file given: scan it alone
                size = file_size(place.path, budget)
                if size is not None:
                    s.add(str(place.path), place.path, FOLDER, GGUF, size)
            elif place.kind == FOLDER:
                budget.problem(place.path, "not a directory")
            continue
        if place.kind == HF_CACHE:
            s.hf_cache(place.path)
        elif place.kind == OLLAMA:
            s.ollama(place.path)
        elif place.kind == LM_STUDIO:
            s.ggufs(place.path, LM_STUDIO, LMSTUDIO_DEPTH, named=True)
        elif place.kind == LLAMA_CPP:
            s.llamacpp(place.path)
        else:
            s.ggufs(place.path, FOLDER, MAX_DEPTH, named=False)
    return ScanResult(s.found, budget.problems, budget.exhausted or s.full)
