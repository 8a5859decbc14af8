from __future__ import annotations

import math
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

    def grant(
        self, state: Any, now: int, wanted: int, horizon: int, limit: int, period: int, cap: int
    ) -> tuple[int, int, int]:
        # Unit i of the slice (from 1) conforms once the backlog before it, cur + (i - 1) *
        # period, has drained below full - period; it may be spent until the backlog before it
        # would have drained: spent later, a plain hit would have found the bucket fuller.
        cur = 0
        if state is not None:
            cur = max(state[1] - (now - state[0]) * limit, 0)
        k = (cap * period + horizon * limit - cur) // period
        return max(min(k, wanted), 0), now, cur

    def take_back(
        self, state: Any, now: int, units: int, a: int, b: int, limit: int, period: int
    ) -> tuple[Any, int] | None:
        if state is None or state[0] != a or state[1] != b:
            return None  # a decision was made on the key since: its units must stay
        new = max(state[1] - units * period, 0)
        reset = -(-max(new - (now - a) * limit, 0) // limit)
        return (a, new), reset

    def unit_terms(
        self, unit: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> tuple[int, int]:
        # from when its backlog fits the bucket, until the backlog before it has drained
        opens = -(-(b + (unit + 1 - cap) * period) // limit)
        return max(opens, 0), (b + unit * period) // limit

    def slice_retry(
        self, cost: int, granted: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> float:
        if cost > cap:
            return math.inf
        return max(-(-(b + (granted + cost - cap) * period) // limit), 1)

    def after_grant(self, b: int, granted: int, period: int) -> int:
        return b + granted * period  # the backlog right after the grant
