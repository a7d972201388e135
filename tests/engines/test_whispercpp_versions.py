"""whisper.cpp release lines and decoder counts: each expected number is worked out by hand from the
source line or log named next to it (ggml-org/whisper.cpp at the tag; logs in calibration_extra.yaml)."""

from __future__ import annotations

import pytest

from willitrun import load_catalog
from willitrun.engines import WhisperCppOptions, engine_estimate
from willitrun.engines.whispercpp import decoder_count, whispercpp_version
from willitrun.errors import UsageError
from willitrun.memory import Request

MiB = 1 << 20


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def est(catalog, model="whisper-large-v3", req=None, **opts):
    return engine_estimate(catalog.resolve("model", model), req or Request(), "whisper.cpp", WhisperCppOptions(**opts))


# --------------------------------------------------------------------------------------------------
# The caches per release line (large: 32 text layers x 1280, f16 = 2 B, K and V)
# --------------------------------------------------------------------------------------------------
PER_CELL = 32 * 1280 * 2 * 2  # 163,840 B per self cell or cross frame


@pytest.mark.parametrize(
    ("version", "self_cells", "cross_frames", "kv_pad"),
    [
        # v1.5.4 whisper.cpp:3008 `factor = 3` x n_text_ctx 448; kv_cross n_audio_ctx 1500; no kv_pad
        ("1.5", 3 * 448, 1500, False),
        ("1.5.5", 3 * 448, 1500, False),  # v1.5.5 whisper.cpp:3187, the same caches under ggml_gallocr
        # v1.6.0 whisper.cpp:3251 GGML_PAD(448, 256) x 3 = 1536; GGML_PAD(1500, 256) = 1536; kv_pad added (#2152)
        ("1.6", 1536, 1536, True),
        # v1.7.0 (#2443): one decoder's GGML_PAD(448, 256) = 512 at start-up
        ("1.7", 512, 1536, True),
        ("v1.8.2", 512, 1536, True),
        ("latest", 512, 1536, True),
    ],
)
def test_caches_per_version(catalog, version, self_cells, cross_frames, kv_pad):
    e = est(catalog, version=version, decoders=1, flash_attn=False)
    assert e.find("kv self").bytes == self_cells * PER_CELL
    assert e.find("kv cross").bytes == cross_frames * PER_CELL
    assert any(b.name == "kv pad" for b in e.buffers) is kv_pad


def test_v15_caches_match_the_printed_mb(catalog):
    # whisper.cpp #1759 (small, v1.5): "kv self size = 49.55 MB", "kv cross size = 55.30 MB"
    e = est(catalog, "whisper-small", version="1.5", decoders=1)
    assert e.find("kv self").bytes == 12 * 768 * 4 * 1344 == 49_545_216  # 49.55 MB
    assert e.find("kv cross").bytes == 12 * 768 * 4 * 1500 == 55_296_000  # 55.30 MB


def test_v17_pr2443_beam5_oom_was_560_mib(catalog):
    # PR #2443 log (large-v3, beam 5): "allocating 560.00 MiB ... cudaMalloc failed" = (5 + 2) x 80 MiB
    e = est(catalog, req=Request(beams=5), version="1.7", temperature_fallback=False)
    assert e.find("kv self").bytes == 560 * MiB


def test_v15_v16_caches_do_not_follow_the_decoders(catalog):
    for version in ("1.5", "1.6"):
        one = est(catalog, version=version, decoders=1)
        eight = est(catalog, version=version, beam_size=8, temperature_fallback=False)
        assert one.find("kv self").bytes == eight.find("kv self").bytes


# --------------------------------------------------------------------------------------------------
# How many decoders (whisper_full_with_state per temperature step; whisper-cli flags)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("beam", "best_of", "fallback", "first", "on_fallback", "peak"),
    [
        (5, 5, True, 5, 5, 5),  # whisper-cli defaults -bs 5 -bo 5
        (1, 5, True, 1, 5, 5),  # -bs 1: greedy first pass, best_of 5 decoders when a segment falls back
        (1, 5, False, 1, 0, 1),  # -bs 1 -nf: temperature_inc 0, no fallback
        (1, 1, True, 1, 1, 1),  # -bs 1 -bo 1
        (8, 5, False, 8, 0, 8),  # -bs 8 -nf
        (2, 6, True, 2, 6, 6),  # fallback decoders outnumber the beams
    ],
)
def test_decoder_count(beam, best_of, fallback, first, on_fallback, peak):
    d = decoder_count(beam, best_of, fallback)
    assert (d.first_pass, d.fallback, d.peak) == (first, on_fallback, peak)


def test_more_than_eight_decoders_is_refused():
    # whisper_full: max(best_of, beam_size) > WHISPER_MAX_DECODERS (8) -> "too many decoders requested",
    # even with --no-fallback (the check runs before the temperatures)
    with pytest.raises(UsageError, match="8"):
        decoder_count(2, 9, False)
    with pytest.raises(UsageError):
        WhisperCppOptions(beam_size=9)


def test_beams_1_no_fallback_gives_one_decoder(catalog):
    # the case: --beams 1 used to size kv self for 5 decoders; with --no-fallback it is 512 cells
    e = est(catalog, req=Request(beams=1), temperature_fallback=False)
    assert e.facts["decoders"] == 1 and e.facts["kv_self_cells"] == 512
    grown = est(catalog, req=Request(beams=1))  # a fallback grows it to (5 + 2) x 512, never shrunk
    assert grown.facts["decoders_first_pass"] == 1 and grown.facts["decoders"] == 5
    assert grown.facts["kv_self_cells"] == 7 * 512
    assert any("first temperature fallback" in n for n in grown.notes)


def test_beam_size_option_overrides_the_request(catalog):
    e = est(catalog, req=Request(beams=1), beam_size=3, best_of=1)
    assert e.facts["decoders"] == 3 and e.facts["kv_self_cells"] == 5 * 512


# --------------------------------------------------------------------------------------------------
# Compute buffers: reserved once for one 448-token sequence, whatever the decoders
# --------------------------------------------------------------------------------------------------
def test_compute_buffers_do_not_grow_with_decoders(catalog):
    one = est(catalog, decoders=1, flash_attn=False)
    eight = est(catalog, beam_size=8, best_of=8, flash_attn=False)
    for graph in ("conv", "encode", "cross", "decode"):
        name = f"compute buffer ({graph})"
        assert one.find(name).bytes == eight.find(name).bytes


def test_v15_compute_buffers_by_hand(catalog):
    # dsnote #137 (tiny.en, v1.5): conv 12.17, encode 64.92, cross 4.01, decode 96.02 MB, each with
    # 1,704,080 B of graph metadata (4096 x 400 + 65,680: ggml.h at v1.5.4)
    spec = catalog.resolve("model", "whisper-tiny")
    spec = spec.model_copy(update={"config": spec.config.model_copy(update={"vocab_size": 51864})})
    e = engine_estimate(spec, Request(), "whisper.cpp", WhisperCppOptions(version="1.5", decoders=1))
    meta = 4096 * 400 + 65_680
    assert e.facts["graph_meta_bytes"] == meta == 1_704_080
    conv = 4 * 3000 * 80 + 2 * 3000 * 240 + 4 * 3000 * 384 + 2 * 1500 * 3 * 384  # mel, im2col1, conv1, im2col2
    assert e.find("compute buffer (conv)").bytes + meta == conv + meta == 12_168_080
    assert e.find("compute buffer (encode)").bytes + meta == 4 * 6 * 1500**2 + 4 * 4 * 1500 * 384 + meta  # 64.92 MB
    assert e.find("compute buffer (cross)").bytes + meta == 4 * 1500 * 384 + meta == 4_008_080  # 4.01 MB
    # decode: logits 4 B x 51,864 x 448 + 2 x (4 B x 448 x 384); the KQ mask is freed before the logits
    assert e.find("compute buffer (decode)").bytes + meta == 4 * 51864 * 448 + 2 * 4 * 448 * 384 + meta == 96_020_624
    assert not any(b.name == "mel input (host)" for b in e.buffers)  # ggml_allocr: the mel lives in the GPU graph


def test_v16_decode_mask_spans_the_3x_cache(catalog):
    # v1.6.0 whisper.cpp:2364 KQ_mask [n_kv, GGML_PAD(448, 32)] with n_kv = kv_self.size = 1536 at reservation
    v16 = est(catalog, version="1.6", decoders=1, flash_attn=False)
    v17 = est(catalog, version="1.7", decoders=1, flash_attn=False)
    assert (
        v16.find("compute buffer (decode)").bytes - v17.find("compute buffer (decode)").bytes == 4 * (1536 - 512) * 448
    )


# --------------------------------------------------------------------------------------------------
# Versions and flash attention
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "flash"), [("1.6", False), ("1.7", False), ("1.8", True), ("latest", True)])
def test_flash_attention_default_follows_the_version(catalog, version, flash):
    # whisper-cli: flash_attn = false in v1.6.0 .. v1.7.6, true from v1.8.0 (#3441)
    assert est(catalog, version=version, decoders=1).facts["flash_attn"] is flash


def test_v15_has_no_flash_attention():
    with pytest.raises(UsageError, match=r"v1\.6\.0"):
        WhisperCppOptions(version="1.5", flash_attn=True)


@pytest.mark.parametrize("bad", ["1.4", "2", "abc", "1.4.3"])
def test_unknown_versions_are_refused(bad):
    with pytest.raises(UsageError, match=r"1\.5, 1\.5\.5, 1\.6, 1\.7, 1\.8"):
        whispercpp_version(bad)


@pytest.mark.parametrize(
    ("given", "line"),
    [("1.7.4", "1.7"), ("v1.5.4", "1.5"), ("v1.5.5", "1.5.5"), ("1.6", "1.6"), ("1.9.0", "1.8"), ("LATEST", "1.8")],
)
def test_version_spellings(given, line):
    assert whispercpp_version(given).name == line


def test_gallocr_lines_say_their_compute_is_not_calibrated(catalog):
    for version in ("1.5.5", "1.6"):
        assert any("not calibrated" in n for n in est(catalog, version=version, decoders=1).notes)
    assert not any("#2443" in n for n in est(catalog, version="1.7", decoders=1).notes)
