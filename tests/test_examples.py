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
