"""Behaviour of Limiter, on every backend (memory, standalone Valkey, Valkey cluster)."""

from __future__ import annotations

import math
import time

import anyio
import pytest

from glidelimit import Decision, Limiter, MemoryBackend, Rate, RateLimitExceeded
from glidelimit.backends import Backend
from glidelimit.testing import ManualClock

ALGORITHMS = ["fixed_window", "sliding_window", "sliding_log", "gcra"]


def make(backend: Backend, name: str, rates: object = "5/hour", **kwargs: object) -> Limiter:
    kwargs.setdefault("on_backend_error", "raise")  # a backend error must fail the test
    return Limiter(rates, backend=backend, name=name, **kwargs)  # type: ignore[arg-type]


async def test_spec_gcra_sequence(backend: Backend, name: str) -> None:
    exact = isinstance(backend, MemoryBackend)
    if exact:  # a clock that stands still gives SPEC's values exactly
        backend = MemoryBackend(clock=ManualClock())
    limiter = make(backend, name, "10/second", algorithm="gcra", burst=10)
    started = time.monotonic()

    def assert_reset(d: Decision, expected: float) -> None:
        # on Valkey the server's clock runs between hits: the bucket refills meanwhile
        waited = 0.0 if exact else time.monotonic() - started + 0.001
        assert expected - waited <= d.reset_after <= expected

    d = await limiter.hit("user:42")
    assert (d.allowed, d.limit, d.remaining, d.retry_after) == (True, 10, 9, 0.0)
    assert_reset(d, 0.1)
    d = await limiter.hit("user:42", cost=2)
    assert (d.allowed, d.remaining) == (True, 7)
    assert_reset(d, 0.3)
    d = await limiter.hit("user:42", cost=7)
    assert (d.allowed, d.remaining) == (True, 0)
    assert_reset(d, 1.0)
    d = await limiter.hit("user:42", cost=1000)
    assert not d.allowed
    assert d.retry_after == math.inf
    assert d.rate == Rate(10, 1)
    assert not d.degraded


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_burst_then_denied_and_denied_consumes_nothing(
    backend: Backend, name: str, algorithm: str
) -> None:
    limiter = make(backend, name, "5/hour", algorithm=algorithm)
    remaining = [(await limiter.hit("k")).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    for _ in range(3):
        d = await limiter.hit("k")
        assert not d.allowed
        assert d.remaining == 0
        # sliding_window may have to wait into the next window: up to two periods
        assert 0 < d.retry_after <= d.reset_after <= 7200
    # the denied hits above consumed nothing: another key and the peek agree
    assert (await limiter.peek("k")).allowed is False
    assert (await limiter.hit("other")).remaining == 4


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cost_is_all_or_nothing(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, "10/hour", algorithm=algorithm)
    assert (await limiter.hit("k", cost=7)).remaining == 3
    d = await limiter.hit("k", cost=4)
    assert not d.allowed
    assert d.remaining == 3
    assert (await limiter.hit("k", cost=3)).remaining == 0
    never = await limiter.hit("k", cost=11)
    assert never.retry_after == math.inf


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_peek_consumes_nothing(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, "3/hour", algorithm=algorithm)
    for _ in range(5):
        d = await limiter.peek("k")
        assert (d.allowed, d.remaining) == (True, 2)
    await limiter.hit("k", cost=3)
    d = await limiter.peek("k")
    assert (d.allowed, d.remaining) == (False, 0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_reset(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, ["2/hour", "3/day"], algorithm=algorithm)
    await limiter.hit("k", cost=2)
    assert not (await limiter.hit("k")).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k")).remaining == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_several_rates_all_or_nothing(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, ["3/hour", "5/day"], algorithm=algorithm)
    d = await limiter.hit("k", cost=2)
    assert (d.allowed, d.remaining, d.rate) == (True, 1, Rate.parse("3/hour"))
    # the hourly rate denies: the daily one must not be charged either
    d = await limiter.hit("k", cost=2)
    assert (d.allowed, d.rate) == (False, Rate.parse("3/hour"))
    assert (await limiter.hit("k", cost=1)).remaining == 0
    # now 3 spent: the day allows 2 more, the hour none
    d = await limiter.hit("k")
    assert (d.allowed, d.rate) == (False, Rate.parse("3/hour"))
    assert 0 < d.retry_after <= d.reset_after <= 7200


async def test_binding_rate_is_the_most_restrictive(backend: Backend, name: str) -> None:
    limiter = make(backend, name, ["10/hour", "4/day"], algorithm="fixed_window")
    d = await limiter.hit("k", cost=3)
    assert (d.limit, d.remaining, d.rate) == (4, 1, Rate.parse("4/day"))
    d = await limiter.hit("k", cost=2)
    assert (d.allowed, d.rate) == (False, Rate.parse("4/day"))
    assert 3600 < d.retry_after <= 86400
    assert [(s.rate, s.limit, s.remaining) for s in d.rates] == [
        (Rate.parse("10/hour"), 10, 7),
        (Rate.parse("4/day"), 4, 1),
    ]


async def test_limiters_do_not_share_keys(backend: Backend, name: str) -> None:
    # name "a" + key "b:c" and name "a:b" + key "c" would collide in a naive scheme;
    # names cannot hold ':', so try every other pair of names and keys that could.
    a = make(backend, name, "1/hour")
    b = make(backend, name + "x", "1/hour")
    assert (await a.hit("x:k")).allowed
    assert (await b.hit("k")).allowed
    assert (await a.hit("}:gcra:1:3600000")).allowed
    assert (await a.hit("}")).allowed
    same_name_other_rate = make(backend, name, "2/hour")
    assert (await same_name_other_rate.hit("x:k")).allowed


async def test_odd_keys(backend: Backend, name: str) -> None:
    limiter = make(backend, name, "2/hour", algorithm="sliding_log")
    for key in ["{braces}", "}{", "new\nline", "ünïcødé ✓", "x" * 10_000, " "]:
        assert (await limiter.hit(key)).remaining == 1
        assert (await limiter.hit(key)).remaining == 0
        assert not (await limiter.hit(key)).allowed


async def test_window_refills(backend: Backend, name: str) -> None:
    for algorithm in ALGORITHMS:
        limiter = make(backend, name + algorithm, "2/200ms", algorithm=algorithm)
        assert (await limiter.hit("k", cost=2)).allowed
        d = await limiter.hit("k")
        assert not d.allowed
        await anyio.sleep(d.retry_after + 0.01)
        assert (await limiter.hit("k")).allowed, algorithm


async def test_acquire_gcra_reserves_and_sleeps(backend: Backend, name: str) -> None:
    limiter = make(backend, name, "10/second", algorithm="gcra", burst=1)
    started = anyio.current_time()
    for _ in range(4):
        d = await limiter.acquire("k")
        assert d.allowed
        assert d.retry_after == 0.0
    elapsed = anyio.current_time() - started
    assert 0.28 <= elapsed < 0.6  # the burst, then one every 100 ms


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_acquire_waits_for_the_window(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, "2/300ms", algorithm=algorithm)
    await limiter.hit("k", cost=2)
    started = anyio.current_time()
    assert (await limiter.acquire("k", timeout=2)).allowed
    assert 0.0 < anyio.current_time() - started < 1.0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_acquire_timeout_and_never(backend: Backend, name: str, algorithm: str) -> None:
    limiter = make(backend, name, "2/hour", algorithm=algorithm)
    await limiter.hit("k", cost=2)
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire("k", timeout=0.05)
    assert info.value.decision.retry_after > 0.05
    with anyio.fail_after(1):
        with pytest.raises(RateLimitExceeded) as info:
            await limiter.acquire("k", cost=3)
    assert info.value.decision.retry_after == math.inf
    with pytest.raises(RateLimitExceeded):
        await limiter.acquire("k", cost=3, timeout=math.inf)
    # a timed-out gcra reservation was not kept
    await limiter.reset("k")
    assert (await limiter.hit("k")).remaining == 1


async def test_acquire_cancelled_gives_back_its_reservation(backend: Backend, name: str) -> None:
    limiter = make(backend, name, "1/second", algorithm="gcra", burst=1)
    await limiter.hit("k")
    kept: list[float] = []

    async def first() -> None:
        kept.append((await limiter.acquire("k")).reset_after)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)  # holds the slot at t = 1 s
        await anyio.sleep(0.05)
        with anyio.move_on_after(0.1):
            await limiter.acquire("k")  # holds the slot at t = 2 s, then is cancelled
        d = await limiter.peek("k")
        # given back, even with a reservation queued ahead of it: full again ~2 s after the
        # first hit, not ~3 s
        assert 1.5 < d.reset_after < 2.0
    assert kept == [pytest.approx(1.0, abs=0.1)]  # it kept its own slot
