"""The ``glidelimit`` command (extra ``cli``): inspect, reset and list a limiter's keys on a
live Valkey, benchmark a server, or watch limiting happen in a demo. Its entry point is
:func:`main`; each command lives in a module of its own, imported when it runs."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import anyio

from .._errors import GlideLimitError
from ._common import PROG, Failure, explain, one_line
from ._demo import demo, demo_app
from ._parser import check, parser

if sys.version_info < (3, 11):  # anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup  # pragma: no cover

__all__ = ["demo", "demo_app", "main"]

#: exit status when the reader of stdout went away (``glidelimit keys ... | head -1``)
BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``glidelimit`` command.

    Args:
        argv: The arguments, without the program's name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 1 failed (one line on stderr says why), 130 interrupted,
        141 stdout closed by its reader. A command line that is not valid exits with 2
        (``SystemExit``), as argparse does.
    """
    args = parser().parse_args(argv)
    check(args)
    logger = logging.getLogger("glidelimit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        anyio.run(args.run, args)
        sys.stdout.flush()  # here, where a reader that went away is caught: not at exit
    except SystemExit:
        raise
    except BaseException as exc:
        return _failed(exc, getattr(args, "url", None))
    finally:
        logger.removeHandler(handler)
    return 0


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, or every exception an exception group holds, however deep."""
    if isinstance(exc, BaseExceptionGroup):
        for child in exc.exceptions:
            yield from _leaves(child)
    else:
        yield exc


def _failed(exc: BaseException, url: str | None) -> int:
    leaves = list(_leaves(exc))
    # Ctrl-C: Python 3.10's asyncio (which has no Task.uncancel()) lets it out of anyio.run()
    # as the cancellation it turned into
    if any(isinstance(e, (KeyboardInterrupt, asyncio.CancelledError)) for e in leaves):
        return 130
    if any(isinstance(e, BrokenPipeError) for e in leaves):
        _mute_stdout()
        return BROKEN_PIPE
    for leaf in leaves:
        if isinstance(leaf, (Failure, GlideLimitError, OSError)):
            message = one_line(str(leaf) or type(leaf).__name__)
            print(f"{PROG}: error: {_scrub(explain(message), url)}", file=sys.stderr)
            return 1
    raise exc


def _mute_stdout() -> None:
    """Send what is left for stdout to /dev/null: flushing it at exit would fail again, and
    say so on stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's captured stdout)
        pass


def _scrub(message: str, url: str | None) -> str:
    """``message`` without the URL's password, whoever wrote the message."""
    if not url:
        return message
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return message
    for secret in {password, unquote(password or "")}:
        if secret:  # in a URL; and anywhere, if too long to be part of ordinary words
            message = message.replace(f":{secret}@", ":***@")
            if len(secret) >= 6:
                message = message.replace(secret, "***")
    return message
