"""Write docs/engines.md from the engines' one declaration (src/willitrun/engines/registry.py).

    python scripts/engines_doc.py          # rewrite docs/engines.md
    python scripts/engines_doc.py --check  # exit 1 when docs/engines.md differs from the code

tests/engines/test_registry.py runs the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from willitrun.engines.registry import docs_markdown  # noqa: E402

DOC = ROOT / "docs" / "engines.md"


def main(argv: list[str]) -> int:
    text = docs_markdown()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{DOC.relative_to(ROOT)} is out of date: run python scripts/engines_doc.py\n")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
