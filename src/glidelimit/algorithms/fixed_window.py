from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Decide, Store


class FixedWindow(Algorithm):
    """Fixed window: opens at the key's first allowed hit, lasts one period (``fixed_window.lua``).

    Entry: ``(expires, count, window end in ms)``.
    """

    name = "fixed_window"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        count, wend = (state[1], state[2]) if state is not None and state[2] > now else (0, None)
        new = count + cost
        ok = new <= limit
        if wend is None:
            reset0, reset1 = 0, period
        else:
            reset0 = reset1 = wend - now
        # a fresh window only denies a cost above the limit
        retry = -1 if cost > limit else 0 if ok else reset0
        return Check(ok, retry, limit - count, reset0, limit - new, reset1, (new, wend))

    def commit(self, state: Any, check: Check, now: int, cost: int) -> tuple[Any, ...]:
        new, wend = check.new
        return (new, now + check.reset1 if wend is None else wend)

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
            if entry is not None and entry[2] > now:
                count, wend = entry[1], entry[2]
                reset0 = reset1 = wend - now
            else:
                count, wend = 0, now + period
                reset0, reset1 = 0, period
            new = count + cost
            ok = new <= limit
            retry = -1 if cost > limit else 0 if ok else reset0
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if not ok:
                if entry is not None:
                    data[key] = entry
                return [0, 0, limit - count, reset0, retry]
            if mode == _PEEK:
                if entry is not None:
                    data[key] = entry
            else:  # reset1 > 0: the window ends after now
                data[key] = (now + reset1, new, wend)
                if entry is None and len(data) > store.bound:
                    store.grown(now)
            return [1, 1, limit - new, reset1, retry]

        return decide
