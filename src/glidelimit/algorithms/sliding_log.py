from __future__ import annotations

from bisect import bisect_right
from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Decide, Store


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
        return Check(ok, retry, limit - count, reset0, limit - new, reset1, start)

    def commit(self, state: Any, check: Check, now: int, cost: int) -> tuple[Any, ...]:
        log: list[int] = state[1] if state is not None else []
        del log[: check.new]
        log.extend([now] * cost)
        return (log,)

    def single(self, store: Store, limit: int, period: int, cap: int) -> Decide:
        data, ticks, scale = store.data, store.ticks, store.scale

        def decide(
            keys: tuple[str, ...],
            cost: int,
            mode: int = 0,
            max_wait: int = -1,
            now: int | None = None,
        ) -> list[int]:
            if now is None:
                now = ticks() // scale
            key = keys[0]
            entry = data.pop(key, None)
            if entry is not None and entry[0] <= now:
                entry = None  # expired: gone
            log: list[int] = entry[1] if entry is not None else []
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
                if entry is not None:
                    data[key] = entry
                return [0, 0, limit - count, reset0, retry]
            reset1 = period if cost > 0 else reset0
            if mode == _PEEK:
                if entry is not None:
                    data[key] = entry
            elif reset1 > 0:
                del log[:start]
                log.extend([now] * cost)
                data[key] = (now + reset1, log)
                if entry is None and len(data) > store.bound:
                    store.grown(now)
            return [1, 1, limit - new, reset1, retry]

        return decide
