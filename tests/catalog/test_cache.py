"""The catalog reads only what a lookup needs, and its cache never answers for a file it did not see."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import willitrun.catalog as catalog_module
import willitrun.catalog.cache as cache_module
from willitrun.catalog import bundled_root, load_catalog, load_spec
from willitrun.catalog.cache import DiskCache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(d))
    monkeypatch.delenv("WILLITRUN_NO_CACHE", raising=False)
    return d


@pytest.fixture
def reads(monkeypatch):
    """Paths of the spec files parsed, in order."""
    seen: list[str] = []
    real = catalog_module.read_yaml_mapping

    def counting(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(catalog_module, "read_yaml_mapping", counting)
    return seen


@pytest.fixture
def no_bundled(monkeypatch):
    """Without the prebuilt bundled catalog (catalog/bundled.py): what a cold cache reads of the files."""
    import willitrun.catalog.bundled as bundled

    monkeypatch.setattr(bundled, "_table", dict)


def test_cold_alias_lookup_validates_one_file(cache_dir, reads, no_bundled):
    spec = load_catalog().resolve("model", "llava-7b")
    assert spec.id == "llava-1.5-7b"
    models = len(load_catalog().files("model"))
    # the index needs each model file once; the spec is read again to be validated (not every file)
    assert len(reads) == models + 1 and reads[-1] == "llava-1.5-7b.yaml"


def test_warm_lookups_parse_no_yaml(cache_dir, reads):
    load_catalog().resolve("model", "llava-7b")
    load_catalog().resolve("gpu", "NVIDIA GeForce RTX 3090")
    load_catalog().resolve("gpu", "3090")
    reads.clear()
    cat = load_catalog()
    assert cat.resolve("model", "llava-7b").id == "llava-1.5-7b"
    assert cat.resolve("gpu", "NVIDIA GeForce RTX 3090").id == "rtx3090"
    assert cat.resolve("gpu", "3090").id == "rtx3090"
    assert reads == []


def test_a_gpu_by_nvml_name_validates_only_its_candidates(cache_dir, reads, no_bundled):
    cat = load_catalog()
    assert cat.resolve("gpu", "nvidia geforce rtx 3090").id == "rtx3090"
    assert len(reads) == len(cat.files("gpu")) + 1  # the index, then the one card


def test_cached_specs_equal_validated_ones(cache_dir):
    first = load_catalog()
    specs = first.models() + first.gpus()
    cat = load_catalog()
    for spec in specs:
        kind = "gpu" if hasattr(spec, "vendor") else "model"
        cached = cat.get(kind, spec.id)
        fresh = load_spec(cat.files(kind)[spec.id], kind)
        assert cached == fresh and cached.model_fields_set == fresh.model_fields_set, spec.id
        assert cached.model_dump() == fresh.model_dump()
        if kind == "model":
            assert cached.config.model_fields_set == fresh.config.model_fields_set
    assert cat._disk.entries and all("spec" in e for e in cat._disk.entries.values())


@pytest.fixture
def fresh_files_cached(monkeypatch):
    # Files written by a test are seconds old at most: entries for them are "racy" and not kept.
    # Here the racy window is closed so that the keys themselves are tested.
    monkeypatch.setattr(cache_module, "RACY_NS", -(10**18))


def user_spec(root: Path, spec_id: str, name: str) -> Path:
    """A copy of the RTX 3090 spec under another id and display name."""
    lines = (ROOT / "hardware_specs" / "rtx3090.yaml").read_text().splitlines(keepends=True)
    lines = [
        f"id: {spec_id}\n" if x.startswith("id:") else f"name: {name}\n" if x.startswith("name:") else x for x in lines
    ]
    f = root / "hardware_specs" / f"{spec_id}.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("".join(lines))
    return f


def test_a_changed_file_is_read_again(cache_dir, tmp_path, fresh_files_cached):
    f = user_spec(tmp_path / "specs", "card", "Aaaa")
    assert load_catalog([tmp_path / "specs"]).get("gpu", "card").name == "Aaaa"
    st = f.stat()
    f.write_text(f.read_text().replace("Aaaa", "Bbbb"))  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: ctime still tells
    assert load_catalog([tmp_path / "specs"]).get("gpu", "card").name == "Bbbb"


def test_racy_entries_are_not_kept(cache_dir, tmp_path):
    user_spec(tmp_path / "specs", "card", "Aaaa")
    cat = load_catalog([tmp_path / "specs"])
    cat.get("gpu", "card")
    cat.get("gpu", "rtx3090")
    keys = set(cat._disk.entries)
    assert not any("card.yaml" in k for k in keys) and any("rtx3090.yaml" in k for k in keys)


def cache_file(cache_dir: Path) -> Path:
    (f,) = cache_dir.glob("catalog-*.json")
    return f


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "other code", "fifo", "directory", "huge"])
def test_a_damaged_cache_is_ignored_and_rewritten(cache_dir, damage):
    load_catalog().get("model", "llama-2-7b")
    f = cache_file(cache_dir)
    data = f.read_bytes()
    f.unlink()
    if damage == "garbage":
        f.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        f.write_bytes(data.replace(b'"llama-2-7b"', b'"llama-2-7c"', 1))
    elif damage == "other code":
        head, _, body = data.partition(b"\n")
        header = json.loads(head)
        header["fingerprint"][1] = "0.0.0-other"
        f.write_bytes(json.dumps(header).encode() + b"\n" + body)
    elif damage == "fifo":
        os.mkfifo(f)
    elif damage == "directory":
        f.mkdir()
    elif damage == "huge":
        with f.open("wb") as h:
            h.truncate(64 << 20)
    cache = DiskCache.open()
    assert cache.entries == {}
    spec = load_catalog().get("model", "llama-2-7b")
    assert spec == load_spec(bundled_root() / "model_specs" / "llama-2-7b.yaml", "model")
    if damage == "directory":
        assert f.is_dir()  # cannot be replaced: the cache is skipped
    else:
        assert f.is_file() and DiskCache.open().entries  # replaced by a good cache


def test_no_cache_when_disabled(cache_dir, monkeypatch):
    monkeypatch.setenv("WILLITRUN_NO_CACHE", "1")
    assert load_catalog().resolve("model", "llava-7b").id == "llava-1.5-7b"
    assert not cache_dir.exists()


def test_an_unwritable_cache_directory_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(blocker / "cache"))  # a file where a directory should be
    assert load_catalog().resolve("model", "llava-7b").id == "llava-1.5-7b"


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("WILLITRUN_CACHE_DIR", raising=False)
    monkeypatch.delenv("WILLITRUN_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_module.cache_dir() == tmp_path / "willitrun"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec: ignored
    assert cache_module.cache_dir() == Path.home() / ".cache" / "willitrun"


def test_bundled_root_in_a_wheel_is_the_package_data(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "willitrun"
    (package / "_data" / "model_specs").mkdir(parents=True)
    monkeypatch.setattr(catalog_module, "PACKAGE", package)
    assert bundled_root() == package / "_data"
    (package / "_data" / "model_specs").rmdir()  # an editable install: the checkout two levels up
    assert bundled_root() == tmp_path


# ---- what is derived from a model spec, kept beside it (catalog.Catalog.keep_derived) ---------------
DERIVED_MODELS = ["llama-2-7b", "qwen3-30b-a3b", "llava-onevision-7b", "whisper-tiny", "jamba-mini-1.5"]


def _answers(cat) -> list:
    from willitrun.fit import check_fit
    from willitrun.memory import Request

    card = cat.get("gpu", "rtx3090")
    return [check_fit(cat.get("model", m), Request(), card.capacity_bytes, card.id) for m in DERIVED_MODELS]


def test_derived_values_are_kept_and_answer_as_computed(cache_dir, monkeypatch):
    """After keep_derived, a new catalog primes each model's weights per component and active
    parameters from the cache: its answers equal those computed from the tensors, and no tensor
    inventory is built for them."""
    import willitrun.archs as archs

    cat = load_catalog()
    computed = _answers(cat)
    cat.keep_derived()
    entry = json.loads(cache_file(cache_dir).read_bytes().partition(b"\n")[2])
    derived = {Path(k).stem: v["derived"] for k, v in entry.items() if "derived" in v}
    assert set(derived) == set(DERIVED_MODELS)
    assert derived["llama-2-7b"]["active_parameters"] == 6_738_415_616  # Llama 2 7B: 6.74B parameters
    assert any(k.startswith("components:") for k in derived["llama-2-7b"])
    built: list[str] = []
    real = archs.family

    def family(spec):  # model_tensors asks the family for its tensors; priming must make that unneeded
        return _Watch(real(spec), built, spec.id)

    monkeypatch.setattr(archs, "family", family)
    again = _answers(load_catalog())
    assert again == computed
    assert "llama-2-7b" not in built and "qwen3-30b-a3b" not in built


class _Watch:
    def __init__(self, fam, built, spec_id):
        self._fam, self._built, self._id = fam, built, spec_id

    def __getattr__(self, name):
        value = getattr(self._fam, name)
        if name == "tensors":
            self._built.append(self._id)
        return value


@pytest.mark.parametrize(
    "damage",
    [
        {"components:bf16": [["decoder", -1, 5]]},
        {"components:bf16": [["decoder", 1]]},
        {"components:bf16": "x"},
        {"active_parameters": "7"},
        {"active_parameters": True},
        {"expert_bytes:bf16": [1.5]},
        {"other": 1},
        ["not", "a", "dict"],
    ],
)
def test_damaged_derived_values_are_a_miss(cache_dir, damage):
    """A derived entry of the wrong shape (with a valid checksum) is ignored: the model is computed
    again and answers as it would have without the cache."""
    import zlib

    cat = load_catalog()
    computed = _answers(cat)
    cat.keep_derived()
    f = cache_file(cache_dir)
    head, _, body = f.read_bytes().partition(b"\n")
    entries = json.loads(body)
    for v in entries.values():
        if "derived" in v:
            v["derived"] = damage
    body = json.dumps(entries).encode()
    header = json.loads(head)
    header["crc32"] = zlib.crc32(body)
    f.write_bytes(json.dumps(header).encode() + b"\n" + body)
    assert _answers(load_catalog()) == computed


def test_a_changed_spec_file_drops_its_derived_values(cache_dir, tmp_path, fresh_files_cached, monkeypatch):
    """Derived values live in the entry of the file as it was: an edited spec is computed afresh."""
    import shutil

    root = tmp_path / "user"
    (root / "model_specs").mkdir(parents=True)
    f = root / "model_specs" / "llama-2-7b.yaml"
    shutil.copy(ROOT / "model_specs" / "llama-2-7b.yaml", f)
    monkeypatch.setenv("WILLITRUN_SPECS_PATH", str(root))
    cat = load_catalog()
    cat.get("model", "llama-2-7b")
    before = _answers(cat)[0]
    cat.keep_derived()
    f.write_text(f.read_text().replace("num_hidden_layers: 32", "num_hidden_layers: 16"))
    after = _answers(load_catalog())[0]
    assert after.estimate.weights_bytes < before.estimate.weights_bytes
