from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, ParamSpec, TypeAlias, TypeVar

from ._acquire import acquire
from ._breaker import CircuitBreaker
from ._decision import Decision, RateLimitExceeded
from ._errors import ConfigurationError
from ._guard import FailurePolicy, Guard
from ._lease import Lease, Leases
from ._quota import Quota, Quotas, decode, key_head
from ._rate import Rate, to_rates
from ._tiers import Tiers
from .algorithms import ALGORITHMS, Mode
from .backends import Backend, MemoryBackend

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")
#: A function of a throttled call's arguments (one, two or three of them; a lambda's
#: parameters are then typed for type checkers in strict mode).
ArgsFunc: TypeAlias = "Callable[[Any], V] | Callable[[Any, Any], V] | Callable[[Any, Any, Any], V]"
_HIT, _PEEK = int(Mode.HIT), int(Mode.PEEK)

_default_backend: MemoryBackend | None = None


def default_backend() -> MemoryBackend:
    """The process-wide MemoryBackend that limiters made with ``backend=None`` share. No
    limiter closes it."""
    global _default_backend
    if _default_backend is None:
        _default_backend = MemoryBackend()
    return _default_backend


def checked_backend(backend: Backend | None) -> Backend:
    """``backend``, or the process-wide default for None."""
    if backend is None:
        return default_backend()
    if not isinstance(backend, Backend):
        raise ConfigurationError(f"backend must be a Backend, got {backend!r}")
    return backend


class Limiter:
    """Limits how much cost each key may spend per rate, on a shared backend.

    >>> limiter = Limiter("100/minute", name="api")
    >>> decision = await limiter.hit("user:42")

    Args:
        rates: A :class:`Rate`, a string such as ``"100/minute"``, or a list of them; several
            rates are checked atomically in one backend call, all or nothing. Or
            :class:`Tiers`: rates chosen per decision (``hit(key, tier="pro")``) or per key.
        algorithm: ``"gcra"`` (default), ``"fixed_window"``, ``"sliding_window"`` or
            ``"sliding_log"``.
        backend: Where decisions are made; None means the process-wide ``MemoryBackend()``.
            The limiter never closes it: its maker does.
        name: Distinguishes this limiter's keys from every other limiter's; limiters with
            the same name (and prefix) on one backend share their counters.
        prefix: Starts every key this limiter stores.
        burst: ``gcra`` only: the bucket's capacity (default: the rate's limit); a list gives
            one per rate (not with tiers).
        on_backend_error: What a decision is when the backend is unavailable (unreachable,
            timed out, refusing writes): ``"allow"`` (fail open), ``"deny"``, ``"raise"``
            (:class:`BackendError`), or another Backend to decide on. Decisions made this way
            have ``degraded=True``. Any other error (a bad key or cost, a closed backend) is
            raised whatever the policy.
        backend_timeout: The time budget of one decision on a backend that waits, in
            seconds: past it, the failure policy decides (a call that timed out may still
            have been counted). The default is below glide's 250 ms request timeout, which
            bounds each request but not a decision (a reloaded script is up to three
            requests). None: no budget.
        breaker: Skips a backend that keeps failing, then probes it (default:
            ``CircuitBreaker()``, one per limiter; share one among limiters of a backend).
        local_cache: Remember denials in this process: a key denied with ``retry_after=r``
            is denied for ``r`` (for that cost or more) with no round trip. Saves the backend
            from clients that hammer while denied; a reset made by another process is not
            seen until ``r`` has passed.
        lease: Let this process take slices of its hot keys' quota and spend them by itself,
            one round trip for many decisions: True, or a :class:`Lease` that says how.
            ``gcra`` and ``fixed_window`` only. Never admits more than the algorithm allows
            (see :mod:`the leases guide <glidelimit>`); a key denied with a slice's answer is
            denied here until it frees, as with ``local_cache``.

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    def __init__(
        self,
        rates: Rate | str | Sequence[Rate | str] | Tiers,
        *,
        algorithm: str = "gcra",
        backend: Backend | None = None,
        name: str = "default",
        prefix: str = "glidelimit:",
        burst: int | Sequence[int] | None = None,
        on_backend_error: FailurePolicy | Backend = "allow",
        backend_timeout: float | None = 0.2,
        breaker: CircuitBreaker | None = None,
        local_cache: bool = False,
        lease: Lease | bool = False,
    ) -> None:
        #: The rates' tiers, when they are chosen per decision.
        self.tiers: Tiers | None = None
        if isinstance(rates, Tiers):
            self.tiers = rates
            #: The rates (with tiers: the default tier's).
            self.rates: tuple[Rate, ...] = rates[rates.default]
        else:
            self.rates = to_rates(rates)
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"unknown algorithm {algorithm!r}; expected one of {sorted(ALGORITHMS)}"
            )
        self.algorithm = algorithm
        self.backend: Backend = checked_backend(backend)
        self.name = name
        self._guard = Guard(
            name, self.backend, on_backend_error, backend_timeout, breaker, local_cache
        )
        head = key_head(name, prefix)
        self._quotas = Quotas(self.rates, self.tiers, algorithm, self.backend, head, name, burst)
        self._quota = self._quotas.fixed  # None with tiers: each decision finds its tier's
        if lease is True:
            lease = Lease()
        if lease is not False and not isinstance(lease, Lease):
            raise ConfigurationError(f"lease must be True, False or a Lease, got {lease!r}")
        if lease and algorithm not in ("gcra", "fixed_window"):
            raise ConfigurationError(f"leases work with gcra and fixed_window, not {algorithm!r}")
        #: How this limiter leases slices of its hot keys (None: it does not).
        self.lease: Lease | None = lease or None
        self._leases = Leases(lease, self._guard) if lease else None

    def quota(self, tier: str | None = None) -> Quota:
        """The rates that decide for ``tier`` (or, without tiers, for every key), bound to
        the backend: what a decision needs besides its key and its cost.

        Raises:
            ConfigurationError: If ``tier`` is not one of the limiter's tiers.
        """
        return self._quotas.get(tier)

    async def tier_of(self, key: str, tier: str | None = None) -> str | None:
        """The tier that decides ``key``: ``tier`` if given, else the tiers' lookup's answer,
        else the default tier (None for a limiter without tiers)."""
        if self.tiers is None or tier is not None:
            return tier
        return await self.tiers.tier_of(key)

    async def _quota_of(self, key: str, tier: str | None) -> Quota:
        return self.quota(await self.tier_of(key, tier))

    def __repr__(self) -> str:
        rates = [str(rate) for rate in self.rates]
        shown: object = rates[0] if len(rates) == 1 else rates
        if self.tiers is not None:
            shown = self.tiers
        return (
            f"Limiter({shown!r}, algorithm={self.algorithm!r}, name={self.name!r}, "
            f"backend={self.backend!r})"
        )

    @property
    def on_backend_error(self) -> FailurePolicy | Backend:
        """The failure policy."""
        return self._guard.policy

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker."""
        return self._guard.breaker

    @property
    def capacities(self) -> tuple[int, ...]:
        """Each rate's capacity: its limit, or for ``gcra`` its burst (with tiers: the
        default tier's)."""
        return self._quotas.capacities

    def keys(self, key: str, *, tier: str | None = None) -> tuple[bytes, ...]:
        """The backend keys that hold ``key``'s state, one per rate (of ``tier``).

        Raises:
            ConfigurationError: If ``key`` is not a non-empty string, or the tier unknown.
        """
        return self.quota(tier).keys(key)

    async def hit(self, key: str, cost: int = 1, *, tier: str | None = None) -> Decision:
        """Spend ``cost`` on ``key`` if every rate allows it; a denied hit spends nothing.

        Args:
            key: Whose usage (any non-empty string: a user, an IP, an API key).
            cost: Units to spend.
            tier: With :class:`Tiers`, the tier whose rates decide (default: the tiers'
                lookup, or their default tier).

        Raises:
            ConfigurationError: If the key, the cost or the tier is not valid.
            BackendError: If the backend is unavailable and ``on_backend_error="raise"``.
        """
        meter = self._guard.meter
        started = perf_counter() if meter is not None else 0.0
        quota = self._quota
        if quota is None or tier is not None:
            quota = await self._quota_of(key, tier)
        keys = quota.keys(key)
        if type(cost) is not int or not 0 <= cost <= quota.max_cost:
            quota.check_cost(cost)
        leases = self._leases
        if leases is not None and cost:
            found = leases.spend(quota, keys[0], cost)  # decided here, with this process's slice
            decision = found if found is not None else await leases.hit(quota, keys, cost)
        else:
            answer = quota.execute(keys, cost, _HIT, -1, b"")
            if isinstance(answer, list):
                decision = decode(answer, quota.limits)
            else:
                decision = await self._guard.settle(quota, answer, keys, cost, _HIT)
        if meter is not None:
            meter.decision(decision, started)
        return decision

    async def peek(self, key: str, cost: int = 1, *, tier: str | None = None) -> Decision:
        """The decision a hit of ``cost`` would get now, without spending anything.

        ``peek(key, cost=0)`` tells where ``key`` stands: ``remaining`` is what is left now.
        """
        quota = self._quota
        if quota is None or tier is not None:
            quota = await self._quota_of(key, tier)
        keys = quota.keys(key)
        quota.check_cost(cost)
        return await self._guard.decide(quota, keys, cost, _PEEK)

    async def acquire(
        self, key: str, cost: int = 1, timeout: float | None = None, *, tier: str | None = None
    ) -> Decision:
        """Wait until ``cost`` is allowed on ``key``, then return the allowing decision.

        With ``gcra`` one call reserves the slot (first come, first served across every
        process) and sleeps until it; a cancelled wait gives the reservation back. With the
        window algorithms, it sleeps ``retry_after`` (with jitter) between tries.

        Raises:
            RateLimitExceeded: If it cannot be allowed within ``timeout`` seconds, and at once
                if it never can (``cost`` above capacity).
        """
        quota = await self._quota_of(key, tier)
        keys = quota.keys(key)
        quota.check_cost(cost)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
        ):
            raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")
        meter = self._guard.meter
        started = perf_counter()
        decision = await acquire(self._guard, quota, keys, cost, timeout)
        if meter is not None:
            meter.waited(perf_counter() - started)
        return decision

    def throttle(
        self,
        key: str | ArgsFunc[str] | None = None,
        *,
        cost: int | ArgsFunc[int] = 1,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
        """Limit calls of an async function.

        >>> @limiter.throttle(key="payments-api")
        ... async def charge(order): ...

        Args:
            key: The key every call spends on, or a function of the call's arguments that
                gives it; default: the function's qualified name.
            cost: What each call costs, or a function of the call's arguments that says
                (tokens of an LLM prompt, say).
            wait: True waits for the call's turn (:meth:`acquire`); False raises at once.
            timeout: With ``wait``, the longest wait in seconds.

        Raises:
            RateLimitExceeded: From a call that cannot be allowed (in time).
        """

        def decorate(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
            default_key = f"{func.__module__}.{func.__qualname__}"

            @functools.wraps(func)
            async def throttled(*args: P.args, **kwargs: P.kwargs) -> T:
                k = key(*args, **kwargs) if callable(key) else key or default_key
                c = cost(*args, **kwargs) if callable(cost) else cost
                if wait:
                    await self.acquire(k, c, timeout)
                else:
                    decision = await self.hit(k, c)
                    if not decision.allowed:
                        raise RateLimitExceeded(decision)
                return await func(*args, **kwargs)

            return throttled

        return decorate

    async def reset(self, key: str, *, tier: str | None = None) -> None:
        """Forget ``key``'s usage on every rate (and its denial in this process's cache); with
        tiers, in ``tier``, or in every tier if none is given."""
        if self.tiers is not None and tier is None:
            quotas = [self.quota(name) for name in self.tiers]
        else:
            quotas = [self.quota(tier)]
        for quota in quotas:
            keys = quota.keys(key)
            self._guard.forget(keys[0])
            if self._leases is not None:
                self._leases.forget(keys[0])
            await self.backend.delete(keys)

    async def aclose(self) -> None:
        """Give back the unused units of the slices this limiter holds. Its backend is not
        closed: it belongs to whoever made it, and other limiters may use it."""
        if self._leases is not None:
            await self._leases.aclose()

    async def __aenter__(self) -> Limiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
