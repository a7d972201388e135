"""Real on-disk layouts of the places models are downloaded to, built in a temporary HOME:

- the Hugging Face hub cache as huggingface_hub writes it (file_download.py: blobs/<etag>,
  refs/main, snapshots/<commit>/<file> as relative symlinks into blobs/);
- ollama's store (manifests/<host>/<namespace>/<model>/<tag> JSON, blobs/sha256-<hex> named by the
  sha256 of the bytes, as server/modelpath.go GetBlobsPath names them);
- LM Studio's ~/.lmstudio/models/<publisher>/<repo>/<file>.gguf;
- llama.cpp's cache ~/.cache/llama.cpp/<org>_<repo>_<file>.gguf (common/arg.cpp).

GGUF files are real headers written by the gguf package (tests/importers/helpers.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tests.importers.helpers import write_llama_gguf

# Qwen/Qwen3-0.6B config.json (huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json), the shape fields, as
# model_specs/qwen3-0.6b.yaml copies them (its notes cite two verbatim copies of the file).
QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000,
    "hidden_act": "silu",
    "attention_bias": False,
}
REV = "c1899de289a04d12100db370d81485cdf75e47ca"  # a 40-hex commit, as refs/main holds


def hf_file(cache: Path, repo_id: str, filename: str, data: bytes, rev: str = REV) -> Path:
    """One file into the hub cache the way huggingface_hub stores it; returns the snapshot path."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    link = repo / "snapshots" / rev / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link


def gguf_bytes(tmp: Path, **kwargs: Any) -> bytes:
    path = write_llama_gguf(tmp / f"w{len(list(tmp.iterdir()))}.gguf", **kwargs)
    data = path.read_bytes()
    path.unlink()
    return data


def ollama_model(store: Path, manifest_parts: tuple[str, str, str, str], data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / f"sha256-{digest}").write_bytes(data)
    manifest = store / "manifests" / Path(*manifest_parts)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": "sha256:" + "0" * 64,
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": f"sha256:{digest}",
                        "size": len(data),
                    },
                    {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:" + "1" * 64, "size": 10},
                ],
            }
        )
    )
    return manifest


def machine(home: Path, scratch: Path) -> dict[str, Path]:
    """A populated HOME: every place with one good model and one damaged entry."""
    hub = home / ".cache" / "huggingface" / "hub"
    tiny = gguf_bytes(scratch)
    tiny_q4 = gguf_bytes(scratch, file_type=2, name="Tiny Llama Q4")  # MOSTLY_Q4_0 in the metadata
    paths = {
        "qwen": hf_file(hub, "Qwen/Qwen3-0.6B", "config.json", json.dumps(QWEN3_06B).encode()).parent,
        "gguf_q8": hf_file(hub, "org/Tiny-GGUF", "Tiny-Q8_0.gguf", tiny),
        "gguf_q4": hf_file(hub, "org/Tiny-GGUF", "Tiny-Q4_0.gguf", tiny_q4),
    }
    # a GGUF whose blob is gone (a cleaned cache): a broken symlink
    broken = hub / "models--org--Tiny-GGUF" / "snapshots" / REV / "Tiny-F16.gguf"
    broken.symlink_to("../../blobs/" + "f" * 64)
    paths["broken"] = broken
    store = home / ".ollama" / "models"
    paths["ollama"] = ollama_model(store, ("registry.ollama.ai", "library", "tiny", "latest"), tiny)
    paths["ollama_hf"] = ollama_model(store, ("hf.co", "org", "Tiny-GGUF", "Q4_0"), tiny_q4)
    bad = store / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    paths["bad_manifest"] = bad
    lms = home / ".lmstudio" / "models" / "lmstudio-community" / "Tiny-GGUF"
    lms.mkdir(parents=True)
    (lms / "Tiny-Q8_0.gguf").write_bytes(tiny)
    (lms / "Tiny-trunc.gguf").write_bytes(tiny[: len(tiny) // 3])  # an interrupted copy
    (lms / "mmproj-Tiny-F16.gguf").write_bytes(b"GGUF")  # a projector: never listed as a model
    paths["truncated"] = lms / "Tiny-trunc.gguf"
    llamacpp = home / ".cache" / "llama.cpp"
    llamacpp.mkdir(parents=True)
    (llamacpp / "org_Tiny-GGUF_Tiny-Q4_0.gguf").write_bytes(tiny_q4)
    return paths
