"""Chaos on real valkey-server processes, with 200 coroutines deciding all along.

Each scenario asserts, with counts: no exception reaches a caller (under "raise", only
chained BackendErrors); every call returns within the time budget + 50 ms; once the server is
back, decisions made by it resume within 2 s; and once back (throughout, where no data is
lost) no key is admitted beyond its limit.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import anyio
import pytest

from _servers import (
    Deployment,
    Server,
    cli,
    command,
    keyslot,
    migrate_slot,
    owner,
    primaries,
    replica_of,
    standalone,
)
from glidelimit import BackendError, Decision, Limiter, ValkeyBackend

BUDGET = 0.2  # the default backend_timeout
SLACK = 0.05
RECOVERY = 2.0
WORKERS = 200
PAUSE = 0.1


@dataclass
class Traffic:
    """Calls made by WORKERS coroutines, each pausing between its calls (as requests would)."""

    limiter: Limiter
    keys: list[str]
    calls: list[tuple[float, float, str, Decision | None]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    in_flight: int = 0
    stopped: bool = False
    loop_lag: float = 0.0  # the longest the event loop was late for a timer: not the limiter

    async def worker(self, n: int) -> None:
        for i in range(50_000):  # bounded in count; stopped in time by the scenario
            if self.stopped:
                return
            key = self.keys[(n + i) % len(self.keys)]
            started = time.monotonic()
            self.in_flight += 1
            try:
                decision: Decision | None = await self.limiter.hit(key)
            except Exception as exc:  # counted, and asserted to be none
                self.errors.append(exc)
                decision = None
            finally:
                self.in_flight -= 1
            self.calls.append((started, time.monotonic(), key, decision))
            # ~4k calls/s in all: enough to see every failure, and leaves the loop idle enough
            # that a timer is not late by itself (a saturated loop would break any budget)
            await anyio.sleep(PAUSE)

    async def watch_loop(self) -> None:
        while not self.stopped:
            started = time.monotonic()
            await anyio.sleep(0.01)
            self.loop_lag = max(self.loop_lag, time.monotonic() - started - 0.01)

    def report(self, back: float) -> float:
        """Assert what every scenario promises; return the recovery time after ``back``."""
        if self.limiter.on_backend_error == "raise":  # BackendError, chained, and nothing else
            assert all(type(e) is BackendError and e.__cause__ for e in self.errors)
        else:
            assert self.errors == []
        durations = [end - start for start, end, *_ in self.calls]
        # the budget is a timer on the event loop: it cannot fire before the loop gets to it,
        # so a loop that was late (a loaded machine) makes a call late by as much
        slow = [d for d in durations if d > BUDGET + SLACK + self.loop_lag]
        assert slow == [], (
            f"{len(slow)} of {len(durations)} calls over budget: max {max(slow):.3f}s; "
            f"the event loop was up to {self.loop_lag:.3f}s late meanwhile (a loaded machine?)"
        )
        resumed = [
            end
            for start, end, _, d in self.calls
            if start >= back and d is not None and not d.degraded
        ]
        assert resumed, "no decision was made by the server after it was back"
        recovery = min(resumed) - back
        degraded = sum(1 for *_, d in self.calls if d is not None and d.degraded)
        print(
            f"\n{len(self.calls)} calls, {degraded} degraded, max {max(durations) * 1000:.0f} ms "
            f"(loop lag {self.loop_lag * 1000:.0f} ms); "
            f"server decisions resumed {recovery * 1000:.0f} ms after it was back"
        )
        assert recovery <= RECOVERY
        return recovery


async def chaos(limiter: Limiter, keys: list[str], act: Callable[[Traffic], float]) -> Traffic:
    """Run traffic; run ``act`` (blocking, in a thread), which returns when the server was
    back; keep the traffic going until a second after decisions resume."""
    assert isinstance(limiter.backend, ValkeyBackend)
    await limiter.backend.connect()
    traffic = Traffic(limiter, keys)
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(traffic.watch_loop)
            for n in range(WORKERS):
                tg.start_soon(traffic.worker, n)
            await anyio.sleep(0.5)
            back = await anyio.to_thread.run_sync(act, traffic)
            for _ in range(int(RECOVERY / 0.05)):
                await anyio.sleep(0.05)
                if any(d and not d.degraded for s, *_, d in traffic.calls[-WORKERS:] if s >= back):
                    break
            await anyio.sleep(1.0)
            traffic.stopped = True
    traffic.report(back)
    return traffic


async def assert_exact(
    backend: ValkeyBackend, name: str, key: str, count: Callable[[bytes], int]
) -> None:
    """A fixed window of 50 and 200 concurrent hits: exactly 50 counted, never more admitted."""
    limiter = Limiter("50/hour", backend=backend, name=name + "x", algorithm="fixed_window")
    decisions = []

    async def hit() -> None:
        decisions.append(await limiter.hit(key))

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(hit)
    admitted = sum(1 for d in decisions if d.allowed and not d.degraded)
    maybe = sum(1 for d in decisions if d.degraded)  # timed out: may have been counted
    (stored,) = limiter.keys(key)
    assert count(stored) == 50
    assert 50 - maybe <= admitted <= 50


def hget_n(port: int, *cluster_flag: str) -> Callable[[bytes], int]:
    return lambda key: int(cli(port, *cluster_flag, "HGET", key, "n").strip())


@pytest.fixture
def own_server() -> Iterator[Server]:
    server = standalone()
    yield server
    server.kill()


def tag_slot(name: str, key: str) -> int:
    return keyslot(f"{{{name}:{key}}}")


async def test_script_flush_under_load(deployment: Deployment, name: str) -> None:
    servers, url = deployment.servers, deployment.url

    def flush_repeatedly(traffic: Traffic) -> float:
        for _ in range(20):
            for server in servers:
                assert command(server.port, "SCRIPT", "FLUSH") == "OK"
            time.sleep(0.1)
        return time.monotonic()

    async with ValkeyBackend.from_url(url) as backend:
        limiter = Limiter("1000000/hour", backend=backend, name=name)
        await chaos(limiter, [f"user:{i}" for i in range(50)], flush_repeatedly)
        cluster_flag = () if len(servers) == 1 else ("-c",)
        await assert_exact(backend, name, "after", hget_n(servers[0].port, *cluster_flag))


@pytest.mark.parametrize("policy", ["allow", "raise"])
async def test_sigkill_with_calls_in_flight_then_restart(
    own_server: Server, name: str, policy: Literal["allow", "raise"]
) -> None:
    in_flight = []

    def kill_and_restart(traffic: Traffic) -> float:
        assert own_server.proc is not None
        own_server.proc.send_signal(signal.SIGSTOP)  # every call now waits for it
        deadline = time.monotonic() + 0.18  # until the first calls run out of budget
        while traffic.in_flight < WORKERS and time.monotonic() < deadline:
            time.sleep(0.001)
        in_flight.append(traffic.in_flight)
        own_server.kill(signal.SIGKILL)
        time.sleep(1.0)
        back = time.monotonic()  # before it starts: its start-up counts against recovery
        own_server.start()  # same port, same directory; it lost every key (no persistence)
        return back

    async with ValkeyBackend.from_url(own_server.url) as backend:
        limiter = Limiter("1000000/hour", backend=backend, name=name, on_backend_error=policy)
        traffic = await chaos(limiter, [f"user:{i}" for i in range(50)], kill_and_restart)
        assert in_flight == [WORKERS]
        assert (len(traffic.errors) > 0) == (policy == "raise")
        await assert_exact(backend, name, "after", hget_n(own_server.port))


async def test_cluster_primary_killed_and_replica_promoted(
    replicated_cluster: list[Server], name: str
) -> None:
    servers = replicated_cluster
    victim = owner(servers, tag_slot(name, "user:0"))
    replica = replica_of(servers, victim)
    ranges = primaries(servers)[victim.port]
    # every key of the traffic is served by the victim, so that its failover is what we see
    keys = [
        key
        for key in (f"user:{i}" for i in range(2000))
        if any(low <= tag_slot(name, key) <= high for low, high in ranges)
    ][:20]

    def kill_and_fail_over(traffic: Traffic) -> float:
        victim.kill(signal.SIGKILL)
        last_seen_down = time.monotonic()
        for _ in range(600):  # its replica takes over after the node timeout (1.5 s)
            time.sleep(0.05)
            promoted = replica.port in primaries(servers)
            if promoted and "cluster_state:ok" in str(command(replica.port, "CLUSTER", "INFO")):
                return last_seen_down  # the latest instant it was seen not serving yet
            last_seen_down = time.monotonic()
        raise RuntimeError("the replica was not promoted within 30 s")

    async with ValkeyBackend.from_url(servers[0].url + "?cluster=true") as backend:
        limiter = Limiter("1000000/hour", backend=backend, name=name)
        await chaos(limiter, keys, kill_and_fail_over)
        await assert_exact(backend, name, keys[0], hget_n(replica.port, "-c"))


async def test_slot_migrated_under_traffic(own_cluster: list[Server], name: str) -> None:
    """MOVED and ASK redirections, and TRYAGAIN while a decision's two keys are split across
    nodes: no decision is lost or counted twice, so no key is admitted beyond its limit, even
    during the migration."""
    servers = own_cluster
    keys = [f"user:{i}" for i in range(4)]
    limit = 300

    def migrate(traffic: Traffic) -> float:
        for key in keys:
            slot = tag_slot(name, key)
            source = owner(servers, slot)
            target = next(s for s in servers if s is not source)
            migrate_slot(servers, slot, target, pause=0.05)
        return time.monotonic()

    async with ValkeyBackend.from_url(servers[0].url + "?cluster=true") as backend:
        limiter = Limiter(
            [f"{limit}/hour", "100000/day"], backend=backend, name=name, algorithm="fixed_window"
        )
        traffic = await chaos(limiter, keys, migrate)
        count = hget_n(servers[0].port, "-c")
        for key in keys:
            admitted = sum(
                1
                for *_, k, d in traffic.calls
                if k == key and d is not None and d.allowed and not d.degraded
            )
            stored = count(limiter.keys(key)[0])
            assert admitted <= stored <= limit
        await assert_exact(backend, name, keys[0], count)
