"""An httpx client whose calls to a third-party API are throttled across every process.

    python examples/fastapi_app.py &                       # a stand-in for the third party
    python examples/api_client.py --url valkey://127.0.0.1:6379 &
    python examples/api_client.py --url valkey://127.0.0.1:6379

However many processes run this, together they call the API at most 3 times a second: each
call waits for its turn (first come, first served across the fleet).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx

from glidelimit import Limiter, MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend


async def main(url: str | None, api: str, calls: int) -> None:
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    async with (
        Limiter("3/second", burst=1, backend=backend, name="catalog-api") as limiter,
        httpx.AsyncClient(base_url=api) as client,
    ):

        @limiter.throttle(key="catalog", timeout=60)
        async def get_item(item_id: int) -> int:
            return (await client.get(f"/items/{item_id}")).status_code

        start = time.monotonic()
        for item_id in range(calls):
            status = await get_item(item_id)
            print(
                f"[pid {os.getpid()}] t={time.monotonic() - start:5.2f}s item {item_id}: {status}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory, this process only)")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--calls", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.api, args.calls))
