from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ConfigurationError
from ..algorithms import Algorithm, Request


class MemoryBackend:
    """The embedded backend: the algorithms' Python twins on an in-process store.

    Same decisions as the Valkey scripts, for one process. State is never changed across an
    ``await``, so it needs no lock, under asyncio and trio alike.

    Args:
        max_keys: At most this many keys are kept: past that, the key written least recently
            is evicted (usually long expired; if not, its usage is forgotten: fails open).
            Expired keys are freed by a sweep that runs once per as many writes as there are
            keys, so it costs O(1) per write.
        clock: Seconds from a monotonic source; inject a fake one in tests.
    """

    def __init__(
        self, max_keys: int = 1_000_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError(f"max_keys must be a positive integer, got {max_keys!r}")
        self.max_keys = max_keys
        self._clock = clock
        # key -> (expires at in ms, state), least recently used first
        self._data: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._writes_to_sweep = 1024

    def __len__(self) -> int:
        return len(self._data)

    def now_ms(self) -> int:
        """The backend's clock in milliseconds."""
        return int(self._clock() * 1000)

    async def execute(self, algorithm: Algorithm, request: Request) -> list[int]:
        now = self.now_ms() if request.now is None else request.now
        data = self._data
        states = []
        for key in request.keys:
            entry = data.get(key)
            if entry is not None and entry[0] <= now:
                del data[key]
                entry = None
            states.append(None if entry is None else entry[1])
        out, writes = algorithm.decide(states, request, now)
        if writes is not None:
            for key, (state, ttl) in zip(request.keys, writes):
                if ttl > 0:
                    data[key] = (now + ttl, state)
                    data.move_to_end(key)
                else:
                    data.pop(key, None)
            self._writes_to_sweep -= 1
            if self._writes_to_sweep <= 0:
                self._sweep(now)
            while len(data) > self.max_keys:
                data.popitem(last=False)
        return out

    def _sweep(self, now: int) -> None:
        data = self._data
        for key in [k for k, (expires, _) in data.items() if expires <= now]:
            del data[key]
        # The next full pass comes after as many writes as there are keys left: O(1) amortised.
        self._writes_to_sweep = max(len(data), 1024)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def aclose(self) -> None:
        self._data.clear()
