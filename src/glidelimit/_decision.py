from __future__ import annotations

import math
from typing import NamedTuple

from ._errors import GlideLimitError
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


class RateLimitExceeded(GlideLimitError):
    """A request could not be allowed (in time).

    Attributes:
        decision: The denying decision; ``decision.retry_after`` says when to try again
            (``math.inf`` when the cost can never be allowed).
    """

    def __init__(self, decision: Decision, message: str | None = None) -> None:
        self.decision = decision
        if message is None:
            if decision.retry_after == math.inf:
                message = f"the cost is above what rate limit {decision.rate} ever allows"
            else:
                message = (
                    f"rate limit {decision.rate} exceeded: retry after {decision.retry_after:.3f}s"
                )
        super().__init__(message)
