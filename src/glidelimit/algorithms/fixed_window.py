from __future__ import annotations

import math
from typing import Any

from ._base import Algorithm, Check


class FixedWindow(Algorithm):
    """Fixed window: opens at the key's first allowed hit, lasts one period (``fixed_window.lua``).

    State: ``(count, window end in ms)``.
    """

    name = "fixed_window"
    same_terms = True

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        count, wend = state if state is not None and state[1] > now else (0, None)
        new = count + cost
        ok = new <= limit
        if wend is not None:
            reset0 = reset1 = wend - now
        else:
            # a hit opens a window of one period; a check of cost 0 opens none
            reset0, reset1 = 0, period if cost > 0 else 0
        # a fresh window only denies a cost above the limit
        retry = -1 if cost > limit else 0 if ok else reset0
        return (ok, retry, limit - count, reset0, limit - new, reset1, (new, wend))

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        count, wend = new
        return (count, now + reset if wend is None else wend)

    def grant(
        self, state: Any, now: int, wanted: int, horizon: int, limit: int, period: int, cap: int
    ) -> tuple[int, int, int]:
        # every free unit of the window; they may be spent until it ends
        count, wend = state if state is not None and state[1] > now else (0, now + period)
        return max(min(limit - count, wanted), 0), wend, count

    def take_back(
        self, state: Any, now: int, units: int, a: int, b: int, limit: int, period: int
    ) -> tuple[Any, int] | None:
        if state is None or state[1] != a:
            return None  # another window: the slice's units are void already
        return (max(state[0] - units, 0), a), a - now

    def unit_terms(
        self, unit: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> tuple[int, int]:
        # before the window ends: the server counts a hit at its very end in the next window
        return 0, reset - 1

    def slice_retry(
        self, cost: int, granted: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> float:
        return math.inf if cost > limit else max(reset, 1)  # the next window
