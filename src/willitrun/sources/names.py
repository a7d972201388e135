"""The names people type, resolved to a model on disk (or, with the hub extra, on the Hub):

    Qwen/Qwen3-8B                       the HF cache's snapshot (config.json), offline
    Qwen/Qwen3-8B-GGUF:Q4_K_M           the GGUF in that snapshot whose name carries the quant
    Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf   that file of the snapshot
    qwen3:8b  llama3.1  hf.co/ORG/REPO:Q4_K_M   ollama's store
    hf:ORG/NAME/FILE.gguf  https://…/FILE.gguf  the header by HTTP ranges (sources/remote.py)

Several candidates (two snapshots, several GGUF files) are one UsageError line listing the
choices, never a guess. A name that is none of these returns None (the caller's own error stands).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import safe_text
from . import hf_cache, ollama_store
from .places import hf_hub_cache, ollama_models
from .walk import Budget

_PART = r"[A-Za-z0-9][\w.-]{0,95}"
_HF_NAME = re.compile(
    rf"(?P<repo>{_PART}/{_PART})(?::(?P<quant>[\w.-]{{1,40}})|/(?P<file>(?:[\w.+-]+/)*[\w.+-]+\.gguf))?", re.IGNORECASE
)
MAX_CHOICES = 8  # choices listed in the question; more are counted


def _choices(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_CHOICES])
    return shown + (f" (and {len(items) - MAX_CHOICES} more)" if len(items) > MAX_CHOICES else "")


class _NoQuant(UsageError):
    """The repository is cached but no GGUF carries the quant asked for (raised if no ollama model has the name)."""


def _quant_match(rel: str, quant: str) -> bool:
    """`quant` as a whole token of the file's path: Q4_K matches …-Q4_K.gguf, not …-Q4_K_M.gguf."""
    return re.search(rf"(?<![a-z0-9]){re.escape(quant.lower())}(?![a-z0-9_])", rel.lower()) is not None


def _from_hf_cache(
    text: str,
    repo_id: str,
    quant: str | None,
    file: str | None,
    cache: Path,
    budget: Budget,
    model_id: str | None = None,
) -> tuple[Any, Any] | None:
    from ..importers import spec_from_path
    from ..importers.configs import slug

    repo = hf_cache.find_repo(cache, repo_id, budget)
    if repo is None:
        return None
    repo_id = hf_cache.repo_id_of(repo.name) or repo_id
    snaps = hf_cache.snapshots(repo, repo_id, budget)
    if not snaps:
        raise UsageError(
            f"{repo_id}: in the local Hugging Face cache ({safe_text(str(repo))}) without a snapshot "
            "(an interrupted download?)"
        )
    if len(snaps) > 1:
        raise UsageError(
            f"{repo_id} has {len(snaps)} snapshots in the local Hugging Face cache and no refs/main: "
            f"which one? {_choices([safe_text(str(s.path)) for s in snaps])}"
        )
    snap = snaps[0].path
    has_config, ggufs = hf_cache.snapshot_files(snap, budget)
    rels = [g.relative_to(snap).as_posix() for g in ggufs]
    if file is not None:
        picked = [g for g, rel in zip(ggufs, rels, strict=True) if rel.lower() == file.lower()]
        if not picked:
            raise UsageError(
                f"{text}: no such GGUF in the local Hugging Face cache's {repo_id}; it has: "
                f"{_choices(rels) or 'no GGUF file'}"
            )
    elif quant is not None:
        picked = [g for g, rel in zip(ggufs, rels, strict=True) if _quant_match(rel, quant)]
        if not picked:  # perhaps an ollama user/model:tag; else resolve_name says what the repository has
            raise _NoQuant(
                f"{text}: no GGUF file of {repo_id} in the local Hugging Face cache matches {quant}; it has: "
                f"{_choices(rels) or 'no GGUF file'}"
            )
    elif has_config:
        return spec_from_path(
            snap, model_id=model_id or slug(repo_id.rsplit("/", 1)[-1]), name=repo_id.rsplit("/", 1)[-1]
        )
    else:
        picked = ggufs
        if not picked:
            raise UsageError(
                f"{repo_id}: its snapshot in the local Hugging Face cache has neither a config.json nor a "
                "GGUF file (download the model, or pass its folder)"
            )
    if len(picked) > 1:
        raise UsageError(
            f"{text}: {len(picked)} GGUF files match in the local Hugging Face cache: which one? "
            f"{_choices([f'{repo_id}/{g.relative_to(snap).as_posix()}' for g in picked])}"
        )
    return spec_from_path(picked[0], model_id=model_id or slug(picked[0].stem))


def _from_ollama(text: str, store: Path, budget: Budget, model_id: str | None = None) -> tuple[Any, Any] | None:
    from ..importers import spec_from_path
    from ..importers.configs import slug

    name = ollama_store.parse_name(text)
    if name is None:
        return None
    manifest = ollama_store.find_manifest(store, name, budget)
    if manifest is None:
        return None
    blob = ollama_store.model_blob(store, manifest)
    spec, weights = spec_from_path(blob, model_id=model_id or slug(str(name)))
    return spec, (replace(weights, engine="ollama") if weights is not None else None)  # ollama runs it


def _from_hub(repo_id: str, model_id: str | None = None) -> tuple[Any, Any] | None:
    """ORG/NAME from the Hub when the hub extra is installed (importers/hub.py), else None."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return None
    from ..importers import import_model

    return import_model(f"hf:{repo_id}", model_id=model_id)


def resolve_name(
    text: str, env: Mapping[str, str] | None = None, *, hub: bool = True, model_id: str | None = None
) -> tuple[Any, Any] | None:
    """(spec, WeightsOverride or None) for a name of the forms above, or None when it is none of
    them (or names nothing here and the Hub is not asked); `model_id` replaces the id made from the name."""
    env = os.environ if env is None else env
    from .remote import is_remote_gguf, read_remote_gguf

    if is_remote_gguf(text):
        return read_remote_gguf(text, env=env, model_id=model_id)
    budget = Budget()
    m = _HF_NAME.fullmatch(text)
    no_quant: _NoQuant | None = None
    if m is not None and ".." not in text:
        try:
            found = _from_hf_cache(
                text, m.group("repo"), m.group("quant"), m.group("file"), hf_hub_cache(env), budget, model_id
            )
        except _NoQuant as exc:
            found, no_quant = None, exc
        if found is not None:
            return found
    found = _from_ollama(text, ollama_models(env), budget, model_id)
    if found is not None:
        return found
    if no_quant is not None:
        raise UsageError(str(no_quant))
    if m is not None and m.group("file") is None and m.group("quant") is None and hub:
        return _from_hub(m.group("repo"), model_id)
    if m is not None and m.group("file") is not None:
        raise UsageError(
            f"{text}: not in the local Hugging Face cache ({safe_text(str(hf_hub_cache(env)))}); "
            f"hf:{text} reads its header from the Hub"
        )
    return None


def not_found_hint(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """What to do when an ORG/NAME (or ORG/NAME:QUANT) is neither cached nor fetched, for the error line."""
    m = _HF_NAME.fullmatch(text)
    if m is None or m.group("file") is not None:
        return None
    where = (
        f"{m.group('repo')} is not in the local Hugging Face cache ({safe_text(str(hf_hub_cache(env)))}) nor "
        "in ollama's store"
    )
    if m.group("quant") is not None:
        return f"{where}: download the GGUF, or give hf:{m.group('repo')}/FILE.gguf to read its header from the Hub"
    return f"{where}: download it, or install the hub extra (pip install 'willitrun[hub]') to read its config.json from the Hub"
