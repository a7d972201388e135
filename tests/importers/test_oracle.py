"""transformers as the oracle (issue 20 §4): model_types without a willitrun family, answered through
transformers on the meta device. Each config.json is transformers' own default for that model_type
(`AutoConfig.for_model(t).to_dict()`, transformers 5.23); none of these types has a family or is on the
families helper's list (xglm, codegen, mpt, persimmon, biogpt, vaultgemma, minimax).

Expected parameters: `sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())` on the
meta device (tied weights once). Expected caches: by hand from the config's own fields (layers x K and V x KV
heads x head_dim x positions x bytes), so the measurement from the cache tensors is checked independently.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun.cli import app

pytestmark = pytest.mark.reference
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
runner = CliRunner()
CONTEXT = 1024


def write(tmp_path, model_type: str, **overrides) -> str:
    cfg = transformers.AutoConfig.for_model(model_type, **overrides).to_dict()
    path = tmp_path / model_type / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    return str(path)


def answer(path: str, *args: str) -> dict:
    r = runner.invoke(
        app,
        [path, "--vram", "80", "--context", str(CONTEXT), "--dtype", "fp16", "--json", *args],
        env={"NO_COLOR": "1"},
    )
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def meta_parameters(model_type: str, **overrides) -> int:
    config = transformers.AutoConfig.for_model(model_type, **overrides)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


# model_type -> (layers, KV heads, head_dim) read from transformers' default config by hand
DENSE = {
    "xglm": lambda c: (c["num_layers"], c["attention_heads"], c["d_model"] // c["attention_heads"]),
    "codegen": lambda c: (c["n_layer"], c["n_head"], c["n_embd"] // c["n_head"]),
    "mpt": lambda c: (c["n_layers"], c["n_heads"], c["d_model"] // c["n_heads"]),
    "persimmon": lambda c: (
        c["num_hidden_layers"],
        c["num_attention_heads"],
        c["hidden_size"] // c["num_attention_heads"],
    ),
}


@pytest.mark.parametrize("model_type", sorted(DENSE))
def test_dense_model_without_a_family(tmp_path, model_type):
    out = answer(write(tmp_path, model_type))
    assert out["architecture"] == "generic"
    assert out["parameters"] == meta_parameters(model_type)
    assert sum(c["parameters"] for c in out["components"]) == out["parameters"]
    layers, kv_heads, head_dim = DENSE[model_type](transformers.AutoConfig.for_model(model_type).to_dict())
    assert out["kv_self_bytes"] == layers * 2 * kv_heads * head_dim * CONTEXT * 2
    assert any(
        n.startswith(
            f"model_type '{model_type}' has no willitrun family: counted by transformers "
            f"{transformers.__version__} on the meta device"
        )
        for n in out["notes"]
    )


def test_tied_head_counts_once(tmp_path):
    # XGLMConfig ties the LM head to the token embedding by default: no lm_head component of its own
    out = answer(write(tmp_path, "xglm"))
    assert [c["name"] for c in out["components"]] == ["embeddings", "decoder"]


def test_sliding_layers_are_measured(tmp_path):
    # VaultGemma: layer_types alternate sliding (window 4096) and full; at a context beyond the window the
    # transformers peak still holds every position (memory.kv_self_bytes), so the kinds are checked
    path = write(tmp_path, "vaultgemma")
    from willitrun.importers import spec_from_path

    spec, _ = spec_from_path(path)
    cfg = transformers.AutoConfig.for_model("vaultgemma")
    kinds = [layer.kind for layer in spec.config.each_layer()]
    assert kinds == ["sliding" if t == "sliding_attention" else "full" for t in cfg.layer_types]
    assert {layer.window for layer in spec.config.each_layer() if layer.kind == "sliding"} == {cfg.sliding_window}


def test_recurrent_state_beside_the_layers(tmp_path):
    # MiniMax: linear-attention layers keep one state per layer in MiniMaxCache.linear_cache (heads x head_dim x
    # head_dim), full-attention layers keys and values; the meta pass needs bfloat16 (its reference kernel)
    path = write(tmp_path, "minimax")
    out = answer(path)
    cfg = transformers.AutoConfig.for_model("minimax")
    linear = sum(t == "linear_attention" for t in cfg.layer_types)
    head_dim = cfg.head_dim or cfg.hidden_size // cfg.num_attention_heads
    assert out["state_bytes"] == linear * cfg.num_attention_heads * head_dim * head_dim * 4  # float32
    full = len(cfg.layer_types) - linear
    assert out["kv_self_bytes"] == full * 2 * cfg.num_key_value_heads * head_dim * CONTEXT * 2
    assert out["parameters"] == meta_parameters("minimax")


def test_meta_pass_failing_falls_back_to_a_cpu_copy(tmp_path):
    # BioGPT's position code calls .item(), which a meta tensor cannot answer: measured on a small CPU copy
    small = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128}
    out = answer(write(tmp_path, "biogpt", **small))
    assert out["parameters"] == meta_parameters("biogpt", **small)
    assert out["kv_self_bytes"] == 2 * 2 * 4 * 16 * CONTEXT * 2
    assert any("on a CPU copy with the vocabulary and MLP shrunk" in n for n in out["notes"])


def test_remote_code_is_never_run(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "my_model", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}}))
    r = runner.invoke(app, [str(path), "--vram", "80"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "needs trust_remote_code, and willitrun never runs a model's code" in r.stderr


def test_unknown_model_type_needs_remote_code(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "not_in_transformers"}))
    r = runner.invoke(app, [str(path), "--vram", "80"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2
    assert "does not know model_type 'not_in_transformers': it would need the model's own code" in r.stderr


def test_without_the_extra_the_refusal_names_it(tmp_path, monkeypatch):
    from willitrun.importers import oracle

    monkeypatch.setattr(oracle, "available", lambda: False)
    r = runner.invoke(app, [write(tmp_path, "xglm"), "--vram", "80"], env={"NO_COLOR": "1"})
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "pip install 'willitrun[exact]'" in r.stderr


def test_absurd_counts_are_refused_before_anything_is_built(tmp_path):
    # a config.json is untrusted: 10^9 layers would have transformers build modules for ever, even on meta
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "xglm", "num_layers": 10**9}))
    r = runner.invoke(app, [str(path), "--vram", "80"], env={"NO_COLOR": "1"})
    assert r.exit_code == 3
    assert r.stderr.count("\n") == 1 and "num_layers: 1,000,000,000 is beyond willitrun's bound for layers" in r.stderr


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen3", "gemma2", "cohere2"])
def test_the_oracle_agrees_with_hand_written_families(model_type):
    """The same oracle checks families willitrun writes by hand: on transformers' default config, the parameter
    count and every layer's cache (kind, KV heads, key and value widths, window) agree."""
    from willitrun import archs
    from willitrun.dtypes import weight_dtype
    from willitrun.importers import oracle
    from willitrun.importers.configs import spec_from_config
    from willitrun.memory import weight_components
    from willitrun.specs import parse_model_spec

    cfg = transformers.AutoConfig.for_model(model_type).to_dict()
    family = spec_from_config(cfg, "test")
    generic = parse_model_spec(
        {
            "id": "x",
            "name": "x",
            "architecture": "generic",
            "dtype": "float32",
            "sources": {"config": "test"},
            "config": oracle.generic_config(cfg, "test"),
        }
    )
    for spec in (family, generic):
        assert sum(c.parameters for c in weight_components(spec, weight_dtype("fp16"))) == meta_parameters(model_type)
    assert archs.geometry(generic).self_kv == archs.geometry(family).self_kv


def test_a_checkpoint_directory_places_every_stored_tensor(tmp_path):
    # the stored tensors (named as transformers saves them) land in the oracle's components, and their elements
    # are the parameters it counted: no crosscheck note, no tensor left unplaced
    from tests.importers.helpers import header_for, safetensors_file
    from willitrun.importers import spec_from_path

    small = {
        "num_layers": 2,
        "d_model": 64,
        "attention_heads": 4,
        "ffn_dim": 128,
        "vocab_size": 256,
        "torch_dtype": "float16",
    }
    directory = tmp_path / "tiny-xglm"
    config = transformers.AutoConfig.for_model("xglm", **small)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}  # tied lm_head saved once
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config.to_dict()))
    header, size = header_for(shapes)
    safetensors_file(directory / "model.safetensors", header, sparse_size=size)
    spec, weights = spec_from_path(directory)
    assert spec.architecture == "generic" and weights is not None
    assert weights.elements == sum(p.numel() for p in model.parameters()) and weights.notes == ()
    # XGLM's positions are sinusoidal buffers: the embeddings are the token table alone, F16 as written
    assert dict(weights.component_bytes)["embeddings"] == 256 * 64 * 2
    assert set(dict(weights.component_bytes)) == {"embeddings", "decoder"}  # lm_head tied to the token table


def test_a_vision_language_model_without_a_family(tmp_path):
    # LLaVA-NeXT-Video: no causal-LM class, so transformers' image-text-to-text class; its towers are components
    out = answer(write(tmp_path, "llava_next_video"))
    config = transformers.AutoConfig.for_model("llava_next_video")
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(config)
    assert out["parameters"] == sum(p.numel() for p in model.parameters())
    parts = {c["name"]: c["parameters"] for c in out["components"]}
    assert parts["vision_tower"] == sum(p.numel() for p in model.model.vision_tower.parameters())
    assert parts["projector"] == sum(p.numel() for p in model.model.multi_modal_projector.parameters())


def test_a_config_transformers_cannot_build_is_one_spec_error(tmp_path):
    # AyaVisionConfig's defaults pair a 1152-wide SigLIP tower with 14 heads: its attention refuses to build
    r = runner.invoke(app, [write(tmp_path, "aya_vision"), "--vram", "80"], env={"NO_COLOR": "1"})
    assert r.exit_code == 3
    assert r.stderr.count("\n") == 1 and "transformers cannot build 'aya_vision' from this config.json" in r.stderr


@pytest.mark.parametrize("model_type", ["deepseek_v32", "glm_moe_dsa"])
def test_the_oracle_measures_a_sparse_attention_indexers_keys(model_type):
    """DeepSeek-V3.2 and GLM-5 cache, per layer, the MLA latent and the DSA indexer's keys (transformers
    cache_utils.py DynamicIndexedLayer.indexer_keys: [batch, positions, index_head_dim]): the oracle measures
    both, as their families count them (real configs: tests/importers/test_real_configs.py)."""
    from willitrun import estimate
    from willitrun.importers import oracle
    from willitrun.importers.configs import spec_from_config
    from willitrun.specs import parse_model_spec

    small = {"num_hidden_layers": 2, "n_routed_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": 1}
    small |= {"n_group": 1, "topk_group": 1}  # the default 8 groups need 8 experts at least
    cfg = transformers.AutoConfig.for_model(model_type, **small).to_dict()
    family = spec_from_config(cfg, "test")
    block = oracle.generic_config(cfg, "test")
    assert [layer.get("indexer_dim") for layer in block["layers"]] == [cfg["index_head_dim"]]
    generic = parse_model_spec(
        {
            "id": "x",
            "name": "x",
            "architecture": "generic",
            "dtype": "float32",
            "sources": {"config": "t"},
            "config": block,
        }
    )
    ours, measured = (estimate(s, context=CONTEXT, dtype="fp16").kv_self_bytes for s in (family, generic))
    assert ours == measured
