"""GGUF files of vision models: the language-model GGUF imports as text, an mmproj file is refused plainly."""

from __future__ import annotations

import pytest

from tests.importers.helpers import write_llama_gguf
from willitrun import UsageError
from willitrun.importers import spec_from_path


def test_an_mmproj_gguf_is_refused_with_what_it_is(tmp_path):
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "mmproj-model-f16.gguf"
    # what convert_hf_to_gguf.py --mmproj writes: general.architecture "clip" (gguf MODEL_ARCH.MMPROJ)
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "gemma3")
    w.add_tensor("v.patch_embd.weight", np.zeros((4, 3, 2, 2), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UsageError, match="an mmproj file") as err:
        spec_from_path(path)
    assert "\n" not in str(err.value) and "gemma-3-4b" in str(err.value)


def test_a_gemma3_gguf_is_the_language_model_and_says_so(tmp_path):
    # llama.cpp names Gemma 3's language model gemma3 (LLM_ARCH_GEMMA3) in text-only and vision checkpoints alike
    path = write_llama_gguf(
        tmp_path / "gemma-3-tiny.gguf",
        arch="gemma3",
        tied=True,
        extra={
            "gemma3.attention.key_length": 16,
            "gemma3.attention.value_length": 16,
            "gemma3.attention.sliding_window": 32,
        },
    )
    spec, weights = spec_from_path(path)
    assert spec.architecture == "gemma3_text" and weights is not None
    assert "separate mmproj file" in (spec.notes or "")
