"""vLLM V1 page-size unification: KV layers whose pages differ in size (Gemma 4: sliding layers with 256-wide heads,
full layers with 512-wide global heads).

Expectations are derived by hand from the PyPI wheels' Python files:
- vllm==0.10.1 and 0.11.0 vllm/v1/core/kv_cache_utils.py `get_kv_cache_config` (0.10.1 line 1118, 0.11.0 line
  1187): no uniform spec, type or page size -> a bare `raise NotImplementedError`.
- vllm==0.12.0 kv_cache_utils.py `unify_kv_cache_spec_page_size` (line 885, called by `get_kv_cache_groups` line
  1224; the same in 0.13.0 to 0.17.0 and in 0.22.0 lines 1012-1049 / 1672): a layer whose page divides the largest
  gets `replace(layer_spec, block_size=layer_spec.block_size * ratio)`, ratio = largest // its page; otherwise
  NotImplementedError("... Cannot unify by adjusting block_size."). The equal pages then go to
  `_get_kv_cache_groups_uniform_page_size` (group_size, pools shared by one layer of every group).
- vllm==0.24.0 kv_cache_utils.py line 1049: a non-dividing page is padded only when the backend sets
  `indexes_kv_by_block_stride` (vllm/v1/worker/gpu_model_runner.py line 7498 from the backend;
  v1/attention/backend.py line 205: True when the layered stride order does not keep num_layers first, as
  FlashAttention's and Triton's (1, 0, 2, 3, 4, 5) under the default NHD layout).
- vllm==0.33.0 / 0.34.0 vllm/v1/core/kv_cache_planning.py lines 346-408 (called by `get_kv_cache_groups` line
  1170): a non-dividing page of a non-MLA attention layer is padded to the largest (`page_size_padded`), block size
  kept; MLA still raises. (FlashAttention and Triton declare no KV layouts, so the default LBNHC layout applies:
  not block-outermost, `_get_packed_kv_cache_groups` returns None, v1/attention/backends/utils.py.)
- AttentionSpec page = 2 x block_size x kv_heads x head_size x dtype bytes; SlidingWindowSpec blocks per request
  = cdiv(min(window - 1 + max_num_batched_tokens, max_model_len), block_size) + 1; FullAttentionSpec =
  cdiv(max_model_len, block_size) (vllm==0.10.1 vllm/v1/kv_cache_interface.py).
- vllm==0.22.0 `_max_memory_usage_bytes_from_groups`: group_size x page x the blocks of every group;
  `get_max_concurrency_for_kv_cache_config`: num_blocks / the blocks one request needs over the groups;
  `_report_kv_cache_config`: tokens = int(concurrency x max_model_len).

Gemma 4 text class defaults (transformers 5.23 Gemma4TextConfig, as tests/importers/test_gemma4.py): 30 layers, every
6th full (25 sliding of window 512, 5 full), 4 KV heads, head_dim 256, global_head_dim 512, float32 (no dtype in the
config). Sliding page at block 16: 2 x 16 x 4 x 256 x 4 = 131,072 B; full: 2 x 16 x 4 x 512 x 4 = 262,144 B.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.importers.helpers import write_config
from willitrun import archs
from willitrun.engines.vllm import VllmOptions, kv_layout, version_for_release, vllm_estimate
from willitrun.errors import UsageError
from willitrun.importers import spec_from_path
from willitrun.memory import Request, resolve

GiB = 1 << 30
SMALL = {
    "model_type": "gemma4_text",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 32,
    "sliding_window": 4,
    "vocab_size_per_layer_input": 128,
    "hidden_size_per_layer_input": 8,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 1,
}


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _spec(tmp_path, config):
    spec, _ = spec_from_path(write_config(tmp_path / "m", config))
    return spec


def _layout(spec, version: str, mml: int, batched: int):
    r = resolve(spec, Request())
    layers = (0, archs.geometry(spec).decoder_layers)
    return kv_layout(r, VllmOptions(total_memory_bytes=80 * GiB, version=version), layers, mml, batched)


@pytest.fixture
def gemma4(tmp_path):
    return _spec(tmp_path, {"model_type": "gemma4_text"})


def test_class_default_geometry(gemma4):
    g = archs.geometry(gemma4)
    kinds = [(kv.kind, kv.kv_heads, kv.key_dim, kv.window) for kv in g.self_kv if kv is not None]
    assert len(kinds) == 30
    assert kinds.count(("sliding", 4, 256, 512)) == 25 and kinds.count(("full", 4, 512, None)) == 5


@pytest.mark.parametrize("version", ["0.9", "0.10"])
def test_before_unification_refused_in_one_line(gemma4, version):
    with pytest.raises(UsageError) as e:
        _layout(gemma4, version, 8192, 8192)
    msg = str(e.value)
    assert "\n" not in msg and "differ in size" in msg and "[131072, 262144]" in msg


@pytest.mark.parametrize(("version", "block"), [("0.12", 16), ("0.17", 16), ("0.22", 16), ("0.24", 16), ("0.33", 16)])
def test_pages_equal_after_unification(gemma4, version, block):
    lay = _layout(gemma4, version, 131072, 8192)
    full_page = 2 * block * 4 * 512 * 4
    assert full_page == 262144
    assert lay.page_bytes == full_page and {gr.spec.page_bytes for gr in lay.groups} == {full_page}
    # the sliding layers' block size x (262144 // 131072)
    assert {gr.spec.block_size for gr in lay.groups if gr.spec.kind == "sliding"} == {2 * block}
    assert {gr.spec.block_size for gr in lay.groups if gr.spec.kind == "full"} == {block}
    assert any("block size raised to 32" in n for n in lay.notes)


def test_0_34_block_64_becomes_128(gemma4):
    # vllm==0.34.0 config/cache.py DEFAULT_BLOCK_SIZE 64: full page 2 x 64 x 4 x 512 x 4, sliding block 64 x 2
    lay = _layout(gemma4, "0.34", 131072, 8192)
    assert lay.page_bytes == 2 * 64 * 4 * 512 * 4 == 1048576
    assert {gr.spec.block_size for gr in lay.groups if gr.spec.kind == "sliding"} == {128}


def test_0_22_pool_concurrency_and_tokens(gemma4):
    mml, batched = 131072, 8192
    lay = _layout(gemma4, "0.22", mml, batched)
    page = 262144
    # _get_kv_cache_groups_uniform_page_size: 25 sliding, 5 full -> group_size 5 (25 >= 1.5 x 5): 5 sliding groups
    # of 5 and one full group of 5, no padding; 5 pools each shared by one layer of every group
    assert lay.group_size == 5
    assert sorted((gr.spec.kind, gr.layers) for gr in lay.groups) == [("full", 5)] + [("sliding", 5)] * 5
    assert lay.pool_block_bytes == 5 * page
    sliding = cdiv(min(512 - 1 + batched, mml), 32) + 1  # block 32 after unification
    full = cdiv(mml, 16)
    assert (sliding, full) == (273, 8192)  # cdiv(8703, 32) + 1
    assert lay.blocks_per_request == 5 * sliding + full == 9557
    assert lay.needed_bytes == 5 * page * (5 * sliding + full)
    available = 40 * GiB
    blocks = available // (5 * page)
    assert lay.num_blocks(available) == blocks == 32768
    info = VllmOptions(version="0.22").info
    assert lay.concurrency(blocks, mml, info) == pytest.approx(32768 / 9557)
    assert lay.printed_tokens(blocks, mml, info) == int(32768 / 9557 * mml)


def test_estimate_answers_gemma4_text(gemma4):
    # the whole vLLM budget runs; the longest request and concurrency come from the unified pool
    e = vllm_estimate(gemma4, Request(), VllmOptions(total_memory_bytes=80 * GiB, version="0.22"))
    text = "\n".join(e.notes)
    assert "block size raised to 32" in text and "Maximum concurrency for" in text
    assert "6 KV cache groups of 5 layers, block size 16 / 32," in text


@pytest.fixture
def non_multiple(tmp_path):
    # sliding head 16, global head 24: pages 2 x 16 x 2 x 16 x 4 = 4096 and 6144 B; 6144 % 4096 != 0
    return _spec(tmp_path, {**SMALL, "global_head_dim": 24})


@pytest.mark.parametrize("version", ["0.12", "0.17", "0.22"])
def test_non_multiple_refused_in_one_line(non_multiple, version):
    with pytest.raises(UsageError) as e:
        _layout(non_multiple, version, 4096, 2048)
    msg = str(e.value)
    assert "\n" not in msg and "4096 B does not divide 6144 B" in msg


@pytest.mark.parametrize("version", ["0.24", "0.33", "0.34"])
def test_non_multiple_padded_from_0_24(non_multiple, version):
    lay = _layout(non_multiple, version, 4096, 2048)
    block = VllmOptions(version=version).info.block_size
    full_page = 2 * block * 2 * 24 * 4
    assert lay.page_bytes == full_page and {gr.spec.page_bytes for gr in lay.groups} == {full_page}
    # page_size_padded: the sliding layers keep their block size
    assert {gr.spec.block_size for gr in lay.groups} == {block}
    assert any("padded to the largest" in n for n in lay.notes)


@settings(max_examples=25, deadline=None)
@given(
    head=st.sampled_from([16, 32, 64]),
    ratio=st.integers(1, 4),
    version=st.sampled_from(["0.12", "0.17", "0.22", "0.24", "0.33", "0.34"]),
)
def test_dividing_pages_always_unify_by_block_size(head, ratio, version):
    """Whenever the full layers' page is a whole multiple of the sliding layers' (global_head_dim = ratio x head_dim,
    same KV heads), every group ends with the largest page and the sliding block size is the base x ratio."""
    with tempfile.TemporaryDirectory() as d:
        spec = _spec(Path(d), {**SMALL, "head_dim": head, "global_head_dim": head * ratio})
    lay = _layout(spec, version, 4096, 2048)
    block = VllmOptions(version=version).info.block_size
    assert {gr.spec.page_bytes for gr in lay.groups} == {2 * block * 2 * head * ratio * 4}
    assert {gr.spec.block_size for gr in lay.groups if gr.spec.kind == "sliding"} == {block * ratio}


@pytest.mark.parametrize(
    ("release", "key"),
    [("0.10.1", "0.10"), ("0.11.0", "0.10"), ("0.12.0", "0.12"), ("0.16.0", "0.12"), ("0.17.0", "0.17")],
)
def test_a_printed_release_maps_to_the_key_with_or_without_unification(release, key):
    # the wheels read: 0.10.1 and 0.11.0 have no `unify_kv_cache_spec_page_size`, 0.12.0 to 0.16.0 have it
    assert version_for_release(release) == key
    assert (VllmOptions(version=key).info.page_unify == "none") == (key == "0.10")
