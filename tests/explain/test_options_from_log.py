"""Each engine class reads its own options from a start-up log's facts (Engine.options_from_log), as
`explain` asks them; the facts here are the keys engines/logs.py's readers state."""

from __future__ import annotations

from willitrun.engines.registry import engine_class


def test_llamacpp_reads_its_settings_and_the_version_from_the_log_era():
    settings: dict = {}
    facts = {"n_ubatch": 256, "flash_attn": True, "n_seq_max": 4, "layers_offloaded": 20, "log_era": "2024"}
    o = engine_class("llama.cpp").options_from_log(facts, None, None, settings)
    assert (o.n_ubatch, o.flash_attn, o.parallel, o.gpu_layers, o.version) == (256, True, 4, 20, "2024-05")
    assert settings["llamacpp_version"] == {"value": "2024-05", "from": "log format (2024)"}
    assert settings["n_ubatch"] == {"value": 256, "from": "log"}
    given = engine_class("llama.cpp").options_from_log({"n_seq_max": 1, "flash_attn": "yes"}, "current", None, {})
    assert given.parallel is None and given.flash_attn is None  # one sequence is the default; a non-bool is ignored


def test_ollama_vllm_whisper_and_the_rest():
    settings: dict = {}
    o = engine_class("ollama").options_from_log({"n_ctx": 8192, "n_gpu_layers": 33}, None, 24 << 30, settings)
    assert (o.num_ctx, o.num_gpu, o.vram_bytes) == (8192, 33, 24 << 30) and settings["num_gpu"]["from"] == "log"
    settings = {}
    v = engine_class("vllm").options_from_log(
        {"max_model_len": 4096, "gpu_memory_utilization": "0.8"}, None, 80 << 30, settings
    )
    assert (v.max_model_len, v.gpu_memory_utilization, v.total_memory_bytes) == (4096, 0.8, 80 << 30)
    assert settings["total_memory_bytes"]["from"] == "the card"
    w = engine_class("whisper.cpp").options_from_log({"flash_attn": False}, None, None, {})
    assert (w.decoders, w.flash_attn) == (1, False)
    assert engine_class("transformers").options_from_log({}, None, None, {}) is None
