from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Literal, ParamSpec, TypeVar

import anyio

from ._breaker import CircuitBreaker
from ._decision import Decision, RateState
from ._errors import BackendError, ConfigurationError, RateLimitExceeded
from ._rate import MAX_EXACT, Rate, to_rates
from .algorithms import ALGORITHMS, Decide, Limits, Mode, Request
from .backends import Backend, MemoryBackend, ValkeyBackend

logger = logging.getLogger("glidelimit")
P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C", bound="ClosesBackend")

FailurePolicy = Literal["allow", "deny", "raise"]
_POLICIES = ("allow", "deny", "raise")
_WARN_EVERY = 10.0  # seconds between two warnings about a failing backend
_DENIED_MAX = 10_000  # keys held by one limiter's local deny cache
# A named tuple made from a tuple of all its fields: no argument handling, about half the cost
# of calling the class (every decision makes a RateState and a Decision, every field given).
_make = tuple.__new__

_default_backend: MemoryBackend | None = None


def key_head(name: str, prefix: str) -> str:
    """How every key of a limiter named ``name`` starts, up to the caller's key.

    Every key of one (limiter, key) shares the hash tag ``{name:key}``, so that a decision is
    one script call on a cluster too. Names hold no ':', and key suffixes no '}', so no two
    (name, key, suffix) give the same key, whatever the key's text.
    """
    if not isinstance(name, str) or not name or any(c in name for c in "{}:"):
        raise ConfigurationError(
            f"limiter name must be a non-empty string without '{{', '}}' or ':', got {name!r}"
        )
    if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"prefix must be a string without braces, got {prefix!r}")
    return f"{prefix}{{{name}:"


def default_backend() -> MemoryBackend:
    """The process-wide MemoryBackend that limiters made with ``backend=None`` share."""
    global _default_backend
    if _default_backend is None:
        _default_backend = MemoryBackend()
    return _default_backend


class ClosesBackend:
    """``aclose()`` and ``async with`` for the limiters: closing one closes its backend."""

    backend: Backend

    async def aclose(self) -> None:
        """Close the backend."""
        await self.backend.aclose()

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Limiter(ClosesBackend):
    """Limits how much cost each key may spend per rate, on a shared backend.

    Args:
        rates: A :class:`Rate`, a string such as ``"100/minute"``, or a list of them; several
            rates are checked atomically in one backend call, all or nothing.
        algorithm: ``"gcra"`` (default), ``"fixed_window"``, ``"sliding_window"`` or
            ``"sliding_log"``.
        backend: Where decisions are made; None means the process-wide ``MemoryBackend()``.
        name: Distinguishes this limiter's keys from every other limiter's.
        prefix: Starts every key this limiter stores.
        burst: ``gcra`` only: the bucket's capacity (default: the rate's limit); a list gives
            one per rate.
        on_backend_error: What a decision is when the backend fails: ``"allow"`` (fail open),
            ``"deny"``, ``"raise"`` (:class:`BackendError`), or another Backend to decide on.
            Decisions made this way have ``degraded=True``.
        backend_timeout: The time budget of one decision, in seconds: past it, the failure
            policy decides (a call that timed out may still have been counted). The default
            is below glide's 250 ms request timeout, which bounds each request but not a
            decision (a reloaded script is up to three requests). None: no budget. On Valkey
            it costs next to nothing (one shared timer, not one per decision); a backend of
            your own gets a timer per decision.
        breaker: Skips a backend that keeps failing, then probes it (default:
            ``CircuitBreaker()``, one per limiter; share one among limiters of a backend).
        local_cache: Remember denials in this process: a key denied with ``retry_after=r``
            is denied for ``r`` (for that cost or more) with no round trip. Saves the backend
            from clients that hammer while denied; a reset made by another process is not
            seen until ``r`` has passed.

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    def __init__(
        self,
        rates: Rate | str | Sequence[Rate | str],
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
    ) -> None:
        self.rates = to_rates(rates)  # type: ignore[arg-type]
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"unknown algorithm {algorithm!r}; expected one of {sorted(ALGORITHMS)}"
            )
        self.algorithm = algorithm
        self._algorithm = ALGORITHMS[algorithm]
        self.backend: Backend = default_backend() if backend is None else backend
        if not isinstance(self.backend, Backend):
            raise ConfigurationError(f"backend must be a Backend, got {backend!r}")
        self._head = key_head(name, prefix)
        self.name = name
        if not (on_backend_error in _POLICIES or isinstance(on_backend_error, Backend)):
            raise ConfigurationError(
                f"on_backend_error must be one of {list(_POLICIES)} or a Backend, "
                f"got {on_backend_error!r}"
            )
        self.on_backend_error = on_backend_error
        if backend_timeout is not None and (
            isinstance(backend_timeout, bool)
            or not isinstance(backend_timeout, (int, float))
            or not backend_timeout > 0
        ):
            raise ConfigurationError(
                f"backend_timeout must be a positive number of seconds, got {backend_timeout!r}"
            )
        self.backend_timeout = backend_timeout
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ConfigurationError(f"breaker must be a CircuitBreaker, got {breaker!r}")
        self.breaker = CircuitBreaker() if breaker is None else breaker
        if not isinstance(local_cache, bool):
            raise ConfigurationError(f"local_cache must be True or False, got {local_cache!r}")
        # backend key of the first rate -> (denied until, for this cost or more, the decision)
        self._denied: dict[str, tuple[float, int, Decision]] | None = {} if local_cache else None
        self._limits = Limits.of(self.rates, self._capacities(burst))
        self._max_cost = MAX_EXACT // max(r.period_ms for r in self.rates)
        self._tails = tuple(f"}}:{algorithm}:{r.limit}:{r.period_ms}" for r in self.rates)
        self._last_warning = -math.inf
        # A MemoryBackend decides synchronously, with no Request, coroutine, breaker or budget:
        # it does no I/O, so it cannot fail (a subclass may: it takes the general path). Not
        # with the local deny cache, which _decide() keeps.
        self._local: Decide | None = (
            self.backend.decider(self._algorithm, self._limits)
            if type(self.backend) is MemoryBackend and not local_cache
            else None
        )

    def _capacities(self, burst: int | Sequence[int] | None) -> tuple[int, ...]:
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

    def keys(self, key: str) -> tuple[str, ...]:
        """The backend keys that hold ``key``'s state, one per rate."""
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty string, got {key!r}")
        head = self._head + key
        tails = self._tails
        if len(tails) == 1:
            return (head + tails[0],)
        return tuple(head + tail for tail in tails)

    def _check_cost(self, cost: int) -> None:
        if type(cost) is int and 0 <= cost <= self._max_cost:
            return
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ConfigurationError(f"cost must be a non-negative integer, got {cost!r}")
        if cost > self._max_cost:
            raise ConfigurationError(f"cost {cost} is too large (at most {self._max_cost})")

    async def hit(self, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` on ``key`` if every rate allows it; a denied hit spends nothing.

        Raises:
            ConfigurationError: If the key or the cost is not valid.
            BackendError: If the backend fails and ``on_backend_error="raise"``.
        """
        self._check_cost(cost)
        if self._local is not None:
            return self._decode(self._local(self.keys(key), cost))
        return await self._decide(self._request(self.keys(key), cost))

    async def peek(self, key: str) -> Decision:
        """The decision a hit of cost 1 would get now, without spending anything."""
        return await self._decide(self._request(self.keys(key), 1, Mode.PEEK))

    async def acquire(self, key: str, cost: int = 1, timeout: float | None = None) -> Decision:
        """Wait until ``cost`` is allowed on ``key``, then return the allowing decision.

        With ``gcra`` one call reserves the slot (first come, first served across every
        process) and sleeps until it; cancelling the wait gives the reservation back. With
        the window algorithms, it sleeps ``retry_after`` (with jitter) between tries.

        Raises:
            RateLimitExceeded: If it cannot be allowed within ``timeout`` seconds, and at once
                if it never can (``cost`` above capacity).
        """
        self._check_cost(cost)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
        ):
            raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")
        keys = self.keys(key)
        if self._algorithm.reservable:
            forever = timeout is None or math.isinf(timeout)
            max_wait = -1 if forever else int(timeout * 1000)  # type: ignore[operator]
            request = self._request(keys, cost, Mode.RESERVE, max_wait)
            # Shielded: once the server has made a reservation, a cancellation must not lose
            # track of it. A cancellation that came meanwhile is raised by the sleep below.
            with anyio.CancelScope(shield=True):
                decision = await self._decide(request)
            if not decision.allowed:
                raise RateLimitExceeded(decision)
            try:
                await anyio.sleep(decision.retry_after)
            except anyio.get_cancelled_exc_class():
                if not decision.degraded:  # a degraded decision reserved nothing here
                    with anyio.CancelScope(shield=True):
                        await self._decide(self._request(keys, -cost))
                raise
            return decision._replace(
                retry_after=0.0,
                reset_after=max(decision.reset_after - decision.retry_after, 0.0),
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            decision = await self._decide(self._request(keys, cost))
            if decision.allowed:
                return decision
            if math.isinf(decision.retry_after):
                raise RateLimitExceeded(decision)
            # jitter, so that waiters denied together do not all come back together
            wait = decision.retry_after * (1 + 0.1 * random.random())
            if deadline is not None:
                left = deadline - time.monotonic()
                if decision.retry_after > left:
                    raise RateLimitExceeded(decision)
                wait = min(wait, left)
            await anyio.sleep(wait)

    def throttle(
        self,
        key: str | Callable[..., str] | None = None,
        *,
        cost: int | Callable[..., int] = 1,
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

    async def reset(self, key: str) -> None:
        """Forget ``key``'s usage on every rate (and its denial in this process's cache)."""
        keys = self.keys(key)
        if self._denied is not None:
            self._denied.pop(keys[0], None)
        await self.backend.delete(keys)

    async def _decide(self, request: Request) -> Decision:
        if self._local is not None:
            return self._decode(
                self._local(request.keys, request.cost, request.mode, request.max_wait)
            )
        cache = self._denied if request.mode != Mode.RESERVE else None
        if cache is not None:
            cached = self._cached_denial(cache, request)
            if cached is not None:
                return cached
        breaker = self.breaker
        if not breaker.attempt():
            error = BackendError(
                f"backend skipped for now after {breaker.failures} failures in a row; "
                f"the last: {breaker.last_error}"
            )
            error.__cause__ = breaker.last_error
            return await self._degraded(request, error)
        try:
            raw = await self._ask(self.backend, request)
        except BackendError as exc:
            breaker.failed(exc)
            return await self._degraded(request, exc)
        breaker.succeeded()
        decision = self._decode(raw)
        if cache is not None and not decision.allowed and decision.retry_after < math.inf:
            if len(cache) >= _DENIED_MAX:
                del cache[next(iter(cache))]  # the oldest: forgetting one only costs a trip
            until = time.monotonic() + decision.retry_after
            cache[request.keys[0]] = (until, request.cost, decision)
        return decision

    def _request(
        self, keys: tuple[str, ...], cost: int, mode: Mode = Mode.HIT, max_wait: int = -1
    ) -> Request:
        return Request(keys, self._limits, cost, mode, max_wait, timeout=self.backend_timeout)

    def _ask(self, backend: Backend, request: Request) -> Awaitable[list[int]]:
        """``backend``'s answer to ``request``, within the time budget."""
        if self.backend_timeout is None or isinstance(backend, (MemoryBackend, ValkeyBackend)):
            # Memory never waits, so there is nothing to time; Valkey times its own calls
            # (request.timeout), one timer for many. The backend's own coroutine: no extra
            # frame on every decision.
            return backend.execute(self._algorithm, request)
        return self._timed(backend, request)

    async def _timed(self, backend: Backend, request: Request) -> list[int]:
        budget = self.backend_timeout
        try:
            with anyio.fail_after(budget):
                return await backend.execute(self._algorithm, request)
        except TimeoutError as exc:
            raise BackendError(
                f"no answer within the {budget:g}s budget (the call may still have been counted)"
            ) from exc

    @staticmethod
    def _cached_denial(
        cache: dict[str, tuple[float, int, Decision]], request: Request
    ) -> Decision | None:
        entry = cache.get(request.keys[0])
        if entry is None:
            return None
        until, cost, decision = entry
        left = until - time.monotonic()
        if left <= 0:
            del cache[request.keys[0]]
            return None
        if request.cost < cost:  # a smaller cost may be allowed sooner: ask
            return None
        passed = decision.retry_after - left
        return decision._replace(
            retry_after=left,
            reset_after=max(decision.reset_after - passed, 0.0),
            rates=tuple(
                s._replace(reset_after=max(s.reset_after - passed, 0.0)) for s in decision.rates
            ),
        )

    async def _degraded(self, request: Request, exc: BackendError) -> Decision:
        policy = self.on_backend_error
        if policy == "raise":
            raise exc
        if not isinstance(policy, str):
            try:
                decision = self._decode(await self._ask(policy, request), degraded=True)
            except BackendError as fallback_exc:
                exc = BackendError(f"{exc}; the fallback failed too: {fallback_exc}")
                policy = "allow"
            else:
                self._warn(policy, exc)
                return decision
        self._warn(policy, exc)
        rate, cap = self.rates[0], self._limits.capacities[0]
        if policy == "allow":
            left = max(cap - request.cost, 0)
            state = RateState(rate, cap, left, 0.0)
            return Decision(True, cap, left, 0.0, 0.0, rate, True, (state,))
        state = RateState(rate, cap, 0, rate.period)
        return Decision(False, cap, 0, rate.period, rate.period, rate, True, (state,))

    def _warn(self, policy: object, exc: BackendError) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "limiter %r decides without its backend (%s): %s", self.name, policy, exc
            )

    def _decode(self, raw: list[int], degraded: bool = False) -> Decision:
        allowed = raw[0] == 1
        limits = self._limits
        if len(limits.rates) == 1:  # the common case, without the search for the binding rate
            _, remaining, reset, wait = raw[1:5]
            rate, cap = limits.rates[0], limits.capacities[0]
            state = _make(RateState, (rate, cap, remaining, reset / 1000))
            retry = math.inf if wait < 0 else wait / 1000
            return _make(
                Decision, (allowed, cap, remaining, reset / 1000, retry, rate, degraded, (state,))
            )
        states = []
        retry = 0.0
        best, best_key = 0, (math.inf, 0.0)
        for i, (rate, cap) in enumerate(zip(limits.rates, limits.capacities)):
            ok, remaining, reset, wait = raw[1 + 4 * i : 5 + 4 * i]
            states.append(RateState(rate, cap, remaining, reset / 1000))
            wait_ms = math.inf if wait < 0 else float(wait)
            retry = max(retry, wait_ms)
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
            retry / 1000,
            binding.rate,
            degraded,
            tuple(states),
        )
