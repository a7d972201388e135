"""Media that fill the context (issue 19 remainder): images, video or audio whose positions alone take every cell of
a sequence's context leave no room for text, and no engine runs such a prompt. Every engine says so in one line on
stderr and exits 2, as transformers did alone before (memory.check_room_for_text): a LLaVA with --context 256 (576
image positions, CLIP ViT-L/14 at 336 px), a Qwen2-VL image larger than the context, Whisper given audio in its
text context."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from willitrun.cli import app


def _refused(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "-q"])
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output
    return lines[0]


@pytest.mark.parametrize("engine", ["transformers", "llama.cpp", "ollama", "vllm"])
def test_a_llava_image_larger_than_the_context_is_refused_by_every_engine(engine):
    line = _refused("llava-1.5-7b", "--gpu", "rtx4090", "--context", "256", "--engine", engine)
    assert "256 leaves no room for text" in line and "576 positions" in line


@pytest.mark.parametrize(
    ("engine", "gpu"), [("transformers", "rtx4090"), ("llama.cpp", "rtx4090"), ("vllm", "a100-80gb")]
)
def test_a_qwen2_vl_image_larger_than_the_context_is_refused(engine, gpu):
    # 2000 x 2000 px: (2000 // 28)^2 = 71^2 = 5041 merged patches (Qwen2-VL: 14 px patches merged 2 x 2)
    extra = ["--dtype", "q4_k_m"] if engine == "llama.cpp" else []
    line = _refused(
        "qwen2-vl-7b", "--gpu", gpu, "--image-size", "2000x2000", "--context", "2048", "--engine", engine, *extra
    )
    assert "2048 leaves no room for text" in line


@pytest.mark.parametrize("engine", ["transformers", "whisper.cpp", "ctranslate2"])
def test_whisper_takes_no_audio_in_its_text_context_on_any_engine(engine):
    line = _refused("whisper-small", "--gpu", "t4", "--engine", engine, "--audio-seconds", "600")
    assert "takes no audio in its context" in line


def test_media_that_leave_room_still_run():
    r = CliRunner().invoke(
        app, ["llava-1.5-7b", "--gpu", "rtx4090", "--context", "1024", "--engine", "llama.cpp", "-q"]
    )
    assert r.exit_code == 0, r.output


def test_media_larger_than_the_context_fit_picks_say_who_picked_it():
    """No --context on an 8 GiB card: llama.cpp's --fit keeps 4096 (common/fit.cpp), which a 2000 x 2000 px Qwen2-VL
    image (5041 positions) fills: exit 2, and the line says the context is --fit's; fit's own probes measure memory
    whatever the media take (it loads no prompt), so a card where --fit keeps the window answers."""
    line = _refused("qwen2-vl-7b", "--gpu", "rtx4060", "--image-size", "2000x2000", "--dtype", "q8_0")
    assert "4096 leaves no room for text" in line and "--fit picks on this card" in line
    r = CliRunner().invoke(
        app, ["qwen2-vl-7b", "--gpu", "rtx3060", "--image-size", "2000x2000", "--dtype", "q8_0", "-q"]
    )
    assert r.exit_code == 0, r.output
