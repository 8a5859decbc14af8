"""Nothing on stdout that a user did not ask for; what they need to know, through the
``glidelimit`` logger, rate-limited and naming the limiter."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest

from _servers import Server, cli, free_port
from glidelimit import Limiter, ValkeyBackend

DOWN = """
import asyncio, sys
from glidelimit import Limiter, ValkeyBackend

async def main(url):
    async with ValkeyBackend.from_url(url) as backend:
        limiter = Limiter("5/second", backend=backend, name="quiet")
        for _ in range(12):  # 3 s of a server that is down: glide retries all along
            await limiter.hit("k")
            await asyncio.sleep(0.25)

asyncio.run(main(sys.argv[1]))
"""


def test_a_down_server_prints_nothing_on_stdout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DOWN, f"valkey://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout == ""  # glide's own WARN lines would land here
    # no logging configured: Python prints the glidelimit logger's warnings on stderr, a few
    lines = done.stderr.splitlines()
    assert 1 <= len(lines) <= 4, lines
    assert all("'quiet'" in line for line in lines)


async def test_lost_scripts_are_logged_once(
    valkey: Server, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls of two algorithms go out as one pipeline, which has no fallback of its own for
    lost scripts: glidelimit loads them, and says so. (A lone script call goes through glide's
    own invoke_script, which loads a lost script by itself.)"""
    async with ValkeyBackend.from_url(valkey.url) as backend:
        limiters = [
            Limiter("1000/second", backend=backend, name=name, algorithm=algorithm,
                    on_backend_error="raise")
            for algorithm in ("gcra", "fixed_window")
        ]  # fmt: skip
        await limiters[0].hit("warm")
        with caplog.at_level(logging.WARNING, logger="glidelimit"):
            for _ in range(3):
                cli(valkey.port, "SCRIPT", "FLUSH")
                first = asyncio.ensure_future(limiters[0].hit("first"))
                await asyncio.sleep(0)  # in flight: the next calls share a pipeline
                hits = [limiters[i % 2].hit(f"k{i % 7}") for i in range(40)]
                decisions = await asyncio.gather(first, *hits)
                assert all(d.allowed for d in decisions)
    lines = [r.getMessage() for r in caplog.records if "scripts" in r.getMessage()]
    assert len(lines) == 1  # rate-limited
