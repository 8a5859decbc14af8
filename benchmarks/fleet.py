"""A fleet of processes sharing limits on one Valkey: decisions/s, latency, and CPU per decision.

    PYTHONPATH=src python benchmarks/fleet.py           # 1, 2 and 4 processes; cluster, standalone
    PYTHONPATH=src python benchmarks/fleet.py --quick   # about a minute

N worker processes (1, 2, 4), each with a ValkeyBackend of its own and 100 coroutines, call
glidelimit gcra's ``hit()`` on 1000 keys that every process shares (a fleet shares its limits),
from a common start for a few seconds. For each deployment (a 3-primary cluster, a standalone
server) and N: the fleet's decisions/s (the median of the repeats), p50/p99 over every call, and
the CPU per decision of the workers (their process CPU / decisions) and of the servers (their
CPU from /proc; and the time spent inside EVALSHA, from INFO commandstats, which is wall time
and grows when the servers wait for a core). The servers run on the
same machine as the workers and share its cores: on a machine with few cores, more processes
share the same CPU rather than add to it, and the table says how many cores there were.
Writes benchmarks/results/fleet.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from _servers import Server, cluster, command, standalone  # noqa: E402

KEYS = 1000
LIMIT = 1_000_000_000  # per hour: every decision is allowed, so what is measured is the cost
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One run of a fleet: what its workers and servers did."""

    decisions: int
    errors: int
    first_error: str
    seconds: float
    worker_cpu: float  # seconds, all workers
    server_cpu: float  # seconds, all servers
    in_evalsha: float  # seconds, all servers
    latencies: array[int] = field(repr=False)  # ns, every call


@dataclass
class Case:
    deployment: str
    processes: int
    runs: list[Run] = field(default_factory=list)

    def median(self, per: str) -> float:
        """The median over the runs of a per-decision figure, or of decisions/s."""
        values = []
        for run in self.runs:
            if per == "rate":
                values.append(run.decisions / run.seconds)
            else:
                values.append(getattr(run, per) / max(run.decisions, 1) * 1e6)
        return statistics.median(values)

    def percentile(self, q: float) -> float:
        ordered = sorted(x for run in self.runs for x in run.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else 0.0


# --- a worker process ---------------------------------------------------------------------------


def worker(url: str, coroutines: int, offset: int, start: float, seconds: float,
           pipe: Connection) -> None:  # fmt: skip
    """Runs in a process of its own: decide from ``start`` (wall clock) for ``seconds``."""
    pipe.send(asyncio.run(decide(url, coroutines, offset, start, seconds)))
    pipe.close()


async def decide(
    url: str, coroutines: int, offset: int, start: float, seconds: float
) -> tuple[int, int, str, float, array[int]]:
    from glide import Logger, LogLevel

    from glidelimit import Limiter, ValkeyBackend

    Logger.set_logger_config(LogLevel.ERROR)  # glide's warnings would go to stdout
    options = {"inflight_requests_limit": 2000, "request_timeout": 5000}
    async with ValkeyBackend.from_url(url, **options) as backend:
        limiter = Limiter(
            f"{LIMIT}/hour", algorithm="gcra", backend=backend, name="fleet",
            on_backend_error="raise", backend_timeout=5.0,
        )  # fmt: skip
        await backend.connect()
        keys = [f"k{i}" for i in range(KEYS)]
        for key in keys[:50]:  # warm up
            await limiter.hit(key)
        samples: array[int] = array("q")
        errors = 0
        first_error = ""
        clock = time.perf_counter_ns
        await asyncio.sleep(max(0.0, start - time.time()))
        stop = clock() + int(seconds * 1e9)

        async def one(n: int) -> None:
            nonlocal errors, first_error
            i = offset + n
            while True:
                t0 = clock()
                if t0 >= stop:
                    return
                try:
                    await limiter.hit(keys[i % KEYS])
                except Exception as exc:
                    errors += 1
                    first_error = first_error or repr(exc)[:200]
                    await asyncio.sleep(0)
                    continue
                samples.append(clock() - t0)
                i += coroutines

        cpu = time.process_time()
        await asyncio.gather(*(one(n) for n in range(coroutines)))
        cpu = time.process_time() - cpu
    return len(samples), errors, first_error, cpu, samples


# --- the fleet ---------------------------------------------------------------------------------


def cpu_seconds(servers: list[Server]) -> float:
    total = 0
    for server in servers:
        assert server.proc is not None
        with open(f"/proc/{server.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def evalsha_seconds(servers: list[Server]) -> float:
    total = 0.0
    for server in servers:
        for line in str(command(server.port, "INFO", "commandstats")).splitlines():
            if line.startswith("cmdstat_evalsha:"):
                total += float(line.split("usec=")[1].split(",")[0]) / 1e6
    return total


def fleet(url: str, servers: list[Server], processes: int, coroutines: int, seconds: float) -> Run:
    """``processes`` workers deciding together for ``seconds``."""
    context = multiprocessing.get_context("spawn")  # no glide client crosses a fork
    start = time.time() + 2.0 + 0.5 * processes  # time for every worker to connect, warm up
    pipes, procs = [], []
    for p in range(processes):
        ours, theirs = context.Pipe(duplex=False)
        proc = context.Process(
            target=worker, args=(url, coroutines, p * 7919, start, seconds, theirs)
        )
        proc.start()
        theirs.close()
        pipes.append(ours)
        procs.append(proc)
    time.sleep(max(0.0, start - time.time()))
    for server in servers:
        command(server.port, "CONFIG", "RESETSTAT")
    server_cpu = cpu_seconds(servers)
    time.sleep(seconds)
    server_cpu = cpu_seconds(servers) - server_cpu
    in_evalsha = evalsha_seconds(servers)
    results = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join(30)
    latencies: array[int] = array("q")
    for result in results:
        latencies.extend(result[4])
    return Run(
        decisions=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        first_error=next((r[2] for r in results if r[2]), ""),
        seconds=seconds,
        worker_cpu=sum(r[3] for r in results),
        server_cpu=server_cpu,
        in_evalsha=in_evalsha,
        latencies=latencies,
    )


def table(cases: list[Case], coroutines: int) -> str:
    lines = [
        "| deployment | processes | coroutines | decisions/s | x 1 process | p50 ms | p99 ms "
        "| workers' CPU µs/decision | servers' CPU µs/decision | inside EVALSHA µs/decision "
        "| note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ones = {c.deployment: c for c in cases if c.processes == 1}
    for c in cases:
        one = ones.get(c.deployment)
        ratio = f"{c.median('rate') / one.median('rate'):.2f}" if one else ""
        errors = sum(r.errors for r in c.runs)
        first = next((r.first_error for r in c.runs if r.first_error), "")
        note = f"{errors} errors: {first}" if errors else ""
        lines.append(
            f"| {c.deployment} | {c.processes} | {c.processes * coroutines} | "
            f"{c.median('rate'):,.0f} | {ratio} | {c.percentile(0.5):.2f} | "
            f"{c.percentile(0.99):.2f} | {c.median('worker_cpu'):.1f} | "
            f"{c.median('server_cpu'):.1f} | {c.median('in_evalsha'):.1f} | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--coroutines", type=int, default=100, help="per process")
    parser.add_argument("--seconds", type=float, default=4.0, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="decisions/s is their median")
    parser.add_argument("--deployments", nargs="+", default=["cluster", "standalone"])
    parser.add_argument("--quick", action="store_true", help="about a minute: 2 s, 1 repeat")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fleet.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 2.0, 1

    started = time.monotonic()
    load_before = os.getloadavg()
    deployments: dict[str, tuple[str, list[Server]]] = {}
    try:
        for name in args.deployments:
            if name == "cluster":
                nodes = cluster()
                deployments[name] = (nodes[0].url + "?cluster=true", nodes)
            else:
                server = standalone()
                deployments[name] = (server.url, [server])
        cases = [Case(d, n) for d in deployments for n in args.processes]
        for _ in range(args.repeats):  # round robin: a burst of load elsewhere hits all alike
            for case in cases:
                url, servers = deployments[case.deployment]
                run = fleet(url, servers, case.processes, args.coroutines, args.seconds)
                case.runs.append(run)
                print(
                    f"{case.deployment:10} {case.processes} processes: "
                    f"{run.decisions / run.seconds:,.0f}/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for _, servers in deployments.values():
            for server in servers:
                server.kill()
    load_after = os.getloadavg()
    header = (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; "
        f"{args.coroutines} coroutines per process, {KEYS} keys shared by every process, "
        f"glidelimit gcra; {args.seconds:g} s per run, median of {args.repeats}. "
        f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
        f"Whole run: {time.monotonic() - started:.0f} s.\n\n"
        f"The servers (a 3-primary cluster; a standalone server) run on these same "
        f"{os.cpu_count()} cores as the workers, so processes beyond the cores share CPU with "
        "each other and with the servers instead of adding to it; the servers' CPU per "
        "decision is that of all of them."
    )
    result = f"{header}\n\n{table(cases, args.coroutines)}\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result)
    print(result)


if __name__ == "__main__":
    main()
