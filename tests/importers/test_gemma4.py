"""Gemma 4 text (archs/gemma4.py): parameters equal transformers 5.23's Gemma4ForCausalLM (class defaults and small
configs with every flag), checkpoint names land in the computed components, and each layer's cache equals what a
forward pass of a small random-weight copy keeps (the KV-shared layers keep none)."""

from __future__ import annotations

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path

IDS = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1}
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
    **IDS,
}
CASES = [
    ("class-defaults", {"model_type": "gemma4_text"}),
    ("small", SMALL),
    ("no-ple-untied", {**SMALL, "hidden_size_per_layer_input": 0, "tie_word_embeddings": False}),
    ("k-eq-v-global-kv", {**SMALL, "attention_k_eq_v": True, "num_global_key_value_heads": 1}),
    (
        "kv-shared-double-wide",
        {
            **SMALL,
            "num_hidden_layers": 8,
            "layer_types": ["sliding_attention", "full_attention"] * 4,
            "num_kv_shared_layers": 4,
            "use_double_wide_mlp": True,
            "attention_bias": True,
        },
    ),
    (
        "moe",
        {**SMALL, "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2, "moe_intermediate_size": 24},
    ),
    ("bidirectional-all", {**SMALL, "use_bidirectional_attention": "all"}),
]


def _spec_and_config(tmp_path, case_id, config):
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    return spec, tf.AutoConfig.from_pretrained(path.parent)


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    spec, hf = _spec_and_config(tmp_path, case_id, config)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(hf, dtype=torch.bfloat16)
    assert type(model).__name__ == "Gemma4ForCausalLM"
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


FORWARD = [c for c in CASES if c[0] != "class-defaults"]


@pytest.mark.parametrize(("case_id", "config"), FORWARD, ids=[c[0] for c in FORWARD])
def test_caches_per_layer_equal_a_forward_pass(tmp_path, case_id, config):
    """Batch 2, 7 tokens (longer than the window, so the sliding layers' cache shows what transformers keeps):
    every layer's keys and values have the shape its LayerKV says (per-layer head size and KV heads), the shared
    layers hold nothing, and the estimate's self-attention cache is their sum."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    spec, hf = _spec_and_config(tmp_path, case_id, config)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(hf).eval()
    batch, tokens = 2, 7
    with torch.no_grad():
        cache = model(torch.randint(3, 120, (batch, tokens)), use_cache=True).past_key_values
    g = archs.geometry(spec)
    assert len(cache.layers) == len(g.self_kv) == hf.num_hidden_layers
    total = 0
    for i, (layer, kv) in enumerate(zip(cache.layers, g.self_kv, strict=True)):
        if kv is None:
            assert hf.kv_sharing_modes[i] == "reuse"
            assert getattr(layer, "keys", None) is None or not layer.keys.numel()
            continue
        assert hf.kv_sharing_modes[i] != "reuse"
        assert (kv.kind, kv.window) == (
            ("sliding", hf.sliding_window) if hf.layer_types[i] == "sliding_attention" else ("full", None)
        )
        # a sliding layer's keys are a view of the last window - 1 positions whose storage is still the whole
        # prompt right after the prefill (archs/caches.py: SlidingWindow.held without `windowed`): count the storage
        for t, dim in ((layer.keys, kv.key_dim), (layer.values, kv.value_dim)):
            assert tuple(t.shape[:2]) == (batch, kv.kv_heads) and t.shape[3] == dim
            assert t.untyped_storage().nbytes() == batch * kv.kv_heads * tokens * dim * 4
        total += batch * tokens * (kv.key_width + kv.value_width) * 4
    e = estimate(spec, context=tokens, batch=batch, dtype="fp32", kv_dtype="f32")
    assert e.kv_self_bytes == total


def test_class_default_layers():
    """Gemma4TextConfig() on 30 layers: layers 5, 11, 17, 23, 29 attend in full with 512-wide heads, the rest slide
    over 512 positions with 256-wide heads; 4 KV heads everywhere (attention_k_eq_v is off)."""
    tf = pytest.importorskip("transformers")
    from willitrun.archs.gemma4 import Gemma4TextConfig, self_kv

    hf = tf.Gemma4TextConfig()
    ours = self_kv(Gemma4TextConfig())
    assert [kv.kind if kv else None for kv in ours] == [
        "full" if t == "full_attention" else "sliding" for t in hf.layer_types
    ]
    assert [kv.key_dim for kv in ours if kv] == [hf.per_layer_config[i].head_dim for i in range(30)]
    assert Gemma4TextConfig().head_dim == hf.per_layer_config[0].head_dim == 256  # a sliding layer: the class's own
    assert [kv.kv_heads for kv in ours if kv] == [hf.per_layer_config[i].num_key_value_heads for i in range(30)]


def test_a_saved_config_reads_back(tmp_path):
    """transformers writes per_layer_config (not global_head_dim) into the config.json it saves."""
    tf = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    hf = tf.Gemma4TextConfig(
        **{k: v for k, v in SMALL.items() if k != "model_type"}, attention_k_eq_v=True, num_global_key_value_heads=1
    )
    hf.save_pretrained(tmp_path)
    spec, _ = spec_from_path(tmp_path / "config.json")
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(tmp_path))
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    assert {kv.key_dim for kv in archs.geometry(spec).self_kv if kv} == {16, 32}


@pytest.mark.parametrize(
    "bad",
    [
        {"num_kv_shared_layers": 6},
        {"layer_types": ["sliding_attention"] * 3},
        {"enable_moe_block": True},
        {"num_attention_heads": 3},
    ],
)
def test_configs_transformers_cannot_build_are_refused_in_one_line(tmp_path, bad):
    path = write_config(tmp_path / "bad", {**SMALL, **bad})
    with pytest.raises(SpecError) as err:
        spec_from_path(path)
    assert "\n" not in str(err.value).strip()


VISION_SMALL = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "position_embedding_size": 64,
    "rms_norm_eps": 1e-6,
    "use_clipped_linears": True,
    "standardize": True,
}
TEXT_SMALL = {k: v for k, v in SMALL.items() if k not in IDS}
MM_CASES = [
    ("mm-small", {"model_type": "gemma4", "text_config": TEXT_SMALL, "vision_config": VISION_SMALL, **IDS}),
    ("mm-class-vision", {"model_type": "gemma4", "text_config": TEXT_SMALL, "vision_config": {}, **IDS}),
    ("mm-no-vision-untied", {"model_type": "gemma4", "text_config": TEXT_SMALL, "tie_word_embeddings": False, **IDS}),
]


@pytest.mark.parametrize(("case_id", "config"), MM_CASES, ids=[c[0] for c in MM_CASES])
def test_multimodal_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id, config):
    """Gemma4ForConditionalGeneration (text, and the vision tower and its embedder when vision_config is given):
    transformers' count on the meta device, and every parameter name placed with the bytes the estimate computes."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    spec, hf = _spec_and_config(tmp_path, case_id, config)
    with torch.device("meta"):
        model = tf.Gemma4ForConditionalGeneration(hf).to(torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
    assert archs.geometry(spec).takes_images == (hf.vision_config is not None)


@pytest.mark.parametrize("size", [(640, 480), (1024, 1024), (300, 2000), (4000, 100), (48, 48), (16000, 40)])
def test_image_tokens_follow_the_processor(tmp_path, size):
    """num_soft_tokens_per_image of Gemma4ImageProcessor (max_soft_tokens 280, patch 16, pooling 3) on a blank
    image of each (height, width), the order willitrun's image sizes take (memory.py)."""
    pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    import numpy as np

    spec, _ = _spec_and_config(tmp_path, "mm", MM_CASES[1][1])
    height, width = size
    out = tf.Gemma4ImageProcessor()(images=[np.zeros((height, width, 3), dtype=np.uint8)], return_tensors="pt")
    assert archs.image_tokens(spec, size) == int(out["num_soft_tokens_per_image"][0])
    assert archs.image_tokens(spec, None) == 280


# An audio tower is answered since session 6: tests/importers/test_gemma4_audio.py
