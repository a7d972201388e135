"""Where a model comes from, besides the catalog: the Hugging Face hub cache, ollama's store, LM
Studio's and llama.cpp's folders, folders the user names (`scan`), and GGUF headers read over HTTP
ranges. Nothing here decides a verdict or knows the CLI: it finds files and hands them to the
importers (a config.json, a model directory, a GGUF header) for a spec and the stored weights.

    found, problems = scan_places(default_places())   # every model on this machine
    resolve_name("Qwen/Qwen3-8B")                       # offline, from the HF cache
    resolve_name("qwen3:8b")                            # from ollama's store
    read_remote_gguf("https://host/model.gguf")         # the header only, by Range requests
"""

from __future__ import annotations

from .names import resolve_name
from .places import Place, default_places
from .scan import Found, scan_places
from .walk import Problem

__all__ = ["Found", "Place", "Problem", "default_places", "read_remote_gguf", "resolve_name", "scan_places"]


def read_remote_gguf(source: str, **kwargs: object) -> tuple[object, object]:
    """sources.remote.read_remote_gguf, imported on use (urllib is not needed for a scan)."""
    from .remote import read_remote_gguf as read

    return read(source, **kwargs)  # type: ignore[arg-type]
