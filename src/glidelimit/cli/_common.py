"""What the commands share: connecting to Valkey, errors in one line, output that is safe to
print whatever bytes a key holds."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .._errors import ConfigurationError, GlideLimitError
from ..backends.valkey import ValkeyBackend
from ..backends.valkey._url import redact

PROG = "glidelimit"


class Failure(Exception):
    """A command could not do its job: its message is printed as one line, exit status 1."""


def quiet_glide() -> None:
    """Turn glide's own logger off: it writes to stdout (one line per reconnection attempt),
    where only what the user asked for belongs; the command reports failures itself."""
    try:
        from glide import Logger, LogLevel

        Logger.set_logger_config(LogLevel.OFF)
    except Exception:  # another glide version: its lines may show, nothing worse
        pass


def one_line(text: str) -> str:
    """``text`` on one line: every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def explain(message: str) -> str:
    """``message``, with a hint where glide's words alone would leave an operator guessing."""
    if re.search(r"\bmoved\b", message, re.IGNORECASE):
        return f"{message} (the server is a cluster node: add ?cluster=true to the URL)"
    if "No topology views found" in message:
        return f"{message} (?cluster=true is for Valkey Cluster: is the server standalone?)"
    return message


def reason(exc: BaseException) -> str:
    """What went wrong, in glide's words when glide said it (glidelimit's message names what
    it was doing; glide's says why it failed)."""
    cause = exc.__cause__
    text = str(cause) if cause is not None and type(cause).__module__.startswith("glide") else ""
    return one_line(text or str(exc) or type(exc).__name__)


@asynccontextmanager
async def connected(url: str, timeout: float, **options: object) -> AsyncIterator[ValkeyBackend]:
    """A backend for ``url``, connected (scripts loaded) within ``timeout`` seconds, closed
    on the way out.

    Raises:
        Failure: For a URL that is not valid (its password never shown), or a server that
            cannot be reached, refuses the credentials or does not answer in time.
    """
    quiet_glide()
    try:
        backend = ValkeyBackend.from_url(url, **options)
    except ConfigurationError as exc:
        raise Failure(str(exc)) from None
    where = redact(url)
    try:
        try:
            with anyio.fail_after(timeout):
                await backend.connect()
        except TimeoutError:
            raise Failure(f"cannot connect to {where}: no answer within {timeout:g} s") from None
        except GlideLimitError as exc:
            raise Failure(f"cannot connect to {where}: {reason(exc)}") from None
        yield backend
    finally:
        with anyio.CancelScope(shield=True):
            await backend.aclose()


def failure(exc: GlideLimitError, doing: str) -> Failure:
    """A Failure for ``exc``, met while ``doing`` something."""
    return Failure(f"cannot {doing}: {reason(exc)}")


def show(raw: bytes) -> str:
    """``raw`` (a key, say) as text that is safe to print and tells every key apart: UTF-8
    as it is, and backslash escapes for a backslash (``\\\\``), a byte that is not UTF-8
    (``\\xff``) and a character that is not printable (``\\n``, ``\\x1b``: never sent to a
    terminal as it is)."""
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as surrogateescape gives it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def seconds(value: float | None) -> float | None:
    """A duration for JSON: seconds rounded to the millisecond; None for never (JSON has no
    infinity) or unknown."""
    if value is None or math.isinf(value):
        return None
    return round(value, 3)


def dumps(value: Any) -> str:
    """``value`` as one line of JSON."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
