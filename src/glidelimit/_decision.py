from __future__ import annotations

from typing import NamedTuple

from ._rate import Rate


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
    """The outcome of one rate-limit decision (immutable; a named tuple, the cheapest to make).

    Attributes:
        allowed: Whether the request may proceed (its cost was consumed).
        limit: Capacity of the binding rate (its limit; for ``gcra``, its burst).
        remaining: How many more units of cost the binding rate allows right now.
        reset_after: Seconds until the key is back to full capacity on the binding rate.
        retry_after: 0.0 when allowed; otherwise seconds until this cost would be allowed,
            ``math.inf`` when it never can (the cost is above capacity).
        rate: The binding rate: the one that denied, or the one with the least room left.
        degraded: True when decided without the backend, by the failure policy.
        rates: Every rate's state, in the limiter's order (for headers that list them all).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    rate: Rate
    degraded: bool = False
    rates: tuple[RateState, ...] = ()
