"""safetensors headers: the exact stored bytes per tensor and component, read without the data;
hostile or broken files fail in one line with little memory."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import pytest

from tests.importers.helpers import header_for, safetensors_file, write_config
from willitrun import SpecError, estimate
from willitrun.dtypes import weight_dtype
from willitrun.importers import read_safetensors_header, spec_from_path
from willitrun.importers.weights import StoredTensor, read_checkpoint, weights_override
from willitrun.memory import weight_components

IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def _computed(spec, dtype=None):
    return weight_components(spec, weight_dtype(dtype or spec.dtype))


# --------------------------------------------------------------------------------------------------
# Real checkpoints written by transformers
# --------------------------------------------------------------------------------------------------
def _llama(tf):
    return tf.LlamaForCausalLM(
        tf.LlamaConfig(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **IDS,
        )
    )


def _llama_tied(tf):
    return tf.LlamaForCausalLM(
        tf.LlamaConfig(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            tie_word_embeddings=True,
            **IDS,
        )
    )


def _whisper(tf):
    return tf.WhisperForConditionalGeneration(
        tf.WhisperConfig(
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
        )
    )


def _t5(tf):
    return tf.T5ForConditionalGeneration(
        tf.T5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    )


def _llava(tf):
    text = {
        "model_type": "llama",
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        **IDS,
    }
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
    }
    return tf.LlavaForConditionalGeneration(
        tf.LlavaConfig(text_config=text, vision_config=vision, image_token_index=255)
    )


def _mllama(tf):
    text = {
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "cross_attention_layers": [1],
        **IDS,
    }
    vision = {
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
    return tf.MllamaForConditionalGeneration(
        tf.MllamaConfig(text_config=text, vision_config=vision, image_token_index=255)
    )


MODELS = {
    "llama": _llama,
    "llama-tied": _llama_tied,
    "whisper": _whisper,
    "t5": _t5,
    "llava": _llava,
    "mllama": _mllama,
}


def _save(tmp_path: Path, build, dtype: str) -> Path:
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = build(tf).to(getattr(torch, dtype))
    model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_header_bytes_equal_the_real_tensors(tmp_path, name, dtype):
    safetensors = pytest.importorskip("safetensors")
    directory = _save(tmp_path, MODELS[name], dtype)
    spec, weights = spec_from_path(directory)
    files = sorted(directory.glob("*.safetensors"))
    real = {}
    for f in files:
        with safetensors.safe_open(f, "pt") as st:
            real.update({k: st.get_tensor(k).nbytes for k in st.keys()})  # noqa: SIM118  (safe_open has keys() but is not iterable)
    assert {t.name: t.nbytes for f in files for t in read_safetensors_header(f)} == real
    assert weights is not None and weights.total_bytes == sum(real.values())
    assert spec.dtype == dtype and weights.dtype == {"bfloat16": "bf16", "float32": "fp32"}[dtype]
    # Plain float weights: what willitrun computes from the architecture is exactly what is stored,
    # component by component, so the override maps every tensor to the right component.
    computed = _computed(spec)
    assert weights.apply(computed) == computed
    assert weights.elements == estimate(spec).parameters
    assert weights.notes == ()


def test_config_without_dtype_takes_the_weights_type(tmp_path):
    directory = _save(tmp_path, _llama, "bfloat16")
    config = json.loads((directory / "config.json").read_text())
    config.pop("dtype", None)
    config.pop("torch_dtype", None)
    write_config(directory, config)
    spec, _ = spec_from_path(directory)
    assert spec.dtype == "bfloat16" and spec.sources["dtype"] == str(directory / "model.safetensors")
    assert "first floating-point tensor" in spec.notes


@pytest.mark.parametrize("build", [_llava, _mllama], ids=["llava", "mllama"])
def test_both_checkpoint_layouts(tmp_path, build):
    """transformers 5 saves LLaVA/Mllama under the names of 4.x (language_model.model.*, vision_tower.*)
    and builds them as model.language_model.*, model.vision_tower.*: both are placed alike."""
    directory = _save(tmp_path, build, "float16")
    path = directory / "model.safetensors"
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    renames = [
        ("language_model.lm_head.", "lm_head."),
        ("language_model.model.", "model.language_model."),
        ("vision_tower.", "model.vision_tower."),
        ("vision_model.", "model.vision_model."),
        ("multi_modal_projector.", "model.multi_modal_projector."),
    ]
    renamed = {}
    for name, entry in header.items():
        for legacy, current in renames:
            if name.startswith(legacy):
                name = current + name.removeprefix(legacy)
                break
        renamed[name] = entry
    assert set(renamed) != set(header)
    for layout in (header, renamed):
        safetensors_file(path, layout, data)
        spec, weights = spec_from_path(directory)
        assert weights.apply(_computed(spec)) == _computed(spec)


# --------------------------------------------------------------------------------------------------
# Header-only files: a 7B checkpoint without its 13 GB of data
# --------------------------------------------------------------------------------------------------
def llama2_7b_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (32000, 4096)}
    for i in range(32):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (4096,), p + "post_attention_layernorm.weight": (4096,)})
        for proj in "qkvo":
            shapes[f"{p}self_attn.{proj}_proj.weight"] = (4096, 4096)
        shapes.update(
            {
                p + "mlp.gate_proj.weight": (11008, 4096),
                p + "mlp.up_proj.weight": (11008, 4096),
                p + "mlp.down_proj.weight": (4096, 11008),
            }
        )
    shapes.update({"model.norm.weight": (4096,), "lm_head.weight": (32000, 4096)})
    return shapes


LLAMA2_7B_CONFIG = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
}


def test_header_only_7b_checkpoint(tmp_path):
    header, data_bytes = header_for(llama2_7b_shapes())
    directory = tmp_path / "Llama-2-7b-hf"
    write_config(directory, LLAMA2_7B_CONFIG)  # no dtype: the header's F16 decides, as in transformers
    safetensors_file(directory / "model.safetensors", header, sparse_size=data_bytes)
    tracemalloc.start()
    spec, weights = spec_from_path(directory)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data_bytes == 6_738_415_616 * 2 == weights.total_bytes
    assert spec.dtype == "float16" and weights.dtype == "fp16"
    assert weights.apply(_computed(spec)) == _computed(spec)
    assert peak < 16 << 20  # a header of ~30 KB; never the 13 GB of data


def test_sharded_checkpoint_reads_the_index(tmp_path):
    directory = tmp_path / "m"
    write_config(directory, LLAMA2_7B_CONFIG)
    shapes = llama2_7b_shapes()
    names = list(shapes)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        header, size = header_for({n: shapes[n] for n in part}, "BF16")
        safetensors_file(directory / fname, header, sparse_size=size)
        weight_map.update(dict.fromkeys(part, fname))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    # Mistral repositories also ship the original-format weights; they are not loaded by transformers.
    header, size = header_for({"tok_embeddings.weight": (32000, 4096)}, "BF16")
    safetensors_file(directory / "consolidated.safetensors", header, sparse_size=size)
    spec, weights = spec_from_path(directory)
    assert weights.total_bytes == 6_738_415_616 * 2 and weights.dtype == "bf16" and spec.dtype == "bfloat16"
    assert any("consolidated.safetensors" in n for n in weights.notes)

    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SpecError, match=r"lists shard 'model-00002-of-00002\.safetensors', which is not in"):
        spec_from_path(directory)


def test_a_tensor_in_two_shards_is_refused(tmp_path):
    directory = tmp_path / "m"
    write_config(directory, LLAMA2_7B_CONFIG)
    header, size = header_for({"model.norm.weight": (4096,)})
    for f in ("a.safetensors", "b.safetensors"):
        safetensors_file(directory / f, header, sparse_size=size)
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"model.norm.weight": "a.safetensors", "x": "b.safetensors"}})
    )
    with pytest.raises(SpecError, match=r"'model\.norm\.weight' is also in"):
        spec_from_path(directory)


def test_quantized_and_unknown_names(tmp_path):
    """GPTQ-style packed tensors keep their exact bytes; names nobody maps leave only the total."""
    directory = tmp_path / "m"
    config = {**LLAMA2_7B_CONFIG, "num_hidden_layers": 1, "torch_dtype": "float16"}
    write_config(directory, config)
    shapes = {
        n: s
        for n, s in llama2_7b_shapes().items()
        if not n.startswith("model.layers.") or n.startswith("model.layers.0.")
    }
    header, size = header_for(shapes)
    header["model.layers.0.self_attn.q_proj.qweight"] = {
        "dtype": "I32",
        "shape": [512, 4096],
        "data_offsets": [size, size + 512 * 4096 * 4],
    }
    safetensors_file(directory / "model.safetensors", header, sparse_size=size + 512 * 4096 * 4)
    spec, weights = spec_from_path(directory)
    assert weights.dtype is None and spec.dtype == "float16"
    stored = {c.name: c.bytes for c in weights.apply(_computed(spec))}
    computed = {c.name: c.bytes for c in _computed(spec)}
    assert stored == {**computed, "decoder": computed["decoder"] + 512 * 4096 * 4}

    header["some.adapter.weight"] = {
        "dtype": "F16",
        "shape": [2],
        "data_offsets": [size + 512 * 4096 * 4, size + 512 * 4096 * 4 + 4],
    }
    safetensors_file(directory / "model.safetensors", header, sparse_size=size + 512 * 4096 * 4 + 4)
    spec, weights = spec_from_path(directory)
    (only,) = weights.apply(_computed(spec))
    assert only.name == "checkpoint" and only.bytes == weights.total_bytes
    assert only.parameters == estimate(spec).parameters
    assert any("some.adapter.weight" in n for n in weights.notes)


def test_t5_embedding_copies_are_tied_on_load(tmp_path):
    directory = tmp_path / "t5"
    write_config(
        directory,
        {
            "model_type": "t5",
            "vocab_size": 128,
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 64,
            "num_layers": 1,
            "num_heads": 4,
            "torch_dtype": "float32",
        },
    )
    header, size = header_for({"shared.weight": (128, 32), "encoder.embed_tokens.weight": (128, 32)}, "F32", 4)
    safetensors_file(directory / "model.safetensors", header, sparse_size=size)
    _, weights = spec_from_path(directory)
    assert weights.total_bytes == 128 * 32 * 4
    assert any("encoder.embed_tokens.weight" in n for n in weights.notes)


# --------------------------------------------------------------------------------------------------
# Hostile and broken files
# --------------------------------------------------------------------------------------------------
def _raw(length: int, body: bytes) -> bytes:
    return struct.pack("<Q", length) + body


def _entry(**kw):
    entry = {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}
    entry.update(kw)
    return _raw(len(json.dumps({"t": entry})), json.dumps({"t": entry}).encode()) + b"\0" * 8


HOSTILE = {
    "empty": (b"", "shorter than the 8-byte header length"),
    "five bytes": (b"\x01\x02\x03\x04\x05", "shorter than the 8-byte header length"),
    "absurd header length": (_raw(1 << 62, b"{}"), "header length 4,611,686,018,427,387,904 bytes is absurd"),
    "just over the limit": (_raw((100 << 20) + 1, b"{}"), "is absurd"),
    "truncated header": (_raw(1000, b'{"t": {'), "truncated: the header claims 1,000 bytes"),
    "not json": (_raw(16, b"\x00" * 16), "the header is not JSON"),
    "not utf-8": (_raw(4, b"\xff\xfe\xfd\xfc"), "the header is not JSON"),
    "json list": (_raw(2, b"[]"), "the header is not a JSON object"),
    "unknown dtype": (_entry(dtype="F128"), "unknown dtype 'F128'"),
    "size disagrees with offsets": (_entry(data_offsets=[0, 6]), "is 8 bytes but its data_offsets span 6"),
    "data beyond the file": (_entry(shape=[4, 4], data_offsets=[0, 32]), "truncated: tensor 't' ends at byte 32"),
    "negative dim": (_entry(shape=[-2, 2]), "malformed shape"),
    "offsets reversed": (_entry(data_offsets=[8, 0]), "malformed data_offsets"),
    "entry not an object": (_raw(8, b'{"t": 1}'), "malformed header entry"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_fail_in_one_line(tmp_path, case):
    content, words = HOSTILE[case]
    directory = tmp_path / "m"
    write_config(directory, LLAMA2_7B_CONFIG)
    (directory / "model.safetensors").write_bytes(content)
    tracemalloc.start()
    with pytest.raises(SpecError) as exc:
        spec_from_path(directory)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert words in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert str(exc.value).startswith(str(directory / "model.safetensors"))
    assert peak < 2 << 20


def test_absurd_index_is_refused(tmp_path):
    directory = tmp_path / "m"
    write_config(directory, LLAMA2_7B_CONFIG)
    with (directory / "model.safetensors.index.json").open("wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(SpecError, match="too large for a safetensors index"):
        spec_from_path(directory)
    (directory / "model.safetensors.index.json").write_text('{"weight_map": {"x": "../../etc/passwd"}}')
    with pytest.raises(SpecError, match=r"lists shard '\.\./\.\./etc/passwd'"):
        spec_from_path(directory)


# --------------------------------------------------------------------------------------------------
# The newer families' checkpoint names (importers/weights.py COMPONENT_RULES): saved by transformers,
# every tensor placed in the component willitrun computes, bytes equal per component
# --------------------------------------------------------------------------------------------------
_SMALL_LM = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    **IDS,
}
_SMALL_ENC_DEC = {
    "vocab_size": 128,
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 64,
    "decoder_start_token_id": 2,
    **IDS,
}
_MROPE = {"type": "mrope", "mrope_section": [2, 3, 3]}
NEW_FAMILIES = {
    "bart": lambda tf: tf.BartForConditionalGeneration(tf.BartConfig(**_SMALL_ENC_DEC)),
    "mbart": lambda tf: tf.MBartForConditionalGeneration(tf.MBartConfig(**_SMALL_ENC_DEC)),
    "marian": lambda tf: tf.MarianMTModel(tf.MarianConfig(**_SMALL_ENC_DEC)),
    "pegasus": lambda tf: tf.PegasusForConditionalGeneration(tf.PegasusConfig(**_SMALL_ENC_DEC)),
    "m2m_100": lambda tf: tf.M2M100ForConditionalGeneration(tf.M2M100Config(**_SMALL_ENC_DEC)),
    "mamba": lambda tf: tf.MambaForCausalLM(
        tf.MambaConfig(vocab_size=256, hidden_size=32, state_size=8, num_hidden_layers=2, **IDS)
    ),
    "jamba": lambda tf: tf.JambaForCausalLM(
        tf.JambaConfig(
            **_SMALL_LM,
            num_experts=2,
            num_experts_per_tok=1,
            attn_layer_period=2,
            attn_layer_offset=1,
            expert_layer_period=2,
            expert_layer_offset=1,
            mamba_d_state=8,
            mamba_expand=2,
        )
    ),
    "falcon_h1": lambda tf: tf.FalconH1ForCausalLM(
        tf.FalconH1Config(
            **_SMALL_LM, mamba_d_ssm=64, mamba_n_heads=4, mamba_d_head=16, mamba_d_state=8, mamba_n_groups=1
        )
    ),
    "qwen2_vl": lambda tf: tf.Qwen2VLForConditionalGeneration(
        tf.Qwen2VLConfig(
            text_config={**_SMALL_LM, "model_type": "qwen2_vl_text", "rope_scaling": _MROPE},
            vision_config={"depth": 2, "embed_dim": 32, "num_heads": 2, "hidden_size": 64},
            **IDS,
        )
    ),
    "qwen2_5_vl": lambda tf: tf.Qwen2_5_VLForConditionalGeneration(
        tf.Qwen2_5_VLConfig(
            text_config={**_SMALL_LM, "model_type": "qwen2_5_vl_text", "rope_scaling": _MROPE},
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,
                "fullatt_block_indexes": [1],
            },
            **IDS,
        )
    ),
}


@pytest.mark.parametrize("name", sorted(NEW_FAMILIES))
def test_new_family_checkpoints_are_placed_per_component(tmp_path, name):
    directory = _save(tmp_path, NEW_FAMILIES[name], "float32")
    spec, weights = spec_from_path(directory)
    assert spec.architecture == name and weights is not None
    computed = _computed(spec)
    assert weights.apply(computed) == computed
    assert weights.elements == sum(c.parameters for c in computed)
    buffers = ("not counted, buffers rather than parameters: final_logits_bias",)
    rebuilt = (
        "the sinusoidal position tables transformers rebuilds on load are not in the files: their bytes are added",
    )
    assert weights.notes == (buffers if name in ("bart", "mbart", "marian", "pegasus") else ()) + (
        rebuilt if name == "marian" else ()
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda tf: tf.Gemma3ForConditionalGeneration(
            tf.Gemma3Config(
                text_config={**_SMALL_LM, "head_dim": 16},
                mm_tokens_per_image=4,
                **IDS,
                vision_config={
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "image_size": 56,
                    "patch_size": 14,
                },
            )
        ),
        lambda tf: tf.PaliGemmaForConditionalGeneration(
            tf.PaliGemmaConfig(
                text_config={**_SMALL_LM, "model_type": "gemma", "head_dim": 16},
                projection_dim=64,
                **IDS,
                vision_config={
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "image_size": 56,
                    "patch_size": 14,
                    "projection_dim": 64,
                },
            )
        ),
        lambda tf: tf.Mistral3ForConditionalGeneration(
            tf.Mistral3Config(
                text_config={**_SMALL_LM, "model_type": "mistral", "head_dim": 16},
                **IDS,
                vision_config={
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "image_size": 56,
                    "patch_size": 14,
                    "head_dim": 16,
                },
            )
        ),
    ],
    ids=["gemma3", "paligemma", "mistral3"],
)
def test_vision_language_checkpoints_are_placed(tmp_path, build):
    """Gemma 3, PaliGemma and Mistral 3 are not imported from config.json yet; their saved names
    and the module names transformers 5 gives them all land in a component, as LLaVA's do."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    directory = _save(tmp_path, build, "float32")
    model_type = json.loads((directory / "config.json").read_text())["model_type"]
    saved = read_checkpoint(sorted(directory.glob("*.safetensors")))
    with torch.device("meta"):
        model = tf.AutoModelForImageTextToText.from_config(tf.AutoConfig.from_pretrained(directory))
    modules = [StoredTensor(n, "F32", tuple(p.shape), 4 * p.numel()) for n, p in model.named_parameters()]
    assert {t.name for t in modules} != {t.name for t in saved}
    for tensors in (saved, modules):
        weights = weights_override(model_type, tensors, str(directory), "safetensors")
        assert weights.notes == ()
        assert {c for c, _ in weights.component_bytes} == {"embeddings", "decoder", "vision_tower", "projector"}
