"""A llama.cpp log's build number picks its LLAMACPP_VERSIONS key (engines/llamacpp_builds.py), as `explain`
reads it; the rows' evidence is in LLAMACPP_BUILD_ROWS."""

from __future__ import annotations

from pathlib import Path

import pytest

from willitrun.engines.llamacpp import LLAMACPP_VERSIONS
from willitrun.engines.llamacpp_builds import LLAMACPP_BUILD_ROWS, version_for_build
from willitrun.engines.logs import read_log
from willitrun.engines.registry import engine_class

DATA = Path(__file__).parent / "data"


def test_rows_name_real_keys_in_order():
    keys = list(LLAMACPP_VERSIONS)
    assert all(r.key in keys for r in LLAMACPP_BUILD_ROWS)
    assert [keys.index(r.key) for r in LLAMACPP_BUILD_ROWS] == sorted(keys.index(r.key) for r in LLAMACPP_BUILD_ROWS)
    firsts = [r.first_with for r in LLAMACPP_BUILD_ROWS if r.first_with is not None]
    assert firsts == sorted(firsts)
    for r in LLAMACPP_BUILD_ROWS:  # the last build known without a change comes before the first known with it
        assert r.first_with is None or r.last_without is None or r.last_without < r.first_with


@pytest.mark.parametrize(
    ("build", "server", "key", "ambiguous"),
    [
        (7079, True, "2025-11", False),  # issue #17300's llama-server: 4 slots, unified cache
        (7217, False, "2025-11", False),  # the calibration's Metal run, early December 2025
        (7400, False, "2025-11", True),  # between b7217 (without PR #18148) and b7539 (with it)
        (7539, False, "2025-12", False),  # issue #18376 runs --fit
        (8643, False, "2026-01", False),  # 2026-04-03 (issue cited in engines/llamacpp.py)
        (9411, False, "2026-05", False),  # release b9411: PR #23346
        (9459, True, "2026-05", False),  # the build before PR #23861's b9460
        (9460, True, "2026-06-server", False),
        (9460, False, "2026-05", False),  # llama-cli keeps n_ubatch outputs
        (10216, False, "2026-07", False),  # issue #26382's build
        (10472, False, "current", True),  # PR #26474's build is not pinned
    ],
)
def test_build_to_key(build, server, key, ambiguous):
    got = version_for_build(build, server)
    assert got is not None and got[0] == key
    assert ("not pinned" in got[1] or "taken as" in got[1]) == ambiguous


def test_below_the_first_row_is_left_to_the_log_format():
    assert version_for_build(6895, True) is None


def test_real_log_headers_through_explain():
    """tools/fit-params/README.md's llama-server run prints `build: 6895 (4341dc8bc)`: below every pinned row, the
    log format decides (2025+ -> current) as before. unslothai/unsloth PR #7530 measured on llama-server build 10107
    (857c97607), written out below: after b9879 (without PR #25407) and before b10216 (with it), so the older key, and llama-server's
    from b9460."""
    run = read_log((DATA / "llamacpp-fit-params-readme-rtx4090.log").read_text())
    assert run is not None and run.facts["build"] == 6895
    settings: dict = {}
    o = engine_class("llama.cpp").options_from_log(run.facts, None, None, settings)
    assert o.version == "current" and settings["llamacpp_version"]["from"].startswith("log format")

    # Written in llama.cpp's format (common.cpp `build: %d (%s)`, server-context.cpp `initializing slots, n_slots =
    # %d`) with the build, hash and slot count PR #7530 states; the PR quotes no log lines.
    header = [
        "build: 10107 (857c97607) with cc for x86_64-linux-gnu",
        "srv    load_model: initializing slots, n_slots = 4",
    ]
    run = read_log("\n".join(header))
    assert run is not None and run.facts["build"] == 10107
    settings = {}
    o = engine_class("llama.cpp").options_from_log(run.facts, None, None, settings)
    assert o.version == "2026-06-server"
    assert (
        "build 10107" in settings["llamacpp_version"]["from"]
        and "taken as 2026-05" in settings["llamacpp_version"]["from"]
    )
    # a version given by the user wins over the build
    assert engine_class("llama.cpp").options_from_log(run.facts, "2025-12", None, {}).version == "2025-12"


def test_2026_build_info_lines():
    """2026 builds print `build_info: bNNNN-hash`. Lines of a llama-server start-up pasted in a tutorial (search-index
    file id 53537166506: Phi-3.1-mini-4k Q4_K_M on a CPU, b8833) and of docker model-runner's bundled llama-server
    (file id 62168197661: phi4-mini on two Radeon cards over Vulkan), whose git-less build prints b1."""
    tutorial = read_log(
        "\n".join(
            [
                "main: n_parallel is set to auto, using n_parallel = 4 and kv_unified = true",
                "build_info: b8833-45cac7ca7",
                "llama_kv_cache: size = 1536.00 MiB (  4096 cells,  32 layers,  4/1 seqs), K (f16):  768.00 MiB, "
                "V (f16):  768.00 MiB",
            ]
        )
    )
    assert tutorial is not None and tutorial.facts["build"] == 8833 and tutorial.facts["n_slots"] == 4
    settings: dict = {}
    assert engine_class("llama.cpp").options_from_log(tutorial.facts, None, None, settings).version == "2026-01"
    docker = read_log(
        "\n".join(
            [
                "main: n_parallel is set to auto, using n_parallel = 4 and kv_unified = true",
                "build_info: b1-e365e65",
                "llama_kv_cache: size =  256.00 MiB (  2048 cells,  32 layers,  4/1 seqs), K (f16):  128.00 MiB, "
                "V (f16):  128.00 MiB",
            ]
        )
    )
    assert docker is not None and "build" not in docker.facts
