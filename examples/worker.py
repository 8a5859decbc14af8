"""Workers sharing an outbound API's quota: every process waits for its turn, fleet-wide.

    python examples/worker.py                                         # one process, in memory
    python examples/worker.py --url valkey://127.0.0.1:6379 & python examples/worker.py --url ...

Each job calls a (pretend) payment API allowed 5 requests a second across the whole fleet.
With gcra, acquire() reserves the next free slot in one round trip and sleeps until it: first
come, first served, and no polling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from glidelimit import Limiter, MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend


async def call_payment_api(job: int) -> str:
    await asyncio.sleep(0.01)  # the real call would go here
    return f"job {job} paid"


async def main(url: str | None, jobs: int) -> None:
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    async with Limiter("5/second", burst=1, backend=backend, name="payments") as quota:
        start = time.monotonic()

        async def run(job: int) -> None:
            await quota.acquire("payment-api", timeout=30)
            result = await call_payment_api(job)
            print(f"[pid {os.getpid()}] t={time.monotonic() - start:5.2f}s  {result}")

        await asyncio.gather(*(run(job) for job in range(jobs)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory, this process only)")
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.jobs))
