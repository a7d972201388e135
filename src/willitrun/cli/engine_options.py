"""Which engine takes which of the estimate command's options, and the engine fit built from them.

Shared by the estimate command (cli/estimation.py), its extra answers (cli/extras.py) and
the multi-node plans (cli/cluster.py); it imports none of them, so the three form no import circle.
No typer here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ..engines.options import OPTION
from ..errors import UsageError
from . import parse


# Which engine takes which option (engines/registry.py: each engine class's `takes`, CLI key -> its
# options field). --beams and --batch are the request's for every engine; the speech engines also take
# them as their own (beam_size, batch_size).
def engine_options_table() -> dict[str, Any]:
    """engine -> {CLI key: its options field} (engines/registry.py, loaded when an engine is in play)."""
    from ..engines.registry import REGISTRY

    return {e.name: e.takes for e in REGISTRY.values() if e.takes}


def _flag(name: str) -> str:
    return OPTION[name].flag if name in OPTION else f"--{name.replace('_', '-')}"


def _flags(names: Any) -> str:
    """The flags the user typed: --cpu-moe also sets n_cpu_moe (every layer), which is not a flag given."""
    keys = list(names)
    return ", ".join(_flag(k) for k in keys if not (k == "n_cpu_moe" and "cpu_moe" in keys))


def _engines_taking(option: str) -> str:
    """'llama.cpp or ollama' for --ubatch; 'vllm' for --gpu-memory-utilization."""
    names = [e for e, opts in engine_options_table().items() if option in opts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_versions(given: dict[str, Any]) -> None:
    """A version option (--llamacpp-version, --vllm-version) names a key of its engine's version table."""
    from ..engines.registry import REGISTRY

    for cls in REGISTRY.values():
        key = cls.version_key
        value = given.get(key) if key else None
        if key and value is not None and cls.strict_versions:  # whisper.cpp also takes tags (v1.7.4)
            table = cls.versions()
            if value not in table:
                raise UsageError(f"{_flag(key)} {parse._show(value)}: choose one of {', '.join(table)}")


# The key under which the estimate command carries an overhead `explain --save` kept (detect/config.py
# SavedOverhead) among the engine options it passes on (extras, suggestions, the launch line): not a flag,
# so option_echo never shows it; engine_fit_options takes it out before checking the flags.
MEASURED = "measured_overhead"


def engine_fit(
    spec: Any,
    req: Any,
    engine: str,
    given: dict[str, Any],
    vram_bytes: int,
    gpu_name: str | None = None,
    weights: Any = None,
    *,
    search: bool = True,
) -> Any:
    """Build the engine's options from the CLI's, refusing options the engine does not take, and fit
    them; `search=False` returns the engine's estimate alone, without the largest-context search (what
    a probe of another setting needs: -ngl, --n-cpu-moe, the batch)."""
    return engine_fit_options(spec, req, engine, given, vram_bytes, gpu_name, weights, search=search)[0]


def engine_fit_options(
    spec: Any,
    req: Any,
    engine: str,
    given: dict[str, Any],
    vram_bytes: int,
    gpu_name: str | None = None,
    weights: Any = None,
    *,
    search: bool = True,
    measured: Any = None,
) -> tuple[Any, Any]:
    """engine_fit and the engine's options object it built (the launch line reads both); `measured`, an
    overhead `explain --save` kept (detect/config.py SavedOverhead), replaces the modelled one."""
    from ..engines.registry import REGISTRY, engine_class

    if MEASURED in given:  # carried with the options, so that every probe of this answer uses it too
        measured = given[MEASURED]
        given = {k: v for k, v in given.items() if k != MEASURED}
    cls = engine_class(engine)
    accepted = {**cls.takes, "gpus": "gpus"}
    refusal = cls.refusal(given)
    if refusal:
        raise UsageError(refusal)
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{_flags(wrong)} does not apply to {engine} (only to {_engines_taking(wrong[0])})")
    if "parallel" in given:  # each of -np sequences gets n_ctx / np cells: at least one
        from ..memory import default_context, resolve

        context = req.context or default_context(resolve(spec, req))
        if given["parallel"] > context:
            raise UsageError(
                f"--parallel {given['parallel']} is more than the context ({context:,}): "
                "each sequence needs at least one cell"
            )
    check_versions(given)
    try:
        options = cls.make_options(with_files(given), vram_bytes, gpu_name)
        if measured is not None and cls.measured_overhead is not None and options is not None:
            from dataclasses import replace

            size, detail = cls.measured_overhead
            options = replace(options, **{size: measured.bytes, detail: measured.detail})
        result = (
            cls.fit(spec, req, options, vram_bytes, weights) if search else cls.estimate(spec, req, options, weights)
        )
        return result, options
    except UsageError as exc:  # the options classes name their fields; the user typed flags
        flags: dict[str, str] = {}
        for flag, name in [*accepted.items(), *REGISTRY["llama.cpp"].takes.items()]:  # ollama runs llama.cpp's
            flags.setdefault(name, _flag(flag))
        names = "|".join(sorted((re.escape(n) for n in flags if n != "version"), key=len, reverse=True))
        # one pass, whole field names only (`tensor_parallel` must not become --tensor---parallel-size)
        message = re.sub(rf"(?<![\w-])({names})(?![\w-])", lambda m: flags[m.group(1)], str(exc))
        raise UsageError(message) from None


def with_files(given: dict[str, Any]) -> dict[str, Any]:
    """The engine options with the files they name read here, at the edge (engines read no file format):
    --mmproj FILE becomes its header (read_mmproj)."""
    if isinstance(given.get("mmproj"), str):
        return {**given, "mmproj": read_mmproj(given["mmproj"])}
    return given


@lru_cache(maxsize=8)
def read_mmproj(path: str) -> Any:
    """--mmproj FILE as engines/llamacpp.py MmprojFile: the header of an mmproj GGUF (importers.gguf_file.read_gguf_header: regular files only, every count
    bounded). convert_hf_to_gguf.py --mmproj writes general.architecture "clip" (gguf MODEL_ARCH.MMPROJ)."""
    from pathlib import Path

    from ..engines.llamacpp import MmprojFile
    from ..importers.gguf_file import read_gguf_header

    header = read_gguf_header(Path(path))
    arch = header.metadata.get("general.architecture")
    if arch != "clip":
        raise UsageError(
            f"{path}: general.architecture {arch!r}, not an mmproj file ('clip'): --mmproj takes the vision "
            "projector GGUF, the model itself is the MODEL argument"
        )
    projector = header.metadata.get("clip.projector_type")
    vision = tuple(
        (k, v)
        for k, v in sorted(header.metadata.items())
        if k.startswith("clip.vision.") and type(v) is int and 0 < v < 1 << 32
    )
    tensors = tuple((t.name, t.dtype, t.shape[-1] if t.shape else 1, t.nbytes) for t in header.tensors)
    return MmprojFile(path, projector if isinstance(projector, str) else None, vision, tensors)
