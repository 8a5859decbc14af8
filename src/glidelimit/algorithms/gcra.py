from __future__ import annotations

from typing import Any

from ._base import Algorithm, Check


class GCRA(Algorithm):
    """Generic cell rate algorithm, a token bucket with continuous refill (``gcra.lua``).

    State: ``(base time in ms, backlog)``; the backlog is the time until the bucket is full
    again in units of 1/limit ms, so one unit of cost adds exactly ``period``.
    """

    name = "gcra"
    reservable = True

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        # (conditionals rather than max(): builtin calls cost, and this runs on every
        # decision of the memory backend)
        cur = 0
        if state is not None:
            cur = state[1] - (now - state[0]) * limit
            if cur < 0:
                cur = 0
        new = cur + cost * period
        if new < 0:
            new = 0  # a negative cost gives a reservation back
        full = cap * period
        ok = new <= full or cost <= 0  # giving back is always allowed
        retry = -1 if cost > cap else 0 if ok else -((full - new) // limit)
        rem0, rem1 = (full - cur) // period, (full - new) // period
        return (
            ok,
            retry,
            rem0 if rem0 > 0 else 0,
            -(-cur // limit),
            rem1 if rem1 > 0 else 0,
            -(-new // limit),
            new,
        )

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        return (now, new)
