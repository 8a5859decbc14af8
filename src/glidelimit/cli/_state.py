"""``glidelimit inspect``, ``reset`` and ``keys``: where a limiter's keys stand on a live
Valkey, read without spending anything, and forgotten on demand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from .._concurrency import ConcurrencyLimiter
from .._errors import BackendError, ConfigurationError
from .._limiter import Limiter
from .._quota import key_head
from .._rate import MAX_EXACT, Rate
from ..algorithms import ALGORITHMS
from ..backends.valkey import ValkeyBackend
from ..backends.valkey._scan import escape_glob
from ..backends.valkey._url import redact
from ._common import PROG, Failure, connected, dumps, failure, seconds, show
from ._glob import glob_regex

#: stored keys whose state is read together (one round trip when the server is remote)
_CHUNK = 256


def _limiter(
    args: argparse.Namespace,
    backend: ValkeyBackend,
    rates: Rate | Sequence[Rate],
    algorithm: str,
    burst: int | Sequence[int] | None,
) -> Limiter:
    """A limiter that names the same stored keys as the operator's, and that raises when the
    server fails (a command must never report a state it made up)."""
    return Limiter(
        rates if isinstance(rates, Rate) else list(rates),
        algorithm=algorithm,
        backend=backend,
        name=args.limiter,
        prefix=args.prefix,
        burst=burst,
        on_backend_error="raise",
        backend_timeout=args.timeout,
    )


def _bursts(args: argparse.Namespace) -> list[int | None]:
    """The burst of each of ``args.rates``: None (the default) for every rate, or the one
    burst given for all, or one each."""
    given: list[int] = args.burst or []
    if not given:
        return [None] * len(args.rates)
    if len(given) == 1:
        return [given[0]] * len(args.rates)
    return list(given)


async def inspect(args: argparse.Namespace) -> None:
    """Print where ``args.key`` stands on each of ``args.rates``, spending nothing."""
    async with connected(args.url, args.timeout) as backend:
        rows = []
        try:
            for rate, burst in zip(args.rates, _bursts(args)):
                limiter = _limiter(args, backend, rate, args.algorithm, burst)
                now = await limiter.peek(args.key, cost=0)  # where it stands
                next_hit = await limiter.peek(args.key, cost=1)  # what one more hit would get
                rows.append(
                    {
                        "rate": str(rate),
                        "limit": rate.limit,
                        "period": rate.period,
                        "capacity": limiter.capacities[0],
                        "remaining": now.remaining,
                        "reset_after": seconds(now.reset_after),
                        "retry_after": seconds(next_hit.retry_after),
                        "stored_key": show(limiter.keys(args.key)[0]),
                    }
                )
        except BackendError as exc:
            raise failure(exc, f"read the state of {args.key!r}") from None
    key = show(args.key.encode("utf-8", "surrogatepass"))
    if args.json:
        print(
            dumps(
                {
                    "limiter": args.limiter,
                    "key": key,
                    "algorithm": args.algorithm,
                    "prefix": args.prefix,
                    "rates": rows,
                }
            )
        )
        return
    print(f"key {key} of limiter {args.limiter} ({args.algorithm}) on {redact(args.url)}")
    print(
        f"{'RATE':<14} {'CAPACITY':>9} {'REMAINING':>10} {'RESET (s)':>10} {'RETRY (s)':>10}  "
        "STORED KEY"
    )
    for row in rows:
        retry = "never" if row["retry_after"] is None else f"{row['retry_after']:.3f}"
        print(
            f"{row['rate']:<14} {row['capacity']:>9} {row['remaining']:>10} "
            f"{row['reset_after']:>10.3f} {retry:>10}  {row['stored_key']}"
        )


async def reset(args: argparse.Namespace) -> None:
    """Forget ``args.key`` on each of ``args.rates``, and print what it stood at before."""
    async with connected(args.url, args.timeout) as backend:
        bursts = _bursts(args)
        burst = None if bursts[0] is None else [b for b in bursts if b is not None]
        limiter = _limiter(args, backend, args.rates, args.algorithm, burst)
        try:
            before = await limiter.peek(args.key, cost=0)
            await limiter.reset(args.key)
        except BackendError as exc:
            raise failure(exc, f"reset {args.key!r}") from None
    key = show(args.key.encode("utf-8", "surrogatepass"))
    print(f"reset key {key} of limiter {args.limiter} ({args.algorithm}):")
    for state, stored in zip(before.rates, limiter.keys(args.key)):
        print(
            f"  {state.rate!s:<14} was at {state.remaining} of {state.limit} remaining, now full  "
            f"(deleted {show(stored)})"
        )


@dataclass
class _Row:
    """One stored key of a limiter, what it stands for, and its state."""

    stored: bytes
    key: bytes | None = None  # the caller's key, as stored
    algorithm: str | None = None  # None: not a key glidelimit's limiters make
    rate: Rate | None = None  # None for a concurrency limiter's key
    slots: int | None = None  # a concurrency limiter's
    capacity: int | None = None
    remaining: int | None = None
    reset_after: float | None = None

    def json(self) -> dict[str, Any]:
        """As ``glidelimit keys --json`` prints it."""
        rate = self.rate
        return {
            "key": None if self.key is None else show(self.key),
            "stored_key": show(self.stored),
            "algorithm": self.algorithm,
            "rate": None if rate is None else str(rate),
            "limit": self.slots if rate is None else rate.limit,
            "period": None if rate is None else rate.period,
            "capacity": self.capacity,
            "remaining": self.remaining,
            "reset_after": seconds(self.reset_after),
        }

    def line(self) -> str:
        """As ``glidelimit keys`` prints it, under :data:`KEYS_HEADER`."""
        if self.algorithm is None:
            what, rate = "?", "?"
        elif self.rate is None:
            what, rate = self.algorithm, f"{self.slots} slots"
        else:
            what, rate = self.algorithm, str(self.rate)
        remaining = "?" if self.remaining is None else f"{self.remaining}/{self.capacity}"
        reset = "-" if self.reset_after is None else f"{self.reset_after:.3f}"
        key = show(self.stored) if self.key is None else show(self.key)
        return f"{what:<14} {rate:<14} {remaining:>11} {reset:>10}  {key}"


KEYS_HEADER = f"{'ALGORITHM':<14} {'RATE':<14} {'REMAINING':>11} {'RESET (s)':>10}  KEY"


def parse_stored(stored: bytes, head: bytes) -> _Row:
    """What the stored key ``stored`` of the limiter whose keys start with ``head`` stands for:
    ``HEAD KEY}:ALGORITHM:LIMIT:PERIOD_MS`` for a rate, ``HEAD KEY}:concurrency:SLOTS`` for a
    concurrency limit (KEY ends at the last '}'). Anything else is returned with no
    algorithm."""
    row = _Row(stored)
    if not stored.startswith(head):
        return row
    body = stored[len(head) :]
    end = body.rfind(b"}")
    if end < 1:
        return row
    tail = body[end + 1 :].split(b":")
    numbers = tail[2:]
    if tail[0] != b"" or not numbers or not all(n.isdigit() and n[:1] != b"0" for n in numbers):
        return row
    algorithm = tail[1].decode("ascii", "replace")
    if algorithm == "concurrency" and len(numbers) == 1:
        row.slots = row.capacity = int(numbers[0])
    elif algorithm in ALGORITHMS and len(numbers) == 2:
        limit, period_ms = int(numbers[0]), int(numbers[1])
        try:
            rate = Rate(limit, period_ms / 1000)
        except ConfigurationError:
            return row
        if rate.period_ms != period_ms:
            return row
        row.rate = rate
    else:
        return row
    row.key, row.algorithm = body[:end], algorithm
    return row


class _Reader:
    """Reads each stored key's state through a limiter made for its algorithm and rate (one
    per kind of key, made when first needed), spending nothing."""

    def __init__(self, args: argparse.Namespace, backend: ValkeyBackend) -> None:
        self.args = args
        self.backend = backend
        self.limiters: dict[tuple[str, Rate], Limiter] = {}
        self.slots: dict[int, ConcurrencyLimiter] = {}
        self.failed = 0  # keys whose state could not be read
        self.first_error: BackendError | None = None

    async def read(self, row: _Row) -> None:
        """Fill in ``row``'s state, if it can be read; a failure is counted, not raised, so
        that one key holding what its name does not promise hides no other."""
        if row.algorithm is None or row.key is None:
            return
        try:
            await self._read(row)
        except BackendError as exc:
            self.failed += 1
            if self.first_error is None:
                self.first_error = exc

    async def _read(self, row: _Row) -> None:
        assert row.key is not None
        assert row.algorithm is not None
        try:
            key = row.key.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # not a key a limiter stores: its state cannot be read
            return
        if row.rate is None:
            assert row.slots is not None
            limiter = self.slots.get(row.slots)
            if limiter is None:
                limiter = self.slots[row.slots] = ConcurrencyLimiter(
                    row.slots,
                    backend=self.backend,
                    name=self.args.limiter,
                    prefix=self.args.prefix,
                    on_backend_error="raise",
                    backend_timeout=self.args.timeout,
                )
            row.remaining = row.slots - await limiter.inflight(key)
            return
        found = self.limiters.get((row.algorithm, row.rate))
        if found is None:
            burst = self.args.burst[0] if self.args.burst and row.algorithm == "gcra" else None
            if burst is not None and burst * row.rate.period_ms > MAX_EXACT:
                burst = None  # too large for this rate: the default, as for every other
            found = self.limiters[row.algorithm, row.rate] = _limiter(
                self.args, self.backend, row.rate, row.algorithm, burst
            )
        decision = await found.peek(key, cost=0)
        row.capacity, row.remaining = decision.limit, decision.remaining
        row.reset_after = decision.reset_after


async def _read_all(reader: _Reader, rows: list[_Row]) -> None:
    """Read the state of every row at once."""
    async with anyio.create_task_group() as tg:
        for row in rows:
            tg.start_soon(reader.read, row)


async def keys(args: argparse.Namespace) -> None:
    """Print every stored key of ``args.limiter`` (matching ``args.match``), with its state."""
    head = key_head(args.limiter, args.prefix)
    if args.match is None:
        pattern, wanted = escape_glob(head) + b"*", None
    else:
        glob = args.match.encode("utf-8", "surrogateescape")
        # the server's match narrows the scan; the KEY part alone is then held to the glob,
        # since a '}' inside a key could let the server's pattern match more than it
        pattern, wanted = escape_glob(head) + glob + b"}:*", glob_regex(glob)
    limit: int | None = args.limit
    shown = 0
    seen: set[bytes] = set()
    async with connected(args.url, args.timeout) as backend:
        reader = _Reader(args, backend)
        chunk: list[_Row] = []
        header = not args.json  # printed with the first row: none if nothing is found

        async def flush() -> None:
            nonlocal header
            await _read_all(reader, chunk)
            if chunk and header:
                print(KEYS_HEADER)
                header = False
            for row in chunk:
                print(dumps(row.json()) if args.json else row.line())
            chunk.clear()

        try:
            async for stored in backend.scan(pattern):
                if stored in seen:  # SCAN may return a key twice
                    continue
                seen.add(stored)
                row = parse_stored(stored, head)
                if wanted is not None and (row.key is None or not wanted.match(row.key)):
                    continue
                chunk.append(row)
                shown += 1
                if len(chunk) >= _CHUNK:
                    await flush()
                if limit is not None and shown >= limit:
                    break
        except BackendError as exc:
            raise failure(exc, f"list the keys of limiter {args.limiter!r}") from None
        except ConfigurationError as exc:  # a cluster node reached as a standalone server
            raise failure(exc, "list the keys") from None
        await flush()
    if reader.first_error is not None:
        error = failure(reader.first_error, "read the state of every key")
        raise Failure(f"{error} ({reader.failed} shown with '?', or null)")
    if shown == 0 and not args.json:
        matching = "" if args.match is None else f" matching {args.match!r}"
        print(
            f"{PROG}: no stored keys of limiter {args.limiter!r} (prefix {args.prefix!r})"
            f"{matching}",
            file=sys.stderr,
        )
