from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ._decision import Decision
from ._errors import BackendError, ConfigurationError, RateLimitExceeded
from ._limiter import ClosesBackend, default_backend, key_head
from ._rate import Rate
from .algorithms import CONCURRENCY, Limits, Mode, Request
from .backends import Backend

if sys.version_info < (3, 11):  # anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup  # pragma: no cover

logger = logging.getLogger("glidelimit")

_FIRST_POLL, _MAX_POLL = 0.005, 0.1  # seconds between a waiter's tries, doubling


class ConcurrencyLimiter(ClosesBackend):
    """Caps how much work is in flight per key, across every process sharing the backend.

    >>> limiter = ConcurrencyLimiter(10, backend=backend, name="reports")
    >>> async with limiter.slot("tenant:7", timeout=5):
    ...     await build_report()

    A slot is held under a lease that a background task renews while the holder lives; a
    holder that crashes stops renewing, and its slot frees itself when the lease ends.
    Waiters in the same process are woken at once when a slot frees here; slots freed by other
    processes are noticed by polling, from 5 ms doubling up to 100 ms, and never later than
    the earliest lease's end.

    Args:
        max_inflight: How many holders a key may have at once.
        lease: Seconds a slot outlives a holder that stopped renewing it (crashed, frozen).
        backend: Where slots are held; None means the process-wide ``MemoryBackend()``.
        name: Distinguishes this limiter's keys from every other limiter's.
        prefix: Starts every key this limiter stores.

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
    ) -> None:
        if isinstance(max_inflight, bool) or not isinstance(max_inflight, int) or max_inflight < 1:
            raise ConfigurationError(
                f"max_inflight must be a positive integer, got {max_inflight!r}"
            )
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease >= 0.1:
            raise ConfigurationError(f"lease must be at least 0.1 seconds, got {lease!r}")
        self._head = key_head(name, prefix)
        self.max_inflight = max_inflight
        self.lease = lease
        self.name = name
        self.backend: Backend = default_backend() if backend is None else backend
        rate = Rate(max_inflight, round(lease, 3))
        self._limits = Limits.of((rate,), (max_inflight,))
        self._tail = f"}}:concurrency:{max_inflight}"
        self._freed: dict[str, anyio.Event] = {}  # per key: set when a slot frees here
        self._waiters: dict[str, int] = {}  # per key: how many wait in this process

    def key(self, key: str) -> str:
        """The backend key that holds ``key``'s slots."""
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty string, got {key!r}")
        return self._head + key + self._tail

    async def _run(self, key: str, mode: Mode, token: str) -> Decision:
        request = Request((self.key(key),), self._limits, 1, mode, token=token)
        raw = await self.backend.execute(CONCURRENCY, request)
        retry = raw[4] / 1000 if raw[0] == 0 else 0.0
        rate = self._limits.rates[0]
        return Decision(raw[0] == 1, self.max_inflight, raw[2], raw[3] / 1000, retry, rate)

    async def inflight(self, key: str) -> int:
        """How many holders ``key`` has now."""
        decision = await self._run(key, Mode.PEEK, "")
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
        token = uuid.uuid4().hex
        decision = await self._wait_for_slot(key, token, timeout)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, key, token)
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
            with anyio.CancelScope(shield=True):
                await self._run(key, Mode.RELEASE, token)
            event = self._freed.pop(key, None)
            if event is not None:
                event.set()  # wake this process's waiters now, not at their next poll

    async def _wait_for_slot(self, key: str, token: str, timeout: float | None) -> Decision:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        poll = _FIRST_POLL
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await self._wait(key, token, deadline, poll)
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # the last waiter of the key: no event to keep
                del self._waiters[key]
                self._freed.pop(key, None)

    async def _wait(self, key: str, token: str, deadline: float, poll: float) -> Decision:
        while True:
            # registered before trying, so that a slot freed here meanwhile is not missed
            freed = self._freed.setdefault(key, anyio.Event())
            # shielded: a slot the server granted must not be lost to a cancellation (one
            # that came meanwhile is raised at the next await, where the slot is released)
            with anyio.CancelScope(shield=True):
                try:
                    decision = await self._run(key, Mode.HIT, token)
                except BackendError:
                    # the server may have granted it all the same: give it back (idempotent)
                    with contextlib.suppress(BackendError):
                        await self._run(key, Mode.RELEASE, token)
                    raise
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

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                decision = await self._run(key, Mode.RENEW, token)
            except BackendError as exc:  # the next renewal may get through: keep trying
                logger.warning("concurrency limiter %r could not renew a lease: %s", self.name, exc)
                continue
            if not decision.allowed:
                logger.warning(
                    "concurrency limiter %r lost a slot of %r: its lease (%ss) ran out before "
                    "it could be renewed", self.name, key, self.lease,
                )  # fmt: skip
                return
