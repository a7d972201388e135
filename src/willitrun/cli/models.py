"""The MODEL argument and the devices (--gpu, --vram, NVML) the commands share. No typer here."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import parse

SPEC_SUFFIXES = (".yaml", ".yml")


def _probe(path: Path) -> tuple[bool, bool]:
    """(is a file, exists) without raising: a 256-character name fails with ENAMETOOLONG."""
    try:
        return path.is_file(), path.exists()
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.EACCES, errno.EINVAL):
            return False, False
        raise UsageError(f"{parse._show(str(path))}: {exc.strerror or exc}") from None
    except ValueError:  # an embedded NUL byte
        return False, False


def resolve_model_arg(arg: str, catalog: Any) -> tuple[Any, Any]:
    """(spec, WeightsOverride or None) for a model argument.

    An existing path is imported (config.json, a model directory, a .gguf file) or, for a .yaml
    file, loaded as a spec; `hf:ORG/NAME` is fetched from the Hub; `hf:ORG/NAME/FILE.gguf` and
    http(s) URLs to a .gguf have their header read by range requests; anything else is a catalog id
    or alias, else a name resolved by sources/names.py (the local HF cache, ollama's store, then the
    Hub with the hub extra). A bare name that is both a catalog id (or alias) and a path here means
    the catalog model, and a warning says so: write `./name` for the path.
    """
    if arg.startswith(("hf:", "http://", "https://")) and arg.lower().split("?", 1)[0].endswith(".gguf"):
        from ..sources.remote import read_remote_gguf

        return read_remote_gguf(arg)
    if arg.startswith("hf:"):
        from ..importers import import_model

        return import_model(arg)
    path = Path(arg)
    is_file, exists = _probe(path)
    if is_file and path.suffix in SPEC_SUFFIXES:
        from ..catalog import load_spec

        return load_spec(path, "model"), None
    if exists and _bare(arg):
        from ..errors import WillItRunError

        try:
            spec = catalog.resolve("model", arg)
        except WillItRunError:
            spec = None
        if spec is not None:
            from ..render import error

            error(
                f"{arg!r} is a catalog model and a path here; using the catalog's (write ./{arg} for the path)",
                prefix="warning",
            )
            return spec, None
    if exists:
        from ..importers import import_model

        return import_model(arg)
    return _catalog_or_named(arg, catalog)


def _catalog_or_named(arg: str, catalog: Any) -> tuple[Any, Any]:
    """A catalog id or alias first; else a name from the HF cache, ollama's store or the Hub."""
    from ..errors import WillItRunError

    try:
        return catalog.resolve("model", arg), None
    except WillItRunError as unknown:
        if _path_like(arg):  # meant as a file or folder that is not there: not an unknown model
            raise UsageError(f"{parse._show(arg)}: no such file or directory") from None
        from ..sources import resolve_name

        found = resolve_name(arg)
        if found is None:
            from ..sources.names import not_found_hint

            hint = not_found_hint(arg)
            raise (UsageError(f"{unknown}; {hint}") if hint else unknown) from None
        return found


# What a model file is called (a catalog id may hold dots, "llama-3.1-8b", but never these endings).
PATH_SUFFIXES = (".gguf", ".json", ".safetensors", *SPEC_SUFFIXES)


def _path_like(arg: str) -> bool:
    """Written as a path: `./x`, `../x`, `/x`, `~/x`, `dir/`, `x.gguf`, `dir/config.json`. Not a URL,
    `hf:`, an ollama name (`qwen3:8b`) or an HF name (`ORG/NAME`, `ORG/NAME/FILE.gguf`: sources/names.py
    says what is missing for those)."""
    if "://" in arg or arg.startswith("hf:"):
        return False
    if arg.startswith(("./", "../", "/", "~/", ".\\", "..\\")) or arg in (".", "..") or arg.endswith(("/", "\\")):
        return True
    suffix = Path(arg).suffix.lower()
    if "/" not in arg:
        return suffix in PATH_SUFFIXES
    return suffix in PATH_SUFFIXES and suffix != ".gguf"  # ORG/NAME/FILE.gguf is also an HF name


def _bare(arg: str) -> bool:
    """A name as a catalog id is written: no directory part, not `.`-relative, not absolute."""
    return "/" not in arg and "\\" not in arg and not arg.startswith(".")


def device(cat: Any, gpu: str | None, vram: str | None, quiet: bool) -> tuple[str, str, int]:
    """(device id, display name, bytes available) from --gpu, --vram, WILLITRUN_GPU, the config file, or detection."""
    dev, name, memory = device_memory(cat, gpu, vram, quiet)
    return dev, name, memory.total_bytes


def margin(text: str | None) -> int:
    """--margin SIZE: parsed as --vram is (24GiB, 512MiB, a bare number in GiB); 0 is no margin."""
    if text is None or text.strip() in ("0", "0GiB", "0MiB", "0GB", "0MB"):
        return 0
    return parse.size(text, f"--margin {parse._show(text)}")


def device_memory(
    cat: Any, gpu: str | None, vram: str | None, quiet: bool, margin_text: str | None = None
) -> tuple[str, str, Any]:
    """(device id, display name, fit.Memory): the card's total, what is free on it now when it was
    detected (NVML, AMD; None with --gpu/--vram or a configured default) and the --margin."""
    from ..fit import Memory

    keep = margin(margin_text)
    if gpu is not None and vram is not None:
        raise UsageError("give --gpu or --vram, not both")
    free = None
    if vram is not None:
        dev, name, total = "vram", f"--vram {vram.strip()}", parse.size(vram)
    elif gpu is not None:
        spec = cat.resolve("gpu", gpu)
        dev, name, total = spec.id, spec.name, spec.capacity_bytes
    else:
        from ..gpu import default_gpu

        found = default_gpu(cat)
        if not quiet:
            from ..render import error

            extra = f" (+{found.others} more: --gpu {found.others + 1}xGPU estimates a split)" if found.others else ""
            error(f"{found.explanation}{extra}", prefix="GPU")
        dev, name, total, free = found.device_id, found.name, found.total_bytes, found.free_bytes
    if keep >= total:
        raise UsageError(
            f"--margin {parse._show(margin_text or '')} leaves nothing of the {total / (1 << 30):.2f} GiB card"
        )
    return dev, name, Memory(total, free, keep)


def devices(
    cat: Any, gpu: list[str] | None, vram: str | None, quiet: bool, margin_text: str | None = None
) -> tuple[str, str, Any, list[Any]]:
    """(device id, display name, fit.Memory of one card, catalog GPUs) for the estimate command:
    `device_memory` for the first card, plus every card given (or the detected one when it is in the catalog)."""
    names = parse.gpus(gpu or [])
    cards = [cat.resolve("gpu", n) for n in names]
    dev, device_name, memory = device_memory(cat, names[0] if names else None, vram, quiet, margin_text)
    if not names and vram is None and dev in cat.files("gpu"):
        cards = [cat.get("gpu", dev)]
    if len(cards) > 1:
        runs: list[list[Any]] = []  # consecutive cards of one model: "2 x RTX 3090 + RTX 4090"
        for c in cards:
            if runs and runs[-1][0].id == c.id:
                runs[-1].append(c)
            else:
                runs.append([c])
        device_name = " + ".join(f"{len(r)} x {r[0].name}" if len(r) > 1 else r[0].name for r in runs)
    return dev, device_name, memory, cards


def request(
    context: str | int | None = None,
    batch: str | int = 1,
    beams: str | int = 1,
    dtype: str | None = None,
    kv_dtype: str | None = None,
    images: str | int | None = None,
    image_size: str | None = None,
    encoder_tokens: str | int | None = None,
    video_frames: str | int | None = None,
    audio_seconds: str | int | None = None,
) -> Any:
    """The core's Request from the options' text, every number bounded (cli/parse.py)."""
    from ..memory import Request

    return Request(
        context=parse.whole("--context", context),
        batch=parse.whole("--batch", batch) or 1,
        dtype=dtype,
        kv_dtype=kv_dtype,
        images=parse.whole("--images", images),
        encoder_tokens=parse.whole("--encoder-tokens", encoder_tokens),
        beams=parse.whole("--beams", beams) or 1,
        image_size=parse.image_size(image_size),
        video_frames=parse.whole("--video-frames", video_frames),
        audio_seconds=parse.whole("--audio-seconds", audio_seconds),
    )
