"""What an algorithm is: a Lua script and its Python twin, which must agree exactly.

A backend only executes an algorithm: Valkey runs the script, the memory backend runs
:meth:`Algorithm.decide` on its own store. Both return the same flat list of integers,
which :func:`glidelimit._decision.decode` turns into a Decision.
"""

from __future__ import annotations

import enum
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
#: What :meth:`Algorithm.decide` returns: the script's result, and per key the state to store
#: with its TTL in ms (None: store nothing, for a decision that changed nothing).
Outcome: TypeAlias = tuple[list[int], "list[tuple[Any, int]] | None"]

_PEEK, _RESERVE = int(Mode.PEEK), int(Mode.RESERVE)


class Algorithm:
    """One decision of ``_prelude.lua`` + ``<name>.lua`` + ``_driver.lua``, and its twin.

    Subclasses give ``name`` and the twins of the script's ``check`` and ``commit``. A state
    is what the twin stores for one key (a tuple of its own), or None for a key with none.
    """

    name: ClassVar[str]
    #: whether RESERVE (and a negative cost, to give a reservation back) is supported
    reservable: ClassVar[bool] = False
    #: the files the script is made of, in order ({name} is the algorithm's own)
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "{name}.lua", "_driver.lua", "_main.lua")

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        """Twin of the script's ``check()`` for one key."""
        raise NotImplementedError

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        """The state to store once ``cost`` is consumed: ``new`` is the check's last item,
        ``reset`` its ``reset1``."""
        raise NotImplementedError

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
        states: list[Any],
        entries: tuple[Entry, ...],
        cost: int,
        mode: int,
        max_wait: int,
        holder: bytes,
        now: int,
    ) -> Outcome:
        """Twin of ``_driver.lua``: check every entry, then commit all of them or none."""
        check = self.check
        out = [1]
        checks = []
        for state, (limit, period, cap) in zip(states, entries):
            c = check(state, now, cost, limit, period, cap)
            # a reservation is allowed if its wait is within max_wait
            ok = c[1] >= 0 and (max_wait < 0 or c[1] <= max_wait) if mode == _RESERVE else c[0]
            if not ok:
                out[0] = 0
            checks.append((ok, c))
        if not out[0]:
            for ok, c in checks:
                out += (1 if ok else 0, c[2], c[3], c[1])
            return out, None
        for _, c in checks:
            out += (1, c[4], c[5], c[1])
        if mode == _PEEK:
            return out, None
        commit = self.commit
        return out, [
            (commit(state, c[6], c[5], now, cost) if c[5] > 0 else None, c[5])
            for state, (_, c) in zip(states, checks)
        ]
