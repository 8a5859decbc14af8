"""``glidelimit bench URL``: decisions per second and latency of glidelimit on the user's own
Valkey, beside bare glide running a script of its own (INCR + PEXPIRE, the least a rate
limiter can do in one round trip), to size a deployment."""

from __future__ import annotations

import argparse
import math
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import GlideLimitError
from .._limiter import Limiter
from .._quota import key_head
from ..backends.valkey import ValkeyBackend
from ..backends.valkey._scan import escape_glob
from ..backends.valkey._url import config_from_url, redact
from ._common import Failure, connected, dumps, one_line, reason

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..backends.valkey._send import Client

#: bare glide's rate limiter: a fixed window in one round trip, nothing else
BARE_LUA = """local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n"""
PREFIX = "glidelimit:"


@dataclass
class Result:
    """What one client achieved in one timed run."""

    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # of the calls that succeeded
    allowed: int = 0
    errors: int = 0
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        """Calls that succeeded, per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile of the latencies, in milliseconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000

    def json(self) -> dict[str, Any]:
        """As ``glidelimit bench --json`` prints it."""
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return {
            "name": self.name,
            "calls": len(self.latencies),
            "per_second": round(self.per_second, 1),
            "p50_ms": None if p50 is None else round(p50, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
            "allowed": self.allowed,
            "errors": self.errors,
            "first_error": self.first_error,
        }


@dataclass
class Server:
    """What the user's server is."""

    software: str  # "Valkey" or "Redis"
    version: str
    cluster: bool
    primaries: int

    def __str__(self) -> str:
        shape = f"cluster of {self.primaries} primaries" if self.cluster else "standalone"
        return f"{self.software} {self.version}, {shape}"


def _info_field(info: bytes, name: bytes) -> str | None:
    for line in info.splitlines():
        if line.startswith(name + b":"):
            return line.partition(b":")[2].strip().decode("ascii", "replace")
    return None


async def _server(client: Client, cluster: bool) -> Server:
    from glide import RandomNode

    if cluster:
        info = await client.custom_command(["INFO", "server"], RandomNode())
        nodes = await client.custom_command(["CLUSTER", "INFO"], RandomNode())
        primaries = int(_info_field(_bytes(nodes), b"cluster_size") or 0)
    else:
        info = await client.custom_command(["INFO", "server"])
        primaries = 1
    text = _bytes(info)
    valkey = _info_field(text, b"valkey_version")
    version = valkey or _info_field(text, b"redis_version") or "?"
    software = "Valkey" if valkey or _info_field(text, b"server_name") == "valkey" else "Redis"
    return Server(software, version, cluster, primaries)


def _bytes(reply: object) -> bytes:
    if isinstance(reply, dict):  # one reply per node
        reply = next(iter(reply.values()), b"")
    if isinstance(reply, str):
        return reply.encode()
    return reply if isinstance(reply, bytes) else b""


async def _timed(
    result: Result,
    call: Callable[[int], Awaitable[bool]],
    keys: int,
    seconds: float,
    concurrency: int,
    progress: Progress,
    task: TaskID,
) -> None:
    """Run ``call`` on random keys (numbers below ``keys``) from ``concurrency`` callers for
    ``seconds``."""
    latencies = result.latencies
    clock = time.perf_counter

    async def caller(seed: int) -> None:
        pick = random.Random(seed).randrange
        while clock() < deadline:
            key = pick(keys)
            start = clock()
            try:
                allowed = await call(key)
            except Exception as exc:  # counted and shown: a bench reports, it does not stop
                result.errors += 1
                if result.first_error is None:
                    result.first_error = reason(exc)
                continue
            latencies.append(clock() - start)
            result.allowed += allowed

    async def report() -> None:
        while clock() < deadline:
            await anyio.sleep(0.1)
            elapsed = clock() - begin
            done = len(latencies)
            progress.update(
                task, completed=min(elapsed, seconds), rate=f"{done / elapsed:>9,.0f}/s"
            )

    begin = clock()
    deadline = begin + seconds
    async with anyio.create_task_group() as tg:
        for i in range(concurrency):
            tg.start_soon(caller, i)
        tg.start_soon(report)
    result.seconds = clock() - begin
    progress.update(task, completed=seconds, rate=f"{result.per_second:>9,.0f}/s")


async def _bare_client(url: str, concurrency: int) -> Client:
    from glide import GlideClient, GlideClusterClient, GlideClusterClientConfiguration

    config = config_from_url(url, {"inflight_requests_limit": max(1000, 2 * concurrency)})
    if isinstance(config, GlideClusterClientConfiguration):
        return await GlideClusterClient.create(config)
    return await GlideClient.create(config)


async def _clean(backend: ValkeyBackend, client: Client, head: bytes) -> int:
    """Delete every key of this run (and no other): those under its own limiter name."""
    gone = 0
    batch: list[bytes] = []
    async for key in backend.scan(escape_glob(head) + b"*"):
        batch.append(key)
        if len(batch) >= 500:
            gone += await client.delete(list(batch))
            batch.clear()
    if batch:
        gone += await client.delete(list(batch))
    return gone


async def bench(args: argparse.Namespace) -> None:
    """Time glidelimit, then bare glide, on ``args.url``, and print a table of both."""
    try:
        from glide import Script
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Table
    except ImportError as exc:
        raise Failure(
            f"glidelimit bench needs the cli extra: pip install 'glidelimit[cli]' ({exc})"
        ) from None
    # a name of its own: two benches on one server never touch each other's keys, nor any
    # key of the user's
    name = f"glidelimit-bench-{secrets.token_hex(4)}"
    head = key_head(name, PREFIX)
    rate = args.rate
    limiter_keys = [f"k{i}" for i in range(args.keys)]
    stored = [head + f"bare-{i}}}:incr".encode() for i in range(args.keys)]
    period = str(rate.period_ms).encode()
    bare_script = Script(BARE_LUA)
    ours, bare = Result(f"glidelimit {args.algorithm} hit"), Result("glide invoke_script")
    cleaned: int | None = None
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed:>4.1f}/{task.total:g} s"),
        TextColumn("{task.fields[rate]}"),
        console=Console(stderr=True),
    )
    options = {"inflight_requests_limit": max(1000, 2 * args.concurrency)}
    async with connected(args.url, args.timeout, **options) as backend:
        limiter = Limiter(
            rate, algorithm=args.algorithm, backend=backend, name=name, on_backend_error="raise"
        )
        client = await _bare_client(args.url, args.concurrency)
        try:
            try:
                with anyio.fail_after(args.timeout):
                    server = await _server(client, backend.kind == "valkey_cluster")
                    # first calls: scripts loaded and connections made before any timing
                    await limiter.hit(limiter_keys[0])
                    await client.invoke_script(bare_script, keys=[stored[0]], args=[period])
            except TimeoutError:
                raise Failure(f"{redact(args.url)} did not answer in {args.timeout:g} s") from None
            except GlideLimitError as exc:
                raise Failure(f"cannot run the bench: {reason(exc)}") from None
            except Exception as exc:  # glide's own, from the bare client
                raise Failure(f"cannot run the bench: {one_line(str(exc))}") from None

            async def hit(i: int) -> bool:
                return (await limiter.hit(limiter_keys[i])).allowed

            async def invoke(i: int) -> bool:
                count = await client.invoke_script(bare_script, keys=[stored[i]], args=[period])
                return isinstance(count, int) and count <= rate.limit

            n, seconds, concurrency = args.keys, args.seconds, args.concurrency
            with progress:
                first = progress.add_task(ours.name, total=seconds, rate="")
                second = progress.add_task(bare.name, total=seconds, rate="")
                await _timed(ours, hit, n, seconds, concurrency, progress, first)
                await _timed(bare, invoke, n, seconds, concurrency, progress, second)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(args.timeout + 5):
                try:
                    cleaned = await _clean(backend, client, head)
                except Exception as exc:  # every key has a TTL: they go by themselves
                    print(f"glidelimit: could not delete the bench's keys: {exc}", file=sys.stderr)
            with anyio.CancelScope(shield=True):
                await client.close()
    settings = {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "keys": args.keys,
        "algorithm": args.algorithm,
        "rate": str(rate),
    }
    if args.json:
        print(
            dumps(
                {
                    "server": {
                        "url": redact(args.url),
                        "software": server.software,
                        "version": server.version,
                        "cluster": server.cluster,
                        "primaries": server.primaries,
                    },
                    "settings": settings,
                    "results": [ours.json(), bare.json()],
                    "keys_deleted": cleaned,
                }
            )
        )
        return
    console = Console(highlight=False)
    console.print(f"{server}, at {redact(args.url)}")
    console.print(
        f"{args.concurrency} callers at once on {args.keys} keys for {args.seconds:g} s each, "
        f"from one process (one event loop); {args.algorithm} at {rate} per key"
    )
    table = Table()
    for column in ("", "calls/s", "p50 (ms)", "p99 (ms)", "errors"):
        table.add_column(column, justify="left" if not column else "right")
    for result in (ours, bare):
        p50, p99 = result.percentile(0.5), result.percentile(0.99)
        table.add_row(
            result.name,
            f"{result.per_second:,.0f}",
            "-" if p50 is None else f"{p50:.2f}",
            "-" if p99 is None else f"{p99:.2f}",
            str(result.errors),
        )
    console.print(table)
    if bare.per_second and ours.per_second:
        console.print(
            f"glidelimit decided at {ours.per_second / bare.per_second:.0%} of bare glide's call "
            "rate. This process's CPU is usually the bound: run the bench from several "
            "processes (or hosts) at once to find the server's."
        )
    for result in (ours, bare):
        if result.first_error is not None:
            console.print(f"{result.name}: first error: {result.first_error}")
