"""config.json -> spec: parameter counts equal transformers' own, defaults are transformers' own,
the written YAML is strictly valid and re-loads to the same estimate, bad configs fail in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.importers.helpers import transformers_parameters, write_config
from willitrun import SpecError, UsageError, estimate
from willitrun.archs.family import TRANSFORMERS_MODELS_URL, TRANSFORMERS_VERSION
from willitrun.archs.llama import LLAMA, MISTRAL
from willitrun.archs.llava import CLIP_VISION, LLAVA, LLAVA_NEXT
from willitrun.archs.mllama import MLLAMA_TEXT, MLLAMA_VISION
from willitrun.archs.t5 import T5
from willitrun.archs.whisper import WHISPER
from willitrun.catalog import load_spec
from willitrun.importers import spec_from_config, spec_from_path, write_spec_yaml
from willitrun.memory import attention
from willitrun.validate import validate_file

# Token ids inside the small vocabularies (transformers sizes nn.Embedding's padding_idx by them).
IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
SMALL_LM = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    **IDS,
}
SMALL_CLIP = {
    "model_type": "clip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
}
SMALL_MLLAMA_TEXT = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "cross_attention_layers": [1],
    **IDS,
}
SMALL_MLLAMA_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_global_layers": 1,
    "attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
    "vision_output_dim": 64,
    "intermediate_layers_indices": [0],
}

# llava-hf/llava-1.5-7b-hf config.json as published: text_config names only what differs from
# LlamaConfig's defaults (hidden size, layers and heads are transformers' defaults).
LLAVA_15_7B = {
    "architectures": ["LlavaForConditionalGeneration"],
    "ignore_index": -100,
    "image_token_index": 32000,
    "model_type": "llava",
    "pad_token_id": 32001,
    "projector_hidden_act": "gelu",
    "text_config": {
        "_name_or_path": "lmsys/vicuna-7b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "rms_norm_eps": 1e-05,
        "torch_dtype": "float16",
        "vocab_size": 32064,
    },
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.36.0.dev0",
    "vision_config": {
        "hidden_size": 1024,
        "image_size": 336,
        "intermediate_size": 4096,
        "model_type": "clip_vision_model",
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
        "vocab_size": 32000,
    },
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
}
# llava-hf/llava-v1.6-mistral-7b-hf config.json as published (sparse Mistral text_config, no window).
LLAVA_16_MISTRAL_7B = {
    "architectures": ["LlavaNextForConditionalGeneration"],
    "ignore_index": -100,
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "image_token_index": 32000,
    "model_type": "llava_next",
    "projector_hidden_act": "gelu",
    "text_config": {
        "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
        "architectures": ["MistralForCausalLM"],
        "intermediate_size": 14336,
        "max_position_embeddings": 32768,
        "model_type": "mistral",
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "torch_dtype": "bfloat16",
        "vocab_size": 32064,
    },
    "torch_dtype": "float16",
    "transformers_version": "4.39.0.dev0",
    "use_image_newline_parameter": True,
    "vision_config": {
        "hidden_size": 1024,
        "image_size": 336,
        "intermediate_size": 4096,
        "model_type": "clip_vision_model",
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
        "vocab_size": 32000,
    },
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
}


def _tf_config(name: str, **kwargs: Any) -> Callable[[Any], Any]:
    return lambda tf: getattr(tf, name)(**kwargs)


# (case id, config.json: a dict written as is, or a transformers config written with to_json_file,
#  spec fields expected after the import, whether the T5 checkpoint keeps a separate lm_head)
CASES: list[tuple[str, Any, dict[str, Any], bool]] = [
    (
        "llama-gqa-tied",
        _tf_config(
            "LlamaConfig",
            **{**SMALL_LM, "num_attention_heads": 8},
            num_key_value_heads=2,
            head_dim=16,
            attention_bias=True,
            mlp_bias=True,
            tie_word_embeddings=True,
            max_position_embeddings=512,
            dtype="bfloat16",
        ),
        {"dtype": "bfloat16", "config.head_dim": 16, "config.num_key_value_heads": 2},
        False,
    ),
    (
        "llama-sparse",
        {"model_type": "llama", **SMALL_LM, "torch_dtype": "float16"},
        {"dtype": "float16", "config.max_position_embeddings": 2048},
        False,
    ),
    (
        "mistral-sparse",
        {"model_type": "mistral", **SMALL_LM, "num_attention_heads": 8},
        {
            "dtype": "float32",
            "config.num_key_value_heads": 8,
            "config.sliding_window": 4096,
            "config.max_position_embeddings": 131072,
        },
        False,
    ),
    (
        "t5-v1.0",
        _tf_config("T5Config", vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
        {"config.tie_word_embeddings": True},
        False,
    ),
    (
        "flan-t5-saved-by-transformers-5",
        _tf_config(
            "T5Config",
            vocab_size=128,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=3,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        ),
        {"config.tie_word_embeddings": False, "config.num_decoder_layers": 3},
        True,
    ),
    (
        "flan-t5-hub",
        {
            "model_type": "t5",
            "vocab_size": 128,
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 64,
            "num_layers": 2,
            "num_heads": 4,
            "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": False,
            "n_positions": 512,
        },
        {"config.tie_word_embeddings": False, "config.n_positions": 512},
        True,
    ),
    (
        "whisper",
        _tf_config(
            "WhisperConfig",
            vocab_size=128,
            num_mel_bins=16,
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_layers=2,
            decoder_attention_heads=4,
            decoder_ffn_dim=64,
            max_source_positions=30,
            max_target_positions=20,
            decoder_start_token_id=3,
            begin_suppress_tokens=[3],
            **IDS,
        ),
        {"config.max_target_positions": 20},
        False,
    ),
    (
        "whisper-sparse",
        {
            "model_type": "whisper",
            "vocab_size": 128,
            "d_model": 32,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "decoder_start_token_id": 3,
            **IDS,
        },
        {"config.max_source_positions": 1500, "config.max_target_positions": 448, "config.encoder_layers": 4},
        False,
    ),
    (
        "llava-1.5-7b-hub",
        LLAVA_15_7B,
        {"config.text_config.hidden_size": 4096, "config.text_config.num_hidden_layers": 32},
        False,
    ),
    (
        "llava-no-vision-config",
        {
            "model_type": "llava",
            "text_config": {"model_type": "llama", **SMALL_LM},
            "image_token_index": 255,
            "dtype": "bfloat16",
        },
        {"config.vision_config.hidden_size": 1024, "config.vision_config.image_size": 336},
        False,
    ),
    (
        "llava-top-level-tie",
        {
            "model_type": "llava",
            "text_config": {"model_type": "llama", **SMALL_LM},
            "vision_config": SMALL_CLIP,
            "tie_word_embeddings": True,
            "image_token_index": 255,
        },
        {"config.text_config.tie_word_embeddings": True},
        False,
    ),
    (
        "llava-clip-defaults",
        {
            "model_type": "llava",
            "text_config": {**SMALL_LM},
            "vision_config": {"model_type": "clip_vision_model"},
            "image_token_index": 255,
            "vision_feature_layer": [-2, -1],
        },
        {
            "config.vision_config.hidden_size": 768,
            "config.vision_config.patch_size": 32,
            "config.text_config.model_type": "llama",
        },
        False,
    ),
    (
        "llava-next-mistral-7b-hub",
        LLAVA_16_MISTRAL_7B,
        {"config.text_config.sliding_window": None, "config.text_config.hidden_size": 4096},
        False,
    ),
    (
        "llava-next-default-pinpoints",
        {
            "model_type": "llava_next",
            "vision_config": SMALL_CLIP,
            "image_token_index": 255,
            "text_config": {"model_type": "mistral", **SMALL_LM, "num_attention_heads": 8},
        },
        {
            "config.text_config.num_key_value_heads": 8,
            "config.text_config.sliding_window": 4096,
            "config.image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
        },
        False,
    ),
    (
        "mllama-small",
        _tf_config(
            "MllamaConfig", text_config=SMALL_MLLAMA_TEXT, vision_config=SMALL_MLLAMA_VISION, image_token_index=255
        ),
        {"config.text_config.cross_attention_layers": [1]},
        False,
    ),
    (
        "mllama-tied-flag",
        {
            "model_type": "mllama",
            "text_config": {**SMALL_MLLAMA_TEXT, "tie_word_embeddings": True},
            "vision_config": SMALL_MLLAMA_VISION,
            "image_token_index": 255,
        },
        {"config.text_config.tie_word_embeddings": False},
        False,
    ),
    (
        "mllama-all-defaults",
        {"model_type": "mllama", "torch_dtype": "bfloat16"},
        {"config.vision_config.image_size": 448, "config.text_config.num_hidden_layers": 40},
        False,
    ),
]
IDS_ = [c[0] for c in CASES]


def _write(tmp_path: Path, case_id: str, config: Any) -> Path:
    directory = tmp_path / case_id
    if callable(config):
        tf = pytest.importorskip("transformers")
        directory.mkdir()
        config(tf).to_json_file(directory / "config.json")
        return directory / "config.json"
    return write_config(directory, config)


def _field(spec: Any, dotted: str) -> Any:
    value = spec
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("case_id", "config", "expect", "t5_untied"), CASES, ids=IDS_)
def test_parameters_equal_transformers(tmp_path, case_id, config, expect, t5_untied):
    path = _write(tmp_path, case_id, config)
    spec, weights = spec_from_path(path)
    assert weights is None
    for dotted, value in expect.items():
        got = _field(spec, dotted)
        assert (
            list(map(list, got)) if isinstance(got, list) and got and isinstance(got[0], tuple) else got
        ) == value, dotted
    assert estimate(spec).parameters == transformers_parameters(path.parent, t5_untied)


@pytest.mark.parametrize(("case_id", "config", "expect", "t5_untied"), CASES, ids=IDS_)
def test_written_yaml_is_strictly_valid_and_reloads_to_the_same_estimate(tmp_path, case_id, config, expect, t5_untied):
    path = _write(tmp_path, case_id, config)
    spec, _ = spec_from_path(path)
    target = tmp_path / "specs" / "model_specs" / f"{spec.id}.yaml"
    target.parent.mkdir(parents=True)
    target.write_text(write_spec_yaml(spec, str(path)))
    kind, loaded, errors, warnings = validate_file(target)
    assert (kind, errors, warnings) == ("model", [], [])
    assert loaded == load_spec(target, "model") == spec
    assert estimate(loaded) == estimate(spec)


def test_kv_geometry_equals_transformers(tmp_path):
    """The attention layout (what the KV cache is sized by) as transformers resolves a sparse Mistral config."""
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / "m", {"model_type": "mistral", **SMALL_LM, "num_attention_heads": 8, "head_dim": 16})
    spec, _ = spec_from_path(path)
    resolved = tf.AutoConfig.from_pretrained(path.parent)
    att = attention(spec)
    assert att.self_width == resolved.num_key_value_heads * resolved.head_dim == 8 * 16
    assert att.self_layers == resolved.num_hidden_layers
    assert att.sliding_window == resolved.sliding_window == 4096


def test_filled_defaults_are_cited(tmp_path):
    spec, _ = spec_from_path(write_config(tmp_path / "x", LLAVA_15_7B))
    url = TRANSFORMERS_MODELS_URL + "llama/configuration_llama.py"
    assert {k for k, v in spec.sources.items() if v == url} == {
        f"config.text_config.{f}"
        for f in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    }
    text = write_spec_yaml(spec, "https://huggingface.co/llava-hf/llava-1.5-7b-hf/blob/main/config.json")
    assert "    hidden_size: 4096   # not in the source: transformers' default\n" in text
    assert "    vocab_size: 32064\n" in text


# --------------------------------------------------------------------------------------------------
# The default tables are transformers' own
# --------------------------------------------------------------------------------------------------
def test_transformers_version_of_the_tables():
    tf = pytest.importorskip("transformers")
    if tf.__version__ != TRANSFORMERS_VERSION:
        pytest.skip(f"defaults read from transformers {TRANSFORMERS_VERSION}, this is {tf.__version__}")


@pytest.mark.parametrize(
    "table",
    [LLAMA, MISTRAL, T5, WHISPER, CLIP_VISION, MLLAMA_TEXT, MLLAMA_VISION, LLAVA, LLAVA_NEXT],
    ids=lambda t: t.name,
)
def test_default_tables_equal_transformers(table):
    tf = pytest.importorskip("transformers")
    config = getattr(tf, table.name)()
    derived = {"num_key_value_heads": "num_attention_heads", "num_decoder_layers": "num_layers"}
    for field, default in table.defaults.items():
        got = getattr(config, field)
        if default is None and field in derived:
            default = getattr(config, derived[field])
        elif default is None and field == "head_dim":
            default = config.hidden_size // config.num_attention_heads
        assert got == default, f"{table.name}.{field}"


@pytest.mark.parametrize("name", ["LlavaConfig", "LlavaNextConfig"])
def test_llava_vision_defaults_without_a_vision_config(tmp_path, name):
    """No vision_config: CLIPVisionConfig with the LLaVA class's init_kwargs (CLIP ViT-L/14 at 336)."""
    tf = pytest.importorskip("transformers")
    vision = getattr(tf, name)().vision_config
    spec = spec_from_config(
        {"model_type": "llava" if name == "LlavaConfig" else "llava_next", "text_config": SMALL_LM}, "test"
    )
    for field in CLIP_VISION.defaults:
        assert getattr(spec.config.vision_config, field) == getattr(vision, field), field


# --------------------------------------------------------------------------------------------------
# dtype
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "dtype"),
    [
        ({"dtype": "bfloat16"}, "bfloat16"),
        ({"torch_dtype": "float16"}, "float16"),
        ({"dtype": "bfloat16", "torch_dtype": "float16"}, "bfloat16"),  # transformers 5 keeps `dtype`
        ({}, "float32"),
    ],
)
def test_dtype(keys, dtype):
    spec = spec_from_config({"model_type": "llama", **SMALL_LM, **keys}, "test")
    assert spec.dtype == dtype
    assert ("names no dtype" in (spec.notes or "")) == (not keys)


def test_dtype_of_the_language_model_when_only_text_config_states_it():
    # Qwen/Qwen3.5-0.8B's config.json (model_specs/qwen3.5-0.8b.yaml) has no top-level dtype, only
    # text_config.dtype: bfloat16; reading float32 there doubled the weights. A top-level dtype still wins.
    text_only = {k: v for k, v in LLAVA_15_7B.items() if k != "torch_dtype"}
    text_only["text_config"] = {**LLAVA_15_7B["text_config"], "torch_dtype": "bfloat16"}
    spec = spec_from_config(text_only, "test")
    assert spec.dtype == "bfloat16" and "names no dtype" not in (spec.notes or "")
    both = {**text_only, "dtype": "float16"}
    assert spec_from_config(both, "test").dtype == "float16"


# --------------------------------------------------------------------------------------------------
# Bad input: one line, the documented error type
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ([1, 2], SpecError, "must be a JSON object"),
        ({"hidden_size": 64}, SpecError, "no model_type"),
        ({"model_type": 7}, SpecError, "no model_type"),
        (
            {"model_type": "xglm", "hidden_size": 64},  # a model_type no family declares (the oracle's)
            UsageError,
            "model_type 'xglm' is not supported; supported: llama, mistral, t5, whisper, llava, llava_next, mllama",
        ),
        (
            {"model_type": "llama", **SMALL_LM, "hidden_size": "64"},
            SpecError,
            "test: hidden_size: Input should be a valid integer",
        ),
        (
            {"model_type": "llama", **SMALL_LM, "num_hidden_layers": -2},
            SpecError,
            "num_hidden_layers: Input should be greater than 0",
        ),
        (
            {"model_type": "llama", **SMALL_LM, "num_key_value_heads": 3},
            SpecError,
            "not a multiple of num_key_value_heads",
        ),
        ({"model_type": "llama", **SMALL_LM, "dtype": "float8_e4m3fn"}, UsageError, "dtype 'float8_e4m3fn'"),
        ({"model_type": "llama", **SMALL_LM, "dtype": 16}, SpecError, "dtype: must be a string"),
        (
            {"model_type": "llava", "text_config": {"model_type": "qwen2"}},
            UsageError,
            "text_config.model_type 'qwen2' is not supported; supported: llama, mistral",
        ),
        (
            {"model_type": "llava", "text_config": SMALL_LM, "vision_config": {"model_type": "siglip_vision_model"}},
            UsageError,
            "vision_config.model_type 'siglip_vision_model' is not supported",
        ),
        ({"model_type": "llava", "text_config": "llama"}, SpecError, "text_config: must be a JSON object"),
        ({"model_type": "t5", "feed_forward_proj": "gelu"}, SpecError, "feed_forward_proj"),
    ],
)
def test_bad_configs_fail_in_one_line(config, error, words):
    with pytest.raises(error) as exc:
        spec_from_config(config, "test")
    assert type(exc.value) is error
    assert words in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"model_type": "llama",', "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'"a string"', "a JSON str, not an object"),
        (b'{"model_type": "llama", "hidden_size": ' + b"9" * 5000 + b"}", "not JSON: Exceeds the limit"),
    ],
)
def test_unreadable_config_files(tmp_path, content, words):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        spec_from_path(path)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_huge_config_is_refused_unread(tmp_path):
    path = tmp_path / "config.json"
    with path.open("wb") as f:
        f.truncate(1 << 30)  # a 1 GiB hole
    with pytest.raises(SpecError, match=r"too large for a config\.json"):
        spec_from_path(path)


def test_ids(tmp_path):
    d = tmp_path / "Meta-Llama-3.1-8B_Instruct"
    write_config(d, {"model_type": "llama", **SMALL_LM})
    assert spec_from_path(d)[0].id == "meta-llama-3.1-8b-instruct"
    assert spec_from_path(d, model_id="mine")[0].id == "mine"
    with pytest.raises(UsageError, match="not a catalog id"):
        spec_from_path(d, model_id="Not An Id")


def test_missing_paths(tmp_path):
    with pytest.raises(UsageError, match="no such file or directory"):
        spec_from_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no config\.json in this directory"):
        spec_from_path(tmp_path / "empty")


def test_quantized_checkpoint_is_noted():
    spec = spec_from_config({"model_type": "llama", **SMALL_LM, "quantization_config": {"quant_method": "awq"}}, "test")
    assert "quantized (awq)" in spec.notes


def test_config_json_is_not_modified(tmp_path):
    path = write_config(tmp_path / "m", LLAVA_15_7B)
    before = path.read_bytes()
    spec_from_path(path)
    assert path.read_bytes() == before and json.loads(before) == LLAVA_15_7B


# --------------------------------------------------------------------------------------------------
# Families added with the architecture registry (willitrun/archs)
# --------------------------------------------------------------------------------------------------
from willitrun.archs.cohere2 import COHERE2  # noqa: E402
from willitrun.archs.gemma import GEMMA  # noqa: E402
from willitrun.archs.gemma2 import GEMMA2  # noqa: E402
from willitrun.archs.gemma3 import GEMMA3_TEXT  # noqa: E402
from willitrun.archs.granite import GRANITE  # noqa: E402
from willitrun.archs.phi3 import PHI3  # noqa: E402
from willitrun.archs.qwen2 import QWEN2  # noqa: E402
from willitrun.archs.qwen3 import QWEN3  # noqa: E402
from willitrun.archs.starcoder2 import STARCODER2  # noqa: E402

NEW_FAMILY_CASES = [
    (
        "qwen2-gqa",
        {
            "model_type": "qwen2",
            **SMALL_LM,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
        },
    ),
    (
        "qwen2-sparse",
        {"model_type": "qwen2", **SMALL_LM, "num_attention_heads": 32},
    ),  # KV heads: Qwen2Config default 32
    ("qwen3", {"model_type": "qwen3", **SMALL_LM, "num_key_value_heads": 2, "head_dim": 32, "attention_bias": True}),
    ("qwen3-sparse", {"model_type": "qwen3", **SMALL_LM, "num_attention_heads": 32}),
    ("gemma", {"model_type": "gemma", **SMALL_LM, "head_dim": 8, "num_key_value_heads": 1}),
    (
        "gemma3-text",
        {
            "model_type": "gemma3_text",
            **SMALL_LM,
            "head_dim": 8,
            "num_key_value_heads": 2,
            "num_hidden_layers": 6,
            "sliding_window": 4,
            "sliding_window_pattern": 3,
        },
    ),
    ("phi3", {"model_type": "phi3", **SMALL_LM, "num_key_value_heads": 2, "sliding_window": 16}),
    (
        "granite",
        {
            "model_type": "granite",
            **SMALL_LM,
            "num_key_value_heads": 2,
            "attention_bias": True,
            "embedding_multiplier": 12.0,
            "logits_scaling": 16,
        },
    ),
    (
        "starcoder2",
        {
            "model_type": "starcoder2",
            **SMALL_LM,
            "num_key_value_heads": 2,
            "sliding_window": 16,
            "tie_word_embeddings": False,
        },
    ),
    # Command R7B's shape of block (one LayerNorm for attention and MLP), 3 local : 1 global layers
    (
        "cohere2",
        {
            "model_type": "cohere2",
            **SMALL_LM,
            "num_key_value_heads": 2,
            "sliding_window": 16,
            "sliding_window_pattern": 4,
        },
    ),
    (
        "cohere2-layer-types",
        {
            "model_type": "cohere2",
            **SMALL_LM,
            "num_hidden_layers": 2,
            "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"],
            "tie_word_embeddings": False,
        },
    ),
]


@pytest.mark.parametrize(("case_id", "config"), NEW_FAMILY_CASES, ids=[c[0] for c in NEW_FAMILY_CASES])
def test_new_families_parameters_equal_transformers(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(tf.AutoConfig.from_pretrained(path.parent))
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    text = model.config
    assert attention(spec).self_width == text.num_key_value_heads * getattr(
        text, "head_dim", text.hidden_size // text.num_attention_heads
    )


@pytest.mark.parametrize(
    "table", [QWEN2, QWEN3, GEMMA, GEMMA2, GEMMA3_TEXT, PHI3, GRANITE, STARCODER2, COHERE2], ids=lambda t: t.name
)
def test_new_default_tables_equal_transformers(table):
    tf = pytest.importorskip("transformers")
    # Qwen: sliding_window is None unless use_sliding_window, so read its default with the flag on
    config = getattr(tf, table.name)(**({"use_sliding_window": True} if "use_sliding_window" in table.defaults else {}))
    for field, default in table.defaults.items():
        if field == "use_sliding_window":
            assert getattr(tf, table.name)().use_sliding_window is default
            continue
        got = getattr(config, field)
        if default is None and field == "num_key_value_heads":
            default = config.num_attention_heads
        assert got == default, f"{table.name}.{field}"


def test_missing_shape_fields_are_warned():
    spec = spec_from_config({"model_type": "llama"}, "x/config.json")
    assert spec.notes.startswith(
        "Warning: config.json omits hidden_size, intermediate_size, max_position_embeddings, "
        "num_attention_heads, num_hidden_layers, vocab_size: transformers' defaults taken"
    )


HOW_TO_ADD = "; see `willitrun list architectures`; docs/adding-an-architecture.md says how to add one"


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "gemma9"},
        {"model_type": "llava", "text_config": {"model_type": "qwen2"}},
        {"model_type": "llava", "vision_config": {"model_type": "siglip_vision_model"}},
    ],
)
def test_unsupported_model_type_lists_the_families_and_how_to_add_one(config):
    with pytest.raises(UsageError) as exc:
        spec_from_config(config, "x/config.json")
    message = str(exc.value)
    assert "is not supported; supported: " in message and message.endswith(HOW_TO_ADD) and "\n" not in message
    if config["model_type"] == "gemma9":
        assert "qwen2, qwen3" in message and "mixtral" in message


def test_cohere2_local_layers_follow_the_pattern(tmp_path):
    """Cohere2Config.__post_init__: layer i slides when (i + 1) % sliding_window_pattern, so with the
    default pattern 4 every fourth layer is global; the geometry says the same layer by layer."""
    tf = pytest.importorskip("transformers")
    config = {"model_type": "cohere2", **SMALL_LM, "num_hidden_layers": 8, "sliding_window": 16}
    spec, _ = spec_from_path(write_config(tmp_path / "c2", config))
    theirs = tf.AutoConfig.from_pretrained(tmp_path / "c2").layer_types
    from willitrun.archs import geometry

    ours = ["sliding_attention" if k.kind == "sliding" else "full_attention" for k in geometry(spec).self_kv]
    assert ours == theirs and theirs.count("full_attention") == 2
