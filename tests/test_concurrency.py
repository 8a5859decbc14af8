"""ConcurrencyLimiter: slots under leases, on every backend and across processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import anyio
import pytest

from glidelimit import (
    ConcurrencyLimiter,
    ConfigurationError,
    MemoryBackend,
    RateLimitExceeded,
    ValkeyBackend,
)
from glidelimit.algorithms import CONCURRENCY, Limits, Mode
from glidelimit.backends import Backend
from glidelimit.testing import ManualClock


async def test_never_more_than_max_inflight(backend: Backend, name: str) -> None:
    limiter = ConcurrencyLimiter(3, lease=5, backend=backend, name=name)
    inside = peak = done = 0

    async def work() -> None:
        nonlocal inside, peak, done
        async with limiter.slot("k", timeout=10):
            inside += 1
            peak = max(peak, inside)
            await anyio.sleep(0.02)
            inside -= 1
        done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(work)
    assert (peak, done) == (3, 20)
    assert await limiter.inflight("k") == 0


async def test_timeout_and_release_on_error(backend: Backend, name: str) -> None:
    limiter = ConcurrencyLimiter(1, lease=5, backend=backend, name=name)

    async def fail_while_holding() -> None:
        async with limiter.slot("k"):
            assert await limiter.inflight("k") == 1
            with pytest.raises(RateLimitExceeded, match="all 1 slots of 'k' are in use"):
                async with limiter.slot("k", timeout=0):
                    pass
            started = anyio.current_time()
            with pytest.raises(RateLimitExceeded):
                async with limiter.slot("k", timeout=0.2):
                    pass
            assert 0.2 <= anyio.current_time() - started < 0.5
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):  # the body's error, not a group of it
        await fail_while_holding()
    assert await limiter.inflight("k") == 0  # released on the way out


async def test_live_holder_keeps_its_slot_past_the_lease(backend: Backend, name: str) -> None:
    limiter = ConcurrencyLimiter(1, lease=0.3, backend=backend, name=name)
    async with limiter.slot("k"):
        for _ in range(6):  # 1.2 s: four leases long
            await anyio.sleep(0.2)
            with pytest.raises(RateLimitExceeded):
                async with limiter.slot("k", timeout=0):
                    pass
    async with limiter.slot("k", timeout=0):
        pass


async def test_waiter_in_this_process_is_woken_at_once(backend: Backend, name: str) -> None:
    limiter = ConcurrencyLimiter(1, lease=30, backend=backend, name=name)
    woken: list[float] = []
    released = 0.0

    async def waiter() -> None:
        async with limiter.slot("k", timeout=5):
            woken.append(anyio.current_time() - released)

    async with anyio.create_task_group() as tg, limiter.slot("k"):
        tg.start_soon(waiter)
        await anyio.sleep(0.5)  # the waiter's polls have backed off to 100 ms by now
        released = anyio.current_time()
    assert woken[0] < 0.05


HOLDER = """
import asyncio, sys
from glidelimit import ConcurrencyLimiter, ValkeyBackend

async def main(url, name):
    limiter = ConcurrencyLimiter(1, lease=1.0, backend=ValkeyBackend.from_url(url), name=name)
    async with limiter.slot("k"):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.parametrize("deployment", ["valkey", "cluster"])
async def test_a_killed_holder_frees_its_slot_when_its_lease_ends(
    request: pytest.FixtureRequest, deployment: str, name: str
) -> None:
    url = request.getfixturevalue("valkey_url" if deployment == "valkey" else "cluster_url")
    from glidelimit import ValkeyBackend

    holder = subprocess.Popen(  # noqa: ASYNC220 (started once, read once: not on a hot path)
        [sys.executable, "-c", HOLDER, url, name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip().endswith("held")
        await anyio.sleep(1.5)  # renewed meanwhile: still held
        async with ValkeyBackend.from_url(url) as backend:
            limiter = ConcurrencyLimiter(1, lease=1.0, backend=backend, name=name)
            with pytest.raises(RateLimitExceeded):
                async with limiter.slot("k", timeout=0):
                    pass
            holder.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            async with limiter.slot("k", timeout=5):
                freed_after = time.monotonic() - killed
        assert freed_after < 1.0 + 0.3  # the lease's end, and the last poll
    finally:
        holder.kill()
        holder.communicate(timeout=10)


async def test_concurrency_script_and_twin_agree(valkey_backend: Backend, name: str) -> None:
    assert isinstance(valkey_backend, ValkeyBackend)
    clock = ManualClock()
    valkey_backend._clock = clock  # the script decides at the clock's time
    limits = Limits.slots(2, 1000)
    on_valkey = valkey_backend.executor(CONCURRENCY, limits)
    on_memory = MemoryBackend(clock=clock).executor(CONCURRENCY, limits)
    key = (f"agree:{{{name}}}:slots".encode(),)
    steps = [
        (0, Mode.HIT, "a"), (10, Mode.HIT, "b"), (20, Mode.HIT, "c"), (30, Mode.PEEK, ""),
        (500, Mode.RENEW, "a"), (1005, Mode.HIT, "c"), (1010, Mode.RENEW, "b"),
        (1020, Mode.RELEASE, "a"), (1030, Mode.HIT, "d"), (1040, Mode.HIT, "c"),
        (5000, Mode.PEEK, ""), (5001, Mode.RENEW, "c"),
    ]  # fmt: skip
    base = 1_700_000_000_000
    for offset, mode, token in steps:
        clock.now = (base + offset) / 1000
        script = await on_valkey(key, 1, mode, -1, token.encode())  # type: ignore[misc]
        twin = on_memory(key, 1, mode, -1, token.encode())
        assert script == twin, (offset, mode, token)


def test_bad_arguments() -> None:
    for bad in [0, -1, True, 1.5]:
        with pytest.raises(ConfigurationError, match="max_inflight"):
            ConcurrencyLimiter(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lease"):
        ConcurrencyLimiter(1, lease=0)


def test_a_waiter_that_gave_up_leaves_nothing_behind(valkey_url: str, name: str) -> None:
    """A waiter that timed out in one event loop does not break the next loop's waiters."""
    from glidelimit import ValkeyBackend

    backend = ValkeyBackend.from_url(valkey_url)
    limiter = ConcurrencyLimiter(1, lease=30, backend=backend, name=name)

    async def occupy_then_give_up() -> None:
        await limiter._run("k", Mode.HIT, b"someone-else")  # held by another process, say
        with pytest.raises(RateLimitExceeded):
            async with limiter.slot("k", timeout=0.05):
                pass

    async def free_then_take() -> None:
        await limiter._run("k", Mode.RELEASE, b"someone-else")
        async with limiter.slot("k", timeout=1):
            pass
        await backend.aclose()

    asyncio.run(occupy_then_give_up())
    assert limiter._freed == {}
    asyncio.run(free_then_take())
