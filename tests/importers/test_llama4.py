"""Llama 4 multimodal (archs/llama4.py, model_type llama4): parameters equal transformers 5.23's
Llama4ForConditionalGeneration on the meta device (the class defaults, small configs with every flag, and Llama 4
Scout's full-size config.json), checkpoint names land in the computed components, and image tokens follow the
processor's own canvas choice and prompt (image_processing_llama4.py get_best_fit / find_supported_resolutions,
processing_llama4.py Llama4Processor._prompt_split_image)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.importers.helpers import write_config
from willitrun import archs, estimate
from willitrun.errors import SpecError
from willitrun.importers import spec_from_path

TEXT_SMALL = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 32,
    "intermediate_size_mlp": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_local_experts": 3,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
VISION_SMALL = {
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
    "vision_output_dim": 48,
    "projector_input_dim": 40,
    "projector_output_dim": 48,
}
# Llama-4-Scout-17B-16E's config.json as printed (Llama4Config repr) in a public note (search-index file id
# 41112263523, referencing https://huggingface.co/meta-llama/Llama-4-Scout-17B-16E) and copied into
# docs/research/issue10/llama-4-scout.yaml; attn_temperature_tuning 4 there is an int, which transformers 5.23's
# strict Llama4TextConfig refuses (it expects a bool, and changes no shape): given as true here.
SCOUT = Path(__file__).parents[2] / "docs/research/issue10/llama-4-scout.yaml"

CASES = [
    ("class-defaults", {"model_type": "llama4"}),
    ("small", {"model_type": "llama4", "text_config": TEXT_SMALL, "vision_config": VISION_SMALL}),
    (
        "small-tied-interleaved",
        {
            "model_type": "llama4",
            "text_config": {**TEXT_SMALL, "tie_word_embeddings": True, "interleave_moe_layer_step": 2},
            "vision_config": {**VISION_SMALL, "num_channels": 1, "multi_modal_projector_bias": True},
            "tie_word_embeddings": False,
        },
    ),
    (
        "small-moe-layers-top-tie-ignored",
        {
            "model_type": "llama4",
            "text_config": {**TEXT_SMALL, "moe_layers": [1, 3], "attention_bias": True},
            "vision_config": {**VISION_SMALL, "image_size": 42, "pixel_shuffle_ratio": 0.25},
            "tie_word_embeddings": True,
        },
    ),
    (
        # transformers builds heads that do not divide the width (its forward would not run it): the projections
        # are heads x (width // heads) wide, as it builds them
        "small-odd-heads",
        {
            "model_type": "llama4",
            "text_config": TEXT_SMALL,
            "vision_config": {**VISION_SMALL, "num_attention_heads": 3},
        },
    ),
]


def _scout_config() -> dict:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(SCOUT.read_text())["config"]
    config["text_config"]["attn_temperature_tuning"] = True
    return config


def _spec_and_model(tmp_path, case_id, config):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    path = write_config(tmp_path / case_id, config)
    spec, _ = spec_from_path(path)
    hf = tf.AutoConfig.from_pretrained(path.parent)
    with torch.device("meta"):
        model = tf.Llama4ForConditionalGeneration(hf).to(torch.bfloat16)
    return spec, hf, model


@pytest.mark.parametrize(("case_id", "config"), CASES, ids=[c[0] for c in CASES])
def test_parameters_and_checkpoint_names_equal_transformers(tmp_path, case_id, config):
    from willitrun.importers.weights import StoredTensor, weights_override

    spec, _, model = _spec_and_model(tmp_path, case_id, config)
    assert spec.architecture == "llama4"
    assert estimate(spec).parameters == sum(p.numel() for p in model.parameters())
    stored = [StoredTensor(n, "BF16", tuple(p.shape), 2 * p.numel()) for n, p in model.named_parameters()]
    w = weights_override(spec.architecture, stored, "test", "safetensors")
    assert dict(w.component_bytes) == {c.name: c.bytes for c in estimate(spec, dtype="bf16").components}


def test_scout_full_size_equals_transformers(tmp_path):
    """Scout: 108,641,793,536 parameters in transformers 5.23 (850,960,896 in Llama4VisionModel with its adapter,
    20,971,520 in the projector). The note the config came from prints 109,676,279,296, exactly one
    vocab x hidden matrix (202,048 x 5,120) more: its own table lists a dense 16,384-wide MLP in every layer, so
    it is not transformers' count of this config."""
    spec, _, model = _spec_and_model(tmp_path, "scout", _scout_config())
    e = estimate(spec)
    assert e.parameters == sum(p.numel() for p in model.parameters()) == 108_641_793_536
    tower = sum(p.numel() for n, p in model.named_parameters() if n.startswith("vision_model."))
    adapter = sum(p.numel() for n, p in model.named_parameters() if n.startswith("vision_model.vision_adapter."))
    by = {c.name: c.parameters for c in e.components}
    assert by["vision_tower"] == tower - adapter
    assert by["projector"] == adapter + model.multi_modal_projector.linear_1.weight.numel()
    assert 109_676_279_296 - e.parameters == 202_048 * 5_120


def test_the_text_model_is_llama4_text(tmp_path):
    """The language model's share equals a llama4_text spec of the same text_config (archs/llama4.py text_tensors)."""
    mm = _scout_config()
    mm_spec, _ = spec_from_path(write_config(tmp_path / "mm", mm))
    text_spec, _ = spec_from_path(write_config(tmp_path / "text", mm["text_config"]))
    towers = sum(c.parameters for c in estimate(mm_spec).components if c.name in ("vision_tower", "projector"))
    assert estimate(mm_spec).parameters - towers == estimate(text_spec).parameters
    assert archs.geometry(mm_spec).self_kv == archs.geometry(text_spec).self_kv


def _processor_tokens(rows: int, cols: int, per_tile: int) -> int:
    """Tokens of the prompt Llama4Processor writes: every special token is one token."""
    from transformers.models.llama4.processing_llama4 import Llama4Processor

    text = Llama4Processor._prompt_split_image(None, (rows, cols), per_tile)
    return len(re.findall(r"<\|[a-z_]+\|>", text))


SIZES = [
    (480, 640),
    (336, 336),
    (100, 100),
    (2000, 300),
    (300, 2000),
    (1080, 1920),
    (4000, 4000),
    (700, 337),
    (1, 5000),
]


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_image_tokens_follow_the_processor(tmp_path, size):
    """The canvas is get_best_fit's over find_supported_resolutions(16, 336) (transformers' own functions), and the
    token count is that of the prompt Llama4Processor._prompt_split_image writes for it. transformers' image
    processor module needs torchvision (skipped without it). Checked once end to end with torchvision 0.28: the real
    Llama4ImageProcessor on 15 blank images (these sizes and 337x337, 673x1009, 50x3000, 3000x3000, 1344x1344,
    1345x1344) returned the same aspect_ratios, tiles (+1 global) and prompt length as archs/llama4.py."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from willitrun.archs.llama4 import MAX_TILES, tile_grid

    try:
        from transformers.image_utils import SizeDict
        from transformers.models.llama4 import image_processing_llama4 as ip

        find, best_fit = ip.find_supported_resolutions, ip.get_best_fit
    except ImportError as e:  # requires_backends("torchvision") on first use
        pytest.skip(f"transformers' Llama 4 image processor needs torchvision: {str(e).strip().splitlines()[0]}")
    spec, _ = spec_from_path(write_config(tmp_path / "scout", _scout_config()))
    side = spec.config.vision_config.image_size
    best = best_fit(size, torch.tensor(find(MAX_TILES, SizeDict(height=side, width=side))))
    rows, cols = int(best[0]) // side, int(best[1]) // side
    assert tile_grid(*size, side) == (rows, cols)
    per_tile = spec.config.vision_config.tokens_per_tile
    assert per_tile == 144  # (336 // 14)^2 // round(1 / 0.5^2)
    assert archs.image_tokens(spec, size) == _processor_tokens(rows, cols, per_tile)


def test_canvases_and_best_fit_match_the_docstring_examples():
    """image_processing_llama4.py's own examples: find_supported_resolutions(max_num_chunks=4, patch_size=224)
    returns (224, 896), (448, 448), (224, 224), (896, 224), (224, 672), (672, 224), (224, 448), (448, 224); and
    get_best_fit picks 224 x 448 for a 200 x 300 image (the smallest upscale, 1.12, is reached by 224 x 672 and
    224 x 448; the smaller area wins)."""
    from willitrun.archs.llama4 import supported_canvases, tile_grid

    assert [(r * 224, c * 224) for r, c in supported_canvases(4)] == [
        (224, 896),
        (448, 448),
        (224, 224),
        (896, 224),
        (224, 672),
        (672, 224),
        (224, 448),
        (448, 224),
    ]
    assert tile_grid(200, 300, 224, max_tiles=4) == (1, 2)
    # hand-worked: 480 x 640 on 336 tiles; 2 x 2 (672 x 672) upscales by min(1.4, 1.05) = 1.05, the least >= 1
    assert tile_grid(480, 640, 336) == (2, 2)


def test_image_tokens_without_a_size_are_the_most_one_image_takes(tmp_path):
    """16 tiles (any 16-tile canvas: one separator per tile) and the global tile: 16 x 145 + 144 + 3."""
    spec, _ = spec_from_path(write_config(tmp_path / "scout", _scout_config()))
    assert archs.image_tokens(spec, None) == 16 * 145 + 147 == 2467


def test_the_vision_pass_runs_every_tile(tmp_path):
    """Each tile is (336 / 14)^2 patches and the class token through the tower; a 640 x 480 image takes a 2 x 2
    canvas and the global tile: 5 tiles."""
    spec, _ = spec_from_path(write_config(tmp_path / "scout", _scout_config()))
    vision = [st for st in archs.stages(spec, 1024, 0, 2, image_size=(480, 640)) if st.per_input]
    assert len(vision) == 1
    assert (vision[0].tokens, vision[0].kv_tokens, vision[0].hidden) == (2 * 5 * 577, 577, 1408)
    assert archs.geometry(spec).takes_images and archs.geometry(spec).image_size_option


@pytest.mark.parametrize(
    "bad",
    [
        {"text_config": {**TEXT_SMALL, "no_rope_layers": [1, 0]}},
        {"vision_config": {**VISION_SMALL, "pixel_shuffle_ratio": 1.5}},
        {"vision_config": {**VISION_SMALL, "patch_size": 64}},
    ],
)
def test_configs_it_cannot_build_are_refused_in_one_line(tmp_path, bad):
    config = {"model_type": "llama4", "text_config": TEXT_SMALL, "vision_config": VISION_SMALL, **bad}
    with pytest.raises(SpecError) as err:
        spec_from_path(write_config(tmp_path / "bad", config))
    assert "\n" not in str(err.value).strip()


def test_estimate_path_imports_no_torch(tmp_path):
    """Answering a llama4 config.json never imports torch (the estimate path is pure arithmetic)."""
    import subprocess
    import sys

    path = write_config(tmp_path / "scout", json.loads(json.dumps(_scout_config())))
    code = (
        "import sys; from willitrun import estimate; from willitrun.importers import spec_from_path; "
        f"s, _ = spec_from_path({str(path)!r}); print(estimate(s, images=1).parameters); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["108641793536", "False"]
