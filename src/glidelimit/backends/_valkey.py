from __future__ import annotations

import asyncio
import atexit
import binascii
import contextlib
import math
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.lowlevel

from .._errors import BackendError, ConfigurationError
from ..algorithms import Algorithm, Request

if TYPE_CHECKING:
    from typing import TypeAlias

    from glide import (
        GlideClient,
        GlideClientConfiguration,
        GlideClusterClient,
        GlideClusterClientConfiguration,
        Script,
    )

    Client: TypeAlias = GlideClient | GlideClusterClient
    Config: TypeAlias = GlideClientConfiguration | GlideClusterClientConfiguration

_SCHEMES = {"valkey": False, "redis": False, "valkeys": True, "rediss": True}
_MIN_BACKOFF, _MAX_BACKOFF = 0.25, 1.0  # seconds between attempts to reach a down server
# Calls per batch at most: smaller batches keep several in flight, so that the server runs
# one while this process prepares the next.
_BATCH = 32
# glide's own reconnection, for clients from_url makes: at most 160 ms between attempts (glide's
# default grows to 3.2 s), so that a server that is back is used again within about a second.
_RECONNECT = {"num_of_retries": 4, "factor": 10, "exponent_base": 2}
# how a decision starts in a script's argument: now, cost, mode, max wait, the token's length
# (_prelude.lua)
_HEAD = struct.Struct("<5d")
_scripts: dict[str, Script] = {}
# glide's Script.__del__ logs through its FFI, which fails once the interpreter is shutting down
atexit.register(_scripts.clear)


def _script(algorithm: Algorithm) -> Script:
    # One Script per algorithm per process: glide sends EVALSHA and, on NOSCRIPT (flushed cache,
    # restart, failover), loads the script and retries once.
    script = _scripts.get(algorithm.name)
    if script is None:
        from glide import Script

        script = _scripts[algorithm.name] = Script(algorithm.lua)
    return script


class ValkeyBackend:
    """Decides on Valkey (standalone or cluster) through a valkey-glide client.

    Decisions are script calls (EVALSHA) that read the server's clock, so clock skew between
    workers changes nothing; the decisions that reach it in one event-loop turn share one
    round trip.

    Args:
        client: A connected ``GlideClient`` or ``GlideClusterClient``. Closing the backend
            closes it.
    """

    def __init__(self, client: GlideClient | GlideClusterClient) -> None:
        from glide import GlideClusterClient

        self._client: Client | None = client
        self._cluster = isinstance(client, GlideClusterClient)
        self._config: Config | None = None
        self._loop: object = None  # the event loop self._client belongs to
        self._lock: anyio.Lock | None = None  # serialises connecting, in self._lock_loop
        self._lock_loop: object = None
        self._connect_error: BackendError | None = None
        self._retry_at = 0.0
        self._backoff = 0.0
        self._gathering: _Batch | None = None  # the batch that calls of this loop turn join
        self._in_flight = 0  # calls sent and not answered yet
        self._budget: _Budget | None = None

    @classmethod
    def from_url(cls, url: str, **glide_options: object) -> ValkeyBackend:
        """Make a backend that connects on first use (or on :meth:`connect`).

        Synchronous, so a backend can be made at import time. A client is tied to the event
        loop it was made in: if the backend is used from a new loop, it makes a new client.

        Args:
            url: ``valkey://[[user]:password@]host[:port][/db][?cluster=true]``; also
                ``valkeys://`` (TLS), ``redis://``, ``rediss://``.
            **glide_options: Passed to glide's client configuration (e.g. ``request_timeout``).
                Unless given, ``reconnect_strategy`` retries a lost server every 160 ms at
                most (``BackoffStrategy(num_of_retries=4, factor=10, exponent_base=2)``).

        Raises:
            ConfigurationError: If the URL or an option is not valid.
        """
        from glide import GlideClusterClientConfiguration

        backend = cls.__new__(cls)
        backend._client = None
        backend._config = _config_from_url(url, glide_options)
        backend._cluster = isinstance(backend._config, GlideClusterClientConfiguration)
        backend._loop = backend._lock = backend._lock_loop = backend._connect_error = None
        backend._retry_at = backend._backoff = 0.0
        backend._gathering = None
        backend._in_flight = 0
        backend._budget = None
        return backend

    async def connect(self) -> None:
        """Connect now, to fail fast at startup, and make ready what the first decisions need.

        Raises:
            BackendError: If the server cannot be reached.
        """
        from ..algorithms import SCRIPTS

        await self._get_client()
        for algorithm in SCRIPTS:  # glide's Script costs milliseconds to make, once
            _script(algorithm)

    async def _get_client(self, timeout: float | None = None) -> Client:
        if self._config is None:
            if self._client is None:
                raise BackendError("this ValkeyBackend is closed")
            return self._client
        loop = anyio.lowlevel.current_token().native_token
        if self._client is not None and self._loop is loop:
            return self._client
        self._raise_if_backing_off()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = anyio.Lock(), loop
        async with self._lock:
            if self._client is None or self._loop is not loop:
                # callers queued behind a failed attempt fail at once, with its error
                self._raise_if_backing_off()
                # none yet, or made in another event loop, where it cannot serve this one
                await self._close_client()
                try:
                    with anyio.fail_after(math.inf if timeout is None else timeout):
                        self._client = await self._create()
                except TimeoutError as exc:
                    raise BackendError(f"cannot connect to Valkey within {timeout:g}s") from exc
                except BackendError as exc:
                    self._backoff = min(2 * self._backoff, _MAX_BACKOFF) or _MIN_BACKOFF
                    self._connect_error, self._retry_at = exc, time.monotonic() + self._backoff
                    raise
                self._connect_error, self._backoff = None, 0.0
                self._loop = loop
            return self._client

    def _raise_if_backing_off(self) -> None:
        # A server that cannot be reached is tried again after a back-off, not by every call:
        # otherwise each caller would wait out its own connection timeout.
        error = self._connect_error
        if error is not None and time.monotonic() < self._retry_at:
            raise BackendError(f"{error} (next attempt in {self._backoff:g}s)") from error.__cause__

    async def _create(self) -> Client:
        from glide import (
            AllPrimaries,
            GlideClient,
            GlideClusterClient,
            GlideClusterClientConfiguration,
            GlideError,
        )

        from ..algorithms import SCRIPTS

        config = self._config
        try:
            client: Client
            if isinstance(config, GlideClusterClientConfiguration):
                client = await GlideClusterClient.create(config)
            else:
                assert config is not None
                client = await GlideClient.create(config)
        except Exception as exc:  # glide raises GlideError, and TypeError on a bad option
            raise BackendError(f"cannot connect to Valkey: {exc!r}") from exc
        # Load every script up front (on every primary of a cluster), so that the first calls
        # do not each go through NOSCRIPT and glide's warning about it.
        try:
            for algorithm in SCRIPTS:
                load: list[str | bytes] = ["SCRIPT", "LOAD", algorithm.lua]
                if isinstance(client, GlideClusterClient):
                    await client.custom_command(load, AllPrimaries())
                else:
                    await client.custom_command(load)
        except BaseException as exc:
            # also when a caller's time budget cancels the load: the client must not leak
            with anyio.CancelScope(shield=True):
                await client.close()
            if isinstance(exc, GlideError):
                raise BackendError(f"cannot load scripts into Valkey: {exc}") from exc
            raise
        return client

    async def execute(self, algorithm: Algorithm, request: Request) -> list[int]:
        """Run ``algorithm`` on ``request``, within ``request.timeout`` (a time budget)."""
        client, loop = self._client, _running_loop()
        if client is None or self._loop is not loop:
            client = await self._get_client(request.timeout)
        call = _Call(algorithm, request)
        batch = self._gathering
        if batch is not None and batch.client is client and len(batch.calls) < _BATCH:
            # another call of this event-loop turn is gathering a batch: go out with it
            batch.calls.append(call)
            if batch.futures is not None:  # asyncio: a bare future is the cheapest wait
                future = batch.loop.create_future()  # type: ignore[attr-defined]
                batch.futures.append(future)
                await future
            else:
                if batch.done is None:
                    batch.done = anyio.Event()
                await batch.done.wait()
            if batch.resend:  # its leader was cancelled before sending: nothing went out
                return await self.execute(algorithm, request)
            return call.result()
        if not self._in_flight:
            # Nothing in flight: go out at once, no pass of the event loop to wait for, and
            # nobody else waits on this trip.
            self._in_flight = 1
            try:
                await self._send_alone(client, call, loop)
            finally:
                self._in_flight -= 1
            return call.result()
        # Under load: lead a batch, letting the calls that are ready in this loop turn join it
        # (one pass of the loop, no timer), then send them all together.
        batch = self._gathering = _Batch(client, call, loop)
        try:
            if batch.futures is not None:  # asyncio: the cheapest pass of its loop
                started = batch.loop.time()  # type: ignore[attr-defined]
                await asyncio.sleep(0)
            else:
                started = anyio.current_time()
                await anyio.lowlevel.cancel_shielded_checkpoint()
        except BaseException:  # cancelled meanwhile: the calls that joined go again
            batch.resend = True
            batch.release()
            raise
        finally:
            if self._gathering is batch:
                self._gathering = None
        calls = batch.calls
        # Shielded, since the others wait on this round trip too, and bounded by the shortest
        # time budget of its calls (one timer a batch, not one a call: timers cost); past
        # it, the whole batch fails as timed out. Nobody's own deadline cuts the others'.
        budgets = [c.timeout for c in calls if c.timeout is not None]
        deadline = started + min(budgets) if budgets else math.inf
        self._in_flight += len(calls)
        try:
            with anyio.CancelScope(shield=True, deadline=deadline):
                await _send(client, calls, self._cluster)
        finally:
            self._in_flight -= len(calls)
            batch.release()
        return call.result()

    async def _send_alone(self, client: Client, call: _Call, loop: object) -> None:
        """Send a lone call, within its time budget."""
        if call.timeout is None:
            await _send(client, [call], self._cluster)
            return
        budget = self._budget
        if budget is None or budget.loop is not loop:
            budget = self._budget = _Budget.of(loop)
        if budget is None:  # trio, whose timers are cheap
            with anyio.move_on_after(call.timeout):
                await _send(client, [call], self._cluster)
            return
        budget.watch(call.timeout, call)
        try:
            await _send(client, [call], self._cluster)
        except asyncio.CancelledError:
            if not budget.absorb(call):
                raise
        finally:
            budget.forget(call)

    async def delete(self, keys: Sequence[str]) -> None:
        from glide import GlideError

        client = await self._get_client()
        try:
            await client.delete(list(keys))
        except GlideError as exc:
            raise BackendError(f"Valkey failed to delete keys: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client. A backend made by :meth:`from_url` reconnects if used again."""
        await self._close_client()
        self._loop = None

    async def __aenter__(self) -> ValkeyBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # RuntimeError: its event loop is gone; the connection is closed all the same
            with contextlib.suppress(RuntimeError):
                await client.close()


def _running_loop() -> object:
    """The running event loop (as ``anyio.lowlevel.current_token().native_token``), fast."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # trio
        return anyio.lowlevel.current_token().native_token


class _Call:
    """One decision on its way to Valkey, alone or in a batch."""

    __slots__ = ("algorithm", "arg", "error", "expired", "keys", "task", "timeout", "value")
    arg: bytes

    def __init__(self, algorithm: Algorithm, request: Request) -> None:
        self.algorithm = algorithm
        self.timeout = request.timeout
        self.keys = request.keys
        now = -1 if request.now is None else request.now  # -1: the server's clock
        token = request.token.encode()
        head = _HEAD.pack(now, request.cost, request.mode, request.max_wait, len(token))
        self.arg = head + request.limits.packed + token
        self.value: list[int] | None = None
        self.error: BaseException | None = None
        self.expired = False  # its time budget ran out (a lone call's: see _Budget)
        self.task: asyncio.Task[Any] | None = None  # a lone call's task, while it waits

    def fail(self, exc: BaseException | str) -> None:
        error = BackendError(f"Valkey failed to run {self.algorithm.name}: {exc}")
        if isinstance(exc, BaseException):
            error.__cause__ = exc
        self.error = error

    @property
    def answered(self) -> bool:
        return self.value is not None or self.error is not None

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class _Budget:
    """Cuts a backend's lone call short at the end of its time budget, with one asyncio timer.

    A backend has at most one lone call in flight (:meth:`ValkeyBackend.execute` sends alone
    only when nothing else is), so this keeps that call and its deadline and nothing else: a
    call answered in time is forgotten at once. The timer is armed again lazily: when it
    fires for a call answered meanwhile, it is armed for the deadline of the call now waiting,
    so steady traffic wakes the event loop about once per budget, not once per call (a timer
    per call, as ``anyio.move_on_after`` makes, costs more than the call itself). As
    ``asyncio.timeout`` does, it cancels the waiting task, and the task takes back that one
    cancellation (:meth:`absorb`)."""

    __slots__ = ("_armed", "_call", "_deadline", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._call: _Call | None = None  # the lone call waiting for its answer
        self._deadline = math.inf  # its deadline
        self._armed = math.inf  # when the live timer fires (an earlier deadline replaces it)

    @classmethod
    def of(cls, loop: object) -> _Budget | None:
        """One for ``loop``, or None for an event loop that has cheap timers (trio)."""
        return cls(loop) if isinstance(loop, asyncio.AbstractEventLoop) else None

    def watch(self, timeout: float, call: _Call) -> None:
        """Cancel the current task if ``call`` has no answer ``timeout`` seconds from now."""
        call.task = asyncio.current_task()
        self._call = call
        self._deadline = deadline = self.loop.time() + timeout
        if deadline < self._armed:
            self._armed = deadline
            self.loop.call_at(deadline, self._expire, deadline)

    def forget(self, call: _Call) -> None:
        """``call`` is over (answered, failed or cancelled)."""
        call.task = None
        if self._call is call:
            self._call = None

    def _expire(self, armed: float) -> None:
        if armed != self._armed:  # replaced by a timer for an earlier deadline
            return
        call = self._call
        if call is None or call.answered:
            self._armed = math.inf
        elif self._deadline > self.loop.time():  # a later call than the timer was armed for
            self._armed = self._deadline
            self.loop.call_at(self._armed, self._expire, self._armed)
        else:
            # unanswered means still awaiting, inside _send_alone()'s try: the cancellation
            # lands there, and nowhere else
            self._call, self._armed = None, math.inf
            call.expired = True
            assert call.task is not None
            call.task.cancel()

    @staticmethod
    def absorb(call: _Call) -> bool:
        """Whether the cancellation that ``call``'s task met is the budget's own; if so, the
        task takes it back (unless someone else cancelled the task too: then it goes on)."""
        if not call.expired:
            return False
        uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() == 0


class _Batch:
    """The calls of one event-loop turn, sent together by the first of them (the leader)."""

    __slots__ = ("calls", "client", "done", "futures", "loop", "resend")

    def __init__(self, client: Client, leader: _Call, loop: object) -> None:
        self.client = client
        self.calls = [leader]
        self.loop = loop
        # what the others wait on: a future each under asyncio, else one Event (made when a
        # second call joins)
        self.futures: list[asyncio.Future[None]] | None = (
            [] if isinstance(loop, asyncio.AbstractEventLoop) else None
        )
        self.done: anyio.Event | None = None
        self.resend = False  # the leader was cancelled before sending: the others go again

    def release(self) -> None:
        """Wake the calls that wait on this batch."""
        if self.futures is not None:
            for future in self.futures:
                if not future.done():  # a waiter that was cancelled is done already
                    future.set_result(None)
        elif self.done is not None:
            self.done.set()


async def _send(client: Client, calls: list[_Call], cluster: bool) -> None:
    """Run ``calls`` on Valkey in as few script calls as it allows.

    The calls of one algorithm are one script call (on a cluster, one per hash slot); several
    script calls go out as one pipeline (a non-atomic glide Batch). A lone script call goes
    through ``invoke_script``, which loads the script on NOSCRIPT (flushed cache, restart,
    failover); a Batch has no such fallback, so its script calls that found the cache flushed
    go again one by one through ``invoke_script``.
    """
    again = _groups(calls, cluster)
    try:
        if len(again) > 1:
            again = await _pipeline(client, again, cluster)
        for group in again:
            if len(group) == 1:  # every call at low load: its own keys and argument as they are
                keys, arg = list(group[0].keys), group[0].arg
            else:
                keys = [key for call in group for key in call.keys]
                arg = b"".join([call.arg for call in group])
            try:
                value = await client.invoke_script(
                    _script(group[0].algorithm), keys=keys, args=[arg]
                )
            except Exception as exc:
                _fail(group, exc)
            else:
                _deliver(group, value)
    finally:
        for call in calls:
            if not call.answered:  # a budget (or a cancel) cut it short
                call.fail(
                    TimeoutError("no answer within the time budget (it may still have counted)")
                )


def _groups(calls: list[_Call], cluster: bool) -> list[list[_Call]]:
    """``calls`` by algorithm (and hash slot, on a cluster), in order: one script call each."""
    if len(calls) == 1:
        return [calls]
    groups: dict[object, list[_Call]] = {}
    for call in calls:
        where = (call.algorithm, _slot(call.keys[0])) if cluster else call.algorithm
        if where in groups:
            groups[where].append(call)
        else:
            groups[where] = [call]
    return list(groups.values())


async def _pipeline(client: Client, groups: list[list[_Call]], cluster: bool) -> list[list[_Call]]:
    """One script call per group, as one Batch; returns the groups that met NOSCRIPT."""
    from glide import Batch, ClusterBatch, GlideError

    batch = ClusterBatch(False) if cluster else Batch(False)
    for group in groups:
        keys = [key for call in group for key in call.keys]
        sha = _script(group[0].algorithm).get_hash()
        batch.custom_command(
            ["EVALSHA", sha, str(len(keys)), *keys, b"".join([c.arg for c in group])]
        )
    try:
        results = await client.exec(batch, raise_on_error=False)
    except Exception as exc:
        for group in groups:
            _fail(group, exc)
        return []
    again = []
    for group, value in zip(groups, results or ()):
        if not isinstance(value, GlideError):
            _deliver(group, value)
        elif "NoScript" in str(value) or "NOSCRIPT" in str(value):
            again.append(group)
        else:
            _fail(group, value)
    return again


def _fail(calls: list[_Call], exc: Exception) -> None:
    """Fail ``calls`` with glide's error ``exc``; any other exception is a bug: raised."""
    from glide import GlideError

    if not isinstance(exc, GlideError):
        raise exc
    for call in calls:
        call.fail(exc)


def _deliver(calls: list[_Call], value: object) -> None:
    """Hand each call its entry of a script's result: a list of integers, or an error's text."""
    results = cast("list[list[int] | bytes]", value)
    for call, result in zip(calls, results):
        if isinstance(result, list):
            call.value = result
        else:
            call.fail(result.decode(errors="replace"))


def _slot(key: str) -> int:
    """The cluster hash slot of ``key`` (every key of a decision has one {hash tag})."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % 16384


def _config_from_url(url: str, options: dict[str, object]) -> Config:
    from glide import (
        BackoffStrategy,
        GlideClientConfiguration,
        GlideClusterClientConfiguration,
        GlideError,
        NodeAddress,
        ServerCredentials,
    )

    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(
            f"invalid Valkey URL {url!r}: {why}; expected "
            "valkey[s]://[[user]:password@]host[:port][/db][?cluster=true] (or redis[s]://)"
        )

    if not isinstance(url, str):
        raise bad("not a string")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise bad(f"unknown scheme {parts.scheme!r}")
    try:
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError as exc:
        raise bad(str(exc)) from None
    query: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
    cluster_text = query.pop("cluster", "false").lower()
    if cluster_text not in ("true", "false", "1", "0", "yes", "no"):
        raise bad(f"cluster must be true or false, got {cluster_text!r}")
    cluster = cluster_text in ("true", "1", "yes")
    db_text, db_query = parts.path.lstrip("/"), query.pop("db", "")
    if db_text and db_query:
        raise bad("the database is given twice")
    db_text = db_text or db_query
    if query:
        raise bad(f"unknown query parameter(s) {sorted(query)}")
    kwargs: dict[str, Any] = {
        "addresses": [NodeAddress(host, port)],
        "use_tls": _SCHEMES[parts.scheme],
        "reconnect_strategy": BackoffStrategy(**_RECONNECT),
    }
    if db_text:
        if not db_text.isdigit():
            raise bad(f"the database must be a number, got {db_text!r}")
        kwargs["database_id"] = int(db_text)
    kwargs.update(options)
    try:
        if parts.password is not None or parts.username:
            password = unquote(parts.password) if parts.password is not None else None
            kwargs["credentials"] = ServerCredentials(
                password=password, username=unquote(parts.username) if parts.username else None
            )
        if cluster:
            return GlideClusterClientConfiguration(**kwargs)
        return GlideClientConfiguration(**kwargs)
    except (TypeError, ValueError, GlideError) as exc:
        raise ConfigurationError(f"invalid Valkey configuration for {url!r}: {exc}") from exc
