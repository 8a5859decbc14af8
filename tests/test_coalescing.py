"""Decisions that reach the Valkey backend in the same event-loop turn go out as one pipeline;
the results are those of the same calls made one by one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import anyio

from _servers import Deployment, Server, cli
from glidelimit import BackendError, Limiter, Rate, ValkeyBackend
from glidelimit.algorithms import ALGORITHMS, Limits, Mode
from glidelimit.testing import ManualClock

LIMITS = Limits.of((Rate(5, 1), Rate(20, 60)), (5, 20))


def calls(backend: ValkeyBackend, tag: str, base: int) -> list[Awaitable[list[int]]]:
    """A mix of algorithms, keys (several slots), costs and modes, at explicit times (each
    call reads the backend's clock when it is made)."""
    clock = ManualClock()
    backend._clock = clock
    out = []
    for i in range(120):
        algorithm = sorted(ALGORITHMS)[i % 4]
        execute = backend.executor(ALGORITHMS[algorithm], LIMITS)
        key = f"{{{tag}:{i % 7}}}"
        keys = (f"co:{key}:{algorithm}:a".encode(), f"co:{key}:{algorithm}:b".encode())
        mode = Mode.PEEK if i % 9 == 0 else Mode.HIT
        clock.now = (base + i * 7) / 1000
        answer = execute(keys, 1 + i % 3, mode, -1, b"")
        assert not isinstance(answer, list)
        out.append(answer)
    return out


async def test_batched_results_equal_one_by_one(deployment: Deployment) -> None:
    async with ValkeyBackend.from_url(deployment.url) as backend:
        base = 1_700_000_000_000
        # One batch at a time: calls in one batch run in their order, while two batches in
        # flight at once may reach the server in either order (as any concurrent calls may).
        # Connected first: calls queued behind the connection would go out as several batches.
        await backend.connect()
        together_calls = calls(backend, uuid.uuid4().hex, base)
        together = []
        for start in range(0, len(together_calls), 30):
            together += await asyncio.gather(*together_calls[start : start + 30])
        one_by_one = [await call for call in calls(backend, uuid.uuid4().hex, base)]
    assert together == one_by_one
    assert sum(out[0] for out in together) > 30  # a real mix of allowed and denied
    assert sum(1 - out[0] for out in together) > 30


async def test_an_error_fails_only_its_own_call(valkey: Server, name: str) -> None:
    async with ValkeyBackend.from_url(valkey.url) as backend:
        limiter = Limiter("5/second", backend=backend, name=name, on_backend_error="raise")
        (wrong,) = limiter.keys("wrong")
        cli(
            valkey.port, "RPUSH", wrong.decode(), "not a limiter's state"
        )  # WRONGTYPE for the script
        results = await asyncio.gather(
            *(limiter.hit(f"k{i}") for i in range(10)), limiter.hit("wrong"),
            return_exceptions=True,
        )  # fmt: skip
    assert all(not isinstance(r, BaseException) and r.allowed for r in results[:10])
    assert isinstance(results[10], BackendError)
    assert "WRONGTYPE" in str(results[10])


async def test_a_flushed_script_cache_under_concurrent_calls(
    deployment: Deployment, name: str
) -> None:
    """A pipeline has no NOSCRIPT fallback of its own; its calls go again, one by one."""
    servers, url = deployment.servers, deployment.url
    async with ValkeyBackend.from_url(url) as backend:
        # a budget that reloading the scripts on every primary fits in, on a loaded machine
        limiter = Limiter("5/hour", backend=backend, name=name, on_backend_error="raise",
                          backend_timeout=2)  # fmt: skip
        await limiter.hit("warm")
        for server in servers:
            cli(server.port, "SCRIPT", "FLUSH")
        decisions = await asyncio.gather(*(limiter.hit(f"k{i % 20}") for i in range(100)))
    assert sum(d.allowed for d in decisions) == 100  # 5 per key, 20 keys
    assert not any(d.degraded for d in decisions)


async def test_one_callers_deadline_does_not_cut_the_others(valkey: Server, name: str) -> None:
    async with ValkeyBackend.from_url(valkey.url) as backend:
        patient = Limiter("1000/s", backend=backend, name=name, backend_timeout=None,
                          on_backend_error="raise")  # fmt: skip
        await patient.hit("warm")
        cli(valkey.port, "CLIENT", "PAUSE", "150", "ALL")
        first = asyncio.create_task(patient.hit("first"))  # goes out at once
        await asyncio.sleep(0)

        async def hasty() -> None:
            with anyio.move_on_after(0.05):  # this caller's own deadline, not the batch's
                await patient.hit("hasty")

        leader = asyncio.create_task(hasty())
        followers = [asyncio.create_task(patient.hit(f"k{i}")) for i in range(5)]
        results = await asyncio.gather(first, leader, *followers, return_exceptions=True)
    assert not any(isinstance(r, BaseException) for r in results), results
