"""The weight tensors of each architecture, derived from its config.

Each architecture module (willitrun/archs/) lists the tensors Hugging Face transformers creates for
its model class, with their shapes, in the order of the module tree. Parameter counts, weight bytes
per storage type and the GGUF quantization mixes are all computed from this one inventory, and
tests/reference checks the counts against transformers itself (meta device, no download).

Tensors shared between modules (tied embeddings) appear once. Linear weights are (out, in): the
row length ggml's block types must divide is the last dimension.
"""

from __future__ import annotations

from .archs import model_tensors
from .archs.base import LINEAR_ROLES, Role, Tensor
from .archs.base import linear as _linear
from .archs.base import norm as _norm


def __getattr__(name: str) -> object:
    """The per-family inventories under their old names, imported on first use."""
    from importlib import import_module

    where = {
        "decoder_lm": ("llama", "decoder_lm"),
        "llama_lm": ("llama", "llama_lm"),
        "llava": ("llava", "tensors"),
        "mllama": ("mllama", "tensors"),
        "t5": ("t5", "tensors"),
        "whisper": ("whisper", "tensors"),
    }
    if name not in where:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = where[name]
    return getattr(import_module(f".archs.{module}", __package__), attr)


__all__ = [  # noqa: F822 -- decoder_lm, llama_lm and the family names resolve in __getattr__
    "LINEAR_ROLES",
    "Role",
    "Tensor",
    "_linear",
    "_norm",
    "decoder_lm",
    "llama_lm",
    "llava",
    "mllama",
    "model_tensors",
    "t5",
    "whisper",
]
