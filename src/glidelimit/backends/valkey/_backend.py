from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from ..._errors import UsageError
from ..._runtime import running_loop, spawn
from ...algorithms import SCRIPTS, Algorithm, Limits, wire
from .._base import Executor
from ._channel import Channel
from ._errors import glide_errors
from ._scan import scan_keys
from ._send import Call, script
from ._url import config_from_url, redact

if TYPE_CHECKING:
    from ._send import Client
    from ._url import Config

logger = logging.getLogger("glidelimit")
# policies that may evict a limiter's keys: every key of a limiter has a TTL, so the
# volatile-* ones can pick them too
_SAFE_POLICIES = ("noeviction",)
_backends: weakref.WeakSet[ValkeyBackend] = weakref.WeakSet()


class ValkeyBackend:
    """Decides on Valkey (standalone or cluster) through a valkey-glide client.

    Decisions are script calls (EVALSHA) that read the server's clock, so clock skew between
    workers changes nothing; the decisions made together share a round trip.

    >>> backend = ValkeyBackend.from_url("valkey://127.0.0.1:6379")
    >>> limiter = Limiter("100/minute", backend=backend, name="api")

    Args:
        client: A connected ``GlideClient`` or ``GlideClusterClient``, which the backend
            then owns: closing the backend closes it. A glide client serves the event loop
            it was made in only; use :meth:`from_url` for a backend that several event loops
            (threads) share.
    """

    def __init__(self, client: Client) -> None:
        from glide import GlideClusterClient

        self._config: Config | None = None
        self._given: Client | None = client
        self._init(isinstance(client, GlideClusterClient), f"<{type(client).__name__}>")

    def _init(self, cluster: bool, shown: str) -> None:
        self._cluster = cluster
        self._shown = shown
        self._channels: dict[object, Channel] = {}  # per event loop
        self._last: Channel | None = None  # the channel used last, found fast
        self._connecting: dict[object, anyio.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts across threads
        self._closed = False
        self._checked = False  # a channel was prepared in the background
        self._policy_checked = False  # the eviction policy: looked at once
        #: test hook: decide at this clock's time (seconds) instead of the server's
        self._clock: Callable[[], float] | None = None
        _backends.add(self)

    @classmethod
    def from_url(cls, url: str, **glide_options: object) -> ValkeyBackend:
        """A backend that connects on first use (or on :meth:`connect`).

        Synchronous, so a backend can be made at import time. Every event loop that uses it
        (one per thread, say) gets a client of its own, and so does a process forked from
        this one.

        Args:
            url: ``valkey://[[user]:password@]host[:port][/db][?cluster=true]``; also
                ``valkeys://`` (TLS), ``redis://``, ``rediss://``.
            **glide_options: Passed to glide's client configuration: e.g.
                ``request_timeout=500`` (ms), or ``advanced_config=`` for TLS with a custom
                CA (see the deployment guide). Unless given, ``lazy_connect=True`` (making a
                client never blocks the event loop; the first command connects) and
                ``reconnect_strategy`` retries a lost server every 160 ms at most.

        Raises:
            ConfigurationError: If the URL or an option is not valid (never showing the
                password).
        """
        from glide import GlideClusterClientConfiguration

        backend = cls.__new__(cls)
        backend._config = config_from_url(url, glide_options)
        backend._given = None
        backend._init(isinstance(backend._config, GlideClusterClientConfiguration), redact(url))
        return backend

    @property
    def kind(self) -> str:
        """``"valkey"`` or ``"valkey_cluster"``."""
        return "valkey_cluster" if self._cluster else "valkey"

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return f"ValkeyBackend({self._shown!r}{closed})"

    async def connect(self) -> None:
        """Connect now, to fail fast at startup: loads the scripts, and warns (once, through
        the ``glidelimit`` logger) if the server's ``maxmemory-policy`` may evict limiter
        keys.

        Raises:
            BackendError: If the server cannot be reached.
        """
        channel = await self._channel()
        await self._prepare(channel.client)

    def executor(self, algorithm: Algorithm, limits: Limits) -> Executor:
        """Decide ``algorithm`` on ``limits`` (see :class:`~glidelimit.backends.Executor`)."""
        glide_script = script(algorithm)
        name, entries, submit = algorithm.name, limits.packed, self._submit

        def execute(
            keys: tuple[bytes, ...], cost: int, mode: int, max_wait: int, holder: bytes, /
        ) -> Awaitable[list[int]]:
            clock = self._clock
            now = -1 if clock is None else int(clock() * 1000)
            arg = wire.encode(entries, cost, mode, max_wait, holder, now)
            return submit(Call(glide_script, name, keys, arg))

        return execute

    def _submit(self, call: Call) -> Awaitable[list[int]]:
        channel = self._last
        if channel is not None and channel.futures:  # asyncio's: the channel's loop runs?
            try:
                loop: object = asyncio.get_running_loop()
            except RuntimeError:  # none: the answer is awaited later, in a loop
                loop = None
            if channel.loop is loop:
                return channel.send(call)
        return self._submit_to_new_channel(call)

    async def _submit_to_new_channel(self, call: Call) -> list[int]:
        channel = await self._channel()
        return await channel.send(call)

    async def delete(self, keys: Sequence[bytes]) -> None:
        """Forget the state stored under ``keys`` (all under one hash tag)."""
        channel = await self._channel()
        with glide_errors("delete keys"):
            await channel.client.delete(list(keys))

    async def scan(self, match: bytes, count: int = 1000) -> AsyncIterator[bytes]:
        """Every stored key that matches the glob pattern ``match``, on every primary of a
        cluster: SCAN (never KEYS), so that the server is never blocked for long.

        >>> async for key in backend.scan(b"glidelimit:{api:*"):
        ...     print(key)

        SCAN's guarantees hold: a key stored throughout comes at least once (maybe more),
        one stored or deleted meanwhile may or may not come.

        Args:
            match: A glob pattern: ``*``, ``?`` and ``[...]`` are special, ``\\`` escapes.
            count: How many keys each SCAN call looks at (a hint to the server).

        Raises:
            ConfigurationError: If an argument is not valid, or if a backend made as
                standalone is connected to a cluster node (its scan would miss the others'
                keys: use ``?cluster=true``).
            BackendError: If the server cannot be reached or refuses SCAN.
        """
        channel = await self._channel()
        async for key in scan_keys(channel.client, match, count):
            yield key

    async def aclose(self) -> None:
        """Close every client; the backend cannot be used after."""
        self._closed = True
        with self._lock:
            channels, self._channels, self._last = list(self._channels.values()), {}, None
        for channel in channels:
            await _close(channel)

    async def __aenter__(self) -> ValkeyBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _channel(self) -> Channel:
        """This event loop's channel, made (and its client) on first use."""
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        loop = running_loop()
        channel = self._channels.get(loop)
        if channel is None:
            with self._lock:
                lock = self._connecting.setdefault(loop, anyio.Lock())
            async with lock:
                channel = self._channels.get(loop)
                if channel is None:
                    for gone in self._forget_gone_loops():
                        await _close(gone)
                    channel = Channel(await self._client(loop), self._cluster, loop)
                    with self._lock:
                        closed = self._closed
                        if not closed:
                            self._channels[loop] = channel
                            self._connecting.pop(loop, None)
                    if closed:  # closed while this client was being made: it goes too
                        if self._given is None:
                            await channel.client.close()
                        raise UsageError(f"{self!r} is closed")
                    if not self._checked:
                        self._checked = True
                        spawn(self._check_quietly(channel.client))
        self._last = channel
        return channel

    def _forget_gone_loops(self) -> list[Channel]:
        """The channels of event loops that are closed (a thread's asyncio.run() is over)."""
        with self._lock:
            gone = [
                channel
                for channel in self._channels.values()
                if isinstance(channel.loop, asyncio.AbstractEventLoop) and channel.loop.is_closed()
            ]
            for channel in gone:
                del self._channels[channel.loop]
        return gone

    async def _client(self, loop: object) -> Client:
        given = self._given
        if given is not None:
            made_in = getattr(given, "_loop", None)  # glide keeps the asyncio loop it was made in
            if made_in is not None and made_in is not loop:
                raise UsageError(
                    "this ValkeyBackend's glide client was made in another event loop, and "
                    "serves that one only: make the backend with ValkeyBackend.from_url(), "
                    "which gives every event loop a client of its own"
                )
            return given
        from glide import GlideClient, GlideClusterClient, GlideClusterClientConfiguration

        _quiet_glide_logs()
        config = self._config
        with glide_errors("connect to Valkey"):
            if isinstance(config, GlideClusterClientConfiguration):
                return await GlideClusterClient.create(config)
            assert config is not None
            return await GlideClient.create(config)

    async def _prepare(self, client: Client) -> None:
        """Load every script (on every primary of a cluster), then look at the eviction
        policy."""
        from glide import AllPrimaries, GlideClusterClient

        with glide_errors("load scripts into Valkey"):
            for algorithm in SCRIPTS:
                script(algorithm)  # glide's Script costs milliseconds to make: made now
                load: list[str | bytes] = ["SCRIPT", "LOAD", algorithm.lua]
                if isinstance(client, GlideClusterClient):
                    await client.custom_command(load, AllPrimaries())
                else:
                    await client.custom_command(load)
        if not self._policy_checked:
            await self._check_policy(client)

    async def _check_quietly(self, client: Client) -> None:
        # in the background, until it gets through: a server that is down now may be back
        wait = 1.0
        while not self._closed:
            try:
                await self._prepare(client)
                return
            except Exception as exc:  # the decisions meet it too, and their limiters say so
                logger.debug("could not prepare %r: %s", self, exc)
            await anyio.sleep(wait)
            wait = min(2 * wait, 60.0)

    async def _check_policy(self, client: Client) -> None:
        from glide import AllPrimaries, GlideClusterClient, RequestError

        command: list[str | bytes] = ["CONFIG", "GET", "maxmemory-policy"]
        try:
            if isinstance(client, GlideClusterClient):
                reply = await client.custom_command(command, AllPrimaries())
            else:
                reply = await client.custom_command(command)
        except RequestError as exc:  # CONFIG may be refused to this user (ACL): say nothing
            logger.debug("could not read maxmemory-policy of %r: %s", self, exc)
            return
        if self._policy_checked:
            return
        self._policy_checked = True
        policies = {p.decode() if isinstance(p, bytes) else str(p) for p in _policies(reply)}
        unsafe = sorted(policies - set(_SAFE_POLICIES))
        if unsafe:
            logger.warning(
                "%r: maxmemory-policy %s may evict limiter keys when memory is full, and an "
                "evicted key starts afresh (a client that was denied is admitted again); "
                "use noeviction for the limiter's server",
                self, "/".join(unsafe),
            )  # fmt: skip


def _quiet_glide_logs() -> None:
    """glide writes log lines of its own to stdout (with colour codes: one for every
    reconnection attempt while a server is down). Unless the application configured glide's
    logger first, it is turned off: what a user needs to know is logged, rate-limited,
    through the ``glidelimit`` logger. (To see glide's own lines, configure its logger before
    the first backend connects: ``Logger.set_logger_config(LogLevel.WARN, "glide.log")``.)"""
    from glide import Logger, LogLevel

    Logger.init(LogLevel.OFF)  # does nothing if glide's logger was configured already


async def _close(channel: Channel) -> None:
    """Close a channel's client, from its own event loop if that one still runs."""
    loop = channel.loop
    if loop is running_loop() or not isinstance(loop, asyncio.AbstractEventLoop):
        await channel.client.close()
    elif loop.is_running():  # another thread's
        asyncio.run_coroutine_threadsafe(channel.client.close(), loop)
    else:  # its loop is gone: closed from here, which glide allows
        with contextlib.suppress(RuntimeError):
            await channel.client.close()


def _policies(reply: object) -> list[object]:
    """The policy values in a CONFIG GET reply: ``[name, value]``, ``{name: value}``, or one
    of those per node of a cluster."""
    if isinstance(reply, dict):
        values = list(reply.values())
        if values and all(isinstance(v, (dict, list)) for v in values):  # per node
            return [p for v in values for p in _policies(v)]
        return values
    if isinstance(reply, list):
        return reply[1::2]
    return []


def _forget_clients() -> None:
    # A glide client made before fork() cannot be used in the child: each backend makes new
    # ones there (the parent's stay the parent's).
    for backend in list(_backends):
        backend._channels, backend._last, backend._connecting = {}, None, {}
        backend._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients)
