"""Gemma 4's audio tower (archs/gemma4.py audio_tensors): Gemma4ForConditionalGeneration with an audio_config has
transformers 5.23's parameter count on the meta device, and every checkpoint name lands in the computed
components. The released tower's audio_config (hidden_size 1024, 12 layers, 8 heads, subsampling_conv_channels
[128, 32], conv_kernel_size 5, output_proj_dims 1536: `releasedGemma4AudioConfig` in ollama's x/models/gemma4 audio
test, search-index file id 58001126666) is Gemma4AudioConfig's class defaults, so "released-audio" is full size."""

from __future__ import annotations

import pytest

from tests.importers.helpers import write_config
from willitrun import estimate
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path

TEXT_SMALL = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 32,
    "vocab_size_per_layer_input": 128,
    "hidden_size_per_layer_input": 8,
}
IDS = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1}
RELEASED_AUDIO = {
    "model_type": "gemma4_audio",
    "attention_chunk_size": 12,
    "attention_context_left": 13,
    "attention_context_right": 0,
    "attention_invalid_logits_value": -1000000000.0,
    "attention_logit_cap": 50.0,
    "conv_kernel_size": 5,
    "gradient_clipping": 10000000000.0,
    "hidden_size": 1024,
    "num_attention_heads": 8,
    "num_hidden_layers": 12,
    "output_proj_dims": 1536,
    "residual_weight": 0.5,
    "rms_norm_eps": 0.000001,
    "subsampling_conv_channels": [128, 32],
    "use_clipped_linears": True,
}
SMALL_AUDIO = {
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "subsampling_conv_channels": [64, 16],
    "conv_kernel_size": 3,
    "output_proj_dims": 40,
    "use_clipped_linears": False,
}
CASES = [
    ("released-audio", {"audio_config": RELEASED_AUDIO}),
    ("class-audio-and-vision", {"audio_config": {}, "vision_config": {}}),
    ("small-audio-untied", {"audio_config": SMALL_AUDIO, "tie_word_embeddings": False}),
]


@pytest.mark.parametrize(("case_id", "extra"), CASES, ids=[c[0] for c in CASES])
def test_audio_tower_parameters_and_names_equal_transformers(tmp_path, case_id, extra):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, {"model_type": "gemma4", "text_config": TEXT_SMALL, **IDS, **extra})
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = tf.Gemma4ForConditionalGeneration(hf).to(torch.bfloat16)
    assert model.model.audio_tower is not None
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    tower = sum(p.numel() for n, p in model.named_parameters() if ".audio_tower." in n)
    assert {c.name: c.parameters for c in estimate(spec).components}["audio_tower"] == tower
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


def test_released_audio_tower_size():
    """The released tower by hand (modeling_gemma4.py): convs 128x1x3x3 + 32x128x3x3 and their norms, the input
    projection 1024 x (128 // 4 * 32); per layer two 4x feed-forwards (16 h^2 + 4 h), five h x h attention matrices
    and a per-dimension scale (128), the light conv (3 h^2 + 5 h + 2 h) and three norms; the output projection
    1536 x 1024 + 1536. 304,922,912 is also what transformers builds (the test above)."""
    from willitrun.archs.gemma4 import Gemma4AudioConfig, audio_tensors

    h = 1024
    layer = (16 * h * h + 4 * h) + (5 * h * h + 128) + (3 * h * h + 5 * h + 2 * h) + 3 * h
    sscp = 128 * 9 + 128 + 32 * 128 * 9 + 32 + 1024 * 1024
    expected = sscp + 12 * layer + 1536 * 1024 + 1536
    tower = sum(t.numel for t in audio_tensors(Gemma4AudioConfig(), 64) if t.component == "audio_tower")
    assert tower == expected == 304_922_912 - 1536 * 64


def test_an_audio_config_transformers_cannot_build_is_refused(tmp_path):
    path = write_config(
        tmp_path / "bad",
        {"model_type": "gemma4", "text_config": TEXT_SMALL, "audio_config": {"hidden_size": 100, **IDS}},
    )
    with pytest.raises(SpecError) as err:
        spec_from_path(path)
    assert "\n" not in str(err.value).strip()


@pytest.mark.parametrize("seconds", [1, 2, 7, 15, 29, 30])
def test_audio_tokens_follow_the_processor(seconds):
    """Gemma4Processor._compute_audio_num_tokens (processing_gemma4.py) with the default feature extractor (16 kHz,
    20 ms frames, 10 ms hop) and audio_seq_length 750, on `seconds` of silence."""
    np = pytest.importorskip("numpy")
    tf = pytest.importorskip("transformers")
    from types import SimpleNamespace

    from willitrun.archs.gemma4 import audio_clip_tokens

    fake = SimpleNamespace(feature_extractor=tf.Gemma4AudioFeatureExtractor(), audio_seq_length=750)
    want = tf.Gemma4Processor._compute_audio_num_tokens(fake, np.zeros(seconds * 16_000), 16_000)
    assert audio_clip_tokens(seconds) == want


def test_audio_seconds_in_the_context(tmp_path):
    """45 s are a 30 s clip (750 tokens) and a 15 s one; a Gemma 4 without audio_config takes no --audio-seconds."""
    from willitrun import archs
    from willitrun.archs.gemma4 import audio_clip_tokens
    from willitrun.errors import UsageError

    spec, _ = spec_from_path(
        write_config(tmp_path / "a", {"model_type": "gemma4", "text_config": TEXT_SMALL, "audio_config": {}, **IDS})
    )
    assert archs.family(spec).audio_tokens(spec, 45) == 750 + audio_clip_tokens(15) == 1125
    e = estimate(spec, context=4096, audio_seconds=45)
    assert e.audio_tokens == 1125
    assert any(st.per_input and st.tokens == 750 for st in archs.stages(spec, 4096, 0, 0))
    text_only, _ = spec_from_path(write_config(tmp_path / "t", {"model_type": "gemma4", "text_config": TEXT_SMALL}))
    with pytest.raises(UsageError, match="takes no audio"):
        estimate(text_only, audio_seconds=10)
