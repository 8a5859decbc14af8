"""Requests/s of a trivial FastAPI endpoint behind each rate limiter, under one load
generator (wrk), in one run; ratios against the unlimited endpoint of the same run.

    nox -s bench                  # runs this after suite.py
    python benchmarks/http_bench.py --seconds 1 --rounds 12
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
    # references: one GET through glide and two RateLimit headers per request, as a limiter
    # that makes one plain round trip per request and costs nothing more would be
    "one-get-dependency",
    "one-get-middleware",
    "wait-middleware",  # waiting for a future the loop sets, and the headers: no I/O at all
    "glidelimit-memory",
    "glidelimit-valkey",
    "glidelimit-memory-middleware",
    "glidelimit-valkey-middleware",
    "glidelimit-memory-middleware-fixed",
    "glidelimit-valkey-middleware-lease",
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
    variants: list[str], url: str, seconds: float, rounds: int, connections: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Every variant's requests/s and ratios to the baseline (``variants[0]``), a pair per
    round. Their servers all run from the start. A round runs the baseline before and after
    every other variant (base, a, base, b, ..., base), and a variant's ratio is its rate over
    the mean of the two baseline runs around it: on this machine the speed of every process
    moves by 10-40% within seconds, and runs a second apart are what it moves least."""
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for variant in variants:
            servers[variant] = start(variant, url)
        for _, port in servers.values():
            wrk(port, 1, connections)  # warm up

        def run(variant: str) -> float:
            rate, bad = wrk(servers[variant][1], seconds, connections)
            if bad:
                raise RuntimeError(f"{variant}: {bad} responses were not 2xx: limits too low?")
            return rate

        base, others = variants[0], variants[1:]
        results: dict[str, tuple[list[float], list[float]]] = {v: ([], []) for v in variants}
        before = run(base)
        results[base][0].append(before)
        for _ in range(rounds):
            for variant in others:
                rate = run(variant)
                after = run(base)
                results[base][0].append(after)
                results[variant][0].append(rate)
                results[variant][1].append(rate / ((before + after) / 2))
                before = after
        return results
    finally:
        for server, _ in servers.values():
            server.terminate()
        for server, _ in servers.values():
            server.wait(10)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """The lower quartile, the median and the upper quartile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, mid, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=1, help="of each run of wrk")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS),
        help=f"comma-separated, the first is the baseline; of {', '.join(VARIANTS)}",
    )  # fmt: skip
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        sys.exit(f"unknown variants: {sorted(unknown)}")
    if len(set(variants)) != len(variants):
        sys.exit(f"a variant is named twice: {args.variants}")
    if args.rounds < 1 or args.seconds < 1:
        sys.exit("--rounds and --seconds must be at least 1")
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/http_bench.py needs wrk on PATH (Debian: apt-get install wrk)")
    valkey = standalone()
    try:
        results = measure(variants, valkey.url, args.seconds, args.rounds, args.connections)
    finally:
        valkey.kill()
    print(
        f"\nGET /ping, wrk -t1 -c{args.connections}, uvicorn, one process each; {args.rounds} "
        f"rounds, each running the baseline before and after every variant, {args.seconds} s a "
        "run; a variant's ratio in a round is its rate over the mean of the two baseline runs "
        "around it\n"
    )
    label = "unlimited" if variants[0] == "none" else variants[0]
    print(
        f"| limiter | requests/s (median) | x {label} (median of rounds) | middle half of "
        "rounds |\n|---|---:|---:|---:|"
    )
    for variant, (rates, ratios) in results.items():
        rate = statistics.median(rates)
        if not ratios:
            print(f"| {variant} | {rate:,.0f} | 1 | |")
            continue
        low, mid, high = quartiles(ratios)
        print(f"| {variant} | {rate:,.0f} | {mid:.2f} | {low:.2f}-{high:.2f} |")


if __name__ == "__main__":
    main()
