"""Which LLAMACPP_VERSIONS key a llama.cpp log's build number belongs to (`explain`).

A llama.cpp log names its build on the line `build: NNNN (hash) with <compiler> for <target>` (common/common.cpp
`LOG_INF("build: %d (%s) ...", LLAMA_BUILD_NUMBER, LLAMA_COMMIT, ...)`); NNNN is the release tag bNNNN, the count
of commits on master. A version key starts at the pull request that changed what willitrun models (its `source`),
so the table needs the build of each such PR. The llama.cpp history is too large to fetch here, so each row holds
the first build KNOWN to carry the change and, where known, the last build known not to, each with its evidence;
a build between the two is ambiguous and gets the older key, with a note saying so. Only the rows below are
pinned; a build older than the first row is left to the log-format fallback (registry.LlamaCppEngine).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildRow:
    key: str  # a LLAMACPP_VERSIONS key
    first_with: int | None  # the first build known to carry the change (None: not pinned)
    last_without: int | None  # the last build known not to (None: not known)
    source: str


# Oldest first. Dates of builds: docker/model-runner's "bump llama.cpp" pull requests and the logs cited.
LLAMACPP_BUILD_ROWS: tuple[BuildRow, ...] = (
    BuildRow(
        "2025-11",
        7079,
        None,
        "server: 4 slots and a unified KV cache by default (PR #16736): issue #17300's llama-server log on b7079 "
        "(2025-11-16) starts 4 slots; KV padded to 256 (PR #17046, 2025-11-06); the last build without is not known",
    ),
    BuildRow(
        "2025-12",
        7539,
        7217,
        "-ngl output layer first (PR #18148, merged 2025-12-18) and --fit (PR #16653): issue #18376 runs --fit on "
        "b7539; b7217 (the calibration's Metal run of early December 2025) predates both",
    ),
    BuildRow(
        "2026-01",
        8532,
        7539,
        "V-less latent cache (PR #19067, merged 2026-01-24): b8532 is issue #20363's baseline of 2026-03-30; b7539 is "
        "of late December 2025",
    ),
    BuildRow(
        "2026-05",
        9411,
        9410,
        "DeepseekV32ForCausalLM and llama_kv_cache_dsa (PR #23346): release b9411's notes",
    ),
    BuildRow(
        "2026-07",
        10216,
        9879,
        "glm-dsa indexer cache in every layer (PR #25407, opened 2026-07-07, merged before b10216 of 2026-07-31: "
        "issue #26382); b9879 is docker/model-runner PR #1002's build of 2026-07-08",
    ),
    BuildRow(
        "current",
        None,
        10216,
        "the glm-dsa indexer cache only in the full layers (PR #26474, opened 2026-08-02, after b10216); its build is "
        "not pinned, so every later build is taken as current (only glm-dsa's indexer cache differs from 2026-07)",
    ),
)
# llama-server only: the logits of n_parallel outputs instead of n_ubatch (PR #23861, release b9460's notes).
LLAMACPP_SERVER_OUTPUTS_BUILD = 9460
LLAMACPP_SERVER_KEY = "2026-06-server"


def version_for_build(build: int, server: bool) -> tuple[str, str] | None:
    """(key, why) for a log's build number; None below the first pinned row. `server`: a llama-server log, which
    from b9460 reserves n_parallel outputs (LLAMACPP_SERVER_KEY, whose DSA caches are `current`'s)."""
    found: BuildRow | None = None
    ambiguous: BuildRow | None = None
    for row in LLAMACPP_BUILD_ROWS:
        if row.first_with is not None and build >= row.first_with:
            found, ambiguous = row, None
        elif row.first_with is None and row.last_without is not None and build > row.last_without:
            found, ambiguous = row, row  # not pinned: taken as the newer key
        elif found is not None and ambiguous is None and (row.last_without is None or build > row.last_without):
            ambiguous = row  # after the last build known without `row`'s change, before the first known with it
            break
        else:
            break
    if found is None:
        return None
    why = f"build {build}: {found.key} (" + found.source.split(":")[0] + ")"
    if ambiguous is found:
        why += f"; after b{found.last_without}, the last build known without it, its own build not pinned"
    elif ambiguous is not None:
        why += (
            f"; before b{ambiguous.first_with}, the first build known to carry {ambiguous.key}'s change, and after "
            f"its last known build without it: taken as {found.key}"
        )
    if server and build >= LLAMACPP_SERVER_OUTPUTS_BUILD and found.key in ("2026-05", "2026-07", "current"):
        why += f"; llama-server from b{LLAMACPP_SERVER_OUTPUTS_BUILD} (PR #23861)"
        if found.key != "current":  # the server key sizes glm-dsa's indexer cache as `current` does
            why += f" -- its glm-dsa indexer cache is current's, not {found.key}'s"
        return LLAMACPP_SERVER_KEY, why
    return found.key, why


__all__ = ["LLAMACPP_BUILD_ROWS", "BuildRow", "version_for_build"]
