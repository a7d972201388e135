"""The CUDA graphs vLLM captures by default (engines/vllm.py `cudagraph_sizes`), from 0.21 the count it prints
when it estimates their memory: 'Profiling CUDA graph memory: PIECEWISE=N (largest=M), FULL=K (largest=L)'
(vllm==0.22.0 gpu_model_runner.py `profile_cudagraph_memory`; sizes: vllm==0.22.0 / 0.33.0 config/vllm.py
`_set_cudagraph_sizes`, v1/cudagraph_dispatcher.py `initialize_cudagraph_keys`)."""

from __future__ import annotations

import pytest

from willitrun.engines import engine_estimate
from willitrun.engines.vllm import VllmOptions, cudagraph_sizes
from willitrun.memory import Request

GiB = 1 << 30


def test_default_serve_on_a_24_gib_card_matches_the_printed_counts(catalog):
    """vLLM PR #39559's log (a 0.2x build, max_num_batched_tokens 2048 -- 'compile range (1, 2048)' -- and the default
    256 sequences): 'Profiling CUDA graph memory: PIECEWISE=51 (largest=512), FULL=35 (largest=256)'."""
    spec = catalog.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(context=8192), "vllm", VllmOptions(total_memory_bytes=24 * GiB, version="0.22"))
    assert (e.facts["cudagraphs_piecewise"], e.facts["cudagraphs_full"]) == (51, 35)
    assert any("PIECEWISE=51 (largest=512), FULL=35 (largest=256)" in n for n in e.notes)


@pytest.mark.parametrize(
    ("version", "gpu", "batched", "seqs", "piecewise", "full"),
    [
        # max = min(2 x 8, 512) = 16: 1, 2, 4, 8, 16; FULL up to 8 sequences
        ("0.22", None, 2048, 8, [1, 2, 4, 8, 16], [1, 2, 4, 8]),
        # max_num_batched_tokens below the max is captured too (off-stride 100)
        ("0.22", None, 100, 256, [1, 2, 4, *range(8, 97, 8), 100], [1, 2, 4, *range(8, 97, 8), 100]),
        # 0.33.0 on SM100: 1024 instead of 512 -> 3 + 31 + 49 sizes, every one a FULL decode size (1024 sequences)
        ("0.33", "NVIDIA B200", 16384, 1024, None, None),
    ],
)
def test_capture_sizes(version, gpu, batched, seqs, piecewise, full):
    pw, fl = cudagraph_sizes(VllmOptions(version=version, gpu_name=gpu), batched, seqs)
    if piecewise is None:
        assert len(pw) == 3 + 31 + 49 and pw[-1] == 1024 and fl == pw
    else:
        assert (pw, fl) == (piecewise, full)


def test_no_count_before_the_estimate(catalog):
    """Before 0.21 the graphs are captured after the KV pool, in the headroom: nothing is printed or counted."""
    spec = catalog.resolve("model", "llama-3.1-8b")
    e = engine_estimate(spec, Request(context=8192), "vllm", VllmOptions(total_memory_bytes=24 * GiB, version="0.17"))
    assert "cudagraphs_piecewise" not in e.facts
