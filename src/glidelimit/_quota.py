"""A limiter's rates bound to a backend, and where their state lives: everything about a
decision but its key and its cost."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import NoReturn

from ._decision import Decision, RateState
from ._errors import ConfigurationError
from ._rate import MAX_EXACT, Rate
from ._tiers import Tiers
from .algorithms import ALGORITHMS, Algorithm, Limits
from .backends import Backend, Executor

# A named tuple made from a tuple of all its fields: no argument handling, about half the cost
# of calling the class (every decision makes a RateState and a Decision).
_make = tuple.__new__


def key_head(name: str, prefix: str) -> bytes:
    """How every key of a limiter named ``name`` starts, up to the caller's key.

    Every key of one (limiter, key) shares the hash tag ``{name:key}``, so that a decision is
    one script call on a cluster too. Names hold no ':', and key suffixes start at the last
    '}', so no two (name, key, suffix) give the same key, whatever the key's text.
    """
    if not isinstance(name, str) or not name or any(c in name for c in "{}:"):
        raise ConfigurationError(
            f"limiter name must be a non-empty string without '{{', '}}' or ':', got {name!r}"
        )
    if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"prefix must be a string without braces, got {prefix!r}")
    return f"{prefix}{{{name}:".encode()


#: Keys longer than this (encoded) are stored as their SHA-256: a client that chooses its key
#: (a header, say) cannot make each of them take kilobytes.
LONGEST_KEY = 512


def encode_key(key: str) -> bytes:
    """A caller's key as stored, the same on every backend. Any text is a key: a lone
    surrogate (from a header of bytes that are not UTF-8, say) is encoded as it is, so it
    is limited like any other key, never refused or confused with another. A key longer
    than :data:`LONGEST_KEY` is stored as ``0xff`` and its SHA-256, which no text encodes to
    (0xff is never a byte of UTF-8)."""
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"key must be a non-empty string, got {key!r}")
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) > LONGEST_KEY:
        return b"\xff" + hashlib.sha256(encoded).digest()
    return encoded


class Quota:
    """One limiter's rates (of one tier), on its backend.

    Args:
        algorithm: What decides.
        limits: What it decides against.
        backend: Where.
        head: How the limiter's keys start (:func:`key_head`).
        tails: How each entry's key ends, after the caller's key.
        label: What HTTP headers call it: the limiter's name, or its tier's.
    """

    __slots__ = ("__weakref__", "algorithm", "backend", "execute", "head", "label", "limits",
                 "max_cost", "tails")  # fmt: skip

    def __init__(
        self,
        algorithm: Algorithm,
        limits: Limits,
        backend: Backend,
        head: bytes,
        tails: tuple[bytes, ...],
        label: str,
    ) -> None:
        self.algorithm: Algorithm = algorithm
        self.limits: Limits = limits
        self.backend: Backend = backend
        self.head: bytes = head
        self.tails: tuple[bytes, ...] = tails
        self.label: str = label
        self.execute: Executor = backend.executor(algorithm, limits)
        self.max_cost: int = MAX_EXACT // max(period for _, period, _ in limits.entries)

    def keys(self, key: str) -> tuple[bytes, ...]:
        """The stored keys that hold ``key``'s state, one per entry."""
        if type(key) is not str or not key or len(key) > LONGEST_KEY // 4:
            base = self.head + encode_key(key)  # a bad key raises, naming it
        else:
            base = self.head + key.encode("utf-8", "surrogatepass")
        tails = self.tails
        if len(tails) == 1:
            return (base + tails[0],)
        return tuple(base + tail for tail in tails)

    def check_cost(self, cost: int) -> None:
        """Raise ConfigurationError unless ``cost`` is a valid cost for these limits."""
        if type(cost) is int and 0 <= cost <= self.max_cost:
            return
        self._bad_cost(cost)

    def _bad_cost(self, cost: object) -> NoReturn:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ConfigurationError(f"cost must be a non-negative integer, got {cost!r}")
        raise ConfigurationError(f"cost {cost} is too large (at most {self.max_cost})")


class Quotas:
    """A limiter's quotas: its one, or with :class:`Tiers` one per tier, made when the tier is
    first used and again when its rates change.

    Args:
        rates: The rates (with tiers: the default tier's).
        tiers: The tiers, or None.
        algorithm: The algorithm's name (checked by the caller).
        backend: Where decisions are made.
        head: How the limiter's keys start (:func:`key_head`).
        name: The limiter's name: what HTTP headers call a quota without tiers.
        burst: ``gcra`` only, without tiers: each rate's capacity, or one for all.

    Raises:
        ConfigurationError: A burst that is not one integer >= 1 per rate, or that is given
            with tiers or for another algorithm.
    """

    def __init__(
        self,
        rates: tuple[Rate, ...],
        tiers: Tiers | None,
        algorithm: str,
        backend: Backend,
        head: bytes,
        name: str,
        burst: int | Sequence[int] | None,
    ) -> None:
        self.rates = rates
        self.tiers = tiers
        self.algorithm = algorithm
        self.backend = backend
        self.head = head
        self.name = name
        if tiers is not None and burst is not None:
            raise ConfigurationError("burst cannot be given with tiers: each tier's is its limit")
        #: Each rate's capacity: its limit, or for ``gcra`` its burst.
        self.capacities = self._checked_bursts(burst)
        #: The one quota of a limiter without tiers.
        self.fixed: Quota | None = None if tiers is not None else self._make(None)
        self._tiered: dict[str, Quota] = {}

    def get(self, tier: str | None) -> Quota:
        """The quota of ``tier`` (None: the default tier's, or the one quota without tiers).

        Raises:
            ConfigurationError: If ``tier`` is not one of the tiers.
        """
        if self.tiers is None:
            if tier is not None:
                raise ConfigurationError(f"limiter {self.name!r} has no tiers, got tier={tier!r}")
            assert self.fixed is not None
            return self.fixed
        name = self.tiers.default if tier is None else tier
        rates = self.tiers[name]
        quota = self._tiered.get(name)
        if quota is None or quota.limits.rates is not rates:  # new, or its rates changed
            quota = self._tiered[name] = self._make(name)
        return quota

    def _make(self, tier: str | None) -> Quota:
        algorithm = self.algorithm
        if tier is None:
            rates, capacities, label, part = self.rates, self.capacities, self.name, ""
        else:
            assert self.tiers is not None
            rates, label, part = self.tiers[tier], tier, f"{tier}:"
            capacities = tuple(r.limit for r in rates)
        tails = tuple(f"}}:{part}{algorithm}:{r.limit}:{r.period_ms}".encode() for r in rates)
        limits = Limits.of(rates, capacities)
        return Quota(ALGORITHMS[algorithm], limits, self.backend, self.head, tails, label)

    def _checked_bursts(self, burst: int | Sequence[int] | None) -> tuple[int, ...]:
        if burst is None:
            return tuple(r.limit for r in self.rates)
        if self.algorithm != "gcra":
            raise ConfigurationError(
                f"burst applies to the gcra algorithm only, not {self.algorithm!r}"
            )
        bursts = [burst] if isinstance(burst, int) else list(burst)
        if len(bursts) != len(self.rates):
            raise ConfigurationError(
                f"burst must be one integer per rate: {len(self.rates)} rate(s), got {burst!r}"
            )
        for b, rate in zip(bursts, self.rates):
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise ConfigurationError(f"burst must be an integer >= 1, got {b!r}")
            if b * rate.period_ms > MAX_EXACT:
                raise ConfigurationError(f"burst {b} is too large for rate {rate}")
        return tuple(bursts)


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
