"""The user's default GPU: WILLITRUN_GPU, then the config file.

The config file is `$XDG_CONFIG_HOME/willitrun/config.toml` (`~/.config/willitrun/config.toml`
when XDG_CONFIG_HOME is unset or not absolute, as the XDG Base Directory spec says). It holds one
of two keys, named as the command-line options they stand for:

    gpu = "rtx3090"        # a catalog id, alias or NVML name
    vram = "24GiB"         # or a memory size, as --vram takes it

It is read only when it is a regular file of at most 64 KiB; Python 3.11+ parses it with tomllib,
3.10 with a reader of `key = "value"` lines (comments and blank lines allowed).

`willitrun explain LOG --save` adds this machine's measured runtime overhead for an engine and a card
(`any` when neither the log nor --gpu names the card), as flat keys both readers take alike:

    "overhead.llama.cpp.rtx4090.bytes" = 4136632320
    "overhead.llama.cpp.rtx4090.date" = "2026-12-07"
    "overhead.llama.cpp.rtx4090.log" = "server.log"

Every such value is checked when it is read (a size within MAX_OVERHEAD_BYTES, an ISO date, a file
name without control characters): a tampered file is a SpecError naming the key (exit 3). Writes
replace the file atomically (files.write_atomic) and keep every other line as it was.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import SpecError, UsageError
from ..units import MEASURED, looks_like_size
from .run import read_small_file

ENV_VAR = "WILLITRUN_GPU"
MAX_CONFIG_BYTES = 64 << 10
KEYS = ("gpu", "vram")
OVERHEAD = "overhead"  # the prefix of the saved overheads' keys
OVERHEAD_FIELDS = ("bytes", "date", "log")
MAX_OVERHEAD_BYTES = 64 << 30  # a CUDA context, cuBLAS, NCCL and pools take hundreds of MiB to a few GiB
MAX_OVERHEADS = 256  # (engine, card) pairs kept
ANY_CARD = "any"
_CARD = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a catalog GPU id (no dots: the key's separator)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Setting:
    """What the user wrote, and where: `kind` is "gpu" or "vram" (a size)."""

    kind: str
    value: str
    origin: str  # "WILLITRUN_GPU" or the config file's path


def config_path(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "willitrun", "config.toml")


def from_env(env: Mapping[str, str]) -> Setting | None:
    """WILLITRUN_GPU as a size or a GPU name; None when unset or blank."""
    value = env.get(ENV_VAR, "").strip()
    if not value:
        return None
    return Setting("vram" if looks_like_size(value) else "gpu", value, ENV_VAR)


def parse_config(text: str, path: str) -> dict[str, object]:
    """The config's keys and values; UsageError naming the file (and line) when it is not TOML."""
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # Python 3.11+
    except ImportError:
        return _parse_simple(text, path)

    try:
        return _flat(tomllib.loads(text), path)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses arrays and inline tables recursively: `gpu = [[[...]]]`
        raise UsageError(f'{path}: nested too deeply (this file takes gpu = "NAME" or vram = "SIZE")') from None


def _flat(data: Mapping[str, object], path: str, prefix: str = "") -> dict[str, object]:
    """Dotted keys (`overhead.vllm.any.bytes = 1`, which TOML reads as nested tables) as the flat keys
    the 3.10 reader and the writer use ("overhead.vllm.any.bytes"), so that both read a file alike."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, dict) and (prefix or key == OVERHEAD):
            for k, v in _flat(value, path, name + ".").items():
                if k in out:
                    raise UsageError(f"{path}: {k} is given twice")
                out[k] = v
        elif name in out:
            raise UsageError(f"{path}: {name} is given twice")
        else:
            out[name] = value
    return out


def _parse_simple(text: str, path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = re.fullmatch(
            r"""(?:([A-Za-z0-9_.-]+)|"([^"\\]*)")\s*=\s*(?:"([^"\\]*)"|'([^']*)'|([0-9]+(?:\.[0-9]+)?))\s*(?:#.*)?""",
            stripped,
        )
        if not m:
            raise UsageError(
                f'{path}:{n}: expected key = "value" (Python 3.10 reads only such lines; 3.11+ reads all TOML)'
            )
        key = m.group(1) if m.group(1) is not None else m.group(2)
        if key in out:
            raise UsageError(f"{path}:{n}: {key} is given twice")
        number = m.group(5)
        out[key] = (
            (float(number) if "." in number else int(number))
            if number is not None
            else (m.group(3) if m.group(3) is not None else m.group(4))
        )
    return out


def from_config(env: Mapping[str, str], path: str | None = None) -> Setting | None:
    """The `gpu` or `vram` key of the config file; None when the file does not exist or sets neither."""
    path = path or config_path(env)
    if not os.path.lexists(path):
        return None
    text = read_small_file(path, MAX_CONFIG_BYTES)
    if text is None:
        raise UsageError(
            f"{path}: not read (it must be a readable regular file of at most {MAX_CONFIG_BYTES >> 10} KiB)"
        )
    data = parse_config(text, path)
    unknown = sorted(k for k in data if k not in KEYS and not k.startswith(OVERHEAD + "."))
    if unknown:
        raise UsageError(f'{path}: unknown key {", ".join(unknown)}; this file takes gpu = "NAME" or vram = "SIZE"')
    given = [k for k in KEYS if k in data]
    if len(given) > 1:
        raise UsageError(f"{path}: give gpu or vram, not both")
    if not given:
        return None
    key = given[0]
    value = data[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, int, float))
        or (key == "gpu" and not isinstance(value, str))
    ):
        raise UsageError(f'{path}: {key} must be a string, e.g. {key} = "{"rtx3090" if key == "gpu" else "24GiB"}"')
    text_value = str(value).strip()
    if not text_value:
        raise UsageError(f"{path}: {key} is empty")
    return Setting(key, text_value, path)


# --------------------------------------------------------------------------------------------------
# Measured overheads (`explain LOG --save`)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedOverhead:
    """What an engine's log showed this machine's runtime holding beyond the engine's buffers."""

    engine: str  # a willitrun engine name (dtypes.ENGINES)
    card: str  # a catalog GPU id, or "any" when the log and the command named no card
    bytes: int
    date: str  # YYYY-MM-DD, when it was saved
    log: str  # the log's file name ("-" for standard input)

    @property
    def detail(self) -> str:
        """How an estimate's table and JSON say where the figure comes from."""
        return f"{MEASURED}, {self.date}, from {self.log}"


def _key(engine: str, card: str, name: str) -> str:
    return f"{OVERHEAD}.{engine}.{card}.{name}"


def _read(env: Mapping[str, str], path: str | None) -> tuple[str, str | None, dict[str, object]]:
    """(path, text or None when absent, its keys)."""
    path = path or config_path(env)
    if not os.path.lexists(path):
        return path, None, {}
    text = read_small_file(path, MAX_CONFIG_BYTES)
    if text is None:
        raise UsageError(
            f"{path}: not read (it must be a readable regular file of at most {MAX_CONFIG_BYTES >> 10} KiB)"
        )
    return path, text, parse_config(text, path)


def _overheads(data: Mapping[str, object], path: str) -> list[SavedOverhead]:
    """The saved overheads among the config's keys, each value checked (SpecError naming the key)."""
    from ..dtypes import ENGINES

    groups: dict[tuple[str, str], dict[str, object]] = {}
    for key, value in data.items():
        if not key.startswith(OVERHEAD + "."):
            continue
        parts = key.split(".")
        name, card, engine = parts[-1], parts[-2] if len(parts) > 3 else "", ".".join(parts[1:-2])
        if name not in OVERHEAD_FIELDS or engine not in ENGINES or not _CARD.fullmatch(card):
            raise SpecError(
                f"{path}: {key[:120]}: not a saved overhead (overhead.ENGINE.CARD.bytes|date|log); "
                "`willitrun explain --forget` clears them"
            )
        groups.setdefault((engine, card), {})[name] = value
        if len(groups) > MAX_OVERHEADS:
            raise SpecError(f"{path}: more than {MAX_OVERHEADS} saved overheads")
    out = []
    for (engine, card), fields in groups.items():
        where = f"{path}: {_key(engine, card, '')[:-1]}"
        missing = [f for f in OVERHEAD_FIELDS if f not in fields]
        if missing:
            raise SpecError(f"{where}: {', '.join(missing)} missing; `willitrun explain --forget` clears it")
        size, date, log = fields["bytes"], fields["date"], fields["log"]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_OVERHEAD_BYTES:
            raise SpecError(f"{where}.bytes: must be a whole number of bytes from 0 to {MAX_OVERHEAD_BYTES:,}")
        if not isinstance(date, str) or not _DATE.fullmatch(date) or not _is_date(date):
            raise SpecError(f"{where}.date: must be a date written YYYY-MM-DD")
        if not isinstance(log, str) or not log or len(log) > 255 or any(c < " " or c == "\x7f" for c in log):
            raise SpecError(f"{where}.log: must be a file name of at most 255 characters, without control characters")
        out.append(SavedOverhead(engine, card, size, date, log))
    return sorted(out, key=lambda o: (o.engine, o.card))


def _is_date(text: str) -> bool:
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def saved_overheads(env: Mapping[str, str], path: str | None = None) -> list[SavedOverhead]:
    """Every saved overhead in the config file ([] when there is none)."""
    path, _, data = _read(env, path)
    return _overheads(data, path)


def overhead_for(
    engine: str, card: str | None, env: Mapping[str, str], path: str | None = None
) -> SavedOverhead | None:
    """The overhead saved for `engine` on `card` (a catalog id), else the one saved for any card."""
    found = {(o.engine, o.card): o for o in saved_overheads(env, path)}
    return (found.get((engine, card)) if card else None) or found.get((engine, ANY_CARD))


def save_overhead(entry: SavedOverhead, env: Mapping[str, str], path: str | None = None) -> str:
    """Write `entry` into the config file (replacing the one of the same engine and card), atomically,
    every other line kept; the file's path."""
    _overheads({_key(entry.engine, entry.card, "bytes"): entry.bytes, _key(entry.engine, entry.card, "date"): entry.date,
                _key(entry.engine, entry.card, "log"): entry.log}, "the entry")  # fmt: skip
    lines = _rewrite(env, path, lambda o: (o.engine, o.card) == (entry.engine, entry.card))
    path = path or config_path(env)
    lines += [
        f'"{_key(entry.engine, entry.card, "bytes")}" = {entry.bytes}',
        f'"{_key(entry.engine, entry.card, "date")}" = "{entry.date}"',
        f'"{_key(entry.engine, entry.card, "log")}" = "{_quote(entry.log)}"',
    ]
    _write(path, lines)
    return path


def forget_overheads(
    env: Mapping[str, str], engine: str | None = None, card: str | None = None, path: str | None = None
) -> list[SavedOverhead]:
    """Remove the saved overheads (of `engine`, of `card`, or all); the ones removed."""
    path = path or config_path(env)
    gone = [o for o in saved_overheads(env, path) if engine in (None, o.engine) and card in (None, o.card)]
    if gone:
        _write(path, _rewrite(env, path, lambda o: o in gone))
    return gone


def _quote(text: str) -> str:
    """`text` inside a TOML basic string that the 3.10 reader also takes (no quote, no backslash)."""
    return text.replace("\\", "/").replace('"', "'")


def _rewrite(env: Mapping[str, str], path: str | None, drop: Callable[[SavedOverhead], bool]) -> list[str]:
    """The config's lines without those of the saved overheads `drop` selects; the file is checked
    first (a damaged one is an error, never overwritten)."""
    path, text, data = _read(env, path)
    current = _overheads(data, path)
    if text is None:
        return []
    if any(line.lstrip().startswith("[") for line in text.splitlines()):
        raise UsageError(
            f"{path}: has TOML [tables]; willitrun writes flat keys only: write the overheads as "
            '"overhead.ENGINE.CARD.bytes" = N lines, or remove them, and try again'
        )
    keys = {_key(o.engine, o.card, f) for o in current if drop(o) for f in OVERHEAD_FIELDS}
    out = []
    for line in text.splitlines():
        m = re.match(r"""\s*(?:"([^"\\]*)"|([A-Za-z0-9_.-]+))\s*=""", line)
        if m and (m.group(1) or m.group(2)) in keys:
            continue
        out.append(line)
    return out


def _write(path: str, lines: list[str]) -> None:
    from ..files import write_atomic

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    text = "\n".join(lines).strip("\n")
    write_atomic(path, (text + "\n" if text else "").encode(), "config file")
