"""What stands between a limiter and a backend that waits (and so may fail): the time budget,
the circuit breaker, the failure policy and its warnings, and the local deny cache. Every
limiter has one; a backend that answers at once (memory) needs none of it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio

from ._breaker import CircuitBreaker
from ._budget import Budget
from ._decision import Decision
from ._errors import BackendError, ConfigurationError
from ._metrics import Meter, meter_for
from ._quota import Quota, decode, degraded
from ._runtime import spawn
from .algorithms import Mode
from .backends import Backend, Executor

logger = logging.getLogger("glidelimit")

FailurePolicy = Literal["allow", "deny", "raise"]
_POLICIES = ("allow", "deny", "raise")
_WARN_EVERY = 10.0  # seconds between two warnings about a failing backend
_DENIED_MAX = 10_000  # keys held by one limiter's local deny cache
_RESERVE = int(Mode.RESERVE)

#: What to do for a call whose caller is gone (cancelled, or out of budget) once its answer
#: comes: undo what the server did for it (give a reservation back, release a slot).
Undo = Callable[[list[int]], object]


class Guard:
    """Resilience for one limiter.

    Args:
        name: The limiter's, for log lines and metrics.
        backend: The limiter's backend.
        policy: What a decision is when the backend is unavailable: ``"allow"``, ``"deny"``,
            ``"raise"``, or a Backend to decide on instead.
        budget: Seconds a decision may wait for the backend, or None.
        breaker: Skips a backend that keeps failing.
        deny_cache: Whether denials are remembered in this process until they expire.
        concurrency: Whether it guards a concurrency limiter (for metrics).

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        policy: FailurePolicy | Backend,
        budget: float | None,
        breaker: CircuitBreaker | None,
        deny_cache: bool,
        concurrency: bool = False,
    ) -> None:
        if not (policy in _POLICIES or isinstance(policy, Backend)):
            raise ConfigurationError(
                f"on_backend_error must be one of {list(_POLICIES)} or a Backend, got {policy!r}"
            )
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0
        ):
            raise ConfigurationError(
                f"backend_timeout must be a positive number of seconds, got {budget!r}"
            )
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ConfigurationError(f"breaker must be a CircuitBreaker, got {breaker!r}")
        if not isinstance(deny_cache, bool):
            raise ConfigurationError(f"local_cache must be True or False, got {deny_cache!r}")
        self.name = name
        self.policy = policy
        self.budget = None if budget is None else Budget(budget)
        self.breaker = CircuitBreaker() if breaker is None else breaker
        # first key of a decision -> (denied until, for this cost or more, the decision)
        self._denied: dict[bytes, tuple[float, int, Decision]] | None = {} if deny_cache else None
        self._fallbacks: weakref.WeakKeyDictionary[Quota, Executor] = weakref.WeakKeyDictionary()
        self._last_warning = -math.inf
        self.backend_kind = backend.kind
        self.concurrency = concurrency
        #: The limiter's metrics, while they are on (see :func:`glidelimit.instrument`).
        self.meter: Meter | None = meter_for(self)

    async def decide(self, quota: Quota, keys: tuple[bytes, ...], cost: int, mode: int) -> Decision:
        """A decision of ``mode`` for ``cost`` on ``keys``, made on the backend (see
        :meth:`settle`)."""
        answer = quota.execute(keys, cost, mode, -1, b"")
        if isinstance(answer, list):
            return decode(answer, quota.limits)
        return await self.settle(quota, answer, keys, cost, mode)

    async def settle(
        self,
        quota: Quota,
        answer: Awaitable[list[int]],
        keys: tuple[bytes, ...],
        cost: int,
        mode: int,
        max_wait: int = -1,
        holder: bytes = b"",
        undo: Undo | None = None,
    ) -> Decision:
        """The decision that the backend's ``answer`` (not awaited yet) stands for, within
        the budget; or the failure policy's, if the backend is unavailable.

        Args:
            undo: For a call whose effect must not outlive its caller: called with the
                answer if it comes after the caller is gone (cancelled, out of budget).
        """
        cache = self._denied
        if cache is not None and mode != _RESERVE:
            cached = self._cached(cache, keys[0], cost)
            if cached is not None:
                _drop(answer)
                return cached
        raw = await self.raw(quota, answer, keys, cost, mode, max_wait, holder, undo)
        if not isinstance(raw, list):  # the failure policy's
            return raw
        decision = decode(raw, quota.limits)
        if cache is not None and not decision.allowed and decision.retry_after < math.inf:
            if len(cache) >= _DENIED_MAX:
                del cache[next(iter(cache))]  # the oldest: forgetting one only costs a trip
            cache[keys[0]] = (time.monotonic() + decision.retry_after, cost, decision)
        return decision

    async def raw(
        self,
        quota: Quota,
        answer: Awaitable[list[int]],
        keys: tuple[bytes, ...],
        cost: int,
        mode: int,
        max_wait: int = -1,
        holder: bytes = b"",
        undo: Undo | None = None,
    ) -> list[int] | Decision:
        """The backend's raw ``answer`` within the budget (see :meth:`settle`); or, if the
        backend is unavailable, the failure policy's decision for that call."""
        breaker = self.breaker
        if not breaker.attempt():
            _drop(answer)
            return await self._degraded(quota, keys, cost, mode, max_wait, holder, self._skipped())
        budget = self.budget
        try:
            if undo is not None:
                raw = await self._protected(answer, undo)
            elif budget is None:
                raw = await answer
            else:
                watch = budget.start()
                if watch is None:  # trio: its own timers are cheap
                    raw = await self._timed(answer)
                else:
                    try:
                        raw = await answer
                    except asyncio.CancelledError:
                        if not budget.expired(watch):
                            raise
                        raise self._timeout() from TimeoutError()
                    finally:
                        budget.end(watch)
        except BackendError as exc:
            self._failed(exc)
            return await self._degraded(quota, keys, cost, mode, max_wait, holder, exc)
        if breaker.open:
            self._back()
        breaker.succeeded()
        return raw

    async def failed_just_now(self, quota: Quota, keys: tuple[bytes, ...], cost: int) -> Decision:
        """The failure policy's decision for a hit of ``cost``, for a backend that has just
        failed a call made for the same key (it is not asked again)."""
        error = self.breaker.last_error or BackendError("the backend failed a call just now")
        return await self._degraded(quota, keys, cost, 0, -1, b"", error)

    def _skipped(self) -> BackendError:
        breaker = self.breaker
        error = BackendError(
            f"backend skipped for now after {breaker.failures} failures in a row; "
            f"the last: {breaker.last_error}"
        )
        error.__cause__ = breaker.last_error
        return error

    def _failed(self, exc: BackendError) -> None:
        """Count a failure of the backend; say so when it opens the breaker."""
        meter, breaker = self.meter, self.breaker
        if meter is not None:
            meter.error(exc)
        opened = not breaker.open
        breaker.failed(exc)
        if opened and breaker.open:
            logger.warning(
                "limiter %r: backend skipped for %gs after %d failures in a row: %s",
                self.name, breaker.cooldown, breaker.failures, exc,
            )  # fmt: skip
            if meter is not None:
                meter.breaker("open")

    def _back(self) -> None:
        logger.warning("limiter %r: backend back", self.name)
        if self.meter is not None:
            self.meter.breaker("closed")

    def forget(self, key: bytes) -> None:
        """Drop ``key``'s denial from the local deny cache (it was reset)."""
        if self._denied is not None:
            self._denied.pop(key, None)

    async def quietly(self, answer: Awaitable[list[int]], doing: str) -> list[int] | None:
        """``answer`` within the budget, or None if the backend failed (logged): for work
        no caller waits on (giving back, renewing), where no failure policy applies."""
        try:
            return await self._timed(answer)
        except BackendError as exc:
            self._warn(f"could not {doing}: {exc}")
            return None

    async def _timed(self, answer: Awaitable[list[int]]) -> list[int]:
        if self.budget is None:
            return await answer
        try:
            with anyio.fail_after(self.budget.seconds):
                return await answer
        except TimeoutError as exc:
            raise self._timeout() from exc

    async def _protected(self, answer: Awaitable[list[int]], undo: Undo) -> list[int]:
        """``answer``, run on its own: if this caller goes (cancelled, out of budget), the
        answer still comes, and ``undo`` is called with it."""
        spawned = spawn(_coroutine(answer))
        try:
            return await self._timed(spawned.wait())
        except BaseException:
            spawned.then(undo)
            raise

    def _timeout(self) -> BackendError:
        assert self.budget is not None
        return BackendError(
            f"no answer within the {self.budget.seconds:g}s budget "
            "(the call may still have been counted)"
        )

    @staticmethod
    def _cached(
        cache: dict[bytes, tuple[float, int, Decision]], key: bytes, cost: int
    ) -> Decision | None:
        entry = cache.get(key)
        if entry is None:
            return None
        until, denied_cost, decision = entry
        left = until - time.monotonic()
        if left <= 0:
            del cache[key]
            return None
        if cost < denied_cost:  # a smaller cost may be allowed sooner: ask
            return None
        passed = decision.retry_after - left
        return decision._replace(
            retry_after=left,
            reset_after=max(decision.reset_after - passed, 0.0),
            rates=tuple(
                s._replace(reset_after=max(s.reset_after - passed, 0.0)) for s in decision.rates
            ),
        )

    async def _degraded(
        self,
        quota: Quota,
        keys: tuple[bytes, ...],
        cost: int,
        mode: int,
        max_wait: int,
        holder: bytes,
        exc: BackendError,
    ) -> Decision:
        policy = self.policy
        if policy == "raise":
            raise exc
        if not isinstance(policy, str):
            execute = self._fallbacks.get(quota)
            if execute is None:
                execute = self._fallbacks[quota] = policy.executor(quota.algorithm, quota.limits)
            try:
                answer = execute(keys, cost, mode, max_wait, holder)
                raw = answer if isinstance(answer, list) else await self._timed(answer)
            except BackendError as fallback_exc:
                exc = BackendError(f"{exc}; the fallback failed too: {fallback_exc}")
                policy = "allow"
            else:
                self._warn(f"decides on {policy!r} instead: {exc}")
                return decode(raw, quota.limits, True)
        self._warn(f"decides without its backend ({policy}): {exc}")
        return decode(degraded(quota.limits, cost, policy == "allow"), quota.limits, True)

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning("limiter %r %s", self.name, what)


def _drop(answer: Awaitable[Any]) -> None:
    """Let go of an answer never awaited, so that nothing is sent for it."""
    close = getattr(answer, "close", None)  # a coroutine
    if close is not None:
        close()
    elif isinstance(answer, asyncio.Future):
        answer.cancel()


async def _coroutine(answer: Awaitable[list[int]]) -> list[int]:
    return await answer
