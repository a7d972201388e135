"""Every GGUF architecture a family declares is read (issue 20 §5): the metadata path (importers/gguf_generic.py)
reads block_count, head counts, key/value lengths, windows, ssm.*, experts; the family adds only what llama.cpp's
loader knows and the file does not say (archs/family.py: GGUFRules).

Loader facts (ggml-org/llama.cpp src/llama-model.cpp load_hparams):
- LLM_ARCH_OLMO2: `found_swa = get_key(LLM_KV_ATTENTION_SLIDING_WINDOW, n_swa, false); if (found_swa && n_swa > 0)
  { swa_type = LLAMA_SWA_TYPE_STANDARD; set_swa_pattern(4); }` (Olmo 3 files; OLMo 2 files carry no window);
- LLM_ARCH_EXAONE4: `if (n_layer == 64) { swa_type = STANDARD; n_swa = 4096; set_swa_pattern(4); }` then the
  optional sliding_window key overrides n_swa: the 1.2B (30 layers) attends in full;
- LLM_ARCH_GLM4_MOE: `n_layer_kv_from_start = n_layer - nextn_predict_layers` (the MTP layer keeps no cache).
set_swa_pattern(n) (src/llama-hparams.cpp): layer il slides when il % n < n - 1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.importers.test_gguf_generic import HIDDEN, Q, attention_block, ends, nbytes, numel, write
from willitrun import archs, estimate
from willitrun.archs.family import GGUFRules, check_family
from willitrun.importers import spec_from_path
from willitrun.importers.gguf_file import GGUFHeader, family_rules, read_names
from willitrun.importers.gguf_generic import declared, generic_config
from willitrun.importers.weights import StoredTensor

FAMILY_READERS = set(archs.GGUF_READERS)
# every name a family declares that no family reader of importers/gguf_file.py takes: read from its metadata
METADATA_READ = sorted({g for f in archs.families() for g in f.gguf_architectures} - FAMILY_READERS)


def _meta(layers: int, **extra: object) -> dict:
    return {
        "block_count": layers,
        "embedding_length": HIDDEN,
        "feed_forward_length": 128,
        "attention.head_count": 4,
        "attention.head_count_kv": 2,
        "context_length": 4096,
        **extra,
    }


def _blocks(layers: int) -> dict:
    tensors = {**ends()}
    for i in range(layers):
        tensors.update(attention_block(i, 4, 2, 64, 128, Q.Q4_0 if i % 2 else Q.Q8_0))
    return tensors


def test_the_list_reads_every_declared_name():
    # `willitrun list architectures` marks "(declared, not read yet)" a declared name no architecture reads
    read = {g for f in archs.families() for a in f.architectures for g in read_names(a)}
    assert {g for f in archs.families() for g in f.gguf_architectures} <= read
    assert len(METADATA_READ) > 20  # olmo2, glm4, smollm3, ... (the families of issue 20 §3)


@pytest.mark.parametrize("arch", METADATA_READ)
def test_a_declared_architecture_is_read_with_exact_weights_and_caches(tmp_path, arch):
    # 2 layers, 4 heads, 2 KV heads of 64 (key_length = 256 / 4), llama.cpp's tensor names (llama-arch.cpp)
    tensors = _blocks(2)
    spec, weights = spec_from_path(write(tmp_path / f"{arch}.gguf", arch, _meta(2), tensors))
    assert spec.architecture == "generic" and spec.config.source_architecture == arch
    modules, _ = declared(arch)
    assert modules and all(m in spec.config.provenance for m in modules)
    assert "has no willitrun family" not in spec.config.provenance
    assert weights.total_bytes == sum(nbytes(shape, q) for shape, q in tensors.values())
    e = estimate(spec, context=1024, weights=weights)
    assert e.parameters == numel(tensors)
    # n_embd_k_gqa = n_embd_head_k x n_head_kv = 64 x 2 per layer, K and V, f16, every position
    assert e.kv_self_bytes == 2 * 2 * (64 * 2) * 1024 * 2


def test_olmo2_files_with_a_window_slide_three_layers_in_four(tmp_path):
    spec, _ = spec_from_path(
        write(tmp_path / "olmo3.gguf", "olmo2", _meta(8, **{"attention.sliding_window": 4096}), _blocks(8))
    )
    layers = archs.geometry(spec).self_layers
    assert [k.kind for k in layers] == ["sliding", "sliding", "sliding", "full"] * 2
    assert {k.window for k in layers} == {4096, None}
    assert "set_swa_pattern(4)" in spec.config.provenance
    spec, _ = spec_from_path(write(tmp_path / "olmo2.gguf", "olmo2", _meta(4), _blocks(4)))
    assert [k.kind for k in archs.geometry(spec).self_layers] == ["full"] * 4


def test_exaone4_slides_by_its_layer_count(tmp_path):
    spec, _ = spec_from_path(write(tmp_path / "e32.gguf", "exaone4", _meta(64), _blocks(64)))
    layers = archs.geometry(spec).self_layers
    assert [k.kind for k in layers] == ["sliding", "sliding", "sliding", "full"] * 16
    assert {k.window for k in layers} == {4096, None}
    # the 1.2B (30 layers) attends in full even with a window key (swa_type stays NONE)
    spec, _ = spec_from_path(
        write(tmp_path / "e1.gguf", "exaone4", _meta(30, **{"attention.sliding_window": 4096}), _blocks(30))
    )
    assert {k.kind for k in archs.geometry(spec).self_layers} == {"full"}


def test_glm4moe_multi_token_prediction_layer_keeps_no_cache(tmp_path):
    spec, weights = spec_from_path(
        write(tmp_path / "glm.gguf", "glm4moe", _meta(4, nextn_predict_layers=1), _blocks(4))
    )
    assert [k is not None for k in archs.geometry(spec).self_kv] == [True, True, True, False]
    # its weights are in the file but llama.cpp's loader skips them (LLM_ARCH_GLM4_MOE: "skip all tensors in the
    # NextN layers", flags |= TENSOR_SKIP; it logs "model has unused tensor blk.N... -- ignoring"): not counted
    kept = {n: t for n, t in _blocks(4).items() if not n.startswith("blk.3.")}
    assert estimate(spec, weights=weights).parameters == numel(kept)
    assert weights.total_bytes == sum(nbytes(shape, q) for shape, q in kept.values())
    skipped = sum(nbytes(shape, q) for n, (shape, q) in _blocks(4).items() if n.startswith("blk.3."))
    assert any(
        n.startswith("not counted, skipped by llama.cpp's loader") and f"{skipped:,} bytes" in n for n in weights.notes
    )


def test_rules_only_for_declared_names():
    fam = archs.family("olmo2")
    with pytest.raises(TypeError, match="does not declare"):
        check_family(replace(fam, gguf_rules={"llama": GGUFRules(chunked=True)}), fam.module, ["olmo2"])


def test_a_hostile_rule_key_is_one_line(tmp_path):
    # a count beyond 2^31 where the family's rule reads one (GLM-4.5's nextn_predict_layers), and a window that
    # is not a count where a loader rule takes the file's window (Gemma 2): one SpecError line each
    from willitrun import SpecError

    bad = write(tmp_path / "glm.gguf", "glm4moe", _meta(2, nextn_predict_layers=4_000_000_000), _blocks(2))
    with pytest.raises(SpecError, match="nextn_predict_layers") as err:
        spec_from_path(bad)
    assert "\n" not in str(err.value)
    bad = write(tmp_path / "g2.gguf", "gemma2", _meta(2, **{"attention.sliding_window": 1.5}), _blocks(2))
    with pytest.raises(SpecError, match="sliding_window") as err:
        spec_from_path(bad)
    assert "\n" not in str(err.value)


# llama.cpp's set_swa_pattern(n) per architecture whose files carry no pattern key (src/llama-model.cpp load_hparams)
LOADER_PERIODS = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2, "olmo2": 4}


@settings(max_examples=40, deadline=None)
@given(
    arch=st.sampled_from(sorted(LOADER_PERIODS)),
    n=st.integers(1, 80),
    window=st.sampled_from([None, 0, 128, 4096]),
    pattern=st.one_of(st.none(), st.integers(0, 7)),
)
def test_the_loader_period_applies_unless_the_file_gives_one(arch, n, window, pattern):
    """Layer il slides when period == 0 or il % period < period - 1 (llama-hparams.cpp set_swa_pattern), the period
    being the loader's; a file that writes sliding_window_pattern is taken at its word (llama.cpp's cohere2 loader
    reads the key; the converters write none for the others); no window: every layer in full."""
    meta = {
        "general.architecture": arch,
        f"{arch}.block_count": n,
        f"{arch}.embedding_length": 256,
        f"{arch}.attention.head_count": 4,
        f"{arch}.attention.head_count_kv": 2,
    }
    if window is not None:
        meta[f"{arch}.attention.sliding_window"] = window
    if pattern is not None:
        meta[f"{arch}.attention.sliding_window_pattern"] = pattern
    header = GGUFHeader(3, meta, [StoredTensor("token_embd.weight", "F16", (100, 256), 100 * 256 * 2)], 0, 0)
    cfg, _ = generic_config(header, Path(f"{arch}.gguf"))
    kinds = [layer["kind"] for layer in cfg["layers"] for _ in range(layer["count"])]
    period = LOADER_PERIODS[arch] if pattern is None else pattern
    assert kinds == ["sliding" if window and (period == 0 or i % period < period - 1) else "full" for i in range(n)]


def test_every_gguf_reader_is_its_familys():
    """archs/__init__.py: GGUF_READERS names, for each GGUF architecture a family reads into its own spec, a family
    that declares the name and a reader for it (GGUFRules.decoder / moe / ssm); no family declares a reader the
    table does not list (it would never be found without loading every family)."""
    for g in archs.GGUF_READERS:
        fam = archs.family(archs.GGUF_READERS[g])
        assert g in fam.gguf_architectures
        rules = family_rules(g)
        assert rules is not None and (rules.decoder or rules.moe or rules.ssm), g
    for fam in archs.families():
        for g, r in fam.gguf_rules.items():
            if r.decoder or r.moe or r.ssm:
                assert g in archs.GGUF_READERS, g
