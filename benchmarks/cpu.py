"""Where the CPU of a decision goes: the event-loop thread, glide's own threads, valkey-server.

    PYTHONPATH=src python benchmarks/cpu.py [--concurrency 100] [--rounds 5]

N coroutines (1000 keys in turn) call glidelimit gcra's ``hit()``, then the bare glide
``invoke_script`` of the suite, in alternating rounds. For each it prints decisions/s, and
the CPU per decision of this process's event-loop thread (``time.thread_time``), of its
other threads (glide's: ``time.process_time`` less the former), and of valkey-server
(``INFO commandstats``: the time spent in EVALSHA). The suite gives the ratios; this says
which core a change would relieve. Starts its own valkey-server on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from glide import GlideClient, GlideClientConfiguration, NodeAddress

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from suite import BARE, LIMIT  # noqa: E402

from _servers import standalone  # noqa: E402
from glidelimit import Limiter, ValkeyBackend  # noqa: E402


async def server_usec(client: GlideClient) -> float:
    """Microseconds valkey-server has spent in EVALSHA since its stats were reset."""
    info = await client.custom_command(["INFO", "commandstats"])
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return float(line.split("usec=")[1].split(",")[0])
    return 0.0


async def measure(
    call: Callable[[str], Awaitable[object]], client: GlideClient, concurrency: int, each: int
) -> tuple[float, float, float, float]:
    keys = [f"k{i}" for i in range(1000)]

    async def worker(w: int) -> None:
        for i in range(each):
            await call(keys[(w * each + i) % 1000])

    await client.custom_command(["CONFIG", "RESETSTAT"])
    wall, cpu, loop_thread = time.perf_counter(), time.process_time(), time.thread_time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - wall
    loop_thread = time.thread_time() - loop_thread
    cpu = time.process_time() - cpu
    n = concurrency * each
    server = await server_usec(client)
    return n / wall, loop_thread / n * 1e6, (cpu - loop_thread) / n * 1e6, server / n


async def main(port: int, concurrency: int, rounds: int) -> None:
    client = await GlideClient.create(
        GlideClientConfiguration(
            [NodeAddress("127.0.0.1", port)], request_timeout=5000, inflight_requests_limit=2000
        )
    )
    backend = ValkeyBackend.from_url(
        f"valkey://127.0.0.1:{port}", request_timeout=5000, inflight_requests_limit=2000
    )
    limiter = Limiter(f"{LIMIT}/hour", backend=backend, name="cpu", algorithm="gcra")

    async def bare(key: str) -> None:
        await client.invoke_script(BARE, keys=[key])

    cases = {"glidelimit gcra hit()": limiter.hit, "bare glide invoke_script": bare}
    each = max(40_000 // concurrency, 1)
    for call in cases.values():  # connect, load the scripts, warm up
        await measure(call, client, concurrency, max(each // 10, 1))
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            results[name].append(await measure(call, client, concurrency, each))
    print(f"{concurrency} coroutines, median of {rounds} rounds of {concurrency * each} calls")
    print("| case | calls/s | event-loop thread µs | glide's threads µs | valkey-server µs |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        rate, loop_us, glide_us, server = (statistics.median(col) for col in zip(*rows))
        print(f"| {name} | {rate:,.0f} | {loop_us:.1f} | {glide_us:.1f} | {server:.1f} |")
    await backend.aclose()
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = standalone()
    try:
        asyncio.run(main(server.port, args.concurrency, args.rounds))
    finally:
        server.kill()
