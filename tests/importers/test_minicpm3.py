"""MiniCPM3 from config.json (archs/minicpm.py). transformers 5.23 ships MiniCPM3ForCausalLM
(models/minicpm3/modeling_minicpm3.py), so it is the independent count: its parameters per component on the meta
device, and the cache a CPU forward pass leaves (the compressed latent and the rope key per layer). The
default config is the class's (its docstring: "Defaults match the openbmb/MiniCPM3-4B checkpoint"); the small ones
switch every flag the modeling reads (q_lora_rank null, attention_bias, mlp_bias, untied head, a v_head_dim apart
from qk_nope_head_dim, num_key_value_heads that MLA never reads)."""

from __future__ import annotations

import pytest

from willitrun import archs, estimate
from willitrun.engines import VllmOptions, engine_estimate
from willitrun.errors import UsageError
from willitrun.importers import spec_from_config
from willitrun.memory import Request

SMALL = {
    "model_type": "minicpm3",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "kv_lora_rank": 16,
    "q_lora_rank": 24,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8,
    "pad_token_id": 0,
}
CASES = [
    ("class-defaults", {"model_type": "minicpm3"}),
    ("small-tied", SMALL),
    (
        "small-every-flag",
        {
            **SMALL,
            "q_lora_rank": None,
            "attention_bias": True,
            "mlp_bias": True,
            "tie_word_embeddings": False,
            "v_head_dim": 12,
            "num_key_value_heads": 40,
        },
    ),
]


def _transformers(config: dict):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    cfg = tf.MiniCPM3Config(**{k: v for k, v in config.items() if k != "model_type"})
    return torch, tf, cfg


@pytest.mark.parametrize(("case", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_per_component_are_transformers(case, config):
    torch, tf, cfg = _transformers(config)
    with torch.device("meta"):
        model = tf.MiniCPM3ForCausalLM(cfg)
    per: dict[str, int] = {}
    for name, p in model.named_parameters():  # tied weights once
        comp = "embeddings" if "embed_tokens" in name else "lm_head" if name.startswith("lm_head") else "decoder"
        per[comp] = per.get(comp, 0) + p.numel()
    spec = spec_from_config(config, "config.json")
    assert spec.architecture == "minicpm3"
    assert {c.name: c.parameters for c in estimate(spec).components} == per
    assert archs.geometry(spec).tied_embeddings == model.config.tie_word_embeddings


@pytest.mark.parametrize(("case", "config"), CASES[1:], ids=[c[0] for c in CASES[1:]])
def test_the_cache_is_what_a_forward_pass_leaves(case, config):
    """transformers caches kv_lora_rank + qk_rope_head_dim per layer and position (MiniCPM3Attention.forward:
    past_key_values.update(k_pass, k_rot)), float32 here."""
    torch, tf, cfg = _transformers(config)
    torch.manual_seed(0)
    model = tf.MiniCPM3ForCausalLM(cfg).eval()
    with torch.no_grad():
        out = model(torch.arange(1, 8).unsqueeze(0), use_cache=True)
    cache = out.past_key_values
    measured = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    spec = spec_from_config(config, "config.json")
    assert estimate(spec, context=7, dtype="fp32").kv_self_bytes == measured
    assert measured == cfg.num_hidden_layers * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * 7 * 4


def test_engines_that_cache_every_head_are_refused_from_config_json():
    """llama.cpp / ollama (src/models/minicpm3.cpp) and vLLM (models/minicpm3.py) cache every head, not the latent:
    from a config.json they are refused with the reason; llama.cpp's answer comes from the GGUF."""
    spec = spec_from_config({"model_type": "minicpm3"}, "config.json")
    for engine, options, why in (
        ("llama.cpp", None, "give the .gguf file"),
        ("ollama", None, "give the .gguf file"),
        ("vllm", VllmOptions(total_memory_bytes=80 << 30), "does not size that yet"),
    ):
        with pytest.raises(UsageError, match=why):
            engine_estimate(spec, Request(context=4096), engine, options)
    assert engine_estimate(spec, Request(context=4096), "transformers").buffers
