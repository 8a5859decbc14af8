"""The core runs under trio as well as asyncio (anyio, no asyncio-only API)."""

from __future__ import annotations

import pytest
import trio

from glidelimit import Limiter, MemoryBackend, RateLimitExceeded, ValkeyBackend
from glidelimit.backends import Backend


async def _exercise(backend: Backend, name: str) -> None:
    limiter = Limiter("5/second", backend=backend, name=name, burst=1, on_backend_error="raise")
    if isinstance(backend, ValkeyBackend):
        await backend.connect()
    start = trio.current_time()
    assert (await limiter.hit("k")).allowed
    assert not (await limiter.hit("k")).allowed
    await limiter.acquire("k")  # its slot is 200 ms after the first hit
    assert 0.19 < trio.current_time() - start < 0.6
    with pytest.raises(RateLimitExceeded):
        await limiter.acquire("k", timeout=0.01)
    window = Limiter(
        "2/200ms",
        backend=backend,
        name=name + "w",
        algorithm="sliding_log",
        on_backend_error="raise",
    )
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(window.acquire, "k")
    await backend.aclose()


def test_trio_memory(name: str) -> None:
    trio.run(_exercise, MemoryBackend(), name)


@pytest.mark.parametrize("deployment", ["valkey", "cluster"])
def test_trio_valkey(request: pytest.FixtureRequest, deployment: str, name: str) -> None:
    url = request.getfixturevalue("valkey_url" if deployment == "valkey" else "cluster_url")
    trio.run(_exercise, ValkeyBackend.from_url(url), name)
