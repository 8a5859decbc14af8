"""A cluster whose topology changes under batched decisions: a slot migrated while calls on its
keys are grouped into one script call, and a primary killed under load.

Grouped calls that the cluster refuses to run (TRYAGAIN, ASK, MOVED, CLUSTERDOWN) are sent
again, so that callers see no error that calls made one by one would not; and no key is ever
admitted beyond its limit, checked against the count the cluster stored. test_chaos.py has the
time budgets and the recovery times of the same kinds of events; these are about counts.
"""

from __future__ import annotations

import asyncio
import binascii
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from _servers import (
    Server,
    begin_migration,
    cli,
    command,
    end_migration,
    error_count,
    keyslot,
    migrate_slot,
    move_keys,
    owner,
    primaries,
    replica_of,
    replicated,
)
from glidelimit import BackendError, Limiter, ValkeyBackend

WORKERS = 200


def url(servers: list[Server]) -> str:
    return servers[0].url + "?cluster=true"


def one_slot(name: str, count: int) -> list[str]:
    """``count`` keys whose state a limiter called ``name`` keeps in one hash slot."""
    slot = keyslot(f"{name}:hot")
    found = ["hot"]
    for i in range(10_000_000):
        if len(found) == count:
            return found
        key = f"hot{i}"
        if binascii.crc_hqx(f"{name}:{key}".encode(), 0) % 16384 == slot:
            found.append(key)
    raise AssertionError("no keys found")


def stored(servers: list[Server], key: bytes) -> int:
    """A fixed window's count, read wherever the cluster keeps ``key`` now."""
    live = next(s for s in servers if s.proc is not None)
    return int(cli(live.port, "-c", "HGET", key.decode(), "n").strip() or 0)


@dataclass
class Load:
    """WORKERS coroutines hitting ``keys`` in turn, each pausing a little between its calls."""

    limiter: Limiter
    keys: list[str]
    admitted: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    errors: list[BaseException] = field(default_factory=list)
    degraded: int = 0  # none under "raise": a backend's error is raised
    decided_after: Counter[str] = field(default_factory=Counter)  # by the server, once `done`
    done: threading.Event = field(default_factory=threading.Event)  # set by the scenario
    until: Callable[[Load], bool] = lambda load: True
    finished: anyio.Event = field(default_factory=anyio.Event)  # `until` said so, once done
    stopped: bool = False

    async def worker(self, n: int) -> None:
        i = n
        while not self.stopped:
            key = self.keys[i % len(self.keys)]
            i += 1
            after = self.done.is_set()
            try:
                decision = await self.limiter.hit(key)
            except Exception as exc:  # counted, and asserted on
                self.errors.append(exc)
            else:
                self.degraded += decision.degraded
                (self.admitted if decision.allowed else self.denied)[key] += 1
                if after:
                    self.decided_after[key] += 1
                    if self.until(self):
                        self.finished.set()
            await anyio.sleep(0.01)

    async def run(self, act: Callable[[Load], None], until: Callable[[Load], bool]) -> None:
        """Run the load; run ``act`` (blocking, in a thread) once it is going; go on until
        ``until`` says so (at most 30 s)."""
        self.until = until
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(WORKERS):
                    tg.start_soon(self.worker, n)
                await anyio.sleep(0.3)
                await anyio.to_thread.run_sync(act, self)
                self.done.set()
                with anyio.move_on_after(30):
                    await self.finished.wait()
                self.stopped = True


def exhausted(keys: list[str]) -> Callable[[Load], bool]:
    """Whether every key was denied by the server since the scenario's act."""

    def check(load: Load) -> bool:
        return all(load.denied[key] and load.decided_after[key] for key in keys)

    return check


async def test_a_batch_on_a_slot_being_migrated_gets_every_answer_once(
    own_cluster: list[Server], name: str
) -> None:
    """One batch, three keys of a slot being migrated: one moved (ASK), one not (run where it
    is), and one whose two keys (two rates) are on two nodes (TRYAGAIN, until its second key
    moves too). Each decision is answered, and counted once."""
    servers = own_cluster
    moved, staying, split = one_slot(name, 3)
    slot = keyslot(f"{name}:{moved}")
    async with ValkeyBackend.from_url(url(servers), request_timeout=5000) as backend:
        limiter = Limiter(["10/hour", "20/day"], algorithm="fixed_window", backend=backend,
                          name=name, on_backend_error="raise", backend_timeout=None)  # fmt: skip
        for key in (moved, staying, split):
            assert (await limiter.hit(key)).remaining == 9
        target = next(s for s in servers if s.port in primaries(servers) and s is not
                      owner(servers, slot))  # fmt: skip
        source = begin_migration(servers, slot, target)
        move_keys(source, target, [*limiter.keys(moved), limiter.keys(split)[0]])
        tryagain = error_count(source, "TRYAGAIN")

        def finish() -> None:
            while error_count(source, "TRYAGAIN") == tryagain:  # the split decision waits
                time.sleep(0.005)
            move_keys(source, target, [limiter.keys(split)[1], *limiter.keys(staying)])
            end_migration(servers, slot, target)

        finishing = threading.Thread(target=finish)
        finishing.start()
        # the first goes out at once; those that follow in the same pass of the event loop
        # are one batch (with a key of another slot: one pipeline)
        decisions = await asyncio.gather(
            limiter.hit("elsewhere"), limiter.hit(moved), limiter.hit(staying),
            limiter.hit(split), limiter.hit("other"),
        )  # fmt: skip
        finishing.join()
    assert [d.remaining for d in decisions] == [9, 8, 8, 8, 9]
    assert not any(d.degraded for d in decisions)
    for key in (moved, staying, split):
        assert [stored(servers, k) for k in limiter.keys(key)] == [2, 2]


async def test_a_decision_whose_own_keys_a_migration_split_waits_for_it(
    own_cluster: list[Server], name: str
) -> None:
    """A decision on two rates whose keys are on two nodes gets TRYAGAIN until the second
    key moves too; it is sent again until then, and counted once."""
    servers = own_cluster
    slot = keyslot(f"{name}:user")
    async with ValkeyBackend.from_url(url(servers), request_timeout=5000) as backend:
        limiter = Limiter(["10/hour", "20/day"], algorithm="fixed_window", backend=backend,
                          name=name, on_backend_error="raise", backend_timeout=None)  # fmt: skip
        await limiter.hit("user")
        target = next(s for s in servers if s.port in primaries(servers) and s is not
                      owner(servers, slot))  # fmt: skip
        source = begin_migration(servers, slot, target)
        first, second = limiter.keys("user")
        move_keys(source, target, [first])
        tryagain = error_count(source, "TRYAGAIN")

        def finish() -> None:
            while error_count(source, "TRYAGAIN") == tryagain:  # the decision is waiting
                time.sleep(0.005)
            move_keys(source, target, [second])
            end_migration(servers, slot, target)

        finishing = threading.Thread(target=finish)
        finishing.start()
        decisions = [await limiter.hit("user"), await limiter.hit("user")]
        finishing.join()
    assert [d.remaining for d in decisions] == [8, 7]
    assert [stored(servers, key) for key in (first, second)] == [3, 3]


async def test_resharding_a_hot_slot_under_load(own_cluster: list[Server], name: str) -> None:
    """The slot of three hot keys is resharded, key by key, under 200 coroutines: no error
    (under "raise"), and no key admitted beyond its limit at any point, by the stored count."""
    servers = own_cluster
    hot = one_slot(name, 3)
    keys = [*hot, "cold:1", "cold:2", "cold:3"]  # other slots, in the same batches
    slot = keyslot(f"{name}:{hot[0]}")
    limit = 1000
    # a budget that glide's own retries of a lone call fit in: the errors that calls made one
    # by one would see are not what is asserted here
    async with ValkeyBackend.from_url(url(servers), request_timeout=3000) as backend:
        limiter = Limiter([f"{limit}/hour", "1000000/day"], algorithm="fixed_window",
                          backend=backend, name=name, on_backend_error="raise",
                          backend_timeout=3.0)  # fmt: skip
        await backend.connect()
        source = owner(servers, slot)
        target = next(s for s in servers if s.port in primaries(servers) and s is not source)
        tryagain = error_count(source, "TRYAGAIN")

        def reshard(load: Load) -> None:
            migrate_slot(servers, slot, target, pause=0.05)

        load = Load(limiter, keys)
        await load.run(reshard, exhausted(keys))
    assert load.errors == []
    assert load.degraded == 0
    assert error_count(source, "TRYAGAIN") > tryagain  # grouped calls met the split slot
    assert owner(servers, slot) is target
    for key in keys:
        count = stored(servers, limiter.keys(key)[0])
        assert load.admitted[key] <= count <= limit
        assert count == limit  # exhausted: the limit held while it was being reached


async def test_a_primary_killed_under_load_admits_nothing_beyond_the_limit(
    replicated_cluster: list[Server], name: str
) -> None:
    """SIGKILL the primary of hot keys halfway through their limit, under 200 coroutines; its
    replica takes over with their counts, and no key is admitted beyond its limit."""
    servers = replicated_cluster
    hot = one_slot(name, 3)
    keys = [*hot, "cold:1", "cold:2"]
    victim = owner(servers, keyslot(f"{name}:{hot[0]}"))
    replica = replica_of(servers, victim)
    limit = 2000
    async with ValkeyBackend.from_url(url(servers)) as backend:
        limiter = Limiter(f"{limit}/hour", algorithm="fixed_window", backend=backend,
                          name=name, on_backend_error="raise")  # fmt: skip
        await backend.connect()

        def kill(load: Load) -> None:
            deadline = time.monotonic() + 30
            while min(load.admitted[key] for key in hot) < limit // 2:
                assert time.monotonic() < deadline, "the load did not get going"
                time.sleep(0.01)
            # Replication is asynchronous: a count the primary had acknowledged and not yet
            # sent would be lost with it, whatever the client does. Writes wait (and pile up)
            # while the replica catches up; then the primary dies with them in flight.
            command(victim.port, "CLIENT", "PAUSE", "30000", "WRITE")
            while not replicated(victim, replica):
                time.sleep(0.001)
            victim.kill(signal.SIGKILL)
            while replica.port not in primaries(servers) or "cluster_state:ok" not in str(
                command(replica.port, "CLUSTER", "INFO")
            ):
                assert time.monotonic() < deadline, "the replica was not promoted"
                time.sleep(0.05)

        load = Load(limiter, keys)
        await load.run(kill, exhausted(keys))
    assert all(type(e) is BackendError and e.__cause__ for e in load.errors)
    assert load.degraded == 0
    for key in keys:
        count = stored(servers, limiter.keys(key)[0])
        assert load.admitted[key] <= count <= limit
        assert count == limit


def split_for(
    servers: list[Server], limiter: Limiter, key: str, seconds: float
) -> Callable[[], None]:
    """Start migrating ``key``'s slot with only its first key moved: a decision on its two
    keys meets TRYAGAIN. Returns what ends the split ``seconds`` after that decision first met
    it (to run in a thread)."""
    slot = keyslot(f"{limiter.name}:{key}")
    target = next(s for s in servers if s.port in primaries(servers) and s is not
                  owner(servers, slot))  # fmt: skip
    source = begin_migration(servers, slot, target)
    first, second = limiter.keys(key)
    move_keys(source, target, [first])
    tryagain = error_count(source, "TRYAGAIN")

    def finish() -> None:
        while error_count(source, "TRYAGAIN") == tryagain:
            time.sleep(0.005)
        time.sleep(seconds)
        move_keys(source, target, [second])
        end_migration(servers, slot, target)

    return finish


async def test_a_bounced_call_holds_back_no_other_call_of_its_batch(
    own_cluster: list[Server], name: str
) -> None:
    """A call sent again while its keys are split waits alone: the calls it was sent with get
    their answers as soon as the cluster gave them."""
    servers = own_cluster
    async with ValkeyBackend.from_url(url(servers), request_timeout=5000) as backend:
        limiter = Limiter(["10/hour", "20/day"], algorithm="fixed_window", backend=backend,
                          name=name, on_backend_error="raise", backend_timeout=None)  # fmt: skip
        await limiter.hit("user")
        finishing = threading.Thread(target=split_for(servers, limiter, "user", 0.5))
        finishing.start()
        started = time.monotonic()
        took: dict[str, float] = {}

        async def hit(key: str) -> None:
            await limiter.hit(key)
            took[key] = time.monotonic() - started

        # the first goes out at once; the next two are one batch
        await asyncio.gather(hit("elsewhere"), hit("user"), hit("other"))
        finishing.join()
    assert took["user"] >= 0.5  # sent again until the split was over
    assert took["other"] < 0.25, took  # not held back by it
    assert [stored(servers, key) for key in limiter.keys("user")] == [2, 2]


async def test_a_bounced_call_whose_caller_is_gone_is_not_sent_again(
    own_cluster: list[Server], name: str
) -> None:
    """A caller whose budget ran out while its call was bounced has the failure policy's
    decision: the call is not run after, so the server counts nothing the policy decided."""
    servers = own_cluster
    async with ValkeyBackend.from_url(url(servers), request_timeout=5000) as backend:
        limiter = Limiter(["10/hour", "20/day"], algorithm="fixed_window", backend=backend,
                          name=name, on_backend_error="deny", backend_timeout=0.1)  # fmt: skip
        await limiter.hit("user")
        finishing = threading.Thread(target=split_for(servers, limiter, "user", 0.3))
        finishing.start()
        decisions = await asyncio.gather(limiter.hit("elsewhere"), limiter.hit("user"))
        finishing.join()
        await asyncio.sleep(0.3)  # a call still going round would have run by now
    assert (decisions[1].allowed, decisions[1].degraded) == (False, True)  # the policy: deny
    assert [stored(servers, key) for key in limiter.keys("user")] == [1, 1]
