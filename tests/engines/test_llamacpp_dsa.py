"""llama.cpp's DeepSeek sparse-attention (DSA) indexer-key cache, build by build (LlamaCppVersion.dsa_indexer).

- ggml-org/llama.cpp PR #23346 "Support for DeepseekV32ForCausalLM with generic DeepSeek Sparse Attention (DSA)
  implementation" (fairydreaming, opened 2026-05-19, merged late May 2026): deepseek32 loads from it on, with
  llama_kv_cache_dsa's second, indexer-key cache; builds before it cannot load DeepSeek-V3.2 (`2026-01` and older).
- ggml-org/llama.cpp PR #25407 "GLM 5.2 Indexer support" (reviewed 2026-07-24): "Previously the indexer tensors were
  loaded but ignored (GLM_DSA reused `deepseek2::graph`, i.e. plain MLA attention)"; the PR "Routes GLM_DSA to the DSA
  KV cache (`llama_kv_cache_dsa`)". Issue #26382 (b10216, 876a43211, 2026-07-31) already shows its K = V type rule.
- ggml-org/llama.cpp PR #26474 "llama : allocate GLM_DSA indexer cache only in "full" indexer layers" (opened
  2026-08-02): until it the indexer cache was allocated in every layer; "It shall considerably reduce overall indexer
  cache size (approx by ~75%)".

GLM-5.2 (zai-org/GLM-5.2 config.json): 78 layers, index_head_dim 128, index_topk_freq 4, index_skip_topk_offset 3 --
21 "full" indexer layers and 57 "shared" (layers 0, 1, 2, then every 4th: ROCm/ATOM PR #1260 "21 full / 57 shared of
78 layers"; sgl-project/sglang PR #30531 "21 of 78 layers are active indexer layers"; the converted GGUF's
`glm-dsa.attention.indexer.types = [True, True, True, False, False, False, ...]`, PR #25407). At -ctk q8_0 (block_q8_0:
34 bytes per 32) and 65536 cells one layer's indexer keys are 128 / 32 x 34 x 65536 B = 8.5 MiB: 78 layers = 663.00 MiB
before PR #26474, 21 layers = 178.50 MiB after -- the figures reported for that change (663.00 -> 178.50 MiB).
"""

from __future__ import annotations

import pytest

from willitrun import archs
from willitrun.archs.caches import IndexerKeys, MLALatent
from willitrun.engines import LlamaCppOptions, engine_estimate
from willitrun.engines.llamacpp import LLAMACPP_VERSIONS
from willitrun.errors import UsageError
from willitrun.importers.configs import spec_from_config
from willitrun.memory import Request

MIB = 1 << 20

# zai-org/GLM-5.2 config.json's shape fields (as quoted in public repositories, e.g. the GLM-5.2 configs in
# NVIDIA-NeMo/Megatron-Bridge issue #4490's tests and sgl-project/sglang PR #38426), without the quantization block.
GLM_5_2 = {
    "architectures": ["GlmMoeDsaForCausalLM"],
    "model_type": "glm_moe_dsa",
    "vocab_size": 154880,
    "hidden_size": 6144,
    "intermediate_size": 12288,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 78,
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "n_shared_experts": 1,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "q_lora_rank": 2048,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 192,
    "v_head_dim": 256,
    "index_n_heads": 32,
    "index_head_dim": 128,
    "index_topk": 2048,
    "index_topk_freq": 4,
    "index_skip_topk_offset": 3,
    "max_position_embeddings": 1048576,
}

# A small DeepSeek-V3.2 shape (every layer runs its own indexer), as tests/engines/test_llamacpp_currency.py.
DEEPSEEK_V32 = {
    "model_type": "deepseek_v32",
    "vocab_size": 1024,
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 64,
    "q_lora_rank": 96,
    "qk_rope_head_dim": 16,
    "qk_nope_head_dim": 32,
    "v_head_dim": 32,
    "index_head_dim": 32,
    "index_n_heads": 4,
}


def _kv(est) -> int:
    return sum(b.bytes for b in est.buffers if b.kind == "kv_self" and b.name.startswith("KV cache"))


def _q8_0(n: int) -> int:
    """ggml block_q8_0: 32 int8 quants and an f16 scale, 34 bytes a block (ggml-common.h)."""
    return n // 32 * 34


def _glm_kv(version: str, context: int = 65536) -> tuple[int, list[str]]:
    spec = spec_from_config(GLM_5_2, "config.json")
    est = engine_estimate(
        spec,
        Request(context=context, dtype="q4_0", kv_dtype="q8_0"),
        "llama.cpp",
        LlamaCppOptions(parallel=1, version=version),
    )
    return _kv(est), est.notes


def test_glm_5_2_has_21_full_indexer_layers_of_78():
    """The geometry keeps indexer keys in the 21 full layers only (layers 0, 1, 2, then every 4th from 6)."""
    g = archs.geometry(spec_from_config(GLM_5_2, "config.json"))
    full = [i for i, kinds in enumerate(g.caches) if any(isinstance(k, IndexerKeys) for k in kinds)]
    assert full == [0, 1, 2, *range(6, 78, 4)]
    assert len(full) == 21
    assert sum(1 for kinds in g.caches if any(isinstance(k, MLALatent) for k in kinds)) == 78
    assert g.gguf_architecture == "glm-dsa"


def test_pr_26474_indexer_cache_663_to_178_5_mib():
    """GLM-5.2 at -ctk q8_0 and 65536 cells: the indexer-key cache is 663.00 MiB in the builds between PR #25407 and
    PR #26474 (every layer) and 178.50 MiB from PR #26474 on (the 21 full layers); before PR #25407 none at all (plain
    latent attention), so the difference to the 2026-05 build is the indexer cache alone."""
    plain, plain_notes = _glm_kv("2026-05")
    every, every_notes = _glm_kv("2026-07")
    full, full_notes = _glm_kv("current")
    latent = 78 * _q8_0(512 + 64) * 65536  # the MLA latent, K only (PR #19067), every layer
    assert plain == latent
    assert not any("indexer" in n for n in plain_notes)
    assert every - plain == 78 * _q8_0(128) * 65536
    assert (every - plain) / MIB == 663.00
    assert full - plain == 21 * _q8_0(128) * 65536
    assert (full - plain) / MIB == 178.50
    assert any("78 layers also keep the indexer's keys" in n and "PR #26474" in n for n in every_notes)
    assert any("21 layers also keep the indexer's keys" in n for n in full_notes)
    # "approx by ~75%" (PR #26474): 57 of 78 layers' indexer keys go
    assert 1 - (full - plain) / (every - plain) == pytest.approx(57 / 78)


@pytest.mark.parametrize("version", ["2026-01", "2025-12", "2024-05"])
def test_glm_dsa_before_pr_25407_runs_as_plain_latent_attention(version):
    """Before PR #25407 GLM_DSA reused deepseek2's graph: it loads, with no indexer-key cache."""
    kv, notes = _glm_kv(version, context=4096)
    assert kv > 0
    assert not any("indexer" in n for n in notes)


@pytest.mark.parametrize("version", ["2026-01", "2025-12", "2023-12"])
def test_deepseek32_before_pr_23346_is_refused_in_one_line(version):
    spec = spec_from_config(DEEPSEEK_V32, "config.json")
    with pytest.raises(UsageError, match=r"PR #23346") as err:
        engine_estimate(spec, Request(context=4096), "llama.cpp", LlamaCppOptions(version=version))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", ["2026-05", "2026-07", "current", "2026-06-server"])
def test_deepseek32_from_pr_23346_keeps_an_indexer_key_in_every_layer(version):
    """DeepSeek-V3.2 runs an indexer in every layer: the same cache in every build that loads it."""
    spec = spec_from_config(DEEPSEEK_V32, "config.json")
    est = engine_estimate(
        spec, Request(context=4096, dtype="q8_0"), "llama.cpp", LlamaCppOptions(parallel=1, version=version)
    )
    assert _kv(est) == 4 * (64 + 16 + 32) * 4096 * 2  # layers x (latent K + indexer key) x cells x f16


def test_the_rows_order_the_dsa_changes():
    keys = list(LLAMACPP_VERSIONS)
    modes = [LLAMACPP_VERSIONS[k].dsa_indexer for k in keys]
    assert modes[: keys.index("2026-01") + 1] == ["none"] * (keys.index("2026-01") + 1)
    assert [LLAMACPP_VERSIONS[k].dsa_indexer for k in ("2026-05", "2026-07", "current")] == [
        "deepseek32",
        "every_layer",
        "full_layers",
    ]
    assert all("PR #" in LLAMACPP_VERSIONS[k].source for k in ("2026-01", "2026-05", "2026-07", "current"))
