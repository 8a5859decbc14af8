"""Workers sharing a quota across processes: fleet-fair acquire(), throttle()."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import anyio
import pytest

from _servers import Server, cli
from glidelimit import Limiter, MemoryBackend, RateLimitExceeded
from glidelimit.backends import Backend

WAITER = """
import asyncio, json, sys, time
from glidelimit import Limiter, ValkeyBackend

async def main(url, name, process, processes, per_process):
    async with ValkeyBackend.from_url(url) as backend:
        await backend.connect()
        limiter = Limiter("20/second", backend=backend, name=name, on_backend_error="raise")
        process, processes = int(process), int(processes)
        # one acquire on a key of its own first: a process's first call pays one-time costs
        # (glide sets up its FFI on first use), which could make its first arrival late
        await limiter.acquire(f"warm-up-{process}")
        print("ready", flush=True)
        start = float(await asyncio.to_thread(sys.stdin.readline))

        async def waiter(j):
            # arrivals interleave across processes, 5 ms apart: a known global order
            order = j * processes + process
            await asyncio.sleep(max(0.0, start + order * 0.005 - time.time()))
            arrived = time.time()  # on a loaded machine, later than planned, and out of order
            await limiter.acquire("quota", timeout=30)
            return arrived, time.time()

        print(json.dumps(await asyncio.gather(*(waiter(j) for j in range(int(per_process))))))

asyncio.run(main(*sys.argv[1:]))
"""


def evalsha_calls(servers: list[Server]) -> int:
    calls = 0
    for server in servers:
        for line in cli(server.port, "INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_evalsha:"):
                calls += int(line.split("calls=")[1].split(",")[0])
    return calls


@pytest.mark.parametrize("deployment", ["valkey", "cluster"])
def test_fleet_fair_acquire(request: pytest.FixtureRequest, deployment: str, name: str) -> None:
    """40 waiters in 4 processes on a 20/s gcra quota: the burst of 20, then exactly one every
    50 ms, in arrival order across the processes, with one script call per waiter."""
    servers: list[Server] = (
        [request.getfixturevalue("valkey")]
        if deployment == "valkey"
        else request.getfixturevalue("valkey_cluster")
    )
    url = request.getfixturevalue("valkey_url" if deployment == "valkey" else "cluster_url")
    processes, per_process = 4, 10
    calls_before = evalsha_calls(servers)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WAITER, url, name, str(p), str(processes), str(per_process)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    for proc in procs:  # every process has connected and warmed up: then the start is set
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    start = time.time() + 0.5
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()
    waiters: list[tuple[float, float]] = []  # (arrived, admitted)
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        waiters += [(arrived, at) for arrived, at in json.loads(out.splitlines()[-1])]
    assert len(waiters) == processes * per_process
    # first come, first served across processes: of two waiters that waited for their slots
    # (50 ms apart), the one that arrived first is admitted first; one served out of turn
    # would be 50 ms off. Arrivals closer than 10 ms may reach the server in either order on a
    # loaded machine (a process can be descheduled between noting its arrival and sending).
    waited = [(arrived, at) for arrived, at in waiters if at > arrived + 0.02]
    assert len(waited) >= 15
    for (a1, t1), (a2, t2) in itertools.permutations(waited, 2):
        if a1 + 0.01 < a2:
            assert t1 <= t2 + 0.002, sorted((round(a - start, 3), round(t - start, 3))
                                            for a, t in waiters)  # fmt: skip
    times = sorted(at for _, at in waiters)
    arrivals = [arrived for arrived, _ in sorted(waiters, key=lambda w: w[1])]
    for k, at in enumerate(times):
        # the burst of 20, then the rate: the k-th admission is never earlier than GCRA's
        # schedule (the first instant the bucket holds a token for it) ...
        schedule = start + max(0, k - 19) * 0.05
        assert at >= schedule - 0.005, k
        # ... and not much later than that, or than its arrival: waiters sleep to their slot
        assert at <= max(arrivals[k], schedule) + 0.1, k
    # so never more than 20 in any one-second span after the burst
    after = times[20:]
    assert all(sum(1 for u in after[i:] if u < t + 1.0) <= 20 for i, t in enumerate(after))
    # about one script call per admitted acquire (and each process's warm-up): no polling
    assert evalsha_calls(servers) - calls_before <= processes * (per_process + 1) + 2


async def test_acquire_with_token_cost(backend: Backend, name: str) -> None:
    """An LLM-style quota: 1000 tokens a second, calls costing what their prompt costs."""
    limiter = Limiter("1000/second", backend=backend, name=name, on_backend_error="raise")
    started = anyio.current_time()
    for tokens in [600, 300, 500]:  # 1400 tokens: the last 400 wait for 0.4 s of refill
        await limiter.acquire("llm", cost=tokens)
    assert 0.35 < anyio.current_time() - started < 0.8
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire("llm", cost=1001)  # more than the bucket holds: at once
    assert info.value.decision.retry_after == float("inf")


async def test_throttle_decorator(name: str) -> None:
    limiter = Limiter("2/second", backend=MemoryBackend(), name=name, burst=2)
    calls: list[str] = []

    @limiter.throttle(key=lambda user, **_: f"user:{user}", cost=lambda user, n=1: n)
    async def fetch(user: str, n: int = 1) -> str:
        calls.append(user)
        return user

    started = anyio.current_time()
    assert await fetch("a", n=2) == "a"
    assert await fetch("b") == "b"  # another key: not held up
    assert anyio.current_time() - started < 0.1
    assert await fetch("a") == "a"  # waits for a's refill
    assert anyio.current_time() - started >= 0.45

    @limiter.throttle(wait=False)
    async def strict() -> int:
        return 1

    assert [await strict(), await strict()] == [1, 1]
    with pytest.raises(RateLimitExceeded):
        await strict()

    @limiter.throttle("shared", timeout=0.1)
    async def impatient() -> None:
        pass

    await impatient()
    await impatient()
    with pytest.raises(RateLimitExceeded):
        await impatient()  # the next slot is 0.5 s away
    assert calls == ["a", "b", "a"]
