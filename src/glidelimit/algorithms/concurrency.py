from __future__ import annotations

from typing import Any, ClassVar

from ._base import Algorithm, Mode, Request


class Concurrency(Algorithm):
    """Slots held under leases (``concurrency.lua``). Entry: ``(expires, {token: lease end})``.

    Not a rate algorithm: the request's one rate is (max in flight, lease in ms), its token
    names the holder, and its mode is HIT (acquire), PEEK, RELEASE or RENEW.
    """

    name = "concurrency"
    driven: ClassVar[bool] = False
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "concurrency.lua", "_main.lua")

    def decide(
        self, states: list[Any], request: Request, now: int
    ) -> tuple[list[int], list[tuple[Any, int]] | None]:
        rate = request.limits.rates[0]
        limit, lease, token, mode = rate.limit, rate.period_ms, request.token, request.mode
        held: dict[str, int] = states[0][1] if states[0] is not None else {}
        holders = {t: end for t, end in held.items() if end > now}
        allowed = False
        if mode == Mode.RELEASE:
            holders.pop(token, None)
        elif mode == Mode.RENEW:
            if token in holders:
                holders[token] = now + lease
                allowed = True
        elif token in holders or (mode == Mode.HIT and len(holders) < limit):
            if mode == Mode.HIT:
                holders[token] = now + lease
            allowed = True
        reset = retry = 0
        if holders:
            reset = max(holders.values()) - now
            if not allowed:
                retry = min(holders.values()) - now
        out = [int(allowed), int(allowed), max(limit - len(holders), 0), reset, retry]
        return out, [((holders,) if holders else None, reset)]
