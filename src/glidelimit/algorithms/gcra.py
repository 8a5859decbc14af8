from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Step


class GCRA(Algorithm):
    """Generic cell rate algorithm, a token bucket with continuous refill (``gcra.lua``).

    State: ``(base time in ms, backlog)``; the backlog is the time until the bucket is full
    again in units of 1/limit ms, so one unit of cost adds exactly ``period``.
    """

    name = "gcra"
    reservable = True

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        cur = max(state[1] - (now - state[0]) * limit, 0) if state is not None else 0
        new = max(cur + cost * period, 0)  # a negative cost gives back a reservation
        full = cap * period
        ok = new <= full or cost <= 0  # giving back is always allowed
        retry = -1 if cost > cap else 0 if ok else -((full - new) // limit)
        return Check(
            ok,
            retry,
            max((full - cur) // period, 0),
            -(-cur // limit),
            max((full - new) // period, 0),
            -(-new // limit),
            new,
        )

    def commit(self, state: Any, check: Check, now: int, cost: int) -> Any:
        return (now, check.new)

    def single(self, limit: int, period: int, cap: int) -> Step:
        full = cap * period

        def step(state: Any, now: int, cost: int, mode: int, max_wait: int) -> Any:
            cur = 0
            if state is not None:
                cur = state[1] - (now - state[0]) * limit
                if cur < 0:
                    cur = 0
            new = cur + cost * period
            if new < 0:
                new = 0
            ok = new <= full or cost <= 0
            retry = -1 if cost > cap else 0 if ok else -((full - new) // limit)
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if ok:
                rem = (full - new) // period
                reset = -(-new // limit)
                out = [1, 1, rem if rem > 0 else 0, reset, retry]
                return out, (now, new), -1 if mode == _PEEK else reset
            rem = (full - cur) // period
            return [0, 0, rem if rem > 0 else 0, -(-cur // limit), retry], None, -1

        return step
