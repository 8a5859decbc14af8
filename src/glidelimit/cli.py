"""The ``glidelimit`` command: ``glidelimit demo [--url URL]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import anyio

from ._limiter import Limiter
from .algorithms import ALGORITHMS
from .backends import Backend, MemoryBackend, ValkeyBackend


async def demo(url: str | None, rate: str, hits: int, interval: float) -> None:
    """Fire ``hits`` requests, one every ``interval`` seconds, at one limiter per algorithm
    and print what each decided: on the embedded memory backend, or on Valkey at ``url``."""
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    if isinstance(backend, ValkeyBackend):
        await backend.connect()
    where = "the in-memory backend" if url is None else url
    print(f"glidelimit demo: rate {rate}, one hit every {interval}s, on {where}")
    print("each cell: + allowed / - denied, then remaining (or retry_after when denied)\n")
    names = sorted(ALGORITHMS)
    limiters = [
        Limiter(rate, algorithm=a, backend=backend, name=f"demo-{a}", on_backend_error="raise")
        for a in names
    ]
    for limiter in limiters:
        await limiter.reset("demo-user")
    print(f"{'t (s)':>6}  " + "  ".join(f"{n:>16}" for n in names))
    start = time.monotonic()
    for i in range(hits):
        await anyio.sleep(max(0.0, start + i * interval - time.monotonic()))
        cells = []
        for limiter in limiters:
            d = await limiter.hit("demo-user")
            cell = f"+ {d.remaining} left" if d.allowed else f"- retry {d.retry_after:.2f}s"
            cells.append(f"{cell:>16}")
        print(f"{time.monotonic() - start:6.2f}  " + "  ".join(cells))
    acquirer = Limiter(rate, backend=backend, name="demo-acquire", on_backend_error="raise")
    await acquirer.reset("worker")
    print("\nacquire(): a worker that waits for its turn instead of being denied")
    start = time.monotonic()
    for i in range(6):
        await acquirer.acquire("worker")
        print(f"  job {i + 1} started at t={time.monotonic() - start:.2f}s")
    await backend.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glidelimit`` command."""
    parser = argparse.ArgumentParser(prog="glidelimit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="show limiting happen, on memory or on Valkey")
    run.add_argument("--url", help="a Valkey URL, e.g. valkey://127.0.0.1:6379 (default: memory)")
    run.add_argument("--rate", default="5/2s", help="the rate to demonstrate (default 5/2s)")
    run.add_argument("--hits", type=int, default=14)
    run.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)
    try:
        anyio.run(demo, args.url, args.rate, args.hits, args.interval)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
