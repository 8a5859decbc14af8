"""Each algorithm's Lua script and its Python twin give exactly the same results.

Hypothesis generates sequences of (time step, cost, mode) and rates; the script runs on a real
valkey-server with an explicit "now", the twin on a MemoryBackend with the same "now".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glidelimit import MemoryBackend, Rate, ValkeyBackend
from glidelimit.algorithms import ALGORITHMS, Limits, Mode, Request

Runner = tuple[asyncio.AbstractEventLoop, ValkeyBackend]


@pytest.fixture(scope="module")
def runner(valkey_url: str) -> Iterator[Runner]:
    # hypothesis drives a plain function, so the loop (and the client tied to it) is ours
    loop = asyncio.new_event_loop()
    backend = ValkeyBackend.from_url(valkey_url)
    loop.run_until_complete(backend.connect())
    yield loop, backend
    loop.run_until_complete(backend.aclose())
    loop.close()


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
    loop, valkey = runner
    algo = ALGORITHMS[algorithm]
    rates = tuple(Rate(limit, period / 1000) for limit, period, _ in specs)
    caps = tuple(cap if algo.reservable else limit for limit, _, cap in specs)
    limits = Limits.of(rates, caps)
    tag = uuid.uuid4().hex
    keys = tuple(f"agree:{{{tag}}}:{i}" for i in range(len(rates)))
    memory = MemoryBackend()
    for now, cost, mode, max_wait in timeline(algorithm, steps, start):
        request = Request(keys, limits, cost, mode, max_wait, now=now)
        script = loop.run_until_complete(valkey.execute(algo, request))
        twin = loop.run_until_complete(memory.execute(algo, request))
        assert script == twin, (algorithm, now - start, cost, mode)


def test_sliding_log_survives_a_clock_stepping_back(runner: Runner) -> None:
    """Units stamped at one instant stay distinct members even when the server's clock steps
    back to an instant that already has some, after older ones were removed."""
    loop, valkey = runner
    algo = ALGORITHMS["sliding_log"]
    limits = Limits.of((Rate(10, 1.5),), (10,))
    keys = (f"agree:{{{uuid.uuid4().hex}}}:log",)
    memory = MemoryBackend()
    base = 1_700_000_000_000
    # at 1600 the two units of 0 die; then the clock is back at 1000, which has a unit already
    for offset, cost, mode in [(0, 2, Mode.HIT), (1000, 1, Mode.HIT), (1600, 1, Mode.HIT),
                               (1000, 1, Mode.HIT), (1000, 1, Mode.PEEK)]:  # fmt: skip
        request = Request(keys, limits, cost, mode, now=base + offset)
        script = loop.run_until_complete(valkey.execute(algo, request))
        assert script == loop.run_until_complete(memory.execute(algo, request))
    assert script[2] == 10 - 4  # three live units (1000, 1600, 1000 again), and the peek's


@settings(max_examples=500, deadline=None)
@given(
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    spec=st.tuples(st.integers(1, 12), periods, st.integers(1, 15)),
    steps=ops,
    start=st.integers(1_600_000_000_000, 1_900_000_000_000),
)
def test_one_rate_step_agrees_with_the_driver_twin(
    algorithm: str, spec: tuple[int, int, int], steps: list[tuple[int, int, Mode, int]], start: int
) -> None:
    """A MemoryBackend decides one rate in one frame (MemoryBackend.decider), not with the
    driver's twin (decide_rates): both give the same results and store the same state."""
    algo = ALGORITHMS[algorithm]
    limit, period, cap = spec
    limits = Limits.of((Rate(limit, period / 1000),), (cap if algo.reservable else limit,))
    memory = MemoryBackend()
    decide = memory.decider(algo, limits)
    stored: tuple[Any, ...] | None = None  # (expires at, *state), from the driver's twin
    for now, cost, mode, max_wait in timeline(algorithm, steps, start):
        state = stored if stored is not None and stored[0] > now else None
        out, writes = algo.decide_rates([state], limits, cost, mode, max_wait, now)
        if writes is not None:
            new, ttl = writes[0]
            stored = (now + ttl, *new) if ttl > 0 else None
        assert decide(("k",), cost, mode, max_wait, now) == out, (algorithm, now - start, cost)
        held = memory._store.data.get("k")
        assert (held is not None and held[0] > now) == (stored is not None and stored[0] > now)
        if held is not None and stored is not None and stored[0] > now:
            assert held == stored
