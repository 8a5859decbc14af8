"""An asyncio queue consumer: many consumers, at most 2 jobs per tenant in flight fleet-wide.

    python examples/queue_consumer.py                                # in memory
    python examples/queue_consumer.py --url valkey://127.0.0.1:6379  # shared by every process

Each job holds a slot of its tenant while it runs; a consumer that crashes stops renewing its
lease, and its slot frees itself when the lease ends.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from glidelimit import ConcurrencyLimiter, MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend


async def main(url: str | None, jobs: int, consumers: int) -> None:
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    async with ConcurrencyLimiter(2, lease=10, backend=backend, name="tenants") as per_tenant:
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for job in range(jobs):
            queue.put_nowait((job, random.choice(["acme", "globex"])))
        start = time.monotonic()
        peak: dict[str, int] = {}

        async def consume(consumer: int) -> None:
            while not queue.empty():
                job, tenant = queue.get_nowait()
                async with per_tenant.slot(tenant, timeout=60):
                    running = await per_tenant.inflight(tenant)
                    peak[tenant] = max(peak.get(tenant, 0), running)
                    print(f"t={time.monotonic() - start:4.2f}s consumer {consumer}: job {job} "
                          f"({tenant}, {running} running)")  # fmt: skip
                    await asyncio.sleep(0.2)  # the work

        await asyncio.gather(*(consume(c) for c in range(consumers)))
        print(f"most jobs in flight per tenant: {peak}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory, this process only)")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--consumers", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.jobs, args.consumers))
