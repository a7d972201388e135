"""No config that transformers builds is called invalid (issue 20, "Done when").

Each config.json here is transformers' own: `AutoConfig.for_model(model_type).to_dict()` of the installed
transformers, written to disk as `save_pretrained` would. Before issue 20 these seven were refused with exit 3
(qwen2_moe saves `sliding_window: 0` when use_sliding_window is false; DeepseekV2Config's
num_experts_per_tok is None; the Idefics3 / SmolVLM / Gemma 3 / Qwen2-VL defaults combine a vision tower and
a connector that transformers builds but could not run). They are now answered, with a warning where a value
is one a forward pass could not use, and their parameter count is transformers' on the meta device.
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

# model_type -> (Auto class that builds the model willitrun counts, the warning expected on stderr or None)
CASES = {
    "qwen2_moe": ("AutoModelForCausalLM", None),
    "deepseek_v2": ("AutoModelForCausalLM", "num_experts_per_tok is null"),
    "idefics3": ("AutoModelForImageTextToText", "scale_factor (2) does not divide the 7 patches per side"),
    "smolvlm": ("AutoModelForImageTextToText", "scale_factor (2) does not divide the 7 patches per side"),
    "gemma3": ("AutoModelForImageTextToText", "mm_tokens_per_image (256) is not a square"),
    "qwen2_vl": ("AutoModelForImageTextToText", "vision_config.hidden_size (3584), the merger's output"),
    "qwen2_5_vl": ("AutoModelForImageTextToText", "vision_config.out_hidden_size (3584), the merger's output"),
}


def _meta_parameters(model_type: str, auto: str) -> int:
    config = transformers.AutoConfig.for_model(model_type)
    with torch.device("meta"):
        model = getattr(transformers, auto).from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied weights once, as willitrun counts them


@pytest.mark.parametrize("model_type", sorted(CASES))
def test_transformers_default_config_is_answered(tmp_path, model_type):
    auto, warning = CASES[model_type]
    path = tmp_path / model_type / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(transformers.AutoConfig.for_model(model_type).to_dict()))
    r = runner.invoke(app, [str(path), "--vram", "80", "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code in (0, 1), r.output  # an answer (fits or not), never exit 3
    answer = json.loads(r.stdout)
    assert answer["parameters"] == _meta_parameters(model_type, auto)
    if warning is None:
        assert "warning:" not in r.stderr
    else:
        assert warning in r.stderr


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm", "ollama"])
@pytest.mark.parametrize("model_type", sorted(CASES))
def test_every_engine_answers_or_refuses_in_one_line(tmp_path, model_type, engine):
    # a value a forward pass could not use must not crash an engine (gemma3's default once divided by zero
    # in llama.cpp's clip graph): an answer, or one line saying why not
    path = tmp_path / "config.json"
    path.write_text(json.dumps(transformers.AutoConfig.for_model(model_type).to_dict()))
    r = runner.invoke(app, [str(path), "--vram", "80", "--engine", engine], env={"NO_COLOR": "1"})
    assert r.exit_code in (0, 1, 2), r.output
    if r.exit_code == 2:
        assert [line for line in r.stderr.splitlines() if line.startswith("error:")] != []
        assert "internal error" not in r.stderr
