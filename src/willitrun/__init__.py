"""willitrun: will this model run on this GPU? Exact, source-cited inference memory estimates.

    >>> from willitrun import load_catalog, estimate
    >>> spec = load_catalog().resolve("model", "llama-2-7b")
    >>> estimate(spec, context=4096).kv_self_bytes == 2 * 1024**3
    True

Importing this package does not import typer, rich or pynvml, nor (until a name below is first
used) pydantic and the estimator: the names load on first access (PEP 562 module __getattr__), so
`willitrun --version` and the command line start fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Catalog": "catalog",
    "load_catalog": "catalog",
    "ExitCode": "errors",
    "GPUDetectionError": "errors",
    "SpecError": "errors",
    "UsageError": "errors",
    "WillItRunError": "errors",
    "Fit": "fit",
    "check_fit": "fit",
    "Component": "memory",
    "Estimate": "memory",
    "Request": "memory",
    "estimate": "memory",
    "GPUSpec": "specs",
    "ModelSpec": "specs",
}

if TYPE_CHECKING:
    from .catalog import Catalog, load_catalog
    from .errors import ExitCode, GPUDetectionError, SpecError, UsageError, WillItRunError
    from .fit import Fit, check_fit
    from .memory import Component, Estimate, Request, estimate
    from .specs import GPUSpec, ModelSpec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "Catalog",
    "Component",
    "Estimate",
    "ExitCode",
    "Fit",
    "GPUDetectionError",
    "GPUSpec",
    "ModelSpec",
    "Request",
    "SpecError",
    "UsageError",
    "WillItRunError",
    "__version__",
    "check_fit",
    "estimate",
    "load_catalog",
]
