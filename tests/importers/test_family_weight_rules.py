"""Every family that reads a config.json names its checkpoint's tensors in its own module (archs/family.py:
`weight_rules`; issue 20 §1), so a model directory with safetensors imports for each of them.

Qwen2, Qwen3, Gemma, Gemma 2, Phi-3, Granite, StarCoder2 and Cohere 2 moved their config.json keys into their
family modules without their tensor names: `willitrun import` of such a directory with a checkpoint failed
with a KeyError (an internal error) before their modules declared them.
"""

from __future__ import annotations

import pytest

from tests.importers.helpers import header_for, safetensors_file, write_config
from willitrun import estimate
from willitrun.importers import spec_from_path
from willitrun.importers.configs import importable
from willitrun.importers.weights import StoredTensor, component_rules, weights_override

IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SMALL = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    **IDS,
}
# (model_type, config.json): the families that had no rules, on a small shape (their class defaults otherwise)
CASES = [
    ("qwen2", {"model_type": "qwen2", **SMALL}),
    ("qwen3", {"model_type": "qwen3", **SMALL, "head_dim": 16}),
    ("gemma", {"model_type": "gemma", **SMALL, "head_dim": 16}),
    ("gemma2", {"model_type": "gemma2", **SMALL, "head_dim": 16}),
    ("phi3", {"model_type": "phi3", **SMALL}),
    ("granite", {"model_type": "granite", **SMALL}),
    ("starcoder2", {"model_type": "starcoder2", **SMALL}),
    ("cohere2", {"model_type": "cohere2", **SMALL, "layer_types": ["sliding_attention", "full_attention"]}),
]


@pytest.mark.parametrize("model_type", importable())
def test_every_importable_family_names_its_checkpoint_tensors(model_type):
    rules = component_rules(model_type)  # KeyError when the family declares none
    assert rules and all(isinstance(p, str) for p, _ in rules)


@pytest.mark.parametrize(("model_type", "config"), CASES, ids=[c[0] for c in CASES])
def test_checkpoint_names_land_in_the_computed_components(tmp_path, model_type, config):
    """Every parameter name transformers gives the model is placed by the family's rules, and the stored bytes
    per component equal the computed ones (a bf16 checkpoint of the small config, built on the meta device)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / model_type, {**config, "dtype": "bfloat16"})
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent), dtype=torch.bfloat16)
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(model_type, stored, "test", "safetensors")
    assert w.component_bytes, w.notes
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


def test_a_qwen2_directory_with_its_checkpoint_imports(tmp_path):
    """The whole path `willitrun import DIR` takes: config.json plus model.safetensors (a sparse file: its
    header only), the stored bytes placed per component."""
    c = SMALL
    h, kv, d = c["hidden_size"], c["num_key_value_heads"], c["hidden_size"] // c["num_attention_heads"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c["vocab_size"], h)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.q_proj.bias": (h,),
            p + "self_attn.k_proj.weight": (kv * d, h),
            p + "self_attn.k_proj.bias": (kv * d,),
            p + "self_attn.v_proj.weight": (kv * d, h),
            p + "self_attn.v_proj.bias": (kv * d,),
            p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (c["intermediate_size"], h),
            p + "mlp.up_proj.weight": (c["intermediate_size"], h),
            p + "mlp.down_proj.weight": (h, c["intermediate_size"]),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (c["vocab_size"], h)}
    directory = tmp_path / "qwen2-small"
    write_config(directory, {"model_type": "qwen2", **SMALL, "dtype": "bfloat16"})
    header, size = header_for(shapes, "BF16")
    safetensors_file(directory / "model.safetensors", header, sparse_size=size)
    spec, weights = spec_from_path(directory)
    assert weights is not None and weights.total_bytes == size
    assert dict(weights.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
