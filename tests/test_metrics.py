"""OpenTelemetry metrics, read back with the SDK's in-memory reader, against a real Valkey."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import glidelimit
from _servers import free_port, wait_for_http
from glidelimit import ConcurrencyLimiter, Limiter, MemoryBackend, ValkeyBackend

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    glidelimit.instrument(MeterProvider(metric_readers=[reader]))
    yield reader
    glidelimit.uninstrument()


def points(reader: InMemoryMetricReader, limiter: str) -> dict[tuple[str, tuple[Any, ...]], Any]:
    """Every data point of ``limiter``, by metric name and its other attributes."""
    data = reader.get_metrics_data()
    assert data is not None
    found = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if attributes.pop("glidelimit.limiter", None) != limiter:
                        continue
                    found[(metric.name, tuple(sorted(attributes.items())))] = point
    return found


async def test_decisions_and_durations_on_valkey(
    reader: InMemoryMetricReader, valkey_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter("5/minute", backend=valkey_backend, name=name)
    await asyncio.gather(*(limiter.hit("k") for _ in range(8)))
    found = points(reader, name)
    allowed = ("glidelimit.backend", "valkey"), ("glidelimit.degraded", False)
    assert found[("glidelimit.decisions", (*allowed, ("glidelimit.outcome", "allowed")))].value == 5
    assert found[("glidelimit.decisions", (*allowed, ("glidelimit.outcome", "denied")))].value == 3
    durations = [p for (metric, _), p in found.items() if metric == "glidelimit.decision.duration"]
    assert sum(p.count for p in durations) >= 1  # a sample: at most 100 a second
    assert all(0 < p.sum < 5 for p in durations)
    for metric, attributes in found:  # never the key, whatever the metric
        assert all(value != "k" for _, value in attributes), metric


async def test_metrics_turned_on_later_reach_limiters_made_before(name: str) -> None:
    limiter = Limiter("5/minute", backend=MemoryBackend(), name=name)
    await limiter.hit("k")  # not counted: metrics are off
    reader = InMemoryMetricReader()
    glidelimit.instrument(MeterProvider(metric_readers=[reader]), durations_per_second=0)
    try:
        await limiter.hit("k")
        found = points(reader, name)
    finally:
        glidelimit.uninstrument()
    attributes = (
        ("glidelimit.backend", "memory"),
        ("glidelimit.degraded", False),
        ("glidelimit.outcome", "allowed"),
    )
    key = ("glidelimit.decisions", attributes)
    assert found[key].value == 1
    assert not any(metric == "glidelimit.decision.duration" for metric, _ in found)


async def test_backend_errors_breaker_changes_and_degraded_decisions(
    reader: InMemoryMetricReader, name: str
) -> None:
    async with ValkeyBackend.from_url(f"valkey://127.0.0.1:{free_port()}") as dead:
        limiter = Limiter("5/minute", backend=dead, name=name)
        for _ in range(5):
            assert (await limiter.hit("k")).degraded
    found = points(reader, name)
    errors = sum(
        p.value for (metric, _), p in found.items() if metric == "glidelimit.backend.errors"
    )
    assert errors == 3  # then the breaker skipped the backend
    opened = ("glidelimit.backend", "valkey"), ("glidelimit.breaker.state", "open")
    assert found[("glidelimit.breaker.changes", opened)].value == 1
    degraded = ("glidelimit.backend", "valkey"), ("glidelimit.degraded", True)
    assert (
        found[("glidelimit.decisions", (*degraded, ("glidelimit.outcome", "allowed")))].value == 5
    )


async def test_acquire_waits_and_slots_in_flight(
    reader: InMemoryMetricReader, valkey_backend: ValkeyBackend, name: str
) -> None:
    limiter = Limiter("20/second", backend=valkey_backend, name=name, burst=1)
    for _ in range(3):
        await limiter.acquire("k")
    slots = ConcurrencyLimiter(2, backend=valkey_backend, name=f"{name}-slots")
    async with slots.slot("x"), slots.slot("x"):
        inside = points(reader, f"{name}-slots")
    after = points(reader, f"{name}-slots")
    waits = points(reader, name)[("glidelimit.acquire.wait", (("glidelimit.backend", "valkey"),))]
    assert waits.count == 3
    assert 0.05 < waits.sum < 1.0  # the second and third waited 50 ms each
    in_flight = ("glidelimit.concurrency.in_flight", (("glidelimit.backend", "valkey"),))
    assert inside[in_flight].value == 2
    assert after[in_flight].value == 0


def test_a_bad_argument_is_refused() -> None:
    with pytest.raises(glidelimit.ConfigurationError, match="durations_per_second"):
        glidelimit.instrument(durations_per_second=-1)


def test_the_prometheus_example_serves_the_metrics(valkey_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "prometheus_metrics.py"), "--url", valkey_url,
         "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc)
        text = ""
        for _ in range(50):
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            if 'glidelimit_outcome="denied"' in text:
                break
            anyio.run(anyio.sleep, 0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert "# TYPE glidelimit_decisions_total counter" in text
    assert 'glidelimit_outcome="denied"' in text
    assert "glidelimit_decision_duration_seconds_bucket" in text


async def test_metrics_turned_on_again_are_counted_again(name: str) -> None:
    """instrument() on the same provider a second time (or after uninstrument()) counts on."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    limiter = Limiter("5/minute", backend=MemoryBackend(), name=name)
    try:
        glidelimit.instrument(provider)
        await limiter.hit("k")
        glidelimit.uninstrument()
        glidelimit.instrument(provider)
        glidelimit.instrument(provider)
        await limiter.hit("k")
        found = points(reader, name)
    finally:
        glidelimit.uninstrument()
    attributes = (
        ("glidelimit.backend", "memory"),
        ("glidelimit.degraded", False),
        ("glidelimit.outcome", "allowed"),
    )
    assert found[("glidelimit.decisions", attributes)].value >= 1
