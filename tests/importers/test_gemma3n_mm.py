"""Gemma 3n multimodal (archs/gemma3n.py, model_type gemma3n): the MobileNetV5 vision tower counted from timm's
architecture definition, the Conformer audio tower and the two embedders, each equal to what transformers 5.23 (and
timm 1.0.31 for the vision tower) build on the meta device.

transformers builds the vision tower through timm (TimmWrapperModel), and timm imports torchvision: where either is
missing the tests that need the whole model skip, and the vision tower is checked against the count timm 1.0.31
gave in this session (torchvision 0.28.0): `timm.create_model("mobilenetv5_300m_enc", num_classes=0)` on the meta
device has 294,126,912 parameters, and Gemma3nForConditionalGeneration(Gemma3nConfig()) 7,818,517,072."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path

TIMM_MNV5_300M = 294_126_912  # timm 1.0.31, mobilenetv5_300m_enc, num_classes=0 (see the module docstring)
GEMMA3N_CLASS_DEFAULTS = 7_818_517_072  # transformers 5.23 Gemma3nForConditionalGeneration(Gemma3nConfig())

TEXT_SMALL = {
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
}
AUDIO_SMALL = {
    "hidden_size": 48,
    "input_feat_size": 40,
    "conf_num_hidden_layers": 2,
    "conf_num_attention_heads": 4,
    "conf_conv_kernel_size": 3,
    "sscp_conv_channel_size": [16, 8],
    "sscp_conv_kernel_size": [[3, 5], [3, 3]],
    "sscp_conv_stride_size": [[2, 2], [2, 3]],
    "vocab_size": 32,
}
CASES = [
    ("class-defaults", {"model_type": "gemma3n"}),
    ("small-text-audio", {"model_type": "gemma3n", "text_config": TEXT_SMALL, "audio_config": AUDIO_SMALL}),
    (
        "untied-vision-vocab",
        {
            "model_type": "gemma3n",
            "text_config": TEXT_SMALL,
            "vision_config": {"architecture": "mobilenetv5_300m_enc", "vocab_size": 64, "label_names": ["a", "b"]},
            "tie_word_embeddings": False,
        },
    ),
]


def _timm_model():
    pytest.importorskip("torch")
    try:
        import timm
    except (ImportError, RuntimeError) as e:  # timm imports torchvision, which needs its own compiled ops
        pytest.skip(f"timm cannot be imported here: {str(e).strip().splitlines()[0]}")
    import torch

    with torch.device("meta"):
        return timm.create_model("mobilenetv5_300m_enc", pretrained=False, num_classes=0)


def test_mobilenetv5_count_from_the_architecture_definition():
    """The transcription of timm's arch_def and block rules gives the number timm gave (module docstring), and 84
    blocks in stages of 3, 5, 37 and 39 (timm's blocks.0 .. blocks.3)."""
    from willitrun.archs.gemma3n import MNV5_300M, mnv5_tensors

    assert sum(t.numel for t in mnv5_tensors()) == TIMM_MNV5_300M
    assert [len(stage) for stage in MNV5_300M] == [3, 5, 37, 39]


def test_mobilenetv5_blocks_equal_timm():
    """Block by block (timm's `blocks.<stage>.<block>` parameters against ours), the stem and the fusion adapter."""
    from willitrun.archs.gemma3n import mnv5_tensors

    model = _timm_model()
    theirs: Counter[str] = Counter()
    for name, p in model.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[0] == "blocks" else parts[0]
        theirs[key] += p.numel()
    ours: Counter[str] = Counter()
    for t in mnv5_tensors():
        parts = t.name.split(".")
        key = {"stem": "conv_stem", "msfa": "msfa"}.get(parts[1], f"blocks.{parts[1]}.{parts[2]}")
        ours[key] += t.numel
    assert ours == theirs
    assert sum(theirs.values()) == TIMM_MNV5_300M


def _config_spec(tmp_path, case_id, config):
    path = write_config(tmp_path / case_id, {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1, **config})
    spec, _ = spec_from_path(path)
    return spec, path


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    _timm_model()  # skips without timm: transformers needs it for the vision tower
    spec, path = _config_spec(tmp_path, case_id, config)
    with torch.device("meta"):
        model = tf.Gemma3nForConditionalGeneration(tf.AutoConfig.from_pretrained(path.parent)).to(torch.bfloat16)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


def test_class_defaults_total(tmp_path):
    """Gemma3nConfig(): the E4B shape (Gemma3nTextConfig's defaults: 35 layers, 15 KV-shared) with the released towers;
    the number transformers 5.23 + timm 1.0.31 built (module docstring)."""
    spec, _ = _config_spec(tmp_path, "defaults", {"model_type": "gemma3n"})
    by = {c.name: c.parameters for c in estimate(spec).components}
    assert estimate(spec).parameters == GEMMA3N_CLASS_DEFAULTS
    assert by["vision_tower"] == TIMM_MNV5_300M


@pytest.mark.parametrize("audio", [{}, AUDIO_SMALL], ids=["class-defaults", "small"])
def test_audio_tower_and_embedders_equal_transformers(tmp_path, audio):
    """Without timm: Gemma3nAudioEncoder and both Gemma3nMultimodalEmbedder built alone, named as in the checkpoint,
    against the audio_tower and projector components."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from transformers.models.gemma3n import modeling_gemma3n as mg

    from willitrun.importers.weights import StoredTensor, weights_override

    spec, _ = _config_spec(
        tmp_path, "audio", {"model_type": "gemma3n", "text_config": TEXT_SMALL, "audio_config": audio}
    )
    hf = tf.Gemma3nConfig(text_config=TEXT_SMALL, audio_config=audio)
    with torch.device("meta"):
        parts = {
            "model.audio_tower": mg.Gemma3nAudioEncoder(hf.audio_config),
            "model.embed_vision": mg.Gemma3nMultimodalEmbedder(hf.vision_config, hf.text_config),
            "model.embed_audio": mg.Gemma3nMultimodalEmbedder(hf.audio_config, hf.text_config),
        }
    stored = [
        StoredTensor(f"{prefix}.{n}", "BF16", tuple(p.shape), 2 * p.numel())
        for prefix, module in parts.items()
        for n, p in module.named_parameters()
    ]
    w = dict(weights_override(spec.architecture, stored, "test", "safetensors").component_bytes)
    ours = {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
    assert w == {"audio_tower": ours["audio_tower"], "projector": ours["projector"]}


def test_images_take_256_tokens_and_no_size_option(tmp_path):
    """Gemma3nImageProcessor resizes to 768 x 768: vision_soft_tokens_per_image (256) whatever the image."""
    spec, _ = _config_spec(tmp_path, "img", {"model_type": "gemma3n", "text_config": TEXT_SMALL})
    g = archs.geometry(spec)
    assert g.takes_images and not g.image_size_option
    assert archs.image_tokens(spec, None) == archs.image_tokens(spec, (480, 640)) == 256


@pytest.mark.parametrize(
    "bad",
    [
        {"vision_config": {"architecture": "mobilenetv5_base"}},
        {"vision_config": {"model_args": {"depth": 3}}},
        {"audio_config": {"hidden_size": 50, "conf_num_attention_heads": 8}},
    ],
)
def test_what_it_cannot_count_is_refused_in_one_line(tmp_path, bad):
    with pytest.raises(SpecError) as err:
        _config_spec(tmp_path, "bad", {"model_type": "gemma3n", "text_config": TEXT_SMALL, **bad})
    assert "\n" not in str(err.value).strip()


def test_one_clip_runs_750_conformer_positions_and_takes_188_tokens():
    """Gemma3nAudioFeatureExtractor on 30 s of silence gives 2,997 mel frames; the subsampling's two time-stride-2
    convolutions (padding 0 before, kernel - 1 after) leave 750 Conformer positions, every 4th kept: 188 tokens,
    Gemma3nConfig.audio_soft_tokens_per_image."""
    np = pytest.importorskip("numpy")
    tf = pytest.importorskip("transformers")
    from transformers.models.gemma3n.feature_extraction_gemma3n import Gemma3nAudioFeatureExtractor

    from willitrun.archs.gemma3n import AUDIO_CONFORMER_POSITIONS

    frames = Gemma3nAudioFeatureExtractor()(np.zeros(480_000, dtype=np.float32))["input_features"][0].shape[0]
    for _ in range(2):
        frames = (frames + 2 - 3) // 2 + 1
    assert frames == AUDIO_CONFORMER_POSITIONS == 750
    assert -(-frames // tf.Gemma3nAudioConfig().conf_reduction_factor) == tf.Gemma3nConfig().audio_soft_tokens_per_image


def test_audio_seconds_in_the_context(tmp_path):
    """Per started 30 s clip 188 tokens; the text model takes no --audio-seconds."""
    from willitrun.errors import UsageError

    spec, _ = _config_spec(tmp_path, "a", {"model_type": "gemma3n", "text_config": TEXT_SMALL})
    assert estimate(spec, context=4096, audio_seconds=45).audio_tokens == 2 * 188
    assert estimate(spec, context=4096, audio_seconds=30).audio_tokens == 188
    text_only, _ = _config_spec(tmp_path, "t", {"model_type": "gemma3n_text", **TEXT_SMALL})
    with pytest.raises(UsageError, match="takes no audio"):
        estimate(text_only, audio_seconds=10)


def test_estimate_path_imports_no_torch_or_timm(tmp_path):
    """The vision tower is counted without timm (or torch) on the estimate path."""
    import subprocess
    import sys

    _, path = _config_spec(tmp_path, "noimports", {"model_type": "gemma3n"})
    code = (
        "import sys; from willitrun import estimate; from willitrun.importers import spec_from_path; "
        f"s, _ = spec_from_path({str(path)!r}); print(estimate(s, images=1, audio_seconds=30).parameters); "
        "print('torch' in sys.modules, 'timm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == [str(GEMMA3N_CLASS_DEFAULTS), "False", "False"]
