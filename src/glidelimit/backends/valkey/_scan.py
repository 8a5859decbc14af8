"""Listing stored keys with SCAN, on a standalone server or on every primary of a cluster.

SCAN, never KEYS: each call looks at a bounded number of keys, so the server is never blocked
for long, however many keys it holds.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from ..._errors import ConfigurationError
from ._errors import glide_errors

if TYPE_CHECKING:
    from ._send import Client

_GLOB_SPECIAL = re.compile(rb"([*?\[\]\\])")


def escape_glob(text: bytes) -> bytes:
    """``text`` as a glob pattern that matches exactly ``text`` (``*?[]\\`` escaped)."""
    return _GLOB_SPECIAL.sub(rb"\\\1", text)


async def scan_keys(client: Client, match: bytes, count: int) -> AsyncIterator[bytes]:
    """Every key matching the glob ``match``, on one server or on every primary of a cluster
    (see :meth:`ValkeyBackend.scan <glidelimit.ValkeyBackend.scan>`)."""
    from glide import ClusterScanCursor, GlideClusterClient, InfoSection

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigurationError(f"count must be a positive integer, got {count!r}")
    if not isinstance(match, bytes):
        raise ConfigurationError(f"match must be bytes, got {type(match).__name__}")
    if isinstance(client, GlideClusterClient):
        cursor = ClusterScanCursor()
        while not cursor.is_finished():
            with glide_errors("scan keys"):
                cursor, batch = await client.scan(cursor, match=match, count=count)
            for key in cast("list[bytes]", batch):
                yield key
        return
    try:
        info = await client.info([InfoSection.CLUSTER])
    except Exception:  # INFO refused, say: the scan itself meets any real failure
        info = b""
    if b"cluster_enabled:1" in info:
        # a standalone client sees one node of a cluster: its scan would miss the others' keys
        raise ConfigurationError(
            "the server is a node of a Valkey Cluster: connect as a cluster client "
            "(?cluster=true in the URL) to scan all of its keys"
        )
    position: bytes = b"0"
    while True:
        with glide_errors("scan keys"):
            reply = await client.scan(position, match=match, count=count)
        position = cast(bytes, reply[0])
        for key in cast("list[bytes]", reply[1]):
            yield key
        if position == b"0":
            return
