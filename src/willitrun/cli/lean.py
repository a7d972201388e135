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
from typing import TYPE_CHECKING

from ..engines.options import OPTION, lean_tables
from .estimation import EstimateArgs

if TYPE_CHECKING:
    from .checks import CheckArgs
    from .ladders import LadderArgs

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


# The subcommands read here: their options as typer declares them (cli/commands/check.py, ladder.py);
# option -> field, for options that take a value; flags; fields given more than once (a list)
CHECK_VALUES = {
    "--gpu": "gpus",
    "-g": "gpus",
    "--rows": "rows",
    "--context": "context",
    "-c": "context",
    "--dtype": "dtype",
    "--kv-dtype": "kv_dtype",
    "--engine": "engine",
    "-e": "engine",
    "--specs-dir": "specs_dir",
}
CHECK_FLAGS = {"--json": "json_out", "-q": "quiet", "--quiet": "quiet"}
LADDER_VALUES = {
    "--gpu": "gpu",
    "-g": "gpu",
    "--vram": "vram",
    "--context": "context",
    "-c": "context",
    "--batch": "batch",
    "-b": "batch",
    "--beams": "beams",
    "--images": "images",
    "--image-size": "image_size",
    "--encoder-tokens": "encoder_tokens",
    "--engine": "engine",
    "-e": "engine",
    "--margin": "margin",
    "--specs-dir": "specs_dir",
}
LADDER_FLAGS = CHECK_FLAGS
COMMAND_REPEATED = {"gpus", "specs_dir"}
COMMAND_PATHS = {"rows", "specs_dir"}


def _command(
    args: list[str], name: str, values: dict[str, str], flags: dict[str, str]
) -> tuple[dict[str, object], list[str]] | None:
    """(options by field, positional arguments) of `willitrun NAME ...` as typer would read them, or
    None when typer has to parse it: help, `--`, an option it does not list, a value that starts with
    "-", clustered short options, completion."""
    if len(args) < 2 or args[0] != name or os.environ.get("_WILLITRUN_COMPLETE"):
        return None
    out: dict[str, object] = {}
    positional: list[str] = []
    i = 1
    while i < len(args):
        arg = args[i]
        option, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if option in flags and not eq:
            out[flags[option]] = True
        elif option in values:
            if eq:
                value = inline
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                value = args[i]
            else:
                return None
            field = values[option]
            typed: object = Path(value) if field in COMMAND_PATHS else value
            if field in COMMAND_REPEATED:
                items = out.setdefault(field, [])
                assert isinstance(items, list)
                items.append(typed)
            else:  # a repeated option keeps its last value, as click does
                out[field] = typed
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
        i += 1
    return out, positional


def parse_check(args: list[str]) -> CheckArgs | None:
    """CheckArgs when `args` is a plain `check` command line (MODEL... --gpu GPU..., or --rows FILE, and
    the command's plain options), else None (typer parses it)."""
    parsed = _command(args, "check", CHECK_VALUES, CHECK_FLAGS)
    if parsed is None or not (parsed[1] or "rows" in parsed[0]):
        return None  # nothing to check: typer says so
    from .checks import CheckArgs

    return CheckArgs(models=parsed[1] or None, **parsed[0])  # type: ignore[arg-type]


def parse_ladder(args: list[str]) -> LadderArgs | None:
    """LadderArgs when `args` is a plain `ladder MODEL` command line, else None (typer parses it)."""
    parsed = _command(args, "ladder", LADDER_VALUES, LADDER_FLAGS)
    if parsed is None or len(parsed[1]) != 1:
        return None
    from .ladders import LadderArgs

    return LadderArgs(model=parsed[1][0], **parsed[0])  # type: ignore[arg-type]
