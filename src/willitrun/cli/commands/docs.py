"""`willitrun docs`: where the documentation is. The wheel carries README.md and docs/ (pyproject's
force-include), so a pip install without the repository can read them offline."""

from __future__ import annotations

from pathlib import Path

from ..options import command_app

app = command_app()

DOCS = [
    ("README.md", "usage, options, exit codes, library use"),
    ("docs/json-output.md", "the estimate's --json output"),
    ("docs/answers-json.md", "the --json output of ladder, gpus, sweep and the extra answers"),
    ("docs/engines.md", "every engine option and its spellings, version tables, launch lines"),
    ("docs/scan.md", "scan: the places it looks in, its limits and its --json output"),
    ("docs/spec-format.md", "model and GPU spec files"),
    ("docs/accuracy.md", "estimates against measured runs"),
]


def docs_root() -> Path:
    """willitrun/_data/docs in an installed wheel; the repository root in a checkout or editable install."""
    package = Path(__file__).resolve().parents[2]
    bundled = package / "_data" / "docs"
    return bundled if bundled.is_dir() else package.parents[1]


@app.command("docs")
def docs_cmd() -> None:
    """Print where the documentation is: the README, the JSON and spec formats."""
    from ...render import write  # a closed pipe (`willitrun docs | grep -q`) keeps exit code 0

    root = docs_root()
    write(
        "".join(f"{root / path}  ({what})\n" for path, what in DOCS) + "Every command's options: willitrun COMMAND -h\n"
    )
