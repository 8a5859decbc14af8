"""The ``glidelimit`` command's command line: its commands, their options and help."""

from __future__ import annotations

import argparse
import importlib
import os
import textwrap
from collections.abc import Awaitable, Callable
from typing import NoReturn

from .._errors import ConfigurationError
from .._quota import key_head
from .._rate import Rate
from .._version import __version__
from ..algorithms import ALGORITHMS
from ._common import PROG

DESCRIPTION = """\
Inspect, reset and list a limiter's keys on a live Valkey, benchmark a server, or
watch limiting happen in a demo.

Every URL is read as ValkeyBackend.from_url() reads it:
  valkey[s]://[[user]:password@]host[:port][/db][?cluster=true]   (or redis[s]://)
Errors are one line on stderr, with exit status 2 for a command line that is not
valid and 1 for anything else (a bad URL, a server that cannot be reached or that
refuses the password). See 'glidelimit COMMAND --help'."""

JSON_INSPECT = """\
--json prints one object:
  {"limiter": str, "key": str, "algorithm": str, "prefix": str,
   "rates": [{"rate": "5/minute", "limit": int, "period": seconds, "capacity": int,
              "remaining": int, "reset_after": seconds, "retry_after": seconds or null,
              "stored_key": str}, ...]}
remaining: what the key may still spend now; reset_after: seconds until it is back to full;
retry_after: seconds until one more hit (cost 1) would be allowed, 0 if now, null if never.
Keys are shown as UTF-8, with a backslash, a byte that is not UTF-8 and a character that is
not printable escaped (\\\\, \\xff, \\n)."""

JSON_KEYS = """\
Stored keys look like PREFIX{LIMITER:KEY}:ALGORITHM:LIMIT:PERIOD_MS (a concurrency limit's:
PREFIX{LIMITER:KEY}:concurrency:SLOTS). Each is read through a limiter made for its algorithm
and rate, spending nothing. A gcra key does not record its burst: it is read as if the burst
were the rate's limit (the default) unless --burst says otherwise. A key that is not one
glidelimit's limiters make is listed with '?' (null in JSON) for what cannot be known.

--json prints one object per line (JSON Lines), as the keys are found:
  {"key": str or null, "stored_key": str, "algorithm": str or null,
   "rate": "5/minute" or null, "limit": int or null, "period": seconds or null,
   "capacity": int or null, "remaining": int or null, "reset_after": seconds or null}
For a concurrency limit, rate and period are null, limit and capacity are its slots and
remaining is how many are free. Keys are shown as UTF-8, with a backslash, a byte that is not
UTF-8 and a character that is not printable escaped (\\\\, \\xff, \\n)."""

JSON_BENCH = """\
It runs glidelimit's limiter for --seconds, then bare glide (invoke_script of an INCR +
PEXPIRE script, the least a limiter can do in one round trip) for as long, from one process,
then deletes the keys it made (its limiter has a name of its own, glidelimit-bench-<random>;
no other key is touched). The progress goes to stderr, the results to stdout.

--json prints one object:
  {"server": {"url": str, "software": "Valkey" or "Redis", "version": str, "cluster": bool,
              "primaries": int},
   "settings": {"seconds": float, "concurrency": int, "keys": int, "algorithm": str,
                "rate": str},
   "results": [{"name": str, "calls": int, "per_second": float, "p50_ms": float or null,
                "p99_ms": float or null, "allowed": int, "errors": int,
                "first_error": str or null}, ...],
   "keys_deleted": int or null}
results holds glidelimit's run, then bare glide's; calls counts those that succeeded, and
the latencies (null when none did) are theirs. keys_deleted is null if the clean-up failed
(every key has a TTL: they go by themselves)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _rate(text: str) -> Rate:
    try:
        return Rate.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(text: str) -> str:
    try:
        key_head(text, "glidelimit:")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _prefix(text: str) -> str:
    try:
        key_head("x", text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _key(text: str) -> str:
    """A key as the command line gave it. Bytes that are not UTF-8 but read as a stored key
    (a lone surrogate, as ``keys`` shows it: ``\\xed\\xb3\\xbf``) are that key; other bytes
    stand for themselves, as a header's bytes do for a limiter's key."""
    if not text:
        raise argparse.ArgumentTypeError("a key must not be empty")
    try:
        return os.fsencode(text).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = _Parser(add_help=False)
    server.add_argument("url", metavar="URL", help="the Valkey server, e.g. valkey://host:6379")
    server.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the server to answer, connecting included (default 5)",
    )
    limiter = _Parser(add_help=False)
    limiter.add_argument("limiter", metavar="LIMITER", type=_name, help="the limiter's name")
    limiter.add_argument(
        "--prefix",
        type=_prefix,
        default="glidelimit:",
        help="the limiter's key prefix (default glidelimit:)",
    )
    key = _Parser(add_help=False)
    key.add_argument("key", metavar="KEY", type=_key, help="the key, e.g. user:42")
    rates = _Parser(add_help=False)
    rates.add_argument(
        "--rate",
        dest="rates",
        action="append",
        type=_rate,
        required=True,
        metavar="RATE",
        help="a rate of the limiter, e.g. 100/minute; repeat it for each of its rates "
        "(required: the rates and the algorithm name the stored keys)",
    )
    rates.add_argument(
        "--algorithm",
        choices=sorted(ALGORITHMS),
        default="gcra",
        metavar="NAME",
        help=f"the limiter's algorithm: {', '.join(sorted(ALGORITHMS))} (default gcra)",
    )
    rates.add_argument(
        "--burst",
        type=_positive_int,
        action="append",
        metavar="N",
        help="gcra only: the limiter's burst, one for all rates or one per rate (default: "
        "each rate's limit)",
    )
    as_json = _Parser(add_help=False)
    as_json.add_argument(
        "--json", action="store_true", help="print JSON, described below (default: a table)"
    )

    inspect = commands.add_parser(
        "inspect",
        parents=[server, limiter, key, rates, as_json],
        help="where a key stands on each rate, spending nothing",
        description=_wrap(
            "Print where KEY stands on each rate of limiter LIMITER: what it may "
            "still spend now, when it is back to full, and when one more hit would be allowed. "
            "Nothing is spent."
        ),
        epilog=JSON_INSPECT,
        formatter_class=_Formatter,
    )
    inspect.set_defaults(parser=inspect, run=_lazy("._state", "inspect"))

    reset = commands.add_parser(
        "reset",
        parents=[server, limiter, key, rates],
        help="forget a key: it starts afresh on every rate",
        description=_wrap(
            "Delete the stored state of KEY on each rate of limiter LIMITER, and "
            "print where it stood. Give every rate of the limiter, and its algorithm: they name "
            "the stored keys (glidelimit keys URL LIMITER lists them)."
        ),
        formatter_class=_Formatter,
    )
    reset.set_defaults(parser=reset, run=_lazy("._state", "reset"))

    keys = commands.add_parser(
        "keys",
        parents=[server, limiter, as_json],
        help="a limiter's stored keys and their state (SCAN, cluster-aware)",
        description=_wrap(
            "List the stored keys of limiter LIMITER with their state, found with "
            "SCAN (never KEYS) on the server or on every primary of a cluster."
        ),
        epilog=JSON_KEYS,
        formatter_class=_Formatter,
    )
    keys.add_argument(
        "--match",
        metavar="GLOB",
        help="only keys (the KEY part) that match this glob, e.g. 'user:*' (default: all)",
    )
    keys.add_argument(
        "--limit", type=_positive_int, metavar="N", help="list N keys at most (default: all)"
    )
    keys.add_argument(
        "--burst",
        type=_positive_int,
        action="append",
        metavar="N",
        help="the burst of the limiter's gcra keys (default: each rate's limit)",
    )
    keys.set_defaults(parser=keys, run=_lazy("._state", "keys"))

    bench = commands.add_parser(
        "bench",
        parents=[server, as_json],
        help="decisions/s and latency on your server, beside bare glide",
        description=_wrap(
            "Measure glidelimit's decisions per second and latency (p50, p99) on "
            "the server at URL, beside bare glide's, with a live progress bar; the defaults run "
            "for about 11 s."
        ),
        epilog=JSON_BENCH,
        formatter_class=_Formatter,
    )
    bench.add_argument(
        "--seconds", type=_positive_float, default=5.0, help="each run's length (default 5)"
    )
    bench.add_argument(
        "--concurrency",
        type=_positive_int,
        default=100,
        metavar="N",
        help="callers at once (default 100)",
    )
    bench.add_argument(
        "--algorithm",
        choices=sorted(ALGORITHMS),
        default="gcra",
        metavar="NAME",
        help=f"glidelimit's algorithm: {', '.join(sorted(ALGORITHMS))} (default gcra)",
    )
    bench.add_argument(
        "--rate",
        type=_rate,
        default=Rate.parse("100/second"),
        help="glidelimit's rate, per key (default 100/second)",
    )
    bench.add_argument(
        "--keys", type=_positive_int, default=1000, metavar="N", help="keys hit (default 1000)"
    )
    bench.set_defaults(parser=bench, run=_lazy("._bench", "bench"))

    _add_demo(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    run = commands.add_parser(
        "demo",
        help="watch limiting happen, on memory or on Valkey",
        description=_wrap(
            "Serve a small FastAPI app limited by glidelimit on 127.0.0.1, fire two "
            "bursts of real HTTP requests at it and print what came back (status, RateLimit "
            "headers, Retry-After); with --web, serve a live page instead, to fire requests at "
            "each algorithm yourself and watch them decide."
        ),
        formatter_class=_Formatter,
    )
    run.add_argument(
        "--url", help="a Valkey URL, e.g. valkey://127.0.0.1:6379 (default: in memory)"
    )
    run.add_argument(
        "--rate", help="the rate to demonstrate (default 5/2s; with --web 5/10s, per endpoint)"
    )
    run.add_argument(
        "--burst",
        type=int,
        help="requests per burst (default 7; with --web the page's initial burst, 8)",
    )
    run.add_argument(
        "--pause", type=float, default=1.0, help="seconds between the bursts (default 1)"
    )
    web = run.add_argument_group("the web page (--web)")
    web.add_argument(
        "--web",
        action="store_true",
        help="serve a live page to fire requests from, until Ctrl-C (default: print bursts)",
    )
    web.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    web.add_argument(
        "--no-browser", action="store_true", help="do not open a browser (default: open one)"
    )
    web.add_argument(
        "--slots",
        type=int,
        default=2,
        help="requests in flight per client on the concurrency endpoint (default 2)",
    )
    web.add_argument(
        "--hold",
        type=float,
        default=1.0,
        help="seconds each request holds its slot there (default 1)",
    )
    web.add_argument(
        "--name",
        default="demo",
        help="starts the limiters' names; demos on one Valkey share limits under one name "
        "(default demo)",
    )
    run.set_defaults(parser=run, run=_lazy("._demo", "run"))


def _wrap(text: str) -> str:
    return textwrap.fill(text, 80)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (the JSON shapes keep their lines)."""


Command = Callable[[argparse.Namespace], Awaitable[None]]


def _lazy(module: str, name: str) -> Command:
    """The command ``name`` of the module ``module``, imported when it runs (so that
    ``--help`` and ``--version`` never import what the commands need)."""

    async def run(args: argparse.Namespace) -> None:
        command: Command = getattr(importlib.import_module(module, __package__), name)
        await command(args)

    return run


def check(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: how the options go together."""
    parser: argparse.ArgumentParser = args.parser
    rates: list[Rate] | None = getattr(args, "rates", None)
    if rates is not None and len(set(rates)) != len(rates):
        parser.error(f"a rate is given twice: {', '.join(str(r) for r in rates)}")
    burst: list[int] | None = getattr(args, "burst", None)
    if burst and rates is not None:  # inspect and reset (demo's --burst is a count)
        if args.algorithm != "gcra":
            parser.error(f"--burst applies to the gcra algorithm only, not {args.algorithm}")
        if len(burst) not in (1, len(rates or ())):
            parser.error(f"--burst: give one for all rates or one per rate ({len(rates or ())})")
    if burst and args.command == "keys" and len(burst) > 1:
        parser.error("--burst: give it once")
