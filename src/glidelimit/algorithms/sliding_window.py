from __future__ import annotations

from typing import Any

from ._base import Algorithm, Check


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
            # until the previous window's weight has shrunk enough
            retry = -((-(prev * (period - x) - (limit - cur - cost) * period)) // prev)
        else:
            # the next window, then until this window's weight has shrunk enough
            retry = period - x - ((-(cur - limit + cost) * period) // cur)

        def reset(n: int) -> int:
            return 2 * period - x if n > 0 else period - x if prev > 0 else 0

        return (
            ok,
            retry,
            (limit * period - weighted) // period,
            reset(cur),
            (limit * period - new) // period,
            reset(cur + cost),
            (w, cur + cost, prev),
        )

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        counts: tuple[Any, ...] = new  # (window index, its count, previous count)
        return counts
