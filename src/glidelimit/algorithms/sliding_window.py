from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Step


class SlidingWindow(Algorithm):
    """Sliding window counter (``sliding_window.lua``): approximate, O(1) memory per key.

    State: ``(window index, its count, the previous window's count)``.
    """

    name = "sliding_window"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        w = now // period
        x = now - w * period
        cur = prev = 0
        if state is not None:
            if state[0] == w:
                cur, prev = state[1], state[2]
            elif state[0] == w - 1:
                prev = state[1]
        weighted = prev * (period - x) + cur * period
        new = weighted + cost * period
        ok = new <= limit * period
        if cost > limit:
            retry = -1
        elif ok:
            retry = 0
        elif cur + cost <= limit:
            retry = -((-(prev * (period - x) - (limit - cur - cost) * period)) // prev)
        else:
            retry = period - x - ((-(cur - limit + cost) * period) // cur)

        def reset(n: int) -> int:
            return 2 * period - x if n > 0 else period - x if prev > 0 else 0

        return Check(
            ok,
            retry,
            (limit * period - weighted) // period,
            reset(cur),
            (limit * period - new) // period,
            reset(cur + cost),
            (w, cur + cost, prev),
        )

    def commit(self, state: Any, check: Check, now: int, cost: int) -> Any:
        return check.new

    def single(self, limit: int, period: int, cap: int) -> Step:
        most = limit * period

        def step(state: Any, now: int, cost: int, mode: int, max_wait: int) -> Any:
            w = now // period
            x = now - w * period
            cur = prev = 0
            if state is not None:
                if state[0] == w:
                    cur, prev = state[1], state[2]
                elif state[0] == w - 1:
                    prev = state[1]
            weighted = prev * (period - x) + cur * period
            new = weighted + cost * period
            ok = new <= most
            if cost > limit:
                retry = -1
            elif ok:
                retry = 0
            elif cur + cost <= limit:
                retry = -((-(prev * (period - x) - (limit - cur - cost) * period)) // prev)
            else:
                retry = period - x - ((-(cur - limit + cost) * period) // cur)
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if ok:
                n = cur + cost
                reset = 2 * period - x if n > 0 else period - x if prev > 0 else 0
                out = [1, 1, (most - new) // period, reset, retry]
                return out, (w, n, prev), -1 if mode == _PEEK else reset
            reset = 2 * period - x if cur > 0 else period - x if prev > 0 else 0
            return [0, 0, (most - weighted) // period, reset, retry], None, -1

        return step
