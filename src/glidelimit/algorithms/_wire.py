"""How one decision travels to a script: the only description of the format in Python.

The reader is ``parse()`` in ``_prelude.lua``. A script call carries one or more decisions,
one after another in its single argument (an argument costs the client more to send than
its bytes). Each decision is little-endian doubles, cheaper for Lua to read than text, then
the holder's bytes:

    now (ms; negative: the server's clock), cost, mode, max wait (ms; -1: none),
    the holder's length, the number of entries,
    then per entry: limit, period (ms), capacity,
    then the holder (a concurrency slot's owner; empty otherwise).

The keys of decision i (one per entry, all under one hash tag) follow those of decision i-1.
Every number is an integer below 2**53, so that Lua's doubles compute what Python does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_HEAD = struct.Struct("<5d")


def pack_entries(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """The part of a decision that is the same for every call of one limiter."""
    numbers: list[int] = [len(entries)]
    for entry in entries:
        numbers += entry
    return struct.pack(f"<{len(numbers)}d", *numbers)


def encode(
    entries: bytes, cost: int, mode: int, max_wait: int, holder: bytes, now: int = -1
) -> bytes:
    """One decision, given its ``entries`` as :func:`pack_entries` made them."""
    return _HEAD.pack(now, cost, mode, max_wait, len(holder)) + entries + holder
