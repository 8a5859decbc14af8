"""What an algorithm is: a Lua script and its Python twin, which must agree exactly.

A backend only executes an algorithm: Valkey runs the script, the memory backend runs
:meth:`Algorithm.decide` (with one rate, the same decision in one call of the decider that
:meth:`Algorithm.single` builds). Both return the same flat list of integers, which
:func:`glidelimit._limiter` turns into a Decision.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, ClassVar, NamedTuple, Protocol

from .._rate import Rate


class Mode(enum.IntEnum):
    HIT = 0
    PEEK = 1  # decide as a hit of cost 1 would, consume nothing
    RESERVE = 2  # consume now if allowed within max_wait; the result's retry is the wait
    RELEASE = 3  # concurrency only: give a slot back
    RENEW = 4  # concurrency only: extend a held slot's lease


@dataclass(frozen=True, slots=True)
class Limits:
    """A limiter's rates, as the algorithms see them (one entry per key of a decision)."""

    rates: tuple[Rate, ...]
    capacities: tuple[int, ...]
    #: the number of rates, then limit, period_ms, capacity per rate, as doubles: how a
    #: decision in a script's argument goes on after its head (see _prelude.lua)
    packed: bytes

    @classmethod
    def of(cls, rates: tuple[Rate, ...], capacities: tuple[int, ...]) -> Limits:
        numbers = [len(rates)]
        for rate, cap in zip(rates, capacities):
            numbers += (rate.limit, rate.period_ms, cap)
        return cls(rates, capacities, struct.pack(f"<{len(numbers)}d", *numbers))


class Request(NamedTuple):
    """One decision for one (limiter, key): ``keys[i]`` holds the state of ``limits.rates[i]``."""

    keys: tuple[str, ...]
    limits: Limits
    cost: int
    mode: Mode = Mode.HIT
    max_wait: int = -1  # ms; RESERVE only; -1: no limit
    now: int | None = None  # ms; tests only: None reads the backend's clock
    token: str = ""  # concurrency only: the slot holder
    timeout: float | None = None  # s; the time budget, for a backend that waits (Valkey)


class Check(NamedTuple):
    """One rate's verdict: ``*0`` as things stand, ``*1`` once this cost is consumed."""

    ok: bool
    retry: int  # ms; -1: never
    rem0: int
    reset0: int
    rem1: int
    reset1: int
    new: Any  # what commit() needs


_PEEK, _RESERVE = int(Mode.PEEK), int(Mode.RESERVE)


class Store(Protocol):
    """The memory backend's store, as a decider uses it.

    ``data`` maps a key to its entry, ``(expires at in ms, *state)``, least recently written
    first: a decider pops the key it reads, and puts an entry back (the same one if nothing
    changed) unless the key is deleted or expired. Once it has added a key that was not there
    and ``len(data) > bound``, it calls ``grown(now)``. The clock in ms is ``ticks() // scale``.
    """

    data: dict[str, tuple[Any, ...]]
    ticks: Callable[[], int]
    scale: int
    bound: int

    def grown(self, now: int) -> None: ...


class Decide(Protocol):
    """The decisions of one limiter as a plain function: the same raw result as the script's
    for ``Request(keys, limits, cost, mode, max_wait, now=now)``."""

    def __call__(
        self,
        keys: tuple[str, ...],
        cost: int,
        mode: int = 0,
        max_wait: int = -1,
        now: int | None = None,
        /,
    ) -> list[int]: ...


class Algorithm:
    """The Python twin of one decision of ``_prelude.lua`` + ``<name>.lua`` + ``_driver.lua``.

    Subclasses give ``name``, the twins of the script's ``check`` and ``commit`` (a state is a
    stored entry: ``(expires at, *state)``; commit returns the new state), and :meth:`single`:
    the same decision for one rate (what most limiters have) in one call, on the store itself.
    """

    name: ClassVar[str]
    reservable: ClassVar[bool] = False
    #: whether ``_driver.lua`` decides (per rate: check, then commit all or none)
    driven: ClassVar[bool] = True
    #: the files the script is made of, in order ({name} is the algorithm's own)
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "{name}.lua", "_driver.lua", "_main.lua")

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        raise NotImplementedError

    def commit(self, state: Any, check: Check, now: int, cost: int) -> tuple[Any, ...]:
        raise NotImplementedError

    def single(self, store: Store, limit: int, period: int, cap: int) -> Decide:
        """Decides one rate on ``store`` as :meth:`decide_rates` would with its check and
        commit, without their bookkeeping: the twin of the script with one key, in one call."""
        raise NotImplementedError

    @cached_property
    def lua(self) -> str:
        """The whole script: shared head, this algorithm's body, shared tail."""
        here = resources.files(__package__)
        return "\n".join(
            (here / part.format(name=self.name)).read_text("utf-8") for part in self.parts
        )

    def decide(
        self, states: list[Any], request: Request, now: int
    ) -> tuple[list[int], list[tuple[Any, int]] | None]:
        """The script's result, and the states to store (tuples, without their expiry) with
        their TTL in ms (a TTL of 0 deletes), or None when nothing is stored."""
        return self.decide_rates(
            states, request.limits, request.cost, request.mode, request.max_wait, now
        )

    def decide_rates(
        self, states: list[Any], limits: Limits, cost: int, mode: int, max_wait: int, now: int
    ) -> tuple[list[int], list[tuple[Any, int]] | None]:
        """Twin of ``_driver.lua``: :meth:`decide` with the request taken apart."""
        check = self.check
        checks = [
            check(state, now, cost, rate.limit, rate.period_ms, cap)
            for state, rate, cap in zip(states, limits.rates, limits.capacities)
        ]
        if mode == _RESERVE:
            oks = [c.retry >= 0 and (max_wait < 0 or c.retry <= max_wait) for c in checks]
        else:
            oks = [c.ok for c in checks]
        allowed = all(oks)
        out = [1 if allowed else 0]
        if not allowed:
            for c, ok in zip(checks, oks):
                out += (1 if ok else 0, c.rem0, c.reset0, c.retry)
            return out, None
        for c in checks:
            out += (1, c.rem1, c.reset1, c.retry)
        if mode == _PEEK:
            return out, None
        commit = self.commit
        return out, [
            (commit(state, c, now, cost) if c.reset1 > 0 else None, c.reset1)
            for state, c in zip(states, checks)
        ]
