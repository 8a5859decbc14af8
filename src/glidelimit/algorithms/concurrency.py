from __future__ import annotations

from typing import Any, ClassVar

from ._base import Algorithm, Entry, Mode, Outcome


class Concurrency(Algorithm):
    """Slots held under leases (``concurrency.lua``). State: ``({holder: lease end in ms},)``.

    Not a rate algorithm: its one entry is (slots, lease in ms, slots), ``holder`` names the
    slot's holder, and the mode is HIT (acquire), PEEK, RELEASE or RENEW.
    """

    name = "concurrency"
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "concurrency.lua", "_main.lua")

    def decide(
        self,
        states: list[Any],
        entries: tuple[Entry, ...],
        cost: int,
        mode: int,
        max_wait: int,
        holder: bytes,
        now: int,
    ) -> Outcome:
        limit, lease, _ = entries[0]
        held: dict[bytes, int] = states[0][0] if states[0] is not None else {}
        holders = {h: end for h, end in held.items() if end > now}
        allowed = False
        if mode == Mode.RELEASE:
            holders.pop(holder, None)
        elif mode == Mode.RENEW:
            if holder in holders:
                holders[holder] = now + lease
                allowed = True
        elif holder in holders or (mode == Mode.HIT and len(holders) < limit):
            if mode == Mode.HIT:
                holders[holder] = now + lease
            allowed = True
        reset = retry = 0
        if holders:
            reset = max(holders.values()) - now
            if not allowed:
                retry = min(holders.values()) - now
        out = [int(allowed), int(allowed), max(limit - len(holders), 0), reset, retry]
        return out, [((holders,) if holders else None, reset)]

    def used(self, state: Any, now: int, entry: Entry) -> float:
        return sum(1 for end in state[0].values() if end > now) / entry[0]
