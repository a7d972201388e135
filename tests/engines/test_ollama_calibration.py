"""ollama as it ships: its defaults checked against its own logs, its multi-GPU placement and its vision
models' fit target against its source (ollama/ollama fb30760, 2026-08-21, and the tags named).

The buffers of the ollama entries of tests/engines/data/calibration_extra.yaml are asserted by
test_calibration.py; here: that the profile arrives at the settings each log shows (context cells, flash
attention) from ollama's own rules, not from the log."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from typer.testing import CliRunner

from tests.engines.calibration import EXTRA, ollama_entry_estimate
from willitrun import load_catalog
from willitrun.cli import app
from willitrun.engines import engine_estimate
from willitrun.engines.ollama import (
    MMPROJ_OFFLOAD_HEADROOM_BYTES,
    OLLAMA_RELEASES,
    OllamaOptions,
    ollama_gpus,
    ollama_predicted_vram,
)
from willitrun.memory import Request

MiB, GiB = 1 << 20, 1 << 30
CATALOG = load_catalog()
ENTRIES = [e for e in yaml.safe_load(EXTRA.read_text())["entries"] if e["engine"] == "ollama"]


def test_there_are_ollama_entries_of_several_release_lines():
    assert len(ENTRIES) >= 5
    assert {e["options"]["release"] for e in ENTRIES} >= {"0.6", "0.15", "0.30"}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_the_profile_picks_the_context_and_flash_attention_the_log_shows(entry):
    """num_ctx from the release's default (VRAM tier or 4096) x its default parallelism, flash attention from
    the release's rule for the architecture: each compared with what llama.cpp printed under ollama."""
    est = ollama_entry_estimate(entry, CATALOG)
    assert est.n_ctx == entry["log_n_ctx"]
    if entry["log_flash_attn"] is not None:
        assert est.facts["flash_attn"] is entry["log_flash_attn"]
    assert est.facts["n_ubatch"] == entry.get("log_n_ubatch", 512)


def test_the_default_parallelism_follows_the_release():
    """server/sched.go defaultParallel: 2 in v0.6.7-v0.9.6 (PR #10468; ollama 0.7.0 logs --parallel 2), 1 from
    v0.10.0 (PR #11330)."""
    spec = CATALOG.resolve("model", "llama-2-7b")
    assert [OLLAMA_RELEASES[k].default_parallel for k in ("0.6", "0.10", "0.13", "0.15", "0.30")] == [2, 1, 1, 1, 1]
    old = engine_estimate(spec, Request(dtype="q4_0"), "ollama", OllamaOptions(release="0.6", version="2024-05"))
    assert (old.facts["num_parallel"], old.n_ctx) == (2, 8192)
    told = engine_estimate(spec, Request(dtype="q4_0"), "ollama", OllamaOptions(release="0.6", num_parallel=1))
    assert told.facts["num_parallel"] == 1


def test_the_go_engine_architectures_keep_the_list_before_0_30():
    """v0.13.4-v0.29: FlashAttention:Auto only for the llama runner; gemma3 (OllamaEngineRequired) runs in the
    Go engine with fs/ggml/ggml.go FlashAttention(), where gemma3 is listed, and mistral (llama arch) is not."""
    gemma = CATALOG.resolve("model", "gemma-3-4b-text")
    e = engine_estimate(gemma, Request(dtype="q4_k_m", context=4096), "ollama", OllamaOptions(release="0.15"))
    assert e.facts["flash_attn"] is True
    assert any("own Go engine" in n for n in e.notes)


# -- several GPUs ------------------------------------------------------------------------------------


def test_a_model_that_fits_80_percent_of_one_card_stays_on_one():
    """server/sched.go bestSingleGPUFit: `predictedVRAM > candidateAvailable*80/100` skips a card; the file and
    f16 cache of llama-3.1-8b q4_k_m at 4096 (about 5 GiB) fit one 24 GiB card."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    opt = OllamaOptions(vram_bytes=24 * GiB, gpus=2, num_ctx=4096)
    e = engine_estimate(spec, Request(), "ollama", opt)
    assert e.facts["ollama_gpus"] == 1
    assert not any(b.name.endswith("(CUDA1)") for b in e.buffers)
    assert [b.device for b in e.buffers if b.name == "ollama minimum free memory"] == [0]
    spread = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB, gpus=2, sched_spread=True))
    assert spread.facts["ollama_gpus"] == 2


def test_a_model_above_80_percent_of_one_card_is_spread():
    spec = CATALOG.resolve("model", "llama-3.1-70b")
    req = Request(dtype="q4_k_m", context=8192)
    opt = OllamaOptions(vram_bytes=24 * GiB, gpus=2)
    predicted = ollama_predicted_vram(spec, req, 8192)
    assert predicted > 0.8 * 24 * GiB
    n, why = ollama_gpus(spec, req, opt, OLLAMA_RELEASES["0.30"], 8192)
    assert n == 2 and "80 %" in why
    e = engine_estimate(spec, req, "ollama", opt)
    assert e.find("model buffer (CUDA1)").bytes > 0
    assert [b.device for b in e.buffers if b.name == "ollama minimum free memory"] == [0, 1]


def test_predicted_vram_is_ollamas_formula():
    """llm/llama_server.go PredictServerVRAM: file size + 2 x layers x kv_heads x (embd / heads) x ctx x 2 B;
    llama-3.1-8b: 32 layers, 8 KV heads, 4096 / 32 = 128: 131072 B per cell."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    req = Request(dtype="q4_k_m")
    assert ollama_predicted_vram(spec, req, 8192) - ollama_predicted_vram(spec, req, 4096) == 4096 * 131072


def test_the_vram_tier_counts_every_card():
    """server/routes.go: the default num_ctx tier is chosen on the sum of all GPUs' memory: 2 x 24 GiB is 48 GiB,
    the >= 47 GiB tier (262144, lowered to llama-3.1-8b's trained 131072)."""
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    one = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB))
    two = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB, gpus=2))
    assert (one.context_tokens, two.context_tokens) == (32768, 131072)


def _json(*args: str) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.output)


def test_two_cards_on_the_command_line_reach_the_placement_and_the_launch_line():
    d = _json("llama-3.1-70b", "--gpu", "2xrtx3090", "--engine", "ollama", "--context", "8192")
    assert d["engine_facts"]["ollama_gpus"] == 2
    argv = d["launch"]
    assert "CUDA_VISIBLE_DEVICES=0,1" in argv and argv[-2:] == ["ollama", "serve"]
    assert shlex.split(shlex.join(argv)) == argv


# -- vision models ------------------------------------------------------------------------------------


def test_gemma3_vision_weighs_its_projector_and_raises_the_fit_target():
    """v0.30+ (llm/llama_server.go NewLlamaServerRunner): gemma3's inline v./mm. tensors are passed as
    --mmproj MODEL; LLAMA_ARG_FIT_TARGET = ceil((projector + 1 GiB) / MiB) (mmprojFitTargetMiB)."""
    from willitrun.engines.llamacpp import mmproj_file_bytes

    spec = CATALOG.resolve("model", "gemma-3-4b")
    e = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB))
    projector = mmproj_file_bytes(spec)  # mmprojMemoryRequirement: the tensors' bytes, unaligned
    assert e.find("mmproj (gemma3)").bytes >= projector > 500 * MiB
    assert e.find("mmproj (gemma3)").placement == "gpu"
    assert e.find("CLIP compute buffer").bytes > 0
    assert e.facts["fit_target_bytes"] == -(-(projector + MMPROJ_OFFLOAD_HEADROOM_BYTES) // MiB) * MiB
    text = engine_estimate(CATALOG.resolve("model", "gemma-3-4b-text"), Request(), "ollama", OllamaOptions())
    assert text.facts["fit_target_bytes"] == 1024 * MiB  # no projector: llama-server's own 1024 MiB
    small = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=projector))
    assert small.facts["fit_target_bytes"] == 1024 * MiB  # "limited-vram": --no-mmproj-offload, no extra target
    assert small.find("mmproj (gemma3)").placement == "host"
    partial = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB, num_gpu=10))
    assert partial.find("mmproj (gemma3)").placement == "host"  # "partial-text-offload"


def test_before_0_30_ollama_packs_onto_as_few_cards_as_hold_the_model():
    """llm/memory.go pickBestFullFitByLibrary (v0.12.0): 'Try to pack into as few GPUs as possible, starting from
    1 GPU' with the whole estimate; llama-3.1-70b q4_k_m at 8192 needs two 24 GiB cards of four."""
    spec = CATALOG.resolve("model", "llama-3.1-70b")
    req = Request(dtype="q4_k_m", context=8192)
    e = engine_estimate(spec, req, "ollama", OllamaOptions(vram_bytes=24 * GiB, gpus=4, release="0.10"))
    assert e.facts["ollama_gpus"] == 2
    small = engine_estimate(
        CATALOG.resolve("model", "llama-3.1-8b"),
        req,
        "ollama",
        OllamaOptions(vram_bytes=24 * GiB, gpus=4, release="0.10"),
    )
    assert small.facts["ollama_gpus"] == 1


def test_v0_30_raises_the_batch_by_context_and_headroom():
    """server/sched.go automaticGenerationBatch (ollama#16031): ollama 0.33.2 started llama-server with
    `-c 8192 -np 2 ... -b 1024 -ub 1024` (16384 cells; search-index file id 59785994622); a 24 GiB card with
    llama-3.1-8b q4_k_m at the 32768 tier gets 1024, a crowded card 512, and flash attention off 512."""
    from willitrun.engines.ollama import ollama_generation_batch

    assert ollama_generation_batch(16384, 3 * GiB, None, True) == 1024
    assert ollama_generation_batch(4096, 3 * GiB, 24 * GiB, True) == 512
    assert ollama_generation_batch(65536, 3 * GiB, 24 * GiB, True) == 2048
    assert ollama_generation_batch(65536, 16 * GiB, 24 * GiB, True) == 1024  # 67 %: 2048 needs 60 %
    assert ollama_generation_batch(65536, int(18.5 * GiB), 24 * GiB, True) == 512  # 77 %: 1024 needs 75 %
    assert ollama_generation_batch(65536, 3 * GiB, 24 * GiB, False) == 512
    spec = CATALOG.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB))
    assert e.facts["n_ubatch"] == 1024
    told = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB, num_batch=512))
    assert told.facts["n_ubatch"] == 512
    old = engine_estimate(spec, Request(), "ollama", OllamaOptions(vram_bytes=24 * GiB, release="0.15"))
    assert old.facts["n_ubatch"] == 512


def test_the_log_reader_keeps_llama_cpps_lines_over_ollamas_estimate():
    """ollama 0.17.0's llama runner prints its estimate ("compute graph" 2.0 GiB) before llama.cpp allocates
    108.01 MiB: explain reads llama.cpp's lines; v0.30's spawn line gives -c / -np / -ub."""
    from willitrun.engines.logs import OllamaLog

    by_id = {e["id"]: e for e in ENTRIES}
    phi3 = OllamaLog.read(by_id["ollama-0.17.0-phi3-mini-128k-q4_0-metal-m4-ctx32768"]["excerpt"])
    compute = [b.bytes for b in phi3.buffers if b.kind == "compute" and b.placement == "gpu"]
    assert compute == [round(108.01 * MiB)]
    ds = OllamaLog.read(by_id["ollama-0.32.13-deepseek-coder-v2-lite-q5km-cuda-ctx2048"]["excerpt"])
    assert (ds.facts["n_ctx"], ds.facts["n_seq_max"], ds.facts["n_ubatch"]) == (2048, 1, 512)
