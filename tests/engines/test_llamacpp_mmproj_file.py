"""--mmproj FILE: the user's mmproj GGUF sizes the vision weights from its own tensor table.

The files are real GGUFs written by the `gguf` package's GGUFWriter (llama.cpp's gguf-py), with the
keys clip.cpp reads (tools/mtmd/clip-impl.h: KEY_PROJ_TYPE "clip.projector_type", KEY_N_EMBD
"clip.vision.embedding_length", KEY_N_HEAD "clip.vision.attention.head_count", KEY_PATCH_SIZE
"clip.vision.patch_size", KEY_IMAGE_SIZE "clip.vision.image_size") and the architecture
convert_hf_to_gguf.py --mmproj writes ("clip"). Expected bytes are computed here from the arrays written
and gguf-py's GGML_QUANT_SIZES, not from willitrun's reader.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.cli.engine_options import read_mmproj  # the edge reads the file; engines read no file format
from willitrun.engines import LlamaCppOptions, engine_estimate
from willitrun.engines.ollama import OllamaOptions
from willitrun.engines.registry import LlamaCpp
from willitrun.errors import UsageError
from willitrun.memory import Request

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

CUDA_ALIGN = 128  # ggml-cuda.cu ggml_backend_cuda_buffer_type_get_alignment
ROW_PAD = 512  # ggml-cuda.cu MATRIX_ROW_PADDING


def _aligned(n: int) -> int:
    return -(-n // CUDA_ALIGN) * CUDA_ALIGN


def write_mmproj(path, projector="gemma3", keys=None, tensors=None, arch="clip"):
    """An mmproj GGUF: `tensors` name -> (numpy array, ggml type); returns the bytes the CUDA backend holds
    for them (each tensor's data, a quantized one padded to whole 512-element rows, each 128-byte aligned)."""
    w = gguf.GGUFWriter(str(path), arch)
    if projector is not None:
        w.add_string("clip.projector_type", projector)
    for key, value in (keys or {}).items():
        w.add_uint32(key, value)
    expected = 0
    for name, (array, qtype) in (tensors or {}).items():
        if qtype == gguf.GGMLQuantizationType.Q8_0:
            block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
            data = gguf.quants.quantize(array, qtype)
            w.add_tensor(name, data, raw_dtype=qtype)  # the byte shape: gguf-py derives the element shape
            row = array.shape[-1]
            pad = (ROW_PAD - row % ROW_PAD) // block * block_bytes if row % ROW_PAD else 0
            expected += _aligned(data.nbytes + pad)
        else:
            w.add_tensor(name, array)
            expected += _aligned(array.nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, expected


# gemma-3-4b's SigLIP tower (its config.json vision_config: hidden_size 1152, 16 heads, patch 14)
GEMMA3_KEYS = {
    "clip.vision.embedding_length": 1152,
    "clip.vision.attention.head_count": 16,
    "clip.vision.patch_size": 14,
}


@pytest.fixture
def gemma3_file(tmp_path):
    return write_mmproj(
        tmp_path / "mmproj-gemma-3-4b.gguf",
        keys=GEMMA3_KEYS,
        tensors={
            "v.patch_embd.weight": (np.ones((1152, 3, 14, 14), dtype=np.float32), None),
            "v.blk.0.attn_q.weight": (np.ones((1152, 1152), dtype=np.float16), None),
            # a q8_0 matrix whose 1152-element rows are not whole 512-element padding rows
            "mm.input_projection.weight": (np.ones((64, 1152), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0),
            "v.post_ln.weight": (np.ones(1152, dtype=np.float32), None),
        },
    )


def _estimate(catalog, model, path=None, engine="llama.cpp", **kw):
    spec = catalog.resolve("model", model)
    path = read_mmproj(path) if path else None
    if engine == "ollama":
        opt = OllamaOptions(mmproj_file=path, vram_bytes=24 << 30, **kw)
    else:
        opt = LlamaCppOptions(mmproj_file=path, **kw)
    return engine_estimate(spec, Request(), engine=engine, options=opt)


def _buffer(est, prefix):
    return next(b for b in est.buffers if b.name.startswith(prefix))


def test_the_files_tensor_table_sizes_the_mmproj_weights(catalog, gemma3_file):
    path, expected = gemma3_file
    computed = _estimate(catalog, "gemma-3-4b")
    given = _estimate(catalog, "gemma-3-4b", str(path))
    assert _buffer(given, "mmproj").bytes == expected
    assert _buffer(computed, "mmproj").bytes != expected  # the file's table, not the computed full tower
    assert str(path) in _buffer(given, "mmproj").detail
    # the CLIP compute buffers are the graph's, as without the file
    for name in ("CLIP compute buffer", "CLIP compute buffer (CPU): the image"):
        assert _buffer(given, name).bytes == _buffer(computed, name).bytes
    # on the host (2024 llava-cli): no CUDA row padding, 32-byte alignment
    host = _estimate(catalog, "gemma-3-4b", str(path), mmproj_on_gpu=False)
    table = read_mmproj(str(path))
    assert _buffer(host, "mmproj").bytes == sum(-(-n // 32) * 32 for *_, n in table.tensors)


def test_a_projector_of_another_model_is_one_clear_line(catalog, tmp_path, gemma3_file):
    path, _ = gemma3_file
    with pytest.raises(UsageError, match=r"'gemma3' projector .* needs 'qwen2\.5vl_merger'") as err:
        _estimate(catalog, "qwen2.5-vl-3b", str(path))
    assert "\n" not in str(err.value)
    wide, _ = write_mmproj(
        tmp_path / "wide.gguf", keys={**GEMMA3_KEYS, "clip.vision.embedding_length": 1280}, tensors={}
    )
    with pytest.raises(UsageError, match="embedding_length is 1280, gemma-3-4b's vision tower has 1152"):
        _estimate(catalog, "gemma-3-4b", str(wide))


def test_llava_checks_its_mlp_projector_and_tower(catalog, tmp_path, gemma3_file):
    # llava-1.5-7b: CLIP ViT-L/14-336 (hidden 1024, 16 heads, 336 px); llava's convert script writes "mlp"
    keys = {"clip.vision.embedding_length": 1024, "clip.vision.attention.head_count": 16, "clip.vision.image_size": 336}
    path, expected = write_mmproj(
        tmp_path / "llava.gguf",
        projector="mlp",
        keys=keys,
        tensors={"mm.0.weight": (np.ones((4096, 1024), dtype=np.float16), None)},
    )
    for engine in ("llama.cpp", "ollama"):
        est = _estimate(catalog, "llava-1.5-7b", str(path), engine=engine)
        assert _buffer(est, "mmproj").bytes == expected
    with pytest.raises(UsageError, match=r"'gemma3' projector .* LLaVA's 'mlp'"):
        _estimate(catalog, "llava-1.5-7b", str(gemma3_file[0]))


def test_not_an_mmproj_and_a_model_without_vision_are_refused(catalog, tmp_path, gemma3_file):
    lm, _ = write_mmproj(tmp_path / "model.gguf", projector=None, arch="llama")
    with pytest.raises(UsageError, match=r"general\.architecture 'llama', not an mmproj file"):
        _estimate(catalog, "gemma-3-4b", str(lm))
    with pytest.raises(UsageError, match=r"llama-3\.1-8b has no vision tower"):
        _estimate(catalog, "llama-3.1-8b", str(gemma3_file[0]))


def test_the_launch_line_loads_the_given_file(catalog, gemma3_file):
    path = str(gemma3_file[0])
    spec = catalog.resolve("model", "gemma-3-4b")
    opt = LlamaCppOptions(mmproj_file=read_mmproj(path))
    argv = LlamaCpp.launch(spec, engine_estimate(spec, Request(), engine="llama.cpp", options=opt), opt)
    assert argv[argv.index("--mmproj") + 1] == path


def test_the_cli_takes_mmproj_and_echoes_it(gemma3_file):
    path, expected = gemma3_file
    runner = CliRunner()
    env = {"NO_COLOR": "1", "COLUMNS": "200"}
    for flag in ("--mmproj", "-mm"):  # llama.cpp common/arg.cpp: {"-mm", "--mmproj"}, "FILE"
        r = runner.invoke(
            app, ["gemma-3-4b", "--gpu", "rtx4090", "--engine", "llama.cpp", flag, str(path), "--json"], env=env
        )
        assert r.exit_code == 0, r.output
        d = json.loads(r.stdout)
        assert d["engine_options"]["mmproj"] == str(path)
        assert next(b for b in d["buffers"] if b["name"].startswith("mmproj"))["bytes"] == expected
    r = runner.invoke(
        app, ["qwen2.5-vl-3b", "--gpu", "rtx4090", "--engine", "llama.cpp", "--mmproj", str(path)], env=env
    )
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "another model" in r.output
    r = runner.invoke(app, ["gemma-3-4b", "--gpu", "rtx4090", "--engine", "vllm", "--mmproj", str(path)], env=env)
    assert r.exit_code == 2 and "--mmproj does not apply to vllm" in r.output
