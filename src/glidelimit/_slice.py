"""A slice of one key's quota that this process holds (see :mod:`glidelimit._lease`)."""

from __future__ import annotations

import math
import struct
import time

from ._decision import Decision, RateState
from ._quota import Quota

_make = tuple.__new__  # a NamedTuple from a tuple, without its __new__'s arguments


class Slice:
    """Units of one key's quota that this process holds: unit i (from 0) may be spent from
    ``opens[i]`` until ``closes[i]`` (``time.monotonic()`` seconds).

    The server's clock is not this process's: the grant was made some time between sending
    the lease and its answer. So a unit opens that long after the answer came, and closes
    that long after the lease was sent: both err on the safe side.
    """

    __slots__ = ("closes", "granted", "keys", "last_used", "one", "opens", "quota", "received",
                 "sent", "spent", "terms")  # fmt: skip

    def __init__(self, quota: Quota, keys: tuple[bytes, ...], raw: list[int], sent: float) -> None:
        self.quota = quota
        self.keys = keys
        self.granted = raw[0]
        self.spent = 0
        self.sent = sent
        self.received = self.last_used = time.monotonic()
        # per entry: (its remaining and reset as of the grant, a, b)
        self.terms = [
            (raw[1 + 4 * i], raw[2 + 4 * i], raw[3 + 4 * i], raw[4 + 4 * i])
            for i in range(len(quota.limits.entries))
        ]
        # one rate (most limiters): what its decisions need, but the units held and the time
        self.one = None
        if len(self.terms) == 1:
            remaining, reset = self.terms[0][:2]
            limits = quota.limits
            self.one = (limits.rates[0], limits.entries[0][2], remaining, reset / 1000 + sent)
        # worked out once, so that spending a unit is a lookup (one unit's stand for all, if
        # every unit's are the same)
        terms = quota.algorithm.unit_terms
        self.opens: list[float] = []
        self.closes: list[float] = []
        for i in range(1 if quota.algorithm.same_terms else self.granted):
            latest, earliest = 0, math.inf
            for (limit, period, cap), (_, reset, _, b) in zip(quota.limits.entries, self.terms):
                opens, closes = terms(i, reset, b, limit, period, cap)
                latest, earliest = max(latest, opens), min(earliest, closes)
            self.opens.append(self.received + latest / 1000)
            self.closes.append(self.sent + earliest / 1000)

    def holder(self) -> bytes:
        """What giving back needs per entry: a and the b as take_back() checks it."""
        after = self.quota.algorithm.after_grant
        return b"".join(
            struct.pack("<dd", a, after(b, self.granted, period))
            for (_, period, _), (_, _, a, b) in zip(self.quota.limits.entries, self.terms)
        )

    def retry(self, cost: int) -> float:
        """Seconds until ``cost`` could be had again, from a lease's answer."""
        slice_retry = self.quota.algorithm.slice_retry
        return (
            max(
                slice_retry(cost, self.granted, reset, b, limit, period, cap)
                for (limit, period, cap), (_, reset, _, b) in zip(
                    self.quota.limits.entries, self.terms
                )
            )
            / 1000
        )

    def decision(self, allowed: bool, retry: float) -> Decision:
        """A decision made with a slice: what the server said at the grant, and the units
        this process still holds."""
        left = self.granted - self.spent
        one = self.one
        if one is not None:  # no lists, no search
            rate, cap, remaining, reset_at = one
            reset = reset_at - self.last_used
            if reset < 0.0:
                reset = 0.0
            remaining += left
            state = _make(RateState, (rate, cap, remaining, reset))
            return _make(Decision, (allowed, cap, remaining, reset, retry, rate, False, (state,)))
        elapsed = self.last_used - self.sent
        limits = self.quota.limits
        states = tuple(
            [
                RateState(rate, cap, remaining + left, max(reset / 1000 - elapsed, 0.0))
                for rate, (_, _, cap), (remaining, reset, _, _) in zip(
                    limits.rates, limits.entries, self.terms
                )
            ]
        )
        binding = min(states, key=_remaining)
        return Decision(
            allowed,
            binding.limit,
            binding.remaining,
            binding.reset_after,
            retry,
            binding.rate,
            False,
            states,
        )


def _remaining(state: RateState) -> int:
    return state.remaining
