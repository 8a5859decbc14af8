"""The worker examples run, and share their limits across processes through Valkey."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_together(*commands: list[str]) -> list[str]:
    procs = [
        subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        outputs.append(out)
    return outputs


def test_workers_share_the_quota(valkey_url: str) -> None:
    """Two processes of examples/worker.py, 6 jobs each, on a 5/s quota with no burst: the
    12 jobs take about 11 / 5 s in all, not 5 / 5 s as two separate quotas would."""
    worker = [str(EXAMPLES / "worker.py"), "--url", valkey_url, "--jobs", "6"]
    started = time.monotonic()
    outputs = run_together(worker, worker)
    elapsed = time.monotonic() - started
    paid = [line for out in outputs for line in out.splitlines() if "paid" in line]
    assert len(paid) == 12
    assert elapsed > 11 / 5


def test_queue_consumers_cap_each_tenant(valkey_url: str) -> None:
    consumer = [str(EXAMPLES / "queue_consumer.py"), "--url", valkey_url, "--jobs", "8"]
    for out in run_together(consumer, consumer):
        peaks = re.search(r"most jobs in flight per tenant: (.*)", out)
        assert peaks is not None
        assert all(int(n) <= 2 for n in re.findall(r"\d+", peaks[1]))


def test_api_clients_share_the_api_quota(valkey_url: str) -> None:
    """Two processes of examples/api_client.py calling examples/fastapi_app.py: 3 calls a
    second across both, so 8 calls take at least 7 / 3 s."""
    from _servers import free_port, wait_for_http

    port = free_port()
    api = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", api)
        client = [str(EXAMPLES / "api_client.py"), "--url", valkey_url,
                  "--api", f"http://127.0.0.1:{port}", "--calls", "4"]  # fmt: skip
        started = time.monotonic()
        outputs = run_together(client, client)
        elapsed = time.monotonic() - started
    finally:
        api.terminate()
        api.wait(10)
    calls = [line for out in outputs for line in out.splitlines() if ": 200" in line]
    assert len(calls) == 8
    assert elapsed > 7 / 3
