"""willitrun: will this model run on this GPU? Exact, source-cited inference memory estimates.

    >>> from willitrun import load_catalog, estimate
    >>> spec = load_catalog().resolve("model", "llama-2-7b")
    >>> estimate(spec, context=4096).kv_self_bytes == 2 * 1024**3
    True

Importing this package does not import typer, rich or pynvml.
"""

from .catalog import Catalog, load_catalog
from .errors import ExitCode, GPUDetectionError, SpecError, UsageError, WillItRunError
from .fit import Fit, check_fit
from .memory import Component, Estimate, Request, estimate
from .specs import GPUSpec, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "Catalog", "Component", "Estimate", "ExitCode", "Fit", "GPUDetectionError", "GPUSpec", "ModelSpec",
    "Request", "SpecError", "UsageError", "WillItRunError", "check_fit", "estimate", "load_catalog", "__version__",
]
