from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Decide, Store


class SlidingWindow(Algorithm):
    """Sliding window counter (``sliding_window.lua``): approximate, O(1) memory per key.

    Entry: ``(expires, window index, its count, the previous window's count)``.
    """

    name = "sliding_window"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        w = now // period
        x = now - w * period
        cur = prev = 0
        if state is not None:
            if state[1] == w:
                cur, prev = state[2], state[3]
            elif state[1] == w - 1:
                prev = state[2]
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

    def commit(self, state: Any, check: Check, now: int, cost: int) -> tuple[Any, ...]:
        new: tuple[Any, ...] = check.new  # (window index, its count, previous count)
        return new

    def single(self, store: Store, limit: int, period: int, cap: int) -> Decide:
        data, ticks, scale = store.data, store.ticks, store.scale
        most = limit * period

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
            w = now // period
            x = now - w * period
            cur = prev = 0
            if entry is not None:
                if entry[0] <= now:
                    entry = None  # expired: gone
                elif entry[1] == w:
                    cur, prev = entry[2], entry[3]
                elif entry[1] == w - 1:
                    prev = entry[2]
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
            if not ok:
                if entry is not None:
                    data[key] = entry
                reset = 2 * period - x if cur > 0 else period - x if prev > 0 else 0
                return [0, 0, (most - weighted) // period, reset, retry]
            n = cur + cost
            reset = 2 * period - x if n > 0 else period - x if prev > 0 else 0
            if mode == _PEEK:
                if entry is not None:
                    data[key] = entry
            elif reset > 0:
                data[key] = (now + reset, w, n, prev)
                if entry is None and len(data) > store.bound:
                    store.grown(now)
            return [1, 1, (most - new) // period, reset, retry]

        return decide
