"""Requests/s of a trivial FastAPI endpoint behind each rate limiter, under one load
generator (wrk), in one run; ratios against the unlimited endpoint of the same run.

    nox -s bench                  # runs this after suite.py
    python benchmarks/http_bench.py --seconds 5 --repeats 3
    python benchmarks/http_bench.py --variants none,glidelimit-memory

Needs wrk (Debian: apt-get install wrk). Starts its own valkey-server on loopback.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from _servers import free_port, standalone, wait_for_http  # noqa: E402

VARIANTS = [
    "none",
    "noop-dependency",  # FastAPI's own cost of a dependency: the floor under every dependency
    "glide-get-middleware",  # one GET through glide per request: the floor of a round trip
    "glidelimit-memory",
    "glidelimit-valkey",
    "glidelimit-memory-middleware",
    "glidelimit-valkey-middleware",
    "slowapi",
    "fastapi-limiter",
]


def wrk(port: int, seconds: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", f"http://127.0.0.1:{port}/ping"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad[1]) if bad else 0


def start(variant: str, url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "http_app.py"), variant, "--port", str(port), "--url", url]
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server)
    except BaseException:
        server.terminate()
        raise
    return server, port


def measure(
    variants: list[str], url: str, seconds: float, repeats: int, connections: int
) -> dict[str, float]:
    """Every variant's median requests/s. Their servers all run from the start, and each
    repeat measures each in turn: load from elsewhere on the machine, which comes and goes,
    falls on every variant alike instead of on whichever ran at the time."""
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for variant in variants:
            servers[variant] = start(variant, url)
        for _, port in servers.values():
            wrk(port, 1, connections)  # warm up
        runs: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(repeats):
            for variant, (_, port) in servers.items():
                rate, bad = wrk(port, seconds, connections)
                if bad:
                    raise RuntimeError(f"{variant}: {bad} responses were not 2xx: limits too low?")
                runs[variant].append(rate)
        return {variant: statistics.median(rates) for variant, rates in runs.items()}
    finally:
        for server, _ in servers.values():
            server.terminate()
        for server, _ in servers.values():
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS),
        help=f"comma-separated, the first is the baseline; of {', '.join(VARIANTS)}",
    )  # fmt: skip
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        sys.exit(f"unknown variants: {sorted(unknown)}")
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/http_bench.py needs wrk on PATH (Debian: apt-get install wrk)")
    valkey = standalone()
    try:
        results = measure(variants, valkey.url, args.seconds, args.repeats, args.connections)
    finally:
        valkey.kill()
    base = results[variants[0]]
    print(
        f"\nGET /ping, wrk -t1 -c{args.connections}, {args.seconds}s x {args.repeats} "
        "(median; the variants take turns), uvicorn, one process each\n"
    )
    label = "unlimited" if variants[0] == "none" else variants[0]
    print(f"| limiter | requests/s | x {label} |\n|---|---:|---:|")
    for variant, rate in results.items():
        print(f"| {variant} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
