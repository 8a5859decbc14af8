from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Step


class FixedWindow(Algorithm):
    """Fixed window: opens at the key's first allowed hit, lasts one period (``fixed_window.lua``).

    State: ``(count, window end in ms)``.
    """

    name = "fixed_window"

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        count, wend = (state[0], state[1]) if state is not None and state[1] > now else (0, None)
        new = count + cost
        ok = new <= limit
        if wend is None:
            reset0, reset1 = 0, period
        else:
            reset0 = reset1 = wend - now
        # a fresh window only denies a cost above the limit
        retry = -1 if cost > limit else 0 if ok else reset0
        return Check(ok, retry, limit - count, reset0, limit - new, reset1, (new, wend))

    def commit(self, state: Any, check: Check, now: int, cost: int) -> Any:
        new, wend = check.new
        return (new, now + check.reset1 if wend is None else wend)

    def single(self, limit: int, period: int, cap: int) -> Step:
        def step(state: Any, now: int, cost: int, mode: int, max_wait: int) -> Any:
            if state is not None and state[1] > now:
                count, wend = state
                reset0 = reset1 = wend - now
            else:
                count, wend = 0, now + period
                reset0, reset1 = 0, period
            new = count + cost
            ok = new <= limit
            retry = -1 if cost > limit else 0 if ok else reset0
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if ok:
                out = [1, 1, limit - new, reset1, retry]
                return out, (new, wend), -1 if mode == _PEEK else reset1
            return [0, 0, limit - count, reset0, retry], None, -1

        return step
