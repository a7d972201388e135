"""Estimate + available memory -> verdict, headroom, the largest context that fits, and what would
make it fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dtypes import KV_DTYPES, WEIGHT_DTYPES

# the searches and the transformers parts live with the arithmetic (engines use them and know no verdict);
# imported here for the callers that know them as fit.*
from .memory import AnySpec, Estimate, Request, Resolved, _total, default_context, estimate_resolved, resolve
from .memory import context_limit as context_limit
from .memory import estimate_facts as estimate_facts
from .memory import estimate_parts as estimate_parts
from .memory import largest as largest
from .memory import max_context as max_context

if TYPE_CHECKING:
    from .importers import WeightsOverride

# Weight types, largest first: the `ladder` command's rows and the types tried when suggesting a
# smaller one (one ladder: issue 12 found two that disagreed).
LADDER_WEIGHTS = ("fp16", "fp8", "int8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k")
DTYPE_LADDER = LADDER_WEIGHTS
KV_LADDER = ("f16", "fp8", "q8_0", "q4_0")


@dataclass(frozen=True)
class Fit:
    estimate: Estimate
    device: str  # what the memory figure belongs to: a catalog GPU id, a detected card, or "--vram"
    vram_bytes: int
    max_context_tokens: int  # 0 when not even the smallest context fits
    context_limit: int  # the largest context searched (the model's window)
    suggestions: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """The bytes compared with the card (as EngineFit.total_bytes)."""
        return self.estimate.total_bytes

    @property
    def fits(self) -> bool:
        return self.estimate.total_bytes <= self.vram_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.vram_bytes - self.estimate.total_bytes


def ladder_dtypes(spec: AnySpec) -> tuple[str, ...]:
    """LADDER_WEIGHTS with the 16-bit rung in bf16 unless the checkpoint is fp16 (same size; fp32-trained
    models such as T5 overflow in fp16)."""
    return LADDER_WEIGHTS if spec.dtype == "float16" else ("bf16", *LADDER_WEIGHTS[1:])


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def suggestions(spec: AnySpec, req: Request, r: Resolved, est: Estimate, vram: int,
                weights: WeightsOverride | None = None) -> list[str]:
    """Changes that would make a non-fitting estimate fit, smallest change first."""
    out: list[str] = []
    limit = context_limit(r, est.context_tokens)
    n = max_context(r, vram, est.batch_size, est.beams, limit)
    if n:
        out.append(f"--context {n} fits (the largest that does)")
    if est.batch_size > 1 and _total(r, est.context_tokens, 1, est.beams) <= vram:
        b = largest(lambda n: _total(r, est.context_tokens, n, est.beams) <= vram, 1, est.batch_size)
        out.append(f"--batch {b} fits (the largest that does)")
    if est.beams > 1 and _total(r, est.context_tokens, est.batch_size, 1) <= vram:
        out.append("--beams 1 (greedy decoding) fits")
    current = WEIGHT_DTYPES[est.dtype]
    for name in ladder_dtypes(spec):
        cand = WEIGHT_DTYPES[name]
        if cand.storage.bits_per_element >= current.storage.bits_per_element or name == est.dtype:
            continue
        r2 = resolve(spec, Request(batch=req.batch, dtype=name, kv_dtype=req.kv_dtype, images=req.images,
                                   encoder_tokens=req.encoder_tokens, beams=req.beams, image_size=req.image_size), weights)
        if _total(r2, est.context_tokens, est.batch_size, est.beams) <= vram:
            out.append(f"--dtype {name} fits ({_gib(estimate_resolved(r2, est.context_tokens, est.batch_size, est.beams).weights_bytes)} of weights)")
            break
    current_kv = KV_DTYPES[est.kv_dtype]
    for name in KV_LADDER:
        kv_cand = KV_DTYPES[name]
        if kv_cand.bits_per_element >= current_kv.bits_per_element:
            continue
        # req.dtype, not est.dtype: the same without imported weights, and keeps their stored bytes with them
        r2 = resolve(spec, Request(batch=req.batch, dtype=req.dtype, kv_dtype=name, images=req.images,
                                   encoder_tokens=req.encoder_tokens, beams=req.beams, image_size=req.image_size), weights)
        if _total(r2, est.context_tokens, est.batch_size, est.beams) <= vram:
            out.append(f"--kv-dtype {name} fits")
            break
    return out


def check_fit(spec: AnySpec, req: Request, vram_bytes: int, device: str,
              weights: WeightsOverride | None = None, *, suggest: bool = True, resolved: Resolved | None = None) -> Fit:
    """Estimate `spec` for `req` and compare it with `vram_bytes`; `suggest=False` skips the search
    for what would make it fit (check prints none); `resolved` reuses resolve(spec, req, weights)."""
    r = resolved or resolve(spec, req, weights)
    context = req.context or default_context(r)
    est = estimate_resolved(r, context, req.batch, req.beams)
    limit = context_limit(r, context)
    n = max_context(r, vram_bytes, req.batch, req.beams, limit)
    hints = () if est.total_bytes <= vram_bytes or not suggest else tuple(suggestions(spec, req, r, est, vram_bytes, weights))
    return Fit(est, device, vram_bytes, n, limit, hints)
