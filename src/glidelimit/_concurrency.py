from __future__ import annotations

import logging
import math
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import anyio

from ._breaker import CircuitBreaker
from ._decision import Decision, RateLimitExceeded
from ._errors import ConfigurationError
from ._guard import FailurePolicy, Guard, Undo
from ._limiter import checked_backend
from ._quota import Quota, decode, key_head
from ._runtime import spawn
from .algorithms import CONCURRENCY, Limits, Mode
from .backends import Backend

if sys.version_info < (3, 11):  # anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup  # pragma: no cover

logger = logging.getLogger("glidelimit")

_FIRST_POLL, _MAX_POLL = 0.005, 0.1  # seconds between a waiter's tries, doubling
_HIT, _PEEK, _RELEASE, _RENEW = int(Mode.HIT), int(Mode.PEEK), int(Mode.RELEASE), int(Mode.RENEW)


class ConcurrencyLimiter:
    """Caps how much work is in flight per key, across every process sharing the backend.

    >>> limiter = ConcurrencyLimiter(10, backend=backend, name="reports")
    >>> async with limiter.slot("tenant:7", timeout=5):
    ...     await build_report()

    A slot is held under a lease that a background task renews while the holder lives; a
    holder that crashes stops renewing, and its slot frees itself when the lease ends. A
    holder that is cancelled gives its slot back, even while it was still being granted.
    Waiters in the same process are woken at once when a slot frees here; slots freed by other
    processes are noticed by polling, from 5 ms doubling up to 100 ms, and never later than
    the earliest lease's end.

    Args:
        max_inflight: How many holders a key may have at once.
        lease: Seconds a slot outlives a holder that stopped renewing it (crashed, frozen).
        backend: Where slots are held; None means the process-wide ``MemoryBackend()``. The
            limiter never closes it.
        name: Distinguishes this limiter's keys from every other limiter's.
        prefix: Starts every key this limiter stores.
        on_backend_error: What taking a slot does when the backend is unavailable:
            ``"allow"`` (a slot held nowhere, ``degraded=True``), ``"deny"``, ``"raise"``,
            or another Backend to hold it on.
        backend_timeout: Seconds one call to the backend may take; None: no budget.
        breaker: Skips a backend that keeps failing, then probes it.

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    def __init__(
        self,
        max_inflight: int,
        *,
        lease: float = 60.0,
        backend: Backend | None = None,
        name: str = "default",
        prefix: str = "glidelimit:",
        on_backend_error: FailurePolicy | Backend = "allow",
        backend_timeout: float | None = 0.2,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if isinstance(max_inflight, bool) or not isinstance(max_inflight, int) or max_inflight < 1:
            raise ConfigurationError(
                f"max_inflight must be a positive integer, got {max_inflight!r}"
            )
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease >= 0.1:
            raise ConfigurationError(f"lease must be at least 0.1 seconds, got {lease!r}")
        if lease > 86_400 * 365:
            raise ConfigurationError(f"lease must be at most a year, got {lease!r}")
        self.max_inflight = max_inflight
        self.lease = lease
        self.name = name
        self.backend: Backend = checked_backend(backend)
        self._guard = Guard(
            name, self.backend, on_backend_error, backend_timeout, breaker, False, concurrency=True
        )
        limits = Limits.slots(max_inflight, round(lease * 1000))
        tail = f"}}:concurrency:{max_inflight}".encode()
        self._quota = Quota(
            CONCURRENCY, limits, self.backend, key_head(name, prefix), (tail,), name
        )
        self._freed: dict[str, anyio.Event] = {}  # per key: set when a slot frees here
        self._waiters: dict[str, int] = {}  # per key: how many wait in this process

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter({self.max_inflight}, lease={self.lease!r}, name={self.name!r}, "
            f"backend={self.backend!r})"
        )

    def key(self, key: str) -> bytes:
        """The backend key that holds ``key``'s slots."""
        return self._quota.keys(key)[0]

    async def _run(self, key: str, mode: int, holder: bytes, undo: Undo | None = None) -> Decision:
        quota = self._quota
        keys = quota.keys(key)
        answer = quota.execute(keys, 1, mode, -1, holder)
        if isinstance(answer, list):
            return decode(answer, quota.limits)
        return await self._guard.settle(quota, answer, keys, 1, mode, -1, holder, undo)

    async def _quietly(self, key: str, mode: int, holder: bytes, doing: str) -> Decision | None:
        """A release or a renewal: no failure policy; a failure is logged, and None."""
        quota = self._quota
        answer = quota.execute(quota.keys(key), 1, mode, -1, holder)
        if not isinstance(answer, list):
            raw = await self._guard.quietly(answer, doing)
            if raw is None:
                return None
            answer = raw
        return decode(answer, quota.limits)

    async def inflight(self, key: str) -> int:
        """How many holders ``key`` has now."""
        decision = await self._run(key, _PEEK, b"")
        return self.max_inflight - decision.remaining

    @asynccontextmanager
    async def slot(self, key: str, timeout: float | None = None) -> AsyncIterator[Decision]:
        """Hold one of ``key``'s slots for the body of the ``async with``.

        Args:
            key: Whose slots.
            timeout: Seconds to wait for a slot; None waits as long as it takes, 0 not at all.

        Raises:
            RateLimitExceeded: If no slot freed within ``timeout``.
        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
        ):
            raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")
        self._quota.keys(key)  # a bad key is refused before anything is sent
        holder = uuid.uuid4().hex.encode()
        started = time.perf_counter()
        decision = await self._wait_for_slot(key, holder, timeout)
        meter = self._guard.meter
        if meter is not None:
            meter.waited(time.perf_counter() - started)
            meter.in_flight += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, key, holder)
                try:
                    yield decision
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # the body's own error, not wrapped by the renewal's task group
            if len(group.exceptions) == 1:
                error = group.exceptions[0]
                raise error from error.__cause__
            raise
        finally:
            try:
                await self._release(key, holder)
            finally:
                if meter is not None:
                    meter.in_flight -= 1

    async def _release(self, key: str, holder: bytes) -> None:
        # on a task of its own, which no cancellation of this one cuts short
        with anyio.CancelScope(shield=True):
            await spawn(self._quietly(key, _RELEASE, holder, "release a slot")).wait()
        event = self._freed.pop(key, None)
        if event is not None:
            event.set()  # wake this process's waiters now, not at their next poll

    async def _wait_for_slot(self, key: str, holder: bytes, timeout: float | None) -> Decision:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await self._wait(key, holder, deadline)
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # the last waiter of the key: no event to keep
                del self._waiters[key]
                self._freed.pop(key, None)

    async def _wait(self, key: str, holder: bytes, deadline: float) -> Decision:
        def release(raw: list[int]) -> None:  # a slot granted to a waiter that is gone
            if raw[0] == 1:
                spawn(self._quietly(key, _RELEASE, holder, "release a slot"))

        poll = _FIRST_POLL
        while True:
            # registered before trying, so that a slot freed here meanwhile is not missed
            freed = self._freed.setdefault(key, anyio.Event())
            decision = await self._run(key, _HIT, holder, release)
            if decision.allowed:
                return decision
            left = deadline - time.monotonic()
            if left <= 0:
                raise RateLimitExceeded(
                    decision, f"all {self.max_inflight} slots of {key!r} are in use"
                )
            # another process may free a slot at any time: poll, but never past the moment
            # the earliest lease ends
            wait = min(poll * (1 + random.random()), decision.retry_after, left)
            with anyio.move_on_after(wait):
                await freed.wait()
            poll = min(2 * poll, _MAX_POLL)

    async def _renew(self, key: str, holder: bytes) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            decision = await self._quietly(key, _RENEW, holder, "renew a lease")
            if decision is not None and not decision.allowed:
                logger.warning(
                    "concurrency limiter %r lost a slot of %r: its lease (%ss) ran out before "
                    "it could be renewed", self.name, key, self.lease,
                )  # fmt: skip
                return

    async def aclose(self) -> None:
        """Release what this limiter holds. Its backend is not closed: it belongs to whoever
        made it, and other limiters may use it."""

    async def __aenter__(self) -> ConcurrencyLimiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
