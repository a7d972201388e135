"""vLLM's multimodal profile run (engines/vllm.py `mm_profile`): how many dummy images the vision encoder sees
and what stays alive while the decoder's dummy run and the sampler follow.

Sources: V1 vllm==0.10.1 / 0.11.0 vllm/v1/worker/gpu_model_runner.py `profile_run` (encoder budget =
max(max_num_batched_tokens, one item), items = budget // item tokens; 0.8.x/0.9.x cdiv), vllm/v1/core/
encoder_cache_manager.py `compute_encoder_budget`; the per-prompt limit 999 of vllm/config.py
MultiModalConfig.get_limit_per_prompt; V0 vllm/worker/model_runner.py `profile_run` (min(max_num_seqs,
max_num_batched_tokens // item tokens) sequences, one image each) and enc_dec_model_runner.py (one image per
each of max_num_seqs sequences: 'pixel_values is torch.Size([256, 1, 1, 4, 3, 560, 560])', vLLM issue #10569).
"""

from __future__ import annotations

import pytest

from willitrun.engines import engine_estimate
from willitrun.engines.vllm import VllmOptions
from willitrun.errors import UsageError
from willitrun.memory import Request

GiB = 1 << 30


def _est(catalog, model, gib, version, **kw):
    spec = catalog.resolve("model", model)
    ctx = kw.pop("context", 8192)
    return engine_estimate(
        spec, Request(context=ctx), "vllm", VllmOptions(total_memory_bytes=gib * GiB, version=version, **kw)
    )


@pytest.mark.parametrize(
    ("model", "gib", "version", "per_item", "items", "budget"),
    [
        # LLaVA 1.5: 24 x 24 patches = 576 embeddings; `vllm serve` on a < 70 GiB card: 2048 tokens -> 2048 // 576
        ("llava-1.5-7b", 24, "0.10", 576, 3, 2048),
        # >= 70 GiB: 8192 tokens -> 14 images
        ("llava-1.5-7b", 80, "0.10", 576, 14, 8192),
        # 0.8.x / 0.9.x gpu_model_runner.py: cdiv(encoder_budget, max_tokens_per_mm_item) -> 4
        ("llava-1.5-7b", 24, "0.9", 576, 4, 2048),
        # Gemma 3: mm_tokens_per_image 256 -> 8 and 32 images of 896 x 896 (4096 SigLIP patches each)
        ("gemma-3-4b", 24, "0.10", 256, 8, 2048),
        ("gemma-3-4b", 80, "0.10", 256, 32, 8192),
        # Qwen2.5-VL: the largest image its preprocessor passes, max_pixels 12,845,056 = 3584^2 -> (3584 / 28)^2
        # = 16,384 merged tokens: one item, and the budget raised to it
        ("qwen2.5-vl-7b", 24, "0.10", 16384, 1, 16384),
        ("qwen2.5-vl-7b", 80, "0.33", 16384, 1, 16384),
    ],
)
def test_v1_encoder_budget_and_items(catalog, model, gib, version, per_item, items, budget):
    # a context that holds one item and text (a 16,384-token Qwen2.5-VL image in 8,192 positions leaves no room for
    # text: exit 2 on every engine, memory.check_room_for_text)
    e = _est(catalog, model, gib, version, context=max(8192, per_item + 16))
    assert e.facts["mm_tokens_per_item"] == per_item
    assert e.facts["mm_items"] == items
    assert e.facts["encoder_cache_budget"] == budget


def test_v1_few_images_by_max_model_len(catalog):
    """items per prompt = max(1, min(999, max_model_len // item tokens)); with max_num_seqs 1 and a 1024-token
    window one LLaVA image per prompt fits: the decoder budget caps the encoder's 14."""
    e = _est(catalog, "llava-1.5-7b", 80, "0.10", context=1024, max_num_seqs=1)
    assert e.facts["mm_items"] == 1


def test_v0_sequences_reduced_to_the_images_that_fit(catalog):
    """V0 (0.7): a multimodal model gets max(max_model_len, 5120) batched tokens; min(256, 5120 // 576) = 8
    sequences with one image each, and the sampler runs on those 8 rows (10.3 logits-sized copies)."""
    e = _est(catalog, "llava-1.5-7b", 24, "0.7", context=4096)
    assert e.facts["mm_items"] == 8
    assert e.facts["max_num_batched_tokens"] == 5120
    assert "8 rows x 32064" in e.find("activation peak (profile run)").detail


def test_vision_outputs_held_through_the_decoder_run(catalog):
    """Gemma 3 27B on an 80 GiB card: 32 images x 256 embeddings x hidden 5376 x bf16 stay in the encoder cache
    while the sampler runs; the activation peak is the sampler's plus that."""
    with_images = _est(catalog, "gemma-3-27b", 80, "0.10")
    text = _est(catalog, "gemma-3-27b-text", 80, "0.10")
    held = 32 * 256 * 5376 * 2
    diff = with_images.find("activation peak (profile run)").bytes - text.find("activation peak (profile run)").bytes
    assert diff == held


def test_mllama_v0_profile_scales_with_max_num_seqs(catalog):
    """Llama 3.2 Vision on V0 encodes one 4-tile image per sequence: the vision pass (padded 1608 positions per
    tile; aspect-ratio masks of (4 x 1608)^2 per image; 5 intermediate states) decides and is linear in
    max_num_seqs except the masks, which are too. PR #12126's log (128 sequences) printed 36.63 GiB."""
    a = _est(catalog, "llama-3.2-11b-vision", 80, "0.7", context=65536, max_num_seqs=128)
    b = _est(catalog, "llama-3.2-11b-vision", 80, "0.7", context=65536, max_num_seqs=64)
    assert a.facts["mm_items"] == 128 and b.facts["mm_items"] == 64
    tokens = 128 * 4 * 1608
    mask = 128 * 6432 * 6432 * 2
    kept = 5 * tokens * 1280 * 2
    layer = tokens * (2 * 1280 + 2 * 5120) * 2  # residual in/out + fc1 and GELU outputs (memory.stage_peak)
    assert a.find("activation peak (profile run)").bytes == layer + mask + kept
    assert abs(a.find("activation peak (profile run)").bytes / GiB - 36.63) / 36.63 < 0.08
    assert b.find("activation peak (profile run)").bytes * 2 == a.find("activation peak (profile run)").bytes


@pytest.mark.parametrize("version", ["0.8", "0.9", "0.10", "0.17", "0.22", "0.33"])
def test_mllama_is_v0_only(catalog, version):
    """0.8 to 0.10.1 fall back to V0 ('is not supported by the V1 Engine. Falling back to V0', vllm-ascend issue
    #1963 on v0.9.2); 0.10.2 removed the model (registry.py _PREVIOUSLY_SUPPORTED_MODELS, PR #24907)."""
    with pytest.raises(UsageError, match=r"0\.9-v0"):
        _est(catalog, "llama-3.2-11b-vision", 80, version)


def test_text_models_have_no_multimodal_profile(catalog):
    e = _est(catalog, "llama-3.1-8b", 24, "0.10")
    assert "mm_items" not in e.facts
