"""Any GGUF llama.cpp writes (issue 20 §5): an architecture without a family is read from its metadata alone.

Files are written with the `gguf` package's GGUFWriter, tensors as raw blocks of their ggml type (zeros: only
the header is read). Expected caches follow llama.cpp src/llama-hparams.cpp (n_embd_k_gqa(il) =
n_embd_head_k x n_head_kv(il); set_swa_pattern(n): layer il slides when il % n < n - 1; n_embd_r / n_embd_s for
recurrent state), computed by hand below for each file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from willitrun import SpecError, archs, estimate
from willitrun.archs.base import LayerKV
from willitrun.cli import app
from willitrun.ggml_types import GGML_TYPES
from willitrun.importers import spec_from_path
from willitrun.importers.gguf_file import GGUFHeader
from willitrun.importers.gguf_generic import generic_config
from willitrun.importers.weights import StoredTensor
from willitrun.specs import parse_model_spec

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")
Q = gguf.GGMLQuantizationType
runner = CliRunner()
VOCAB, HIDDEN = 128, 256  # rows of whole k-quant blocks (256)


def write(path: Path, arch: str, meta: dict, tensors: dict[str, tuple[tuple[int, ...], int]]) -> Path:
    """A GGUF of `arch` with metadata `meta` (key without the arch prefix -> value) and tensors
    name -> (PyTorch-ordered shape, ggml type id), their data zero blocks of that type."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in meta.items():
        full = f"{arch}.{key}"
        if isinstance(value, bool):
            w.add_bool(full, value)
        elif isinstance(value, list):
            w.add_array(full, value)
        elif isinstance(value, float):
            w.add_float32(full, value)
        else:
            w.add_uint32(full, value)
    w.add_name(f"tiny {arch}")
    for name, (shape, qtype) in tensors.items():
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, np.zeros(shape, dtype=np.float32 if qtype == Q.F32 else np.float16))
            continue
        _, block, block_bytes = GGML_TYPES[qtype]
        raw = np.zeros((*shape[:-1], shape[-1] // block * block_bytes), dtype=np.uint8)
        w.add_tensor(name, raw, raw_dtype=Q(qtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def nbytes(shape: tuple[int, ...], qtype: int) -> int:
    _, block, block_bytes = GGML_TYPES[qtype]
    n = shape[-1] // block * block_bytes
    for d in shape[:-1]:
        n *= d
    return n


def attention_block(i: int, heads: int, kv: int, head_dim: int, ffn: int, qtype: int = Q.Q8_0) -> dict:
    return {
        f"blk.{i}.attn_norm.weight": ((HIDDEN,), Q.F32),
        f"blk.{i}.attn_q.weight": ((heads * head_dim, HIDDEN), qtype),
        f"blk.{i}.attn_k.weight": ((kv * head_dim, HIDDEN), qtype),
        f"blk.{i}.attn_v.weight": ((kv * head_dim, HIDDEN), qtype),
        f"blk.{i}.attn_output.weight": ((HIDDEN, heads * head_dim), qtype),
        f"blk.{i}.ffn_norm.weight": ((HIDDEN,), Q.F32),
        f"blk.{i}.ffn_up.weight": ((ffn, HIDDEN), qtype),
        f"blk.{i}.ffn_down.weight": ((HIDDEN, ffn), qtype),
    }


def ends(qtype_embd: int = Q.F16, qtype_out: int | None = Q.Q6_K) -> dict:
    out = {"token_embd.weight": ((VOCAB, HIDDEN), qtype_embd), "output_norm.weight": ((HIDDEN,), Q.F32)}
    if qtype_out is not None:
        out["output.weight"] = ((VOCAB, HIDDEN), qtype_out)
    return out


def numel(tensors: dict) -> int:
    return sum(int(np.prod(shape)) for shape, _ in tensors.values())


def test_an_architecture_without_a_family_is_answered_with_exact_weights(tmp_path):
    # xverse (llama.cpp's LLM_ARCH_XVERSE): willitrun has no xverse family; 2 layers, 4 heads, 2 KV heads of 64 (key_length: 256 / 4)
    tensors = {**ends(), **attention_block(0, 4, 2, 64, 256), **attention_block(1, 4, 2, 64, 256, Q.Q4_K)}
    path = write(
        tmp_path / "xverse.gguf",
        "xverse",
        {
            "block_count": 2,
            "embedding_length": HIDDEN,
            "feed_forward_length": 256,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "context_length": 2048,
        },
        tensors,
    )
    spec, weights = spec_from_path(path)
    assert spec.architecture == "generic" and spec.config.source_architecture == "xverse"
    # mixed types in one file (F16, Q8_0, Q4_K, Q6_K, F32): each tensor's own bytes
    assert weights.total_bytes == sum(nbytes(shape, q) for shape, q in tensors.values())
    e = estimate(spec, context=1024, weights=weights)
    assert e.parameters == numel(tensors)
    # 2 layers x (K + V) x 2 KV heads x 64 x 1024 positions x 2 bytes (f16)
    assert e.kv_self_bytes == 2 * 2 * 2 * 64 * 1024 * 2
    assert "read from the GGUF's metadata; no family-specific rules" in " ".join(e.notes)


def test_cli_says_how_it_was_read(tmp_path):
    tensors = {**ends(), **attention_block(0, 4, 4, 64, 128)}
    path = write(
        tmp_path / "xverse.gguf",
        "xverse",
        {"block_count": 1, "embedding_length": HIDDEN, "feed_forward_length": 128, "attention.head_count": 4},
        tensors,
    )
    r = runner.invoke(app, [str(path), "--vram", "24", "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["architecture"] == "generic" and out["parameters"] == numel(tensors)
    assert any("GGUF architecture 'xverse' has no willitrun family" in n for n in out["notes"])


def test_per_layer_kv_heads_and_short_convolution(tmp_path):
    # lfm2: head_count_kv one per layer, 0 on the short-convolution layers; n_embd_r = n_embd x (l_cache - 1)
    kv = [0, 2, 0, 2]
    tensors = {**ends(qtype_out=None)}
    for i, k in enumerate(kv):
        if k:
            tensors.update(attention_block(i, 4, 2, 64, 128))
        else:
            tensors.update(
                {
                    f"blk.{i}.shortconv.in_proj.weight": ((3 * HIDDEN, HIDDEN), Q.F16),
                    f"blk.{i}.shortconv.conv.weight": ((HIDDEN, 3), Q.F32),
                }
            )
    path = write(
        tmp_path / "lfm2.gguf",
        "lfm2",
        {
            "block_count": 4,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": 4,
            "attention.head_count_kv": kv,
            "shortconv.l_cache": 3,
        },
        tensors,
    )
    spec, weights = spec_from_path(path)
    g = archs.geometry(spec)
    attn = LayerKV("full", 2, 64, 64)  # key_length by default embedding_length / head_count
    assert g.self_kv == (None, attn, None, attn)
    assert g.ssm_state == ((HIDDEN * 2, 0), (0, 0), (HIDDEN * 2, 0), (0, 0))
    assert spec.config.tie_word_embeddings and estimate(spec, weights=weights).parameters == numel(tensors)


def test_gpt_oss_mxfp4_experts_and_its_sliding_pattern(tmp_path):
    # gpt-oss: llama.cpp hard-codes set_swa_pattern(2) (even layers slide over sliding_window); experts MXFP4
    experts, ffn = 4, 64
    tensors = {**ends()}
    for i in range(4):
        tensors.update(
            {k: v for k, v in attention_block(i, 4, 2, 16, ffn).items() if "ffn_up" not in k and "ffn_down" not in k}
        )
        tensors.update(
            {
                f"blk.{i}.ffn_gate_inp.weight": ((experts, HIDDEN), Q.F32),
                f"blk.{i}.ffn_gate_exps.weight": ((experts, ffn, HIDDEN), Q.MXFP4),
                f"blk.{i}.ffn_up_exps.weight": ((experts, ffn, HIDDEN), Q.MXFP4),
                f"blk.{i}.ffn_down_exps.weight": ((experts, HIDDEN, ffn), Q.MXFP4),
            }
        )
    path = write(
        tmp_path / "gpt-oss.gguf",
        "gpt-oss",
        {
            "block_count": 4,
            "embedding_length": HIDDEN,
            "feed_forward_length": ffn,
            "expert_feed_forward_length": ffn,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "attention.key_length": 16,
            "attention.value_length": 16,
            "attention.sliding_window": 128,
            "expert_count": experts,
            "expert_used_count": 2,
            "context_length": 4096,
        },
        tensors,
    )
    spec, weights = spec_from_path(path)
    assert weights.total_bytes == sum(nbytes(shape, q) for shape, q in tensors.values())
    assert nbytes((experts, ffn, HIDDEN), Q.MXFP4) == experts * ffn * HIDDEN // 32 * 17
    g = archs.geometry(spec)
    assert [k.kind for k in g.self_layers] == ["sliding", "full", "sliding", "full"]
    assert {k.window for k in g.self_layers} == {128, None}
    assert (g.experts, g.experts_per_token) == (experts, 2)
    # a token computes with 2 of the 4 experts of each layer (memory.active_parameters)
    expert_elements = 4 * 3 * experts * ffn * HIDDEN
    assert estimate(spec, weights=weights).active_parameters == numel(tensors) - expert_elements // 2
    # transformers holds a whole prompt's keys at the peak, sliding or not (memory.kv_self_bytes)
    assert estimate(spec, context=1024, weights=weights).kv_self_bytes == 4 * 1024 * 2 * 32 * 2
    # llama.cpp (llama_kv_cache_iswa): full layers n_ctx cells; sliding ones pad(min(n_ctx, 128 + ubatch 512), 256)
    # with one sequence (llama-server's default -np auto keeps 4 windows: pad(4 x 128 + 512, 256) = 1024)
    r = runner.invoke(
        app,
        [str(path), "--vram", "24", "--context", "4096", "--engine", "llama.cpp", "--parallel", "1", "--json"],
        env={"NO_COLOR": "1"},
    )
    assert r.exit_code == 0, r.output
    kv = [b for b in json.loads(r.stdout)["buffers"] if b["kind"] == "kv_self"]
    assert sum(b["bytes"] for b in kv) == (2 * 4096 + 2 * 768) * 2 * 32 * 2


def test_sliding_window_pattern_from_the_file(tmp_path):
    # a period in the file: set_swa_pattern(3) -> layers 0, 1 slide, 2 full, 3, 4 slide, 5 full
    tensors = {**ends()}
    for i in range(6):
        tensors.update(attention_block(i, 4, 2, 16, 128))
    path = write(
        tmp_path / "exaone4.gguf",
        "exaone4",
        {
            "block_count": 6,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "attention.sliding_window": 64,
            "attention.sliding_window_pattern": 3,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    assert [k.kind for k in archs.geometry(spec).self_layers] == ["sliding", "sliding", "full"] * 2


def test_llama4_chunked_attention_from_its_loader(tmp_path):
    # llama4: llama.cpp's loader sets chunked attention, n_swa 8192, set_swa_pattern(4) (3 chunked : 1 full)
    # unless the file's sliding_window is 0; the file carries neither
    tensors = {**ends()}
    for i in range(8):
        tensors.update(attention_block(i, 4, 2, 64, 128))
    path = write(
        tmp_path / "llama4.gguf",
        "llama4",
        {
            "block_count": 8,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    layers = archs.geometry(spec).self_layers
    assert [k.kind for k in layers] == ["chunked", "chunked", "chunked", "full"] * 2
    assert {k.window for k in layers} == {8192, None}


def test_latent_attention_deepseek2(tmp_path):
    # deepseek2 as convert_hf_to_gguf.py writes it since llama.cpp's MLA change: head_count_kv 1, key_length =
    # kv_lora_rank + rope dims, value_length = kv_lora_rank, the per-head sizes as key/value_length_mla
    rank, rope, heads, nope, v = 32, 16, 4, 32, 32
    tensors = {**ends()}
    for i in range(2):
        tensors.update(
            {
                f"blk.{i}.attn_norm.weight": ((HIDDEN,), Q.F32),
                f"blk.{i}.attn_q.weight": ((heads * (nope + rope), HIDDEN), Q.Q8_0),
                f"blk.{i}.attn_kv_a_mqa.weight": ((rank + rope, HIDDEN), Q.Q8_0),
                f"blk.{i}.attn_kv_a_norm.weight": ((rank,), Q.F32),
                f"blk.{i}.attn_k_b.weight": ((heads, rank, nope), Q.F16),
                f"blk.{i}.attn_v_b.weight": ((heads, v, rank), Q.F16),
                f"blk.{i}.attn_output.weight": ((HIDDEN, heads * v), Q.Q8_0),
                f"blk.{i}.ffn_norm.weight": ((HIDDEN,), Q.F32),
                f"blk.{i}.ffn_up.weight": ((128, HIDDEN), Q.Q8_0),
                f"blk.{i}.ffn_down.weight": ((HIDDEN, 128), Q.Q8_0),
            }
        )
    path = write(
        tmp_path / "deepseek2.gguf",
        "deepseek2",
        {
            "block_count": 2,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": heads,
            "attention.head_count_kv": 1,
            "attention.key_length": rank + rope,
            "attention.value_length": rank,
            "attention.key_length_mla": nope + rope,
            "attention.value_length_mla": v,
            "attention.kv_lora_rank": rank,
            "rope.dimension_count": rope,
            "expert_count": 0,
        },
        tensors,
    )
    spec, weights = spec_from_path(path)
    g = archs.geometry(spec)
    assert g.self_kv == (LayerKV("full", 1, rank, rope),) * 2
    assert g.mla == (rank, rope, heads, nope + rope, v)
    assert estimate(spec, weights=weights).parameters == numel(tensors)


def test_gated_deltanet_layers_between_full_attention(tmp_path):
    # qwen3next: full_attention_interval 4 -> layers 3 and 7 attend, the others keep
    # (d_conv - 1) x (d_inner + 2 n_group d_state) conv and d_state x d_inner state (llama-hparams.cpp)
    d_conv, d_inner, d_state, groups = 4, 64, 16, 2
    tensors = {**ends()}
    for i in range(8):
        if (i + 1) % 4 == 0:
            tensors.update(attention_block(i, 4, 2, 16, 128))
        else:
            tensors.update(
                {
                    f"blk.{i}.ssm_in.weight": ((2 * d_inner, HIDDEN), Q.Q8_0),
                    f"blk.{i}.ssm_conv1d.weight": ((d_inner + 2 * groups * d_state, d_conv), Q.F32),
                    f"blk.{i}.ssm_out.weight": ((HIDDEN, d_inner), Q.Q8_0),
                }
            )
    path = write(
        tmp_path / "qwen3next.gguf",
        "qwen3next",
        {
            "block_count": 8,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "ssm.conv_kernel": d_conv,
            "ssm.inner_size": d_inner,
            "ssm.state_size": d_state,
            "ssm.group_count": groups,
            "ssm.time_step_rank": 4,
            "full_attention_interval": 4,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    g = archs.geometry(spec)
    state = ((d_conv - 1) * (d_inner + 2 * groups * d_state), d_state * d_inner)
    assert [k is not None for k in g.self_kv] == [False, False, False, True] * 2
    assert g.ssm_state == (state, state, state, (0, 0)) * 2


def test_rwkv_state(tmp_path):
    # rwkv6: no attention; n_embd_r = token_shift_count x n_embd, n_embd_s = n_embd x wkv.head_size
    tensors = {**ends(), **{f"blk.{i}.time_mix_key.weight": ((HIDDEN, HIDDEN), Q.F16) for i in range(2)}}
    path = write(
        tmp_path / "rwkv6.gguf",
        "rwkv6",
        {
            "block_count": 2,
            "embedding_length": HIDDEN,
            "feed_forward_length": 224,
            "wkv.head_size": 16,
            "token_shift_count": 2,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    g = archs.geometry(spec)
    assert g.self_kv == (None, None) and g.ssm_state == ((2 * HIDDEN, HIDDEN * 16),) * 2
    assert not g.cache_grows_with_context


def test_a_family_reader_that_does_not_model_a_file_hands_it_over(tmp_path):
    # qwen2 with experts: the qwen2 family reader refuses it; the metadata still answers
    tensors = {**ends(), **attention_block(0, 4, 2, 16, 128)}
    path = write(
        tmp_path / "qwen2.gguf",
        "qwen2",
        {
            "block_count": 1,
            "embedding_length": HIDDEN,
            "feed_forward_length": 128,
            "attention.head_count": 4,
            "attention.head_count_kv": 2,
            "context_length": 512,
            "expert_count": 8,
            "expert_used_count": 2,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    assert spec.architecture == "generic"
    assert spec.config.num_experts == 8 and "qwen2.* keys" in spec.config.provenance


def test_no_vocabulary_is_one_spec_error(tmp_path):
    path = write(
        tmp_path / "m.gguf",
        "xverse",
        {"block_count": 1, "embedding_length": HIDDEN, "attention.head_count": 4},
        {"blk.0.attn_q.weight": ((HIDDEN, HIDDEN), Q.F16)},
    )
    with pytest.raises(SpecError, match=r"no 2-D token_embd\.weight tensor and no xverse\.vocab_size") as err:
        spec_from_path(path)
    assert "\n" not in str(err.value)


def test_hostile_layer_name_in_a_mamba2_file_is_one_line(tmp_path):
    # issue 17: blk.x.ssm_in.weight once crashed the reader (exit 70)
    tensors = {**ends(), "blk.x.ssm_in.weight": ((2 * HIDDEN, HIDDEN), Q.F16), "blk.0.ssm_a": ((4,), Q.F32)}
    path = write(
        tmp_path / "m.gguf",
        "mamba2",
        {
            "block_count": 1,
            "embedding_length": HIDDEN,
            "ssm.conv_kernel": 4,
            "ssm.inner_size": 2 * HIDDEN,
            "ssm.state_size": 16,
            "ssm.group_count": 1,
            "ssm.time_step_rank": 4,
            "context_length": 512,
        },
        tensors,
    )
    r = runner.invoke(app, [str(path), "--vram", "24"], env={"NO_COLOR": "1"})
    assert r.exit_code == 3, r.output
    assert r.stderr.count("\n") == 1 and "no blk.N.ssm_in.weight tensor" in r.stderr


# --------------------------------------------------------------------------------------------------
# Property: whatever the per-layer metadata, each layer's cache is llama.cpp's (llama-hparams.cpp)
# --------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    kv=st.lists(st.integers(0, 8), min_size=1, max_size=48),
    head_dim=st.sampled_from([32, 64, 128]),
    period=st.integers(0, 6),
    window=st.sampled_from([None, 512, 4096]),
    context=st.integers(1, 1 << 16),
)
def test_each_layer_is_what_llama_cpp_reads(kv, head_dim, period, window, context):
    """n_embd_k_gqa(il) = key_length x head_count_kv(il); a layer with 0 KV heads caches nothing; with a window,
    layer il slides when period == 0 or il % period < period - 1 (set_swa_pattern); the transformers peak holds
    every position of every attention layer (memory.kv_self_bytes)."""
    n = len(kv)
    meta = {
        "general.architecture": "x",
        "x.block_count": n,
        "x.embedding_length": 256,
        "x.attention.head_count": 8,
        "x.attention.head_count_kv": kv,
        "x.attention.key_length": head_dim,
        "x.feed_forward_length": 512,
    }
    if window:
        meta.update({"x.attention.sliding_window": window, "x.attention.sliding_window_pattern": period})
    header = GGUFHeader(3, meta, [StoredTensor("token_embd.weight", "F16", (100, 256), 100 * 256 * 2)], 0, 0)
    cfg, _ = generic_config(header, Path("x.gguf"))
    spec = parse_model_spec(
        {
            "id": "x",
            "name": "x",
            "architecture": "generic",
            "dtype": "float16",
            "sources": {"config": "x"},
            "config": cfg,
        }
    )
    g = archs.geometry(spec)
    for i, (layer, heads) in enumerate(zip(g.self_kv, kv, strict=True)):
        if not heads:
            assert layer is None
            continue
        slides = bool(window) and (period == 0 or i % period < period - 1)
        assert layer == LayerKV("sliding" if slides else "full", heads, head_dim, head_dim, window if slides else None)
    if any(kv):
        assert estimate(spec, context=context).kv_self_bytes == sum(kv) * 2 * head_dim * context * 2


def test_an_architecture_name_that_is_no_name_is_one_line(tmp_path):
    path = write(
        tmp_path / "m.gguf",
        "\x1b[31mevil" + "x" * 200,
        {"block_count": 1, "embedding_length": HIDDEN},
        {"token_embd.weight": ((VOCAB, HIDDEN), Q.F16)},
    )
    with pytest.raises(SpecError, match="is not an architecture name") as err:
        spec_from_path(path)
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_nemotron_h_mlp_layers_keep_no_state(tmp_path):
    # nemotron_h: per-layer head_count_kv and feed_forward_length; recurrent IFF both are 0 (llama-model.cpp),
    # an attention layer has KV heads, an MLP layer a feed-forward width and neither cache nor state
    kv, ff = [0, 2, 0, 0], [0, 0, 128, 0]
    tensors = {**ends(), **attention_block(1, 4, 2, 64, 128)}
    path = write(
        tmp_path / "nemotron_h.gguf",
        "nemotron_h",
        {
            "block_count": 4,
            "embedding_length": HIDDEN,
            "feed_forward_length": ff,
            "attention.head_count": 4,
            "attention.head_count_kv": kv,
            "ssm.conv_kernel": 4,
            "ssm.inner_size": 512,
            "ssm.state_size": 16,
            "ssm.group_count": 2,
            "ssm.time_step_rank": 8,
        },
        tensors,
    )
    spec, _ = spec_from_path(path)
    g = archs.geometry(spec)
    state = (3 * (512 + 2 * 2 * 16), 16 * 512)
    assert [k is not None for k in g.self_kv] == [False, True, False, False]
    assert g.ssm_state == (state, (0, 0), (0, 0), state)
