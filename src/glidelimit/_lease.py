"""Leases: a process takes a slice of a hot key's quota in one round trip, and spends it by
itself.

A slice is taken only from quota that is really free (``_driver.lua``'s ``lease()``), and each
of its units is spent only while a plain hit could have been admitted in its place:

- fixed window: any time before the window ends (the slice never outlives its window);
- gcra: unit i from the moment it conforms until the backlog before it would have drained.
  Spent later, the bucket would have refilled meanwhile and a plain hit would have found it
  fuller: so the units of a slice of a key whose bucket is nearly full (a cold key) expire
  almost at once, and a cold key is never leased.

So the fleet never admits more than the algorithm itself allows. Units a process holds unused
go back to the server when the key goes quiet and when the limiter closes (for gcra, only if
no decision was made on the key since: giving them back then would move units that others
hold; they expire instead).
"""

from __future__ import annotations

import math
import os
import time
import weakref
from dataclasses import dataclass

import anyio

from ._decision import Decision
from ._errors import ConfigurationError
from ._guard import Guard
from ._quota import Quota
from ._runtime import spawn
from ._slice import Slice
from .algorithms import Mode

_monotonic = time.monotonic

_HIT, _LEASE, _GIVE_BACK = int(Mode.HIT), int(Mode.LEASE), int(Mode.GIVE_BACK)
_KEYS_WATCHED = 10_000  # keys whose demand one limiter counts at once
# Units in one slice at most: 1024 where each unit has its own terms (gcra: they are worked out
# when the slice comes), 65,536 where every unit stands as the first (fixed window)
_MOST, _MOST_ALIKE = 1024, 65_536
_all: weakref.WeakSet[Leases] = weakref.WeakSet()


@dataclass(frozen=True)
class Lease:
    """How a limiter leases slices of its hot keys' quota (``Limiter(..., lease=Lease())``).

    A key is hot when it is hit at least ``min_hits`` times within ``window`` seconds in this
    process; its slice then covers about twice that demand, at most ``fraction`` of the
    capacity and at most 1024 units (65,536 for ``fixed_window``, whose units all stand
    alike). A slice unused for ``4 * window`` goes back to the server.

    Args:
        fraction: The most of a rate's capacity one slice may take (0 < fraction <= 1).
        window: Seconds over which demand is counted, and how far ahead a gcra slice may
            reach (units that conform within it).
        min_hits: Hits within a window that make a key hot.

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    fraction: float = 0.1
    window: float = 0.05
    min_hits: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not (
            isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1
        ):
            raise ConfigurationError(f"lease fraction must be in (0, 1], got {self.fraction!r}")
        if isinstance(self.window, bool) or not (
            isinstance(self.window, (int, float)) and 0.001 <= self.window <= 60
        ):
            raise ConfigurationError(
                f"lease window must be between 0.001 and 60 seconds, got {self.window!r}"
            )
        if isinstance(self.min_hits, bool) or not (
            isinstance(self.min_hits, int) and self.min_hits >= 1
        ):
            raise ConfigurationError(
                f"lease min_hits must be an integer >= 1, got {self.min_hits!r}"
            )


class Leases:
    """The slices one limiter holds, by key, and the demand that decides which keys are hot."""

    def __init__(self, policy: Lease, guard: Guard) -> None:
        self.policy = policy
        self._guard = guard
        self.slices: dict[bytes, Slice] = {}
        self.pending: dict[bytes, anyio.Event] = {}  # keys whose slice is on its way
        self.failed: dict[bytes, bool] = {}  # keys whose last lease the backend failed
        # keys whose last slice came back empty: until when, and for what cost or more
        self.denied: dict[bytes, tuple[float, int, Slice]] = {}
        # key -> [window start, hits in it, hits in the window before, the last slice asked]
        self._demand: dict[bytes, list[float]] = {}
        self._cold: dict[bytes, float] = {}  # keys not worth a slice, until when
        _all.add(self)

    def spend(self, quota: Quota, key: bytes, cost: int) -> Decision | None:
        """A decision made with ``key``'s slice, or None (no slice, or not enough in it)."""
        found = self.slices.get(key)
        if found is None or found.quota is not quota:
            return self._without_slice(found, quota, key, cost)
        now = _monotonic()
        spent, granted, closes = found.spent, found.granted, found.closes
        same = len(closes) == 1  # every unit stands as the first does
        if spent < granted and closes[0 if same else spent] < now:
            while spent < granted and closes[0 if same else spent] < now:
                spent += 1  # expired unspent: void
            found.spent = spent
        last = spent + cost - 1
        if last >= granted or closes[0 if same else last] < now:
            del self.slices[key]  # used up, or too short for this cost: ask the server
            if spent < granted:
                spawn(self.give_back(found))
            if granted >= self.policy.min_hits:  # the next slice at once, as large as the demand
                spent_in = max(now - found.received, 0.001)
                wanted = granted * 2 * self.policy.window / spent_in
                self._demand[key] = [now, wanted / 2, wanted / 2, wanted]
            return None
        found.last_used = now
        opens = found.opens[0 if same else last]
        if opens > now:  # the units are still to come (gcra): wait for them, here
            return found.decision(False, opens - now)
        found.spent = last + 1
        return found.decision(True, 0.0)

    def _without_slice(
        self, found: Slice | None, quota: Quota, key: bytes, cost: int
    ) -> Decision | None:
        """:meth:`spend` for a key with no slice here, or one of rates that changed since."""
        if found is not None:  # its tier's rates changed since it was taken
            del self.slices[key]
            spawn(self.give_back(found))
        denied = self.denied.get(key)
        if denied is None:
            return None
        now = _monotonic()
        until, least, empty = denied
        if now >= until or cost < least or empty.quota is not quota:
            del self.denied[key]
            # still hot: the next slice, as large as the last one asked, is taken at once
            demand = self._demand.get(key)
            last = max(demand[3] if demand else 0, self.policy.min_hits)
            self._demand[key] = [now, last / 2, last / 2, last]
            return None
        return empty.decision(False, until - now)

    async def hit(self, quota: Quota, keys: tuple[bytes, ...], cost: int) -> Decision:
        """A hit that this process's slice of the key (if any) could not decide: with a slice
        taken now if the key is hot, or else as a plain hit."""
        key = keys[0]
        guard = self._guard
        while True:
            pending = self.pending.get(key)
            if pending is None:
                wanted = self.wanted(key, quota, cost)
                break
            await pending.wait()  # a slice is on its way: wait for it, rather than ask too
            decision = self.spend(quota, key, cost)
            if decision is not None:
                return decision
            if self.failed.get(key):  # the backend failed that very lease: not asked again
                return await guard.failed_just_now(quota, keys, cost)
        if not wanted:
            return await guard.decide(quota, keys, cost, _HIT)
        done = self.pending[key] = anyio.Event()
        try:
            sent = time.monotonic()
            answer = quota.execute(keys, wanted, _LEASE, round(self.policy.window * 1000), b"")

            def give_back(raw: list[int]) -> None:  # a slice whose taker is gone
                spawn(self.give_back(Slice(quota, keys, raw, sent)))

            if isinstance(answer, list):
                raw: list[int] | Decision = answer
            else:
                # the failure policy decides for the hit of cost that asked, if need be
                raw = await guard.raw(quota, answer, keys, cost, _HIT, undo=give_back)
            if not isinstance(raw, list):  # decided without the backend
                self.failed[key] = True
                return raw
            self.failed.pop(key, None)
            return self.granted(quota, keys, cost, raw, sent)
        finally:
            if self.pending.get(key) is done:
                del self.pending[key]
            done.set()

    def wanted(self, key: bytes, quota: Quota, cost: int) -> int:
        """How many units to lease for ``key`` now that it is hit again (0: it is not hot)."""
        now = time.monotonic()
        capacity = min(cap for _, _, cap in quota.limits.entries)
        alike = quota.algorithm.same_terms
        most = max(min(int(capacity * self.policy.fraction), _MOST_ALIKE if alike else _MOST), 1)
        if cost > most or cost <= 0 or self._cold.get(key, 0.0) > now:
            return 0  # more than a slice may hold, nothing to hold, or not worth a slice
        demand = self._demand.get(key)
        window = self.policy.window
        if demand is None:
            if len(self._demand) >= _KEYS_WATCHED:
                self._demand.clear()
            self._demand[key] = [now, cost, 0.0, 0.0]
            return 0
        if now - demand[0] >= window:
            demand[2] = demand[1] if now - demand[0] < 2 * window else 0.0
            demand[0], demand[1] = now, 0.0
        demand[1] += cost
        recent = max(demand[1], demand[2])
        if recent < self.policy.min_hits:
            return 0
        demand[3] = wanted = max(min(int(2 * recent), most), cost)
        return wanted

    def granted(
        self, quota: Quota, keys: tuple[bytes, ...], cost: int, raw: list[int], sent: float
    ) -> Decision:
        """Keep the slice that a lease answered with, and decide the hit that asked for it."""
        held = Slice(quota, keys, raw, sent)
        key = keys[0]
        now = held.received
        if held.granted >= cost:
            last = cost - 1
            if held.opens[0 if len(held.opens) == 1 else last] <= now:
                # free at the grant: spent by the hit that asked, as a plain hit would be
                held.spent = cost
            if held.granted > held.spent and held.closes[-1] < now + 0.001:
                # the rest of the slice would expire before it could be spent (a bucket that is
                # nearly full): given back, and this key is not leased for a while
                if len(self._cold) >= _KEYS_WATCHED:
                    self._cold.clear()
                self._cold[key] = now + 1.0
                spawn(self.give_back(held))
            elif held.granted > held.spent:
                self.slices[key] = held
                spawn(self._give_back_when_quiet(key, held))
            if held.spent:
                return held.decision(True, 0.0)
            opens = held.opens[0 if len(held.opens) == 1 else last]
            return held.decision(False, max(opens - now, 0.001))
        if held.granted:  # too little for this cost: not kept
            spawn(self.give_back(held))
        # denied until the quota frees: remembered, so that the denied do not ask again (for
        # a while: others may give units back)
        retry = held.retry(cost)
        if retry < math.inf:
            if len(self.denied) >= _KEYS_WATCHED:
                self.denied.clear()
            remember = min(retry, max(4 * self.policy.window, 1.0))
            self.denied[key] = (sent + remember, cost, held)
        return held.decision(False, retry)

    def forget(self, key: bytes) -> None:
        """Drop what is held or remembered for ``key`` (it was reset)."""
        self.denied.pop(key, None)
        self.failed.pop(key, None)
        held = self.slices.pop(key, None)
        if held is not None:
            held.spent = held.granted  # its units were reset with the key

    async def _give_back_when_quiet(self, key: bytes, held: Slice) -> None:
        quiet = 4 * self.policy.window
        while True:
            await anyio.sleep(quiet)
            if self.slices.get(key) is not held:
                return  # replaced, or used up
            if time.monotonic() - held.last_used >= quiet:
                del self.slices[key]
                await self.give_back(held)
                return

    async def give_back(self, held: Slice) -> None:
        """Give the unused units of ``held`` back to the server, if any."""
        unused = held.granted - held.spent
        if unused > 0 and held.closes[min(held.spent, len(held.closes) - 1)] > time.monotonic():
            held.spent = held.granted
            answer = held.quota.execute(held.keys, unused, _GIVE_BACK, -1, held.holder())
            if not isinstance(answer, list):
                await self._guard.quietly(answer, "give a slice back")

    async def aclose(self) -> None:
        """Give back every slice's unused units, all at once."""
        slices, self.slices = list(self.slices.values()), {}
        async with anyio.create_task_group() as tg:
            for held in slices:
                tg.start_soon(self.give_back, held)


def _forget_after_fork() -> None:
    # a child process would spend the very slices its parent spends: it holds none
    for leases in list(_all):
        leases.slices.clear()
        leases.pending.clear()
        leases.failed.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
