"""OpenTelemetry metrics (extra ``otel``), the API only: an application brings the SDK.

Counting goes on in plain Python, on the limiter's own counters: the SDK's synchronous
instruments cost several microseconds a call, more than a decision of the memory backend. The
SDK reads the counters through observable instruments when it collects. Durations go to real
histograms, but at most ``durations_per_second`` of them a second per limiter (all of them
below that rate): their distribution is a sample, the counts of decisions are exact.

No attribute ever holds a key: keys are unbounded, and a metric's attributes must not be.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import ConfigurationError
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

    from ._decision import Decision

__all__ = ["instrument", "uninstrument"]

# decision durations are seconds from a few µs (memory) to a budget (0.2 s by default)
_DURATION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                     0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # fmt: skip
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Measured(Protocol):
    """What can be measured (a limiter's guard): it takes a :class:`Meter` when metrics are
    on."""

    name: str
    backend_kind: str
    concurrency: bool
    meter: Meter | None


class _Instruments:
    """The instruments of one ``instrument()`` call, and the meters they read."""

    def __init__(self, meter_provider: MeterProvider | None, durations_per_second: float) -> None:
        from opentelemetry import metrics
        from opentelemetry.metrics import Observation

        self.observation = Observation
        self.interval = 1.0 / durations_per_second if durations_per_second > 0 else None
        self.meters: weakref.WeakSet[Meter] = weakref.WeakSet()
        meter = metrics.get_meter("glidelimit", __version__, meter_provider=meter_provider)
        meter.create_observable_counter(
            "glidelimit.decisions", [self._decisions], unit="{decision}",
            description="Decisions made, by limiter, outcome, and whether the failure policy "
            "made them (degraded)",
        )  # fmt: skip
        meter.create_observable_counter(
            "glidelimit.backend.errors", [self._errors], unit="{error}",
            description="Calls to a backend that failed (the backend was unavailable), by kind",
        )  # fmt: skip
        meter.create_observable_counter(
            "glidelimit.breaker.changes", [self._breaker], unit="{change}",
            description="Times a limiter's circuit breaker opened or closed",
        )  # fmt: skip
        meter.create_observable_up_down_counter(
            "glidelimit.concurrency.in_flight", [self._in_flight], unit="{slot}",
            description="Slots of a concurrency limiter held in this process",
        )  # fmt: skip
        self.duration: Histogram = meter.create_histogram(
            "glidelimit.decision.duration", unit="s",
            description="Time from a call to its decision (a sample: see glidelimit.decisions "
            "for counts)",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )  # fmt: skip
        self.wait: Histogram = meter.create_histogram(
            "glidelimit.acquire.wait", unit="s",
            description="Time acquire() and ConcurrencyLimiter.slot() waited",
            explicit_bucket_boundaries_advisory=list(_WAIT_BUCKETS),
        )  # fmt: skip

    def _decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        observe = self.observation
        for meter in list(self.meters):
            for (outcome, degraded), count in zip(_OUTCOMES, meter.counts):
                if count:
                    yield observe(count, meter.outcome_attributes[(outcome, degraded)])

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for meter in list(self.meters):
            for kind, count in list(meter.errors.items()):
                yield self.observation(count, {**meter.attributes, "error.type": kind})

    def _breaker(self, options: CallbackOptions) -> Iterable[Observation]:
        for meter in list(self.meters):
            for state, count in list(meter.breaker_changes.items()):
                yield self.observation(
                    count, {**meter.attributes, "glidelimit.breaker.state": state}
                )

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        for meter in list(self.meters):
            if meter.concurrency:
                yield self.observation(meter.in_flight, meter.attributes)


_OUTCOMES = (("denied", False), ("denied", True), ("allowed", False), ("allowed", True))


class Meter:
    """One limiter's counters, read by the observable instruments."""

    __slots__ = ("__weakref__", "attributes", "breaker_changes", "concurrency", "counts",
                 "errors", "in_flight", "instruments", "next_duration",
                 "outcome_attributes")  # fmt: skip

    def __init__(self, instruments: _Instruments, name: str, backend: str, concurrency: bool):
        self.instruments = instruments
        self.attributes: dict[str, Any] = {
            "glidelimit.limiter": name,
            "glidelimit.backend": backend,
        }
        self.outcome_attributes = {
            (outcome, degraded): {
                **self.attributes,
                "glidelimit.outcome": outcome,
                "glidelimit.degraded": degraded,
            }
            for outcome, degraded in _OUTCOMES
        }
        self.counts = [0, 0, 0, 0]  # by 2 * allowed + degraded, in the order of _OUTCOMES
        self.errors: dict[str, int] = {}
        self.breaker_changes: dict[str, int] = {}
        self.concurrency = concurrency
        self.in_flight = 0
        self.next_duration = 0.0  # the next decision whose duration is recorded, at the earliest
        instruments.meters.add(self)

    def decision(self, decision: Decision, started: float) -> None:
        """Count ``decision``, made since ``started`` (``time.perf_counter()``)."""
        self.counts[2 * decision.allowed + decision.degraded] += 1
        now = time.perf_counter()
        if now >= self.next_duration:
            instruments = self.instruments
            if instruments.interval is not None:
                self.next_duration = now + instruments.interval
                outcome = "allowed" if decision.allowed else "denied"
                attributes = self.outcome_attributes[(outcome, decision.degraded)]
                instruments.duration.record(now - started, attributes)

    def error(self, exc: BaseException) -> None:
        """Count a failure of the backend (``exc`` is a BackendError)."""
        cause = exc.__cause__
        kind = "timeout" if "budget" in str(exc) else type(cause or exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def breaker(self, state: str) -> None:
        """Count the breaker's change to ``state`` (``open`` or ``closed``)."""
        self.breaker_changes[state] = self.breaker_changes.get(state, 0) + 1

    def waited(self, seconds: float) -> None:
        """Record how long an acquire() or a slot() waited."""
        self.instruments.wait.record(seconds, self.attributes)


_instruments: _Instruments | None = None
_made: dict[MeterProvider | None, _Instruments] = {}  # by provider (None: the global one)
_measured: weakref.WeakSet[Any] = weakref.WeakSet()


def meter_for(limiter: Measured) -> Meter | None:
    """The Meter for a new limiter (None while metrics are off); it is given one later if
    :func:`instrument` is called then."""
    _measured.add(limiter)
    if _instruments is None:
        return None
    return Meter(_instruments, limiter.name, limiter.backend_kind, limiter.concurrency)


def instrument(
    meter_provider: MeterProvider | None = None, *, durations_per_second: float = 100
) -> None:
    """Turn on OpenTelemetry metrics for every limiter, those made already and those to come.

    Metrics (attributes ``glidelimit.limiter``, the limiter's name, and ``glidelimit.backend``:
    ``memory``, ``valkey`` or ``valkey_cluster``; never the key):

    - ``glidelimit.decisions`` (counter, ``{decision}``), also by ``glidelimit.outcome``
      (``allowed`` or ``denied``) and ``glidelimit.degraded``;
    - ``glidelimit.decision.duration`` (histogram, ``s``): time from call to decision, for at
      most ``durations_per_second`` decisions a second per limiter;
    - ``glidelimit.backend.errors`` (counter, ``{error}``), by ``error.type``;
    - ``glidelimit.breaker.changes`` (counter, ``{change}``), by ``glidelimit.breaker.state``;
    - ``glidelimit.acquire.wait`` (histogram, ``s``): how long ``acquire()`` and
      ``ConcurrencyLimiter.slot()`` waited;
    - ``glidelimit.concurrency.in_flight`` (up-down counter, ``{slot}``): slots held here.

    >>> import glidelimit
    >>> glidelimit.instrument()  # the global MeterProvider, set by your OpenTelemetry SDK

    Args:
        meter_provider: Where the instruments come from; None: OpenTelemetry's global one.
        durations_per_second: The most decision durations recorded a second per limiter
            (recording one costs the SDK microseconds); 0 records none.

    Raises:
        ConfigurationError: If ``opentelemetry-api`` is not installed (``glidelimit[otel]``),
            or an argument is not valid.
    """
    global _instruments
    if isinstance(durations_per_second, bool) or not (
        isinstance(durations_per_second, (int, float)) and durations_per_second >= 0
    ):
        raise ConfigurationError(
            f"durations_per_second must be a number >= 0, got {durations_per_second!r}"
        )
    try:
        import opentelemetry.metrics  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "metrics need the OpenTelemetry API: pip install 'glidelimit[otel]'"
        ) from exc
    # One set of instruments per provider: asked again for an instrument it has, a provider
    # hands back the first, whose callbacks read the meters of the _Instruments that made it
    instruments = _made.get(meter_provider)
    if instruments is None:
        instruments = _made[meter_provider] = _Instruments(meter_provider, durations_per_second)
    else:
        instruments.interval = 1.0 / durations_per_second if durations_per_second > 0 else None
    _instruments = instruments
    for limiter in list(_measured):
        limiter.meter = Meter(instruments, limiter.name, limiter.backend_kind, limiter.concurrency)


def uninstrument() -> None:
    """Turn metrics off again, for every limiter."""
    global _instruments
    _instruments = None
    for limiter in list(_measured):
        limiter.meter = None
