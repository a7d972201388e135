"""llama.cpp's mmproj file through libmtmd (Gemma 3, Qwen2-VL / Qwen2.5-VL, Mistral 3's Pixtral tower).

Every expected number is a figure llama.cpp printed (clip_model_loader / load_hparams `model size`,
alloc_compute_meta's compute buffers, the tokens of a decoded image) in a public log, named with its URL
next to the assert; the same figures are entries of tests/engines/data/calibration_extra.yaml.
"""

from __future__ import annotations

import pytest

from willitrun.engines import LlamaCppOptions, engine_estimate
from willitrun.engines.llamacpp import (
    clip_graph,
    clip_graph_bytes,
    clip_image,
    clip_output_tokens,
    mmproj_file_bytes,
    mmproj_file_storage,
    mmproj_file_tensors,
)
from willitrun.errors import UsageError
from willitrun.memory import Request
from willitrun.tensors import model_tensors

MIB = 2**20

PR_22790 = "https://github.com/ggml-org/llama.cpp/pull/22790"  # gemma-3-4b mmproj, CUDA0, flash attention on
ISSUE_16842 = (
    "https://github.com/ggml-org/llama.cpp/issues/16842"  # Mistral Small 3.2 mmproj, ROCm0, flash attention on
)
GGUF_PARSER_44 = "https://github.com/gpustack/gguf-parser-go/issues/44"  # MI300X, clip compute with -fa off and on
LLAMASHARP_1194 = "https://github.com/SciSharp/LLamaSharp/issues/1194"  # Qwen2.5-VL-3B mmproj-BF16.gguf
GPUSTACK_998 = "https://github.com/gpustack/gpustack/issues/998"  # Qwen2-VL-2B f32 mmproj (Dec 2024 llava-cli era)


def mib2(nbytes: int) -> float:
    """As llama.cpp prints it: MiB to two decimals."""
    return round(nbytes / MIB, 2)


@pytest.fixture(scope="module")
def spec(catalog):
    return lambda model_id: catalog.resolve("model", model_id)


# --------------------------------------------------------------------------------------------------
# The mmproj file's weights (load_hparams: "model size", the unaligned sum of ggml_nbytes)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "dtype", "printed_mib", "n_tensors", "url"),
    [
        # "load_hparams: model size: 811.79 MiB", "n_tensors: 439" (ggml-org/gemma-3-4b-it-GGUF's mmproj)
        ("gemma-3-4b", "f16", 811.79, 439, PR_22790),
        # "load_hparams: model size: 837.36 MiB" (Mistral Small 3.2 2506: the same Pixtral tower and projector
        # as 3.1; 0.02 MiB of it is v.token_embd.img_break, the [IMG_BREAK] row of the 5120-wide text embedding)
        ("mistral-small-3.1-24b", "f16", 837.36, None, ISSUE_16842),
        # "load_hparams: model size: 1276.39 MiB", "loaded 519 tensors" from mmproj-BF16.gguf: its patch kernels
        # are f16 (tensor[517], [518] "type = f16"), as in an f16 file; every other 2-D tensor is 2 bytes either way
        ("qwen2.5-vl-3b", "f16", 1276.39, 519, LLAMASHARP_1194),
        # "params backend buffer size = 2537.81 MB (521 tensors)" for an f32 Qwen2-VL-2B mmproj (MB there is MiB:
        # 2537.81 x 2^20 B is the f32 vision tower); that file from the first Qwen2-VL converter had one tensor more
        ("qwen2-vl-2b", "f32", 2537.81, None, GPUSTACK_998),
    ],
)
def test_mmproj_weights_match_printed_model_size(spec, model, dtype, printed_mib, n_tensors, url):
    s = spec(model)
    assert mib2(mmproj_file_bytes(s, dtype)) == printed_mib, url
    if n_tensors is not None:
        assert len(mmproj_file_tensors(s, model_tensors(s))) == n_tensors, url


def test_qwen_mmproj_splits_qkv_and_the_conv3d(spec):
    # Qwen2VLVisionModel.modify_tensors: 32 fused qkv weights and biases -> q, k, v; Conv3d -> two Conv2d
    s = spec("qwen2.5-vl-3b")
    mm = mmproj_file_tensors(s, model_tensors(s))
    names = {t.name for t in mm}
    assert {"vision.0.attn_q.weight", "vision.0.attn_k.bias", "vision.patch_embd.weight.1"} <= names
    assert not any("attn_qkv" in n for n in names)
    assert {t.shape for t in mm if t.name.startswith("vision.patch_embd")} == {(1280, 3, 14, 14)}


def test_mmproj_types_follow_the_converter(spec):
    """convert_hf_to_gguf.py rules, checked one tensor at a time for a q8_0 file."""
    g = spec("gemma-3-4b")
    mm = mmproj_file_tensors(g, model_tensors(g))
    types = {t.name: s.name for t, s in zip(mm, mmproj_file_storage(g, mm, "q8_0"), strict=True)}
    assert types["projector.mm_input_projection"] == "f16"  # Gemma3VisionModel: issue #13025
    assert types["vision.patch_embd.weight"] == "f32"  # `.embeddings.` -> F32
    assert types["vision.position_embd.weight"] == "f32"
    assert types["vision.0.attn_q.weight"] == "q8_0"
    assert types["vision.0.ln1.weight"] == "f32"  # 1-D
    q = spec("qwen2.5-vl-3b")
    mm = mmproj_file_tensors(q, model_tensors(q))
    types = {t.name: s.name for t, s in zip(mm, mmproj_file_storage(q, mm, "q8_0"), strict=True)}
    assert types["vision.0.ffn_down.weight"] == "f16"  # rows of 3420 are not whole 32-blocks: QuantError -> F16
    assert types["vision.0.ffn_up.weight"] == "q8_0"
    assert types["vision.patch_embd.weight"] == "f32"  # MmprojModel: F16 only in an f16 file
    types16 = {t.name: s.name for t, s in zip(mm, mmproj_file_storage(q, mm, "f16"), strict=True)}
    assert types16["vision.patch_embd.weight.1"] == "f16"


def test_quantized_mmproj_type_is_refused_plainly(spec):
    with pytest.raises(UsageError, match="f32, f16, bf16 or q8_0"):
        engine_estimate(
            spec("gemma-3-4b"), Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(mmproj_dtype="q4_k_m")
        )


# --------------------------------------------------------------------------------------------------
# clip.cpp's compute buffers, at the image alloc_compute_meta was warmed up with
# --------------------------------------------------------------------------------------------------
def test_gemma3_clip_compute_with_flash_attention_is_exact(spec):
    # "warmup: warmup with image size = 896 x 896", "CUDA0 compute buffer size = 121.25 MiB",
    # "CPU compute buffer size = 9.19 MiB", "warmup: flash attention is enabled"
    e = engine_estimate(spec("gemma-3-4b"), Request(dtype="q4_k_m"), "llama.cpp")
    assert mib2(e.find("CLIP compute buffer").bytes) == 121.25, PR_22790
    assert mib2(e.find("CLIP compute buffer (CPU): the image").bytes) == 9.19, PR_22790
    assert mib2(e.find("mmproj (gemma3)").bytes) == pytest.approx(811.79, abs=0.01)  # + 128-byte alignment


def test_gemma3_clip_compute_without_flash_attention(spec):
    # gguf-parser-go #44's table: gemma3 clip compute 1132 MiB with -fa off (121 with it on)
    e = engine_estimate(spec("gemma-3-4b"), Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(flash_attn=False))
    assert e.find("CLIP compute buffer").bytes == 1132 * MIB, GGUF_PARSER_44


@pytest.mark.parametrize(
    ("model", "fa", "printed_mib", "tolerance", "url"),
    [
        # Mistral Small 3.2: "warmup with image size = 448 x 448", "ROCm0 compute buffer size = 62.62 MiB" (-fa on);
        # the form gives 60.00: 4 % under
        ("mistral-small-3.1-24b", True, 62.62, 0.05, ISSUE_16842),
        # gguf-parser-go #44 (warmup image 1288 x 1288, 46 x 46 tokens): Qwen2.5-VL 4872 off / 705 on;
        # the form gives 4893.8 (+0.4 %) and 728.5 (+3.3 %)
        ("qwen2.5-vl-3b", False, 4872, 0.01, GGUF_PARSER_44),
        ("qwen2.5-vl-3b", True, 705, 0.05, GGUF_PARSER_44),
        # Qwen2-VL 4598 off / 267 on; the form gives 4620.5 (+0.5 %) and 289.3 (+8.4 %: not calibrated)
        ("qwen2-vl-2b", False, 4598, 0.01, GGUF_PARSER_44),
        ("qwen2-vl-2b", True, 267, 0.09, GGUF_PARSER_44),
    ],
)
def test_clip_compute_at_the_warmup_image_against_logs(spec, model, fa, printed_mib, tolerance, url):
    cg = clip_graph(spec(model))
    assert cg is not None
    h, w = clip_image(cg, None, warmup=True)
    nbytes, _ = clip_graph_bytes(cg, h, w, fa)
    assert nbytes / MIB == pytest.approx(printed_mib, rel=tolerance), url


def test_pixtral_host_buffer_is_the_f32_image(spec):
    # "CPU compute buffer size = 2.30 MiB" for the 448 x 448 warmup image: 4 B x 3 x 448 x 448
    e = engine_estimate(spec("mistral-small-3.1-24b"), Request(dtype="q4_k_m", image_size=(448, 448)), "llama.cpp")
    assert mib2(e.find("CLIP compute buffer (CPU): the image").bytes) == 2.30, ISSUE_16842


def test_the_estimate_sizes_the_largest_image_and_names_the_start_up_reservation(spec):
    e = engine_estimate(spec("qwen2.5-vl-3b"), Request(dtype="q4_k_m"), "llama.cpp")
    # set_limit_image_tokens(8, 4096): the largest image is 64 x 64 tokens = 1792 x 1792 px
    assert "1792 x 1792" in e.find("CLIP compute buffer").detail
    assert any("reserves 728.54 MiB at start-up (warmup image 1288 x 1288)" in n for n in e.notes)
    small = engine_estimate(spec("qwen2.5-vl-3b"), Request(dtype="q4_k_m", image_size=(448, 448)), "llama.cpp")
    assert small.find("CLIP compute buffer").bytes < e.find("CLIP compute buffer").bytes


def test_older_builds_run_clip_without_flash_attention(spec):
    # clip.cpp got flash attention in PR #16837 (November 2025): the 2025-08 key keeps the scores
    e = engine_estimate(spec("gemma-3-4b"), Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(version="2025-08"))
    assert e.find("CLIP compute buffer").bytes == 1132 * MIB
    assert any("PR #16837" in n for n in e.notes)


# --------------------------------------------------------------------------------------------------
# Image tokens in the llama context (clip_n_output_tokens)
# --------------------------------------------------------------------------------------------------
def test_image_tokens_per_family(spec):
    g = clip_graph(spec("gemma-3-4b"))
    q = clip_graph(spec("qwen2-vl-7b"))
    p = clip_graph(spec("mistral-small-3.1-24b"))
    assert g is not None and q is not None and p is not None
    assert clip_output_tokens(g, *clip_image(g, None)) == 256  # 896 px / 14 / n_merge 4, squared
    assert clip_output_tokens(q, *clip_image(q, None, warmup=True)) == 46 * 46
    assert clip_output_tokens(q, *clip_image(q, None)) == 4096  # set_limit_image_tokens(8, 4096)
    assert clip_output_tokens(p, *clip_image(p, None)) == 32 * 32 + 31  # 1024 tokens + [IMG_BREAK] per row but the last


def test_pixtral_image_tokens_match_a_decoded_image(spec):
    # "decoding image batch 1/1, n_tokens_batch = 998": 27 rows x 36 columns + 26 breaks, what every 4:3 image
    # wider than 1036 px becomes under image_max_pixels 802816 (the log prints that bound, not the image's size)
    p = clip_graph(spec("mistral-small-3.1-24b"))
    assert p is not None
    for size in ((1200, 1600), (3000, 4000)):
        assert clip_image(p, size) == (756, 1008)
        assert clip_output_tokens(p, *clip_image(p, size)) == 998, ISSUE_16842


def test_image_token_bounds_follow_the_options(spec):
    # --image-max-tokens 1024: clip.cpp set_limit_image_tokens(8, 1024) for Qwen2-VL -> the largest image 896 x 896
    e = engine_estimate(
        spec("qwen2-vl-7b"), Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(image_max_tokens=1024)
    )
    assert "896 x 896" in e.find("CLIP compute buffer").detail
    assert any("1,024 embeddings" in n for n in e.notes)
    # --image-min-tokens 1024 (what ggml-org/llama.cpp issue #16842 recommends for grounding) lifts a small image
    small = engine_estimate(
        spec("qwen2-vl-7b"),
        Request(dtype="q4_k_m", image_size=(224, 224)),
        "llama.cpp",
        LlamaCppOptions(image_min_tokens=1024),
    )
    assert any("1,024 embeddings" in n for n in small.notes)
    with pytest.raises(UsageError, match="above"):
        LlamaCppOptions(image_min_tokens=2048, image_max_tokens=1024)
    fixed = engine_estimate(
        spec("gemma-3-4b"), Request(dtype="q4_k_m"), "llama.cpp", LlamaCppOptions(image_max_tokens=64)
    )
    assert any("do not apply to gemma3" in n for n in fixed.notes)


def test_too_many_image_tokens_for_the_context_are_refused(spec):
    """libmtmd's own count of the image (4,096 embeddings at the projector's largest) fills a 2,048-cell context:
    no room for text, exit 2 (it was a warning; every engine now refuses alike: tests/engines/test_room_for_text.py)."""
    with pytest.raises(UsageError, match="leaves no room for text"):
        engine_estimate(spec("qwen2-vl-7b"), Request(dtype="q4_k_m", context=2048), "llama.cpp")
    with pytest.raises(UsageError, match="4096 positions"):  # libmtmd's count, past willitrun's own check
        engine_estimate(spec("qwen2-vl-7b"), Request(dtype="q4_k_m", context=4096), "llama.cpp")


# --------------------------------------------------------------------------------------------------
# What llama.cpp still cannot run
# --------------------------------------------------------------------------------------------------
def test_paligemma_is_refused_with_the_reason(spec):
    with pytest.raises(UsageError, match="no PaliGemma projector"):
        engine_estimate(spec("paligemma2-3b"), Request(dtype="q4_k_m"), "llama.cpp")


def test_ollama_vision_runners_stay_refused(spec):
    with pytest.raises(UsageError, match="ollama"):
        engine_estimate(spec("qwen2.5-vl-3b"), Request(dtype="q4_k_m"), "ollama")
