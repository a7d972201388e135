"""Qwen2-Audio and Voxtral (issue 20 section 3): a Whisper-like audio encoder whose output sits, as tokens, in a
decoder's self-attention context. Every expected number comes from transformers 5.23: the model classes on the meta
device (parameter counts, checkpoint names), the audio feature path (WhisperFeatureExtractor + the encoder's
output lengths, Voxtral's get_audio_features on a small random copy) for the audio tokens of N seconds."""

from __future__ import annotations

import json

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.errors import UsageError
from willitrun.importers import spec_from_path
from willitrun.memory import Request, resolve

SMALL_TEXT = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "pad_token_id": 0,
}
SMALL_QWEN2_AUDIO_ENCODER = {
    "model_type": "qwen2_audio_encoder",
    "d_model": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 4,
    "encoder_ffn_dim": 48,
    "num_mel_bins": 16,
}
# Voxtral's hidden_size x max_source_positions must be a multiple of intermediate_size (get_audio_features' reshape)
SMALL_VOXTRAL_ENCODER = {
    "model_type": "voxtral_encoder",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_mel_bins": 16,
}
CASES = [
    ("qwen2-audio-defaults", {"model_type": "qwen2_audio"}),
    (
        "qwen2-audio-small-tied-text",
        {
            "model_type": "qwen2_audio",
            "audio_config": SMALL_QWEN2_AUDIO_ENCODER,
            "text_config": {"model_type": "qwen2", **SMALL_TEXT, "tie_word_embeddings": True},
        },
    ),
    ("voxtral-defaults", {"model_type": "voxtral"}),
    (
        "voxtral-small",
        {
            "model_type": "voxtral",
            "audio_config": SMALL_VOXTRAL_ENCODER,
            "text_config": {"model_type": "llama", **SMALL_TEXT, "head_dim": 32},
        },
    ),
]
MODEL = {"qwen2_audio": "Qwen2AudioForConditionalGeneration", "voxtral": "VoxtralForConditionalGeneration"}


def _model(tf, hf):
    return getattr(tf, MODEL[hf.model_type])(hf)


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_components_and_caches_equal_transformers(tmp_path, case_id, config):
    """...ForConditionalGeneration on the meta device: the parameter total, every checkpoint name placed by the
    family's weight rules with each computed component's bytes, and the text model's KV width and layer count."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from willitrun.importers.weights import StoredTensor, weights_override

    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = _model(tf, hf)
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    computed = {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}
    assert dict(w.component_bytes) == computed
    assert set(computed) == {"audio_tower", "projector", "embeddings", "decoder", "lm_head"}
    g = archs.geometry(spec)
    attn = model.model.language_model.layers[0].self_attn
    assert {k.key_width for k in g.self_layers} == {attn.k_proj.out_features}
    assert len(g.self_layers) == hf.text_config.num_hidden_layers
    assert not g.cross_layers


@pytest.mark.parametrize("seconds", [1, 7, 29, 30, 31, 95])
def test_qwen2_audio_tokens_equal_the_feature_path(tmp_path, seconds):
    """Qwen2AudioProcessor's path for `seconds` of 16 kHz audio: WhisperFeatureExtractor (padding to 30 s, the
    attention mask counts the real mel frames; longer audio is cut at 30 s, so it is given as clips of <= 30 s),
    then the encoder's _get_feat_extract_output_lengths (conv2 stride 2, AvgPool1d(2)): the audio tokens."""
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    fe = tf.WhisperFeatureExtractor(feature_size=128)
    clips = [np.zeros(16_000 * min(30, seconds - start), dtype=np.float32) for start in range(0, seconds, 30)]
    feats = fe(clips, sampling_rate=16_000, padding="max_length", return_attention_mask=True, return_tensors="pt")
    with torch.device("meta"):
        encoder = tf.Qwen2AudioEncoder(tf.Qwen2AudioEncoderConfig(**SMALL_QWEN2_AUDIO_ENCODER))
    _, out = encoder._get_feat_extract_output_lengths(feats["attention_mask"].sum(-1))
    spec, _ = spec_from_path(write_config(tmp_path, {"model_type": "qwen2_audio"}))
    expected = int(out.sum())
    assert archs.family(spec).audio_tokens(spec, seconds) == expected
    r = resolve(spec, Request(audio_seconds=seconds))
    assert r.image_tokens == r.audio_tokens == expected
    if seconds == 30:
        assert expected == 750


@pytest.mark.parametrize("seconds", [1, 30, 31, 61])
def test_voxtral_audio_tokens_equal_get_audio_features(tmp_path, seconds):
    """VoxtralProcessor pads audio to the next multiple of 30 s and splits it into 3000-frame chunks; a small random
    Voxtral's get_audio_features turns them into the tokens placed in the context (375 per chunk at full size:
    1500 positions x 1280 / 5120); the small copy regroups 1500 x 32 into rows of 64: 750 per chunk."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    config = {
        "model_type": "voxtral",
        "audio_config": SMALL_VOXTRAL_ENCODER,
        "text_config": {"model_type": "llama", **SMALL_TEXT, "head_dim": 32},
    }
    path = write_config(tmp_path, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    torch.manual_seed(0)
    model = tf.VoxtralForConditionalGeneration(hf).eval()
    chunks = -(-seconds // 30)
    with torch.no_grad():
        features = model.get_audio_features(torch.zeros(chunks, 16, 3000)).pooler_output
    assert archs.family(spec).audio_tokens(spec, seconds) == features.shape[0] == 750 * chunks
    full, _ = spec_from_path(write_config(tmp_path / "full", {"model_type": "voxtral"}))
    assert archs.family(full).audio_tokens(full, seconds) == 375 * chunks


def test_audio_tokens_sit_in_the_self_attention_context(tmp_path):
    """30 s by default: 750 positions of the context are audio, their KV share is shown, and the context must leave
    room for text (a clear error otherwise)."""
    spec, _ = spec_from_path(write_config(tmp_path, {"model_type": "qwen2_audio"}))
    e = estimate(spec, context=4096)
    assert e.image_tokens == e.audio_tokens == 750
    assert e.text_tokens == 4096 - 750
    assert 0 < e.image_kv_bytes < e.kv_self_bytes
    assert any(n.startswith("audio: 30 s -> 750 tokens") for n in e.notes)
    assert estimate(spec, context=4096, audio_seconds=60).audio_tokens == 1500
    with pytest.raises(UsageError, match="no room for text: the audio takes 750 positions"):
        estimate(spec, context=700)


def test_audio_seconds_on_a_model_without_audio_is_one_line_error(tmp_path):
    spec, _ = spec_from_path(write_config(tmp_path, {"model_type": "qwen2", **SMALL_TEXT}))
    with pytest.raises(UsageError, match="takes no audio"):
        resolve(spec, Request(audio_seconds=30))
    with pytest.raises(UsageError, match="at least 1"):
        Request(audio_seconds=0)


def _cli(args: list[str]) -> tuple[tuple[int | None, str, str], tuple[int, str, str]]:
    """The same command line through the lean path (cli/lean.py) and through typer."""
    import contextlib
    import io

    from typer.testing import CliRunner

    from willitrun.cli import _lean, app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _lean(args)
    r = CliRunner().invoke(app, ["estimate", *args], env={"NO_COLOR": "1"})
    return (code, out.getvalue(), err.getvalue()), (r.exit_code, r.stdout, r.stderr)


def test_cli_audio_seconds_in_the_header_and_json(tmp_path):
    path = write_config(tmp_path, {"model_type": "voxtral"})
    (code, out, _), (t_code, t_out, _) = _cli([str(path), "--gpu", "h100", "--audio-seconds", "61", "--json"])
    assert code == t_code == 0
    for text in (out, t_out):
        e = json.loads(text)["estimate"] if "estimate" in json.loads(text) else json.loads(text)
        assert e["audio_tokens"] == e["image_tokens"] == 3 * 375
    (code, out, _), _ = _cli([str(path), "--gpu", "h100", "--context", "4096"])
    assert code == 0
    assert "context 4,096 tokens (375 audio + 3,721 text)" in out
    assert "of which audio tokens" in out


@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
def test_gguf_engines_refuse_in_one_line(tmp_path, engine):
    """llama.cpp's profile sizes vision mmproj files only: an audio tower is refused, not silently dropped."""
    path = write_config(tmp_path, {"model_type": "qwen2_audio"})
    (code, _, err), (t_code, _, t_err) = _cli([str(path), "--gpu", "h100", "--engine", engine, "-q"])
    assert code == t_code == 2
    for text in (err, t_err):
        assert text.count("\n") == 1 and "audio tower's mmproj" in text


def test_cli_audio_seconds_on_a_text_model_is_a_usage_error(tmp_path):
    path = write_config(tmp_path, {"model_type": "qwen2", **SMALL_TEXT})
    (code, _, err), (t_code, _, t_err) = _cli([str(path), "--gpu", "h100", "--audio-seconds", "30"])
    assert code == t_code == 2
    assert err.count("\n") == t_err.count("\n") == 1
    assert "takes no audio" in err


def test_audio_tokens_grow_with_the_audio_and_add_up_per_30_s(tmp_path):
    """Properties of both counts for any length: more audio never means fewer tokens, and 30 s more adds one full
    window (750 for Qwen2-Audio, a 30 s clip; 375 for Voxtral, a 30 s chunk)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    q, _ = spec_from_path(write_config(tmp_path / "q", {"model_type": "qwen2_audio"}))
    v, _ = spec_from_path(write_config(tmp_path / "v", {"model_type": "voxtral"}))
    q_count, v_count = archs.family(q).audio_tokens, archs.family(v).audio_tokens

    @settings(max_examples=300, deadline=None)
    @given(st.integers(1, 1 << 20))
    def check(seconds):
        for spec, count, window in ((q, q_count, 750), (v, v_count, 375)):
            assert count(spec, seconds) <= count(spec, seconds + 1)
            assert count(spec, seconds + 30) == count(spec, seconds) + window

    check()
