"""The Valkey backend: standalone and cluster, through valkey-glide."""

from __future__ import annotations

from ._backend import ValkeyBackend

__all__ = ["ValkeyBackend"]
