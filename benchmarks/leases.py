"""Leases on one hot key, side by side with the same limiter without a lease, in one run.

    python benchmarks/leases.py [--seconds 3]

1. Script calls per 1,000 admitted hits: 4 processes x 50 coroutines on one key of a
   fixed window of 2,000/second, demand far above it; calls counted by the server
   (INFO commandstats: EVALSHA).
2. Decisions/s of hit() on one hot key at 100 coroutines, one process, a limit far above the
   load (every hit allowed): a fixed window with and without a lease, and the memory backend.

Starts its own valkey-server on loopback. The machine's cores are shared by the processes and
the server: the ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))
from _servers import command, standalone  # noqa: E402
from glidelimit import Limiter, MemoryBackend, ValkeyBackend  # noqa: E402

FLEET = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[6])
from glidelimit import Limiter, ValkeyBackend

async def main(url, name, lease, seconds, start):
    async with ValkeyBackend.from_url(url, request_timeout=2000) as backend:
        await backend.connect()
        limiter = Limiter("2000/second", algorithm="fixed_window", backend=backend, name=name,
                          lease=lease == "lease", backend_timeout=2)
        while time.time() < start:
            await asyncio.sleep(0.001)
        stop = time.monotonic() + seconds
        admitted = 0

        async def worker():
            nonlocal admitted
            while time.monotonic() < stop:
                decision = await limiter.hit("tenant")  # (not "+= await": that reads first)
                admitted += decision.allowed
                await asyncio.sleep(0)  # a request does some I/O

        await asyncio.gather(*(worker() for _ in range(50)))
        await limiter.aclose()
    print(json.dumps(admitted))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))
"""


def evalsha_calls(port: int) -> int:
    info = str(command(port, "INFO", "commandstats"))
    for line in info.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def fleet(port: int, url: str, lease: bool, seconds: float) -> tuple[int, int]:
    """4 processes x 50 coroutines on one hot key: (admitted, script calls)."""
    command(port, "CONFIG", "RESETSTAT")
    start = time.time() + 3
    name = f"fleet-{'lease' if lease else 'plain'}-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                FLEET,
                url,
                name,
                "lease" if lease else "plain",
                str(seconds),
                str(start),
                str(HERE.parent / "src"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    admitted = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        admitted += json.loads(out)
    return admitted, evalsha_calls(port)


async def decisions_per_second(limiter: Limiter, seconds: float) -> float:
    count = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await limiter.hit("hot")
            count += 1
            await asyncio.sleep(0)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(100)))
    return count / (time.monotonic() - started)


async def hot_key(url: str, seconds: float, rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"plain": [], "lease": [], "memory": []}
    async with ValkeyBackend.from_url(url, request_timeout=2000) as backend:
        await backend.connect()
        limiters = {
            "plain": Limiter("1000000000/hour", algorithm="fixed_window", backend=backend,
                             name="hot-plain", backend_timeout=2),
            "lease": Limiter("1000000000/hour", algorithm="fixed_window", backend=backend,
                             name="hot-lease", backend_timeout=2, lease=True),
            "memory": Limiter("1000000000/hour", algorithm="fixed_window",
                              backend=MemoryBackend(), name="hot-memory"),
        }  # fmt: skip
        for limiter in limiters.values():  # warm up
            await decisions_per_second(limiter, 0.3)
        for _ in range(rounds):  # round robin: a burst of load elsewhere hits every case alike
            for case, limiter in limiters.items():
                rates[case].append(await decisions_per_second(limiter, seconds))
        for limiter in limiters.values():
            await limiter.aclose()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = standalone()
    try:
        plain = fleet(server.port, server.url, False, args.seconds)
        leased = fleet(server.port, server.url, True, args.seconds)
        rates = asyncio.run(hot_key(server.url, args.seconds / 2, args.rounds))
    finally:
        server.kill()
    print("\n## One hot key: script calls per 1,000 admitted hits")
    print("fixed window 2,000/s; 4 processes x 50 coroutines; target <= 10 with a lease\n")
    print("| | admitted | script calls | per 1,000 admitted |\n|---|---:|---:|---:|")
    for label, (admitted, calls) in (("without a lease", plain), ("with a lease", leased)):
        print(f"| {label} | {admitted:,} | {calls:,} | {calls / max(admitted, 1) * 1000:.1f} |")
    print("\n## One hot key: decisions/s of hit() at 100 coroutines (fixed window, all allowed)")
    print("target: with a lease >= 3x without\n")
    print("| | decisions/s (median) | x without a lease |\n|---|---:|---:|")
    base = sorted(rates["plain"])[len(rates["plain"]) // 2]
    for case, label in (("plain", "Valkey, without a lease"), ("lease", "Valkey, with a lease"),
                        ("memory", "memory backend")):  # fmt: skip
        median = sorted(rates[case])[len(rates[case]) // 2]
        print(f"| {label} | {median:,.0f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
