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
from .archs.llama import decoder_lm, llama_lm
from .archs.llava import tensors as llava
from .archs.mllama import tensors as mllama
from .archs.t5 import tensors as t5
from .archs.whisper import tensors as whisper

__all__ = ["LINEAR_ROLES", "Role", "Tensor", "decoder_lm", "llama_lm", "llava", "mllama", "model_tensors", "t5",
           "whisper", "_linear", "_norm"]
