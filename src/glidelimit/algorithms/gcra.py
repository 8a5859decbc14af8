from __future__ import annotations

from typing import Any

from ._base import _PEEK, _RESERVE, Algorithm, Check, Decide, Store


class GCRA(Algorithm):
    """Generic cell rate algorithm, a token bucket with continuous refill (``gcra.lua``).

    Entry: ``(expires, base time in ms, backlog)``; the backlog is the time until the bucket
    is full again in units of 1/limit ms, so one unit of cost adds exactly ``period``.
    """

    name = "gcra"
    reservable = True

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        cur = max(state[2] - (now - state[1]) * limit, 0) if state is not None else 0
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

    def commit(self, state: Any, check: Check, now: int, cost: int) -> tuple[Any, ...]:
        return (now, check.new)

    def single(self, store: Store, limit: int, period: int, cap: int) -> Decide:
        data, ticks, scale = store.data, store.ticks, store.scale
        full = cap * period

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
            cur = 0
            if entry is not None:
                if entry[0] > now:
                    cur = entry[2] - (now - entry[1]) * limit
                    if cur < 0:
                        cur = 0
                else:
                    entry = None  # expired: gone
            new = cur + cost * period
            if new < 0:
                new = 0
            ok = new <= full or cost <= 0
            retry = -1 if cost > cap else 0 if ok else -((full - new) // limit)
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if not ok:
                if entry is not None:
                    data[key] = entry
                rem = (full - cur) // period
                return [0, 0, rem if rem > 0 else 0, -(-cur // limit), retry]
            rem = (full - new) // period
            reset = -(-new // limit)
            if mode == _PEEK:
                if entry is not None:
                    data[key] = entry
            elif reset > 0:
                data[key] = (now + reset, now, new)
                if entry is None and len(data) > store.bound:
                    store.grown(now)
            return [1, 1, rem if rem > 0 else 0, reset, retry]

        return decide
