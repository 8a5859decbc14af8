"""Backends execute algorithms: Valkey (standalone, cluster) and the in-memory twin."""

from __future__ import annotations

from ._base import Backend, Executor
from ._memory import MemoryBackend
from .valkey import ValkeyBackend

__all__ = ["Backend", "Executor", "MemoryBackend", "ValkeyBackend"]
