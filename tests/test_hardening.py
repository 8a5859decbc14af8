"""What no header, cancellation, close or outage may do: switch limiting off, or stall the app.

A failure policy is for a backend that is unavailable only: one caller's bad input, another
caller's cancellation, or a programming error never reach it. Each test here failed before
the limiter was made to hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator

import anyio
import pytest
from aiohttp import web

from _http_servers import serve_aiohttp
from _servers import HOST, Server, free_port, standalone
from glidelimit import (
    BackendError,
    ConcurrencyLimiter,
    ConfigurationError,
    Decision,
    Limiter,
    UsageError,
    ValkeyBackend,
    keys,
)
from glidelimit.aiohttp import rate_limit_middleware
from glidelimit.backends import Backend

# what a header of bytes that are not UTF-8 becomes (aiohttp decodes b"\xff\xfe" so), and a
# lone surrogate that JSON can carry
POISON = ["\udcff\udcfe", json.loads('"\\ud800"'), "\ud800x\udfff"]


# --- 1. one caller's key never fails another caller ------------------------------------------


@pytest.mark.parametrize("poison", POISON)
async def test_a_key_of_lone_surrogates_is_limited_like_any_other(
    backend: Backend, name: str, poison: str
) -> None:
    limiter = Limiter("5/minute", backend=backend, name=name, on_backend_error="raise")
    decisions = [await limiter.hit(poison) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert (await limiter.hit(poison + "x")).allowed  # another key, its own bucket
    await limiter.reset(poison)
    assert (await limiter.hit(poison)).allowed


async def test_poison_keys_beside_an_exhausted_key_change_nothing(
    backend: Backend, name: str
) -> None:
    """Calls of one batch: poison keys and bad keys among them never fail the others, never
    open the breaker, never let the failure policy admit the exhausted key."""
    limiter = Limiter("5/minute", backend=backend, name=name)  # fails open, were it asked
    for _ in range(5):
        assert await limiter.hit("victim")
    outcomes: list[Decision | BaseException] = []

    async def one(key: object) -> None:
        try:
            outcomes.append(await limiter.hit(key))  # type: ignore[arg-type]
        except ConfigurationError as exc:
            outcomes.append(exc)

    for _ in range(20):
        async with anyio.create_task_group() as tg:
            for i in range(30):
                key: object = ["victim", POISON[i % 3], 42, "", None][i % 5]
                tg.start_soon(one, key)
    decisions = [o for o in outcomes if isinstance(o, Decision)]
    refused = [o for o in outcomes if isinstance(o, ConfigurationError)]
    assert len(refused) == 20 * 18  # the non-strings and the empty keys, each alone
    assert not any(d.degraded for d in decisions)
    assert not limiter.breaker.open
    assert not (await limiter.hit("victim")).allowed


@pytest.mark.parametrize("header", [b"\xff\xfe", b"\xc3\x28", b"caf\xe9"])
async def test_a_header_of_bad_bytes_is_limited_over_http(
    http_backend: Backend, name: str, header: bytes
) -> None:
    """aiohttp decodes header bytes that are not UTF-8 with surrogates: keyed on such a
    header, a client is limited like any other, never answered 500, never let through."""
    limiter = Limiter("5/minute", backend=http_backend, name=name)
    app = web.Application(
        middlewares=[rate_limit_middleware(limiter, key=keys.header("X-API-Key"))]
    )

    async def item(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", item)
    async with serve_aiohttp(app) as url:
        port = int(url.rsplit(":", 1)[1])
        statuses = [await raw_get(port, header) for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def raw_get(port: int, api_key: bytes) -> int:
    """GET / with ``X-API-Key`` sent as the very bytes given (no HTTP client sends those)."""
    stream = await anyio.connect_tcp(HOST, port)
    async with stream:
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: " + api_key + b"\r\n\r\n"
        )
        data = b""
        with anyio.fail_after(5):
            while b"\r\n" not in data:
                data += await stream.receive()
    return int(data.split(b" ", 2)[1])


# --- 2 and 3. a cancelled caller undoes what the server did for it, and only that ----------------


async def batched(limiter: Limiter, keys_: list[str], cancelled: int) -> list[object]:
    """With one call in flight, calls on ``keys_`` gather into a batch; the call at index
    ``cancelled`` is cancelled once they all have joined. Their outcomes."""
    first = asyncio.create_task(limiter.hit("first"))
    await asyncio.sleep(0)  # sent: the next calls gather
    tasks = [asyncio.create_task(limiter.hit(key)) for key in keys_]
    await asyncio.sleep(0)  # they have joined the batch
    tasks[cancelled].cancel()
    await first
    return await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("cancelled", [0, 3, 9])
async def test_cancelling_a_batched_call_leaves_the_others_their_answers(
    deployment_backend: ValkeyBackend, name: str, cancelled: int
) -> None:
    limiter = Limiter("5/minute", backend=deployment_backend, name=name, on_backend_error="raise")
    for _ in range(5):
        await limiter.hit("victim")
    results = await batched(limiter, ["victim"] * 10, cancelled)  # the first of the batch, or not
    for i, result in enumerate(results):
        if i == cancelled:
            assert isinstance(result, asyncio.CancelledError)
        else:  # the server's own answer: denied, not a fail-open "allowed, degraded"
            assert isinstance(result, Decision), result
            assert (result.allowed, result.degraded) == (False, False)


async def test_random_cancellation_under_load_never_admits_an_exhausted_key(
    deployment_backend: ValkeyBackend, name: str
) -> None:
    # fails open, were it asked; and a budget that no call runs out of on a loaded machine:
    # what is tested is that cancellations never let the policy decide
    limiter = Limiter("5/minute", backend=deployment_backend, name=name, backend_timeout=5)
    for _ in range(5):
        await limiter.hit("victim")
    admitted = degraded = answered = 0
    stop = time.monotonic() + 1.5
    tasks: set[asyncio.Task[None]] = set()

    async def caller() -> None:
        nonlocal admitted, degraded, answered
        while time.monotonic() < stop:
            decision = await limiter.hit("victim")
            answered += 1
            admitted += decision.allowed
            degraded += decision.degraded

    async def keep_callers() -> None:
        while time.monotonic() < stop:
            while len(tasks) < 100:
                task = asyncio.create_task(caller())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.002)
            if tasks:
                random.choice(list(tasks)).cancel()  # one in-flight hit, every 2 ms

    await keep_callers()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert answered > 1000
    assert (admitted, degraded) == (0, 0)


async def test_a_cancelled_acquire_gives_its_reservation_back(
    deployment_backend: ValkeyBackend, name: str
) -> None:
    """Cancelled while its reservation is on its way (batched with others) or while it
    sleeps until its slot: either way the slot is given back, and nobody else fails."""
    limiter = Limiter("10/second", backend=deployment_backend, name=name, on_backend_error="raise")
    assert await limiter.hit("k", cost=10)  # empty: every unit now is 0.1 s away
    first = asyncio.create_task(limiter.peek("first"))
    await asyncio.sleep(0)  # sent: the next calls gather
    waiters = [asyncio.create_task(limiter.acquire("k", cost=2)) for _ in range(6)]
    await asyncio.sleep(0)  # they have joined the batch
    waiters[0].cancel()  # on its way, in the batch
    await first
    await asyncio.sleep(0.05)
    waiters[1].cancel()  # sleeping until its slot
    await asyncio.gather(waiters[0], waiters[1], return_exceptions=True)
    started = time.monotonic()
    d = await limiter.peek("k", cost=0)
    # four reservations of 0.2 s kept after the first hit's 1 s: full again in 1.8 s (less the
    # time since), not the 2.2 s that six would take
    assert 1.5 < d.reset_after + (time.monotonic() - started) < 1.85
    results = await asyncio.gather(*waiters[2:], return_exceptions=True)
    assert all(isinstance(r, Decision) and r.allowed for r in results)


async def test_random_cancellation_of_slot_holders_leaves_no_slot_held(
    backend: Backend, name: str
) -> None:
    limiter = ConcurrencyLimiter(3, lease=30, backend=backend, name=name, on_backend_error="raise")
    inside = peak = errors = finished = 0

    async def holder() -> None:
        nonlocal inside, peak, errors, finished
        try:
            async with limiter.slot("k", timeout=5):
                inside += 1
                peak = max(peak, inside)
                try:
                    await asyncio.sleep(random.random() * 0.01)
                finally:
                    inside -= 1
            finished += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            errors += 1
            raise

    tasks = [asyncio.create_task(holder()) for _ in range(200)]
    cancelled = 0
    while not all(task.done() for task in tasks):
        await asyncio.sleep(0.003)
        live = [task for task in tasks if not task.done()]
        if live:
            random.choice(live).cancel()
            cancelled += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    assert peak <= 3
    assert errors == 0
    assert finished > 50
    assert cancelled > 10
    with anyio.fail_after(5):
        while await limiter.inflight("k"):  # noqa: ASYNC110 (a grant on its way is undone)
            await anyio.sleep(0.01)


# --- 4. closing one limiter changes no other ---------------------------------------------------


async def test_closing_a_limiter_leaves_the_default_backend_alone(name: str) -> None:
    login = Limiter("5/hour", name=f"{name}-login")
    for _ in range(5):
        await login.hit("alice")
    async with Limiter("10/second", name=f"{name}-other") as other:
        await other.hit("x")
    await Limiter("10/second", name=f"{name}-third").aclose()
    async with ConcurrencyLimiter(2, name=f"{name}-slots"):
        pass
    assert not (await login.hit("alice")).allowed


async def test_closing_a_limiter_leaves_a_shared_valkey_backend_open(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    login = Limiter("5/hour", backend=valkey_backend, name=f"{name}-login")
    for _ in range(5):
        await login.hit("alice")
    async with Limiter("10/second", backend=valkey_backend, name=f"{name}-other") as other:
        await other.hit("x")
    slots = ConcurrencyLimiter(2, backend=valkey_backend, name=f"{name}-slots")
    async with slots, slots.slot("x"):
        pass
    d = await login.hit("alice")
    assert (d.allowed, d.degraded) == (False, False)


# --- 5. an unreachable server never freezes the event loop --------------------------------------


class Ticker:
    """How late a 5 ms ticker ran: the longest the event loop was frozen."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.stopped = False

    async def run(self) -> None:
        while not self.stopped:
            started = time.monotonic()
            await anyio.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - started - 0.005)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose listener never accepts, with its backlog full: a connection
    attempt there gets no answer at all, as from a host that drops packets."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue; later attempts hang in SYN-SENT
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect((HOST, port))
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["refused", "black-holed"])
async def test_an_unreachable_server_never_stalls_the_event_loop(
    name: str, kind: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue("black_hole") if kind == "black-holed" else free_port()
    ticker = Ticker()
    durations: list[float] = []
    async with ValkeyBackend.from_url(f"valkey://{HOST}:{port}") as backend:
        limiter = Limiter("100/second", backend=backend, name=name)

        async def hits(seconds: float) -> None:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                started = time.monotonic()
                decision = await limiter.hit("k")
                durations.append(time.monotonic() - started)
                assert decision.degraded
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker.run)
            async with anyio.create_task_group() as callers:
                for _ in range(5):  # for as long as the reproduction ran
                    callers.start_soon(hits, 10.0)
            ticker.stopped = True
    assert len(durations) > 200  # 5 callers, 10 s, at most 0.2 s + 20 ms a call
    assert max(durations) < 0.2 + 0.1  # every hit within its budget
    assert ticker.worst < 0.1, f"the event loop froze for {ticker.worst:.3f}s"


@pytest.mark.slow
async def test_a_server_that_comes_back_is_used_within_a_second(name: str) -> None:
    port = free_port()
    ticker = Ticker()
    server = Server(port, __import__("tempfile").mkdtemp(prefix="glidelimit-back-"))
    try:
        async with ValkeyBackend.from_url(f"valkey://{HOST}:{port}") as backend:
            limiter = Limiter("1000/second", backend=backend, name=name)
            decided: list[tuple[float, bool]] = []

            async def hits() -> None:
                while not ticker.stopped:
                    decided.append((time.monotonic(), (await limiter.hit("k")).degraded))
                    await anyio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker.run)
                tg.start_soon(hits)
                await anyio.sleep(2.0)  # refused meanwhile
                await anyio.to_thread.run_sync(server.start)
                back = time.monotonic()
                with anyio.fail_after(5):
                    while not any(t > back and not degraded for t, degraded in decided):  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                ticker.stopped = True
    finally:
        server.kill()
    resumed = min(t for t, degraded in decided if t > back and not degraded)
    assert resumed - back < 1.0
    assert ticker.worst < 0.1, f"the event loop froze for {ticker.worst:.3f}s"


# --- 6. programming errors raise, whatever the policy -------------------------------------------


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
async def test_a_closed_backend_raises_at_once(backend: Backend, name: str, policy: str) -> None:
    limiter = Limiter("5/minute", backend=backend, name=name, on_backend_error=policy)  # type: ignore[arg-type]
    await limiter.hit("k")
    await backend.aclose()
    with anyio.fail_after(1), pytest.raises(UsageError, match="closed"):
        await limiter.hit("k")


def test_a_wrapped_client_used_from_another_event_loop_raises_at_once(
    valkey: Server, name: str
) -> None:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    async def make() -> ValkeyBackend:
        config = GlideClientConfiguration([NodeAddress(HOST, valkey.port)])
        return ValkeyBackend(await GlideClient.create(config))

    loop = asyncio.new_event_loop()
    backend = loop.run_until_complete(make())
    limiter = Limiter("5/minute", backend=backend, name=name, backend_timeout=None)

    async def elsewhere() -> None:
        with anyio.fail_after(2), pytest.raises(UsageError, match="another event loop"):
            await limiter.hit("k")

    asyncio.run(elsewhere())
    assert loop.run_until_complete(limiter.hit("k")).allowed  # its own loop: fine
    loop.run_until_complete(backend.aclose())
    loop.close()


def test_one_backend_serves_event_loops_in_several_threads(valkey_url: str, name: str) -> None:
    """Each thread's event loop gets a client of its own. (glide reads every client's answers
    on the event loop of the first client made, so that loop runs until the others are done,
    as an app's main loop would: see the deployment guide.)"""
    backend = ValkeyBackend.from_url(valkey_url)
    limiter = Limiter(
        "400/hour", backend=backend, name=name, on_backend_error="raise", backend_timeout=10
    )
    allowed: list[int] = []
    failures: list[BaseException] = []
    done = threading.Barrier(4)

    def thread() -> None:
        async def run() -> int:
            decisions = await asyncio.gather(*(limiter.hit("shared") for _ in range(150)))
            await anyio.to_thread.run_sync(done.wait, 30)  # every loop runs until all are done
            return sum(d.allowed for d in decisions)

        try:
            allowed.append(asyncio.run(run()))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=thread) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert sum(allowed) == 400  # 600 hits, exactly the limit admitted across the threads
    asyncio.run(backend.aclose())


# --- 7. no secret in an error, a log line or a repr ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "valkeys://user:TopSecret@host:99999",
        "valkey://user:TopSecret@host:6379?cluster=maybe",
        "valkey://user:TopSecret@host:6379/zero",
        "valkey://user:TopSecret@host:6379?what=ever",
        "valkey://user:TopSecret@host:6379/1?db=2",
        "nope://user:TopSecret@host:6379",
        "valkey://user:TopSecret@[::1",
        "valkey://default:Top/Secret+pw@cache:6379/0",
        "valkey://default:Top#Secret@cache:6379",
        "valkey://default:Top?Secret@cache:6379",
    ],
)
def test_a_bad_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ValkeyBackend.from_url(url)
    shown = f"{info.value} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert "TopSecret" not in shown
    assert "Top" not in shown.replace("TopSecret", "")  # no part of it either
    assert "TopSecret" not in repr(ValkeyBackend.from_url("valkey://u:TopSecret@h:1"))


async def test_a_wrong_password_never_shows_it(name: str, caplog: pytest.LogCaptureFixture) -> None:
    server = standalone()
    try:
        from _servers import cli

        cli(server.port, "CONFIG", "SET", "requirepass", "right")
        url = f"valkey://:TopSecret@{HOST}:{server.port}"
        with caplog.at_level(logging.DEBUG, logger="glidelimit"):
            async with ValkeyBackend.from_url(url) as backend:
                assert "TopSecret" not in repr(backend)
                with pytest.raises((BackendError, UsageError)) as info:
                    await backend.connect()
                # a wrong password is a misconfiguration, not an outage: never a quiet fail-open
                limiter = Limiter("5/minute", backend=backend, name=name)
                with pytest.raises(UsageError, match="WRONGPASS") as hit:
                    await limiter.hit("k")
        shown = f"{info.value} {info.value.__cause__!r} {hit.value} " + " ".join(
            r.getMessage() for r in caplog.records
        )
        assert "TopSecret" not in shown
    finally:
        server.kill()


# --- 8. eviction: warned about on Valkey, never of an exhausted key in memory --------------------


@pytest.mark.parametrize(
    ("policy", "warned"),
    [("allkeys-lru", True), ("volatile-lru", True), ("volatile-ttl", True), ("noeviction", False)],
)
async def test_an_evicting_server_is_warned_about_once(
    policy: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(free_port(), __import__("tempfile").mkdtemp(), ("--maxmemory-policy", policy))
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="glidelimit"):
            async with ValkeyBackend.from_url(server.url) as backend:
                await backend.connect()
                await backend.connect()
        lines = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        assert len(lines) == (1 if warned else 0), lines
        if warned:
            assert policy in lines[0]
            assert "noeviction" in lines[0]
    finally:
        server.kill()


async def test_a_user_who_may_not_read_the_config_is_not_warned_nor_failed(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    server = standalone()
    try:
        from _servers import cli

        cli(server.port, "ACL", "SETUSER", "limiter", "on", ">pw", "~glidelimit:*", "+@all",
            "-config")  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="glidelimit"):
            async with ValkeyBackend.from_url(f"valkey://limiter:pw@{HOST}:{server.port}") as b:
                await b.connect()
                limiter = Limiter("5/minute", backend=b, name=name, on_backend_error="raise")
                assert (await limiter.hit("k")).allowed
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        server.kill()


# --- 9. no decision holds the server, whatever its cost -----------------------------------------


async def test_a_huge_cost_on_the_sliding_log_is_one_quick_step(
    deployment_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter(
        "8000000/hour", algorithm="sliding_log", backend=deployment_backend, name=name,
        on_backend_error="raise", backend_timeout=1.0,
    )  # fmt: skip
    started = time.monotonic()
    assert (await limiter.hit("k", cost=8_000_000)).allowed
    d = await limiter.hit("k")
    assert (d.allowed, d.degraded) == (False, False)
    assert time.monotonic() - started < 0.5  # not 17 s of BUSY


async def test_an_event_loop_held_up_by_the_app_is_not_an_outage(
    valkey_backend: ValkeyBackend, name: str
) -> None:
    """The application blocks its own event loop past the budget while calls are in flight:
    their answers came meanwhile, and are used; the breaker stays closed."""
    limiter = Limiter("1000/second", backend=valkey_backend, name=name, on_backend_error="deny",
                      backend_timeout=0.1)  # fmt: skip
    await limiter.hit("warm")
    first = asyncio.ensure_future(limiter.hit("first"))
    await asyncio.sleep(0)
    calls = [asyncio.ensure_future(limiter.hit(f"k{i}")) for i in range(20)]
    await asyncio.sleep(0)
    time.sleep(0.3)  # noqa: ASYNC251 (the app blocks its own loop: that is the test)
    decisions = await asyncio.gather(first, *calls)
    assert not any(d.degraded for d in decisions)
    assert not limiter.breaker.open


async def test_a_long_key_is_stored_as_its_digest(backend: Backend, name: str) -> None:
    limiter = Limiter("2/minute", backend=backend, name=name)
    long_key = "k" * 100_000  # a header value an attacker chose, say
    (stored,) = limiter.keys(long_key)
    assert len(stored) < 200
    assert [(await limiter.hit(long_key)).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.hit(long_key + "x")).allowed  # another key
