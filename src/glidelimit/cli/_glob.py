"""The server's glob patterns (SCAN's MATCH), read in Python, to check a match against one
part of a stored key."""

from __future__ import annotations

import re


def glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    """A regular expression that matches exactly what the server's glob ``pattern`` matches:
    ``*``, ``?``, ``[abc]``, ``[^abc]``, ``[a-z]``, and ``\\`` escaping the next character
    (read as the server reads them, odd cases included)."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"[":
            i, members = _glob_class(pattern, i + 1)
            out.append(members)
        else:
            if c == b"\\" and i + 1 < n:
                i += 1
                c = pattern[i : i + 1]
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + rb"\Z", re.DOTALL)


def _glob_class(pattern: bytes, i: int) -> tuple[int, bytes]:
    """The class after a '[' (``i`` is just past it): the index of its last character, and
    a regex that matches one character of it. An unclosed class ends with the pattern."""
    n = len(pattern)
    negate = pattern[i : i + 1] == b"^"
    if negate:
        i += 1
    parts: list[bytes] = []
    while i < n:
        c = pattern[i : i + 1]
        if c == b"\\" and n - i >= 2:
            i += 1
            parts.append(re.escape(pattern[i : i + 1]))
        elif c == b"]":
            break
        elif n - i >= 3 and pattern[i + 1 : i + 2] == b"-":
            low, high = sorted((c, pattern[i + 2 : i + 3]))  # either way round
            parts.append(re.escape(low) + b"-" + re.escape(high))
            i += 2
        else:
            parts.append(re.escape(c))
        i += 1
    if not parts:  # '[]' matches nothing, '[^]' any one character
        return i, rb"[\s\S]" if negate else rb"[^\s\S]"
    return i, b"[" + (b"^" if negate else b"") + b"".join(parts) + b"]"
