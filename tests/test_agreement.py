"""Each algorithm's Lua script and its Python twin give exactly the same results.

Hypothesis generates sequences of (time step, cost, mode) and rates; the script runs on a real
valkey-server with an explicit "now", the twin on a MemoryBackend with the same "now": both
backends read one manual clock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glidelimit import MemoryBackend, Rate, ValkeyBackend
from glidelimit.algorithms import ALGORITHMS, Algorithm, Limits, Mode
from glidelimit.testing import ManualClock

Runner = tuple[asyncio.AbstractEventLoop, ValkeyBackend, ManualClock]


@pytest.fixture(scope="module")
def runner(valkey_url: str) -> Iterator[Runner]:
    # hypothesis drives a plain function, so the loop (and the client tied to it) is ours
    loop = asyncio.new_event_loop()
    backend = ValkeyBackend.from_url(valkey_url)
    clock = ManualClock()
    backend._clock = clock  # the script decides at the clock's time, not the server's
    loop.run_until_complete(backend.connect())
    yield loop, backend, clock
    loop.run_until_complete(backend.aclose())
    loop.close()


def both(
    runner: Runner, memory: MemoryBackend, algo: Algorithm, limits: Limits
) -> Callable[..., tuple[list[int], list[int]]]:
    """A function that decides on the script and on the twin at one instant."""
    loop, valkey, clock = runner
    on_valkey, on_memory = valkey.executor(algo, limits), memory.executor(algo, limits)

    def decide(
        keys: tuple[bytes, ...],
        now: int,
        cost: int,
        mode: int,
        max_wait: int = -1,
        holder: bytes = b"",
    ) -> tuple[list[int], list[int]]:
        clock.now = now / 1000
        script = loop.run_until_complete(on_valkey(keys, cost, mode, max_wait, holder))  # type: ignore[arg-type]
        twin = on_memory(keys, cost, mode, max_wait, holder)
        assert isinstance(twin, list)
        return script, twin

    return decide


periods = st.sampled_from([1, 3, 10, 250, 1000, 2000, 60_000])
rate_specs = st.lists(
    st.tuples(st.integers(1, 12), periods, st.integers(1, 15)),
    min_size=1,
    max_size=3,
    unique_by=lambda spec: (spec[0], spec[1]),
)
ops = st.lists(
    st.tuples(
        st.integers(0, 2_500),  # ms since the previous op
        st.integers(-3, 16),  # cost (negative: gcra's refund, else skipped)
        st.sampled_from([Mode.HIT, Mode.HIT, Mode.PEEK, Mode.RESERVE]),
        st.integers(-1, 3_000),  # max wait for RESERVE
    ),
    min_size=1,
    max_size=40,
)


def timeline(
    algorithm: str, steps: list[tuple[int, int, Mode, int]], start: int
) -> Iterator[tuple[int, int, Mode, int]]:
    """``steps`` as (now, cost, mode, max wait), without those the algorithm does not take
    (a refund or a reservation, but on gcra); a peek's cost is 1."""
    reservable = ALGORITHMS[algorithm].reservable
    now = start
    for dt, cost, mode, max_wait in steps:
        now += dt
        if not reservable and (cost < 0 or mode == Mode.RESERVE):
            continue
        yield now, 1 if mode == Mode.PEEK else cost, mode, max_wait


@settings(max_examples=300, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    specs=rate_specs,
    steps=ops,
    start=st.integers(1_600_000_000_000, 1_900_000_000_000),
)
def test_script_and_twin_agree(
    runner: Runner,
    algorithm: str,
    specs: list[tuple[int, int, int]],
    steps: list[tuple[int, int, Mode, int]],
    start: int,
) -> None:
    algo = ALGORITHMS[algorithm]
    rates = tuple(Rate(limit, period / 1000) for limit, period, _ in specs)
    caps = tuple(cap if algo.reservable else limit for limit, _, cap in specs)
    limits = Limits.of(rates, caps)
    tag = uuid.uuid4().hex
    keys = tuple(f"agree:{{{tag}}}:{i}".encode() for i in range(len(rates)))
    memory = MemoryBackend(clock=runner[2])
    decide = both(runner, memory, algo, limits)
    for now, cost, mode, max_wait in timeline(algorithm, steps, start):
        script, twin = decide(keys, now, cost, mode, max_wait)
        assert script == twin, (algorithm, now - start, cost, mode)


def test_sliding_log_survives_a_clock_stepping_back(runner: Runner) -> None:
    """Units stamped at one instant stay distinct members even when the server's clock steps
    back to an instant that already has some, after older ones were removed."""
    algo = ALGORITHMS["sliding_log"]
    limits = Limits.of((Rate(10, 1.5),), (10,))
    keys = (f"agree:{{{uuid.uuid4().hex}}}:log".encode(),)
    decide = both(runner, MemoryBackend(clock=runner[2]), algo, limits)
    base = 1_700_000_000_000
    # at 1600 the two units of 0 die; then the clock is back at 1000, which has a unit already
    for offset, cost, mode in [(0, 2, Mode.HIT), (1000, 1, Mode.HIT), (1600, 1, Mode.HIT),
                               (1000, 1, Mode.HIT), (1000, 1, Mode.PEEK)]:  # fmt: skip
        script, twin = decide(keys, base + offset, cost, mode)
        assert script == twin
    assert script[2] == 10 - 4  # three live units (1000, 1600, 1000 again), and the peek's


def test_sliding_log_does_bounded_work_whatever_the_cost(runner: Runner) -> None:
    """One entry per hit, whatever its cost: a hit of cost 8,000,000 is as quick as one of 1,
    holds one member, and a denied hit finds its retry without walking the log."""
    loop, valkey, _ = runner
    algo = ALGORITHMS["sliding_log"]
    limits = Limits.of((Rate(8_000_000, 3600),), (8_000_000,))
    keys = (f"agree:{{{uuid.uuid4().hex}}}:big".encode(),)
    decide = both(runner, MemoryBackend(clock=runner[2]), algo, limits)
    base = 1_700_000_000_000
    for i in range(200):
        script, twin = decide(keys, base + i, 1, Mode.HIT)
        assert script == twin
    script, twin = decide(keys, base + 500, 7_999_800, Mode.HIT)
    assert script == twin
    assert script[0] == 1
    script, twin = decide(keys, base + 600, 1, Mode.HIT)  # denied: its retry is the first hit's
    assert script == twin
    assert (script[0], script[4]) == (0, 3_600_000 - 600)
    members = loop.run_until_complete(valkey_zcard(valkey, keys[0]))
    assert members == 201


async def valkey_zcard(backend: ValkeyBackend, key: bytes) -> int:
    channel = await backend._channel()
    return int(await channel.client.zcard(key))


lease_ops = st.lists(
    st.tuples(
        st.integers(0, 1_500),  # ms since the previous op
        st.sampled_from(["hit", "hit", "lease", "give back", "peek"]),
        st.integers(0, 12),  # cost, units wanted, or units given back
        st.integers(0, 2_000),  # a lease's horizon (gcra)
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(["gcra", "fixed_window"]),
    specs=rate_specs,
    steps=lease_ops,
    start=st.integers(1_600_000_000_000, 1_900_000_000_000),
)
def test_leases_agree(
    runner: Runner,
    algorithm: str,
    specs: list[tuple[int, int, int]],
    steps: list[tuple[int, str, int, int]],
    start: int,
) -> None:
    """Slices taken (LEASE) and given back (GIVE_BACK) among hits: script and twin agree."""
    import struct

    algo = ALGORITHMS[algorithm]
    rates = tuple(Rate(limit, period / 1000) for limit, period, _ in specs)
    caps = tuple(cap if algo.reservable else limit for limit, _, cap in specs)
    limits = Limits.of(rates, caps)
    keys = tuple(f"lease:{{{uuid.uuid4().hex}}}:{i}".encode() for i in range(len(rates)))
    decide = both(runner, MemoryBackend(clock=runner[2]), algo, limits)
    now = start
    last: tuple[int, list[int]] | None = None  # the last slice: its size and answer
    for dt, op, n, horizon in steps:
        now += dt
        if op == "lease":
            script, twin = decide(keys, now, n, Mode.LEASE, horizon)
            last = (script[0], script)
        elif op == "give back":
            if last is None:
                continue
            granted, answer = last
            holder = b"".join(
                struct.pack(
                    "<dd", answer[3 + 4 * i], algo.after_grant(answer[4 + 4 * i], granted, period)
                )
                for i, (_, period, _) in enumerate(limits.entries)
            )
            script, twin = decide(keys, now, min(n, granted), Mode.GIVE_BACK, -1, holder)
        else:
            mode = Mode.HIT if op == "hit" else Mode.PEEK
            script, twin = decide(keys, now, n, mode)
        assert script == twin, (algorithm, op, now - start, n)
