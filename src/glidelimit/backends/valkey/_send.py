"""Calls on their way to Valkey, and how a set of them is sent: in as few script calls as the
server allows."""

from __future__ import annotations

import atexit
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import anyio

from ..._errors import BackendError, UsageError
from ...algorithms import Algorithm
from ._errors import translate

if TYPE_CHECKING:
    from typing import TypeAlias

    from glide import GlideClient, GlideClusterClient, Script

    Client: TypeAlias = GlideClient | GlideClusterClient

logger = logging.getLogger("glidelimit")

_scripts: dict[str, Script] = {}
_code: dict[str, str] = {}  # a script's source, by its hash
# glide's Script.__del__ logs through its FFI, which fails once the interpreter is shutting down
atexit.register(_scripts.clear)
_reloads = [0.0]  # when the last reload was logged
# How a server says that it did not run a command, and would if asked again (elsewhere, or
# later), in glide's words or the server's own: a redirection, a slot whose keys are being
# moved, a cluster without a quorum, a server still loading its data.
_BOUNCED = re.compile(
    r"\b(?:TryAgain|TRYAGAIN|Moved|MOVED|Ask|ASK|ClusterDown|CLUSTERDOWN|BusyLoadingError|LOADING"
    r"|MasterDown|MASTERDOWN)\b"
)
# The longest wait (seconds) before sending again calls that a server bounced: the first
# goes again at once, and the waits double up to this. A migration moves a slot's keys a
# few at a time; a split is over when the next ones move.
_WAIT_MAX = 0.05


def script(algorithm: Algorithm) -> Script:
    """glide's Script for ``algorithm``, one per process: it sends EVALSHA and, on NOSCRIPT
    (a flushed script cache, a restart, a failover), loads the script and tries again."""
    found = _scripts.get(algorithm.name)
    if found is None:
        from glide import Script

        found = _scripts[algorithm.name] = Script(algorithm.lua)
        _code[found.get_hash()] = algorithm.lua
    return found


class Call:
    """One decision on its way to Valkey: its script, keys and argument, then its answer."""

    __slots__ = ("arg", "error", "keys", "name", "script", "value", "waiter")

    def __init__(self, script: Script, name: str, keys: tuple[bytes, ...], arg: bytes) -> None:
        self.script = script
        self.name = name  # the algorithm's, for messages
        self.keys = keys
        self.arg = arg
        self.value: list[int] | None = None
        self.error: BaseException | None = None
        self.waiter: Any = None  # what its caller waits on, while it waits in a batch

    def fail(self, exc: BaseException) -> None:
        self.error = translate(exc, f"run {self.name}")

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        if self.value is None:
            raise BackendError(f"no answer for {self.name} (the event loop is closing?)")
        return self.value


async def send_one(client: Client, call: Call, cluster: bool) -> list[int]:
    """Send a lone call and return its answer."""
    if cluster:  # see send_many: a bounced call is sent again sooner than glide would
        await send_many(client, [call], cluster)
        return call.result()
    try:
        answer = await client.invoke_script(call.script, keys=list(call.keys), args=[call.arg])
    except Exception as exc:
        raise translate(exc, f"run {call.name}") from exc
    _deliver([call], answer)
    return call.result()


async def send_many(
    client: Client,
    calls: list[Call],
    cluster: bool,
    answered: Callable[[list[Call]], None] | None = None,
) -> None:
    """Run ``calls`` and hand each its answer or its error; raises nothing but cancellation.

    The calls of one script are one script call (on a cluster, one per key: see
    :func:`_groups`): it runs them in order, each on its own keys. On a cluster, or when they
    are several, script calls go out as one pipeline (a non-atomic glide Batch), which
    leaves to us what glide does for a lone call:

    - NOSCRIPT (a restart, a failover, SCRIPT FLUSH): the script is loaded, and the script
      calls that met it go again, once.
    - A script call that the server bounced without running it (see :data:`_BOUNCED`:
      TRYAGAIN while the keys of a decision are split between two nodes by a migration,
      CLUSTERDOWN during a failover, a redirection that glide did not follow): its calls go
      again, each alone, at once and then after waits that double, for as long as glide
      gives a lone call (its request timeout), and as long as their callers wait for them
      (a call whose waiter is done is not sent again: its caller has its decision). A
      bounced call was not run, so running it again counts nothing twice.

    When some calls go again, ``answered`` is given the others first, which have their
    answers: no caller waits for another's retries.

    glide's own ``invoke_script`` waits over a second before it tries again after TRYAGAIN:
    that is why a cluster's lone calls go this way too.
    """
    try:
        groups = _groups(calls, cluster)
        if len(groups) == 1 and not cluster:  # glide's invoke_script does it all
            await _invoke(client, groups[0])
            return
        wait, deadline, reloaded = 0.0, 0.0, False
        while True:
            lost, bounced = await _pipeline(client, groups, cluster)
            if reloaded:
                lost = []  # met NOSCRIPT again once loaded: they keep that error
            if answered is not None and (lost or bounced):
                again = {id(call) for group in (*lost, *bounced) for call in group}
                answered([call for group in groups for call in group if id(call) not in again])
            if lost:
                _log_reload()
                await _load(client, {group[0].script for group in lost}, cluster)
                reloaded = True
            groups = lost + [[call] for group in bounced for call in group]
            if not groups:
                return
            now = time.monotonic()
            if not deadline:
                deadline = now + _patience(client)
            elif now >= deadline:
                return  # each keeps the error it met last
            if bounced:
                await anyio.sleep(wait)
                wait = min(max(2 * wait, 0.001), _WAIT_MAX)
            # not sent again for a caller that is gone: it has its decision (the policy's)
            groups = [kept for group in groups if (kept := [c for c in group if not _gone(c)])]
            if not groups:
                return
    except Exception as exc:  # a bug: every call raises it
        for call in calls:
            if call.value is None and call.error is None:
                call.error = exc


def _gone(call: Call) -> bool:
    """Whether ``call``'s caller waits for it no more (its waiter was cancelled or settled)."""
    waiter = call.waiter
    return waiter is not None and waiter.done()


async def _invoke(client: Client, group: list[Call]) -> None:
    """One script call for ``group``, through glide's ``invoke_script``."""
    keys = [key for call in group for key in call.keys]
    arg = b"".join([call.arg for call in group])
    try:
        answer = await client.invoke_script(group[0].script, keys=keys, args=[arg])
    except Exception as exc:
        for call in group:
            call.fail(exc)
    else:
        _deliver(group, answer)


async def _load(client: Client, scripts: set[Script], cluster: bool) -> None:
    """Load ``scripts`` (on every primary of a cluster); a failure shows in the next calls."""
    from glide import AllPrimaries, GlideError

    for found in scripts:
        command: list[str | bytes] = ["SCRIPT", "LOAD", _code[found.get_hash()]]
        try:
            if cluster:
                await client.custom_command(command, AllPrimaries())
            else:
                await client.custom_command(command)
        except GlideError:
            pass


def _groups(calls: list[Call], cluster: bool) -> list[list[Call]]:
    """``calls`` by script (and, on a cluster, by key), in order: one script call each.

    On a cluster, the keys of one script call must share a hash slot. Calls on one key (one
    hash tag: every key of a decision has the same) do, and they are what shares a batch: a
    hot key. Calls on two keys of one slot rarely meet in a batch (16384 slots), and telling
    which do would cost every call a CRC.
    """
    groups: dict[object, list[Call]] = {}
    others = []  # of another script than the first in their group: a rare mix
    for call in calls:
        where = call.keys[0] if cluster else None
        group = groups.get(where)
        if group is None:
            groups[where] = [call]
        elif group[0].script is call.script:
            group.append(call)
        else:
            others.append(call)
    if others:
        return [*groups.values(), *_groups(others, cluster)]
    return list(groups.values())


async def _pipeline(
    client: Client, groups: list[list[Call]], cluster: bool
) -> tuple[list[list[Call]], list[list[Call]]]:
    """One script call per group, as one Batch; returns the groups that met NOSCRIPT and
    those the server bounced (see :data:`_BOUNCED`)."""
    from glide import Batch, ClusterBatch, GlideError

    batch = ClusterBatch(False) if cluster else Batch(False)
    add = batch.custom_command
    for group in groups:
        first = group[0]
        if len(group) == 1:  # most of a cluster's: its slot has no other call
            keys: tuple[bytes, ...] | list[bytes] = first.keys
            arg = first.arg
        else:
            keys = [key for call in group for key in call.keys]
            arg = b"".join([call.arg for call in group])
        add(["EVALSHA", first.script.get_hash(), str(len(keys)), *keys, arg])
    try:
        results = await client.exec(batch, raise_on_error=False)
    except Exception as exc:
        for group in groups:
            for call in group:
                call.fail(exc)
        return [], []
    lost, bounced = [], []
    for group, value in zip(groups, results or ()):
        if not isinstance(value, GlideError):
            _deliver(group, value)
            continue
        text = str(value)
        if "NoScript" in text or "NOSCRIPT" in text:
            lost.append(group)
        elif _BOUNCED.search(text):
            bounced.append(group)
        for call in group:  # what it raises unless it is run again
            call.fail(value)
    return lost, bounced


def _deliver(calls: list[Call], value: object) -> None:
    """Hand each call its entry of a script's result: a list of integers, or an error's text
    (a decision that failed on its own, e.g. on a key of the wrong type)."""
    results = cast("list[list[int] | bytes]", value)
    for call, result in zip(calls, results):
        if isinstance(result, list):
            call.value, call.error = result, None
        else:
            text = result.decode(errors="replace")
            kind = UsageError if "NOPERM" in text else BackendError  # an ACL that lacks a command
            call.error = kind(f"Valkey failed to run {call.name}: {text}")


def _patience(client: Client) -> float:
    """Seconds glide gives a lone call before it gives up on it (its request timeout)."""
    timeout = getattr(getattr(client, "config", None), "request_timeout", None)
    return (timeout or 250) / 1000  # glide's default


def _log_reload() -> None:
    now = time.monotonic()
    if now - _reloads[0] >= 10.0:
        _reloads[0] = now
        logger.warning(
            "Valkey had lost glidelimit's scripts (a restart, a failover or SCRIPT FLUSH); "
            "they are loaded again"
        )
