"""The rate-limiting algorithms, each a Lua script plus a Python twin that agree exactly."""

from __future__ import annotations

from ._base import Algorithm, Check, Limits, Mode, Request
from .fixed_window import FixedWindow
from .gcra import GCRA
from .sliding_log import SlidingLog
from .sliding_window import SlidingWindow

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (FixedWindow(), SlidingWindow(), SlidingLog(), GCRA())
}

__all__ = ["ALGORITHMS", "Algorithm", "Check", "Limits", "Mode", "Request"]
