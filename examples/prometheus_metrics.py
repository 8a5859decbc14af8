"""glidelimit's metrics, exported to Prometheus through OpenTelemetry.

pip install -e '.[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus
python examples/prometheus_metrics.py --url valkey://127.0.0.1:6379
curl http://127.0.0.1:9464/metrics     # glidelimit_decisions_total{...} and the others
"""

from __future__ import annotations

import argparse
import asyncio

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

import glidelimit
from glidelimit import Limiter, MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend


async def traffic(backend: Backend) -> None:
    """A limiter of 5 a second, hit 8 times a second: 3 of them are denied."""
    limiter = Limiter("5/second", backend=backend, name="api")
    while True:
        for _ in range(8):
            await limiter.hit("user:42")
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory)")
    parser.add_argument("--port", type=int, default=9464, help="where /metrics is served")
    args = parser.parse_args()
    start_http_server(args.port, addr="127.0.0.1")  # Prometheus scrapes this
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    glidelimit.instrument()  # every limiter, on the global meter provider set above
    backend: Backend = MemoryBackend() if args.url is None else ValkeyBackend.from_url(args.url)
    print(f"metrics on http://127.0.0.1:{args.port}/metrics", flush=True)
    asyncio.run(traffic(backend))


if __name__ == "__main__":
    main()
