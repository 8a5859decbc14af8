"""MemoryBackend: bounded, frees expired keys, evicts what loses least; and sliding_window's
documented error bound."""

from __future__ import annotations

import random

import pytest

from glidelimit import ConcurrencyLimiter, Limiter, MemoryBackend, Rate, UsageError
from glidelimit.algorithms import ALGORITHMS, Limits
from glidelimit.testing import ManualClock


async def test_bounded_by_max_keys() -> None:
    """Distinct keys far beyond max_keys, none expired: memory stays bounded (see
    benchmarks/memory_rss.py for 1M keys and the RSS they take)."""
    backend = MemoryBackend(max_keys=1000, clock=ManualClock())
    limiter = Limiter(["1/hour", "2/day"], backend=backend)  # two stored keys per decision
    most = 0
    for i in range(60_000):
        assert (await limiter.hit(f"k{i}")).allowed
        most = max(most, len(backend))
    assert most == 1000
    # the most recent keys are still limited
    assert not (await limiter.hit("k59999")).allowed


async def test_expired_keys_are_freed() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    limiter = Limiter("5/second", backend=backend, algorithm="sliding_log")
    for i in range(3000):
        await limiter.hit(f"k{i}")
    assert len(backend) == 3000
    clock.advance(1.0)
    for i in range(10_000):
        await limiter.hit(f"fresh{i}")
    # the 3000 expired keys were swept, with no read of them (a sweep runs at least once per
    # len(backend) writes, which keeps it amortised O(1) per write)
    assert len(backend) == 10_000


async def test_fake_clock_drives_windows() -> None:
    clock = ManualClock()
    limiter = Limiter("2/minute", backend=MemoryBackend(clock=clock), algorithm="fixed_window")
    assert (await limiter.hit("k", cost=2)).allowed
    d = await limiter.hit("k")
    assert (d.allowed, d.retry_after) == (False, 60.0)
    clock.advance(59.999)
    assert not (await limiter.hit("k")).allowed
    clock.advance(0.001)
    assert (await limiter.hit("k")).remaining == 1


def _max_in_any_period(times: list[int], period: int) -> int:
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_sliding_window_error_bound() -> None:
    """sliding_window assumes the previous window's hits were spread evenly. The worst case is
    all of them at its very end: then a sliding period can hold up to 2 x limit - 1 hits.
    sliding_log never exceeds the limit in any sliding period; fixed_window and gcra (a full
    bucket, then its refill) can reach about 2 x limit by design."""
    limit, period = 10, 1000
    limits = Limits.of((Rate(limit, period / 1000),), (limit,))
    rng = random.Random(7)
    worst = {}
    for algorithm in ["sliding_window", "sliding_log", "fixed_window", "gcra"]:
        clock = ManualClock()
        execute = MemoryBackend(clock=clock).executor(ALGORITHMS[algorithm], limits)
        allowed_at = []
        # adversarial: a burst at the end of each window, then steady hits; then random traffic
        moments = [999 + 1000 * w + d for w in range(20) for d in (0, 1, 2, 500)]
        moments += sorted(rng.randrange(30_000, 90_000) for _ in range(3000))
        for now in moments:
            clock.now = now / 1000
            for _ in range(limit):
                if execute((b"k",), 1, 0, -1, b"")[0]:  # type: ignore[index]
                    allowed_at.append(now)
        worst[algorithm] = _max_in_any_period(allowed_at, period)
    assert worst["sliding_log"] == limit
    assert limit < worst["sliding_window"] <= 2 * limit - 1
    assert worst["fixed_window"] <= 2 * limit
    assert worst["gcra"] <= 2 * limit


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window", "sliding_log"])
async def test_a_flood_of_fresh_keys_never_frees_an_exhausted_one(algorithm: str) -> None:
    """Full, the store forgets first the keys that give away the least: an idle exhausted key
    outlives any number of fresh ones (each a single hit)."""
    clock = ManualClock()
    backend = MemoryBackend(max_keys=1000, clock=clock)
    limiter = Limiter("5/hour", backend=backend, algorithm=algorithm)
    for _ in range(5):
        assert await limiter.hit("victim")
    assert not await limiter.hit("victim")
    for i in range(5000):
        clock.advance(0.01)
        await limiter.hit(f"flood{i}")
    assert len(backend) <= 1000
    assert not await limiter.hit("victim")


async def test_held_slots_outlive_a_flood_of_fresh_keys() -> None:
    backend = MemoryBackend(max_keys=100)
    slots = ConcurrencyLimiter(1, backend=backend)
    async with slots.slot("busy"):
        limiter = Limiter("5/hour", backend=backend)
        for i in range(1000):
            await limiter.hit(f"flood{i}")
        assert await slots.inflight("busy") == 1


async def test_a_closed_backend_refuses_to_decide() -> None:
    backend = MemoryBackend()
    limiter = Limiter("5/hour", backend=backend)
    await limiter.hit("k")
    await backend.aclose()
    with pytest.raises(UsageError, match="closed"):
        await limiter.hit("k")
    with pytest.raises(UsageError, match="closed"):
        await limiter.reset("k")
