"""What only the Valkey backend does: URLs, connecting, the server clock, script reloads,
hash tags on a cluster, key TTLs."""

from __future__ import annotations

import asyncio
import sys
import time

import anyio
import anyio.abc
import pytest
from glide import GlideClient, GlideClientConfiguration, NodeAddress

from _servers import Deployment, Server, cli, free_port
from glidelimit import BackendError, ConfigurationError, Limiter, ValkeyBackend

ALGORITHMS = ["fixed_window", "sliding_window", "sliding_log", "gcra"]


def test_from_url_forms() -> None:
    b = ValkeyBackend.from_url("valkeys://alice:p%40ss@127.0.0.1:7000/2")
    config = b._config
    assert config is not None
    assert config.use_tls is True
    assert config.database_id == 2
    assert config.credentials is not None
    assert (config.credentials.username, config.credentials.password) == ("alice", "p@ss")
    assert (config.addresses[0].host, config.addresses[0].port) == ("127.0.0.1", 7000)
    assert type(ValkeyBackend.from_url("redis://[::1]:6380?cluster=true")._config).__name__ == (
        "GlideClusterClientConfiguration"
    )
    plain = ValkeyBackend.from_url("redis://localhost", request_timeout=500)._config
    assert plain is not None
    assert (plain.use_tls, plain.request_timeout) == (False, 500)
    assert ValkeyBackend.from_url("rediss://:secret@h")._config.use_tls is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1", "unknown scheme 'http'"),
        ("valkey://127.0.0.1:port", "Port could not be cast"),
        ("valkey://127.0.0.1/zero", "database must be a number"),
        ("valkey://127.0.0.1?timeout=3", "unknown query parameter"),
        ("valkey://127.0.0.1?cluster=maybe", "cluster must be true or false"),
    ],
)
def test_from_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        ValkeyBackend.from_url(url)
    assert repr(url) in str(info.value)


def test_from_url_rejects_unknown_glide_option() -> None:
    with pytest.raises(ConfigurationError, match="no_such_option"):
        ValkeyBackend.from_url("valkey://127.0.0.1", no_such_option=1)
    with pytest.raises(ConfigurationError, match="given twice"):
        ValkeyBackend.from_url("valkey://127.0.0.1/1?db=2")
    with pytest.raises(ConfigurationError, match="alice"):
        ValkeyBackend.from_url("valkey://alice@127.0.0.1")  # a user needs a password


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("valkey://127.0.0.1:6379", {"request_timeout": "soon"}, "TypeError"),
        ("valkey://127.0.0.1:6379", {"no_such_option": 1}, "no_such_option"),
        ("valkey://127.0.0.1:6379", {"insecure": True}, "insecure"),
    ],
)
def test_bad_glide_options_are_refused_at_once(
    url: str, options: dict[str, object], message: str
) -> None:
    # not accepted, then met by every decision as an "outage" that the policy decides
    with pytest.raises(ConfigurationError, match=message):
        ValkeyBackend.from_url(url, **options)


def test_insecure_tls_without_tls_is_refused_at_once() -> None:
    from glide import AdvancedGlideClientConfiguration, TlsAdvancedConfiguration

    insecure = AdvancedGlideClientConfiguration(
        tls_config=TlsAdvancedConfiguration(use_insecure_tls=True)
    )
    with pytest.raises(ConfigurationError, match="use_insecure_tls"):
        ValkeyBackend.from_url("valkey://127.0.0.1:6379", advanced_config=insecure)
    ValkeyBackend.from_url("valkeys://127.0.0.1:6379", advanced_config=insecure)  # with TLS: fine


async def test_unresponsive_server_is_not_waited_for_by_every_call(name: str) -> None:
    """A server that accepts connections and never answers: the first attempt waits out the
    connection timeout; every call queued behind it, and every call during the back-off
    that follows, is decided at once by the failure policy."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=free_port())
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    held: list[anyio.abc.SocketStream] = []

    async def hold(stream: anyio.abc.SocketStream) -> None:
        held.append(stream)  # accept, never reply
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        unresponsive = ValkeyBackend.from_url(f"valkey://127.0.0.1:{port}")
        limiter = Limiter("5/s", backend=unresponsive, name=name)
        durations: list[float] = []

        async def timed_hit() -> None:
            started = anyio.current_time()
            assert (await limiter.hit("k")).degraded
            durations.append(anyio.current_time() - started)

        async with anyio.create_task_group() as callers:
            for _ in range(20):
                callers.start_soon(timed_hit)
        assert max(durations) < 4.0  # one connection timeout (2 s), not twenty in a row
        started = anyio.current_time()
        assert (await limiter.hit("k")).degraded
        assert anyio.current_time() - started < 0.1  # backing off: no new attempt yet
        tg.cancel_scope.cancel()
    await unresponsive.aclose()
    for stream in held:
        await stream.aclose()
    await listener.aclose()


async def test_lazy_connect_and_failure_policies(name: str) -> None:
    async with ValkeyBackend.from_url(f"valkey://127.0.0.1:{free_port()}") as dead:
        with pytest.raises(BackendError) as info:
            await dead.connect()
        assert info.value.__cause__ is not None
        limiter = Limiter("1/second", backend=dead, name=name)
        d = await limiter.hit("k")
        assert (d.allowed, d.degraded) == (True, True)
        denied = await Limiter("1/second", backend=dead, name=name, on_backend_error="deny").hit(
            "k"
        )
        assert (denied.allowed, denied.degraded) == (False, True)
        with pytest.raises(BackendError):
            await Limiter("1/second", backend=dead, name=name, on_backend_error="raise").hit("k")


async def test_fallback_backend(name: str) -> None:
    from glidelimit import MemoryBackend

    async with ValkeyBackend.from_url(f"valkey://127.0.0.1:{free_port()}") as dead:
        limiter = Limiter("2/hour", backend=dead, name=name, on_backend_error=MemoryBackend())
        assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]
        assert (await limiter.hit("k")).degraded


async def test_wraps_an_existing_client(valkey: Server, name: str) -> None:
    client = await GlideClient.create(
        GlideClientConfiguration([NodeAddress("127.0.0.1", valkey.port)])
    )
    async with ValkeyBackend(client) as backend:  # closing it closes the client
        limiter = Limiter("1/hour", backend=backend, name=name)
        assert (await limiter.hit("k")).allowed
        assert not (await limiter.hit("k")).allowed


async def test_connect_makes_every_script_ready(
    valkey_url: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glide's Script takes milliseconds to make (cffi): connect() makes them, so that the
    # first decisions after startup do not pay for it
    from glidelimit.algorithms import SCRIPTS
    from glidelimit.backends.valkey import _send

    monkeypatch.setattr(_send, "_scripts", {})
    async with ValkeyBackend.from_url(valkey_url) as backend:
        await backend.connect()
        assert set(_send._scripts) == {algorithm.name for algorithm in SCRIPTS}
        ready = dict(_send._scripts)
        assert (await Limiter("1/hour", backend=backend, name=name).hit("k")).allowed
        assert _send._scripts == ready  # the decision used them, made none


def test_a_new_event_loop_gets_a_new_client(valkey_url: str, name: str) -> None:
    backend = ValkeyBackend.from_url(valkey_url)
    limiter = Limiter("3/hour", backend=backend, name=name, on_backend_error="raise")

    async def hit() -> int:
        with anyio.fail_after(5):
            return (await limiter.hit("k")).remaining

    assert asyncio.run(hit()) == 2
    assert asyncio.run(hit()) == 1  # a client tied to the first loop would hang here
    asyncio.run(backend.aclose())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_client_clock_does_not_matter(
    valkey_backend: ValkeyBackend, name: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = Limiter(
        "4/hour", backend=valkey_backend, name=name, algorithm=algorithm, on_backend_error="raise"
    )
    assert (await limiter.hit("k", cost=2)).remaining == 2
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    # an hour ahead: on a client clock, every window would have passed
    d = await limiter.hit("k", cost=2)
    assert (d.allowed, d.remaining) == (True, 0)
    d = await limiter.hit("k")
    assert not d.allowed
    assert 800 < d.retry_after <= 7200  # gcra: one emission interval, 900 s


def _flush_scripts(servers: list[Server]) -> None:
    for server in servers:
        assert cli(server.port, "SCRIPT", "FLUSH").strip() == "OK"


async def test_script_flush_is_survived(deployment: Deployment, name: str) -> None:
    servers, url = deployment.servers, deployment.url
    async with ValkeyBackend.from_url(url) as backend:
        for algorithm in ALGORITHMS:
            limiter = Limiter(
                "5/hour",
                backend=backend,
                name=name + algorithm,
                algorithm=algorithm,
                on_backend_error="raise",
            )
            assert (await limiter.hit("k")).remaining == 4
            _flush_scripts(servers)
            d = await limiter.hit("k")
            assert (d.remaining, d.degraded) == (3, False)


async def test_cluster_multi_rate_no_crossslot(
    cluster_backend: ValkeyBackend, valkey_cluster: list[Server], name: str
) -> None:
    for algorithm in ALGORITHMS:
        limiter = Limiter(
            ["10/second", "1000/hour", "5000/day"],
            backend=cluster_backend,
            name=name,
            algorithm=algorithm,
            on_backend_error="raise",
        )
        keys = [f"user:{i}" for i in range(300)] + ["{x}", "}", "a}b{c"]
        decisions = await asyncio.gather(*(limiter.hit(k, cost=2) for k in keys))
        assert all(d.allowed and d.remaining == 8 for d in decisions)
    slots = {
        cli(valkey_cluster[0].port, "CLUSTER", "KEYSLOT", key).strip()
        for key in Limiter(["1/s", "1/h", "1/d"], name=name).keys("a}b{c")
    }
    assert len(slots) == 1


@pytest.mark.parametrize(
    ("algorithm", "longest_ms"),
    [
        ("fixed_window", 60_000),
        ("sliding_window", 120_000),
        ("sliding_log", 60_000),
        ("gcra", 30_000),
    ],
)
async def test_every_key_has_a_ttl_no_longer_than_it_needs(
    valkey_backend: ValkeyBackend, valkey: Server, name: str, algorithm: str, longest_ms: int
) -> None:
    limiter = Limiter(
        "10/minute",
        backend=valkey_backend,
        name=name,
        algorithm=algorithm,
        on_backend_error="raise",
    )
    d = await limiter.hit("k", cost=5)
    (key,) = limiter.keys("k")
    started = time.monotonic()
    ttl = int(cli(valkey.port, "PTTL", key))
    took_ms = (time.monotonic() - started) * 1000 + 2
    assert 0 < ttl <= longest_ms
    # exactly as long as its state matters (less the time valkey-cli took)
    assert d.reset_after * 1000 - took_ms <= ttl <= d.reset_after * 1000


async def test_a_lone_calls_budget_ends_it_and_leaves_the_task_uncancelled(
    own_valkey: Server, name: str
) -> None:
    async with ValkeyBackend.from_url(own_valkey.url) as backend:
        limiter = Limiter("5/second", backend=backend, name=name, backend_timeout=0.1)
        await limiter.hit("warm")
        cli(own_valkey.port, "CLIENT", "PAUSE", "600", "ALL")
        started = time.monotonic()
        with anyio.fail_after(2):
            decision = await limiter.hit("k")  # alone: nothing else in flight
        assert 0.09 < time.monotonic() - started < 0.4
        assert decision.degraded  # the failure policy decided, at the budget
        task = asyncio.current_task()
        assert task is not None
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 0  # the budget took its cancellation back
        await asyncio.sleep(0)  # and no stray cancellation is left to land later


async def test_answered_calls_arm_no_budget_timer(
    own_valkey: Server, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budgets' one timer wakes the event loop for a call still waiting, not once for
    # each call that was answered long before its budget ran out.
    from glidelimit._budget import _Queue

    fired = 0
    fire = _Queue._fire

    def counted(self: _Queue, loop: asyncio.AbstractEventLoop) -> None:
        nonlocal fired
        fired += 1
        fire(self, loop)

    monkeypatch.setattr(_Queue, "_fire", counted)
    async with ValkeyBackend.from_url(own_valkey.url) as backend:
        limiter = Limiter("1000000/second", backend=backend, name=name, backend_timeout=0.05)
        calls, until = 0, time.monotonic() + 0.4  # eight budgets long
        while time.monotonic() < until:
            assert (await limiter.hit("k")).allowed
            calls += 1
        assert calls > 100
        assert fired <= 12  # one per budget or so, not one per call
        cli(own_valkey.port, "CLIENT", "PAUSE", "600", "ALL")
        started = time.monotonic()
        decision = await limiter.hit("k")  # the timer still ends a waiting call on time
        assert decision.degraded
        assert 0.04 < time.monotonic() - started < 0.3


async def test_lone_calls_with_other_budgets_end_on_their_own_deadlines(
    own_valkey: Server, name: str
) -> None:
    # One backend, two limiters: the budget timer is armed for one call's deadline and must
    # still end the next call at that call's own, earlier or later. (Both budgets are below
    # glide's own request timeout, 250 ms.)
    async with ValkeyBackend.from_url(own_valkey.url) as backend:
        long = Limiter("5/second", backend=backend, name=f"{name}-l", backend_timeout=0.15)
        short = Limiter("5/second", backend=backend, name=f"{name}-s", backend_timeout=0.03)
        for first, then, took in ((long, short, (0.025, 0.1)), (short, long, (0.13, 0.22))):
            cli(own_valkey.port, "CLIENT", "UNPAUSE")
            await first.hit("warm")  # answered: the timer stays armed for its deadline
            cli(own_valkey.port, "CLIENT", "PAUSE", "1000", "ALL")
            started = time.monotonic()
            assert (await then.hit("k")).degraded
            assert took[0] < time.monotonic() - started < took[1]


async def test_a_callers_own_cancellation_passes_a_lone_calls_budget(
    own_valkey: Server, name: str
) -> None:
    async with ValkeyBackend.from_url(own_valkey.url) as backend:
        limiter = Limiter("5/second", backend=backend, name=name, backend_timeout=0.3)
        await limiter.hit("warm")
        cli(own_valkey.port, "CLIENT", "PAUSE", "600", "ALL")
        with anyio.move_on_after(0.05) as scope:  # the caller's deadline, first
            await limiter.hit("a")
        assert scope.cancelled_caught
        task = asyncio.create_task(limiter.hit("b"))
        await asyncio.sleep(0.05)
        task.cancel()  # native asyncio cancellation
        with pytest.raises(asyncio.CancelledError):
            await task
        await anyio.sleep(0.4)  # past every budget: nothing fires on a finished task
        assert (await limiter.hit("c")).allowed
