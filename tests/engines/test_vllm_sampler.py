"""VLLM_USE_FLASHINFER_SAMPLER (--flashinfer-sampler / --no-flashinfer-sampler): which top-k/top-p the V1 profile's
dummy sampler runs, per release, and its bytes per logit.

Sources (the PyPI wheels): vllm==0.11.0 topk_topp_sampler.py `envs.VLLM_USE_FLASHINFER_SAMPLER is not False`
with FlashInfer only the `flashinfer` extra (METADATA `flashinfer-python==0.3.1; extra == "flashinfer"`);
vllm==0.12.0 requires flashinfer-python but reads an unset variable as off (`if envs.VLLM_USE_FLASHINFER_SAMPLER:`,
envs.py default None, still so in 0.20.0); vllm==0.21.0 and 0.22.0 envs.py default True. FlashInfer's
`top_k_top_p_sampling_from_logits` (flashinfer-python 0.3.1 and 0.6.11.post2 sampling.py): top_k_mask_logits
(`torch.empty_like`) then softmax, 4 + 4 B per logit besides the sampler's float32 copy.
"""

from __future__ import annotations

import shlex

import pytest

from willitrun.engines import engine_estimate
from willitrun.engines.registry import engine_class
from willitrun.engines.vllm import VllmOptions
from willitrun.memory import Request

GiB = 1 << 30
VOCAB = 128256  # Llama 3.1


def _sampler_detail(catalog, version, flashinfer=None, **kw):
    spec = catalog.resolve("model", "llama-3.1-8b")
    opt = VllmOptions(total_memory_bytes=24 * GiB, version=version, flashinfer_sampler=flashinfer, **kw)
    e = engine_estimate(spec, Request(context=8192), "vllm", opt)
    return e, e.find("activation peak (profile run)")


@pytest.mark.parametrize(
    ("version", "flashinfer", "per_logit", "kind"),
    [
        ("0.10", None, 36, "torch.sort"),  # pip install: no FlashInfer; 256 rows sort (segmented sort)
        ("0.10", True, 12, "FlashInfer"),  # the Docker image / vllm[flashinfer] with the variable unset
        ("0.17", None, 12, "Triton"),  # FlashInfer installed but opt-in; the Triton kernel on >= 8 rows
        ("0.22", None, 12, "FlashInfer"),  # default on from 0.21.0
        ("0.33", None, 12, "FlashInfer"),
        ("0.33", False, 12, "Triton"),
    ],
)
def test_sampler_per_release(catalog, version, flashinfer, per_logit, kind):
    _, b = _sampler_detail(catalog, version, flashinfer)
    assert f"128256 x (2 + {per_logit}) B ({kind} top-k/top-p)" in b.detail
    # the activation peak is the sampler's: 256 rows of logits + the dummy run's 2048 hidden states and the
    # sampled rows twice (engines/vllm.py v1_sampler_bytes)
    assert b.bytes == 256 * VOCAB * (2 + per_logit) + (2048 + 2 * 256) * 4096 * 2


def test_flashinfer_avoids_the_sort_with_few_rows(catalog):
    """Fewer than 8 rows: the Triton kernel does not apply and torch.sort's full sort takes 48 B per logit; FlashInfer
    does not sort at any row count."""
    small = {"max_num_seqs": 4, "max_num_batched_tokens": 16}  # the layers' temporaries stay below the sampler's
    _, sort = _sampler_detail(catalog, "0.33", False, **small)
    _, fi = _sampler_detail(catalog, "0.33", None, **small)
    assert "(2 + 48) B (torch.sort" in sort.detail
    assert sort.bytes - fi.bytes == 4 * VOCAB * (48 - 12)


def test_v0_ignores_the_flashinfer_option(catalog):
    _, a = _sampler_detail(catalog, "0.7", True)
    _, b = _sampler_detail(catalog, "0.7", None)
    assert a.bytes == b.bytes


def test_launch_line_sets_the_variable_only_when_given(catalog):
    spec = catalog.resolve("model", "llama-3.1-8b")
    for given, prefix in ((None, ["vllm", "serve"]), (True, ["env", "VLLM_USE_FLASHINFER_SAMPLER=1", "vllm"])):
        opt = VllmOptions(total_memory_bytes=24 * GiB, version="0.10", flashinfer_sampler=given)
        e = engine_estimate(spec, Request(context=8192), "vllm", opt)
        argv = engine_class("vllm").launch(spec, e, opt)
        assert argv[: len(prefix)] == prefix
        assert shlex.split(shlex.join(argv)) == argv
