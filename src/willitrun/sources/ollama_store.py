"""ollama's model store, as ollama writes it:

    <models>/manifests/<host>/<namespace>/<model>/<tag>     an OCI-style JSON manifest
    <models>/blobs/sha256-<hex>                             each layer's bytes

A name is [host/][namespace/]model[:tag] with the defaults registry.ollama.ai, library and latest
(ollama/ollama types/model/name.go: defaultHost, defaultNamespace, defaultTag; Name.Filepath); a
layer's digest sha256:<hex> is stored as blobs/sha256-<hex> (server/modelpath.go GetBlobsPath). The
layer whose mediaType is application/vnd.ollama.image.model is the GGUF file of the model; a
Hugging Face GGUF pulled as hf.co/ORG/REPO:QUANT is stored under host hf.co, namespace ORG.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError
from ..files import read_bytes, safe_text
from .walk import Budget, file_size, is_dir

DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG = "registry.ollama.ai", "library", "latest"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
MANIFEST_CAP = 1 << 20  # a manifest lists a handful of layers: ~1 KB
MAX_LAYERS = 1_000
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
# name.go: parts of letters, digits, '_', '-' and '.' (a host may carry :port); at most 80 characters
# each (350 for the host).
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,349}(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        """The name as `ollama list` shows it: the default host and namespace left out."""
        prefix = "" if self.host == DEFAULT_HOST else f"{self.host}/"
        if self.host != DEFAULT_HOST or self.namespace != DEFAULT_NAMESPACE:
            prefix += f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"


def parse_name(text: str) -> OllamaName | None:
    """An ollama model name, or None when `text` cannot be one."""
    if not text or len(text) > 600 or any(c in text for c in " \\@"):
        return None
    head, _, last = text.rpartition("/")
    model, colon, tag = last.partition(":")
    if colon and not tag:
        return None
    parts = head.split("/") if head else []
    if len(parts) > 2:
        return None
    host = parts[0] if len(parts) == 2 else DEFAULT_HOST
    namespace = parts[-1] if parts else DEFAULT_NAMESPACE
    tag = tag or DEFAULT_TAG
    if not (_HOST.fullmatch(host) and _PART.fullmatch(namespace) and _PART.fullmatch(model) and _PART.fullmatch(tag)):
        return None
    return OllamaName(host, namespace, model, tag)


@dataclass(frozen=True)
class OllamaModel:
    """A model in the store: its name, its manifest, and the GGUF blob of its model layer."""

    name: OllamaName
    manifest: Path
    blob: Path
    size_bytes: int


def model_blob(store: Path, manifest: Path) -> Path:
    """The GGUF blob a manifest's model layer points to; SpecError (one line) for a manifest that is
    unreadable, not JSON, without a model layer, or with a digest that is not sha256:<64 hex>."""
    where = safe_text(str(manifest))
    try:
        data = json.loads(read_bytes(manifest, MANIFEST_CAP, "manifest"))
    except (ValueError, RecursionError):
        raise SpecError(f"{where}: not an ollama manifest (not JSON)") from None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise SpecError(f"{where}: not an ollama manifest (no list of layers)")
    digests = [
        layer.get("digest")
        for layer in layers
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA_TYPE
    ]
    if not digests:
        raise SpecError(f"{where}: no model layer ({MODEL_MEDIA_TYPE}) in the manifest")
    match = _DIGEST.fullmatch(digests[0]) if isinstance(digests[0], str) else None
    if match is None:
        raise SpecError(f"{where}: the model layer's digest is not sha256:<64 hex digits>")
    return store / "blobs" / f"sha256-{match.group(1)}"


def list_models(store: Path, budget: Budget) -> list[tuple[OllamaName, Path]]:
    """(name, manifest) of every manifest in the store: manifests/<host>/<namespace>/<model>/<tag>."""
    out = []
    for host in budget.listdir(store / "manifests"):
        for ns in budget.listdir(Path(host.path)) if is_dir(host) else []:
            for model in budget.listdir(Path(ns.path)) if is_dir(ns) else []:
                for tag in budget.listdir(Path(model.path)) if is_dir(model) else []:
                    if is_dir(tag):
                        budget.problem(tag.path, "not an ollama manifest (a directory)")
                        continue
                    out.append((OllamaName(host.name, ns.name, model.name, tag.name), Path(tag.path)))
    return out


def load_model(store: Path, name: OllamaName, manifest: Path, budget: Budget) -> OllamaModel | None:
    """The model a manifest describes, or None with a problem recorded (damaged manifest, blob missing)."""
    try:
        blob = model_blob(store, manifest)
    except SpecError as exc:
        budget.problem(manifest, str(exc).split(": ", 1)[-1])
        return None
    size = file_size(blob, budget)
    return None if size is None else OllamaModel(name, manifest, blob, size)


def find_manifest(store: Path, name: OllamaName, budget: Budget) -> Path | None:
    """The manifest of `name`; ollama compares names ignoring case, so each level is matched exactly
    first, else ignoring case (listings within the budget)."""
    path = store / "manifests"
    for part in (name.host, name.namespace, name.model, name.tag):
        exact = path / part
        if exact.exists():
            path = exact
            continue
        matches = [Path(e.path) for e in budget.listdir(path) if e.name.lower() == part.lower()][:2]
        if len(matches) != 1:
            return None
        path = matches[0]
    return path if path.is_file() else None
