"""Gemma 3n text (archs/gemma3n.py): parameters equal transformers 5.23's Gemma3nForCausalLM (class defaults and
small configs: per-layer widths, layer_types, AltUp inputs, LAuReL rank, KV sharing), checkpoint names land in the
computed components, and each layer's cache equals a forward pass of a small random-weight copy (the KV-shared
last layers keep none)."""

from __future__ import annotations

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path

SMALL = {
    "model_type": "gemma3n_text",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 10,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "sliding_window": 4,
    "vocab_size_per_layer_input": 128,
    "hidden_size_per_layer_input": 8,
    "num_kv_shared_layers": 4,
    "altup_num_inputs": 3,
    "laurel_rank": 8,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 1,
}
CASES = [
    ("class-defaults", {"model_type": "gemma3n_text"}),
    ("small", SMALL),
    (
        "per-layer-widths-untied",
        {
            **SMALL,
            "num_hidden_layers": 6,
            "intermediate_size": [96, 64, 96, 64, 128, 96],
            "layer_types": ["sliding_attention", "full_attention"] * 3,
            "num_kv_shared_layers": 2,
            "tie_word_embeddings": False,
            "attention_bias": True,
        },
    ),
    ("no-sharing", {**SMALL, "num_kv_shared_layers": 0}),
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
    assert type(model).__name__ == "Gemma3nForCausalLM"
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


FORWARD = [c for c in CASES if c[0] != "class-defaults"]


@pytest.mark.parametrize(("case_id", "config"), FORWARD, ids=[c[0] for c in FORWARD])
def test_caches_per_layer_equal_a_forward_pass(tmp_path, case_id, config):
    """Batch 2, 7 tokens: each producing layer's keys and values are what its LayerKV says (a sliding layer's are a
    view of its last window - 1 positions over storage still holding the prompt: archs/caches.py SlidingWindow), the
    shared layers hold nothing, and the estimate's self-attention cache is their sum."""
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
        for t, dim in ((layer.keys, kv.key_dim), (layer.values, kv.value_dim)):
            assert tuple(t.shape[:2]) == (batch, kv.kv_heads) and t.shape[3] == dim
            assert t.untyped_storage().nbytes() == batch * kv.kv_heads * tokens * dim * 4
        total += batch * tokens * (kv.key_width + kv.value_width) * 4
    e = estimate(spec, context=tokens, batch=batch, dtype="fp32", kv_dtype="f32")
    assert e.kv_self_bytes == total


def test_class_defaults_share_the_last_15_of_35_layers():
    tf = pytest.importorskip("transformers")
    from willitrun.archs.gemma3n import Gemma3nTextConfig
    from willitrun.archs.gemma4 import self_kv

    hf = tf.Gemma3nTextConfig()
    ours = self_kv(Gemma3nTextConfig())
    assert [kv is None for kv in ours] == [m == "reuse" for m in hf.kv_sharing_modes] == [False] * 20 + [True] * 15
    assert [kv.kind for kv in ours if kv] == [
        "full" if t == "full_attention" else "sliding" for t in hf.layer_types[:20]
    ]
    assert Gemma3nTextConfig().mlp_width(0) == hf.intermediate_size[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"num_kv_shared_layers": 10},
        {"intermediate_size": [96, 96]},
    ],
)
def test_configs_it_cannot_build_are_refused_in_one_line(tmp_path, bad):
    path = write_config(tmp_path / "bad", {**SMALL, **bad})
    with pytest.raises(SpecError) as err:
        spec_from_path(path)
    assert "\n" not in str(err.value).strip()


def test_a_gemma3n_config_json_ignores_gemma4_keys_and_a_spec_refuses_them(tmp_path):
    """Gemma3nTextConfig has no attention_k_eq_v: the importer drops the key (it reads only the class's keys), and
    a hand-written spec giving one of Gemma 4's fields is refused (the shared text code would read it)."""
    from willitrun.archs.gemma3n import Gemma3nTextConfig

    spec, _ = spec_from_path(write_config(tmp_path / "k", {**SMALL, "attention_k_eq_v": True}))
    assert "attention_k_eq_v" not in spec.config.model_fields_set
    with pytest.raises(ValueError, match="gemma3n_text has no attention_k_eq_v"):
        Gemma3nTextConfig(attention_k_eq_v=True)
