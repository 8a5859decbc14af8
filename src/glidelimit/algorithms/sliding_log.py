from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from ._base import Algorithm, Check

_REMOVED_AT_MOST = 1000  # dead hits one decision removes


class SlidingLog(Algorithm):
    """Exact sliding log (``sliding_log.lua``): one entry per hit, O(hits in a period) memory.

    State: ``(times, starts, ends)``, lists changed in place: per hit, its time in ms and the
    running total of units before and after it.
    """

    name = "sliding_log"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        times, starts, ends = state if state is not None else ([], [], [])
        dead = bisect_right(times, now - period)
        n = len(times)
        total = ends[-1] if n else 0
        count = total - starts[dead] if dead < n else 0
        new = count + cost
        ok = new <= limit
        if cost > limit:
            retry = -1
        elif ok:
            retry = 0
        else:
            # the first live hit whose end leaves room once it has aged out
            retry = times[bisect_left(ends, total - limit + cost, dead)] + period - now
        reset0 = times[-1] + period - now if count else 0
        reset1 = period if cost > 0 else reset0
        return (ok, retry, limit - count, reset0, limit - new, reset1, dead)

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        times, starts, ends = state if state is not None else ([], [], [])
        total, last = (ends[-1], times[-1]) if times else (0, now)
        removed = min(new, _REMOVED_AT_MOST)  # some of the dead hits
        if removed:
            del times[:removed], starts[:removed], ends[:removed]
        if cost > 0:
            # never before the last hit, so that times stay sorted if the clock steps back
            times.append(last if last > now else now)
            starts.append(total)
            ends.append(total + cost)
        return (times, starts, ends)
