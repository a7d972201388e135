"""The PyTorch CUDA caching allocator, as far as `torch.cuda.memory_allocated()` goes.

vLLM prints its weights as the allocator's allocated bytes (DeviceMemoryProfiler), and the allocator
counts whole blocks, which can exceed the tensors by up to 1 MiB each (engines/vllm.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# --------------------------------------------------------------------------------------------------
# c10/cuda/CUDACachingAllocator.cpp (pytorch/pytorch; the same constants in c10/core/AllocatorConfig.h):
K_MIN_BLOCK = 512  # kMinBlockSize: every size rounded up to a multiple of 512 B (round_size)
K_SMALL_SIZE = 1 << 20  # kSmallSize: the largest "small" allocation
K_SMALL_BUFFER = 2 << 20  # kSmallBuffer: small allocations are packed in 2 MiB segments
K_LARGE_BUFFER = 20 << 20  # kLargeBuffer: allocations of 1 to 10 MiB get a 20 MiB segment
K_MIN_LARGE_ALLOC = 10 << 20  # kMinLargeAlloc
K_ROUND_LARGE = 2 << 20  # kRoundLarge: larger segments are rounded up to 2 MiB


def torch_allocated(events: Iterable[tuple[str, str, int]]) -> int:
    """`torch.cuda.memory_allocated()` after these ("alloc", name, bytes) / ("free", name, 0) events,
    from an empty cache. The allocator hands out whole blocks: a request takes the smallest free block
    that holds it (best fit), and a large-pool block is split only when more than kSmallSize would be
    left (`should_split`), so a block with up to 1 MiB to spare counts whole; new segments are
    `get_allocation_size(size)`: 2 MiB (small), 20 MiB (1 to 10 MiB), else rounded up to 2 MiB.
    Small allocations split down to 512 B: they count as round_size(size). Not modelled: streams,
    expandable segments, PYTORCH_CUDA_ALLOC_CONF."""
    # large pool: segments as lists of [start, size, name or None (free)]
    segments: list[list[list[Any]]] = []  # mutable [start, size, name] blocks, merged in place
    where: dict[str, tuple[int, int]] = {}  # name -> (segment, start)
    allocated = 0
    small: dict[str, int] = {}
    for op, name, size in events:
        if op == "free":
            if name in small:
                allocated -= small.pop(name)
                continue
            si, start = where.pop(name)
            seg = segments[si]
            i = next(k for k, b in enumerate(seg) if b[0] == start)
            allocated -= seg[i][1]
            seg[i][2] = None
            # merge with free neighbours
            if i + 1 < len(seg) and seg[i + 1][2] is None:
                seg[i][1] += seg[i + 1][1]
                del seg[i + 1]
            if i > 0 and seg[i - 1][2] is None:
                seg[i - 1][1] += seg[i][1]
                del seg[i]
            continue
        rounded = K_MIN_BLOCK * -(-max(size, 1) // K_MIN_BLOCK)
        if rounded <= K_SMALL_SIZE:
            small[name] = rounded
            allocated += rounded
            continue
        best = None
        for si, seg in enumerate(segments):
            for bi, b in enumerate(seg):
                if b[2] is None and b[1] >= rounded and (best is None or b[1] < best[2]):
                    best = (si, bi, b[1])
        if best is None:
            if rounded < K_MIN_LARGE_ALLOC:
                seg_size = K_LARGE_BUFFER
            else:
                seg_size = K_ROUND_LARGE * -(-rounded // K_ROUND_LARGE)
            segments.append([[0, seg_size, None]])
            best = (len(segments) - 1, 0, seg_size)
        si, bi, _ = best
        block = segments[si][bi]
        if block[1] - rounded > K_SMALL_SIZE:
            segments[si].insert(bi + 1, [block[0] + rounded, block[1] - rounded, None])
            block[1] = rounded
        block[2] = name
        where[name] = (si, block[0])
        allocated += block[1]
    return allocated


__all__ = ["torch_allocated"]
