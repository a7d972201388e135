"""llama.cpp with mixture-of-experts models: what --n-cpu-moe / --cpu-moe move, the attention phase's
query width, the host buffers. The printed sizes these reproduce are the entries of
tests/engines/data/calibration_extra.yaml's llama.cpp MoE block (asserted in test_calibration.py);
here the arithmetic behind them, each expectation from a config.json field or a source line."""

from __future__ import annotations

import pytest

from willitrun import load_catalog
from willitrun.dtypes import Q8_0
from willitrun.engines import LlamaCppOptions, OllamaOptions, engine_estimate
from willitrun.engines.llamacpp import GGML_CPU_ALIGNMENT, LmShape, compute_bytes, expert_on_host, lm_shape
from willitrun.engines.ollama import expert_offload_refusal
from willitrun.errors import UsageError
from willitrun.memory import Request
from willitrun.tensors import model_tensors

MIB = 1 << 20
CATALOG = load_catalog()


def spec(model_id: str):  # type: ignore[no-untyped-def]
    return CATALOG.resolve("model", model_id)


def gpu_weights(e) -> int:  # type: ignore[no-untyped-def]
    return sum(b.bytes for b in e.buffers if b.name.startswith("model buffer (CUDA"))


def test_query_width_is_heads_times_head_dim():
    """Qwen3-30B-A3B config.json: 32 heads x head_dim 128 = 4096 over hidden_size 2048; gpt-oss-20b:
    64 x 64 = 4096 over 2880; Llama 3 8B: 32 x 128 = 4096 = hidden_size."""
    assert lm_shape(spec("qwen3-30b-a3b")).attn_width == 4096 and lm_shape(spec("qwen3-30b-a3b")).n_embd == 2048
    assert lm_shape(spec("gpt-oss-20b")).attn_width == 4096
    assert lm_shape(spec("llama-3-8b")).attn_width == lm_shape(spec("llama-3-8b")).n_embd == 4096


@pytest.mark.parametrize("n_kv", [512, 2048, 32768])
def test_attention_phase_is_the_llama_form_when_q_is_n_embd(n_kv):
    """2 x n_embd + 2 x q_width is the calibrated 4 x n_embd whenever they are equal (every Llama log:
    164.00 MiB at n_ctx 2048, 2144.00 at 32768 for Mistral 7B shapes)."""
    llama = LmShape(32, 4096, 32, 14336, 32768, 1024)  # q_width 0: n_embd
    explicit = LmShape(32, 4096, 32, 14336, 32768, 1024, 4096)
    a = compute_bytes(llama, n_kv, 512, False, logits=False)[0]
    assert a == compute_bytes(explicit, n_kv, 512, False, logits=False)[0]
    assert a == max(4 * 512 * (4 * 4096 + n_kv * 33), 4 * 512 * (2 * 4096 + 2 * 14336))


def test_qwen3_30b_attention_phase_by_hand():
    """ik_llama.cpp#514 (llama.cpp b5622): 1080.00 MiB at n_ctx 16384, n_ubatch 512, no flash attention =
    4 B x 512 x (2 x 2048 + 2 x 4096 + 16384 x (32 + 1))."""
    e = engine_estimate(
        spec("qwen3-30b-a3b"),
        Request(context=16384, dtype="q4_k_m"),
        "llama.cpp",
        LlamaCppOptions(version="2024-05", flash_attn=False),
    )
    assert e.find("compute buffer (CUDA0)").bytes == 4 * 512 * (2 * 2048 + 2 * 4096 + 16384 * 33) == 1080 * MIB


def test_cpu_moe_is_n_cpu_moe_of_every_layer_and_says_so():
    s = spec("qwen3-30b-a3b")  # 48 layers (config.json num_hidden_layers)
    req = Request(dtype="q4_k_m")
    cpu = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(cpu_moe=True))
    n48 = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(n_cpu_moe=48))
    assert [b.bytes for b in cpu.buffers] == [b.bytes for b in n48.buffers]
    assert cpu.facts["n_cpu_moe"] == 48
    assert any(n.startswith("--cpu-moe: the expert tensors of every layer (0..47)") for n in cpu.notes)
    assert not any("--n-cpu-moe" in n for n in cpu.notes)
    assert any(n.startswith("--n-cpu-moe 48: the expert tensors of every layer") for n in n48.notes)
    ten = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(n_cpu_moe=10))
    assert any(n.startswith("--n-cpu-moe 10: the expert tensors of layers 0..9 stay") for n in ten.notes)
    with pytest.raises(UsageError, match=r"^--cpu-moe applies to mixture-of-experts models"):
        engine_estimate(spec("llama-3-8b"), req, "llama.cpp", LlamaCppOptions(cpu_moe=True))


def test_expert_biases_move_with_the_experts():
    """common.h LLM_FFN_EXPS_REGEX `\\.ffn_(up|down|gate)_(ch|)exps` is searched in the GGUF name, so
    gpt-oss's `blk.N.ffn_gate_exps.bias` (config: 32 experts x 2880) goes to the host with its matrix;
    the router (ffn_gate_inp) and its bias stay."""
    s = spec("gpt-oss-20b")
    opt = LlamaCppOptions(n_cpu_moe=2)
    moved = [t.name for t in model_tensors(s) if expert_on_host(t, opt)]
    for i in (0, 1):
        for proj in ("gate", "up", "down"):
            assert f"decoder.{i}.ffn_{proj}_exps.weight" in moved and f"decoder.{i}.ffn_{proj}_exps.bias" in moved
    assert len(moved) == 2 * 6
    assert not any("ffn_gate_inp" in n for n in moved)
    # GPU bytes drop by exactly the moved tensors: each q8_0 matrix of 32 experts x 2880 x 2880
    # (config.json intermediate_size, hidden_size) plus CUDA's row padding (2880 % 512 = 320: 192 more
    # elements, 6 blocks) rounded up to 128 bytes, and each bias (32 x 2880, f16 in willitrun's q8_0 mix)
    req = Request(context=4096, dtype="q8_0")
    whole = gpu_weights(engine_estimate(s, req, "llama.cpp"))
    off = gpu_weights(engine_estimate(s, req, "llama.cpp", opt))
    matrix = Q8_0.nbytes(32 * 2880 * 2880) + Q8_0.nbytes(192)
    matrix = -(-matrix // 128) * 128
    assert matrix == 282_009_856
    assert whole - off == 2 * 3 * (matrix + 2 * 32 * 2880)


def test_mapped_span_covers_the_gpu_tensors_between_host_experts():
    """llama-model-loader maps the file from the first to the last CPU tensor: with the experts of
    layers 0..N-1 on the host that is token_embd and every tensor of those layers."""
    s = spec("qwen3-30b-a3b")
    req = Request(dtype="q4_k_m")
    e = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(n_cpu_moe=10))
    host = (
        e.find("model buffer (CPU): token embedding").bytes
        + e.find("model buffer (CPU): layers kept on the host").bytes
    )
    mapped = int(e.facts["cpu_mapped_bytes"])
    assert mapped > host
    # by hand: token_embd + all of layers 0..9 in their file types, each 32-byte aligned
    from willitrun import archs
    from willitrun.engines.llamacpp import gguf_storage
    from willitrun.memory import resolve

    tensors = model_tensors(s)
    storage = gguf_storage(tensors, resolve(s, req).dtype, s)
    pad = GGML_CPU_ALIGNMENT
    expect = sum(
        -(-st.nbytes(t.numel) // pad) * pad
        for t, st in zip(tensors, storage, strict=True)
        if t.role == "token_embd" or (t.layer is not None and t.layer < 10)
    )
    assert mapped == expect
    assert archs.geometry(s).decoder_layers == 48
    # nothing but token_embd on the host: the span is token_embd alone
    plain = engine_estimate(s, req, "llama.cpp")
    assert plain.facts["cpu_mapped_bytes"] == plain.find("model buffer (CPU): token embedding").bytes


def test_host_compute_buffer_holds_both_masks_of_a_sliding_window_model():
    """llama_kv_cache_iswa: two f32 KQ masks in the host compute buffer (gpt-oss-20b on b6699 printed
    263.15 MiB = 4 B x 512 x (2880 + 131072 + 768) + 0.03 MiB of smaller inputs)."""
    e = engine_estimate(
        spec("gpt-oss-20b"),
        Request(context=131072, dtype="q8_0"),
        "llama.cpp",
        LlamaCppOptions(version="2025-08", flash_attn=True, n_cpu_moe=99),
    )
    assert e.find("compute buffer (CUDA_Host)").bytes == 4 * 512 * (2880 + 131072 + 768)
    dense = engine_estimate(spec("llama-3-8b"), Request(context=4096, dtype="q4_k_m"), "llama.cpp")
    assert dense.find("compute buffer (CUDA_Host)").bytes == 4 * 512 * (4096 + 4096)


def test_ollama_has_no_expert_offload():
    """ollama's Runner options (api/types.go) have no expert placement; the refusal names llama.cpp."""
    msg = expert_offload_refusal("--n-cpu-moe")
    assert msg.startswith("--n-cpu-moe is llama.cpp's: ollama has no expert-offload option") and "\n" not in msg
    assert msg.endswith("Use --engine llama.cpp")
    assert "n_cpu_moe" not in OllamaOptions.__dataclass_fields__


def test_host_experts_without_op_offload_compute_on_the_cpu():
    """--no-op-offload: the host experts' batch matmuls stay on the CPU, whose graph then holds the
    feed-forward phase, 4 B x 512 x (2 x 2048 + 2 x 8 x 768) for Qwen3-30B-A3B (config.json
    hidden_size, num_experts_per_tok, moe_intermediate_size); with op offload (the default) there is
    no such buffer and the GPU's holds the largest expert copied for its matmul."""
    s = spec("qwen3-30b-a3b")
    req = Request(context=4096, dtype="q4_k_m")
    off = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(n_cpu_moe=10, op_offload=False))
    assert off.find("compute buffer (CPU graph)").bytes == 4 * 512 * (2 * 2048 + 2 * 8 * 768)
    on = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(n_cpu_moe=10))
    assert not any(b.name == "compute buffer (CPU graph)" for b in on.buffers)
    plain = engine_estimate(s, req, "llama.cpp", LlamaCppOptions(op_offload=False))
    assert not any(b.name == "compute buffer (CPU graph)" for b in plain.buffers)


# --------------------------------------------------------------------------------------------------
# -ot / --override-tensor PATTERN=CPU
# --------------------------------------------------------------------------------------------------
def q4(model_id: str, **opts):  # type: ignore[no-untyped-def]
    return engine_estimate(spec(model_id), Request(context=4096, dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(**opts))


def test_ot_exps_cpu_is_cpu_moe():
    """common/arg.cpp: --cpu-moe is one override, LLM_FFN_EXPS_REGEX `\\.ffn_(up|down|gate)_(ch|)exps` = CPU;
    `-ot exps=CPU` finds the same tensors (std::regex_search on the GGUF name, blk.N.ffn_up_exps.weight)."""
    ot, cmoe = q4("qwen3-30b-a3b", override_tensor=("exps=CPU",)), q4("qwen3-30b-a3b", cpu_moe=True)
    assert [(b.name, b.bytes) for b in ot.buffers] == [(b.name, b.bytes) for b in cmoe.buffers]


def test_ot_pattern_per_layer_range_is_n_cpu_moe():
    """--n-cpu-moe 10 is the overrides `blk\\.0\\.` .. `blk\\.9\\.` + the experts' regex (common/arg.cpp)."""
    ot = q4("qwen3-30b-a3b", override_tensor=(r"blk\.[0-9]\.ffn_(up|down|gate)_exps=CPU",))
    assert gpu_weights(ot) == gpu_weights(q4("qwen3-30b-a3b", n_cpu_moe=10))


def test_ot_moves_any_matching_layer_tensor_of_a_dense_model():
    """-ot is not only for experts: `ffn_up=CPU` keeps every layer's up projection on the host (a dense
    model takes it, unlike --n-cpu-moe); the GPU loses exactly those tensors."""
    base = q4("llama-3-8b")
    up = q4("llama-3-8b", override_tensor=("ffn_up=CPU",))
    tensors = [t for t in model_tensors(spec("llama-3-8b")) if t.role == "ffn_up"]
    assert len(tensors) == 32
    moved = gpu_weights(base) - gpu_weights(up)
    assert moved > 0 and moved % 32 == 0  # the same tensor in every layer
    assert "-ot ffn_up=CPU" in up.find("model buffer (CPU): layers kept on the host").detail


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (("exps=CUDA1",), "only =CPU"),
        (("exps",), "PATTERN=BUFFER_TYPE"),
        (("(=CPU",), "not a regular expression"),
        ((",".join(["exps=CPU"] * 65),), "at most 64"),
        (("x" * 300 + "=CPU",), "at most 256"),
    ],
)
def test_ot_bad_input_is_one_usage_error(given, message):
    with pytest.raises(UsageError, match=message):
        LlamaCppOptions(override_tensor=given)


def test_fit_target_is_1024_mib_on_builds_with_fit():
    """common/common.h fit_params_target = 1024 * 1024*1024 per device (PR #16653, December 2025); the key
    before it has no --fit."""
    from willitrun.engines.llamacpp import LLAMACPP_FIT_TARGET_BYTES

    assert LLAMACPP_FIT_TARGET_BYTES == 1024 * MIB
    assert q4("llama-3-8b").facts["fit_target_bytes"] == 1024 * MIB
    assert q4("llama-3-8b", version="2025-11").facts["fit_target_bytes"] == 0
    assert q4("llama-3-8b", fit_target_bytes=512 * MIB).facts["fit_target_bytes"] == 512 * MIB
