"""Backends execute algorithms: Valkey (standalone, cluster) and the in-memory twin."""

from __future__ import annotations

from ._base import Backend
from ._memory import MemoryBackend
from ._valkey import ValkeyBackend

__all__ = ["Backend", "MemoryBackend", "ValkeyBackend"]
