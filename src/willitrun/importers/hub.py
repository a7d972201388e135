"""`hf:ORG/NAME`: config.json from the Hugging Face Hub, and the safetensors headers by range requests.

Optional: needs the huggingface_hub package (`pip install 'willitrun[hub]'`). config.json goes into
huggingface_hub's own cache, so a repeated or offline run (HF_HUB_OFFLINE=1) reuses it; the weight
files are never downloaded, only their headers are fetched (HfApi.get_safetensors_metadata).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import safe_text
from .weights import StoredTensor, header_tensors

REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
_LOCAL = (
    "download config.json (and the *.safetensors files, if you want their exact sizes) and pass the file or "
    "its directory instead"
)


def parse_repo_id(source: str) -> str:
    repo_id = source.removeprefix("hf:").strip()
    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise UsageError(
            f"{source[:200]!r}: give a Hugging Face repository as hf:ORG/NAME, e.g. hf:meta-llama/Llama-3.1-8B"
        )
    return repo_id


def _hub() -> Any:  # the huggingface_hub module, imported lazily
    try:
        import huggingface_hub
    except ImportError:
        raise UsageError(
            f"hf: sources need the huggingface_hub package (pip install 'willitrun[hub]'); or {_LOCAL}"
        ) from None
    return huggingface_hub


def _one_line(exc: BaseException) -> str:
    """The first line of an error from the Hub (server text: escaped before it is printed)."""
    text = str(exc).strip().splitlines()
    return safe_text(text[0][:300]) if text else type(exc).__name__


@contextmanager
def _quiet() -> Iterator[None]:
    """huggingface_hub logs every retry of an unreachable Hub as a warning; the user gets one error line."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _unreachable() -> str | None:
    """Why the Hub cannot be reached, from one request without retries (None: it answers).

    huggingface_hub retries a failed connection five times with backoff (about 20 s); one HEAD
    through its own session (same endpoint, proxies and certificates) tells at once.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session  # type: ignore[attr-defined,unused-ignore]  # tests replace it there; absent stubs-wise without the hub extra

    if constants.is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=10)
    except Exception as exc:  # connection errors come from httpx, whichever copy
        return _one_line(exc)
    return None


def fetch_hf_config(repo_id: str) -> Path:
    """config.json of a Hub repository: from huggingface_hub's cache when it is there (no request),
    else downloaded into it. Offline (HF_HUB_OFFLINE=1) only the cache is used."""
    hub = _hub()
    from huggingface_hub import errors

    try:
        return Path(hub.hf_hub_download(repo_id, "config.json", local_files_only=True))
    except (errors.LocalEntryNotFoundError, errors.EntryNotFoundError, OSError, ValueError):
        pass  # not cached: ask the Hub
    why = _unreachable()
    if why is not None:
        raise UsageError(
            f"hf:{repo_id}: cannot reach the Hugging Face Hub ({why}) and its config.json is not in "
            f"the local cache; {_LOCAL}"
        )
    try:
        with _quiet():
            return Path(hub.hf_hub_download(repo_id, "config.json"))
    except errors.GatedRepoError:
        raise UsageError(
            f"hf:{repo_id} is gated: accept its license on huggingface.co and log in (`hf auth login`), or {_LOCAL}"
        ) from None
    except errors.RepositoryNotFoundError:
        raise UsageError(f"hf:{repo_id}: no such repository on the Hugging Face Hub (or it is private)") from None
    except errors.LocalEntryNotFoundError:
        raise UsageError(
            f"hf:{repo_id}: cannot reach the Hugging Face Hub and its config.json is not in the local cache; {_LOCAL}"
        ) from None
    except errors.EntryNotFoundError:
        raise UsageError(
            f"hf:{repo_id} has no config.json (a GGUF-only repository? download the .gguf file and pass its path)"
        ) from None
    except (OSError, ValueError, errors.HfHubHTTPError) as exc:
        raise UsageError(f"hf:{repo_id}: cannot reach the Hugging Face Hub ({_one_line(exc)}); {_LOCAL}") from None


def revision_of(config_path: Path) -> str:
    """The commit a cached file belongs to: huggingface_hub caches it as .../snapshots/<commit>/config.json."""
    parent = config_path.parent
    return parent.name if parent.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parent.name) else "main"


def fetch_hf_safetensors(repo_id: str, revision: str) -> tuple[list[StoredTensor] | None, str]:
    """The checkpoint's tensors from the safetensors headers on the Hub (HTTP range requests only),
    or None and the reason when there are none or they cannot be fetched."""
    hub = _hub()
    from huggingface_hub import errors

    why = _unreachable()
    if why is not None:
        return None, f"the Hub cannot be reached for the safetensors headers ({why})"
    try:
        with _quiet():
            meta = hub.HfApi().get_safetensors_metadata(repo_id, revision=revision)
    except errors.NotASafetensorsRepoError:
        return None, "the repository has no model.safetensors(.index.json)"
    except Exception as exc:  # any failure leaves the computed weights, with the reason
        return None, f"its safetensors headers could not be read ({_one_line(exc)})"
    tensors: list[StoredTensor] = []
    for filename, file_meta in sorted(meta.files_metadata.items()):
        header = {
            name: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": list(t.data_offsets)}
            for name, t in file_meta.tensors.items()
        }
        tensors += header_tensors(header, f"hf:{repo_id}/{filename}", None)
    return tensors, ""
