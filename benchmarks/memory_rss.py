"""Resident memory of a MemoryBackend holding many distinct keys, against a baseline process.

    python benchmarks/memory_rss.py                  # 1M distinct keys, gcra
    python benchmarks/memory_rss.py --keys 200000 --algorithm sliding_log

Each case runs in a fresh process, and the baseline (glidelimit imported, a limiter made, no
keys) is measured in the same run, so the report is a difference, not an absolute target. A
case whose backend ever holds more than its max_keys fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def fill(keys: int, max_keys: int, algorithm: str) -> dict[str, int]:
    from glidelimit import Limiter, MemoryBackend
    from glidelimit.testing import ManualClock

    backend = MemoryBackend(max_keys=max_keys, clock=ManualClock())  # nothing expires
    limiter = Limiter("10/hour", backend=backend, name="rss", algorithm=algorithm)
    most = 0
    for i in range(keys):
        await limiter.hit(f"user:{i}")
        if i % 1024 == 0:
            most = max(most, len(backend))
    most = max(most, len(backend))
    return {
        "held": len(backend),
        "most": most,
        "rss_kib": rss_kib(),
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_case(keys: int, max_keys: int, algorithm: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(keys), str(max_keys), algorithm],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--algorithm", default="gcra")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        keys, max_keys, algorithm = int(args.child[0]), int(args.child[1]), args.child[2]
        print(json.dumps(asyncio.run(fill(keys, max_keys, algorithm))))
        return
    n = args.keys
    base = run_case(0, 1, args.algorithm)
    print(f"MemoryBackend, {n:,} distinct keys, {args.algorithm}; RSS over a baseline process")
    print(f"  baseline (no keys):               RSS {base['rss_kib'] / 1024:8.1f} MiB")
    failed = False
    for max_keys in (n, n // 10):
        case = run_case(n, max_keys, args.algorithm)
        extra = case["rss_kib"] - base["rss_kib"]
        peak = case["peak_kib"] - base["peak_kib"]
        print(
            f"  max_keys={max_keys:>9,}: held {case['held']:>9,} (most {case['most']:,}), "
            f"RSS +{extra / 1024:7.1f} MiB (peak +{peak / 1024:.1f}), "
            f"{extra * 1024 / max(case['held'], 1):.0f} B/key held"
        )
        failed = failed or case["most"] > max_keys
    if failed:
        sys.exit("a backend held more keys than its max_keys")


if __name__ == "__main__":
    main()
