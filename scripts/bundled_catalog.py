"""Rebuild src/willitrun/catalog/bundled.json (the bundled catalog validated ahead of time) after a
bundled spec or a spec class changed: `python scripts/bundled_catalog.py`. tests/catalog/test_bundled.py
fails until it is rebuilt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ["WILLITRUN_NO_CACHE"] = "1"  # validate every file: never an entry of the user's cache

from willitrun.catalog import bundled

bundled.BUNDLED.write_text(bundled.text(bundled.build()), encoding="utf-8")
sys.stdout.write(f"wrote {bundled.BUNDLED}\n")
