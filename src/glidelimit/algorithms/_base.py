"""What an algorithm is: a Lua script and its Python twin, which must agree exactly.

A backend only executes an algorithm: Valkey runs the script, the memory backend runs
:meth:`Algorithm.decide`. Both return the same flat list of integers, which
:func:`glidelimit._limiter` turns into a Decision.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, ClassVar, NamedTuple

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
    #: script's argument for one decision ends (see _prelude.lua)
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


class Algorithm:
    """The Python twin of one decision of ``_prelude.lua`` + ``<name>.lua`` + ``_driver.lua``.

    Subclasses give ``name`` and the twins of the script's ``check`` and ``commit``.
    """

    name: ClassVar[str]
    reservable: ClassVar[bool] = False
    #: the files the script is made of, in order ({name} is the algorithm's own)
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "{name}.lua", "_driver.lua", "_main.lua")

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        raise NotImplementedError

    def commit(self, state: Any, check: Check, now: int, cost: int) -> Any:
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
        """Twin of ``_driver.lua``: the script's result, and the states to store with their TTL
        in ms (a TTL of 0 deletes), or None when nothing is stored."""
        limits, cost, mode = request.limits, request.cost, request.mode
        checks = []
        allowed = True
        for state, rate, cap in zip(states, limits.rates, limits.capacities):
            c = self.check(state, now, cost, rate.limit, rate.period_ms, cap)
            if mode == Mode.RESERVE:
                wait = request.max_wait
                c = c._replace(ok=c.retry >= 0 and (wait < 0 or c.retry <= wait))
            checks.append(c)
            allowed = allowed and c.ok
        out = [1 if allowed else 0]
        for c in checks:
            if allowed:
                out += [1 if c.ok else 0, c.rem1, c.reset1, c.retry]
            else:
                out += [1 if c.ok else 0, c.rem0, c.reset0, c.retry]
        if not allowed or mode == Mode.PEEK:
            return out, None
        writes = [
            (self.commit(state, c, now, cost) if c.reset1 > 0 else None, c.reset1)
            for state, c in zip(states, checks)
        ]
        return out, writes
