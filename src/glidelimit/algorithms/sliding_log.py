from __future__ import annotations

from bisect import bisect_right
from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Step


class SlidingLog(Algorithm):
    """Exact sliding log (``sliding_log.lua``): one entry per unit of cost, O(limit) memory.

    State: a sorted list of entry times in ms.
    """

    name = "sliding_log"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        log: list[int] = state if state is not None else []
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
        return Check(ok, retry, limit - count, reset0, limit - new, reset1, start)

    def commit(self, state: Any, check: Check, now: int, cost: int) -> Any:
        log: list[int] = state if state is not None else []
        del log[: check.new]
        log.extend([now] * cost)
        return log

    def single(self, limit: int, period: int, cap: int) -> Step:
        def step(state: Any, now: int, cost: int, mode: int, max_wait: int) -> Any:
            log: list[int] = state if state is not None else []
            start = bisect_right(log, now - period)
            count = len(log) - start
            new = count + cost
            ok = new <= limit
            if cost > limit:
                retry = -1
            elif ok:
                retry = 0
            else:
                retry = log[start + new - limit - 1] + period - now
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            reset0 = log[-1] + period - now if count else 0
            if not ok:
                return [0, 0, limit - count, reset0, retry], None, -1
            reset1 = period if cost > 0 else reset0
            out = [1, 1, limit - new, reset1, retry]
            if mode == _PEEK:
                return out, None, -1
            if reset1 > 0:
                del log[:start]  # the state is the stored list: changed in place
                log.extend([now] * cost)
            return out, log, reset1

        return step
