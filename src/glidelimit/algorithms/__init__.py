"""The rate-limiting algorithms, each a Lua script plus a Python twin that agree exactly."""

from __future__ import annotations

from . import _wire as wire
from ._base import Algorithm, Check, Entry, Limits, Mode, Owner, Store
from .concurrency import Concurrency
from .fixed_window import FixedWindow
from .gcra import GCRA
from .sliding_log import SlidingLog
from .sliding_window import SlidingWindow

#: the rate algorithms a Limiter can use, by name
ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (FixedWindow(), SlidingWindow(), SlidingLog(), GCRA())
}
CONCURRENCY = Concurrency()
#: every script a backend may run (the Valkey backend loads them all on connect)
SCRIPTS: tuple[Algorithm, ...] = (*ALGORITHMS.values(), CONCURRENCY)

__all__ = [
    "ALGORITHMS",
    "CONCURRENCY",
    "SCRIPTS",
    "Algorithm",
    "Check",
    "Entry",
    "Limits",
    "Mode",
    "Owner",
    "Store",
    "wire",
]
