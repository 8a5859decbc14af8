from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from .._errors import ConfigurationError, UsageError
from ..algorithms import Algorithm, Limits, Owner, Store
from ._base import Executor

_FIRST_SWEEP = 1024  # keys held before the first sweep for expired ones


class _Store:
    """The keys' entries, ``key -> (expires at in ms, owner, state)`` (see
    :data:`~glidelimit.algorithms.Store`), least recently written first (a write deletes the
    key and inserts it again), and bounded."""

    __slots__ = ("batch", "bound", "closed", "data", "max_keys", "scale", "sweep_at", "ticks")

    def __init__(self, max_keys: int, clock: Callable[[], float]) -> None:
        self.max_keys = max_keys
        self.batch = max(1, max_keys // 32)  # keys evicted at a time when full
        # The clock in ms is ticks() // scale: monotonic_ns reads an int, faster than a float.
        self.ticks: Callable[[], int]
        if clock is time.monotonic:
            self.ticks, self.scale = time.monotonic_ns, 1_000_000
        else:
            self.ticks, self.scale = lambda: int(clock() * 1000), 1
        self.data: Store = {}
        self.sweep_at = _FIRST_SWEEP
        self.bound = min(self.sweep_at, max_keys)  # past this many keys, grown() runs
        self.closed = False

    def grown(self, now: int) -> None:
        """Past ``bound`` keys: sweep expired keys, then evict past ``max_keys``."""
        data = self.data
        if len(data) > self.sweep_at:
            for key in [k for k, entry in data.items() if entry[0] <= now]:
                del data[key]
            # The next full pass once the keys have doubled: O(1) amortised per key added.
            self.sweep_at = max(2 * len(data), _FIRST_SWEEP)
        while len(data) > self.max_keys:
            self.evict(now)
        self.bound = min(self.sweep_at, self.max_keys)

    def evict(self, now: int) -> None:
        """Forget ``batch`` keys: of the oldest written, those that give away the least (a
        key near full capacity, never an exhausted one before fresh ones). The others go on
        as if written now: each pass looks at new keys, O(1) amortised per key added."""
        data = self.data
        seen = list(islice(data.items(), 2 * self.batch))

        def worth(item: tuple[bytes, tuple[int, Owner, Any]]) -> float:
            expires, (algorithm, entry), state = item[1]
            return algorithm.used(state, now, entry) if expires > now else 0.0

        seen.sort(key=worth)
        for key, _ in seen[: self.batch]:
            del data[key]
        for key, value in seen[self.batch :]:
            del data[key]
            data[key] = value


class MemoryBackend:
    """The embedded backend: the algorithms' Python twins on an in-process store.

    Same decisions as the Valkey scripts, for one process. State is never changed across an
    ``await``, so it needs no lock, under asyncio and trio alike; it never waits, so it needs
    no time budget, circuit breaker or failure policy.

    >>> backend = MemoryBackend(max_keys=100_000)
    >>> limiter = Limiter("10/second", backend=backend, name="api")

    Args:
        max_keys: At most this many keys are kept. Past that, keys are evicted 1/32 of
            ``max_keys`` at a time: among the least recently written, those that give away
            the least (a key near full capacity goes before an exhausted one), so a flood of
            fresh keys never frees an exhausted key. Expired keys are freed by a sweep that
            runs whenever the keys held have doubled since the last one.
        clock: Seconds from a monotonic source; inject a fake one in tests
            (:class:`glidelimit.testing.ManualClock`).

    Raises:
        ConfigurationError: If ``max_keys`` is not a positive integer.
    """

    kind = "memory"

    def __init__(
        self, max_keys: int = 1_000_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError(f"max_keys must be a positive integer, got {max_keys!r}")
        self._store = _Store(max_keys, clock)

    def __repr__(self) -> str:
        state = "closed" if self._store.closed else f"{len(self)} keys"
        return f"MemoryBackend(max_keys={self.max_keys}, {state})"

    @property
    def max_keys(self) -> int:
        """The most keys held at once."""
        return self._store.max_keys

    def __len__(self) -> int:
        return len(self._store.data)

    def now_ms(self) -> int:
        """The backend's clock in milliseconds."""
        return self._store.ticks() // self._store.scale

    def executor(self, algorithm: Algorithm, limits: Limits) -> Executor:
        """Decide ``algorithm`` on ``limits``, at once (see
        :class:`~glidelimit.backends.Executor`)."""
        store = self._store
        data, ticks, scale = store.data, store.ticks, store.scale
        owners = tuple((algorithm, entry) for entry in limits.entries)
        decide = algorithm.decide

        def execute(
            keys: tuple[bytes, ...], cost: int, mode: int, max_wait: int, holder: bytes, /
        ) -> list[int]:
            if store.closed:
                raise UsageError("this MemoryBackend is closed")
            now = ticks() // scale
            out = decide(data, keys, owners, cost, mode, max_wait, holder, now)
            if len(data) > store.bound:
                store.grown(now)
            return out

        return execute

    async def delete(self, keys: Sequence[bytes]) -> None:
        """Forget the state stored under ``keys``."""
        if self._store.closed:
            raise UsageError("this MemoryBackend is closed")
        for key in keys:
            self._store.data.pop(key, None)

    async def aclose(self) -> None:
        """Forget every key; the backend cannot be used after."""
        self._store.closed = True
        self._store.data.clear()

    async def __aenter__(self) -> MemoryBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
