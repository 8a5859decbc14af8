"""Find the smallest ACL on which glidelimit runs, on a real valkey-server.

    python docs/scripts/verify_acl.py              # standalone
    python docs/scripts/verify_acl.py --cluster    # also a 3-primary cluster

Starts its own servers on free loopback ports (with the helpers of the test suite), creates a
user from a starting ACL line, and checks that every part of glidelimit works as that user:
the four algorithms (allowed, denied, peeked, several rates, a window rolling over), reset,
acquire() (a gcra reservation, its refund when cancelled, the window algorithms' retries),
ConcurrencyLimiter (acquire, renew, release, a full key), coalesced decisions, and recovery
from a flushed script cache. Then it takes each command out of the line in turn: a command
without which everything still works is dropped; for the others it lists what fails without
it. A command that nothing fails without, but that the servers' ACL LOG shows the client was
refused, is listed apart: glide's CLIENT SETNAME on a cluster, glidelimit's CONFIG GET of the
eviction policy; each carries on without it.
Prints the smallest line, and exits non-zero if the starting line did not work.

The line changes whenever a script's commands change: rerun this then, and update
docs/deployment/acl.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from _servers import Server, cli, cluster, command, standalone
from glidelimit import (
    ConcurrencyLimiter,
    GlideLimitError,
    Limiter,
    RateLimitExceeded,
    ValkeyBackend,
)

USER, PASSWORD = "glidelimit", "acl-check-password"
KEYS = "~glidelimit:*"
START_STANDALONE = [
    "+evalsha",
    "+script|load",
    "+time",
    "+info",
    "+get",
    "+set",
    "+pexpire",
    "+del",
    "+hmget",
    "+hset",
    "+hincrby",
    "+zcount",
    "+zrangebyscore",
    "+zrange",
    "+zremrangebyscore",
    "+zremrangebyrank",
    "+zadd",
    "+zrem",
    "+zscore",
    "+zcard",
    # optional: the backend reads maxmemory-policy at connect, to warn about an evicting
    # server; refused, it says nothing and goes on
    "+config|get",
]
START_CLUSTER = [c for c in START_STANDALONE if c != "+info"] + [
    "+ping",
    "+cluster|slots",
    "+client|setname",
]

Check = Callable[[ValkeyBackend], Awaitable[None]]


def limiter(backend: ValkeyBackend, rates: str | list[str], algorithm: str) -> Limiter:
    # "raise": a refused command must show up here, not be decided by the failure policy;
    # a generous time budget, so that a busy machine is not taken for a refusal
    return Limiter(
        rates,
        algorithm=algorithm,
        backend=backend,
        name="acl",
        on_backend_error="raise",
        backend_timeout=5.0,
    )


def algorithm_check(algorithm: str) -> Check:
    async def check(backend: ValkeyBackend) -> None:
        one = limiter(backend, "3/200ms", algorithm)
        assert (await one.hit("k")).allowed
        assert (await one.hit("k", cost=2)).allowed
        assert not (await one.hit("k")).allowed  # denied: the paths that find retry_after
        assert not (await one.peek("k")).allowed
        assert math.isinf((await one.hit("k", cost=4)).retry_after)
        await asyncio.sleep(0.45)  # two periods: the window has rolled over, whatever its phase
        assert (await one.hit("k")).allowed
        await asyncio.sleep(0.45)
        assert (await one.hit("k", cost=0)).allowed  # a cost of 0 on an idle key deletes it
        several = limiter(backend, ["5/second", "50/minute"], algorithm)
        assert (await several.hit("m", cost=2)).allowed
        # a hit after older ones aged out, on a key that lives on: the sliding log removes them
        rolling = limiter(backend, "3/second", algorithm)
        assert (await rolling.hit("r")).allowed
        await asyncio.sleep(0.6)
        assert (await rolling.hit("r")).allowed  # the key now lives until 1.6 s
        await asyncio.sleep(0.6)
        assert (await rolling.hit("r")).allowed  # at 1.2 s: the first hit has aged out

    return check


async def reset(backend: ValkeyBackend) -> None:
    one = limiter(backend, "1/minute", "gcra")
    await one.hit("r")
    await one.reset("r")
    assert (await one.hit("r")).allowed


async def acquire_gcra(backend: ValkeyBackend) -> None:
    one = limiter(backend, "20/second", "gcra")
    await one.hit("a", cost=20)
    await one.acquire("a", timeout=1)  # a reservation, slept until
    waiter = asyncio.create_task(one.acquire("a", cost=5))
    await asyncio.sleep(0.05)
    waiter.cancel()  # gives its reservation back: a hit of negative cost
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    with contextlib.suppress(RateLimitExceeded):
        await one.acquire("a", cost=21)  # above capacity: refused at once


async def acquire_window(backend: ValkeyBackend) -> None:
    one = limiter(backend, "2/200ms", "fixed_window")
    await one.hit("w", cost=2)
    await one.acquire("w", timeout=1)  # denied, then allowed after retry_after


async def concurrency(backend: ValkeyBackend) -> None:
    slots = ConcurrencyLimiter(1, lease=0.3, backend=backend, name="acl")
    async with slots.slot("c", timeout=1):
        assert await slots.inflight("c") == 1
        try:
            async with slots.slot("c", timeout=0):  # full: the path that finds retry_after
                raise AssertionError("a second slot was granted")
        except RateLimitExceeded:
            pass
        await asyncio.sleep(0.25)  # the lease is renewed every lease / 3
    assert await slots.inflight("c") == 0


async def coalesced(backend: ValkeyBackend) -> None:
    # concurrent decisions share script calls, sent as one pipeline
    for algorithm in ("gcra", "sliding_log"):
        one = limiter(backend, "1000/minute", algorithm)
        await asyncio.gather(*(one.hit(f"b{i}") for i in range(40)))


async def flushed(backend: ValkeyBackend, servers: list[Server]) -> None:
    one = limiter(backend, "1000/minute", "sliding_window")
    await one.hit("f")
    for server in servers:  # as an administrator, or a restart, would
        cli(server.port, "SCRIPT", "FLUSH")
    await one.hit("f")  # a lone call: glide loads the script again
    for server in servers:
        cli(server.port, "SCRIPT", "FLUSH")
    await asyncio.gather(*(one.hit(f"f{i}") for i in range(40)))  # a pipeline


def checks(servers: list[Server]) -> dict[str, Check]:
    found: dict[str, Check] = {
        a: algorithm_check(a) for a in ("fixed_window", "sliding_window", "sliding_log", "gcra")
    }
    found.update(
        reset=reset,
        acquire_gcra=acquire_gcra,
        acquire_window=acquire_window,
        concurrency=concurrency,
        coalesced=coalesced,
        flushed_scripts=lambda backend: flushed(backend, servers),
    )
    return found


def set_user(servers: list[Server], commands: list[str]) -> None:
    for server in servers:
        cli(
            server.port,
            "ACL",
            "SETUSER",
            USER,
            "reset",
            "on",
            f">{PASSWORD}",
            KEYS,
            "resetchannels",
            "-@all",
            *commands,
        )


def denied(servers: list[Server]) -> set[str]:
    """The commands the user was refused since the last call, from the servers' ACL LOG: a
    client may be refused a command and carry on (glide does, for some)."""
    found = set()
    for server in servers:
        entries = command(server.port, "ACL", "LOG", "1000")
        command(server.port, "ACL", "LOG", "RESET")
        assert isinstance(entries, list)
        for entry in entries:
            assert isinstance(entry, list)
            fields = dict(zip(entry[::2], entry[1::2]))
            if fields.get("username") == USER and fields.get("reason") == "command":
                found.add(str(fields["object"]))
    return found


async def run(url: str, name: str, check: Check) -> str | None:
    """``name`` if ``check`` fails (with '?' if not by an error from the server), else None."""
    backend = ValkeyBackend.from_url(url, request_timeout=1000)
    try:
        async with backend:
            await asyncio.wait_for(check(backend), 10)
    except GlideLimitError:
        return name
    except (AssertionError, TimeoutError):
        return name + "?"
    return None


async def failing(
    servers: list[Server], url: str, commands: list[str]
) -> tuple[list[str], set[str]]:
    """The checks that fail as a user with ``commands``, and the commands it was refused."""
    set_user(servers, commands)
    denied(servers)
    found = checks(servers)
    flush = found.pop("flushed_scripts")
    # together, to keep the run short; the check that flushes the scripts alone, after them
    failed = await asyncio.gather(*(run(url, name, check) for name, check in found.items()))
    failed.append(await run(url, "flushed_scripts", flush))
    refused = denied(servers)
    for server in servers:  # a clean slate for the next line
        cli(server.port, "FLUSHALL")
    return [name for name in failed if name is not None], refused


async def smallest(
    servers: list[Server], url: str, start: list[str]
) -> tuple[list[str], list[str], bool]:
    """The commands without which something fails, and those that glide asks for and is
    refused without failing (it logs a warning each time instead)."""
    print(f"starting line: {' '.join(start)}")
    failed, refused = await failing(servers, url, start)
    if failed:
        print(f"  the starting line is not enough: {', '.join(failed)} fail")
        return start, [], False
    if refused:
        print(f"  refused, without failing anything: {', '.join(sorted(refused))}")
    kept, asked = list(start), []
    for plus in start:
        trial = [c for c in kept if c != plus]
        for _ in range(3):
            failed, refused = await failing(servers, url, trial)
            # a failure with no refusal of this command is the machine's, not the ACL's
            if not failed or plus[1:] in refused:
                break
        if failed:
            print(f"  {plus:<20} needed by: {', '.join(failed)}")
        elif plus[1:] in refused:
            print(f"  {plus:<20} not needed, but asked for (refused {plus[1:]}): kept apart")
            kept, asked = trial, [*asked, plus]
        else:
            print(f"  {plus:<20} not needed: dropped")
            kept = trial
    return kept, asked, True


def line(commands: list[str]) -> str:
    return " ".join([KEYS, "resetchannels", "-@all", *commands])


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="also check a 3-primary cluster")
    args = parser.parse_args()
    ok = True
    found: list[tuple[str, list[str], list[str]]] = []
    server = standalone()
    try:
        print(f"valkey-server on 127.0.0.1:{server.port}")
        url = f"valkey://{USER}:{PASSWORD}@127.0.0.1:{server.port}"
        kept, asked, good = await smallest([server], url, START_STANDALONE)
        ok &= good
        found.append(("standalone", kept, asked))
    finally:
        server.kill()
    if args.cluster:
        servers = cluster()
        try:
            print(f"cluster on 127.0.0.1:{', '.join(str(s.port) for s in servers)}")
            url = f"valkey://{USER}:{PASSWORD}@127.0.0.1:{servers[0].port}?cluster=true"
            kept, asked, good = await smallest(servers, url, START_CLUSTER)
            ok &= good
            found.append(("cluster", kept, asked))
        finally:
            for s in servers:
                s.kill()
    print()
    for kind, commands, asked in found:
        print(f"smallest ACL ({kind}): {line(commands)}")
        if asked:
            print(f"  and, asked for but optional (refused, nothing fails): {' '.join(asked)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
