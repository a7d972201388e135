"""hf:ORG/NAME with huggingface_hub replaced by fakes: no test here touches the network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.importers.helpers import header_for
from tests.importers.test_safetensors import LLAMA2_7B_CONFIG, llama2_7b_shapes
from willitrun import SpecError, UsageError
from willitrun.importers import hub, import_model

huggingface_hub = pytest.importorskip("huggingface_hub")
errors = pytest.importorskip("huggingface_hub.errors")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REAL_UNREACHABLE = hub._unreachable  # the autouse fixture replaces it in every test


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every way to the network is a fake; a test that forgets one fails instead of connecting."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the Hugging Face Hub")

    monkeypatch.setattr(hub, "_unreachable", lambda: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "get_safetensors_metadata", refuse)


def _cached_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "hub" / "models--meta-llama--Llama-2-7b-hf" / "snapshots" / COMMIT / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config))
    return path


def _metadata(shapes: dict, dtype: str = "F16"):
    from huggingface_hub.utils import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    header, _ = header_for(shapes, dtype)
    header.pop("__metadata__")
    tensors = {
        k: TensorInfo(dtype=v["dtype"], shape=v["shape"], data_offsets=tuple(v["data_offsets"]))
        for k, v in header.items()
    }
    return SafetensorsRepoMetadata(
        metadata=None,
        sharded=False,
        weight_map=dict.fromkeys(tensors, "model.safetensors"),
        files_metadata={"model.safetensors": SafetensorsFileMetadata(metadata={}, tensors=tensors)},
    )


def test_config_and_safetensors_headers_from_the_hub(tmp_path, monkeypatch):
    config_path = _cached_config(tmp_path, LLAMA2_7B_CONFIG)
    calls = []

    def download(repo_id, filename, local_files_only=False, **kwargs):
        calls.append((repo_id, filename, local_files_only))
        if local_files_only:
            raise errors.LocalEntryNotFoundError("not cached")
        return str(config_path)

    def metadata(self, repo_id, revision=None, **kwargs):
        calls.append((repo_id, revision))
        return _metadata(llama2_7b_shapes(), "BF16")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub.HfApi, "get_safetensors_metadata", metadata)
    spec, weights = import_model("hf:meta-llama/Llama-2-7b-hf")
    assert calls == [
        ("meta-llama/Llama-2-7b-hf", "config.json", True),
        ("meta-llama/Llama-2-7b-hf", "config.json", False),
        ("meta-llama/Llama-2-7b-hf", COMMIT),
    ]
    assert (spec.id, spec.name, spec.hf_id) == ("llama-2-7b-hf", "Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf")
    assert spec.sources["config"] == f"https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/{COMMIT}/config.json"
    assert spec.dtype == "bfloat16"  # config.json names none: the weights' type, as transformers' "auto"
    assert weights.total_bytes == 6_738_415_616 * 2 and weights.dtype == "bf16"


def test_cached_config_needs_no_request(tmp_path, monkeypatch):
    config_path = _cached_config(tmp_path, {**LLAMA2_7B_CONFIG, "torch_dtype": "float16"})
    monkeypatch.setattr(
        huggingface_hub,
        "hf_hub_download",
        lambda repo_id, filename, local_files_only=False, **kw: str(config_path) if local_files_only else 1 / 0,
    )
    monkeypatch.setattr(hub, "_unreachable", lambda: "HF_HUB_OFFLINE is set")
    spec, weights = import_model("hf:meta-llama/Llama-2-7b-hf")
    assert weights is None and spec.dtype == "float16"
    assert "Weights computed from the config: the Hub cannot be reached for the safetensors headers" in spec.notes


def test_not_a_safetensors_repository(tmp_path, monkeypatch):
    config_path = _cached_config(tmp_path, LLAMA2_7B_CONFIG)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **kw: str(config_path))

    def metadata(self, repo_id, revision=None, **kwargs):
        raise errors.NotASafetensorsRepoError("no safetensors")

    monkeypatch.setattr(huggingface_hub.HfApi, "get_safetensors_metadata", metadata)
    spec, weights = import_model("hf:meta-llama/Llama-2-7b-hf")
    assert weights is None and "no model.safetensors" in spec.notes


def test_unsupported_model_type_fails_before_fetching_weights(tmp_path, monkeypatch):
    config_path = _cached_config(tmp_path, {"model_type": "not_a_model"})  # transformers does not know it either
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **kw: str(config_path))
    with pytest.raises(UsageError, match="does not know model_type 'not_a_model'"):
        import_model("hf:google/gemma-2-9b")  # get_safetensors_metadata would fail the test


def _raise(exc):
    def download(repo_id, filename, local_files_only=False, **kwargs):
        if local_files_only:
            raise errors.LocalEntryNotFoundError("not cached")
        raise exc

    return download


def _http_error(cls):
    # huggingface_hub's HTTP errors want a response; the message is all that matters here.
    exc = cls.__new__(cls)
    Exception.__init__(exc, "401 Client Error")
    return exc


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            errors.LocalEntryNotFoundError("offline"),
            "cannot reach the Hugging Face Hub and its config.json is not in the local cache",
        ),
        (_http_error(errors.GatedRepoError), "is gated: accept its license on huggingface.co and log in"),
        (_http_error(errors.RepositoryNotFoundError), "no such repository on the Hugging Face Hub"),
        (_http_error(errors.RemoteEntryNotFoundError), "has no config.json (a GGUF-only repository?"),
        (OSError("connection reset"), "cannot reach the Hugging Face Hub (connection reset)"),
    ],
)
def test_hub_failures_are_one_usage_line(monkeypatch, exc, words):
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _raise(exc))
    with pytest.raises(UsageError) as info:
        import_model("hf:org/name")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_unreachable_hub_fails_at_once(monkeypatch):
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _raise(AssertionError("no download once unreachable")))
    monkeypatch.setattr(hub, "_unreachable", lambda: "[Errno -2] Name or service not known")
    with pytest.raises(UsageError) as info:
        import_model("hf:org/name")
    assert "cannot reach the Hugging Face Hub ([Errno -2] Name or service not known)" in str(info.value)
    assert "pass the file or its directory instead" in str(info.value)


class _Session:
    def __init__(self, exc=None):
        self.exc, self.calls = exc, []

    def head(self, url, timeout=None):
        self.calls.append((url, timeout))
        if self.exc:
            raise self.exc


@pytest.mark.parametrize(
    ("offline", "exc", "why"),
    [
        (True, None, "HF_HUB_OFFLINE is set"),
        (False, OSError("[Errno -2] Name or service not known"), "[Errno -2] Name or service not known"),
        (False, None, None),
    ],
)
def test_reachability_is_one_request_without_retries(monkeypatch, offline, exc, why):
    from huggingface_hub import constants, utils

    session = _Session(exc)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: offline)
    monkeypatch.setattr(utils, "get_session", lambda: session)
    assert REAL_UNREACHABLE() == why
    assert session.calls == ([] if offline else [(constants.ENDPOINT, 10)])


def test_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(UsageError) as info:
        import_model("hf:org/name")
    assert "need the huggingface_hub package (pip install 'willitrun[hub]')" in str(info.value)
    assert "pass the file or its directory instead" in str(info.value)


@pytest.mark.parametrize("source", ["hf:", "hf:../etc", "hf:a/b/c", "hf:org/na me"])
def test_bad_repository_ids(source):
    with pytest.raises(UsageError, match="give a Hugging Face repository as hf:ORG/NAME"):
        import_model(source)


def test_hostile_metadata_from_the_hub(tmp_path, monkeypatch):
    config_path = _cached_config(tmp_path, LLAMA2_7B_CONFIG)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **kw: str(config_path))
    meta = _metadata({"model.norm.weight": (4096,)})
    meta.files_metadata["model.safetensors"].tensors["model.norm.weight"].data_offsets = (0, 3)
    monkeypatch.setattr(huggingface_hub.HfApi, "get_safetensors_metadata", lambda self, *a, **kw: meta)
    with pytest.raises(
        SpecError, match=r"hf:meta-llama/Llama-2-7b-hf/model\.safetensors: tensor 'model\.norm\.weight'"
    ):
        import_model("hf:meta-llama/Llama-2-7b-hf")
