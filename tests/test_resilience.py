"""The failure policy, the time budget, the circuit breaker and the local deny cache, on a
backend that fails on demand; bad and abusive input on every backend."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import anyio
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from glidelimit import (
    BackendError,
    CircuitBreaker,
    ConfigurationError,
    Limiter,
    MemoryBackend,
)
from glidelimit.algorithms import Algorithm, Limits
from glidelimit.backends import Backend, Executor
from glidelimit.testing import ManualClock


class Flaky:
    """A backend that decides on ``inner``, fails, or never answers, as told; counts calls."""

    kind = "flaky"

    def __init__(self, inner: Backend | None = None) -> None:
        self.inner = MemoryBackend() if inner is None else inner
        self.mode = "ok"  # or "fail", "hang"
        self.calls = 0

    def executor(self, algorithm: Algorithm, limits: Limits) -> Executor:
        inner = self.inner.executor(algorithm, limits)

        async def execute(
            keys: tuple[bytes, ...], cost: int, mode: int, max_wait: int, holder: bytes, /
        ) -> list[int]:
            self.calls += 1
            if self.mode == "fail":
                try:
                    raise ConnectionResetError("the store is gone")
                except ConnectionResetError as exc:
                    raise BackendError("it failed") from exc
            if self.mode == "hang":
                await anyio.sleep_forever()
            answer = inner(keys, cost, mode, max_wait, holder)
            return answer if isinstance(answer, list) else await answer

        return execute

    async def delete(self, keys: Sequence[bytes]) -> None:
        self.calls += 1
        await self.inner.delete(keys)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_breaker_opens_probes_and_closes() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failures=2, cooldown=0.5, clock=clock)
    error = BackendError("down")
    assert breaker.attempt()
    breaker.failed(error)
    assert breaker.attempt()
    assert not breaker.open
    breaker.failed(error)
    assert breaker.open
    assert breaker.last_error is error
    assert not breaker.attempt()
    clock.advance(0.5)
    assert breaker.attempt()  # the probe...
    assert not breaker.attempt()  # ...and only one
    breaker.failed(error)  # the probe failed: another cooldown
    clock.advance(0.49)
    assert not breaker.attempt()
    clock.advance(0.01)
    assert breaker.attempt()
    clock.advance(0.5)  # a probe that never reported (cancelled) is replaced
    assert breaker.attempt()
    breaker.succeeded()
    assert not breaker.open
    assert breaker.attempt()
    assert breaker.attempt()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failures": 0}, "failures must be a positive integer, got 0"),
        ({"failures": 1.5}, "failures"),
        ({"cooldown": 0}, "cooldown must be a positive number of seconds, got 0"),
        ({"cooldown": math.inf}, "cooldown"),
        ({"cooldown": math.nan}, "cooldown"),
    ],
)
def test_breaker_rejects(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


async def test_budget_then_breaker_then_probe(name: str) -> None:
    """A backend that never answers: the first calls wait the budget, then the breaker
    skips it, then a probe finds it back."""
    backend = Flaky()
    breaker = CircuitBreaker(failures=3, cooldown=0.3)
    limiter = Limiter("2/hour", backend=backend, name=name, backend_timeout=0.05, breaker=breaker)
    backend.mode = "hang"
    for _ in range(3):
        with anyio.fail_after(2):  # the budget, not this, must end the call
            d = await limiter.hit("k")
        assert (d.allowed, d.degraded) == (True, True)
    assert isinstance(breaker.last_error, BackendError)
    assert "budget" in str(breaker.last_error)
    assert isinstance(breaker.last_error.__cause__, TimeoutError)
    assert breaker.open
    assert backend.calls == 3
    for _ in range(100):  # decided at once, with no call to the backend
        assert (await limiter.hit("k")).degraded
    assert backend.calls == 3
    backend.mode = "ok"
    await anyio.sleep(0.35)
    d = await limiter.hit("k")  # the probe
    assert (d.allowed, d.degraded, d.remaining) == (True, False, 1)
    assert not breaker.open
    assert backend.calls == 4


async def test_policies_when_the_breaker_is_open(name: str) -> None:
    backend = Flaky()
    backend.mode = "fail"
    breaker = CircuitBreaker(failures=1, cooldown=60)

    def make(policy: Literal["allow", "deny", "raise"] | Backend) -> Limiter:
        return Limiter(
            "1/hour", backend=backend, name=name, breaker=breaker, on_backend_error=policy
        )

    with pytest.raises(BackendError) as info:
        await make("raise").hit("k")  # opens the breaker
    assert isinstance(info.value.__cause__, ConnectionResetError)
    with pytest.raises(BackendError, match="skipped") as info:
        await make("raise").hit("k")
    assert info.value.__cause__ is breaker.last_error
    allowed, denied = await make("allow").hit("k"), await make("deny").hit("k")
    assert (allowed.allowed, allowed.degraded) == (True, True)
    assert (denied.allowed, denied.degraded, denied.retry_after) == (False, True, 3600.0)
    fallback = make(MemoryBackend())
    assert [(await fallback.hit("k")).allowed for _ in range(2)] == [True, False]
    assert (await fallback.hit("k")).degraded
    assert backend.calls == 1


async def test_a_failing_fallback_fails_open(name: str) -> None:
    backend, fallback = Flaky(), Flaky()
    backend.mode = fallback.mode = "fail"
    limiter = Limiter("1/hour", backend=backend, name=name, on_backend_error=fallback)
    d = await limiter.hit("k")
    assert (d.allowed, d.degraded, fallback.calls) == (True, True, 1)


async def test_warning_is_rate_limited(name: str, caplog: pytest.LogCaptureFixture) -> None:
    backend = Flaky()
    backend.mode = "fail"
    limiter = Limiter("1/hour", backend=backend, name=name)
    with caplog.at_level(logging.WARNING, logger="glidelimit"):
        for _ in range(50):
            await limiter.hit("k")
    # one line for the failure policy's decisions, one when the breaker opened
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 2, lines
    assert all(name in line for line in lines)
    assert sum("decides without its backend" in line for line in lines) == 1
    assert sum("backend skipped" in line for line in lines) == 1


async def test_no_budget(name: str) -> None:
    backend = Flaky()
    backend.mode = "hang"
    limiter = Limiter("1/hour", backend=backend, name=name, backend_timeout=None)
    with anyio.move_on_after(0.3) as scope:
        await limiter.hit("k")
    assert scope.cancelled_caught  # only the caller's own deadline ends it


def test_budget_under_trio(name: str) -> None:
    async def main() -> None:
        backend = Flaky()
        backend.mode = "hang"
        limiter = Limiter("1/hour", backend=backend, name=name, backend_timeout=0.05)
        with trio.fail_after(2):
            assert (await limiter.hit("k")).degraded

    trio.run(main)


async def test_local_cache_denies_without_a_round_trip(backend: Backend, name: str) -> None:
    counted = Flaky(backend)
    limiter = Limiter(
        "2/second",
        backend=counted,
        name=name,
        algorithm="fixed_window",
        local_cache=True,
        on_backend_error="raise",
    )
    await limiter.hit("k", cost=2)
    denied = await limiter.hit("k", cost=2)
    assert not denied.allowed
    assert 0 < denied.retry_after <= 1
    calls = counted.calls
    for _ in range(50):
        d = await limiter.hit("k", cost=2)
        assert (d.allowed, d.degraded) == (False, False)
        assert 0 < d.retry_after <= denied.retry_after
        assert d.reset_after <= denied.reset_after
        assert not (await limiter.hit("k", cost=3)).allowed  # a larger cost: denied too
        await limiter.peek("other")  # other keys are asked
    assert counted.calls == calls + 50  # the peeks at "other" only
    await limiter.hit("k", cost=1)  # a smaller cost may be allowed sooner: it is asked
    assert counted.calls == calls + 51
    await anyio.sleep(denied.retry_after + 0.05)
    assert (await limiter.hit("k", cost=2)).allowed  # expired with retry_after
    assert counted.calls == calls + 52


async def test_reset_clears_the_local_cache(name: str) -> None:
    limiter = Limiter("1/hour", name=name, backend=MemoryBackend(), local_cache=True)
    await limiter.hit("k")
    assert not (await limiter.hit("k")).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k")).allowed


async def test_degraded_denials_are_not_cached(name: str) -> None:
    backend = Flaky()
    limiter = Limiter(
        "1/hour",
        backend=backend,
        name=name,
        on_backend_error="deny",
        local_cache=True,
        breaker=CircuitBreaker(failures=1000),
    )
    backend.mode = "fail"
    assert not (await limiter.hit("k")).allowed
    backend.mode = "ok"  # back: the next decision is the backend's own
    d = await limiter.hit("k")
    assert (d.allowed, d.degraded) == (True, False)


async def test_local_cache_is_bounded(name: str) -> None:
    from glidelimit import _guard

    limiter = Limiter("1/hour", name=name, backend=Flaky(), local_cache=True)
    for i in range(_guard._DENIED_MAX + 100):
        await limiter.hit(f"k{i}")
        await limiter.hit(f"k{i}")
    denied = limiter._guard._denied
    assert denied is not None
    assert len(denied) == _guard._DENIED_MAX


KEYS = [
    "x" * 10_240,
    "{braces}",
    "}{",
    "a}b{c}",
    "line\nbreak\r\n",
    "tab\there",
    "nul\x00byte",
    "ünïcødé ключ 键 🔑",
    " ",
]


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window", "sliding_log"])
async def test_odd_keys_work(backend: Backend, name: str, algorithm: str) -> None:
    limiter = Limiter(
        ["2/hour", "3/day"],
        backend=backend,
        name=name,
        algorithm=algorithm,
        on_backend_error="raise",
    )
    for key in KEYS:
        assert (await limiter.hit(key)).remaining == 1
    for key in KEYS:  # each key counts on its own
        assert (await limiter.hit(key)).remaining == 0
        assert not (await limiter.hit(key)).allowed
        await limiter.reset(key)
        assert (await limiter.hit(key)).remaining == 1


_names = st.text(alphabet=st.characters(blacklist_characters=":{}"), min_size=1, max_size=8)
_keys = st.text(alphabet="ab:{}\n", min_size=1, max_size=12)


@given(_names, _keys, _names, _keys)
def test_names_and_keys_never_collide(name1: str, key1: str, name2: str, key2: str) -> None:
    rates = ["1/s", "2/s"]
    keys1 = set(Limiter(rates, name=name1).keys(key1))
    keys2 = set(Limiter(rates, name=name2).keys(key2))
    assert (keys1 == keys2) == ((name1, key1) == (name2, key2))
    if (name1, key1) != (name2, key2):
        assert not keys1 & keys2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend_timeout": 0}, "backend_timeout must be a positive number of seconds, got 0"),
        ({"backend_timeout": -1}, "backend_timeout"),
        ({"backend_timeout": math.nan}, "backend_timeout"),
        ({"backend_timeout": "1"}, "backend_timeout"),
        ({"breaker": 3}, "breaker must be a CircuitBreaker, got 3"),
        ({"local_cache": "yes"}, "local_cache must be True or False, got 'yes'"),
    ],
)
def test_limiter_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Limiter("1/s", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cost", [10**30, 2**53, math.inf, -math.inf, math.nan, 1e300])
async def test_absurd_costs_are_rejected(cost: float) -> None:
    limiter = Limiter("10/second", backend=MemoryBackend())
    with pytest.raises(ConfigurationError, match="cost"):
        await limiter.hit("k", cost=cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", ["1/99999999999999d", "9999999999999999/hour", "1/0.0001ms"])
def test_absurd_rates_are_rejected(rate: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"invalid rate '{rate}'|cannot parse rate"):
        Limiter(rate)
