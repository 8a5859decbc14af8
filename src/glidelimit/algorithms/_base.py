"""What an algorithm is: a Lua script and its Python twin, which must agree exactly.

A backend only executes an algorithm: Valkey runs the script, the memory backend runs
:meth:`Algorithm.decide` (or, with one rate, the same check and commit in the decider that
:meth:`MemoryBackend.decider` builds). Both return the same flat list of integers, which
:func:`glidelimit._limiter` turns into a Decision.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, ClassVar, NamedTuple, Protocol, TypeAlias

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


#: One rate's verdict, as ``check()`` gives it: ``(ok, retry, rem0, reset0, rem1, reset1,
#: new)``: allowed or not, ms until this cost could be (-1: never), the remaining and the reset
#: in ms as things stand (``*0``) and once this cost is consumed (``*1``), and what
#: ``commit()`` needs. A plain tuple: one is made for every decision, and a named tuple costs
#: ten times as much to make.
Check: TypeAlias = tuple[bool, int, int, int, int, int, Any]

_PEEK, _RESERVE = int(Mode.PEEK), int(Mode.RESERVE)


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

    Subclasses give ``name`` and the twins of the script's ``check`` and ``commit`` (a state
    is a stored entry: ``(expires at, *state)``; commit returns the new state).
    """

    name: ClassVar[str]
    reservable: ClassVar[bool] = False
    #: whether ``_driver.lua`` decides (per rate: check, then commit all or none)
    driven: ClassVar[bool] = True
    #: the files the script is made of, in order ({name} is the algorithm's own)
    parts: ClassVar[tuple[str, ...]] = ("_prelude.lua", "{name}.lua", "_driver.lua", "_main.lua")

    def check(self, state: Any, now: int, cost: int, limit: int, period: int, cap: int) -> Check:
        raise NotImplementedError

    def commit(self, state: Any, new: Any, reset: int, now: int, cost: int) -> tuple[Any, ...]:
        """The state to store once ``cost`` is consumed: ``new`` is the check's last item,
        ``reset`` its ``reset1``."""
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
            oks = [c[1] >= 0 and (max_wait < 0 or c[1] <= max_wait) for c in checks]
        else:
            oks = [c[0] for c in checks]
        allowed = all(oks)
        out = [1 if allowed else 0]
        if not allowed:
            for (_, retry, rem0, reset0, _, _, _), ok in zip(checks, oks):
                out += (1 if ok else 0, rem0, reset0, retry)
            return out, None
        for _, retry, _, _, rem1, reset1, _ in checks:
            out += (1, rem1, reset1, retry)
        if mode == _PEEK:
            return out, None
        commit = self.commit
        return out, [
            (commit(state, c[6], c[5], now, cost) if c[5] > 0 else None, c[5])
            for state, c in zip(states, checks)
        ]
