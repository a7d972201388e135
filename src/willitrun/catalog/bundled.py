"""The bundled catalog, validated ahead of time: what the first run after install would otherwise do.

A cold catalog cache (the first run after install, or after an upgrade) would parse every bundled
YAML file to index the aliases and validate the specs it uses with pydantic (importing it and building
its validators: most of a cold run). `bundled.json`, beside this module, holds for each bundled spec
file its index entry and its validated spec in the catalog cache's encoding (catalog/cache.py),
keyed by the file's size and CRC-32: an entry answers only for a file of exactly those bytes, so a
changed file is read and validated as usual. The catalog uses an entry only on a cache miss (never
with WILLITRUN_NO_CACHE set), and stores it in the user's cache as if it had validated the file.

tests/catalog/test_bundled.py checks that the committed file equals a rebuild; after changing a
bundled spec or a spec class, rebuild it:

    python scripts/bundled_catalog.py
"""

from __future__ import annotations

import json
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import CACHE_FORMAT, PACKAGE

if TYPE_CHECKING:
    from . import Kind

BUNDLED = PACKAGE / "catalog" / "bundled.json"
CAP = 4 << 20  # the file is ~0.5 MB


def file_key(data: bytes) -> str:
    """What an entry answers for: the file's size and CRC-32."""
    return f"{len(data)}:{zlib.crc32(data):08x}"


@cache
def _table() -> dict[str, Any]:
    """The committed entries by `model_specs/NAME.yaml` (empty when missing, damaged or of another format)."""
    from ..errors import SpecError
    from ..files import read_bytes

    try:
        data = json.loads(read_bytes(BUNDLED, CAP, "bundled catalog"))
    except (SpecError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]  # type: ignore[no-any-return]


def entry(path: Path, kind: Kind) -> dict[str, Any] | None:
    """The prebuilt entry of a bundled spec file as it is now (`index`, `spec`), or None."""
    import os

    from . import SUBDIR, bundled_root
    from .cache import NO_CACHE_ENV

    if os.environ.get(NO_CACHE_ENV) or path.parent != bundled_root() / SUBDIR[kind]:
        return None  # WILLITRUN_NO_CACHE: every file read and validated
    found = _table().get(f"{SUBDIR[kind]}/{path.name}")
    if not isinstance(found, dict):
        return None
    from ..errors import SpecError
    from ..files import SPEC_YAML_CAP, read_bytes

    try:
        data = read_bytes(path, SPEC_YAML_CAP, "spec file")
    except SpecError:
        return None
    return found if found.get("key") == file_key(data) else None


def build() -> dict[str, Any]:
    """Every bundled spec file that validates: its key, index entry and encoded spec."""
    from ..errors import SpecError
    from ..files import SPEC_YAML_CAP, read_bytes, read_yaml_mapping
    from . import SUBDIR, _index_entry, bundled_root, spec_files, spec_from_document
    from .cache import _encode

    files: dict[str, Any] = {}
    for kind, sub in SUBDIR.items():
        for path in spec_files(bundled_root() / sub):
            data = read_bytes(path, SPEC_YAML_CAP, "spec file")
            doc = read_yaml_mapping(path)
            try:
                spec = spec_from_document(path, doc, kind)
            except SpecError:
                continue  # refused: validated (and refused) at each use, as without this file
            files[f"{sub}/{path.name}"] = {
                "key": file_key(data),
                "index": _index_entry(doc.data),
                "spec": _encode(spec),
            }
    return {"format": CACHE_FORMAT, "files": files}


def text(table: dict[str, Any]) -> str:
    """The file's text: one line per spec file (a changed spec changes one line)."""
    lines = [
        f"{json.dumps(name)}:{json.dumps(e, sort_keys=True, separators=(',', ':'))}"
        for name, e in sorted(table["files"].items())
    ]
    return f'{{"format":{table["format"]},"files":{{\n' + ",\n".join(lines) + "\n}}\n"
