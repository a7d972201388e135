"""A model spec as the YAML text of a catalog file, with a comment on every field filled from a default."""

from __future__ import annotations

from typing import Any

import yaml

from ..archs.family import TRANSFORMERS_MODELS_URL
from ..files import safe_text

_ORDER = (
    "id",
    "name",
    "aliases",
    "hf_id",
    "architecture",
    "dtype",
    "parameters_declared",
    "notes",
    "sources",
    "config",
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        value = _one_line(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False).strip()
    return text.removesuffix("\n...").strip()


def _emit(lines: list[str], data: dict[str, Any], depth: int, path: tuple[str, ...], comments: dict[str, str]) -> None:
    pad = "  " * depth
    for key, value in data.items():
        where = (*path, str(key))
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{_scalar(key)}:")
            _emit(lines, value, depth + 1, where, comments)
            continue
        line = f"{pad}{_scalar(key)}: {_scalar(value)}"
        comment = comments.get(".".join(where))
        lines.append(f"{line}   # {comment}" if comment else line)


def write_spec_yaml(spec: Any, source: str) -> str:
    """YAML text of a catalog model spec (`willitrun validate --strict` clean): `sources.config` names
    `source`, and every field the source left out says which transformers default it carries."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    sources = dict(data.get("sources") or {})
    sources.setdefault("config", source)
    data["sources"] = sources
    comments = {
        key: "not in the source: transformers' default"
        for key, value in sources.items()
        if key.startswith("config.") and value.startswith(TRANSFORMERS_MODELS_URL)
    }
    ordered = {key: data[key] for key in _ORDER if key in data}
    ordered.update({key: value for key, value in data.items() if key not in ordered})
    lines = [
        f"# Written by `willitrun import` from {safe_text(_one_line(source))}.",  # YAML refuses control characters
        "# `config` uses the names and nesting of Hugging Face config.json (docs/spec-format.md);",
        "# `sources` says where each number comes from.",
    ]
    _emit(lines, ordered, 0, (), comments)
    return "\n".join(lines) + "\n"
