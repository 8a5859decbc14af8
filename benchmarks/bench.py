"""Decisions per second: glidelimit against bare glide, measured side by side in one run.

    nox -s bench                       # starts its own valkey-server on a loopback port
    nox -s bench -- --url valkey://127.0.0.1:6379

Reports ratios against the baseline measured in the same run, never absolute targets.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

from glidelimit import Limiter, MemoryBackend, ValkeyBackend

# the tests' server helper: the benchmark starts Valkey exactly as the suite does
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _servers import standalone

BARE = Script(
    "local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return n"
)


async def rate(call: Callable[[int], Awaitable[object]], concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop:
            await call(i % 1000)
            i += concurrency
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - start)


async def main(url: str, host: str, port: int, seconds: float, repeats: int) -> None:
    client = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)]))
    backend = ValkeyBackend.from_url(url)
    await backend.connect()
    on_valkey = Limiter("1000000/hour", backend=backend, name="bench")
    in_memory = Limiter("1000000/hour", backend=MemoryBackend(), name="bench")
    cases: dict[str, Callable[[int], Awaitable[object]]] = {
        "bare glide invoke_script (INCR+PEXPIRE)": lambda i: client.invoke_script(
            BARE, keys=[f"bare:{i}"]
        ),
        "glidelimit gcra on Valkey": lambda i: on_valkey.hit(f"user:{i}"),
        "glidelimit gcra in memory": lambda i: in_memory.hit(f"user:{i}"),
    }
    print(f"concurrency 100, 1000 keys, {seconds}s per run, median of {repeats} runs\n")
    results = {}
    for name, call in cases.items():
        runs = [await rate(call, 100, seconds) for _ in range(repeats)]
        results[name] = statistics.median(runs)
    base = results["bare glide invoke_script (INCR+PEXPIRE)"]
    print("| case | decisions/s | x bare glide |\n|---|---:|---:|")
    for name, value in results.items():
        print(f"| {name} | {value:,.0f} | {value / base:.2f} |")
    await client.close()
    await backend.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="an existing Valkey (default: start one on loopback)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = None
    if args.url is None:
        server = standalone()
        args.url = server.url
    from urllib.parse import urlsplit

    parts = urlsplit(args.url)
    try:
        asyncio.run(
            main(
                args.url,
                parts.hostname or "127.0.0.1",
                parts.port or 6379,
                args.seconds,
                args.repeats,
            )
        )
    finally:
        if server is not None:
            server.kill()
