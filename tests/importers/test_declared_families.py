"""Families declared in one file (archs/family.py, archs/decoder.py; issue 20 sections 1 and 3).

A family module's `FAMILY` is the only place its config.json keys, transformers' defaults for them, its
safetensors names and its GGUF names live; the importer, the weights reader and `list architectures` read
them from there. The defaults are checked against transformers' own configuration classes, and small
configs of every declared family against transformers' parameter count on the meta device (the
full-size default and real configs are in tests/reference/reference.json)."""

from __future__ import annotations

import json
import types

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.archs.caches import ShortConvState
from willitrun.archs.family import ConfigClass, Family, check_family
from willitrun.cli.commands.list import architecture_rows
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path
from willitrun.importers.configs import importable, spec_from_config
from willitrun.importers.weights import component_rules
from willitrun.memory import attention

IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SMALL = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    **IDS,
}


def _declared() -> list[tuple[str, ConfigClass]]:
    return [(arch, keys) for fam in archs.families() for arch, keys in fam.config_json.items()]


DECLARED = _declared()


def test_every_generic_decoder_family_is_declared():
    """The families on the generic decoder, read from the registry (their spec is a DecoderSpec, archs/decoder.py;
    tests/reference/build_reference.py measures the same list), each declare their config.json keys."""
    from willitrun.archs.decoder import DecoderSpec

    decoders = {a for fam in archs.families() for a, cls in fam.specs.items() if issubclass(cls, DecoderSpec)}
    assert {"olmo2", "glm4", "gpt_neox", "glm4_moe", "chatglm", "bloom"} <= decoders
    assert decoders <= {a for a, _ in DECLARED}


@pytest.mark.parametrize(("arch", "keys"), DECLARED, ids=[a for a, _ in DECLARED])
def test_declared_defaults_equal_transformers(arch, keys):
    if keys.remote:  # a remote-code class transformers does not ship (tests/importers/test_llamacpp_families.py)
        pytest.skip(f"{keys.name} is remote code: {keys.remote}")
    tf = pytest.importorskip("transformers")
    config_cls = tf.CONFIG_MAPPING[arch]
    assert config_cls.__name__ == keys.name
    # the file that defines the class (qwen3_5_text's is qwen3_5/configuration_qwen3_5.py)
    assert keys.url.endswith(f"/models/{keys.path}")
    assert config_cls.__module__ == "transformers.models." + keys.path.removesuffix(".py").replace("/", ".")
    # Qwen: sliding_window is None unless use_sliding_window, so read its default with the flag on
    config = config_cls(**({"use_sliding_window": True} if "use_sliding_window" in keys.defaults else {}))
    _check_defaults(config, keys, plain=config_cls())


def _check_defaults(config, keys: ConfigClass, plain=None) -> None:
    """Every declared default equals the transformers class's; a nested ConfigClass (text_config,
    vision_config) is checked against the sub-config transformers builds. `plain`: the class built without
    use_sliding_window (that flag's own default)."""
    assert type(config).__name__ == keys.name
    for alias, field in keys.aliases.items():  # a pair of the class's attribute_map, either way round
        amap = type(config).attribute_map
        assert amap.get(alias) == field or amap.get(field) == alias, f"{keys.name}.attribute_map: {alias}, {field}"
    for field, default in keys.defaults.items():
        if default is None or default == "auto":  # derived by the class (__post_init__), as the spec derives it
            if field.endswith("num_key_value_heads"):  # Moonshine: encoder_ / decoder_ ones
                default = getattr(config, field.replace("key_value", "attention"))
            elif field == "head_dim" and getattr(config, "head_dim", None) is not None:  # Llama, Mistral
                default = config.hidden_size // config.num_attention_heads
            else:  # time_step_rank "auto" (ceil(hidden_size / 16)), layer_types None (every layer Mamba-2), ...
                continue
        got = getattr(plain if field == "use_sliding_window" and plain is not None else config, field)
        if isinstance(default, ConfigClass):
            _check_defaults(got, default)
            continue
        if isinstance(got, tuple):  # deepstack_visual_indexes: a tuple default in the class
            got = list(got)
        assert got == default, f"{keys.name}.{field}"


# (case id, config.json) -- every flag a declared family reads, on a small shape
CASES = [
    ("olmo2", {"model_type": "olmo2", **SMALL, "num_key_value_heads": 2}),
    ("olmo2-bias-tied", {"model_type": "olmo2", **SMALL, "attention_bias": True, "tie_word_embeddings": True}),
    ("olmo3", {"model_type": "olmo3", **SMALL, "num_key_value_heads": 2, "sliding_window": 16}),
    ("olmo3-layer-types", {"model_type": "olmo3", **SMALL, "layer_types": ["full_attention"] * 4}),
    ("glm4", {"model_type": "glm4", **SMALL, "num_key_value_heads": 2, "head_dim": 32}),
    ("glm4-nobias", {"model_type": "glm4", **SMALL, "num_key_value_heads": 1, "head_dim": 16, "attention_bias": False}),
    ("smollm3", {"model_type": "smollm3", **SMALL, "num_key_value_heads": 2}),
    (
        "smollm3-sliding",
        {
            "model_type": "smollm3",
            **SMALL,
            "use_sliding_window": True,
            "sliding_window": 8,
            "attention_bias": True,
            "mlp_bias": True,
            "tie_word_embeddings": False,
        },
    ),
    ("seed-oss", {"model_type": "seed_oss", **SMALL, "num_key_value_heads": 2, "head_dim": 32}),
    (
        "seed-oss-biases",
        {
            "model_type": "seed_oss",
            **SMALL,
            "num_key_value_heads": 4,
            "head_dim": None,
            "attention_bias": False,
            "attention_out_bias": True,
            "mlp_bias": True,
        },
    ),
    ("ernie4-5", {"model_type": "ernie4_5", **SMALL, "num_key_value_heads": 2, "head_dim": 32}),
    (
        "ernie4-5-bias",
        {"model_type": "ernie4_5", **SMALL, "head_dim": None, "use_bias": True, "tie_word_embeddings": False},
    ),
    ("hunyuan-dense", {"model_type": "hunyuan_v1_dense", **SMALL, "num_key_value_heads": 2, "head_dim": 16}),
    ("hunyuan-dense-bias", {"model_type": "hunyuan_v1_dense", **SMALL, "head_dim": 32, "attention_bias": True}),
    ("exaone4", {"model_type": "exaone4", **SMALL, "num_key_value_heads": 2, "sliding_window": 16}),
    ("cohere", {"model_type": "cohere", **SMALL, "num_key_value_heads": 2}),
    (
        "cohere-qk-norm",
        {"model_type": "cohere", **SMALL, "use_qk_norm": True, "attention_bias": True, "tie_word_embeddings": False},
    ),
    ("stablelm", {"model_type": "stablelm", **SMALL, "num_key_value_heads": 2}),
    (
        "stablelm-parallel",
        {
            "model_type": "stablelm",
            **SMALL,
            "num_key_value_heads": 4,
            "use_qkv_bias": True,
            "qk_layernorm": True,
            "use_parallel_residual": True,
            "tie_word_embeddings": True,
        },
    ),
    ("phi", {"model_type": "phi", **SMALL}),
    (
        "phi-qk-norm-tied",
        {"model_type": "phi", **SMALL, "num_key_value_heads": 2, "qk_layernorm": True, "tie_word_embeddings": True},
    ),
    ("olmoe", {"model_type": "olmoe", **SMALL, "num_experts": 4, "num_experts_per_tok": 2}),
    (
        "olmoe-gqa-bias",
        {
            "model_type": "olmoe",
            **SMALL,
            "num_key_value_heads": 2,
            "num_experts": 8,
            "num_experts_per_tok": 3,
            "attention_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    (
        "granitemoe",
        {
            "model_type": "granitemoe",
            **SMALL,
            "num_key_value_heads": 2,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "embedding_multiplier": 12,
            "logits_scaling": 8,
        },
    ),
    (
        "granitemoe-bias",
        {
            "model_type": "granitemoe",
            **SMALL,
            "num_local_experts": 6,
            "num_experts_per_tok": 1,
            "attention_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    ("lfm2-hybrid", {"model_type": "lfm2", **SMALL, "num_key_value_heads": 2, "full_attn_idxs": [1, 3]}),
    (
        "lfm2-layer-types",
        {
            "model_type": "lfm2",
            **SMALL,
            "num_key_value_heads": 4,
            "layer_types": ["conv", "conv", "full_attention", "conv"],
            "conv_bias": True,
            "block_ff_dim": 300,
            "block_ffn_dim_multiplier": 1.5,
            "block_multiple_of": 32,
            "tie_embedding": False,
        },
    ),
    (
        "lfm2-no-adjust",
        {
            "model_type": "lfm2",
            **SMALL,
            "num_key_value_heads": 1,
            "full_attn_idxs": [0],
            "block_auto_adjust_ff_dim": False,
        },
    ),
    ("olmo", {"model_type": "olmo", **SMALL, "num_key_value_heads": 2, "clip_qkv": 8.0}),
    ("olmo-bias-tied", {"model_type": "olmo", **SMALL, "attention_bias": True, "tie_word_embeddings": True}),
    ("apertus", {"model_type": "apertus", **SMALL, "num_key_value_heads": 2}),
    (
        "apertus-silu-bias",
        {"model_type": "apertus", **SMALL, "hidden_act": "silu", "attention_bias": True, "head_dim": 8},
    ),
    ("gpt-neox", {"model_type": "gpt_neox", **SMALL}),
    (
        "gpt-neox-no-bias-tied",
        {
            "model_type": "gpt_neox",
            **SMALL,
            "attention_bias": False,
            "use_parallel_residual": False,
            "tie_word_embeddings": True,
        },
    ),
    (
        "glm4-moe",
        {
            "model_type": "glm4_moe",
            **SMALL,
            "num_key_value_heads": 2,
            "moe_intermediate_size": 32,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
        },
    ),
    (
        "glm4-moe-qk-bias",
        {
            "model_type": "glm4_moe",
            **SMALL,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "attention_bias": True,
            "use_qk_norm": True,
            "moe_intermediate_size": 16,
            "n_routed_experts": 8,
            "num_experts_per_tok": 3,
            "n_shared_experts": 0,
            "first_k_dense_replace": 0,
        },
    ),
    (
        "glm4-moe-floor-heads",
        {
            "model_type": "glm4_moe",
            **SMALL,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "moe_intermediate_size": 16,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 2,
            "first_k_dense_replace": 2,
        },
    ),
    (
        "exaone4-no-window",
        {
            "model_type": "exaone4",
            **SMALL,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "sliding_window": None,
            "layer_types": ["full_attention"] * 4,
            "tie_word_embeddings": True,
        },
    ),
    # issue 20 section 3, wave 2: more mixture-of-experts families (class defaults at full size on the meta
    # device, and small configs with every flag)
    ("phimoe-class-defaults", {"model_type": "phimoe"}),
    ("phimoe", {"model_type": "phimoe", **SMALL, "num_key_value_heads": 2, "num_local_experts": 4}),
    (
        "phimoe-bias-sliding",
        {
            "model_type": "phimoe",
            **SMALL,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "num_local_experts": 6,
            "num_experts_per_tok": 3,
            "attention_bias": True,
            "lm_head_bias": True,
            "sliding_window": 16,
            "tie_word_embeddings": True,
        },
    ),
    ("ernie4-5-moe-class-defaults", {"model_type": "ernie4_5_moe"}),
    (
        "ernie4-5-moe",
        {
            "model_type": "ernie4_5_moe",
            **SMALL,
            "num_key_value_heads": 2,
            "moe_intermediate_size": 32,
            "moe_num_experts": 4,
            "moe_k": 2,
            "moe_num_shared_experts": 1,
        },
    ),
    (
        "ernie4-5-moe-bias-interval",
        {
            "model_type": "ernie4_5_moe",
            **SMALL,
            "num_hidden_layers": 6,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "use_bias": True,
            "tie_word_embeddings": False,
            "moe_intermediate_size": 16,
            "moe_num_experts": 8,
            "moe_k": 3,
            "moe_num_shared_experts": 0,
            "moe_layer_start_index": 0,
            "moe_layer_end_index": 4,
            "moe_layer_interval": 2,
        },
    ),
    (
        "hunyuan-moe",
        {
            "model_type": "hunyuan_v1_moe",
            **SMALL,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "num_experts": 4,
            "moe_topk": 2,
        },
    ),
    (
        "hunyuan-moe-bias",
        {
            "model_type": "hunyuan_v1_moe",
            **SMALL,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "attention_bias": True,
            "tie_word_embeddings": True,
            "num_experts": 8,
            "moe_topk": 3,
        },
    ),
    (
        "lfm2-moe",
        {
            "model_type": "lfm2_moe",
            **SMALL,
            "num_key_value_heads": 2,
            "layer_types": ["conv", "full_attention", "conv", "full_attention"],
            "moe_intermediate_size": 32,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "num_dense_layers": 1,
        },
    ),
    (
        "lfm2-moe-conv-bias-untied",
        {
            "model_type": "lfm2_moe",
            **SMALL,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "layer_types": ["full_attention", "conv", "conv", "conv"],
            "conv_bias": True,
            "conv_L_cache": 4,
            "tie_embedding": False,
            "use_expert_bias": False,
            "moe_intermediate_size": 16,
            "num_experts": 8,
            "num_experts_per_tok": 3,
            "num_dense_layers": 0,
        },
    ),
    # classics with learned positions and other key names
    ("gpt2-class-defaults", {"model_type": "gpt2"}),
    ("gpt2", {"model_type": "gpt2", "vocab_size": 256, "n_embd": 64, "n_layer": 3, "n_head": 4, "n_positions": 128}),
    (
        "gpt2-inner-untied",
        {
            "model_type": "gpt2",
            "vocab_size": 256,
            "n_embd": 96,
            "n_layer": 2,
            "n_head": 6,
            "n_positions": 64,
            "n_inner": 200,
            "tie_word_embeddings": False,
        },
    ),
    ("gpt-bigcode-class-defaults", {"model_type": "gpt_bigcode"}),
    (
        "gpt-bigcode-mqa",
        {"model_type": "gpt_bigcode", "vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 96},
    ),
    (
        "gpt-bigcode-mha-untied",
        {
            "model_type": "gpt_bigcode",
            "vocab_size": 256,
            "n_embd": 64,
            "n_layer": 3,
            "n_head": 8,
            "n_positions": 64,
            "n_inner": 120,
            "multi_query": False,
            "tie_word_embeddings": False,
        },
    ),
    ("opt-class-defaults", {"model_type": "opt"}),
    ("opt", {"model_type": "opt", **SMALL, "ffn_dim": 96, "max_position_embeddings": 128}),
    (
        "opt-350m-like",  # facebook/opt-350m's shape: word_embed_proj_dim < hidden_size, norms after the blocks
        {
            "model_type": "opt",
            **SMALL,
            "ffn_dim": 128,
            "max_position_embeddings": 64,
            "word_embed_proj_dim": 32,
            "do_layer_norm_before": False,
            "tie_word_embeddings": False,
        },
    ),
    (
        "opt-no-bias-no-affine",
        {
            "model_type": "opt",
            **SMALL,
            "ffn_dim": 80,
            "max_position_embeddings": 64,
            "enable_bias": False,
            "layer_norm_elementwise_affine": False,
        },
    ),
    ("gptj-class-defaults", {"model_type": "gptj"}),
    (
        "gptj",
        {"model_type": "gptj", "vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8},
    ),
    (
        "gptj-inner-tied",
        {
            "model_type": "gptj",
            "vocab_size": 256,
            "n_embd": 96,
            "n_layer": 3,
            "n_head": 3,
            "rotary_dim": 16,
            "n_inner": 160,
            "tie_word_embeddings": True,
        },
    ),
]


# GLM-4.5 without shared experts: transformers still builds a 0-wide shared MLP and warns that initializing it is a no-op
ZERO_WIDTH = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")


@ZERO_WIDTH
@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_and_caches_equal_transformers(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    g = archs.geometry(spec)
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv_heads = getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads  # GPT-NeoX: no KV grouping
    if getattr(hf, "multi_query", False):  # GPTBigCodeAttention.kv_heads = 1 if multi_query else num_heads
        kv_heads = 1
    assert attention(spec).self_width == kv_heads * head_dim
    # which layers slide, and over what window: transformers' resolved layer_types (LFM2's conv layers
    # keep a short-convolution state instead: hidden x conv_L_cache elements)
    kinds = [(k.kind, k.window) for k in g.self_layers]
    # without layer_types, transformers caches every layer as sliding when the config has a sliding_window
    # (cache_utils.py: get_layer_types_and_kwargs; PhiMoE)
    window = getattr(hf, "sliding_window", None)
    types_ = (
        getattr(hf, "layer_types", None)
        or ["sliding_attention" if window is not None else "full_attention"] * hf.num_hidden_layers
    )
    if "conv" in types_:
        assert [type(k).__name__ for layer in g.caches for k in layer] == [
            "ShortConvState" if t == "conv" else "FullAttention" for t in types_
        ]
        assert all(
            k.conv == hf.hidden_size * hf.conv_L_cache
            for layer in g.caches
            for k in layer
            if isinstance(k, ShortConvState)
        )
        types_ = [t for t in types_ if t != "conv"]
    assert kinds == [("sliding", window) if t == "sliding_attention" and window else ("full", None) for t in types_]


def test_experts_are_counted_and_read_k_of_n():
    spec = spec_from_config({"model_type": "olmoe", **SMALL, "num_experts": 8, "num_experts_per_tok": 2}, "c.json")
    g = archs.geometry(spec)
    assert (g.experts, g.experts_per_token) == (8, 2)
    e = estimate(spec)
    assert e.experts_read == (2, 8) and e.active_parameters < e.parameters


def test_a_config_transformers_cannot_build_is_refused_in_one_line():
    # HunYuanDenseV1Config defaults head_dim to None, and HunYuanDenseV1Attention then fails (head_dim ** -0.5)
    with pytest.raises(SpecError, match="head_dim"):
        spec_from_config({"model_type": "hunyuan_v1_dense"}, "config.json")
    with pytest.raises(SpecError, match="head_dim"):
        spec_from_config({"model_type": "hunyuan_v1_moe"}, "config.json")
    with pytest.raises(SpecError, match="num_experts"):  # a per-layer list (the config class allows one)
        spec_from_config({"model_type": "hunyuan_v1_moe", **SMALL, "head_dim": 16, "num_experts": [4] * 4}, "c.json")
    # Lfm2MoeConfig leaves layer_types None and Lfm2MoeDecoderLayer indexes it
    with pytest.raises(SpecError, match="layer_types"):
        spec_from_config({"model_type": "lfm2_moe"}, "config.json")
    with pytest.raises(SpecError, match="sliding_window_pattern"):
        spec_from_config({"model_type": "exaone4", "sliding_window_pattern": "LLLG"}, "config.json")


def test_exaone4_string_pattern_goes_with_layer_types():
    spec = spec_from_config(
        {
            "model_type": "exaone4",
            **SMALL,
            "num_key_value_heads": 4,
            "sliding_window_pattern": "LLLG",
            "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
        },
        "config.json",
    )
    assert [k.kind for k in archs.geometry(spec).self_layers] == ["sliding"] * 3 + ["full"]


def test_declared_families_are_importable_and_listed_with_their_gguf_names():
    rows = {r["architecture"]: r for r in architecture_rows([])}
    for arch, _ in DECLARED:
        assert arch in importable()
        assert rows[arch]["config_model_type"] == arch
        assert rows[arch]["gguf_declared"] == list(archs.family(arch).gguf_architectures)
    # llama.cpp's names (convert_hf_to_gguf.py: Olmo3ForCausalLM is written as MODEL_ARCH.OLMO2)
    assert rows["olmo3"]["gguf_declared"] == ["olmo2"] and rows["hunyuan_v1_dense"]["gguf_declared"] == [
        "hunyuan-dense"
    ]


def test_declared_families_name_their_checkpoint_tensors():
    rules = component_rules("glm4")
    assert ("lm_head\\.weight", "lm_head") in rules
    with pytest.raises(KeyError):
        component_rules("no-such-architecture")


def test_the_registry_checks_the_contract():
    fam = archs.family("olmo2")
    assert isinstance(fam, Family) and fam.architectures == ("olmo2",)
    assert check_family(fam, "m", ["olmo2"]) is fam
    with pytest.raises(TypeError, match="defines no FAMILY"):
        check_family(types.SimpleNamespace(), "willitrun.archs.broken", ["x"])
    with pytest.raises(TypeError, match="registry gives it"):
        check_family(fam, "willitrun.archs.olmo2", ["olmo2", "olmo3"])
    for f in archs.families():
        for arch in f.architectures:
            assert archs.family(arch) is f and archs.spec_class(arch) is f.specs[arch]


def test_list_architectures_json_shows_the_declared_names(tmp_path):
    from typer.testing import CliRunner

    from willitrun.cli import app

    r = CliRunner().invoke(app, ["list", "architectures", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["architecture"]: row for row in json.loads(r.stdout)["architectures"]}
    assert rows["smollm3"]["config_model_type"] == "smollm3" and rows["smollm3"]["gguf_declared"] == ["smollm3"]
    assert "smollm3-3b" in rows["smollm3"]["models"]


@ZERO_WIDTH
@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_checkpoint_tensor_names_land_in_the_computed_components(tmp_path, case_id, config):
    """Every parameter name transformers gives the model is placed by the family's weight rules, and the
    stored bytes per component equal the computed ones (a bf16 checkpoint of the small config)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent), dtype=torch.bfloat16)
    # as transformers saves the bf16 model: float32 where the class keeps a module in float32 (ERNIE 4.5 MoE's router)
    stored = [
        StoredTensor(name, "F32" if p.dtype == torch.float32 else "BF16", tuple(p.shape), p.element_size() * p.numel())
        for name, p in model.named_parameters()
    ]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert w.component_bytes, w.notes
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


def test_pythia_checkpoint_names_and_buffers():
    """Pythia's files name the LM head embed_out and store each layer's causal-mask and rotary buffers
    (gpt_neox.layers.N.attention.bias / masked_bias / rotary_emb.inv_freq): buffers are left out."""
    from willitrun.importers.weights import StoredTensor, weights_override

    spec = spec_from_config({"model_type": "gpt_neox", **SMALL}, "config.json")
    params = {t.name: t for t in archs.model_tensors(spec)}
    h, v, n = 64, 256, 4
    stored = [
        StoredTensor("gpt_neox.embed_in.weight", "F16", (v, h), 2 * v * h),
        StoredTensor("embed_out.weight", "F16", (v, h), 2 * v * h),
        StoredTensor("gpt_neox.layers.0.attention.bias", "BOOL", (1, 1, 2048, 2048), 2048 * 2048),
        StoredTensor("gpt_neox.layers.0.attention.masked_bias", "F16", (), 2),
        StoredTensor("gpt_neox.layers.0.attention.rotary_emb.inv_freq", "F32", (8,), 32),
        StoredTensor("gpt_neox.layers.0.attention.query_key_value.bias", "F16", (3 * h,), 2 * 3 * h),
        StoredTensor("gpt_neox.final_layer_norm.bias", "F16", (h,), 2 * h),
    ]
    w = weights_override("gpt_neox", stored, "test", "safetensors")
    assert dict(w.component_bytes) == {"embeddings": 2 * v * h, "lm_head": 2 * v * h, "decoder": 2 * 3 * h + 2 * h}
    assert any("buffers" in note for note in w.notes) and len(params) > n


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("case_id", ["ernie4-5-moe-bias-interval", "hunyuan-moe-bias"])
def test_moe_router_stays_float32(tmp_path, dtype, case_id):
    """Ernie4_5_MoePreTrainedModel._keep_in_fp32_modules_strict = ["gate.weight", "moe_statics"], created as
    float32 parameters, and HunYuanMoEV1Gate's nn.Linear(..., dtype=torch.float32): transformers' bf16 and
    fp16 model holds the router in float32, and so does the estimate."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    config = dict(CASES)[case_id]
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent), dtype=torch_dtype)
    fp32 = {n for n, p in model.named_parameters() if p.dtype == torch.float32}
    assert fp32 and all(".mlp.gate." in n for n in fp32), fp32
    e = estimate(spec, dtype=dtype)
    assert sum(c.bytes for c in e.components) == sum(p.numel() * p.element_size() for p in model.parameters())
    assert any("holds them in float32 under bf16 and fp16" in n for n in e.notes)


@pytest.mark.parametrize("case_id", ["gpt2", "gpt-bigcode-mqa", "gpt-bigcode-mha-untied", "opt-350m-like", "gptj"])
def test_learned_position_families_cache_what_transformers_caches(tmp_path, case_id):
    """A forward pass of the small model: its DynamicCache holds keys and values of kv_heads x head_dim per
    position and layer (GPTBigCode with multi_query: one head), as the estimate's self-attention width."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, {**dict(CASES)[case_id], **IDS})
    spec, _ = spec_from_path(path)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent)).eval()
    tokens = 7
    with torch.no_grad():
        cache = model(torch.arange(1, tokens + 1)[None], use_cache=True).past_key_values
    elements = sum(layer.keys.numel() + layer.values.numel() for layer in cache.layers)
    assert elements == 2 * tokens * attention(spec).self_width * len(cache.layers)
    assert len(cache.layers) == len(archs.geometry(spec).self_layers)


# issue 20 section 3, session 5: sparse-attention MoE and classic families. Each is checked against transformers
# 5.23 three ways: its parameter count on the meta device (the class defaults at full size and small configs
# with every flag), where each checkpoint name lands, and a forward pass of a small random-weight copy whose
# cache, layer by layer, holds what the family's cache kinds say (archs/caches.py).
DSA_SMALL = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_group": 1,
    "topk_group": 1,
    "kv_lora_rank": 32,
    "q_lora_rank": 48,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 16,
    "v_head_dim": 16,
    "index_head_dim": 16,
    "index_n_heads": 2,
    "index_topk": 4,
    **IDS,
}
FAMDSA_CASES = [
    ("deepseek-v32-class-defaults", {"model_type": "deepseek_v32"}),
    ("deepseek-v32", {"model_type": "deepseek_v32", **DSA_SMALL, "first_k_dense_replace": 1}),
    (
        "deepseek-v32-layer-types-bias",
        {
            "model_type": "deepseek_v32",
            **DSA_SMALL,
            "mlp_layer_types": ["sparse", "dense", "sparse"],
            "n_shared_experts": 2,
            "attention_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    ("glm-moe-dsa-class-defaults", {"model_type": "glm_moe_dsa"}),
    ("glm-moe-dsa", {"model_type": "glm_moe_dsa", **DSA_SMALL, "first_k_dense_replace": 1}),
    (
        "glm-moe-dsa-shared-indexers",  # GLM-5's schedule: layers after the offset share every other selection
        {
            "model_type": "glm_moe_dsa",
            **DSA_SMALL,
            "num_hidden_layers": 5,
            "first_k_dense_replace": 2,
            "index_topk_freq": 2,
            "index_skip_topk_offset": 2,
        },
    ),
    (
        "glm-moe-dsa-pattern",
        {"model_type": "glm_moe_dsa", **DSA_SMALL, "index_topk_pattern": "FSF", "n_shared_experts": 0},
    ),
    ("minimax-m2-class-defaults", {"model_type": "minimax_m2"}),
    (
        "minimax-m2",
        {
            "model_type": "minimax_m2",
            **SMALL,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        },
    ),
    (
        "minimax-m2-tied-rotary-dim",
        {
            "model_type": "minimax_m2",
            **SMALL,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "rotary_dim": 8,
            "num_local_experts": 6,
            "num_experts_per_tok": 3,
            "tie_word_embeddings": True,
        },
    ),
    # DbrxConfig's own defaults do not build in transformers 5.23 (DbrxAttention reads attn_config.rope_theta,
    # which DbrxAttentionConfig does not define): every DBRX case gives it, as the checkpoints do
    (
        "dbrx-class-widths",
        {"model_type": "dbrx", "attn_config": {"rope_theta": 10000}},
    ),
    (
        "dbrx",
        {
            "model_type": "dbrx",
            "vocab_size": 256,
            "d_model": 64,
            "n_heads": 4,
            "n_layers": 2,
            "max_seq_len": 128,
            "attn_config": {"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 500000, "model_type": ""},
            "ffn_config": {
                "ffn_hidden_size": 48,
                "moe_num_experts": 4,
                "moe_top_k": 2,
                "ffn_act_fn": {"name": "silu"},
                "moe_jitter_eps": 0.01,
                "model_type": "",
            },
        },
    ),
    (
        "dbrx-mqa-default-ffn",
        {
            "model_type": "dbrx",
            "vocab_size": 256,
            "d_model": 96,
            "n_heads": 3,
            "n_layers": 1,
            # clip_qkv too: DbrxAttention.forward calls clamp(min=None, max=None) without one (transformers 5.23)
            "attn_config": {"rope_theta": 10000, "clip_qkv": 6},
        },
    ),
    ("jetmoe-class-defaults", {"model_type": "jetmoe"}),
    (
        "jetmoe",
        {
            "model_type": "jetmoe",
            **SMALL,
            "num_attention_heads": None,
            "num_key_value_heads": 2,
            "kv_channels": 16,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        },
    ),
    (
        "jetmoe-untied",
        {
            "model_type": "jetmoe",
            "vocab_size": 256,
            "hidden_size": 48,
            "intermediate_size": 80,
            "num_hidden_layers": 2,
            "num_key_value_heads": 3,
            "kv_channels": 8,
            "num_local_experts": 6,
            "num_experts_per_tok": 3,
            "tie_word_embeddings": False,
        },
    ),
    ("falcon-class-defaults", {"model_type": "falcon"}),  # Falcon-7B's shape: multi-query, parallel attention
    (
        "falcon-mqa",
        {"model_type": "falcon", **SMALL, "num_hidden_layers": 2, "max_position_embeddings": 64},
    ),
    (
        "falcon-new-architecture",  # Falcon-40B's layout: grouped KV heads, ln_attn and ln_mlp
        {
            "model_type": "falcon",
            **SMALL,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_kv_heads": 2,
            "new_decoder_architecture": True,
            "ffn_hidden_size": None,
        },
    ),
    (
        "falcon-new-one-norm-bias",
        {
            "model_type": "falcon",
            **SMALL,
            "num_hidden_layers": 2,
            "num_kv_heads": 1,
            "new_decoder_architecture": True,
            "num_ln_in_parallel_attn": 1,
            "bias": True,
            "ffn_hidden_size": 100,
            "tie_word_embeddings": False,
        },
    ),
    (
        "falcon-rw-alibi-sequential",  # Falcon-RW's layout: ALiBi, every head its own KV, attention then MLP
        {
            "model_type": "falcon",
            **SMALL,
            "num_hidden_layers": 2,
            "alibi": True,
            "multi_query": False,
            "parallel_attn": False,
            "bias": True,
        },
    ),
    ("bloom-class-defaults", {"model_type": "bloom"}),
    ("bloom", {"model_type": "bloom", "vocab_size": 256, "n_embed": 64, "n_layer": 3, "num_attention_heads": 4}),
    (
        "bloom-untied",
        {
            "model_type": "bloom",
            "vocab_size": 256,
            "hidden_size": 96,
            "n_layer": 2,
            "n_head": 6,
            "tie_word_embeddings": False,
        },
    ),
]


def _famdsa_spec(tmp_path, case_id):
    config = {k: v for k, v in dict(FAMDSA_CASES)[case_id].items() if v is not None}
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    return path, spec


@ZERO_WIDTH
@pytest.mark.parametrize("case_id", [c[0] for c in FAMDSA_CASES])
def test_famdsa_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path, spec = _famdsa_spec(tmp_path, case_id)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent), dtype=torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [
        StoredTensor(name, "F32" if p.dtype == torch.float32 else "BF16", tuple(p.shape), p.element_size() * p.numel())
        for name, p in model.named_parameters()
    ]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert w.component_bytes, w.notes
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


FORWARD = [c for c, _ in FAMDSA_CASES if "class-" not in c]


@ZERO_WIDTH
@pytest.mark.parametrize("case_id", FORWARD)
def test_famdsa_caches_per_layer_equal_a_forward_pass(tmp_path, case_id):
    """A small random-weight copy runs 7 tokens x 2 sequences in float32; every layer's cache (keys, values,
    and the DSA indexer's keys) holds the bytes its cache kinds compute (MLA latent + IndexerKeys; Falcon-40B's
    layout broadcasts its grouped keys to every query head)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.archs.caches import IndexerKeys
    from willitrun.dtypes import F32

    path, spec = _famdsa_spec(tmp_path, case_id)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent)).eval()
    batch, tokens = 2, 7
    with torch.no_grad():
        cache = model(torch.randint(3, 200, (batch, tokens)), use_cache=True).past_key_values
    g = archs.geometry(spec)
    assert len(cache.layers) == len(g.caches)
    for layer, kinds in zip(cache.layers, g.caches, strict=True):
        indexer = getattr(layer, "indexer_keys", None)
        measured = layer.keys.numel() + layer.values.numel() + (indexer.numel() if indexer is not None else 0)
        assert sum(k.bytes(tokens, batch, F32) for k in kinds) == 4 * measured
        assert any(isinstance(k, IndexerKeys) for k in kinds) == (indexer is not None)
        assert layer.keys.dtype == torch.float32 and (indexer is None or indexer.dtype == torch.float32)


def test_dsa_layers_keep_the_latent_and_the_indexer_keys():
    """DeepSeek-V3.2's class defaults: per position and layer 512 + 64 latent elements and 128 indexer-key
    elements (configuration_deepseek_v32.py: kv_lora_rank, qk_rope_head_dim, index_head_dim); GLM-5 with
    index_topk_freq 2 keeps indexer keys only in its full layers."""
    from willitrun.archs.caches import IndexerKeys, MLALatent

    g = archs.geometry(spec_from_config({"model_type": "deepseek_v32"}, "c.json"))
    assert set(g.caches) == {(MLALatent(512, 64), IndexerKeys(128))} and len(g.caches) == 61
    e = estimate(spec_from_config({"model_type": "deepseek_v32"}, "c.json"), context=1000, dtype="bf16")
    assert e.kv_self_bytes == 61 * (512 + 64 + 128) * 1000 * 2
    glm = spec_from_config({"model_type": "glm_moe_dsa", "index_topk_freq": 2}, "c.json")
    kinds = archs.geometry(glm).caches
    full = [i for i, k in enumerate(kinds) if any(isinstance(x, IndexerKeys) for x in k)]
    assert full == [0, 1] + list(range(3, 78, 2))  # full when max(i - 1, 0) % 2 == 0


def test_falcon_40b_layout_caches_every_query_head_in_transformers():
    """FalconAttention._split_heads broadcasts the grouped keys to every head before the cache update: the
    transformers estimate holds heads x head_dim, while self_kv keeps the grouped heads engines cache."""
    spec = spec_from_config(dict(FAMDSA_CASES)["falcon-new-architecture"], "c.json")
    g = archs.geometry(spec)
    assert {k.kv_heads for k in g.self_layers} == {2}
    assert {k.kv_heads for layer in g.caches for k in layer} == {8}
    # the transformers estimate says what it holds: 8 heads x 8 (head_dim 64 / 8) per layer and position;
    # llama.cpp caches the 2 grouped heads (n_head_kv)
    from willitrun.engines.llamacpp import llamacpp_estimate
    from willitrun.memory import Request

    e = estimate(spec, context=100, dtype="bf16")
    assert attention(spec).self_width == 8 * 8 and e.kv_self_bytes == 2 * 2 * 64 * 100 * 2
    lc = llamacpp_estimate(spec, Request(dtype="q8_0", context=256, kv_dtype="f16"))
    assert lc.kind_bytes("kv_self") == 2 * 2 * (2 * 8) * 256 * 2


def test_llamacpp_keeps_the_indexer_keys_in_a_second_cache():
    """llama.cpp's DSA cache (src/llama-kv-cache-dsa.cpp: kv_base + kv_ik, both of type_k and kv_size cells):
    DeepSeek-V3.2's class defaults at 4,096 cells in f16 hold 61 layers x (512 + 64 latent, no V row since PR
    #19067) + 61 layers x 128 indexer-key elements per cell; GLM-5's shared layers hold no indexer keys."""
    from willitrun.engines.llamacpp import llamacpp_estimate
    from willitrun.memory import Request

    spec = spec_from_config({"model_type": "deepseek_v32"}, "c.json")
    lc = llamacpp_estimate(spec, Request(dtype="q4_k_m", context=4096, kv_dtype="f16"))
    assert lc.kind_bytes("kv_self") == 61 * (576 + 128) * 2 * 4096
    assert any("indexer's keys" in n for n in lc.notes)
    glm = spec_from_config({"model_type": "glm_moe_dsa", "index_topk_freq": 2}, "c.json")
    full = 2 + len(range(3, 78, 2))  # layers 0, 1 and every other one from 3 (test_dsa_layers_keep_...)
    lc = llamacpp_estimate(glm, Request(dtype="q4_k_m", context=4096, kv_dtype="f16"))
    assert lc.kind_bytes("kv_self") == (78 * 576 + full * 128) * 2 * 4096


def test_vllm_gives_the_indexer_keys_their_own_fp8_cache_layer():
    """vLLM's DeepseekV32IndexerCache (vllm/model_executor/models/deepseek_v2.py): one MLAAttentionSpec per layer
    of head_size index_head_dim + index_head_dim // 128 x 4 in uint8 (fp8 keys, a float32 scale per 128) beside
    the MLA latent's (kv_lora_rank + rope) x the KV dtype; the pool's blocks cost both."""
    from willitrun.engines.vllm import VllmOptions, vllm_estimate
    from willitrun.memory import Request

    cfg = {**dict(FAMDSA_CASES)["deepseek-v32"], "index_head_dim": 128, "torch_dtype": "bfloat16"}
    spec = spec_from_config(cfg, "c.json")
    v = vllm_estimate(spec, Request(context=64), VllmOptions(total_memory_bytes=80 * 2**30))
    kv = next(b for b in v.buffers if b.kind == "kv_self")
    per_token = 3 * ((32 + 8) * 2 + 128 + 4)  # 3 layers x (latent 32 + rope 8 in bf16 + 128 fp8 keys + 4 B scale)
    assert f"{per_token} B per token" in kv.detail and "indexer's keys" in kv.detail
    blocks, block_size = int(kv.detail.split(" blocks")[0]), 64  # vllm==0.34.0 config/cache.py DEFAULT_BLOCK_SIZE
    assert kv.bytes == blocks * block_size * per_token


# --- issue 20 section 3, session 5 (famhyb): hybrids of linear attention / state-space layers and attention ---
# (case id, config.json): every flag of the family on a small shape; the caches are measured by a forward pass
HYBRID_SMALL = {
    **SMALL,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 12,
    "linear_conv_kernel_dim": 3,
}
HYBRID_CASES = [
    ("qwen3-next-class-defaults", {"model_type": "qwen3_next"}),
    (
        "qwen3-next-sparse-step-mlp-only-tied",
        {
            "model_type": "qwen3_next",
            **HYBRID_SMALL,
            "num_hidden_layers": 6,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 24,
            "intermediate_size": 40,
            "decoder_sparse_step": 2,
            "mlp_only_layers": [3],
            "full_attention_interval": 3,
            "attention_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    (
        "qwen3-next-dense-layer-types",
        {
            "model_type": "qwen3_next",
            **HYBRID_SMALL,
            "num_experts": 0,
            "mlp_only_layers": None,
            "layer_types": ["full_attention", "linear_attention", "linear_attention", "full_attention"],
        },
    ),
    ("qwen3-5-text-class-defaults", {"model_type": "qwen3_5_text"}),
    (
        "qwen3-5-text-interval-2-bias-tied",
        {
            "model_type": "qwen3_5_text",
            **HYBRID_SMALL,
            "num_key_value_heads": 1,
            "linear_num_value_heads": 6,
            "full_attention_interval": 2,
            "attention_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    ("qwen3-5-moe-text-class-defaults", {"model_type": "qwen3_5_moe_text"}),
    (
        "qwen3-5-moe-text-layer-types",
        {
            "model_type": "qwen3_5_moe_text",
            **{k: v for k, v in HYBRID_SMALL.items() if k != "intermediate_size"},
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 8,
            "layer_types": ["linear_attention", "full_attention", "full_attention", "linear_attention"],
        },
    ),
]
MAMBA2_SMALL = {"ssm_state_size": 16, "mamba_num_heads": 8, "mamba_head_dim": 8}
HYBRID_CASES += [
    ("nemotron-h-class-defaults", {"model_type": "nemotron_h"}),
    (
        "nemotron-h-pattern-latent-old-names",
        {
            "model_type": "nemotron_h",
            "vocab_size": 256,
            "hidden_size": 64,
            "hybrid_override_pattern": "M-M*EM-",
            "num_hidden_layers": 7,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "intermediate_size": 96,
            "mlp_bias": True,
            **MAMBA2_SMALL,
            "mamba_n_groups": 2,
            "mamba_d_conv": 3,
            "mamba_conv_bias": False,
            "use_bias": True,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 24,
            "moe_shared_expert_intermediate_size": 40,
            "moe_latent_size": 32,
            "tie_word_embeddings": True,  # NemotronHForCausalLM ties nothing (_tied_weights_keys = {})
        },
    ),
    (
        "nemotron-h-legacy-block-types",
        {
            "model_type": "nemotron_h",
            "vocab_size": 256,
            "hidden_size": 64,
            "layers_block_type": ["mamba", "attention", "mlp", "mamba"],
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": 16,
            "intermediate_size": 96,
            **MAMBA2_SMALL,
            "n_groups": 4,
            "conv_kernel": 2,
        },
    ),
    ("bamba-class-defaults", {"model_type": "bamba"}),
    (
        "bamba-biases-tied",
        {
            "model_type": "bamba",
            **SMALL,
            "attn_layer_indices": [1, 3],
            "num_key_value_heads": 2,
            "mlp_bias": True,
            "attention_bias": True,
            "mamba_n_heads": 8,
            "mamba_n_groups": 2,
            "mamba_d_state": 16,
            "mamba_d_conv": 3,
            "mamba_conv_bias": False,
            "mamba_proj_bias": True,
            "tie_word_embeddings": True,
        },
    ),
    (
        "bamba-head-dim-expand",
        {
            "model_type": "bamba",
            **SMALL,
            "num_hidden_layers": 3,
            "attn_layer_indices": [0],
            "num_key_value_heads": None,
            "mamba_n_heads": 4,
            "mamba_d_head": 48,
            "mamba_expand": 3,
            "mamba_d_state": 8,
        },
    ),
]
ZAMBA2_SMALL = {
    "model_type": "zamba2",
    "vocab_size": 256,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "n_mamba_heads": 4,
    "mamba_d_state": 16,
    "adapter_rank": 8,
}
ZAMBA2_LAYERS = ["mamba", "hybrid", "linear_attention", "hybrid", "hybrid", "linear_attention", "hybrid"]
HYBRID_CASES += [
    ("zamba2-class-defaults", {"model_type": "zamba2"}),
    (
        "zamba2-two-blocks-adapters",
        {
            **ZAMBA2_SMALL,
            "num_hidden_layers": 7,
            "layers_block_type": ZAMBA2_LAYERS,
            "mamba_ngroups": 2,
            "mamba_d_conv": 3,
            "num_mem_blocks": 2,
            "use_shared_attention_adapter": True,
            "intermediate_size": 96,
            "add_bias_linear": True,
        },
    ),
    (
        # transformers 5.23 ties the shared blocks only with tie_word_embeddings: here every hybrid layer has its own
        "zamba2-untied",
        {
            **ZAMBA2_SMALL,
            "num_hidden_layers": 7,
            "layers_block_type": ZAMBA2_LAYERS,
            "num_mem_blocks": 2,
            "use_shared_attention_adapter": True,
            "tie_word_embeddings": False,
        },
    ),
    (
        "zamba2-more-blocks-than-hybrids-long-context",
        {
            **ZAMBA2_SMALL,
            "num_hidden_layers": 2,
            "layers_block_type": ["hybrid", "linear_attention"],
            "num_key_value_heads": 2,
            "num_mem_blocks": 3,
            "use_long_context": True,
        },
    ),
]
KIMI_SMALL = {
    "model_type": "kimi_linear",
    **IDS,
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "moe_intermediate_size": 16,
    "num_attention_heads": 4,
    "kv_lora_rank": 32,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 16,
    "v_head_dim": 12,
}
HYBRID_CASES += [
    ("kimi-linear-class-defaults", {"model_type": "kimi_linear"}),
    (
        # the checkpoint's own names: linear_attn_config (1-indexed layers), num_experts, num_experts_per_token,
        # num_shared_experts, model_max_length, first_k_dense_replace
        "kimi-linear-checkpoint-names-q-lora-bias",
        {
            **KIMI_SMALL,
            "num_hidden_layers": 6,
            "num_experts": 8,
            "num_experts_per_token": 2,
            "num_shared_experts": 2,
            "model_max_length": 100,
            "first_k_dense_replace": 2,
            "q_lora_rank": 24,
            "attention_bias": True,
            "tie_word_embeddings": True,  # KimiLinearForCausalLM ties nothing (_tied_weights_keys = {})
            "linear_attn_config": {
                "full_attn_layers": [2, 6],
                "kda_layers": [1, 3, 4, 5],
                "head_dim": 16,
                "num_heads": 4,
                "short_conv_kernel_size": 3,
            },
        },
    ),
    (
        "kimi-linear-layer-types",
        {
            **KIMI_SMALL,
            "num_hidden_layers": 4,
            "layer_types": ["full_attention", "linear_attention", "full_attention", "linear_attention"],
            "mlp_layer_types": ["sparse", "dense", "dense", "sparse"],
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 0,
            "linear_head_dim": 8,
            "linear_num_heads": 2,
        },
    ),
]
HYBRID_TYPES = {"qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "nemotron_h", "bamba", "zamba2", "kimi_linear"}


def test_hybrid_families_are_declared():
    assert {a for a, _ in DECLARED} >= HYBRID_TYPES
    assert {c["model_type"] for _, c in HYBRID_CASES} == HYBRID_TYPES


@ZERO_WIDTH  # Kimi Linear without shared experts: transformers builds a 0-wide shared MLP
@pytest.mark.parametrize(("case_id", "config"), HYBRID_CASES, ids=[c[0] for c in HYBRID_CASES])
def test_hybrid_parameters_and_tensor_names_equal_transformers(tmp_path, case_id, config):
    """transformers' own count on the meta device, and every parameter name it gives placed by the family's
    weight rules with the bytes per component the estimate computes (a bf16 checkpoint of the same config)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent), dtype=torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


@ZERO_WIDTH
@pytest.mark.parametrize(
    ("case_id", "config"),
    [c for c in HYBRID_CASES if "class-defaults" not in c[0]],
    ids=[c[0] for c in HYBRID_CASES if "class-defaults" not in c[0]],
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_hybrid_caches_per_layer_equal_a_forward_pass(tmp_path, case_id, config, dtype):
    """A small random-weight copy run once on the CPU (batch 2, 7 tokens): each layer of its cache holds what
    that layer's cache kinds say -- keys and values of every position on the attention layers
    (FullAttention), a conv state in the model's dtype and a float32 recurrent state on the Gated DeltaNet
    (LinearAttentionState), Mamba-2 (MambaState) and KDA (LinearAttentionState) layers, the latent and rope key
    on Kimi Linear's MLA layers (MLALatent), nothing on Nemotron-H's MLP and expert blocks --
    and the estimate's totals are their sum."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.archs.caches import F32_BYTES, FullAttention, MLALatent, RecurrentState

    path = write_config(tmp_path / case_id, {**config, **IDS})
    spec, _ = spec_from_path(path)
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent)).to(torch_dtype).eval()
    batch, tokens, size = 2, 7, torch.finfo(torch_dtype).bits // 8
    with torch.no_grad():
        cache = model(torch.randint(3, 200, (batch, tokens)), use_cache=True).past_key_values
    kinds = archs.geometry(spec).caches
    assert len(cache.layers) == len(kinds)
    kv_bytes = state_bytes = 0
    for layer, layer_kinds in zip(cache.layers, kinds, strict=True):
        if not layer_kinds:  # an MLP / expert block: transformers keeps a DummyLayer
            assert not getattr(layer, "conv_states", None) and getattr(layer, "keys", None) is None
            continue
        for kind in layer_kinds:  # Zamba2's hybrid layers keep both
            if isinstance(kind, FullAttention):
                assert layer.keys.numel() + layer.values.numel() == batch * tokens * kind.kv_heads * 2 * kind.key_dim
                kv_bytes += (layer.keys.numel() + layer.values.numel()) * size
            elif isinstance(kind, MLALatent):  # Kimi Linear: the latent as keys, the rope key as values
                assert (layer.keys.numel(), layer.values.numel()) == (
                    batch * tokens * kind.kv_lora_rank,
                    batch * tokens * kind.rope_dim,
                )
                kv_bytes += (layer.keys.numel() + layer.values.numel()) * size
            else:
                assert isinstance(kind, RecurrentState)
                (conv,), (rec,) = layer.conv_states.values(), layer.recurrent_states.values()
                assert (conv.numel(), rec.numel()) == (batch * kind.conv, batch * kind.ssm)
                assert (conv.dtype, rec.dtype) == (torch_dtype, torch.float32) and kind.ssm_f32
                state_bytes += conv.numel() * size + rec.numel() * F32_BYTES
        if not any(isinstance(k, FullAttention | MLALatent) for k in layer_kinds):
            assert getattr(layer, "keys", None) is None or not layer.keys.numel()
    kv = {"float32": "f32", "bfloat16": "bf16"}[dtype]
    e = estimate(spec, context=tokens, batch=batch, dtype={"float32": "fp32", "bfloat16": "bf16"}[dtype], kv_dtype=kv)
    assert (e.kv_self_bytes, e.state_bytes) == (kv_bytes, state_bytes)


def test_hybrid_configs_transformers_cannot_build_are_refused_in_one_line():
    # fix_query_key_value_ordering views the value heads per key head
    with pytest.raises(SpecError, match="linear_num_value_heads"):
        spec_from_config({"model_type": "qwen3_next", **HYBRID_SMALL, "linear_num_value_heads": 3}, "c.json")
    with pytest.raises(SpecError, match="layer_types"):
        spec_from_config({"model_type": "qwen3_5_text", **HYBRID_SMALL, "layer_types": ["full_attention"]}, "c.json")
    # Zamba2Config.validate_layer_type: num_hidden_layers must equal the block list's length (54 by default)
    with pytest.raises(SpecError, match="layer_types"):
        spec_from_config({**ZAMBA2_SMALL, "layers_block_type": ["hybrid", "mamba"]}, "c.json")
    # Zamba2Attention.forward adds the adapters' 2 x hidden_size to keys and values: no fewer KV heads
    with pytest.raises(SpecError, match="use_shared_attention_adapter"):
        spec_from_config(
            {
                **ZAMBA2_SMALL,
                "num_hidden_layers": 2,
                "layers_block_type": ["hybrid", "mamba"],
                "use_shared_attention_adapter": True,
                "num_key_value_heads": 2,
            },
            "c.json",
        )


# --- issue 20 section 3 (fammm): multimodal families, whose transformers class is a ...ForConditionalGeneration
# small configs exercising every flag; the full-size defaults and real checkpoints are in tests/reference
MULTIMODAL_CASES = [
    ("qwen3-vl-defaults", {"model_type": "qwen3_vl"}),
    ("qwen3-vl-moe-defaults", {"model_type": "qwen3_vl_moe"}),
    (
        "qwen3-vl-tied-biased",
        {
            "model_type": "qwen3_vl",
            "tie_word_embeddings": True,
            "text_config": {**SMALL, "num_key_value_heads": 2, "head_dim": 24, "attention_bias": True},
            "vision_config": {
                "depth": 3,
                "hidden_size": 32,
                "num_heads": 2,
                "intermediate_size": 48,
                "out_hidden_size": 64,
                "deepstack_visual_indexes": [0, 2],
                "num_position_embeddings": 64,
                "patch_size": 14,
            },
        },
    ),
    (
        "qwen3-vl-moe-dense-layer",
        {
            "model_type": "qwen3_vl_moe",
            "text_config": {
                **SMALL,
                "num_key_value_heads": 2,
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 16,
                "mlp_only_layers": [1],
                "decoder_sparse_step": 1,
            },
            "vision_config": {
                "depth": 2,
                "hidden_size": 32,
                "num_heads": 2,
                "intermediate_size": 48,
                "out_hidden_size": 64,
            },
        },
    ),
]


MULTIMODAL_CASES += [
    ("glm4v-defaults", {"model_type": "glm4v"}),
    ("glm4v-moe-defaults", {"model_type": "glm4v_moe"}),
    (
        # a pre-v5 file's text_config.tie_word_embeddings ties lm_head (Glm4vConfig.__post_init__ forwards it)
        "glm4v-text-tied-qkv-bias",
        {
            "model_type": "glm4v",
            "text_config": {**SMALL, "num_key_value_heads": 2, "tie_word_embeddings": True},
            "vision_config": {
                "depth": 2,
                "hidden_size": 32,
                "num_heads": 2,
                "out_hidden_size": 64,
                "intermediate_size": 48,
                "attention_bias": True,
                "image_size": 112,
            },
        },
    ),
    (
        # use_qk_norm is not read by Glm4vMoeTextAttention (no q/k norms), unlike GLM-4.5's text model
        "glm4v-moe-dense-first-shared-experts",
        {
            "model_type": "glm4v_moe",
            "tie_word_embeddings": True,
            "text_config": {
                **SMALL,
                "num_key_value_heads": 2,
                "n_routed_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 16,
                "first_k_dense_replace": 2,
                "n_shared_experts": 2,
                "use_qk_norm": True,
                "attention_bias": False,
            },
            "vision_config": {
                "depth": 2,
                "hidden_size": 32,
                "num_heads": 2,
                "out_hidden_size": 64,
                "intermediate_size": 48,
            },
        },
    ),
]


MULTIMODAL_CASES += [
    ("internvl-defaults", {"model_type": "internvl"}),
    (
        # InternVL 3.5: a Qwen3 language model (head_dim 128 unless given, q/k norms, biases when attention_bias)
        "internvl-qwen3-text",
        {
            "model_type": "internvl",
            "text_config": {"model_type": "qwen3", **SMALL, "num_key_value_heads": 2, "attention_bias": True},
            "vision_config": {
                "num_hidden_layers": 1,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "intermediate_size": 48,
            },
        },
    ),
    (
        "internvl-untied-qk-norm-rms",
        {
            "model_type": "internvl",
            "tie_word_embeddings": False,
            "text_config": {"model_type": "qwen2", **SMALL, "num_key_value_heads": 2},
            "vision_config": {
                "num_hidden_layers": 2,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "intermediate_size": 48,
                "attention_bias": True,
                "use_qk_norm": True,
                "norm_type": "rms_norm",
                "use_mask_token": True,
                "use_mean_pooling": False,
                "image_size": 224,
            },
        },
    ),
]


def _conditional_generation(tf, config):
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return getattr(tf, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[config.model_type])(config)


@pytest.mark.parametrize(("case_id", "config"), MULTIMODAL_CASES, ids=[c[0] for c in MULTIMODAL_CASES])
def test_multimodal_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id, config):
    """transformers' ...ForConditionalGeneration on the meta device: the total, and every parameter name placed
    by the family's weight rules with the bytes of each computed component (a bf16 checkpoint)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = _conditional_generation(tf, tf.AutoConfig.from_pretrained(path.parent)).to(torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
    # every text layer keeps a full-attention cache of kv_heads x head_dim (no sliding window in Qwen3-VL)
    text = model.config.text_config
    g = archs.geometry(spec)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert [(k.kind, k.kv_heads, k.key_dim) for k in g.self_layers] == [
        ("full", text.num_key_value_heads, head_dim)
    ] * text.num_hidden_layers
    assert g.takes_images


def test_qwen3_vl_image_tokens_follow_the_processor():
    """Qwen2VLImageProcessor (the processor Qwen3-VL uses) at the checkpoint's patch 16 and merge 2: the tokens
    of an image are its grid_thw product / merge^2, as Qwen3VLProcessor writes them into the prompt."""
    pytest.importorskip("torch")
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    spec = spec_from_config({"model_type": "qwen3_vl"}, "config.json")
    processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2)
    np = pytest.importorskip("numpy")
    for h, w in [(1024, 768), (224, 336), (50, 3000), (4000, 3000)]:
        grid = processor(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="pt")["image_grid_thw"]
        assert archs.image_tokens(spec, (h, w)) == int(grid.prod()) // 4, (h, w)


def test_qwen3_vl_merger_width_other_than_the_text_width_is_a_warning_not_a_refusal():
    """Qwen3VLConfig() builds (transformers' class defaults: out_hidden_size 3584, text hidden_size 4096) but its
    image features cannot enter the language model (Qwen3VLModel.get_placeholder_mask raises in a forward pass)."""
    spec = spec_from_config({"model_type": "qwen3_vl"}, "config.json")
    assert spec.notes.startswith("Warning: vision_config.out_hidden_size (3584)")
    fits = spec_from_config({"model_type": "qwen3_vl", "vision_config": {"out_hidden_size": 4096}}, "config.json")
    assert "out_hidden_size" not in (fits.notes or "")


def test_glm4v_image_tokens_follow_the_processor():
    """Glm4vImageProcessorPil (patch 14, merge 2, an image counted as temporal_patch_size frames against the pixel
    bounds): the tokens of an image are its grid_thw product / merge^2, as Glm4vProcessor writes them."""
    pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    spec = spec_from_config({"model_type": "glm4v"}, "config.json")
    processor = Glm4vImageProcessorPil()
    for h, w in [(1024, 768), (224, 336), (20, 300), (6000, 4000)]:
        grid = processor(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="pt")["image_grid_thw"]
        assert archs.image_tokens(spec, (h, w)) == int(grid.prod()) // 4, (h, w)


def test_internvl_tiles_follow_the_processor():
    """GotOcr2ImageProcessorPil with InternVL's tiling (crop_to_patches, 1..12 tiles of 448, a thumbnail beside
    several): willitrun's tiles and tokens (256 per tile) equal the processor's num_patches x image_seq_length."""
    pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from willitrun.archs.internvl import tiles

    tiling = {"crop_to_patches": True, "min_patches": 1, "max_patches": 12}
    spec = archs.spec_class("internvl").model_validate(
        {**spec_from_config({"model_type": "internvl"}, "config.json").model_dump(), "preprocessor": tiling}
    )
    processor = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, **tiling)
    for h, w in [(1024, 768), (224, 336), (448, 448), (100, 3000), (3000, 2000), (800, 801)]:
        n = processor(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="pt")["num_patches"][0]
        assert tiles(spec, (h, w)) == int(n), (h, w)
        assert archs.image_tokens(spec, (h, w)) == 256 * int(n)
    # without crop_to_patches (transformers' default) an image is one tile
    assert archs.image_tokens(spec_from_config({"model_type": "internvl"}, "config.json"), (1024, 768)) == 256


MOONSHINE_CASES = [
    ("moonshine-defaults", {"model_type": "moonshine"}),
    (
        "moonshine-gqa-untied-biased",
        {
            "model_type": "moonshine",
            "vocab_size": 300,
            "hidden_size": 64,
            "intermediate_size": 96,
            "encoder_num_hidden_layers": 2,
            "decoder_num_hidden_layers": 3,
            "encoder_num_attention_heads": 4,
            "decoder_num_attention_heads": 4,
            "encoder_num_key_value_heads": 2,
            "decoder_num_key_value_heads": 2,
            "attention_bias": True,
            "tie_word_embeddings": False,
            "pad_head_dim_to_multiple_of": 24,
        },
    ),
]


@pytest.mark.parametrize(("case_id", "config"), MOONSHINE_CASES, ids=[c[0] for c in MOONSHINE_CASES])
def test_moonshine_parameters_caches_and_encoder_positions_equal_transformers(tmp_path, case_id, config):
    """MoonshineForConditionalGeneration on the meta device: the parameter total, every name placed by the weight
    rules, the decoder's self and cross caches (decoder KV heads x head_dim; pad_head_dim_to_multiple_of pads only
    inside the kernel), and the encoder positions its convolutions leave of N samples (a meta forward pass)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.archs.moonshine import encoder_positions
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = tf.MoonshineForConditionalGeneration(hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "F32", tuple(p.shape), 4 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override("moonshine", stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="fp32").components}
    g = archs.geometry(spec)
    layer = model.model.decoder.layers[0]
    kv_width = layer.self_attn.k_proj.out_features
    assert {k.key_width for k in (*g.self_layers, *g.cross_layers)} == {kv_width}
    assert len(g.self_layers) == len(g.cross_layers) == hf.decoder_num_hidden_layers
    if hf.encoder_num_key_value_heads != hf.encoder_num_attention_heads:
        # MoonshineAttention views its queries with num_key_value_heads heads: grouped heads cannot run (a warning)
        assert spec.notes and "num_key_value_heads" in spec.notes
        return
    for samples in (895, 16_000, 48_000, 116_789, 480_000):  # 895: the shortest the convolutions accept
        with torch.device("meta"):
            out = model.model.encoder(torch.empty(1, samples)).last_hidden_state
        assert encoder_positions(samples) == out.shape[1], samples
    assert g.encoder_tokens_default == encoder_positions(30 * 16_000) == 1248


@pytest.mark.parametrize(
    ("case_id", "config"), MULTIMODAL_CASES + MOONSHINE_CASES, ids=[c[0] for c in MULTIMODAL_CASES + MOONSHINE_CASES]
)
def test_a_config_transformers_saved_reads_back(tmp_path, case_id, config):
    """transformers 5 saves every field under its attribute's name (Qwen3-VL-MoE's num_experts as
    num_local_experts, GLM-4.5V's n_routed_experts as itself...): its own config.json imports to the same count."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    hf = tf.AutoConfig.for_model(**config)
    hf.save_pretrained(tmp_path)
    spec, _ = spec_from_path(tmp_path / "config.json")
    model_cls = tf.MoonshineForConditionalGeneration if config["model_type"] == "moonshine" else None
    with torch.device("meta"):
        model = model_cls(hf) if model_cls else _conditional_generation(tf, hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())


def test_internvl_values_transformers_cannot_run_are_warnings():
    """InternVLConfig builds with vision_feature_select_strategy 'full', but get_image_features then reshapes the
    class token and 1,024 patches to a 32 x 32 grid and fails (measured, transformers 5.23): a warning, not a refusal."""
    spec = spec_from_config({"model_type": "internvl", "vision_feature_select_strategy": "full"}, "config.json")
    assert spec.notes.startswith("Warning: vision_feature_select_strategy 'full'")
    assert "select_strategy" not in (spec_from_config({"model_type": "internvl"}, "config.json").notes or "")


def test_internvl_with_a_text_model_it_does_not_model_is_refused_in_one_line():
    with pytest.raises(SpecError, match="model_type"):
        spec_from_config({"model_type": "internvl", "text_config": {"model_type": "llama"}}, "config.json")


# --- session 5 (qwen35mm): Qwen3.5 as its checkpoints ship (model_type qwen3_5 / qwen3_5_moe), a Qwen3-VL vision
# tower without DeepStack beside Qwen3.5's hybrid language model (archs/qwen3_5_vl.py)
QWEN3_5_VISION = {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 48, "out_hidden_size": 64}
QWEN3_5_CASES = [
    ("qwen3-5-defaults", {"model_type": "qwen3_5"}),
    ("qwen3-5-moe-defaults", {"model_type": "qwen3_5_moe"}),
    (
        # as the Hub files write it: vision model_type "qwen3_5" (renamed by Qwen3_5Config.__post_init__) and
        # deepstack_visual_indexes [] (not a Qwen3_5VisionConfig field); only the top-level flag ties lm_head
        "qwen3-5-tied-hub-vision-keys",
        {
            "model_type": "qwen3_5",
            "tie_word_embeddings": True,
            "text_config": {"model_type": "qwen3_5_text", **HYBRID_SMALL, "tie_word_embeddings": False},
            "vision_config": {
                **QWEN3_5_VISION,
                "model_type": "qwen3_5",
                "deepstack_visual_indexes": [],
                "num_position_embeddings": 64,
                "patch_size": 14,
            },
        },
    ),
    (
        # text_config's own tie is not read by Qwen3_5MoeForConditionalGeneration (measured, transformers 5.23)
        "qwen3-5-moe-text-tie-ignored",
        {
            "model_type": "qwen3_5_moe",
            "text_config": {
                **HYBRID_SMALL,
                "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 16,
                "shared_expert_intermediate_size": 24,
                "tie_word_embeddings": True,
            },
            "vision_config": {**QWEN3_5_VISION, "temporal_patch_size": 1, "spatial_merge_size": 1},
        },
    ),
]


@pytest.mark.parametrize(("case_id", "config"), QWEN3_5_CASES, ids=[c[0] for c in QWEN3_5_CASES])
def test_qwen3_5_parameters_checkpoint_names_and_caches_equal_transformers(tmp_path, case_id, config):
    """Qwen3_5(Moe)ForConditionalGeneration on the meta device: the total, every parameter name placed by the
    weight rules with the bytes of each computed component (bf16), and keys and values only on the layers
    transformers builds a self_attn for (the others keep the Gated DeltaNet state)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = _conditional_generation(tf, tf.AutoConfig.from_pretrained(path.parent)).to(torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
    assert {"vision_tower", "projector"} <= dict(w.component_bytes).keys()
    text = model.config.text_config
    g = archs.geometry(spec)
    layers = model.model.language_model.layers
    assert [kv is not None for kv in g.self_kv] == [hasattr(layer, "self_attn") for layer in layers]
    assert {(kv.kv_heads, kv.key_dim) for kv in g.self_kv if kv} == {(text.num_key_value_heads, text.head_dim)}
    assert g.takes_images and g.tied_embeddings == model.config.tie_word_embeddings


def test_qwen3_5_image_tokens_follow_the_processor():
    """Qwen2VLImageProcessor (the processor transformers maps qwen3_5 to) at patch 16 and merge 2: grid_thw
    product / merge^2 tokens per image, as Qwen3VLProcessor writes them into the prompt."""
    pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2)
    for model_type in ("qwen3_5", "qwen3_5_moe"):
        spec = spec_from_config({"model_type": model_type}, "config.json")
        for h, w in [(1024, 768), (224, 336), (50, 3000), (4000, 3000)]:
            grid = processor(images=[np.zeros((h, w, 3), dtype=np.uint8)], return_tensors="pt")["image_grid_thw"]
            assert archs.image_tokens(spec, (h, w)) == int(grid.prod()) // 4, (model_type, h, w)


def test_qwen3_5_images_add_a_vision_pass_and_context():
    """An image puts its merged patches in the self-attention context and runs the ViT over its patches."""
    spec = spec_from_config({"model_type": "qwen3_5"}, "config.json")
    tokens = archs.image_tokens(spec, (1024, 768))
    assert tokens == 32 * 24  # 1024 x 768 is already a multiple of 32: (1024 / 32) x (768 / 32) merged patches
    one = archs.stages(spec, 4096, 0, 1, image_size=(1024, 768))
    assert len(one) == 2 and one[1].tokens == 4 * tokens and one[1].hidden == 1152
    assert len(archs.stages(spec, 4096, 0, 0)) == 1


@pytest.mark.parametrize(("case_id", "config"), QWEN3_5_CASES, ids=[c[0] for c in QWEN3_5_CASES])
def test_qwen3_5_config_transformers_saved_reads_back(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    hf = tf.AutoConfig.for_model(**config)
    hf.save_pretrained(tmp_path)
    spec, _ = spec_from_path(tmp_path / "config.json")
    with torch.device("meta"):
        model = _conditional_generation(tf, hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())


def test_qwen3_5_spec_round_trips_and_refuses_deepstack_mergers():
    """A spec written from a config.json parses back to itself; Qwen3_5VisionModel builds no DeepStack mergers, so
    a spec asking for them is refused rather than sized as Qwen3-VL."""
    from willitrun.specs import parse_model_spec

    spec = spec_from_config({"model_type": "qwen3_5"}, "config.json")
    data = spec.model_dump(mode="json")
    assert parse_model_spec(data) == spec
    data["config"]["vision_config"]["deepstack_visual_indexes"] = [1]
    with pytest.raises(ValueError, match="deepstack_visual_indexes"):
        parse_model_spec(data)
