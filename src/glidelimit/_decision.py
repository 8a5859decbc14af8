from __future__ import annotations

import math
from typing import NamedTuple

from ._rate import Rate
from .algorithms import Limits

# A named tuple made from a tuple of all its fields: no argument handling, about half the cost
# of calling the class (every decision makes a RateState and a Decision).
_make = tuple.__new__


class RateState(NamedTuple):
    """Where one of a limiter's rates stands for a key, as of a decision (immutable).

    Attributes:
        rate: The rate.
        limit: Its capacity (its limit; for ``gcra``, its burst).
        remaining: How many more units of cost it allows right now.
        reset_after: Seconds until it is back to full capacity.
    """

    rate: Rate
    limit: int
    remaining: int
    reset_after: float


class Decision(NamedTuple):
    """The outcome of one rate-limit decision (immutable).

    ``bool(decision)`` is ``decision.allowed``, so ``if await limiter.hit(key):`` reads as it
    should.

    >>> decision = await limiter.hit("user:42")
    >>> if not decision:
    ...     print(f"retry in {decision.retry_after:.1f}s")

    Attributes:
        allowed: Whether the request may proceed (its cost was consumed).
        limit: Capacity of the binding rate (its limit; for ``gcra``, its burst); for a
            concurrency limiter, its slots.
        remaining: How many more units of cost the binding rate allows right now.
        reset_after: Seconds until the key is back to full capacity on the binding rate.
        retry_after: 0.0 when allowed; otherwise seconds until this cost would be allowed,
            ``math.inf`` when it never can (the cost is above capacity).
        rate: The binding rate: the one that denied, or the one with the least room left
            (None for a concurrency limiter's decisions).
        degraded: True when decided without the backend, by the failure policy.
        rates: Every rate's state, in the limiter's order (for headers that list them all).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    rate: Rate | None
    degraded: bool = False
    rates: tuple[RateState, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


def decode(raw: list[int], limits: Limits, degraded: bool = False) -> Decision:
    """The Decision that an algorithm's raw result stands for (see ``algorithms/_driver.lua``):
    ``[allowed, then per entry: ok, remaining, reset_after_ms, retry_after_ms (-1: never)]``."""
    allowed = raw[0] == 1
    rates = limits.rates
    if len(raw) == 5:  # one entry, the common case: no search for the binding rate
        _, remaining, reset, wait = raw[1:5]
        cap = limits.entries[0][2]
        retry = math.inf if wait < 0 else wait / 1000
        if not rates:  # a concurrency limiter's
            return _make(
                Decision, (allowed, cap, remaining, reset / 1000, retry, None, degraded, ())
            )
        rate = rates[0]
        state = _make(RateState, (rate, cap, remaining, reset / 1000))
        return _make(
            Decision, (allowed, cap, remaining, reset / 1000, retry, rate, degraded, (state,))
        )
    states = []
    retry_ms = 0.0
    best, best_key = 0, (math.inf, 0.0)
    for i, (rate, (_, _, cap)) in enumerate(zip(rates, limits.entries)):
        ok, remaining, reset, wait = raw[1 + 4 * i : 5 + 4 * i]
        states.append(RateState(rate, cap, remaining, reset / 1000))
        wait_ms = math.inf if wait < 0 else float(wait)
        retry_ms = max(retry_ms, wait_ms)
        # binding: the denying rate that waits longest, or else the one with least room
        key = (float(ok), -wait_ms) if not allowed else (float(remaining), -float(reset))
        if key < best_key:
            best, best_key = i, key
    binding = states[best]
    return Decision(
        allowed,
        binding.limit,
        binding.remaining,
        binding.reset_after,
        retry_ms / 1000,
        binding.rate,
        degraded,
        tuple(states),
    )


def degraded(limits: Limits, cost: int, allow: bool) -> list[int]:
    """The raw result of a decision made without the backend: every entry allows ``cost``
    (full capacity), or every entry denies it for a period."""
    if allow:
        out = [1]
        for _, _, cap in limits.entries:
            out += (1, max(cap - cost, 0), 0, 0)
    else:
        out = [0]
        for _, period, _ in limits.entries:
            out += (0, 0, period, period)
    return out
