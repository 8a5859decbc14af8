"""Leases: slices of a hot key's quota spent by one process, never more than the algorithm
allows across the fleet."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time

import pytest

from glidelimit import ConfigurationError, Lease, Limiter, Tiers, ValkeyBackend
from glidelimit.algorithms import Mode

FLEET = """
import asyncio, json, sys, time
from glidelimit import Limiter, ValkeyBackend

async def main(url, name, algorithm, rate, seconds, start):
    async with ValkeyBackend.from_url(url, request_timeout=2000) as backend:
        await backend.connect()
        limiter = Limiter(rate, algorithm=algorithm, backend=backend, name=name, lease=True,
                          on_backend_error="raise", backend_timeout=2)
        while time.time() < start:
            await asyncio.sleep(0.001)
        stop = time.monotonic() + seconds
        admitted = []

        async def worker():
            while time.monotonic() < stop:
                d = await limiter.hit("tenant")
                if d.allowed:
                    admitted.append(time.time())
                await asyncio.sleep(0)  # a request does some I/O

        await asyncio.gather(*(worker() for _ in range(50)))
        await limiter.aclose()
    print(json.dumps(admitted))

asyncio.run(main(*sys.argv[1:5], float(sys.argv[5]), float(sys.argv[6])))
"""


def fleet(url: str, name: str, algorithm: str, rate: str, seconds: float) -> list[float]:
    """4 processes of 50 coroutines hit one key for ``seconds``; every admission's time."""
    start = time.time() + 3  # once every process is up
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FLEET, url, name, algorithm, rate, str(seconds), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    admitted: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        admitted += json.loads(out)
    return sorted(admitted)


@pytest.mark.slow
def test_a_fleet_on_a_fixed_window_admits_exactly_the_limit(valkey_url: str, name: str) -> None:
    """One window of 10 s, demand far above it for 2 s: the fleet admits the window's limit,
    never more."""
    admitted = fleet(valkey_url, name, "fixed_window", "600/10s", 2.0)
    assert 0.9 * 600 <= len(admitted) <= 600


@pytest.mark.slow
def test_a_fleet_on_gcra_stays_within_burst_plus_rate(valkey_url: str, name: str) -> None:
    """Burst 200, 200/s: over any run of T seconds at most 200 + 200 T, and at least 90 % of
    what the algorithm allows over the whole run."""
    seconds = 2.0
    admitted = fleet(valkey_url, name, "gcra", "200/second", seconds)
    # the processes' runs start a few ms apart: the whole run is from first to last admission
    # (and the clocks of 4 processes on one machine: 10 ms of slack)
    allowed_in_all = 200 + 200 * (admitted[-1] - admitted[0] + 0.01)
    assert 0.9 * (200 + 200 * seconds) <= len(admitted) <= allowed_in_all
    for i, first in enumerate(admitted):  # every run that starts at an admission
        j = i
        while j < len(admitted):
            span = admitted[j] - first
            assert j - i + 1 <= 200 + 200 * (span + 0.01), (j - i + 1, span)
            j += 25


class Counting:
    """Wraps a limiter's executor to count the calls it makes, by mode."""

    def __init__(self, limiter: Limiter) -> None:
        self.modes: collections.Counter[int] = collections.Counter()
        quota = limiter.quota()
        inner = quota.execute

        def counted(keys: tuple[bytes, ...], cost: int, mode: int, max_wait: int, holder: bytes):  # type: ignore[no-untyped-def]
            self.modes[mode] += 1
            return inner(keys, cost, mode, max_wait, holder)

        quota.execute = counted


async def test_a_hot_key_is_leased_a_cold_one_never(
    deployment_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter("100000/minute", algorithm="fixed_window", backend=deployment_backend,
                      name=name, lease=True)  # fmt: skip
    calls = Counting(limiter)
    for i in range(20):  # cold: one key each
        assert await limiter.hit(f"cold{i}")
    assert calls.modes[int(Mode.LEASE)] == 0
    decisions = await asyncio.gather(*(limiter.hit("hot") for _ in range(1000)))
    assert all(decisions)
    assert calls.modes[int(Mode.LEASE)] >= 1
    assert calls.modes[int(Mode.HIT)] + calls.modes[int(Mode.LEASE)] < 20 + 100
    await limiter.aclose()


@pytest.mark.parametrize("algorithm", ["fixed_window", "gcra"])
async def test_unused_units_go_back_on_close(
    deployment_backend: ValkeyBackend, name: str, algorithm: str
) -> None:
    limiter = Limiter("1000/minute", algorithm=algorithm, backend=deployment_backend, name=name,
                      lease=Lease(fraction=0.5, min_hits=2))  # fmt: skip
    for _ in range(10):
        assert await limiter.hit("k")
    held = await limiter.peek("k", cost=0)
    assert held.remaining < 990  # a slice of more than 10 units is out
    await limiter.aclose()
    plain = Limiter("1000/minute", algorithm=algorithm, backend=deployment_backend, name=name)
    assert (await plain.peek("k", cost=0)).remaining in (990, 991)  # gcra refills meanwhile


async def test_a_slice_never_outlives_its_window(valkey_backend: ValkeyBackend, name: str) -> None:
    limiter = Limiter("20/500ms", algorithm="fixed_window", backend=valkey_backend, name=name,
                      lease=Lease(fraction=1, min_hits=2))  # fmt: skip
    for _ in range(5):
        assert await limiter.hit("k")
    await asyncio.sleep(0.6)  # the window is over: what is left of the slice is void
    plain = Limiter("20/500ms", algorithm="fixed_window", backend=valkey_backend, name=name)
    assert (await plain.peek("k", cost=0)).remaining == 20
    admitted = sum([(await limiter.hit("k")).allowed for _ in range(30)])
    assert admitted == 20


async def test_leases_compose_with_tiers_and_several_rates(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    tiers = Tiers({"free": ["10/second", "15/minute"], "pro": "100/second"})
    limiter = Limiter(tiers, algorithm="fixed_window", backend=valkey_backend, name=name,
                      lease=Lease(fraction=1, min_hits=2))  # fmt: skip
    free = await asyncio.gather(*(limiter.hit("k") for _ in range(30)))
    pro = await asyncio.gather(*(limiter.hit("k", tier="pro") for _ in range(150)))
    assert sum(d.allowed for d in free) == 10
    assert sum(d.allowed for d in pro) == 100
    await limiter.aclose()


async def test_an_unavailable_backend_falls_to_the_policy(name: str) -> None:
    from _servers import free_port

    async with ValkeyBackend.from_url(f"valkey://127.0.0.1:{free_port()}") as dead:
        for policy, allowed in (("allow", True), ("deny", False)):
            limiter = Limiter("100/second", backend=dead, name=name, on_backend_error=policy,  # type: ignore[arg-type]
                              lease=Lease(min_hits=1))  # fmt: skip
            decisions = [await limiter.hit("k") for _ in range(5)]
            assert all(d.degraded and d.allowed is allowed for d in decisions)


def test_leases_are_refused_where_they_cannot_be_exact() -> None:
    for algorithm in ("sliding_window", "sliding_log"):
        with pytest.raises(ConfigurationError, match="leases work with gcra and fixed_window"):
            Limiter("10/second", algorithm=algorithm, lease=True)
    with pytest.raises(ConfigurationError, match="lease fraction"):
        Lease(fraction=0)
    with pytest.raises(ConfigurationError, match="lease must be"):
        Limiter("10/second", lease="yes")  # type: ignore[arg-type]


async def test_a_cost_larger_than_a_slice_is_a_plain_hit(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter("10000000/day", backend=valkey_backend, name=name, lease=True)
    for _ in range(20):
        await limiter.hit("k", cost=100)  # hot now
    started = time.monotonic()
    assert await limiter.hit("k", cost=3_000_000)  # a slice of it would be millions of units
    assert time.monotonic() - started < 0.5
    assert (await limiter.hit("k", cost=0)).allowed  # a check of cost 0 is never leased
    await limiter.aclose()


async def test_a_reset_forgets_the_slices_and_denials_held_here(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter("10/minute", algorithm="fixed_window", backend=valkey_backend, name=name,
                      lease=Lease(fraction=1, min_hits=2))  # fmt: skip
    assert sum([(await limiter.hit("k")).allowed for _ in range(15)]) == 10
    assert not await limiter.hit("k")  # denied, here, with no round trip
    await limiter.reset("k")
    assert await limiter.hit("k")


async def test_a_slice_of_rates_that_changed_is_not_spent(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    tiers = Tiers({"t": "1000/minute"})
    limiter = Limiter(tiers, algorithm="fixed_window", backend=valkey_backend, name=name,
                      lease=Lease(min_hits=2))  # fmt: skip
    for _ in range(3):
        assert await limiter.hit("k")  # a slice of 1000/minute is held now
    tiers["t"] = ["1000/minute", "5/minute"]
    admitted = sum([(await limiter.hit("k")).allowed for _ in range(50)])
    assert admitted == 5
    await limiter.aclose()


async def test_a_denial_remembered_here_lasts_a_second_at_most(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    """Two processes (two limiters of one name): one holds a slice, the other is denied; once
    the slice goes back, the other is admitted again within a second, not at the window's
    end an hour later."""

    def make() -> Limiter:
        return Limiter("100/hour", algorithm="fixed_window", backend=valkey_backend, name=name,
                       lease=Lease(fraction=0.6, min_hits=2, window=0.05))  # fmt: skip

    holder, other = make(), make()
    for _ in range(40):
        assert await holder.hit("k")  # holds a slice of up to 60
    assert sum([(await other.hit("k")).allowed for _ in range(100)]) < 60
    assert not await other.hit("k")
    await holder.aclose()  # its slice goes back
    await asyncio.sleep(1.1)
    assert await other.hit("k")
    await other.aclose()
