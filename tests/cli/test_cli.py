"""The command line: exit code first, then the output."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.detection import isolate_detection
from tests.fixtures.fake_nvml import MIG_3G_40GB, FakeNVML, a100_mig
from willitrun.cli import app

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden"
GiB = 1 << 30


def run(*args, env=None):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


def test_main_job_fits():
    r = run("llava-7b", "--gpu", "rtx3090")
    assert r.exit_code == 0, r.output
    if os.environ.get("WILLITRUN_UPDATE_GOLDEN"):
        (GOLDEN / "llava-7b-rtx3090.txt").write_text(r.stdout)
    # The whole output; its numbers are checked one by one in tests/unit and tests/reference.
    assert r.stdout == (GOLDEN / "llava-7b-rtx3090.txt").read_text()


def test_does_not_fit_exits_1_with_suggestions():
    r = run("llama-2-70b", "--gpu", "rtx4090")
    assert r.exit_code == 1
    assert "DOES NOT FIT" in r.stdout


def test_json_contract():
    r = run("llava-7b", "--gpu", "rtx3090", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    for key in (
        "model",
        "gpu",
        "context_tokens",
        "batch_size",
        "dtype",
        "kv_dtype",
        "parameters",
        "components",
        "weights_bytes",
        "kv_self_bytes",
        "kv_cross_bytes",
        "activations_bytes",
        "overhead_bytes",
        "total_bytes",
        "vram_bytes",
        "fits",
        "max_context_tokens",
        "schema_version",
    ):
        assert key in d, key
    assert d["model"] == "llava-1.5-7b" and d["gpu"] == "rtx3090" and d["fits"] is True
    assert d["image_tokens"] == 576 and d["context_tokens"] == 4096
    assert (
        d["total_bytes"]
        == d["weights_bytes"] + d["kv_self_bytes"] + d["kv_cross_bytes"] + d["activations_bytes"] + d["overhead_bytes"]
    )
    assert d["weights_bytes"] == sum(c["bytes"] for c in d["components"])
    assert all(isinstance(d[k], int) for k in d if k.endswith("_bytes"))
    assert d["vram_bytes"] == 24576 << 20


def test_quiet_prints_nothing():
    r = run("llama-2-70b", "--gpu", "rtx4090", "-q")
    assert r.exit_code == 1 and r.output == ""


def test_vram_option():
    r = run("llama-2-7b", "--vram", "80GB", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["vram_bytes"] == 80 * 10**9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("llama3-8b", "--vram", "24"), "unknown model 'llama3-8b'; did you mean llama-3-8b"),
        (("llama-3-8b", "--gpu", "rtx9090"), "unknown GPU 'rtx9090'; did you mean"),
        (("llama-3-8b", "--vram", "24", "--context", "-5"), "--context must be at least 1"),
        (("llama-3-8b", "--vram", "24", "--batch", "0"), "--batch must be at least 1"),
        (("llama-3-8b", "--vram", "lots"), "--vram 'lots'"),
        (("llama-3-8b", "--vram", "24", "--dtype", "fp12"), "unknown --dtype 'fp12'"),
        (("llama-3-8b", "--vram", "24", "--kv-dtype", "q3"), "unknown --kv-dtype 'q3'"),
        (("whisper-tiny", "--vram", "24", "--context", "449"), "learned positions for 448 tokens"),
        (("llama-3-8b", "--vram", "24", "--images", "2"), "takes no images"),
        (("llava-7b", "--vram", "24", "--context", "500"), "leaves no room for text"),
        (("llama-3-8b", "--gpu", "rtx3090", "--vram", "24"), "not both"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and message in r.stderr
    assert r.stderr.count("\n") == 1


def test_beyond_trained_window_is_a_warning():
    r = run("llama-2-7b", "--vram", "80", "--context", "8192")
    assert r.exit_code == 0
    assert "warning: context 8192 is beyond the model's trained window of 4096" in r.stderr


def test_no_driver_asks_for_gpu_or_vram(monkeypatch, tmp_path):
    isolate_detection(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(init_error="Driver Not Loaded"))
    r = run("llama-3-8b")
    assert r.exit_code == 4
    assert r.stderr.startswith("error: no GPU found") and "--gpu" in r.stderr and "--vram" in r.stderr


def test_detected_gpu_is_used(monkeypatch, tmp_path):
    isolate_detection(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())
    r = run("llama-3-8b", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["gpu"] == "rtx3090" and d["vram_bytes"] == 24576 << 20


def test_willitrun_gpu_sets_the_default_card(monkeypatch, tmp_path):
    isolate_detection(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(init_error="Driver Not Loaded"))
    monkeypatch.setenv("WILLITRUN_GPU", "rtx4090")
    r = run("llama-3-8b", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["gpu"] == "rtx4090"
    r = run("llama-3-8b")  # a person is told where the card came from
    assert r.exit_code == 0 and "WILLITRUN_GPU=rtx4090" in r.stderr


def test_a_mig_slice_is_not_the_whole_card(monkeypatch, tmp_path):
    # a 3g.40gb slice of an A100 80GB: 40,192 MiB (tests/fixtures/fake_nvml.py names the source)
    isolate_detection(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML([a100_mig(MIG_3G_40GB)]))
    r = run("llama-3-8b", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["vram_bytes"] == 40192 << 20


def test_malformed_spec_exits_3(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    (d / "broken.yaml").write_text("id: broken\nname: [unclosed\n")
    r = run("broken", "--vram", "24", "--specs-dir", str(tmp_path))
    assert r.exit_code == 3
    # the line and wording past "malformed YAML" are the YAML parser's own (they differ between releases)
    assert re.search(r"broken\.yaml:\d+: malformed YAML: \S", r.stderr) and r.stderr.count("\n") == 1, r.stderr


def test_invalid_spec_names_file_line_and_field(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    src = (Path(__file__).resolve().parents[2] / "model_specs" / "llama-2-7b.yaml").read_text()
    (d / "zero-heads.yaml").write_text(
        src.replace("id: llama-2-7b", "id: zero-heads").replace("num_attention_heads: 32", "num_attention_heads: 0")
    )
    r = run("zero-heads", "--vram", "24", "--specs-dir", str(tmp_path))
    assert r.exit_code == 3
    assert "zero-heads.yaml:" in r.stderr and "config.num_attention_heads: Input should be greater than 0" in r.stderr


def test_user_spec_shadows_bundled(tmp_path):
    d = tmp_path / "model_specs"
    d.mkdir()
    src = (Path(__file__).resolve().parents[2] / "model_specs" / "llama-2-7b.yaml").read_text()
    (d / "llama-2-7b.yaml").write_text(src.replace("num_hidden_layers: 32", "num_hidden_layers: 16"))
    r = run("llama-2-7b", "--vram", "24", "--json", "--specs-dir", str(tmp_path))
    assert r.exit_code == 0
    assert json.loads(r.stdout)["kv_self_bytes"] == 16 * 2 * 4096 * 4096 * 2
    assert "shadows the bundled model spec 'llama-2-7b'" in r.stderr


def test_list_and_show():
    r = run("list", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert len(d["models"]) >= 31 and len(d["gpus"]) >= 40
    r = run("show", "llava-7b", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["derived"]["parameters"] == 7_063_427_072  # same count as the estimate
    assert run("show", "nope").exit_code == 2


def test_validate_command(tmp_path):
    assert run("validate").exit_code == 0
    (tmp_path / "model_specs").mkdir()
    (tmp_path / "model_specs" / "a.yaml").write_text("id: a\n")
    (tmp_path / "model_specs" / "b.yaml").write_text(": : :\n")
    r = run("validate", str(tmp_path))
    assert r.exit_code == 3
    assert "a.yaml" in r.stderr and "b.yaml" in r.stderr  # every file checked before failing


def test_schema_command():
    from willitrun.archs import ARCHITECTURES

    r = run("schema", "model")
    assert r.exit_code == 0 and "LlamaConfig" in r.stdout
    model = json.loads(r.stdout)
    assert (
        model["$schema"] == "https://json-schema.org/draft/2020-12/schema" and model["title"] == "willitrun model spec"
    )
    # an editor picks the architecture's own schema by the discriminator: one per architecture, none missing
    assert model["discriminator"]["propertyName"] == "architecture"
    assert set(model["discriminator"]["mapping"]) == set(ARCHITECTURES)
    gpu = json.loads(run("schema", "gpu").stdout)
    assert (
        gpu["$schema"] == model["$schema"]
        and gpu["title"] == "willitrun GPU spec"
        and "memory_gib" in gpu["properties"]
    )


@pytest.mark.parametrize("command", [[], ["estimate"], ["list"], ["show"], ["validate"], ["schema"]])
def test_every_command_has_help(command):
    r = run(*command, "--help")
    assert r.exit_code == 0 and "Usage" in r.stdout


def test_entry_point_never_exits_1_on_a_bug():
    # A real process through the console entry point: an internal error maps to 70, no traceback.
    code = (
        "import willitrun.cli as c, sys; c.app = lambda **k: (_ for _ in ()).throw(RuntimeError('boom')); "
        "sys.argv = ['willitrun']; c.main()"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "WILLITRUN_DEBUG": ""}
    )
    assert p.returncode == 70
    assert "internal error: RuntimeError: boom" in p.stderr and "Traceback" not in p.stderr


def test_python_m_runs():
    p = subprocess.run([sys.executable, "-m", "willitrun", "whisper-tiny", "--vram", "1", "-q"])
    assert p.returncode == 0


def test_library_import_stays_light():
    code = "import sys, willitrun; print(sorted(m for m in ('typer', 'rich', 'pynvml') if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.strip() == "[]"


def test_engine_llama_cpp_by_default_for_gguf():
    r = run("llama-2-7b", "--gpu", "rtx3060", "--dtype", "q4_k_m", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["engine"] == "llama.cpp"
    placements = {b["name"]: b["placement"] for b in d["buffers"]}
    assert placements["model buffer (CPU): token embedding"] == "host"
    # KV: 32 layers x 2 x 4096 x 4096 cells x 2 bytes (f16) = 2 GiB
    kv = [b for b in d["buffers"] if b["kind"] == "kv_self"]
    assert sum(b["bytes"] for b in kv) == 32 * 2 * 4096 * 4096 * 2
    assert d["gpu_bytes"] == sum(b["bytes"] for b in d["buffers"] if b["placement"] == "gpu")


def test_engine_options_are_checked():
    r = run("llama-3-8b", "--gpu", "rtx3090", "--gpu-layers", "3")
    assert r.exit_code == 2 and "add --engine" in r.stderr
    r = run("llama-3-8b", "--gpu", "rtx3090", "--engine", "vllm", "--gpu-layers", "3")
    assert r.exit_code == 2 and "--gpu-layers does not apply to vllm" in r.stderr
    r = run("llama-3-8b", "--gpu", "rtx3090", "--engine", "tgi")
    assert r.exit_code == 2 and "unknown engine 'tgi'" in r.stderr


def test_vllm_window_must_fit():
    r = run("llama-3.1-8b", "--gpu", "rtx4090", "--engine", "vllm", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == (0 if d["fits"] else 1)
    assert d["engine_facts"]["fits_window"] == d["fits"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("llama-2-7b", "--gpu", "NVIDIA GeForce RTX 3080"), "names several cards: rtx3080-12gb, rtx3080"),
        (("llama-2-7b", "--vram", "9999999TB"), "more than 1 PiB"),
        (("llama-2-7b", "--vram", "24", "--specs-dir", __file__), "is not a directory"),
    ],
)
def test_more_bad_input(args, message):
    r = run(*args)
    assert r.exit_code == 2 and message in r.stderr


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("willitrun ")


def test_impossible_tensor_split_prints_no_per_card_figures():
    r = run("llama-2-7b", "--gpu", "3xrtx3090")
    assert r.exit_code == 1
    assert "CANNOT SPLIT" in r.stdout and "attention heads (32) not divisible by 3" in r.stdout


def test_llama_cpp_batch_keeps_context_per_sequence():
    # --batch 4 at --context 4096 is llama.cpp's -np 4 -c 16384: 32 layers x 2 x 4096 x 16384 cells x 2 B
    r = run("llama-2-7b", "--gpu", "t4", "--engine", "llama.cpp", "--batch", "4", "--json")
    d = json.loads(r.stdout)
    assert d["n_ctx"] == 16384
    assert sum(b["bytes"] for b in d["buffers"] if b["kind"] == "kv_self") == 32 * 2 * 4096 * 16384 * 2


def test_gguf_dtype_with_answers_stays_on_llama_cpp():
    """issue 12: --offload describes llama.cpp's -ngl; it no longer switches a GGUF type to transformers."""
    r = run("llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload", "--json")
    assert r.exit_code in (0, 1)
    d = json.loads(r.stdout)
    assert d["engine"] == "llama.cpp" and 0 < d["engine_offload"]["gpu_layers"] < 80
    old = json.loads(
        run(
            "llama-3.1-70b", "--gpu", "rtx4090", "--dtype", "q4_k_m", "--offload", "--engine", "transformers", "--json"
        ).stdout
    )
    assert "offload" in old and old["engine"] == "transformers"


# --------------------------------------------------------------------------------------------------
# Multi-node plans, engine options wired from other modules
# --------------------------------------------------------------------------------------------------
def test_405b_on_two_nodes_prints_the_vllm_ray_commands():
    from typer.testing import CliRunner

    from willitrun.cli import app

    r = CliRunner().invoke(app, ["llama-3.1-405b", "--gpu", "16xh100-sxm", "--gpus-per-node", "8"])
    assert r.exit_code == 0, r.output
    assert "ray start --head --port=6379" in r.output
    assert "ray start '--address=<node0-ip>:6379'" in r.output
    assert "vllm serve meta-llama/Llama-3.1-405B --tensor-parallel-size" in r.output
    assert "--distributed-executor-backend ray" in r.output


def test_405b_plan_json_and_forced_layout():
    import json

    from typer.testing import CliRunner

    from willitrun.cli import app

    r = CliRunner().invoke(
        app, ["llama-3.1-405b", "--gpu", "16xh100-sxm", "--gpus-per-node", "8", "-tp", "8", "-pp", "2", "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["best"]["tp"], data["best"]["pp"]) == (8, 2)
    assert data["cluster"]["total_gpus"] == 16


def test_llamacpp_options_reach_the_engine():
    import json

    from typer.testing import CliRunner

    from willitrun.cli import app

    def est(*extra: str) -> dict:
        r = CliRunner().invoke(
            app,
            [
                "llama-3.1-8b",
                "--vram",
                "6",
                "--dtype",
                "q4_k_m",
                "--gpu-layers",
                "20",
                "--no-flash-attn",
                "--json",
                *extra,
            ],
        )
        assert r.exit_code in (0, 1), r.output
        return json.loads(r.output)

    on, off = est(), est("--no-op-offload")
    assert on["engine_facts"]["op_offload"] is True and off["engine_facts"]["op_offload"] is False
    assert est("--llamacpp-version", "2023-12")["engine_facts"]["op_offload"] is False
    gemma = CliRunner().invoke(
        app, ["gemma-2-9b", "--vram", "24", "--dtype", "q4_k_m", "-c", "8192", "--swa-full", "--json"]
    )
    assert json.loads(gemma.output)["n_ctx"] >= 8192


def test_engine_offload_bisects_gpu_layers():
    import json

    from typer.testing import CliRunner

    from willitrun.cli import app

    r = CliRunner().invoke(
        app, ["llama-3.1-8b", "--vram", "6", "--dtype", "q4_k_m", "-c", "32768", "--offload", "--json"]
    )
    data = json.loads(r.output)
    ngl = data["engine_offload"]["gpu_layers"]
    assert 0 < ngl <= 32
    assert data["engine_offload"]["gpu_bytes"] <= 6 << 30


def test_config_json_warning_notes_go_to_stderr(tmp_path):
    cfg = {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = run(str(tmp_path / "config.json"), "--vram", "24", "--json")
    assert r.exit_code == 0
    assert "warning: config.json omits max_position_embeddings" in r.stderr
    json.loads(r.stdout)  # stdout stays JSON
    assert run(str(tmp_path / "config.json"), "--vram", "24", "-q").stderr == ""


def test_images_beyond_the_window_fit_with_a_context():
    """issue 12: `llava-7b --images 10` printed FITS and "No context length fits" together."""
    r = run("llava-7b", "--images", "10", "--gpu", "rtx4090", "--no-chart")
    assert r.exit_code == 0
    assert "FITS" in r.stdout and "No context length fits" not in r.stdout
    d = json.loads(run("llava-7b", "--images", "10", "--gpu", "rtx4090", "--json").stdout)
    assert d["fits"] and d["max_context_tokens"] >= d["context_tokens"] == 5761


def test_several_cards_with_a_gguf_type_are_a_llama_cpp_layer_split():
    d = json.loads(run("llama-3.1-70b", "--gpu", "2xrtx3090", "--dtype", "q4_k_m", "--json").stdout)
    assert d["engine"] == "llama.cpp"
    assert {b["device"] for b in d["buffers"] if b["placement"] == "gpu"} == {0, 1}
    assert d["total_bytes"] == d["max_device_bytes"] < d["gpu_bytes"]
    mixed = run("llama-3.1-70b", "--gpu", "rtx3090", "--gpu", "rtx4090", "--dtype", "q4_k_m")
    assert mixed.exit_code == 2 and "--engine transformers" in mixed.stderr
