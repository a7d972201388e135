"""The GPU an answer is for when --gpu/--vram are not given (names are matched in gpu_names.py).

`default_gpu` decides, in this order (the first that answers wins):
  1. WILLITRUN_GPU: a catalog id, alias or NVML name, or a --vram size ("24GiB");
  2. the config file ($XDG_CONFIG_HOME/willitrun/config.toml: gpu = "..." or vram = "...");
  3. on macOS, the Apple Silicon chip (sysctl, system_profiler);
  4. elsewhere NVML (nvidia-ml-py), honouring CUDA_VISIBLE_DEVICES and MIG instances, then AMD
     (rocm-smi, then the amdgpu sysfs files) and Intel Arc (sysfs: detect/intel.py) on Linux.
NVML comes before AMD because AMD APUs expose a small VRAM carve-out in sysfs that would shadow a
discrete NVIDIA card. `pynvml` is imported inside `detect_gpus` only: the CLI never pays for it when
--gpu or --vram is given.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import GPUDetectionError, UsageError
from .gpu_names import match_gpu as match_gpu
from .gpu_names import norm_name
from .specs import GPUSpec

NO_DRIVER = "no NVIDIA GPU found ({why}); give the card with --gpu NAME (see `willitrun list gpus`) or its memory with --vram, e.g. --vram 24GiB"
GIB = 1 << 30


@dataclass(frozen=True)
class DetectedGPU:
    """One device CUDA would see: a whole GPU, or a MIG instance of one (then `mig_profile` is set)."""

    index: int  # NVML index of the physical GPU
    name: str
    total_bytes: int
    free_bytes: int
    uuid: str = ""
    mig_profile: str | None = None  # "3g.40gb"
    parent_name: str | None = None  # the physical GPU of a MIG instance
    mig_instance: tuple[int, int] | None = None  # (GPU instance id, compute instance id) of a MIG instance


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _NoGPU(Exception):
    def __init__(self, why: str, hidden: bool = False) -> None:
        super().__init__(why)
        self.why, self.hidden = why, hidden


def parse_cuda_visible_devices(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: None when unset; else the entries up to the first
    invalid one ("0,2,-1,1" shows devices 0 and 2, so "" and "-1" show none; CUDA C Programming
    Guide, "CUDA Environment Variables"). Entries are indices, GPU-<uuid> or MIG-<uuid> prefixes."""
    if value is None:
        return None
    out: list[str] = []
    for token in (t.strip() for t in value.split(",")):
        if re.fullmatch(r"\d+", token) or re.match(r"(GPU|MIG)-[0-9A-Za-z]", token):
            out.append(token)
        else:
            break
    return out


def _call(nvml: Any, fn: str, *args: Any) -> Any:
    """An NVML query that may be unsupported (MIG on a GeForce card, an old driver or nvidia-ml-py
    without the function): None then."""
    try:
        return getattr(nvml, fn)(*args)
    except Exception:
        return None


def _device(nvml: Any, index: int, handle: Any, parent: str | None = None) -> DetectedGPU:
    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    name = _text(nvml.nvmlDeviceGetName(handle))
    uuid = _text(_call(nvml, "nvmlDeviceGetUUID", handle) or "")
    profile = instance = None
    if parent is not None:
        gi, ci = (
            _call(nvml, "nvmlDeviceGetGpuInstanceId", handle),
            _call(nvml, "nvmlDeviceGetComputeInstanceId", handle),
        )
        instance = (gi, ci) if isinstance(gi, int) and isinstance(ci, int) else None
        # NVML and CUDA name a MIG device "<GPU name> MIG 3g.40gb" (driver 535: "NVIDIA A100-SXM4-80GB
        # MIG 3g.40gb", recorded in tests/fixtures/fake_nvml.py)
        m = re.search(r"\bMIG\s+(\S+)\s*$", name)
        profile = m.group(1) if m else "instance"
    return DetectedGPU(index, name, int(mem.total), int(mem.free), uuid, profile, parent, instance)


def _mig_devices(nvml: Any, index: int, handle: Any, parent: str) -> list[DetectedGPU] | None:
    """The MIG instances of a GPU in MIG mode, None when MIG is off or not supported."""
    mode = _call(nvml, "nvmlDeviceGetMigMode", handle)
    if not mode or mode[0] != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return None
    out = []
    for j in range(_call(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle) or 0):
        mig = _call(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, j)  # NotFound for an empty slot
        if mig is not None:
            out.append(_device(nvml, index, mig, parent))
    return out


def _visible(nvml: Any, cvd: str | None) -> list[DetectedGPU]:
    """The devices CUDA would enumerate, in NVML (PCI bus) order unless CUDA_VISIBLE_DEVICES orders them."""
    physical = []  # (index, uuid, [devices CUDA sees on it])
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        whole = _device(nvml, i, handle)
        migs = _mig_devices(nvml, i, handle, whole.name)
        physical.append((i, whole.uuid, whole if migs is None else migs))
    if not physical:
        raise _NoGPU("NVML reports 0 devices")
    tokens = parse_cuda_visible_devices(cvd)
    if tokens is None:
        every = [d for _, _, ds in physical for d in (ds if isinstance(ds, list) else [ds])]
        if not every:
            raise _NoGPU("MIG mode is on and no MIG instance exists")
        return every
    seen: list[DetectedGPU] = []
    for token in tokens:
        found = _resolve_token(token, physical)
        if found is None or any(d in seen for d in found):
            break  # CUDA stops at the first entry it cannot use
        seen += found
    if not seen:
        raise _NoGPU(f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU", hidden=True)
    return seen


def _resolve_token(token: str, physical: list[tuple[int, str, Any]]) -> list[DetectedGPU] | None:
    def as_list(ds: Any) -> list[DetectedGPU]:
        return ds if isinstance(ds, list) else [ds]

    if token.isdigit():
        i = int(token)
        return as_list(physical[i][2]) or None if i < len(physical) else None
    key = token.lower()
    if key.startswith("gpu-"):
        hits = [ds for _, uuid, ds in physical if uuid and uuid.lower().startswith(key)]
        return as_list(hits[0]) or None if len(hits) == 1 else None
    migs = [(uuid, d) for _, uuid, ds in physical if isinstance(ds, list) for d in ds]
    legacy = re.fullmatch(r"mig-(gpu-[0-9a-f-]+)/(\d+)/(\d+)", key)  # R450/R460 drivers: MIG-GPU-<uuid>/<gi>/<ci>
    if legacy:
        ids = (int(legacy.group(2)), int(legacy.group(3)))
        hits = [d for uuid, d in migs if uuid.lower() == legacy.group(1) and d.mig_instance == ids]
    else:
        hits = [d for _, d in migs if d.uuid and d.uuid.lower().startswith(key)]
    return hits[:1] if len(hits) == 1 else None


def detect_gpus(nvml: Any = None, env: Mapping[str, str] | None = None) -> list[DetectedGPU]:
    """Every device NVML reports that CUDA would see (MIG instances instead of a GPU in MIG mode,
    CUDA_VISIBLE_DEVICES applied), with total and free memory; GPUDetectionError when there is none.

    `nvml` is the pynvml module; tests pass a fake with the same functions.
    """
    try:
        return _nvml_visible(nvml, os.environ if env is None else env)
    except _NoGPU as exc:
        raise GPUDetectionError(NO_DRIVER.format(why=exc.why)) from None


def _nvml_visible(nvml: Any, env: Mapping[str, str]) -> list[DetectedGPU]:
    if nvml is None:
        try:
            import pynvml  # heavy and often absent: imported only here
        except ImportError:
            raise _NoGPU("the nvidia-ml-py package is not installed") from None
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise _NoGPU(f"NVML could not start: {_text(exc) or type(exc).__name__}") from None
    try:
        return _visible(nvml, env.get("CUDA_VISIBLE_DEVICES"))
    except _NoGPU:
        raise
    except Exception as exc:
        raise _NoGPU(f"NVML query failed: {_text(exc) or type(exc).__name__}") from None
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


# --------------------------------------------------------------------------------------------------
# The default GPU: settings first, then what the machine reports.


@dataclass(frozen=True)
class DefaultGPU:
    """The GPU to answer for, and a one-line `explanation` of where it came from."""

    device_id: str  # a catalog id; else "vram", "nvml:0", "nvml:0/3g.40gb", "amd:card0", "intel:card1" or "apple"
    name: str
    total_bytes: int  # what a model may use: the device's reported total, or the catalog capacity
    spec: GPUSpec | None  # the catalog card, when the name (and memory) match one
    source: str  # "WILLITRUN_GPU", "config", "nvml", "rocm-smi", "sysfs" or "sysctl"
    explanation: str
    free_bytes: int | None = None
    others: int = 0  # further devices visible besides this one


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _from_setting(catalog: Any, setting: Any) -> DefaultGPU:
    from .detect.config import ENV_VAR
    from .units import parse_size

    where = setting.origin if setting.origin == ENV_VAR else "config"
    what = f"{ENV_VAR}={setting.value}" if where == ENV_VAR else f"{setting.origin}: {setting.kind} = {setting.value!r}"
    said = f"from {what}"
    if setting.kind == "vram" and setting.value.isdigit():  # "4090" is an alias before it is 4090 GiB
        try:
            spec = catalog.resolve("gpu", setting.value)
            return DefaultGPU(spec.id, spec.name, spec.capacity_bytes, spec, where, f"GPU {said}: {spec.name}")
        except UsageError:
            pass
    if setting.kind == "vram":
        n = parse_size(setting.value, what)
        return DefaultGPU(
            "vram",
            f"{setting.value} from {ENV_VAR if where == ENV_VAR else 'config'}",
            n,
            None,
            where,
            f"memory {said}: {_gib(n)}",
        )
    if re.match(r"\s*\d+\s*[x×]", setting.value):
        raise UsageError(f"{what}: names one card; give several with --gpu, e.g. --gpu {setting.value}")
    try:
        spec = catalog.resolve("gpu", setting.value)
    except UsageError as exc:
        raise UsageError(f"{what}: {exc}") from None
    return DefaultGPU(spec.id, spec.name, spec.capacity_bytes, spec, where, f"GPU {said}: {spec.name}")


def _from_nvml(catalog: Any, gpus: list[DetectedGPU], env: Mapping[str, str]) -> DefaultGPU:
    first, more = gpus[0], len(gpus) - 1
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    note = f" (CUDA_VISIBLE_DEVICES={cvd})" if cvd is not None else ""
    amount = f"{_gib(first.total_bytes)} total, {_gib(first.free_bytes)} free"
    if first.mig_profile is not None:
        parent = match_gpu(first.parent_name or "", catalog.gpus()) if first.parent_name else None
        on = parent.name if parent else first.parent_name
        line = f"detected through NVML: MIG {first.mig_profile} on {on} (GPU {first.index}){note}, {amount}"
        spec, device_id = None, f"nvml:{first.index}/{first.mig_profile}"
    else:
        spec = match_gpu(first.name, catalog.gpus(), first.total_bytes)
        line = f"detected through NVML: GPU {first.index}, {first.name}{note}, {amount}"
        device_id = spec.id if spec else f"nvml:{first.index}"
    if more:
        line += f"; {more} more visible" + (f" (--gpu {more + 1}x{spec.id} estimates a split)" if spec else "")
    kinds = {g.parent_name or g.name for g in gpus}
    if len(kinds) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        # CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA C Programming
        # Guide, "CUDA Environment Variables"); NVML numbers them in PCI bus order.
        line += "; GPUs of different kinds: this is the first in PCI bus order, CUDA's device 0 only with CUDA_DEVICE_ORDER=PCI_BUS_ID"
    return DefaultGPU(device_id, first.name, first.total_bytes, spec, "nvml", line, first.free_bytes, more)


def _from_amd(catalog: Any, cards: list[Any], how: str) -> DefaultGPU:
    card = max(cards, key=lambda c: c.total_bytes)  # an APU's carve-out is not where a model goes
    names = [card.name, *re.findall(r"\[([^\]]+)\]", card.name)]  # pci.ids: "Navi 31 [Radeon RX 7900 XT]"
    spec = next(
        (
            s
            for n in names
            for s in (
                match_gpu(n, catalog.gpus(), card.total_bytes),
                match_gpu(f"AMD {n}", catalog.gpus(), card.total_bytes),
            )
            if s
        ),
        None,
    )
    free = card.total_bytes - card.used_bytes if card.used_bytes is not None else None
    line = f"detected through {how}: {card.name} ({card.card}), {_gib(card.total_bytes)} total"
    line += f", {_gib(free)} free" if free is not None else ""
    line += f"; the largest of {len(cards)} AMD GPUs" if len(cards) > 1 else ""
    source = "rocm-smi" if how == "rocm-smi" else "sysfs"
    return DefaultGPU(
        spec.id if spec else f"amd:{card.card}", card.name, card.total_bytes, spec, source, line, free, len(cards) - 1
    )


def _from_intel(catalog: Any, cards: list[Any]) -> DefaultGPU:
    """The largest Intel card (detect/intel.py): the catalog card its device id names when the memory agrees
    (an Arc A770 is 8 or 16 GB on one id), else the card as the driver reports it."""
    from .detect.intel import ARC_CARDS

    card = max(cards, key=lambda c: c.total_bytes)
    known = ARC_CARDS.get(card.device_id)
    spec = None
    if known is not None and known[1] is not None and known[1] in catalog.files("gpu"):
        candidate = catalog.get("gpu", known[1])
        if abs(candidate.memory_gib - card.total_bytes / GIB) < 1:
            spec = candidate
    line = f"detected through sysfs: {card.name} ({card.card}, PCI id {card.device_id}), {_gib(card.total_bytes)} total"
    line += f" ({card.how})"
    line += f", {_gib(card.free_bytes)} free" if card.free_bytes is not None else ""
    line += f"; the largest of {len(cards)} Intel GPUs" if len(cards) > 1 else ""
    return DefaultGPU(
        spec.id if spec else f"intel:{card.card}",
        spec.name if spec else card.name,
        card.total_bytes,
        spec,
        "sysfs",
        line,
        card.free_bytes,
        len(cards) - 1,
    )


def _from_apple(catalog: Any, chip: Any) -> DefaultGPU:
    gib = round(chip.memory_bytes / GIB)
    spec = next(
        (
            s
            for s in catalog.gpus()
            if s.vendor == "apple"
            and round(s.memory_gib) == gib
            and norm_name(re.sub(r"\s*\(.*\)\s*$", "", s.name)) == norm_name(chip.name)
        ),
        None,
    )
    if chip.wired_limit_bytes:
        total, why = chip.wired_limit_bytes, "the iogpu.wired_limit_mb setting"
    elif spec is not None:
        total, why = spec.capacity_bytes, f"Metal's default share, {spec.gpu_memory_fraction:.0%}"
    else:
        from .detect.apple import default_gpu_fraction

        total, why = chip.gpu_bytes, f"Metal's default share, {default_gpu_fraction(chip.memory_bytes):.0%}"
    line = f"detected through sysctl: {chip.name} with {gib} GiB of unified memory, {_gib(total)} usable by the GPU ({why})"
    name = spec.name if spec else f"{chip.name} ({gib}GB)"
    return DefaultGPU(spec.id if spec else "apple", name, total, spec, "sysctl", line)


def default_gpu(
    catalog: Any,
    *,
    env: Mapping[str, str] | None = None,
    nvml: Any = None,
    runner: Any = None,
    system: str | None = None,
    sysfs_root: str | None = None,
    config_file: str | None = None,
) -> DefaultGPU:
    """The GPU to answer for when neither --gpu nor --vram is given (order in the module docstring);
    GPUDetectionError, naming what was tried, when nothing answers. The keyword arguments replace
    the environment, pynvml, the tool runner, platform.system() and file paths in tests."""
    from .detect.config import config_path, from_config, from_env

    env = os.environ if env is None else env
    setting = from_env(env) or from_config(env, config_file)
    if setting is not None:
        return _from_setting(catalog, setting)
    if runner is None:
        from .detect import run  # looked up now, so tests can replace run.run_tool

        runner = run.run_tool
    system = platform.system() if system is None else system
    tried = []
    if system == "Darwin":
        from .detect.apple import detect_apple

        chip = detect_apple(runner)
        if chip is not None:
            return _from_apple(catalog, chip)
        tried.append("sysctl: not an Apple Silicon Mac")
    else:
        try:
            return _from_nvml(catalog, _nvml_visible(nvml, env), env)
        except _NoGPU as exc:
            if exc.hidden:
                raise GPUDetectionError(
                    f"no GPU visible: {exc.why}; unset it, or give --gpu NAME or --vram SIZE"
                ) from None
            tried.append(exc.why)
        if system == "Linux":
            from .detect import amd

            cards, how = amd.detect_amd(runner, sysfs_root or amd.SYSFS_ROOT)
            if cards:
                return _from_amd(catalog, cards, how)
            tried.append(f"AMD: {how}")
            from .detect import intel

            arc, why = intel.detect_intel(sysfs_root or intel.SYSFS_ROOT)
            if arc:
                return _from_intel(catalog, arc)
            if why:
                tried.append(f"Intel: {why}")
    raise GPUDetectionError(
        f"no GPU found ({'; '.join(tried)}); give the card with --gpu NAME (see `willitrun list gpus`) or its memory "
        f"with --vram, e.g. --vram 24GiB, or set a default in WILLITRUN_GPU or {config_file or config_path(env)}"
    )
