"""Run many willitrun command lines in ONE process, each as the console entry point would run it.

Used by test_every_catalog_model.py: a real process per command line would cost ~0.3 s each, and
every catalog model through every command is ~1,000 lines per pass. Each line goes through
`willitrun.cli._run` (the lean estimate first, typer otherwise) exactly as `main()` calls it, with
stdout and stderr captured; an exception that `main()` would report as an internal error is
recorded as exit 70 with its type and message.

Input: a JSON object on stdin, {"lines": [[arg, ...], ...], "records": bool, "cold": bool}.
`records`: let the plain estimate use the pydantic-free spec classes, as `main()` does (with
WILLITRUN_RECORDS=1 in the environment a needed fallback is an error, not a rerun). `cold`: each
line gets its own empty cache directory (below WILLITRUN_CACHE_DIR). Output: a JSON list of
[exit code, stdout, stderr], one per line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys


def main() -> None:
    request = json.load(sys.stdin)
    real_out = sys.stdout
    from willitrun import cli

    base = os.environ["WILLITRUN_CACHE_DIR"]
    results = []
    for n, args in enumerate(request["lines"]):
        if request["cold"]:
            os.environ["WILLITRUN_CACHE_DIR"] = os.path.join(base, f"cold-{n}")
        out, err = io.StringIO(), io.StringIO()
        sys.argv = ["willitrun", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli._run(records=request["records"])
            except Exception as exc:  # what main() reports as an internal error
                code = 70
                err.write(f"internal error: {type(exc).__name__}: {exc}\n")
        results.append([code, out.getvalue(), err.getvalue()])
    real_out.write(json.dumps(results))


if __name__ == "__main__":
    main()
