"""The smallest ACL that docs/deployment/acl.md gives is enough: every algorithm, reset(),
acquire(), ConcurrencyLimiter and a reloaded script run as that user, and the server refuses
it nothing. (docs/scripts/verify_acl.py finds the line; this keeps the page from going stale
when a script's commands change.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from _servers import HOST, Server, cli, command, standalone
from glidelimit import ConcurrencyLimiter, Limiter, RateLimitExceeded, ValkeyBackend

PAGE = Path(__file__).resolve().parent.parent / "docs" / "deployment" / "acl.md"


def documented_line() -> list[str]:
    """The standalone user's rules, from the page's first ``user glidelimit`` line."""
    found = re.search(r"^user glidelimit on >\S+ (.+)$", PAGE.read_text(encoding="utf-8"), re.M)
    assert found is not None, f"no 'user glidelimit' line in {PAGE}"
    return found[1].split()


@pytest.fixture
def acl_server() -> Iterator[Server]:
    server = standalone()
    cli(server.port, "ACL", "SETUSER", "glidelimit", "reset", "on", ">pw", *documented_line())
    yield server
    server.kill()


async def test_the_documented_acl_runs_everything(acl_server: Server, name: str) -> None:
    url = f"valkey://glidelimit:pw@{HOST}:{acl_server.port}"
    async with ValkeyBackend.from_url(url) as backend:
        await backend.connect()

        def limiter(rates: str | list[str], algorithm: str) -> Limiter:
            return Limiter(
                rates, algorithm=algorithm, backend=backend, name=name, backend_timeout=5,
                on_backend_error="raise",  # a refused command shows, not a degraded decision
            )  # fmt: skip

        async def exercise(algorithm: str) -> None:
            one = limiter("3/second", algorithm)
            assert (await one.hit("k")).allowed
            assert (await one.hit("k", cost=2)).allowed
            assert not (await one.hit("k")).allowed  # denied: the paths that find retry_after
            assert not (await one.peek("k")).allowed
            await one.reset("k")
            assert (await one.hit("k", cost=0)).allowed  # a key left at full is deleted
            assert (await one.hit("roll")).allowed
            await asyncio.sleep(0.6)
            assert (await one.hit("roll")).allowed  # the key now lives until 1.6 s
            await asyncio.sleep(0.6)
            assert (await one.hit("roll")).allowed  # at 1.2 s: the first hit has aged out
            several = limiter(["5/second", "50/minute"], algorithm)
            await asyncio.gather(*(several.hit(f"k{i}") for i in range(20)))  # shared calls

        async with anyio.create_task_group() as group:  # one failing cancels the others
            for algorithm in ALGORITHM_NAMES:
                group.start_soon(exercise, algorithm)

        gcra = limiter("20/second", "gcra")
        await gcra.hit("a", cost=20)
        await gcra.acquire("a", timeout=1)
        waiter = asyncio.create_task(gcra.acquire("a", cost=5))
        await asyncio.sleep(0.05)
        waiter.cancel()  # gives its reservation back
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        with pytest.raises(RateLimitExceeded):
            await gcra.acquire("a", cost=21)

        slots = ConcurrencyLimiter(1, lease=0.3, backend=backend, name=name)
        async with slots.slot("c", timeout=1):
            with pytest.raises(RateLimitExceeded):
                async with slots.slot("c", timeout=0):
                    pass
            await asyncio.sleep(0.25)  # renewed
        assert await slots.inflight("c") == 0

        cli(acl_server.port, "SCRIPT", "FLUSH")
        one = limiter("100/minute", "sliding_window")
        await one.hit("f")  # a lone call: the script is loaded again
        cli(acl_server.port, "SCRIPT", "FLUSH")
        await asyncio.gather(*(one.hit(f"f{i}") for i in range(20)))  # a pipeline

    entries = command(acl_server.port, "ACL", "LOG", "1000")
    assert isinstance(entries, list)
    refused = {str(dict(zip(e[::2], e[1::2]))["object"]) for e in entries if isinstance(e, list)}
    # glide names itself with CLIENT SETINFO and carries on when refused (the page says so)
    assert refused <= {"client|setinfo"}, f"the documented user was refused {refused}"


ALGORITHM_NAMES = ("fixed_window", "sliding_window", "sliding_log", "gcra")
