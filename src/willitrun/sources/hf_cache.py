"""The Hugging Face hub cache as huggingface_hub lays it out (src/huggingface_hub/file_download.py,
repo_folder_name and _create_symlink; constants.py REPO_ID_SEPARATOR):

    <cache>/models--ORG--NAME/blobs/<etag>                   the files' bytes
    <cache>/models--ORG--NAME/refs/main                      the commit `main` pointed to
    <cache>/models--ORG--NAME/snapshots/<commit>/<file>      symlinks into blobs/

Read without huggingface_hub (it is an optional extra): a repository's snapshot holds a checkpoint
(config.json and *.safetensors) and/or GGUF files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError
from ..files import read_text
from .walk import Budget, file_size, is_dir, walk

REPO_PREFIX = "models--"
SEPARATOR = "--"  # not allowed inside a repo id on the Hub (constants.REPO_ID_SEPARATOR)
COMMIT = re.compile(r"[0-9a-f]{40}")
REF_CAP = 256  # refs/main holds 40 hex digits
GGUF_DEPTH = 3  # GGUF files in sub-folders of a snapshot (unsloth's Q4_K_M/..., BF16/...)
# Files llama.cpp loads beside a model, never alone: a vision projector (`--mmproj`, named mmproj-*.gguf
# by convert_hf_to_gguf.py and the GGUF repositories), and the later parts of a split model
# (gguf-split names them <name>-0000N-of-0000M.gguf; the first part is the one to load).
_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


def repo_folder(repo_id: str) -> str:
    """models--ORG--NAME for ORG/NAME (file_download.repo_folder_name for a model)."""
    return REPO_PREFIX + repo_id.replace("/", SEPARATOR)


def repo_id_of(folder: str) -> str | None:
    """ORG/NAME for a models--ORG--NAME folder; None for anything else (datasets--, spaces--)."""
    if not folder.startswith(REPO_PREFIX) or len(folder) == len(REPO_PREFIX):
        return None
    return folder[len(REPO_PREFIX) :].replace(SEPARATOR, "/")


def is_loadable_gguf(name: str) -> bool:
    """A .gguf file that is a model on its own: not a projector, not a later part of a split file."""
    lower = name.lower()
    if not lower.endswith(".gguf") or lower.startswith("mmproj") or "-mmproj" in lower:
        return False
    part = _PART.search(name)
    return part is None or int(part.group(1)) == 1


@dataclass(frozen=True)
class Snapshot:
    """One cached revision of a repository: its folder, and whether refs/main points to it."""

    repo_id: str
    revision: str
    path: Path
    main: bool


def _main_ref(repo: Path) -> str | None:
    ref = repo / "refs" / "main"
    try:
        text = read_text(ref, REF_CAP, "ref").strip()
    except SpecError:
        return None
    return text if COMMIT.fullmatch(text) else None


def snapshots(repo: Path, repo_id: str, budget: Budget) -> list[Snapshot]:
    """The repository's snapshots: the one refs/main names when it is there (what huggingface_hub
    loads for revision "main"), else every one, newest name first."""
    main = _main_ref(repo)
    found = [
        Snapshot(repo_id, e.name, Path(e.path), e.name == main) for e in budget.listdir(repo / "snapshots") if is_dir(e)
    ]
    chosen = [s for s in found if s.main]
    return chosen or found


def snapshot_files(snap: Path, budget: Budget) -> tuple[bool, list[Path]]:
    """(has a config.json, the loadable GGUF files) of one snapshot."""
    has_config = False
    ggufs: list[Path] = []
    for directory, entries in walk(snap, budget, GGUF_DEPTH):
        for e in entries:
            if directory == snap and e.name == "config.json":
                has_config = file_size(e, budget) is not None
            elif is_loadable_gguf(e.name) and not is_dir(e) and file_size(e, budget) is not None:
                ggufs.append(Path(e.path))
    return has_config, ggufs


def checkpoint_bytes(snap: Path, budget: Budget) -> int:
    """Bytes of a snapshot's files other than GGUF (the checkpoint a transformers load reads)."""
    total = 0
    for _, entries in walk(snap, budget, GGUF_DEPTH):
        for e in entries:
            if not is_dir(e) and not e.name.lower().endswith(".gguf"):
                total += file_size(e, budget) or 0
    return total


def cached_repos(cache: Path, budget: Budget) -> list[tuple[str, Path]]:
    """(ORG/NAME, folder) of every model repository in the cache."""
    out = []
    for e in budget.listdir(cache):
        repo_id = repo_id_of(e.name)
        if repo_id is not None and is_dir(e):
            out.append((repo_id, Path(e.path)))
    return out


def find_repo(cache: Path, repo_id: str, budget: Budget) -> Path | None:
    """The cache folder of ORG/NAME (the Hub's ids are case-insensitive: an exact folder first,
    else the one folder whose name matches ignoring case)."""
    exact = cache / repo_folder(repo_id)
    if exact.is_dir():
        return exact
    wanted = repo_folder(repo_id).lower()
    matches = [Path(e.path) for e in budget.listdir(cache) if e.name.lower() == wanted and is_dir(e)]
    return matches[0] if len(matches) == 1 else None
