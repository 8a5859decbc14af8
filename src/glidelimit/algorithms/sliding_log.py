from __future__ import annotations

from bisect import bisect_right
from typing import Any

from ._base import Algorithm, Check


class SlidingLog(Algorithm):
    """Exact sliding log (``sliding_log.lua``): one entry per unit of cost, O(limit) memory.

    Entry: ``(expires, a sorted list of unit times in ms)``; the list is changed in place.
    """

    name = "sliding_log"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        log: list[int] = state[1] if state is not None else []
        start = bisect_right(log, now - period)  # entries at or before now - period are dead
        count = len(log) - start
        new = count + cost
        ok = new <= limit
        if cost > limit:
            retry = -1
        elif ok:
            retry = 0
        else:
            retry = log[start + new - limit - 1] + period - now
        reset0 = log[-1] + period - now if count else 0
        reset1 = period if cost > 0 else reset0
        return (ok, retry, limit - count, reset0, limit - new, reset1, start)

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        log: list[int] = state[1] if state is not None else []
        del log[:new]  # the dead units, up to where check() found the live ones
        log.extend([now] * cost)
        return (log,)
