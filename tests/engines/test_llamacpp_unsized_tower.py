"""A vision tower whose llama.cpp mmproj the profile does not size (Llama 4: tools/mtmd clip_graph_llama4 in
ggml-org/llama.cpp; engines/llamacpp.py clip_graph knows Gemma 3, Qwen2-VL and Pixtral only): images asked for are
refused in one line instead of the tower and its graph being left out of the total; without --images the answer
is the language model alone and says so."""

from __future__ import annotations

import pytest

from willitrun.engines import engine_estimate
from willitrun.errors import UsageError
from willitrun.importers.configs import spec_from_config
from willitrun.memory import Request

# Llama4Config's class defaults (transformers 5.23 configuration_llama4.py): Scout's shape with its vision tower
LLAMA4 = {"model_type": "llama4"}


@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
def test_images_on_an_unsized_tower_are_refused(engine):
    spec = spec_from_config(LLAMA4, "llama4", model_id="llama4")
    with pytest.raises(UsageError, match=r"does not size .* vision mmproj"):
        engine_estimate(spec, Request(context=8192, images=1), engine)


def test_without_images_the_language_model_alone_is_answered_and_said():
    spec = spec_from_config(LLAMA4, "llama4", model_id="llama4")
    est = engine_estimate(spec, Request(context=8192), "llama.cpp")
    assert any("the answer is the language model alone" in n for n in est.notes)
    assert not any("mmproj" in b.name or "CLIP" in b.name for b in est.buffers)
