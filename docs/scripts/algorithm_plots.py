"""Plot what each algorithm admits from the same bursty arrivals (docs/images/algorithm-*.png).

    nox -s plots                              # or: python docs/scripts/algorithm_plots.py

Uses only glidelimit's public API: a MemoryBackend driven by a ManualClock, so a minute of
traffic is decided in a moment, exactly the same on every run. The scripts on Valkey decide
exactly as the memory backend does, so the plots hold for both.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from glidelimit import Limiter, MemoryBackend
from glidelimit.testing import ManualClock

RATE = "10/10s"  # small numbers, so that each request can be seen
LIMIT, PERIOD = 10, 10.0
ALGORITHMS = ["fixed_window", "sliding_window", "sliding_log", "gcra"]
COLOURS = {
    "fixed_window": "#d62728",
    "sliding_window": "#ff7f0e",
    "sliding_log": "#2ca02c",
    "gcra": "#1f77b4",
}
END = 80.0
IMAGES = Path(__file__).resolve().parent.parent / "images"


def arrivals() -> list[float]:
    """Seconds from the start at which one client's requests arrive."""
    times = [1.0]  # one request: a fixed window opens here, [1 s, 11 s)
    times += [10.5 + 0.02 * i for i in range(10)]  # a burst just before that window ends...
    times += [11.5 + 0.02 * i for i in range(10)]  # ...and one just after
    times += [20.0 + 0.5 * i for i in range(40)]  # 2 a second for 20 s: twice the rate
    times += [50.0 + 0.01 * i for i in range(25)]  # a storm of retries
    times += [69.0 + 0.02 * i for i in range(10)]  # a burst at the end of a clock window...
    times += [75.0 + 0.02 * i for i in range(10)]  # ...and one mid-way through the next
    return times


async def admitted(algorithm: str, times: list[float]) -> list[float]:
    """The arrival times that ``algorithm`` admits."""
    clock = ManualClock(start=1_000.0)
    start = clock.now
    limiter = Limiter(RATE, algorithm=algorithm, backend=MemoryBackend(clock=clock), name="plot")
    allowed = []
    for t in times:
        clock.advance(start + t - clock.now)
        if (await limiter.hit("client")).allowed:
            allowed.append(t)
    return allowed


def trailing(allowed: list[float], step: float = 0.01) -> tuple[list[float], list[int]]:
    """How many admitted requests fall in the period that ends at each instant."""
    xs, ys = [], []
    for i in range(int(END / step) + 1):
        t = i * step
        xs.append(t)
        ys.append(bisect.bisect_right(allowed, t) - bisect.bisect_right(allowed, t - PERIOD))
    return xs, ys


def cumulative(times: list[float]) -> tuple[list[float], list[int]]:
    xs, ys = [0.0], [0]
    for i, t in enumerate(times, 1):
        xs += [t, t]
        ys += [i - 1, i]
    return [*xs, END], [*ys, len(times)]


def plot_one(algorithm: str, times: list[float], allowed: list[float], path: Path) -> None:
    colour = COLOURS[algorithm]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(*cumulative(times), color="0.6", label="arrived")
    top.plot(*cumulative(allowed), color=colour, label="admitted")
    denied = sorted(set(times) - set(allowed))
    top.plot(denied, [-3] * len(denied), "|", color="0.5", markersize=6, label="denied")
    top.plot(allowed, [-6] * len(allowed), "|", color=colour, markersize=6)
    top.set_ylabel("requests so far")
    top.set_title(f'{algorithm}: Limiter("{RATE}", algorithm="{algorithm}")', loc="left")
    top.legend(loc="upper left", frameon=False)
    top.grid(alpha=0.3)
    xs, ys = trailing(allowed)
    bottom.plot(xs, ys, color=colour, drawstyle="steps-post")
    bottom.axhline(LIMIT, color="k", linestyle="--", linewidth=1)
    bottom.text(0.5, LIMIT + 0.4, "limit", ha="left", va="bottom")
    bottom.set_ylim(0, 2 * LIMIT + 2)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel(f"admitted in the\nlast {PERIOD:g} s")
    bottom.set_xlabel("seconds")
    bottom.grid(alpha=0.3)
    bottom.set_xlim(0, END)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version: diffs stay quiet
    plt.close(fig)


def plot_all(results: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for algorithm, allowed in results.items():
        ax.plot(
            *trailing(allowed), color=COLOURS[algorithm], drawstyle="steps-post", label=algorithm
        )
    ax.axhline(LIMIT, color="k", linestyle="--", linewidth=1)
    ax.set_ylim(0, 2 * LIMIT + 2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, END)
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"admitted in the\nlast {PERIOD:g} s")
    ax.set_title(f"the same arrivals, {RATE}, every algorithm", loc="left")
    ax.legend(loc="upper right", frameon=False, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    times = arrivals()
    results = {}
    for algorithm in ALGORITHMS:
        allowed = results[algorithm] = asyncio.run(admitted(algorithm, times))
        plot_one(algorithm, times, allowed, out / f"algorithm-{algorithm.replace('_', '-')}.png")
        peak = max(trailing(allowed)[1])
        print(
            f"{algorithm:15} admitted {len(allowed):3} of {len(times)}; "
            f"most in any {PERIOD:g} s: {peak}"
        )
    plot_all(results, out / "algorithms-compared.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="where to write the PNGs")
    main(parser.parse_args().out)
