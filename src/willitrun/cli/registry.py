"""The commands' names and one-line help, and the error report, for cli/group.py and the lean path
(which must not import typer)."""

from __future__ import annotations

from ..errors import WillItRunError

DEFAULT_COMMAND = "estimate"

# name -> one line of help, shown by `willitrun --help` without importing the command
# (tests/cli/test_help.py checks each line against the command's docstring).
COMMANDS = {
    "estimate": "Estimate the memory MODEL needs and whether it fits the GPU (exit 0 fits, 5 tight, 1 does not).",
    "check": "Check several model/GPU pairs at once; exit 0 only if all fit, 1 if any does not, 5 if any is tight, "
    "2 (3: a spec error) if any row could not be checked (each such row says why).",
    "ladder": "Which weight and KV-cache types fit, with the largest context and batch each allows "
    "(exit 0 if one fits, 5 if only tightly).",
    "gpus": "Every catalog GPU: fit, headroom, largest context, cards needed; --count GPU: how many of one card "
    "(exit 0 if one fits, 5 if only tightly).",
    "sweep": "Memory by component at context 512, 1024, ... up to the model's window (exit 0 if any context fits).",
    "scan": "Find the models on this machine (HF cache, ollama, LM Studio, llama.cpp) or in FOLDERs, and which fit "
    "(exit 0 if any fits).",
    "list": "List the models and GPUs in the catalog, or the supported architectures.",
    "show": "Show a model's spec and the parameter counts derived from it.",
    "explain": "Set what an engine's log printed beside willitrun's estimate of the same run.",
    "import": "Write a model spec (YAML) from a config.json, a model directory, a GGUF file or hf:ORG/NAME.",
    "validate": "Check spec files; print each problem as file:line: field: message (exit 0 only if all are valid).",
    "schema": "Print the JSON Schema of a model or GPU spec file.",
    "docs": "Print where the documentation is: the README, the JSON and spec formats.",
}
COMMAND_NAMES = frozenset(COMMANDS)


def report(exc: WillItRunError) -> int:
    """Print a user error as `error: ...` lines on stderr and return its exit code."""
    from ..errors import SpecError
    from ..render import error

    for line in exc.problems if isinstance(exc, SpecError) else [str(exc)]:
        error(line)
    return int(exc.exit_code)
