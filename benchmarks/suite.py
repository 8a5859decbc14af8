"""Decisions/s and per-call latency of glidelimit against the limiters a user would pick
instead, measured side by side in one run, under one load harness.

    nox -s bench                                     # the full suite (< 10 min on 2 cores)
    PYTHONPATH=src python benchmarks/suite.py --quick   # about a minute
    PYTHONPATH=src python benchmarks/suite.py --groups cluster   # one group: prints, writes nothing

Starts its own valkey-server (standalone) and a 3-primary cluster on loopback ports, exactly as
the tests do. Every limit is far above the load, so every decision is allowed and what is
measured is the limiter's cost (a denied or failed call is counted and shown). Writes
benchmarks/results/results.md (the table, and the issue's targets as ratios of this run) and
benchmarks/results/chart.png, and prints the table.

Groups and their baselines (ratios are against the baseline at the same concurrency):
- valkey: bare glide ``invoke_script`` of INCR+PEXPIRE on the standalone server; limits (async,
  ``valkey`` client), throttled-py (redis.asyncio), pyrate-limiter (redis.asyncio); and
  valkey-benchmark's EVALSHA (C, 50 connections) as the ceiling of one server.
- cluster: bare glide ``invoke_script`` on a ``GlideClusterClient``; and glidelimit gcra's own
  script as a raw pipeline (one EVALSHA per decision in a non-atomic ``ClusterBatch``, no
  glidelimit Python) as the ceiling of one script call per decision through glide.
- memory: throttled-py's memory store (gcra); aiolimiter; limits' memory storage.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from glide import (
    AllPrimaries,
    ClusterBatch,
    GlideClient,
    GlideClientConfiguration,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    Logger,
    LogLevel,
    NodeAddress,
    Script,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from glidelimit import Limiter, MemoryBackend, ValkeyBackend, instrument, uninstrument
from glidelimit.algorithms import ALGORITHMS as ALGORITHM_SCRIPTS

HERE = Path(__file__).resolve().parent
# the tests' server helpers: the benchmark starts Valkey exactly as the suite does
sys.path.insert(0, str(HERE.parent / "tests"))
from _servers import HOST, Server, cluster, standalone  # noqa: E402

KEYS = 1000
LIMIT = 1_000_000_000  # per hour: far above any load here, so every decision is allowed
ALGORITHMS = ("fixed_window", "sliding_window", "sliding_log", "gcra")
BARE_LUA = "local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return n"
BARE = Script(BARE_LUA)
SCRIPT_ALONE = "glidelimit gcra's script alone (invoke_script)"
RAW_PIPELINE = "glidelimit gcra's script, raw pipeline (ceiling)"
BARE_NAME = "bare glide invoke_script (INCR+PEXPIRE)"
METERED = "glidelimit gcra, metrics on"
RAW_MOST = 64  # decisions per ClusterBatch of the raw pipeline at most: its best (of 32, 64, 128)
GROUPS = ("valkey", "cluster", "memory")

Call = Callable[[str], Awaitable[bool]]  # one decision on a key; True if it was allowed


@dataclass
class Case:
    group: str  # valkey, cluster or memory
    name: str
    concurrency: int
    call: Call
    baseline: bool = False
    note: str = ""
    metered: bool = False  # runs with glidelimit.instrument() on (an SDK in-memory reader)
    rates: list[float] = field(default_factory=list)
    samples: array[int] = field(default_factory=lambda: array("q"))
    denied: int = 0
    errors: int = 0
    first_error: str = ""
    _sorted: list[int] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def percentile(self, q: float) -> float:
        """The q-quantile of every call's latency, in µs."""
        if not self.samples:
            return float("nan")
        if len(self._sorted) != len(self.samples):
            self._sorted = sorted(self.samples)
        ordered = self._sorted
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def run(case: Case, seconds: float, keep: bool = True) -> None:
    """``case.concurrency`` coroutines call ``case.call`` in a loop for ``seconds``, each on
    the next of KEYS keys; every awaited call is timed."""
    keys = [f"k{i}" for i in range(KEYS)]
    samples: array[int] = array("q")
    denied = errors = 0
    clock = time.perf_counter_ns
    stop = clock() + int(seconds * 1e9)
    call, step = case.call, case.concurrency

    async def worker(w: int) -> None:
        nonlocal denied, errors
        i = w
        while True:
            t0 = clock()
            if t0 >= stop:
                return
            try:
                allowed = await call(keys[i % KEYS])
            except Exception as exc:
                errors += 1
                cause = f" from {exc.__cause__!r}" if exc.__cause__ else ""
                case.first_error = case.first_error or f"{exc!r}{cause}"[:200]
                await asyncio.sleep(0)  # a failing call may not yield: let the others run
                continue
            samples.append(clock() - t0)
            denied += not allowed
            i += step

    gc.collect()
    start = clock()
    await asyncio.gather(*(worker(w) for w in range(case.concurrency)))
    elapsed = (clock() - start) / 1e9
    if keep:
        case.rates.append(len(samples) / elapsed)
        case.samples.extend(samples)
        case.denied += denied
        case.errors += errors


# --- the cases --------------------------------------------------------------------------------


async def no_limiter(key: str) -> bool:
    """The load harness alone: the floor under every case's cost."""
    return True


def glidelimit_call(limiter: Limiter) -> Call:
    async def call(key: str) -> bool:
        return (await limiter.hit(key)).allowed

    return call


def script_alone_call(client: GlideClient, limiter: Limiter) -> Call:
    """glidelimit's script for ``limiter``, invoked bare: the same keys and argument as its
    ``hit()`` sends, made before the timing starts. The floor under ``hit()``'s latency at
    concurrency 1: what the server spends on the script, with no glidelimit Python around it."""
    from glidelimit.algorithms import ALGORITHMS, Limits, Mode, wire

    script = Script(ALGORITHMS[limiter.algorithm].lua)
    keys = {f"k{i}": list(limiter.keys(f"alone{i}")) for i in range(KEYS)}
    limits = Limits.of(limiter.rates, limiter.capacities)
    arg = wire.encode(limits.packed, 1, Mode.HIT, -1, b"")  # the same for every key

    async def call(key: str) -> bool:
        answer: Any = await client.invoke_script(script, keys=keys[key], args=[arg])
        return bool(answer[0][0] == 1)  # the one decision's "allowed"

    return call


def raw_pipeline_call(client: GlideClusterClient, limiter: Limiter, most: int) -> Call:
    """glidelimit's script for ``limiter`` as a raw pipeline: the same keys and argument as its
    ``hit()`` sends, one EVALSHA per decision, the decisions of one event-loop pass (``most`` at
    most) sent as one non-atomic ClusterBatch, with no glidelimit Python around it. On a cluster
    decisions rarely share a hash slot, so this is the ceiling of one script call per decision
    through glide."""
    from glidelimit.algorithms import ALGORITHMS, Limits, Mode, wire

    sha = Script(ALGORITHMS[limiter.algorithm].lua).get_hash()
    limits = Limits.of(limiter.rates, limiter.capacities)
    arg = wire.encode(limits.packed, 1, Mode.HIT, -1, b"")  # the same for every key
    commands: dict[str, list[str | bytes]] = {}
    for i in range(KEYS):
        keys = limiter.keys(f"raw{i}")
        commands[f"k{i}"] = ["EVALSHA", sha, str(len(keys)), *keys, arg]
    gathering: list[list[tuple[list[str | bytes], asyncio.Future[Any]]]] = []
    running: set[asyncio.Task[None]] = set()  # asyncio holds tasks weakly

    async def flush(calls: list[tuple[list[str | bytes], asyncio.Future[Any]]]) -> None:
        if gathering and gathering[0] is calls:
            gathering.clear()
        batch = ClusterBatch(False)
        for command, _ in calls:
            batch.custom_command(command)
        try:
            results: Any = await client.exec(batch, raise_on_error=False)
        except Exception as exc:
            results = [exc] * len(calls)
        for (_, waiter), result in zip(calls, results):
            if isinstance(result, Exception):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

    async def call(key: str) -> bool:
        loop = asyncio.get_running_loop()
        if not gathering or len(gathering[0]) >= most:
            gathering[:] = [[]]
            task = loop.create_task(flush(gathering[0]))  # runs once this pass is over
            running.add(task)
            task.add_done_callback(running.discard)
        waiter = loop.create_future()
        gathering[0].append((commands[key], waiter))
        answer = await waiter
        return bool(answer[0][0] == 1)  # the one decision's "allowed"

    return call


def bare_glide_call(client: GlideClient | GlideClusterClient) -> Call:
    async def call(key: str) -> bool:
        await client.invoke_script(BARE, keys=[key])
        return True

    return call


async def peers_on_valkey(port: int) -> tuple[dict[str, tuple[Call, str]], list[Any]]:
    """limits, throttled-py and pyrate-limiter on the standalone server; and what to close."""
    import redis.asyncio
    from limits import parse
    from limits.aio.strategies import FixedWindowRateLimiter
    from limits.storage import storage_from_string
    from pyrate_limiter import Duration, RedisBucket
    from pyrate_limiter import Limiter as PyrateLimiter
    from pyrate_limiter import Rate as PyrateRate
    from throttled.asyncio import RedisStore, Throttled, per_hour

    limits_window = FixedWindowRateLimiter(storage_from_string(f"async+valkey://{HOST}:{port}"))
    limits_item = parse(f"{LIMIT}/hour")

    async def limits_call(key: str) -> bool:
        return await limits_window.hit(limits_item, key)

    throttled = Throttled(
        using="gcra",
        quota=per_hour(LIMIT),
        # redis-py 8's pool raises past 100 connections by default: room for 1000 coroutines
        store=RedisStore(
            server=f"redis://{HOST}:{port}/0",
            options={"CONNECTION_POOL_KWARGS": {"max_connections": 2000}},
        ),
        timeout=-1,
    )

    async def throttled_call(key: str) -> bool:
        return not (await throttled.limit(key)).limited

    # as fastapi-limiter uses it: one RedisBucket (a sorted set) for every key
    redis_client = redis.asyncio.Redis(host=HOST, port=port)
    bucket = await RedisBucket.init(
        [PyrateRate(LIMIT, Duration.HOUR)], redis_client, "pyrate-bench"
    )
    pyrate = PyrateLimiter(bucket)

    async def pyrate_call(key: str) -> bool:
        return await pyrate.try_acquire_async(key, blocking=False)

    peers = {
        "limits fixed_window (async+valkey)": (limits_call, "`valkey` asyncio client, pooled"),
        "throttled-py gcra (RedisStore)": (
            throttled_call,
            "redis.asyncio; pool raised to 2000 connections",
        ),
        "pyrate-limiter sliding log (RedisBucket)": (
            pyrate_call,
            "redis.asyncio; one bucket for all keys, as fastapi-limiter uses it",
        ),
    }
    return peers, [redis_client, pyrate]


def peers_in_memory() -> dict[str, tuple[Call, str]]:
    from aiolimiter import AsyncLimiter
    from limits import parse
    from limits.aio.strategies import FixedWindowRateLimiter
    from limits.storage import storage_from_string
    from throttled.asyncio import MemoryStore, Throttled, per_hour

    throttled = Throttled(using="gcra", quota=per_hour(LIMIT), store=MemoryStore(), timeout=-1)

    async def throttled_call(key: str) -> bool:
        return not (await throttled.limit(key)).limited

    # aiolimiter has no keys: one leaky bucket per key, looked up in a dict
    buckets: dict[str, AsyncLimiter] = {}

    async def aiolimiter_call(key: str) -> bool:
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = AsyncLimiter(LIMIT, 3600)
        await bucket.acquire()
        return True

    limits_window = FixedWindowRateLimiter(storage_from_string("async+memory://"))
    limits_item = parse(f"{LIMIT}/hour")

    async def limits_call(key: str) -> bool:
        return await limits_window.hit(limits_item, key)

    return {
        "throttled-py gcra (MemoryStore)": (throttled_call, ""),
        "aiolimiter (leaky bucket per key)": (aiolimiter_call, "no keys: a dict of limiters"),
        "limits fixed_window (async+memory)": (limits_call, ""),
    }


def ceiling(port: int, requests: int, repeats: int) -> tuple[float, float, float]:
    """valkey-benchmark: EVALSHA of the bare script, 50 connections, no pipelining, 1000 keys.

    Returns the run of median calls/s: (calls/s, p50 µs, p99 µs)."""
    sha = subprocess.run(
        ["valkey-cli", "-h", HOST, "-p", str(port), "SCRIPT", "LOAD", BARE_LUA],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [
                "valkey-benchmark", "-h", HOST, "-p", str(port), "-c", "50", "-n", str(requests),
                "-r", str(KEYS), "--csv", "EVALSHA", sha, "1", "vb:__rand_int__",
            ],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        row = next(r for r in csv.DictReader(io.StringIO(out)))
        runs.append(
            (
                float(row["rps"]),
                float(row["p50_latency_ms"]) * 1000,
                float(row["p99_latency_ms"]) * 1000,
            )
        )
    return sorted(runs)[len(runs) // 2]


# --- the report -------------------------------------------------------------------------------


def us(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def table(cases: list[Case], ceiling_row: tuple[float, float, float] | None) -> str:
    baselines = {(c.group, c.concurrency): c for c in cases if c.baseline}
    lines = [
        "| group | case | concurrency | decisions/s | p50 µs | p99 µs | x group baseline | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        base = baselines.get((c.group, c.concurrency))
        ratio = f"{c.rate / base.rate:.2f}" if base and base.rate else ""
        notes = [c.note] if c.note else []
        if c.baseline:
            notes.insert(0, "**baseline**")
        if c.denied:
            notes.append(f"{c.denied} denied")
        if c.errors:
            notes.append(f"{c.errors} errors: {c.first_error}")
        lines.append(
            f"| {c.group} | {c.name} | {c.concurrency} | {c.rate:,.0f} | "
            f"{us(c.percentile(0.5))} | {us(c.percentile(0.99))} | {ratio} | "
            f"{'; '.join(notes)} |"
        )
    if ceiling_row is not None:
        rate, p50, p99 = ceiling_row
        base = baselines.get(("valkey", 100))
        ratio = f"{rate / base.rate:.2f}" if base and base.rate else ""
        lines.append(
            f"| valkey | valkey-benchmark EVALSHA (C, ceiling) | 50 conns | {rate:,.0f} | "
            f"{us(p50)} | {us(p99)} | {ratio} | ratio vs bare glide at 100; "
            "latency as valkey-benchmark reports it |"
        )
    return "\n".join(lines)


def targets(cases: list[Case]) -> str:
    def find(group: str, name: str, concurrency: int) -> Case | None:
        for c in cases:
            if c.group == group and c.name == name and c.concurrency == concurrency:
                return c
        return None

    ours_valkey = find("valkey", "glidelimit gcra", 100)
    bare = find("valkey", BARE_NAME, 100)
    metered = find("valkey", METERED, 100)
    limits = find("valkey", "limits fixed_window (async+valkey)", 100)
    ours_memory = find("memory", "glidelimit gcra", 100)
    throttled = find("memory", "throttled-py gcra (MemoryStore)", 100)
    ours_1 = find("valkey", "glidelimit gcra", 1)
    bare_1 = find("valkey", BARE_NAME, 1)
    alone_1 = find("valkey", SCRIPT_ALONE, 1)
    ours_cluster = find("cluster", "glidelimit gcra", 100)
    ours_cluster_1000 = find("cluster", "glidelimit gcra", 1000)
    bare_cluster = find("cluster", BARE_NAME, 100)
    bare_cluster_1000 = find("cluster", BARE_NAME, 1000)
    raw_cluster = find("cluster", RAW_PIPELINE, 100)
    raw_cluster_1000 = find("cluster", RAW_PIPELINE, 1000)
    rows = []

    def add(what: str, a: Case | None, b: Case | None, target: float | None, higher: bool) -> None:
        if a is None or b is None:
            rows.append(f"| {what} | not measured | | |")
            return
        if higher:
            value, sign = (a.rate / b.rate if b.rate else 0.0), ">="
        else:
            value, sign = a.percentile(0.5) / b.percentile(0.5), "<="
        if target is None:  # a reference, not a target
            rows.append(f"| {what} | {value:.2f}x | | |")
            return
        met = value >= target if higher else value <= target
        rows.append(f"| {what} | {value:.2f}x | {sign} {target}x | {'met' if met else 'NOT met'} |")

    add("glidelimit gcra on Valkey / bare glide, decisions/s", ours_valkey, bare, 2.5, True)
    add("glidelimit gcra on Valkey / limits, decisions/s", ours_valkey, limits, 5, True)
    add("glidelimit gcra on Valkey with metrics on / off, decisions/s", metered, ours_valkey,
        0.9, True)  # fmt: skip
    add("glidelimit gcra in memory / throttled-py memory, decisions/s", ours_memory, throttled,
        1.5, True)  # fmt: skip
    add("glidelimit gcra on Valkey / bare glide, p50 at concurrency 1", ours_1, bare_1, 1.2,
        False)  # fmt: skip
    # not a target: the same ratio for glidelimit's script with no glidelimit Python around it,
    # the floor under the row above
    add("(floor, not a target) its script alone / bare glide, p50 at concurrency 1", alone_1,
        bare_1, None, False)  # fmt: skip
    add("glidelimit gcra on the cluster / bare glide on the cluster, decisions/s", ours_cluster,
        bare_cluster, 1.6, True)  # fmt: skip
    add("glidelimit gcra on the cluster, decisions/s at 1000 coroutines / at 100",
        ours_cluster_1000, ours_cluster, 0.8, True)  # fmt: skip
    # not targets: the ceiling of one EVALSHA per decision through glide, and how close
    # glidelimit comes to it
    add("(ceiling, not a target) raw pipeline of its script / bare glide on the cluster",
        raw_cluster, bare_cluster, None, True)  # fmt: skip
    add("(not a target) glidelimit gcra on the cluster / the raw pipeline", ours_cluster,
        raw_cluster, None, True)  # fmt: skip
    add("(not a target) the same at 1000 coroutines", ours_cluster_1000, raw_cluster_1000,
        None, True)  # fmt: skip
    add("(not a target) glidelimit gcra on the cluster / bare glide, at 1000 coroutines",
        ours_cluster_1000, bare_cluster_1000, None, True)  # fmt: skip
    return "\n".join(
        [
            "| target (100 coroutines, 1000 keys, gcra) | measured | target | |",
            "|---|---:|---:|---|",
            *rows,
        ]
    )


def chart(cases: list[Case], ceiling_rate: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    shown = [c for c in cases if c.concurrency == 100]
    colours = {"valkey": "#d1495b", "cluster": "#edae49", "memory": "#00798c"}
    labels = [f"{c.group}: {c.name}" for c in shown]
    values = [c.rate for c in shown]
    bar_colours = [colours[c.group] for c in shown]
    ours = [c.name.startswith("glidelimit") for c in shown]
    if ceiling_rate is not None:  # after the valkey group, whose server it measures
        at = sum(c.group == "valkey" for c in shown)
        labels.insert(at, "valkey: valkey-benchmark EVALSHA (C, 50 conns)")
        values.insert(at, ceiling_rate)
        bar_colours.insert(at, "#888888")
        ours.insert(at, False)
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.2), dpi=80)
    y = list(range(len(labels)))[::-1]
    # glidelimit solid, the others faded
    faded = [to_rgba(c, 1.0 if o else 0.45) for c, o in zip(bar_colours, ours)]
    ax.barh(y, values, color=faded)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("decisions/s at concurrency 100 (log scale; higher is better)")
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v / 1000:,.1f}k", va="center", fontsize=7)
    ax.set_xlim(right=max(values) * 3)
    ax.set_title("glidelimit (solid) against its peers (faded), 1000 keys, one run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------


async def measure(
    valkey: Server | None,
    nodes: list[Server],
    groups: tuple[str, ...],
    concurrencies: list[int],
    seconds: float,
    repeats: int,
) -> list[Case]:
    # 1000 coroutines must fit in glide's in-flight limit (default 1000), with room to spare
    inflight = max(2000, 2 * max(concurrencies))
    # and a request timeout that 1000 coroutines on one connection stay within
    glide_options = {"inflight_requests_limit": inflight, "request_timeout": 5000}
    to_close: list[Any] = []

    def limiter(backend: ValkeyBackend | MemoryBackend, algorithm: str) -> Limiter:
        return Limiter(
            f"{LIMIT}/hour",
            algorithm=algorithm,
            backend=backend,
            name=f"bench-{algorithm}",
            on_backend_error="raise",  # a failing backend must show, not decide fast
            # the glide clients' request timeout: with the default budget (0.2 s), the slowest
            # calls at 1000 coroutines failed, and left the latencies without them
            backend_timeout=glide_options["request_timeout"] / 1000,
        )

    def ours(backend: ValkeyBackend | MemoryBackend, algorithm: str) -> Call:
        return glidelimit_call(limiter(backend, algorithm))

    cases: list[Case] = []
    if valkey is not None:
        client = await GlideClient.create(
            GlideClientConfiguration([NodeAddress(HOST, valkey.port)], **glide_options)
        )
        # loaded up front, as glidelimit loads its own: no call goes through NOSCRIPT
        await client.custom_command(["SCRIPT", "LOAD", BARE_LUA])
        on_valkey = ValkeyBackend.from_url(valkey.url, **glide_options)
        valkey_peers, peers_to_close = await peers_on_valkey(valkey.port)
        to_close += [client, on_valkey, *peers_to_close]
        for c in concurrencies:
            cases.append(Case("valkey", BARE_NAME, c, bare_glide_call(client), baseline=True))
            cases += [Case("valkey", f"glidelimit {a}", c, ours(on_valkey, a)) for a in ALGORITHMS]
            if c == 100:  # the same limiter's cost with OpenTelemetry metrics on
                metered = ours(on_valkey, "gcra")
                note = "glidelimit.instrument(), the OpenTelemetry SDK's in-memory reader"
                cases.append(Case("valkey", METERED, c, metered, metered=True, note=note))
            if c == 1:
                alone = script_alone_call(client, limiter(on_valkey, "gcra"))
                cases.append(Case("valkey", SCRIPT_ALONE, c, alone, note="floor of gcra's p50"))
            for n, (call, note) in valkey_peers.items():
                cases.append(Case("valkey", n, c, call, note=note))
    if nodes:
        cluster_client = await GlideClusterClient.create(
            GlideClusterClientConfiguration([NodeAddress(HOST, nodes[0].port)], **glide_options)
        )
        await cluster_client.custom_command(["SCRIPT", "LOAD", BARE_LUA], AllPrimaries())
        gcra_lua: list[str | bytes] = ["SCRIPT", "LOAD", ALGORITHM_SCRIPTS["gcra"].lua]
        await cluster_client.custom_command(gcra_lua, AllPrimaries())
        on_cluster = ValkeyBackend.from_url(f"{nodes[0].url}?cluster=true", **glide_options)
        to_close += [cluster_client, on_cluster]
        for c in concurrencies:
            bare_call = bare_glide_call(cluster_client)
            cases.append(Case("cluster", BARE_NAME, c, bare_call, baseline=True))
            cases += [
                Case("cluster", f"glidelimit {a}", c, ours(on_cluster, a)) for a in ALGORITHMS
            ]
            if c > 1:
                raw = raw_pipeline_call(cluster_client, limiter(on_cluster, "gcra"), RAW_MOST)
                note = f"one EVALSHA per decision, {RAW_MOST} per ClusterBatch at most"
                cases.append(Case("cluster", RAW_PIPELINE, c, raw, note=note))
    if "memory" in groups:
        in_memory = MemoryBackend()
        memory_peers = peers_in_memory()
        for c in concurrencies:
            first = True
            for n, (call, note) in memory_peers.items():
                cases.append(Case("memory", n, c, call, baseline=first, note=note))
                first = False
            cases += [Case("memory", f"glidelimit {a}", c, ours(in_memory, a)) for a in ALGORITHMS]
            cases.append(Case("memory", "no limiter (the harness alone)", c, no_limiter))
    cases.sort(key=lambda c: (GROUPS.index(c.group), c.concurrency))

    total = len(cases) * repeats
    done = 0
    for _ in range(repeats):  # round robin: a burst of load elsewhere hits every case alike
        for case in cases:
            if case.metered:
                instrument(MeterProvider(metric_readers=[InMemoryMetricReader()]))
            try:
                await run(case, min(0.2, seconds / 4), keep=False)  # connect, load, warm up
                await run(case, seconds)
            finally:
                uninstrument()
            done += 1
            print(
                f"[{done}/{total}] {case.group:7} c={case.concurrency:<4} {case.name}: "
                f"{case.rates[-1]:,.0f}/s",
                file=sys.stderr,
                flush=True,
            )
    for thing in to_close:
        close = getattr(thing, "aclose", None) or thing.close
        result = close()
        if asyncio.iscoroutine(result):
            await result
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per case and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="decisions/s is their median")
    parser.add_argument("--quick", action="store_true", help="about a minute: 0.5 s, 1 repeat")
    parser.add_argument(
        "--groups",
        default=",".join(GROUPS),
        help=f"comma-separated, of {', '.join(GROUPS)}; with fewer than all, the results are "
        "printed and written only where --out says",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default: {HERE / 'results'}")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 0.5, 1
    groups = tuple(g for g in GROUPS if g in args.groups.split(","))
    unknown = set(args.groups.split(",")) - set(GROUPS)
    if unknown or not groups:
        parser.error(f"--groups takes some of {', '.join(GROUPS)}, got {args.groups!r}")
    if args.out is None and groups == GROUPS:  # a partial run never replaces the full results
        args.out = HERE / "results"
    concurrencies = [1, 100, 1000]

    # glide's warnings go to stdout, into the table; a failed call is counted there anyway
    Logger.set_logger_config(LogLevel.ERROR)
    started = time.monotonic()
    load_before = os.getloadavg()
    valkey = standalone() if "valkey" in groups else None
    nodes: list[Server] = []
    ceiling_row = None
    try:
        if "cluster" in groups:
            nodes = cluster()
        cases = asyncio.run(
            measure(valkey, nodes, groups, concurrencies, args.seconds, args.repeats)
        )
        if valkey is not None:
            ceiling_row = ceiling(valkey.port, 30_000 if args.quick else 100_000, args.repeats)
    finally:
        if valkey is not None:
            valkey.kill()
        for node in nodes:
            node.kill()
    load_after = os.getloadavg()

    from importlib.metadata import version

    versions = ", ".join(
        f"{p} {version(p)}"
        for p in ("valkey-glide", "limits", "throttled-py", "pyrate-limiter", "aiolimiter")
    )
    server = subprocess.run(
        ["valkey-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    header = (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Valkey {server.removeprefix('v=')} on loopback; "
        f"{versions}.\n{KEYS} keys cycling; {args.seconds:g} s per case, median of "
        f"{args.repeats}; p50/p99 over every call of every repeat. Groups: {', '.join(groups)}. "
        "Every glide client: "
        "request_timeout 5 s, inflight_requests_limit 2000. "
        f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after: "
        f"other work shared the machine. Whole run: {time.monotonic() - started:.0f} s.\n"
    )
    result = "\n\n".join(
        [header, table(cases, ceiling_row), "## Targets (this run)", targets(cases)]
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.md").write_text(result + "\n")
        chart(cases, ceiling_row[0] if ceiling_row else None, args.out / "chart.png")
    print(result)


if __name__ == "__main__":
    main()
