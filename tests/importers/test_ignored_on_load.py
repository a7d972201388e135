"""Tensors real checkpoints carry that transformers never builds (archs/family.py IGNORED_ON_LOAD): the
multi-token-prediction (MTP) layers of DeepSeek-V3 / GLM-4.5 / GLM-5 (`model.layers.<num_hidden_layers>.*`) and
of Qwen3-Next / Qwen3.5 (`mtp.*`). A scanned checkpoint keeps its per-component breakdown, equal to transformers'
own parameters per component, and one note says how many tensors and bytes were left out.

Each test builds a small random-weight model with transformers 5.23, saves it with save_pretrained (safetensors),
then appends, as a second shard listed in model.safetensors.index.json, the tensors the released checkpoints
store beside it. Their names:
- DeepSeek-V3 (github.com/deepseek-ai/DeepSeek-V3 README_WEIGHTS.md, "MTP Modules", commit 9b4e9788):
  model.layers.61.{embed_tokens, enorm, hnorm, eh_proj, shared_head.norm, shared_head.head} and a whole decoder
  layer ("structure identical to the Main Model hidden layers"); vLLM's DeepSeekMTP loads exactly those names
  (vllm-project/vllm vllm/model_executor/models/deepseek_mtp.py `_rewrite_spec_layer_name`, commit 03356f8c), and
  GLM-4.5's nextn layer the same ones at index 92 (glm4_moe_mtp.py, commit 028aedf6).
- Qwen3-Next / Qwen3.5: mtp.fc (2 x hidden -> hidden), mtp.pre_fc_norm_embedding, mtp.pre_fc_norm_hidden, mtp.norm
  and mtp.layers.0.* (one full-attention decoder layer): vLLM's qwen3_next_mtp.py module names, which its loader maps
  from the checkpoint's `mtp.` prefix.
No verbatim model.safetensors.index.json of these releases is in the stored material (searched: find_string over
"model.layers.61.hnorm.weight": "model-00... and "mtp.fc.weight": "model-0... found only test fixtures), so the
names above are taken from those sources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from willitrun import estimate
from willitrun.importers import spec_from_path
from willitrun.importers.weights import StoredTensor, weights_override

IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SMALL = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, **IDS}
MLA = {
    "kv_lora_rank": 16,
    "q_lora_rank": 24,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "v_head_dim": 8,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "moe_intermediate_size": 32,
    "first_k_dense_replace": 1,
    "n_group": 1,
    "topk_group": 1,
}
INDEXER = {"index_n_heads": 2, "index_head_dim": 16, "index_topk": 4}  # DeepSeek-V3.2 / GLM-5
GATED_DELTANET = {
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 12,
    "linear_conv_kernel_dim": 3,
    "layer_types": ["linear_attention", "full_attention"],
}


def _component(name: str) -> str:
    """Where a transformers parameter belongs, by its module (independent of willitrun's naming rules)."""
    if name.endswith("embed_tokens.weight"):
        return "embeddings"
    if name.startswith("lm_head."):
        return "lm_head"
    if ".visual.merger." in f".{name}":
        return "projector"
    if ".visual." in f".{name}":
        return "vision_tower"
    return "decoder"


def _save_with_extra(tmp_path: Path, model: Any, extra: dict[str, Any]) -> Path:
    """save_pretrained, then the extra tensors as a second shard, both listed in model.safetensors.index.json."""
    from safetensors.torch import save_file

    directory = tmp_path / "checkpoint"
    model.save_pretrained(directory)
    first = directory / "model-00001-of-00002.safetensors"
    (directory / "model.safetensors").rename(first)
    save_file({k: v.contiguous() for k, v in extra.items()}, directory / "model-00002-of-00002.safetensors")
    from safetensors import safe_open

    with safe_open(first, framework="pt") as f:
        names = list(f.keys())
    weight_map = {**dict.fromkeys(names, first.name), **dict.fromkeys(extra, "model-00002-of-00002.safetensors")}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return directory


def _layer_copy(state: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    return {target + k[len(source) :]: v.clone() for k, v in state.items() if k.startswith(source)}


def _check(directory: Path, model: Any, extra: dict[str, Any]) -> None:
    spec, weights = spec_from_path(directory)
    assert weights is not None
    per: dict[str, int] = {}
    for name, p in model.named_parameters():  # tied parameters once
        per[_component(name)] = per.get(_component(name), 0) + 4 * p.numel()  # float32
    assert dict(weights.component_bytes) == per
    assert weights.elements == sum(p.numel() for p in model.parameters())
    assert weights.dtype == "fp32"
    ignored = [n for n in weights.notes if n.startswith("not counted, not built by the model class")]
    nbytes = sum(4 * v.numel() for v in extra.values())
    assert len(ignored) == 1 and f": {len(extra)} tensor(s), {nbytes:,} bytes" in ignored[0], weights.notes
    # the spec from config.json computes the same components, so no mismatch note and the estimate uses them
    assert not any("check that they belong together" in n for n in weights.notes), weights.notes
    e = estimate(spec, weights=weights)
    assert {c.name: c.bytes for c in e.components} == per


def _deepseek_mtp_layer(state: dict[str, Any], n: int, hidden: int, vocab: int) -> dict[str, Any]:
    """model.layers.<n>.*: a copy of the last decoder layer and the MTP module's own tensors (README_WEIGHTS.md)."""
    import torch

    extra = _layer_copy(state, f"model.layers.{n - 1}.", f"model.layers.{n}.")
    p = f"model.layers.{n}."
    extra |= {
        p + "embed_tokens.weight": torch.randn(vocab, hidden),
        p + "enorm.weight": torch.ones(hidden),
        p + "hnorm.weight": torch.ones(hidden),
        p + "eh_proj.weight": torch.randn(hidden, 2 * hidden),
        p + "shared_head.norm.weight": torch.ones(hidden),
        p + "shared_head.head.weight": torch.randn(vocab, hidden),
    }
    return extra


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        ("DeepseekV3", {**SMALL, **MLA, "num_hidden_layers": 2, "num_key_value_heads": 4}),
        (
            "Glm4Moe",
            {
                **SMALL,
                "num_hidden_layers": 2,
                "num_key_value_heads": 2,
                "head_dim": 16,
                "n_routed_experts": 4,
                "num_experts_per_tok": 2,
                "n_shared_experts": 1,
                "moe_intermediate_size": 32,
                "first_k_dense_replace": 1,
                "n_group": 1,
                "topk_group": 1,
                "attention_bias": True,
                "use_qk_norm": True,
            },
        ),
        ("DeepseekV32", {**SMALL, **MLA, **INDEXER, "num_hidden_layers": 2, "num_key_value_heads": 4}),
        ("GlmMoeDsa", {**SMALL, **MLA, **INDEXER, "num_hidden_layers": 2, "num_key_value_heads": 4}),
    ],
    ids=["deepseek_v3", "glm4_moe", "deepseek_v32", "glm_moe_dsa"],
)
def test_layers_past_num_hidden_layers_are_left_out(tmp_path, cls, config):
    """DeepseekV3ForCausalLM / Glm4MoeForCausalLM / DeepseekV32ForCausalLM / GlmMoeDsaForCausalLM build
    num_hidden_layers layers; the checkpoint's MTP layer at that index (model.layers.61 of DeepSeek-V3 and V3.2, 92 of
    GLM-4.5, 78 of GLM-5) is left out, the router's e_score_correction_bias
    (an nn.Buffer) too, and the breakdown is transformers' own per component."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = getattr(tf, f"{cls}ForCausalLM")(getattr(tf, f"{cls}Config")(**config))
    extra = _deepseek_mtp_layer(model.state_dict(), 2, 64, 256)
    directory = _save_with_extra(tmp_path, model, extra)
    _check(directory, model, extra)
    # transformers itself drops them: loading the checkpoint builds the same parameters, none of layer 2
    loaded = getattr(tf, f"{cls}ForCausalLM").from_pretrained(directory)
    assert {n for n, _ in loaded.named_parameters()} == {n for n, _ in model.named_parameters()}


def test_qwen3_next_mtp_is_left_out(tmp_path):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = tf.Qwen3NextConfig(
        **SMALL,
        **GATED_DELTANET,
        num_hidden_layers=2,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=24,
    )
    model = tf.Qwen3NextForCausalLM(config)
    state = model.state_dict()
    extra = _layer_copy(state, "model.layers.1.", "mtp.layers.0.")  # layer 1 is full attention, as the MTP layer
    extra |= {
        "mtp.fc.weight": torch.randn(64, 128),
        "mtp.pre_fc_norm_embedding.weight": torch.ones(64),
        "mtp.pre_fc_norm_hidden.weight": torch.ones(64),
        "mtp.norm.weight": torch.ones(64),
    }
    directory = _save_with_extra(tmp_path, model, extra)
    _check(directory, model, extra)


def test_qwen3_5_mtp_is_left_out_text_and_multimodal(tmp_path):
    """Qwen3_5ForCausalLM (model_type qwen3_5_text) and Qwen3_5ForConditionalGeneration (qwen3_5, as the Hub
    checkpoints ship: model.language_model.*, model.visual.*, and mtp.* at the top)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    text = {**SMALL, **GATED_DELTANET, "num_hidden_layers": 2}
    mtp = {
        "mtp.fc.weight": torch.randn(64, 128),
        "mtp.pre_fc_norm_embedding.weight": torch.ones(64),
        "mtp.pre_fc_norm_hidden.weight": torch.ones(64),
        "mtp.norm.weight": torch.ones(64),
    }
    lm = tf.Qwen3_5ForCausalLM(tf.Qwen3_5TextConfig(**text))
    extra = {**_layer_copy(lm.state_dict(), "model.layers.1.", "mtp.layers.0."), **mtp}
    _check(_save_with_extra(tmp_path / "text", lm, extra), lm, extra)

    vision = {"depth": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 48, "out_hidden_size": 64}
    vlm = tf.Qwen3_5ForConditionalGeneration(tf.Qwen3_5Config(text_config=text, vision_config=vision, **IDS))
    layer = _layer_copy(vlm.state_dict(), "model.language_model.layers.1.", "mtp.layers.0.")
    extra = {**layer, **mtp}
    _check(_save_with_extra(tmp_path / "vl", vlm, extra), vlm, extra)


def test_the_layer_rule_needs_the_layer_count():
    """The extra-layer rule applies only at or past the count it is given: without a count nothing is left out
    (only the total is then certain), and an index written with absurdly many digits is past any count."""
    layer = [StoredTensor(f"model.layers.{i}.input_layernorm.weight", "F32", (4,), 16) for i in (0, 1, 2)]
    hostile = StoredTensor("model.layers." + "9" * 5000 + ".x.weight", "F32", (4,), 16)
    counted = weights_override("deepseek_v3", layer, "t", "safetensors", layers=2)
    assert counted.total_bytes == 32 and counted.tensors == 2 and "1 tensor(s), 16 bytes" in counted.notes[0]
    unknown = weights_override("deepseek_v3", layer, "t", "safetensors")
    assert unknown.total_bytes == 48 and unknown.notes == ()
    assert weights_override("deepseek_v3", [*layer, hostile], "t", "safetensors", layers=2).total_bytes == 32
