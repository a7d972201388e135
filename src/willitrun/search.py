"""The searches every "largest" answer shares: the context window searched and the bisection.

A floor module below the verdict (fit.py) and the engine profiles: `validate` checks a spec at the
longest context a fit check searches, and every engine searches its largest context, without either
importing the verdict layer (shared/house.json: specs and engines know no verdict).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .memory import Resolved


def context_limit(r: Resolved, asked: int) -> int:
    """The largest context searched: the hard limit, else the trained window (raised to the asked
    context when images alone fill it: 10 LLaVA images are 5,760 positions in a 4,096 window, and an
    estimate that fits must not report that no context does), else what was asked."""
    if r.att.hard_limit:
        return r.att.hard_limit
    window = r.att.context_window or asked
    return max(window, asked) if r.image_tokens >= window else window


def largest(fits: Callable[[int], bool], lo: int, hi: int, *, grow: bool = False) -> int:
    """The largest n in [lo, hi] with fits(n), 0 if none: the one search behind every "largest"
    answer (context, batch, -ngl, --n-cpu-moe, cards) on every engine. `grow` brackets the answer by
    doubling (lo, lo + 1, lo + 3, lo + 7, ... capped at hi) before bisecting, for a bound far above
    the usual answer (a batch up to 2^24); otherwise it bisects [lo, hi] at once. Either way at most
    about 2 log2(hi - lo + 1) + 2 probes. Exact when fits is true up to a point, then false: every
    engine's bytes never fall as n grows (property tests)."""
    if lo > hi or not fits(lo):
        return 0
    good, bad = lo, hi + 1  # invariant: fits(good); bad is past the end or does not fit
    if grow:
        step = 2
        while good < hi:
            probe = min(hi, lo - 1 + step)
            if not fits(probe):
                bad = probe
                break
            good, step = probe, step * 2
    elif fits(hi):
        good = hi
    else:
        bad = hi
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good
