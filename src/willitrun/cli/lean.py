"""The lean path: `willitrun MODEL --gpu GPU [-q|--json] ...` without importing typer.

typer builds every command and a pydantic adapter per option on each run (~60 ms of a ~180 ms
start, benchmarks/startup.py). The common estimate needs none of that, so argv is read here when
it uses only the estimate command's plain options; anything else (help, a subcommand, an option
not listed here, a value that starts with "-", `--`, clustered short options, completion) returns
None and typer parses it. Both paths fill the same EstimateArgs and call the same run_estimate,
and tests/cli/test_lean.py checks they answer alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..engines.options import OPTION, lean_tables
from .estimation import EstimateArgs

# option -> EstimateArgs field, for the command's own options that take a value; the engine options
# come from their one declaration (engines/options.py), as typer's flags do
VALUES = {
    "--gpu": "gpu",
    "-g": "gpu",
    "--vram": "vram",
    "--ram": "ram",
    "--context": "context",
    "-c": "context",
    "--batch": "batch",
    "-b": "batch",
    "--dtype": "dtype",
    "--kv-dtype": "kv_dtype",
    "--images": "images",
    "--image-size": "image_size",
    "--encoder-tokens": "encoder_tokens",
    "--beams": "beams",
    "--split": "split",
    "--system-bandwidth": "system_bandwidth",
    "--engine": "engine",
    "-e": "engine",
    "--specs-dir": "specs_dir",
    "--video-frames": "video_frames",
    "--audio-seconds": "audio_seconds",
}
REPEATED = {"gpu", "specs_dir"}
FLAGS = {
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "--json": ("json_out", True),
    "--no-chart": ("no_chart", True),
    "--offload": ("offload", True),
    "--speed": ("speed", True),
    "--max-batch": ("max_batch", True),
}
ENGINE_VALUES, ENGINE_SWITCHES = lean_tables()
ENGINE_KEYS = frozenset(OPTION)


def parse_estimate(args: list[str], commands: frozenset[str]) -> EstimateArgs | None:
    """EstimateArgs when `args` is a plain estimate command line, else None (typer parses it)."""
    if not args or os.environ.get("_WILLITRUN_COMPLETE"):
        return None
    if args[0] == "estimate":
        args = args[1:]
    values: dict[str, object] = {}
    options: dict[str, object] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in FLAGS and not eq:
            field, flag = FLAGS[name]
            values[field] = flag
        elif name in ENGINE_SWITCHES and not eq:
            key, flag = ENGINE_SWITCHES[name]
            options[key] = flag
        elif name in VALUES or name in ENGINE_VALUES:
            if eq:
                value = inline
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                value = args[i]
            else:
                return None
            field = VALUES.get(name) or ENGINE_VALUES[name]
            if field in ENGINE_KEYS:
                options[field] = value
            elif field in REPEATED:
                items = values.setdefault(field, [])
                assert isinstance(items, list)
                items.append(Path(value) if field == "specs_dir" else value)
            else:
                values[field] = value  # a repeated option keeps its last value, as click does
        elif arg.startswith("-") or positional:
            return None
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 1 or positional[0] in commands:
        return None
    return EstimateArgs(model=positional[0], options=options, **values)  # type: ignore[arg-type]


PATH_SUFFIXES = (".json", ".gguf", ".yaml", ".yml", ".safetensors")


def records_may_serve(parsed: EstimateArgs) -> bool:
    """Whether the specs of this estimate can come from the catalog cache (willitrun/records.py): a
    catalog id or alias, with the cache in use. A path or an `hf:` model is imported and validated, so
    pydantic is loaded from the start; a stale cache entry is caught later and the command rerun."""
    model = parsed.model
    # a catalog id or alias never holds ":" (ids are kebab-case): `qwen3:8b` is an ollama name, imported
    if (
        os.environ.get("WILLITRUN_NO_CACHE")
        or os.sep in model
        or "/" in model
        or ":" in model
        or model.startswith("hf:")
    ):
        return False
    return not model.lower().endswith(PATH_SUFFIXES)
