"""What an algorithm is: a Lua script and its Python twin, which must agree exactly.

A backend only executes an algorithm: Valkey runs the script, the memory backend runs
:meth:`Algorithm.decide` on its own store. Both return the same flat list of integers,
which :func:`glidelimit._quota.decode` turns into a Decision.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, ClassVar, TypeAlias

from .._rate import Rate
from . import _wire


class Mode(enum.IntEnum):
    """What a decision does with its cost."""

    HIT = 0  #: consume the cost if every entry allows it
    PEEK = 1  #: decide as a hit would, consume nothing
    RESERVE = 2  #: consume now if allowed within max_wait; the result's retry is the wait
    RELEASE = 3  #: concurrency only: give a slot back
    RENEW = 4  #: concurrency only: extend a held slot's lease
    LEASE = 5  #: take a slice of up to cost units for a process to spend by itself
    GIVE_BACK = 6  #: give back cost unused units of a slice


#: One entry of a decision: limit, period in ms, capacity (for concurrency: slots, lease in
#: ms, slots).
Entry: TypeAlias = tuple[int, int, int]


@dataclass(frozen=True, slots=True, eq=False)
class Limits:
    """What one decision is checked against: one entry per key of the decision.

    Compared by identity: a limiter makes its Limits once (per tier), and the backends keep
    what they derive from it.
    """

    entries: tuple[Entry, ...]
    #: the Rates behind the entries (none for a concurrency limiter)
    rates: tuple[Rate, ...] = ()
    #: the entries as a script reads them
    packed: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packed", _wire.pack_entries(self.entries))

    @classmethod
    def of(cls, rates: tuple[Rate, ...], capacities: tuple[int, ...]) -> Limits:
        """A rate limiter's: one entry per rate."""
        entries = tuple((r.limit, r.period_ms, cap) for r, cap in zip(rates, capacities))
        return cls(entries, rates)

    @classmethod
    def slots(cls, max_inflight: int, lease_ms: int) -> Limits:
        """A concurrency limiter's: one entry."""
        return cls(((max_inflight, lease_ms, max_inflight),))

    @property
    def capacities(self) -> tuple[int, ...]:
        """Each entry's capacity."""
        return tuple(cap for _, _, cap in self.entries)


#: One entry's verdict, as ``check()`` gives it: ``(ok, retry, rem0, reset0, rem1, reset1,
#: new)``: allowed or not, ms until this cost could be (-1: never), the remaining and the reset
#: in ms as things stand (``*0``) and once this cost is consumed (``*1``), and what
#: ``commit()`` needs. A plain tuple: one is made for every decision.
Check: TypeAlias = tuple[bool, int, int, int, int, int, Any]
#: What a state belongs to: its algorithm and the entry it was decided on (one per limiter's
#: rate, shared by all its keys), so that a full store can judge what forgetting it gives away.
Owner: TypeAlias = tuple["Algorithm", Entry]
#: The memory backend's store, as the Python twins read and write it: ``key -> (expires at in
#: ms, owner, state)``; a key that has expired holds no state.
Store: TypeAlias = dict[bytes, tuple[int, Owner, Any]]

_PEEK, _RESERVE, _LEASE = int(Mode.PEEK), int(Mode.RESERVE), int(Mode.LEASE)


class Algorithm:
    """One decision of ``_prelude.lua`` + ``<name>.lua`` + ``_driver.lua``, and its twin.

    Subclasses give ``name`` and the twins of the script's ``check`` and ``commit``. A state
    is what the twin stores for one key (a tuple of its own), or None for a key with none.
    """

    name: ClassVar[str]
    #: whether RESERVE (and a negative cost, to give a reservation back) is supported
    reservable: ClassVar[bool] = False
    #: whether every unit of a slice may be spent within the same times (:meth:`unit_terms`)
    same_terms: ClassVar[bool] = False
    #: the files the script is made of, in order ({name} is the algorithm's own)
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "{name}.lua", "_driver.lua", "_main.lua")

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        """Twin of the script's ``check()`` for one key."""
        raise NotImplementedError

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        """The state to store once ``cost`` is consumed: ``new`` is the check's last item,
        ``reset`` its ``reset1``."""
        raise NotImplementedError

    def grant(
        self, state: Any, now: int, wanted: int, horizon: int, limit: int, period: int, cap: int
    ) -> tuple[int, int, int]:
        """Twin of the script's ``grant()``: how many of ``wanted`` units a slice may take,
        and the ``a`` and ``b`` its holder needs (see ``_driver.lua``'s ``lease()``).

        Raises:
            NotImplementedError: For an algorithm that cannot lease.
        """
        raise NotImplementedError(f"{self.name} cannot lease")

    def take_back(
        self, state: Any, now: int, units: int, a: int, b: int, limit: int, period: int
    ) -> tuple[Any, int] | None:
        """Twin of the script's ``take_back()``: the state to store with its TTL once
        ``units`` of a slice are given back, or None to leave the key as it is."""
        raise NotImplementedError(f"{self.name} cannot lease")

    def unit_terms(
        self, unit: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> tuple[int, int]:
        """When unit ``unit`` (from 0) of a slice may be spent: ms after the grant from which
        and until which, given the entry's ``reset`` and ``b`` as ``lease()`` returned them."""
        raise NotImplementedError(f"{self.name} cannot lease")

    def slice_retry(
        self, cost: int, granted: int, reset: int, b: int, limit: int, period: int, cap: int
    ) -> float:
        """Ms after the grant until ``cost`` more units could be had, for a slice of
        ``granted`` (``math.inf``: never)."""
        raise NotImplementedError(f"{self.name} cannot lease")

    def after_grant(self, b: int, granted: int, period: int) -> int:
        """What :meth:`take_back` checks ``b`` against, once ``granted`` units were taken."""
        return b

    def used(self, state: Any, now: int, entry: Entry) -> float:
        """How much of ``entry``'s capacity ``state`` holds now, from 0 to 1: what forgetting
        the state would give away (a full memory backend forgets the least first)."""
        limit, period, cap = entry
        return 1 - self.check(state, now, 0, limit, period, cap)[2] / cap

    @cached_property
    def lua(self) -> str:
        """The whole script: shared head, this algorithm's body, shared tail."""
        here = resources.files(__package__)
        return "\n".join(
            (here / part.format(name=self.name)).read_text("utf-8") for part in self.parts
        )

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
        """Twin of ``_driver.lua``, on ``store``: check every entry, then commit all of them
        or none, each key kept exactly as long as its state matters. Returns the script's
        result."""
        if mode >= _LEASE:
            return self._slice(store, keys, owners, cost, mode, max_wait, holder, now)
        check, commit = self.check, self.commit
        if len(keys) == 1:  # one entry (most limiters): the steps below, without their lists
            key, owner = keys[0], owners[0]
            limit, period, cap = owner[1]
            stored = store.pop(key, None)  # put back, or written anew: either way the newest
            state = stored[2] if stored is not None and stored[0] > now else None
            c = check(state, now, cost, limit, period, cap)
            ok = c[0] if mode != _RESERVE else c[1] >= 0 and (max_wait < 0 or c[1] <= max_wait)
            if not ok or mode == _PEEK:
                if state is not None:
                    store[key] = stored  # type: ignore[assignment]
                return [1, 1, c[4], c[5], c[1]] if ok else [0, 0, c[2], c[3], c[1]]
            if c[5] > 0:
                store[key] = (now + c[5], owner, commit(state, c[6], c[5], now, cost))
            return [1, 1, c[4], c[5], c[1]]
        found = []
        allowed = True
        for key, owner in zip(keys, owners):
            limit, period, cap = owner[1]
            stored = store.get(key)
            state = stored[2] if stored is not None and stored[0] > now else None
            c = check(state, now, cost, limit, period, cap)
            if mode == _RESERVE:  # allowed if the wait is within max_wait
                c = (c[1] >= 0 and (max_wait < 0 or c[1] <= max_wait), *c[1:])
            allowed = allowed and c[0]
            found.append((key, owner, state, c))
        if not allowed:
            out = [0]
            for _, _, _, c in found:
                out += (1 if c[0] else 0, c[2], c[3], c[1])
            return out
        out = [1]
        for key, owner, state, c in found:
            out += (1, c[4], c[5], c[1])
            if mode != _PEEK:
                store.pop(key, None)
                if c[5] > 0:
                    store[key] = (now + c[5], owner, commit(state, c[6], c[5], now, cost))
        return out

    def _slice(
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
        """Twin of ``_driver.lua``'s ``lease()`` (mode LEASE) and ``give_back()``."""
        states = []
        for key in keys:
            stored = store.get(key)
            states.append(stored[2] if stored is not None and stored[0] > now else None)
        if mode != _LEASE:
            for i, (key, owner, state) in enumerate(zip(keys, owners, states)):
                a, b = struct.unpack_from("<dd", holder, 16 * i)
                limit, period, _ = owner[1]
                written = self.take_back(state, now, cost, int(a), int(b), limit, period)
                if written is not None:
                    new, ttl = written
                    store.pop(key, None)
                    if ttl > 0:
                        store[key] = (now + ttl, owner, new)
            return [1]
        found = []
        granted = cost
        for state, owner in zip(states, owners):
            limit, period, cap = owner[1]
            k, a, b = self.grant(state, now, cost, max_wait, limit, period, cap)
            found.append((a, b))
            granted = min(granted, k)
        out = [granted]
        for key, owner, state, (a, b) in zip(keys, owners, states, found):
            limit, period, cap = owner[1]
            c = self.check(state, now, granted, limit, period, cap)
            if granted > 0 and c[5] > 0:
                store.pop(key, None)
                store[key] = (now + c[5], owner, self.commit(state, c[6], c[5], now, granted))
            out += (c[4], c[5], a, b)
        return out
