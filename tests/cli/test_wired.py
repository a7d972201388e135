"""The CLI over the speech engines, vision video tokens, mixture-of-experts and state-space models:
exit codes first, then the lines that carry the answer."""

import json

from typer.testing import CliRunner

from willitrun.cli import app

runner = CliRunner()
MiB = 1 << 20


def run(*args):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def as_json(*args):
    r = run(*args, "--json")
    return r.exit_code, json.loads(r.stdout)


# ---- mixture of experts ----------------------------------------------------------------------------
def test_qwen3_moe_q4_does_not_fit_16gb_and_kv_is_hand_checkable():
    # at -c 4096: without a context llama.cpp's --fit keeps the experts of some layers on the host and fits
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "-c", "4096")
    assert code == 1 and d["engine"] == "llama.cpp" and not d["fits"]
    # Qwen3-30B-A3B config.json: 48 layers, 4 KV heads x head_dim 128; f16 K and V at 4,096 cells:
    # 48 x 2 x 512 x 4096 x 2 B = 384 MiB
    kv = next(b for b in d["buffers"] if b["name"] == "KV cache (CUDA0)")
    assert kv["bytes"] == 48 * 2 * 512 * 4096 * 2 == 384 * MiB


def test_a_moe_model_that_does_not_fit_is_told_the_fewest_n_cpu_moe():
    c = ("-c", "4096")  # a context given: no --fit plan of the build's own, willitrun's expert offload search
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", *c)
    n = d["expert_offload"]["n_cpu_moe"]
    assert code == 1 and 0 < n < 48
    assert as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", str(n), *c)[0] == 0
    assert as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", str(n - 1), *c)[0] == 1
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", *c)
    assert f"try --n-cpu-moe {n} (the experts of layers 0..{n - 1} in host memory)" in r.stdout
    # without a context the build's --fit does the same by itself (its target: 1 GiB kept free), and fits
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m")
    moe = d["engine_facts"]["fit_n_cpu_moe"]
    assert code == 0 and moe >= n and f"(--n-cpu-moe {moe})" in d["verdict_how"]


def test_n_cpu_moe_makes_it_fit_and_moves_experts_to_host():
    code, plain = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m")
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", "10")
    assert code == 0 and d["fits"]
    assert d["host_bytes"] > plain["host_bytes"] and d["max_device_bytes"] < plain["max_device_bytes"]
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", "10")
    assert r.exit_code == 0 and "FITS" in r.stdout and "layers 0..9 stay in host memory" in r.stdout


def test_cpu_moe_is_every_layer():
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--cpu-moe")
    assert r.exit_code == 0
    # names the flag given (not the --n-cpu-moe 48 it stands for); 48 layers (config.json)
    assert "--cpu-moe: the expert tensors of every layer (0..47)" in r.stdout
    assert "--n-cpu-moe" not in r.stdout


def test_expert_offload_on_ollama_is_refused_naming_llamacpp():
    """ollama has no such option (engines/ollama.py expert_offload_refusal): one line, exit 2."""
    for flag in (["--n-cpu-moe", "4"], ["--cpu-moe"]):
        r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--engine", "ollama", *flag)
        assert r.exit_code == 2
        assert f"{flag[0]} is llama.cpp's: ollama has no expert-offload option" in r.output
        assert "Use --engine llama.cpp" in r.output and len(r.output.strip().splitlines()) == 1
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "fp16", "--cpu-moe")
    assert r.exit_code == 2 and "--cpu-moe applies to llama.cpp" in r.output and "--n-cpu-moe" not in r.output


def test_n_cpu_moe_refused_on_dense_and_on_other_engines():
    r = run("llama-2-7b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", "4")
    assert r.exit_code == 2 and "no experts" in r.output
    r = run("llama-2-7b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--cpu-moe")
    assert r.exit_code == 2 and "--cpu-moe applies to mixture-of-experts models" in r.output
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--n-cpu-moe", "4")
    assert r.exit_code == 2 and "--n-cpu-moe applies to llama.cpp" in r.output
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", "4", "--cpu-moe")
    assert r.exit_code == 2 and "not both" in r.output


def test_n_cpu_moe_speed_reads_only_routed_experts_from_system_memory():
    code, d = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--n-cpu-moe", "10", "--speed")
    assert code == 0
    terms = {t["where"]: t for t in d["decode_speed"]["terms"]}
    assert set(terms) == {"gpu", "system memory"}
    assert terms["system memory"]["bandwidth_bytes_s"] == 89_600_000_000  # dual-channel DDR5-5600
    # 8 of 128 experts in 10 layers: far less than the 10 layers' expert tensors themselves
    assert terms["system memory"]["bytes"] < (d["host_bytes"] - 0) / 8


def test_active_parameters_shown_next_to_the_total():
    code, d = as_json("qwen3-30b-a3b", "--gpu", "h100", "--dtype", "bf16")
    assert d["active_parameters"] < d["parameters"]
    r = run("qwen3-30b-a3b", "--gpu", "h100", "--dtype", "bf16")
    assert f"active per token: {d['active_parameters']:,}" in r.stdout
    code, dense = as_json("llama-2-7b", "--gpu", "h100")
    assert code == 0
    assert dense["active_parameters"] == dense["parameters"]
    assert "active per token" not in run("llama-2-7b", "--gpu", "h100").stdout


def test_deepseek_v3_latent_kv_on_vllm_and_llamacpp():
    # DeepSeek-V3 config.json: 61 layers, kv_lora_rank 512 + qk_rope_head_dim 64 cached per token (MLA):
    # 61 x 576 x 2 B (f16) = 70,272 B per token, not 61 x 128 heads x (192 + 128) x 2 B
    r = run("deepseek-v3", "--gpu", "8xh200", "--engine", "vllm")
    assert r.exit_code == 0, r.output
    assert "8 x NVIDIA H200" in r.stdout and "TP 8" in r.stdout
    assert "70272 B per token" in r.stdout
    assert 61 * (512 + 64) * 2 == 70_272
    r = run("deepseek-v3", "--gpu", "8xh200", "--dtype", "q4_k_m")
    assert r.exit_code == 0, r.output
    assert "(512 + 64 K latent; no V: PR #19067)" in r.stdout  # llama.cpp since 2026-01-24: K only
    r = run("deepseek-v3", "--gpu", "8xh200", "--dtype", "q4_k_m", "--llamacpp-version", "2025-11")
    assert r.exit_code == 0 and "(512 + 64 K + 512 V latent)" in r.stdout
    r = run("deepseek-v3", "--gpu", "8xh200", "--engine", "vllm", "-tp", "4")
    assert r.exit_code == 2 and "8 cards" in r.output


# ---- state-space models --------------------------------------------------------------------------
def test_mamba_context_is_not_bounded_by_memory():
    r = run("mamba-2.8b", "--gpu", "rtx3060")
    assert r.exit_code == 0, r.output
    assert "recurrent state (conv + SSM)" in r.stdout
    assert "memory does not bound the context" in r.stdout
    assert "Largest context that fits" not in r.stdout


def test_state_bytes_in_json_and_parts_add_up():
    code, d = as_json("mamba-2.8b", "--gpu", "rtx3060")
    assert code == 0 and d["memory_bounds_context"] is False
    # Mamba 2.8B: 64 layers x (d_inner 5120 x (d_conv 4 + d_state 16)) = 6,553,600 fp32 elements
    assert d["state_bytes"] == 64 * 5120 * (4 + 16) * 4
    parts = (
        d["weights_bytes"]
        + d["kv_self_bytes"]
        + d["kv_cross_bytes"]
        + d["state_bytes"]
        + d["activations_bytes"]
        + d["overhead_bytes"]
    )
    assert parts == d["total_bytes"]
    assert sum(b["bytes"] for b in d["buffers"]) == d["total_bytes"]


def test_jamba_kv_counts_only_its_attention_layers():
    code, d = as_json("jamba-mini-1.5", "--gpu", "h100")
    assert code == 1  # 51.6B parameters in bf16 (97.20 GiB) do not fit 80 GB
    # Jamba 1.5 Mini: 4 attention layers (of 32) x 8 KV heads x 128 x 2 (K, V) x 2 B (bf16) = 16,384 B per token
    assert d["kv_self_layers"] == 4
    assert d["kv_self_bytes"] == 16_384 * 4096
    assert d["state_bytes"] > 0


# ---- speech engines ------------------------------------------------------------------------------
def test_faster_whisper_alias_and_options():
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--engine", "faster-whisper", "--compute-type", "int8_float16")
    assert r.exit_code == 0, r.output
    assert "with ctranslate2" in r.stdout
    code, f16 = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "ctranslate2")
    code, i8 = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "ctranslate2", "--compute-type", "int8")
    assert i8["total_bytes"] < f16["total_bytes"]
    code, nf = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "ctranslate2", "--no-fallback")
    assert code == 0
    assert nf["total_bytes"] < f16["total_bytes"]  # no best_of copies at a fallback temperature


def test_whisper_cpp_version_best_of_and_beams():
    code, old = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp", "--whisper-version", "1.5")
    assert code == 0 and old["engine"] == "whisper.cpp"
    code, bo = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp", "--best-of", "2")
    code, latest = as_json("whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp")
    assert bo["total_bytes"] <= latest["total_bytes"]
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp", "--beams", "9")
    assert r.exit_code == 2 and "1 to 8 decoders" in r.output


def test_speech_options_name_their_engines():
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--compute-type", "int8")
    assert r.exit_code == 2 and "--compute-type applies to ctranslate2; add --engine ctranslate2" in r.output
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--best-of", "3")
    assert r.exit_code == 2 and "whisper.cpp or ctranslate2" in r.output
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--engine", "whisper.cpp", "--cuda", "11")
    assert r.exit_code == 2 and "only to ctranslate2" in r.output
    r = run("whisper-large-v3", "--gpu", "rtx3060", "--engine", "ctranslate2", "--cuda", "10")
    assert r.exit_code == 2 and "11 or 12" in r.output


# ---- vision --------------------------------------------------------------------------------------
def test_video_frames_add_video_tokens():
    code, d = as_json("qwen2-vl-7b", "--gpu", "h100", "--video-frames", "8", "--image-size", "448x448")
    assert code in (0, 1)
    assert d["video_tokens"] > 0 and d["image_kv_bytes"] > 0
    r = run("qwen2-vl-7b", "--gpu", "h100", "--video-frames", "8", "--image-size", "448x448")
    assert f"{d['video_tokens']:,} video" in r.stdout
    assert "of which image tokens" in r.stdout


# ---- list architectures ----------------------------------------------------------------------------
def test_list_architectures_json_covers_every_architecture():
    from willitrun import archs

    r = run("list", "architectures", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    rows = {row["architecture"]: row for row in d["architectures"]}
    assert list(rows) == list(archs.ARCHITECTURES)
    assert rows["gemma3_text"]["gguf_architectures"] == ["gemma3"]  # llama.cpp's name for Gemma 3's text model
    assert rows["llama"]["config_model_type"] == "llama" and "llama-2-7b" in rows["llama"]["models"]
    assert "vllm" in rows["mamba"]["refused_by"]  # the vLLM profile has no Mamba state pool
    assert "ctranslate2" in rows["llama"]["refused_by"] and "ctranslate2" not in rows["whisper"]["refused_by"]
    assert "adding-an-architecture.md" in d["new_architecture"]


def test_list_architectures_table():
    r = run("list", "architectures")
    assert r.exit_code == 0, r.output
    assert "deepseek_v3" in r.stdout and "falcon_h1" in r.stdout
    tail = " ".join(r.stdout.split())  # the last line, however the console wrapped it
    assert tail.endswith(
        "Missing one? docs/adding-an-architecture.md (`willitrun docs` says where it is) walks "
        "through adding it; or open an issue with the model's config.json."
    )
    r = run("list", "nonsense")
    assert r.exit_code == 2 and "architectures" in r.output


def test_sweep_of_a_state_space_model():
    r = run("sweep", "mamba-2.8b", "--gpu", "rtx3060", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["sweep"] if "sweep" in json.loads(r.stdout) else json.loads(r.stdout)
    assert d["memory_bounds_context"] is False
    for p in d["points"]:
        assert p["state_bytes"] == 64 * 5120 * (4 + 16) * 4  # as test_state_bytes_in_json_and_parts_add_up
        assert p["total_bytes"] == (
            p["weights_bytes"]
            + p["kv_self_bytes"]
            + p["kv_cross_bytes"]
            + p["state_bytes"]
            + p["activations_bytes"]
            + p["overhead_bytes"]
        )
    r = run("sweep", "mamba-2.8b", "--gpu", "rtx3060")
    assert "Memory does not bound the context" in r.stdout and "Largest context" not in r.stdout


def test_check_says_a_state_space_models_context_is_unbounded():
    r = run("check", "mamba-2.8b", "llama-2-7b", "--gpu", "rtx3060")
    assert r.exit_code == 1  # llama-2-7b in fp16 (12.55 GiB of weights) does not fit 12 GiB
    mamba = next(line for line in r.stdout.splitlines() if line.startswith("mamba-2.8b"))
    assert mamba.split()[-1] == "unbounded"


def test_override_tensor_reaches_llamacpp_and_bad_patterns_are_one_line():
    """-ot exps=CPU (llama.cpp --override-tensor) places as --cpu-moe does; -ot applies to llama.cpp only."""
    _, ot = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "-ot", "exps=CPU")
    _, cmoe = as_json("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--cpu-moe")
    assert ot["buffers"] == [{**b, "detail": ot["buffers"][i]["detail"]} for i, b in enumerate(cmoe["buffers"])]
    for bad in ("exps=CUDA1", "(=CPU", "exps"):
        r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "-ot", bad)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--override-tensor" in r.output
    r = run("qwen3-30b-a3b", "--gpu", "rtx4080", "--dtype", "q4_k_m", "--engine", "ollama", "-ot", "exps=CPU")
    assert r.exit_code == 2 and "--override-tensor does not apply to ollama (only to llama.cpp)" in r.output


def test_fit_target_and_ollama_version_reach_their_engines():
    _, d = as_json("llama-3.1-8b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--fit-target", "512")
    assert d["engine_facts"]["fit_target_bytes"] == 512 * MiB
    _, old = as_json("llama-3.1-8b", "--gpu", "rtx4090", "--engine", "ollama", "--ollama-version", "0.6")
    _, new = as_json("llama-3.1-8b", "--gpu", "rtx4090", "--engine", "ollama")
    assert (old["context_tokens"], new["context_tokens"]) == (4096, 32768)  # routes.go: a 23.99 GiB card, 32k
    assert new["dtype"] == "q4_k_m"  # ollama's library tags
    r = run("llama-3.1-8b", "--gpu", "rtx4090", "--engine", "ollama", "--ollama-version", "0.99")
    assert r.exit_code == 2 and "--ollama-version" in r.output and "0.30" in r.output
