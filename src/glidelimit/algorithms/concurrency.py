from __future__ import annotations

from typing import Any, ClassVar

from ._base import Algorithm, Entry, Mode, Owner, Store


class Concurrency(Algorithm):
    """Slots held under leases (``concurrency.lua``). State: ``({holder: lease end in ms},)``.

    Not a rate algorithm: its one entry is (slots, lease in ms, slots), ``holder`` names the
    slot's holder, and the mode is HIT (acquire), PEEK, RELEASE or RENEW.
    """

    name = "concurrency"
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "concurrency.lua", "_main.lua")

    def decide(
        self,
        store: Store,
        keys: tuple[bytes, ...],
        owners: tuple[Owner, ...],
        cost: int,
        mode: int,
        max_wait: int,
        holder: bytes,
        now: int,
    ) -> list[int]:
        key, owner = keys[0], owners[0]
        limit, lease, _ = owner[1]
        stored = store.get(key)
        held: dict[bytes, int] = stored[2][0] if stored is not None and stored[0] > now else {}
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
        store.pop(key, None)
        if holders:
            reset = max(holders.values()) - now
            if not allowed:
                retry = min(holders.values()) - now
            store[key] = (now + reset, owner, (holders,))
        return [int(allowed), int(allowed), max(limit - len(holders), 0), reset, retry]

    def used(self, state: Any, now: int, entry: Entry) -> float:
        return sum(1 for end in state[0].values() if end > now) / entry[0]
