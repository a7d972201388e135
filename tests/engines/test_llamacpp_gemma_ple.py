"""llama.cpp and ollama run Gemma 3n and Gemma 4 (issue 20): per-layer embeddings, KV shared across layers, per-layer
head sizes.

What llama.cpp does, from its source (ggml-org/llama.cpp):
- src/models/gemma4.cpp load_arch_hparams: `n_layer_kv_from_start = n_layer_all - attention.shared_kv_layers`;
  src/models/gemma3n.cpp: `n_layer_kv_from_start = 20` and set_swa_pattern(5); layers from there on keep no cache
  (llama_hparams::has_kv) and read an earlier layer's ("layer 29: reuse layer 23" in issue #21730's log);
- each layer's K and V are n_embd_k_gqa(il) wide: Gemma 4's full layers key_length (global_head_dim 512) x their
  KV heads, its sliding layers key_length_swa (head_dim 256) x theirs (convert_hf_to_gguf.py Gemma4Model);
- the sliding layers in their own cache of GGML_PAD(min(n_ctx, n_swa + n_ubatch), 256) cells (llama_kv_cache_iswa);
- per_layer_token_embd is an input-layer tensor (src/llama-arch.cpp LLM_TENSOR_INFO: LLM_TENSOR_LAYER_INPUT), kept
  in host memory like token_embd; per_layer_model_proj / per_layer_proj_norm are created as layer 0's
  (`tn(LLM_TENSOR_PER_LAYER_MODEL_PROJ, "weight", 0)`, LLM_TENSOR_LAYER_REPEATING).
The Gemma 4 E4B numbers are checked against the log in tests/engines/data/llamacpp-gemma4-e4b-issue21730.log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.importers.helpers import write_config
from tests.importers.test_gguf_generic import ends, nbytes, write
from willitrun import archs
from willitrun.cli import app
from willitrun.dtypes import weight_dtype
from willitrun.engines import LlamaCppOptions, OllamaOptions, engine_estimate
from willitrun.engines.base import aligned_sum
from willitrun.engines.llamacpp import GGML_CPU_ALIGNMENT, gguf_storage, input_table
from willitrun.errors import UsageError
from willitrun.importers import spec_from_path
from willitrun.importers.configs import spec_from_config
from willitrun.memory import Request
from willitrun.tensors import model_tensors

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
MIB = 1 << 20
LOG = Path(__file__).parent / "data" / "llamacpp-gemma4-e4b-issue21730.log"
runner = CliRunner()

# Gemma 4 E4B's text model as the log prints it: 42 layers, of which the first 24 keep a cache (layers 29, 35, 41
# reuse layer 23), full attention on every sixth (layer 5: is_swa = 0), full layers' K 512 x 2 KV heads ("4 layers,
# K (f16): 1024.00 MiB" at 131072 cells: 1024 elements per cell), sliding window 512 (SWA cache of 1024 cells =
# 512 + ubatch 512). The widths the log does not decide (hidden size, FFN) do not change the cache.
GEMMA4_E4B = {
    "model_type": "gemma4_text",
    "vocab_size": 262_144,
    "hidden_size": 2560,
    "intermediate_size": 10_240,
    "num_hidden_layers": 42,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "global_head_dim": 512,
    "sliding_window": 512,
    "num_kv_shared_layers": 18,
    "hidden_size_per_layer_input": 256,
    "vocab_size_per_layer_input": 262_144,
    "max_position_embeddings": 131_072,
}


def _spec(config: dict, name: str = "gemma") -> object:
    return spec_from_config(config, name, model_id=name)


def _kv(est) -> int:
    return sum(b.bytes for b in est.buffers if b.kind == "kv_self")


def _one_gpu(**kw) -> LlamaCppOptions:
    return LlamaCppOptions(parallel=1, flash_attn=True, **kw)


def test_gemma4_e4b_cache_is_the_logged_one():
    log = LOG.read_text()
    size = re.search(r"size = ([\d.]+) MiB \((\d+) cells,\s+(\d+) layers", log)
    swa = re.search(r"SWA KV cache, size = (\d+) cells", log)
    assert size and swa
    base_mib, cells, full_layers, swa_cells = float(size[1]), int(size[2]), int(size[3]), int(swa[1])
    spec = _spec(GEMMA4_E4B)
    est = engine_estimate(spec, Request(context=cells, dtype="q8_0", kv_dtype="f16"), "llama.cpp", _one_gpu())
    g = archs.geometry(spec)
    # 24 layers with a cache: 4 full (5, 11, 17, 23), 20 sliding; the 18 shared ones none
    assert sum(1 for k in g.self_kv if k is not None and k.kind == "full") == full_layers == 4
    sliding = sum(1 for k in g.self_kv if k is not None and k.kind == "sliding")
    assert (sliding, sum(1 for k in g.self_kv if k is None)) == (20, 18)
    # the full layers' cache is the logged 2048.00 MiB; the sliding ones 2 x 256 x 2 heads per cell of 1024 cells
    swa_bytes = sliding * swa_cells * 2 * (2 * 256) * 2
    assert _kv(est) == base_mib * MIB + swa_bytes
    assert est.facts["n_ctx"] == cells
    assert any(f"keep {swa_cells} cells" in n for n in est.notes)


def test_shared_layers_keep_no_cache_whatever_the_context():
    spec = _spec(GEMMA4_E4B)
    for ctx in (4096, 32768):
        est = engine_estimate(spec, Request(context=ctx, kv_dtype="f16"), "llama.cpp", _one_gpu())
        swa = min(ctx, 512 + 512)  # pad(min(n_ctx, n_swa + n_ubatch), 256)
        assert _kv(est) == 4 * ctx * 2 * 1024 * 2 + 20 * swa * 2 * 512 * 2


def test_gemma3n_class_defaults():
    # transformers' Gemma3nTextConfig defaults (35 layers, 15 KV-shared, 2 KV heads of 256, window 512, full
    # attention where (i + 1) % 5 == 0); llama.cpp: the first 20 layers keep a cache, 4 of them full
    spec = _spec({"model_type": "gemma3n_text"}, "gemma3n")
    est = engine_estimate(spec, Request(context=8192, dtype="q4_k_m", kv_dtype="f16"), "llama.cpp", _one_gpu())
    assert _kv(est) == 4 * 8192 * 2 * 512 * 2 + 16 * 1024 * 2 * 512 * 2
    kv = next(b for b in est.buffers if b.kind == "kv_self")
    assert "15 layers keep none" in kv.detail


def _host_embd(est) -> int:
    return next(b.bytes for b in est.buffers if b.name == "model buffer (CPU): token embedding")


@pytest.mark.parametrize(
    ("config", "embd", "table_rows", "width"),
    [
        # Gemma 4: vocab_size and vocab_size_per_layer_input are both 262144; 42 layers x 256
        (GEMMA4_E4B, (262_144, 2560), 262_144, 42 * 256),
        # Gemma 3n (class defaults): 262400 tokens, 262144 rows per layer in the checkpoint, padded to 262400 in the
        # GGUF (convert_hf_to_gguf.py Gemma3NModel; llama.cpp creates the table with n_vocab rows); 35 x 256
        ({"model_type": "gemma3n_text"}, (262_400, 2048), 262_400, 35 * 256),
    ],
    ids=["gemma4", "gemma3n"],
)
def test_the_per_layer_embedding_table_stays_in_host_memory(config, embd, table_rows, width):
    spec = _spec(config)
    tensors = model_tensors(spec)
    storage = gguf_storage(tensors, weight_dtype("fp16"), spec)
    table = [
        (t, s)
        for t, s in zip(tensors, storage, strict=True)
        if t.name in ("token_embd.weight", "per_layer_token_embd.weight")
    ]
    assert len(table) == 2 and all(input_table(t) for t, _ in table)
    est = engine_estimate(spec, Request(context=4096, dtype="fp16"), "llama.cpp", _one_gpu())
    # both tables in the CPU buffer, f16 (5.25 GiB of per-layer table for E4B), each 32-byte aligned
    assert _host_embd(est) == aligned_sum([2 * embd[0] * embd[1], 2 * table_rows * width], GGML_CPU_ALIGNMENT)
    # the GPU holds every other tensor and, the head being tied, the token embedding's copy as the output layer
    # (f16 rows: no CUDA row padding), each 128-byte aligned
    gpu_weights = sum(b.bytes for b in est.buffers if b.kind == "weights" and b.placement == "gpu")
    rest = [s.nbytes(t.numel) for t, s in zip(tensors, storage, strict=True) if not input_table(t)]
    assert gpu_weights == aligned_sum([*rest, table[0][1].nbytes(table[0][0].numel)], 128)


def test_the_per_layer_projection_goes_with_layer_zero():
    # -ngl 42 of 43 on a build placing the output layer first (PR #18148): layer 0 stays on the host, and with it
    # per_layer_model_proj and per_layer_proj_norm (created as layer 0's)
    spec = _spec(GEMMA4_E4B)
    tensors = model_tensors(spec)
    storage = gguf_storage(tensors, weight_dtype("fp16"), spec)
    est = engine_estimate(spec, Request(context=4096, dtype="fp16"), "llama.cpp", _one_gpu(gpu_layers=42))
    host = next(b.bytes for b in est.buffers if b.name == "model buffer (CPU): layers kept on the host")
    first = [
        s.nbytes(t.numel)
        for t, s in zip(tensors, storage, strict=True)
        if t.layer == 0 or t.name in ("per_layer_model_proj.weight", "per_layer_proj_norm.weight")
    ]
    assert host == aligned_sum(first, GGML_CPU_ALIGNMENT)


def test_ollama_runs_them_as_llama_server_does():
    # ollama v0.30+ runs GGML models in llama-server (ollama#16031): the same cache for num_ctx x parallel cells
    spec = _spec(GEMMA4_E4B)
    est = engine_estimate(spec, Request(context=8192, kv_dtype="f16"), "ollama", OllamaOptions(num_parallel=1))
    assert _kv(est) == 4 * 8192 * 2 * 1024 * 2 + 20 * pad256(512 + est.facts["n_ubatch"]) * 2 * 512 * 2
    old = engine_estimate(spec, Request(context=8192), "ollama", OllamaOptions(release="0.15"))
    assert any("own Go engine" in n for n in old.notes)


def pad256(n: int) -> int:
    return -(-n // 256) * 256


def test_a_gemma4_with_its_vision_tower_is_refused_in_one_line(tmp_path):
    spec = _spec({"model_type": "gemma4", "text_config": GEMMA4_E4B, "vision_config": {}}, "gemma4-mm")
    with pytest.raises(UsageError, match="vision / audio mmproj"):
        engine_estimate(spec, Request(context=4096), "llama.cpp")
    r = runner.invoke(
        app,
        [str(write_config(tmp_path / "mm", {**GEMMA4_E4B_MM})), "--engine", "llama.cpp", "--vram", "24"],
        env={"NO_COLOR": "1"},
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "vision / audio mmproj" in r.output


GEMMA4_E4B_MM = {"model_type": "gemma4", "text_config": GEMMA4_E4B, "vision_config": {"model_type": "gemma4_vision"}}


# --------------------------------------------------------------------------------------------------
# GGUF files, with the keys and tensor names convert_hf_to_gguf.py writes (Gemma4Model, Gemma3NModel)
# --------------------------------------------------------------------------------------------------
H, V, PLE = 256, 128, 16  # 6 x 16 and 30 x 16 per-layer widths: whole Q8_0 blocks


def _gemma_layer(i: int, heads: int, kv: int, head_dim: int, ffn: int, shared: bool) -> dict:
    t = {
        f"blk.{i}.attn_norm.weight": ((H,), Q.F32),
        f"blk.{i}.attn_q.weight": ((heads * head_dim, H), Q.Q8_0),
        f"blk.{i}.attn_q_norm.weight": ((head_dim,), Q.F32),
        f"blk.{i}.attn_output.weight": ((H, heads * head_dim), Q.Q8_0),
        f"blk.{i}.ffn_gate.weight": ((ffn, H), Q.Q8_0),
        f"blk.{i}.ffn_up.weight": ((ffn, H), Q.Q8_0),
        f"blk.{i}.ffn_down.weight": ((H, ffn), Q.Q8_0),
        f"blk.{i}.inp_gate.weight": ((PLE, H), Q.F16),
        f"blk.{i}.proj.weight": ((H, PLE), Q.F16),
        f"blk.{i}.post_norm.weight": ((H,), Q.F32),
    }
    if not shared:
        t[f"blk.{i}.attn_k.weight"] = ((kv * head_dim, H), Q.Q8_0)
        t[f"blk.{i}.attn_v.weight"] = ((kv * head_dim, H), Q.Q8_0)
        t[f"blk.{i}.attn_k_norm.weight"] = ((head_dim,), Q.F32)
    return t


def _gemma4_file(path: Path) -> tuple[Path, dict]:
    # 6 layers: sliding, sliding, full, sliding, sliding, full; the last 2 share KV; full layers 1 KV head of 64
    # (key_length, global_head_dim), sliding ones 2 of 32 (key_length_swa); head_count_kv per layer
    swa = [True, True, False, True, True, False]
    tensors = {
        **ends(Q.Q8_0, None),
        "per_layer_token_embd.weight": ((V, 6 * PLE), Q.Q8_0),
        "per_layer_model_proj.weight": ((6 * PLE, H), Q.F16),
        "per_layer_proj_norm.weight": ((PLE,), Q.F32),
    }
    for i, s in enumerate(swa):
        tensors.update(_gemma_layer(i, 4, 2 if s else 1, 32 if s else 64, 512, i >= 4))
    meta = {
        "block_count": 6,
        "embedding_length": H,
        "feed_forward_length": 512,
        "attention.head_count": 4,
        "attention.head_count_kv": [2 if s else 1 for s in swa],
        "attention.key_length": 64,
        "attention.value_length": 64,
        "attention.key_length_swa": 32,
        "attention.value_length_swa": 32,
        "attention.sliding_window": 16,
        "attention.sliding_window_pattern": swa,
        "attention.shared_kv_layers": 2,
        "embedding_length_per_layer_input": PLE,
        "context_length": 8192,
    }
    return write(path, "gemma4", meta, tensors), tensors


def test_a_gemma4_gguf_is_read_as_llama_cpp_reads_it(tmp_path):
    path, tensors = _gemma4_file(tmp_path / "gemma4.gguf")
    spec, weights = spec_from_path(path)
    assert weights.total_bytes == sum(nbytes(shape, q) for shape, q in tensors.values())
    kv = archs.geometry(spec).self_kv
    assert [(k.kind, k.kv_heads, k.key_dim) if k else None for k in kv] == [
        ("sliding", 2, 32),
        ("sliding", 2, 32),
        ("full", 1, 64),
        ("sliding", 2, 32),
        None,  # attention.shared_kv_layers 2: n_layer_kv_from_start = 4
        None,
    ]
    r = runner.invoke(
        app,
        [str(path), "--vram", "24", "--context", "4096", "--engine", "llama.cpp", "--parallel", "1", "--json"],
        env={"NO_COLOR": "1"},
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    kv_bytes = sum(b["bytes"] for b in out["buffers"] if b["kind"] == "kv_self")
    # f16 cache: the full layer 4096 cells x (64 K + 64 V); 3 sliding layers pad(min(4096, 16 + 512), 256) = 768
    # cells x 2 x (2 x 32)
    assert kv_bytes == 4096 * 128 * 2 + 3 * 768 * 128 * 2
    # both input tables in host memory, weighed in the answer's type (fp16: 2 bytes an element)
    assert out["dtype"] == "fp16"
    host = next(b for b in out["buffers"] if b["name"] == "model buffer (CPU): token embedding")
    assert host["bytes"] == 2 * V * H + 2 * V * 6 * PLE


def test_a_gemma3n_gguf_keeps_the_loaders_twenty_cache_layers(tmp_path):
    # llama.cpp's gemma3n loader sets n_layer_kv_from_start = 20 whatever attention.shared_kv_layers says
    n = 30
    swa = [(i + 1) % 5 != 0 for i in range(n)]
    tensors = {**ends(Q.Q8_0, None), "per_layer_token_embd.weight": ((V, n * PLE), Q.Q8_0)}
    for i in range(n):
        tensors.update(_gemma_layer(i, 4, 2, 32, 512, False))
    path = write(
        tmp_path / "gemma3n.gguf",
        "gemma3n",
        {
            "block_count": n,
            "embedding_length": H,
            "feed_forward_length": 512,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "attention.key_length": 32,
            "attention.value_length": 32,
            "attention.sliding_window": 16,
            "attention.sliding_window_pattern": swa,
            "attention.shared_kv_layers": 4,
            "embedding_length_per_layer_input": PLE,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    kv = archs.geometry(spec).self_kv
    assert [k is not None for k in kv] == [True] * 20 + [False] * 10
    assert [k.kind for k in kv[:20] if k] == ["full" if (i + 1) % 5 == 0 else "sliding" for i in range(20)]


def test_the_per_layer_inputs_stay_alive_through_the_layers():
    # without flash attention at 32768 cells the attention phase decides: 4 B x 512 x (2 x 2560 residual and normed
    # input + 2 x 8 x 512 Q and attention output + 32768 x (8 heads + 1 mask)), plus the per-layer inputs every
    # layer reads, 4 B x 512 x (42 x 256)
    spec = _spec(GEMMA4_E4B)
    est = engine_estimate(spec, Request(context=32768), "llama.cpp", LlamaCppOptions(parallel=1, flash_attn=False))
    cuda = next(b for b in est.buffers if b.name == "compute buffer (CUDA0)")
    assert cuda.bytes == 4 * 512 * (2 * 2560 + 2 * 4096 + 32768 * 9) + 4 * 512 * 42 * 256
    assert "per-layer inputs" in cuda.detail


# Property: a layer that shares an earlier layer's keys and values keeps no cache in llama.cpp (has_kv), so sharing
# one more layer always needs less cache, and a longer context never needs less.
@settings(max_examples=25, deadline=None)
@given(
    layers=st.integers(7, 14),
    data=st.data(),
    context=st.integers(1, 20_000),
    longer=st.integers(0, 20_000),
    kv=st.sampled_from(["f16", "q8_0"]),
)
def test_sharing_one_more_layer_needs_less_cache(layers, data, context, longer, kv):
    # the first 6 layers (5 sliding, 1 full) keep every layer type unshared (Gemma4TextConfig.kv_sharing_modes)
    shared = data.draw(st.integers(0, layers - 7))  # shared + 1 still leaves the first 6 unshared
    base = {**GEMMA4_E4B, "num_hidden_layers": layers, "hidden_size": 256, "intermediate_size": 512}

    def cache(n_shared: int, ctx: int) -> int:
        spec = _spec({**base, "num_kv_shared_layers": n_shared})
        return _kv(engine_estimate(spec, Request(context=ctx, kv_dtype=kv), "llama.cpp", _one_gpu()))

    assert cache(shared + 1, context) < cache(shared, context)
    assert cache(shared, context) <= cache(shared, context + longer)


def test_flash_attention_converts_the_widest_layer_of_a_quantized_cache():
    # Gemma 4 31B's cache shape (the print_info of PR #22616 / #21760 logs: 60 layers, n_embd_head_k 512 on the full
    # layers, n_embd_head_k_swa 256; k-equals-v full layers with 4 KV heads, sliding ones with 16, window 1024):
    # with a q8_0 cache the FA kernel converts one layer's K and V to f16 (fattn-common.cuh), the widest being a full
    # layer's 4 x 512 x 65536 cells, not a sliding layer's 16 x 256 (its window's 1536 cells); at 65536 cells the
    # attention phase is above the logits' 4 B x 512 x (5376 + 262144)
    config = {
        **GEMMA4_E4B,
        "num_hidden_layers": 60,
        "hidden_size": 5376,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "num_global_key_value_heads": 4,
        "attention_k_eq_v": True,
        "sliding_window": 1024,
        "num_kv_shared_layers": 0,
        "hidden_size_per_layer_input": 0,
    }
    spec = _spec(config)
    est = engine_estimate(spec, Request(context=65536, kv_dtype="q8_0"), "llama.cpp", _one_gpu())
    cuda = next(b for b in est.buffers if b.name == "compute buffer (CUDA0)")
    assert "2 x 2 B x 65536 x 2048 (K and V as f16" in cuda.detail
    hidden = 2 * 5376 + 2 * 32 * 512  # residual and normed input, Q and attention output (32 heads x 512)
    assert cuda.bytes == 4 * 512 * hidden + 2 * 65536 * 512 + 2 * 2 * 65536 * 2048


def test_offloaded_shared_layers_bring_no_cache_to_the_gpu():
    # -ngl 5 of 43 (output layer first, PR #18148): the output layer and layers 38..41, all KV-shared: the GPU gets
    # no KV buffer, the host keeps the 24 layers with a cache
    spec = _spec(GEMMA4_E4B)
    est = engine_estimate(spec, Request(context=8192, kv_dtype="f16"), "llama.cpp", _one_gpu(gpu_layers=5))
    kv = [b for b in est.buffers if b.kind == "kv_self"]
    assert [b.placement for b in kv] == ["host"]
    assert kv[0].bytes == 4 * 8192 * 2 * 1024 * 2 + 20 * 1024 * 2 * 512 * 2
    assert kv[0].detail.startswith("24 host layers:") and "14 layers keep none" in kv[0].detail


@pytest.mark.parametrize(
    "config",
    [
        # Gemma 4 with an audio tower only: llama.cpp's mmproj for it (Gemma4VisionAudioModel) is not sized either
        {"model_type": "gemma4", "text_config": GEMMA4_E4B, "audio_config": {}},
        # Gemma 3n's MobileNetV5 and audio towers (Gemma3nConfig's defaults): run as an mmproj there, not sized
        {"model_type": "gemma3n"},
    ],
    ids=["gemma4-audio", "gemma3n-multimodal"],
)
@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
def test_the_gemma_towers_are_refused_not_dropped(config, engine):
    spec = _spec(config, "gemma-towers")
    with pytest.raises(UsageError, match="vision / audio mmproj"):
        engine_estimate(spec, Request(context=4096), engine)
