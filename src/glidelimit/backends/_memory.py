from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from .._errors import ConfigurationError
from ..algorithms import Algorithm, Decide, Limits, Request
from ..algorithms._base import _PEEK, _RESERVE

_FIRST_SWEEP = 1024  # keys held before the first sweep for expired ones
_CACHED_DECIDERS = 1024  # deciders that decide() keeps, for as many (algorithm, limits)


class _Store:
    """The keys' entries, ``(expires at in ms, *state)``, bounded: what the deciders read and
    write. A decider pops the key it reads and puts an entry back unless the key is deleted or
    expired; once it has added a key and holds more than ``bound``, it calls ``grown(now)``."""

    __slots__ = ("bound", "data", "max_keys", "scale", "sweep_at", "ticks")

    def __init__(self, max_keys: int, clock: Callable[[], float]) -> None:
        self.max_keys = max_keys
        # The clock in ms is ticks() // scale: monotonic_ns reads an int, faster than a float.
        self.ticks: Callable[[], int]
        if clock is time.monotonic:
            self.ticks, self.scale = time.monotonic_ns, 1_000_000
        else:
            self.ticks, self.scale = lambda: int(clock() * 1000), 1
        # key -> (expires at in ms, *state), least recently written first: a write deletes the
        # key and inserts it again (cheaper than an OrderedDict's move_to_end).
        self.data: dict[str, tuple[Any, ...]] = {}
        self.sweep_at = _FIRST_SWEEP
        self.bound = min(self.sweep_at, max_keys)  # past this many keys, grown() runs

    def grown(self, now: int) -> None:
        """Past ``bound`` keys: sweep expired keys, evict the oldest past ``max_keys``."""
        data = self.data
        if len(data) > self.sweep_at:
            for key in [k for k, entry in data.items() if entry[0] <= now]:
                del data[key]
            # The next full pass once the keys have doubled: O(1) amortised per key added.
            self.sweep_at = max(2 * len(data), _FIRST_SWEEP)
        excess = len(data) - self.max_keys
        if excess > 0:
            # A batch at a time: deleted keys stay at the front of a dict's order until it is
            # resized, so finding the oldest costs a scan over them, paid once per batch.
            for key in list(islice(data, excess + self.max_keys // 32)):
                del data[key]
        self.bound = min(self.sweep_at, self.max_keys)


class MemoryBackend:
    """The embedded backend: the algorithms' Python twins on an in-process store.

    Same decisions as the Valkey scripts, for one process. State is never changed across an
    ``await``, so it needs no lock, under asyncio and trio alike.

    Args:
        max_keys: At most this many keys are kept: past that, the keys written least recently
            are evicted, 1/32 of ``max_keys`` at a time (usually long expired; if not, their
            usage is forgotten: fails open). Expired keys are freed by a sweep that runs
            whenever the keys held have doubled since the last one, so it costs O(1) per key
            added.
        clock: Seconds from a monotonic source; inject a fake one in tests.
    """

    def __init__(
        self, max_keys: int = 1_000_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError(f"max_keys must be a positive integer, got {max_keys!r}")
        self._store = _Store(max_keys, clock)
        self._deciders: dict[int, tuple[Algorithm, Limits, Decide]] = {}

    @property
    def max_keys(self) -> int:
        """The most keys held at once."""
        return self._store.max_keys

    def __len__(self) -> int:
        return len(self._store.data)

    def now_ms(self) -> int:
        """The backend's clock in milliseconds."""
        return self._store.ticks() // self._store.scale

    async def execute(self, algorithm: Algorithm, request: Request) -> list[int]:
        return self.decide(algorithm, request)

    def decide(self, algorithm: Algorithm, request: Request) -> list[int]:
        """:meth:`execute`, synchronously: the memory backend never waits."""
        if not algorithm.driven:
            return self._decide_alone(algorithm, request)
        limits = request.limits
        cached = self._deciders.get(id(limits))
        if cached is None or cached[0] is not algorithm or cached[1] is not limits:
            if len(self._deciders) >= _CACHED_DECIDERS:
                self._deciders.clear()
            cached = (algorithm, limits, self.decider(algorithm, limits))
            self._deciders[id(limits)] = cached
        return cached[2](request.keys, request.cost, request.mode, request.max_wait, request.now)

    def decider(self, algorithm: Algorithm, limits: Limits) -> Decide:
        """The decisions of one limiter (``algorithm`` on ``limits``) as a plain function, for
        a caller that makes many: ``decide(keys, cost, mode, max_wait)`` returns what
        :meth:`execute` would, with no Request, no coroutine and no lookup."""
        if not algorithm.driven:
            raise ValueError(f"{algorithm.name} needs a whole Request: use execute()")
        if len(limits.rates) == 1:
            return self._one_rate(algorithm, limits)
        store = self._store
        data, ticks, scale = store.data, store.ticks, store.scale
        decide_rates = algorithm.decide_rates

        def decide(
            keys: tuple[str, ...],
            cost: int,
            mode: int = 0,
            max_wait: int = -1,
            now: int | None = None,
        ) -> list[int]:
            if now is None:
                now = ticks() // scale
            states = []
            for key in keys:
                entry = data.get(key)
                if entry is not None and entry[0] <= now:
                    del data[key]
                    entry = None
                states.append(entry)
            out, writes = decide_rates(states, limits, cost, mode, max_wait, now)
            if writes is not None:
                self._write(keys, writes, now)
            return out

        return decide

    def _one_rate(self, algorithm: Algorithm, limits: Limits) -> Decide:
        """:meth:`decider` for one rate (what most limiters have): the driver's twin
        (:meth:`Algorithm.decide_rates`) without its lists, in one frame."""
        (rate,), (cap,) = limits.rates, limits.capacities
        limit, period = rate.limit, rate.period_ms
        check, commit = algorithm.check, algorithm.commit
        store = self._store
        data, ticks, scale = store.data, store.ticks, store.scale

        def decide(
            keys: tuple[str, ...],
            cost: int,
            mode: int = 0,
            max_wait: int = -1,
            now: int | None = None,
        ) -> list[int]:
            if now is None:
                now = ticks() // scale
            key = keys[0]
            entry = data.pop(key, None)  # put back below, or written anew
            if entry is not None and entry[0] <= now:
                entry = None  # expired: gone
            ok, retry, rem0, reset0, rem1, reset1, new = check(entry, now, cost, limit, period, cap)
            if mode == _RESERVE:
                ok = retry >= 0 and (max_wait < 0 or retry <= max_wait)
            if not ok:
                if entry is not None:
                    data[key] = entry
                return [0, 0, rem0, reset0, retry]
            if mode == _PEEK:
                if entry is not None:
                    data[key] = entry
            elif reset1 > 0:
                data[key] = (now + reset1, *commit(entry, new, reset1, now, cost))
                if entry is None and len(data) > store.bound:
                    store.grown(now)
            return [1, 1, rem1, reset1, retry]

        return decide

    def _decide_alone(self, algorithm: Algorithm, request: Request) -> list[int]:
        """An algorithm with a script of its own (concurrency)."""
        now = self.now_ms() if request.now is None else request.now
        data = self._store.data
        states = []
        for key in request.keys:
            entry = data.get(key)
            states.append(None if entry is None or entry[0] <= now else entry)
        out, writes = algorithm.decide(states, request, now)
        if writes is not None:
            self._write(request.keys, writes, now)
        return out

    def _write(self, keys: Sequence[str], writes: list[tuple[Any, int]], now: int) -> None:
        store = self._store
        data = store.data
        for key, (state, ttl) in zip(keys, writes):
            data.pop(key, None)
            if ttl > 0:
                data[key] = (now + ttl, *state)
        if len(data) > store.bound:
            store.grown(now)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._store.data.pop(key, None)

    async def aclose(self) -> None:
        self._store.data.clear()
