"""Bad input gets a ConfigurationError (also a ValueError) that names what was wrong."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from glidelimit import ConfigurationError, Limiter, MemoryBackend, Rate


@pytest.mark.parametrize(
    ("text", "limit", "seconds"),
    [
        ("100/minute", 100, 60),
        ("100/min", 100, 60),
        ("100/m", 100, 60),
        ("100 per minute", 100, 60),
        ("10/second", 10, 1),
        ("5/30s", 5, 30),
        ("1000/hour", 1000, 3600),
        ("10000/day", 10000, 86400),
        ("100/1m", 100, 60),
        ("100/500ms", 100, 0.5),
        (" 7 PER 2 Hours ", 7, 7200),
        ("3/1.5s", 3, 1.5),
    ],
)
def test_rate_parse(text: str, limit: int, seconds: float) -> None:
    assert Rate.parse(text) == Rate(limit, seconds) == Rate(limit, timedelta(seconds=seconds))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "100",
        "100/",
        "/minute",
        "100/fortnight",
        "0/minute",
        "-1/minute",
        "1.5/minute",
        "100/0s",
        "10/0.5ms",
        "100 minute",
        "ten/minute",
    ],
)
def test_rate_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Rate.parse(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_rate_message_lists_accepted_forms() -> None:
    with pytest.raises(ConfigurationError, match=r"'100/minute'.*'100 per minute'.*'100/500ms'"):
        Rate.parse("100/fortnight")


@pytest.mark.parametrize(
    ("limit", "period"),
    [
        (0, 1),
        (-5, 1),
        (True, 1),
        (1.5, 1),
        (10, 0),
        (10, -1),
        (10, 0.0001),
        (2**40, 86400),
        (1, math.inf),
        (1, math.nan),
        (1, "1"),
    ],
)
def test_rate_rejects(limit: object, period: object) -> None:  # fmt: skip
    with pytest.raises(ConfigurationError):
        Rate(limit, period)  # type: ignore[arg-type]


def test_rate_str() -> None:
    assert [str(Rate.parse(t)) for t in ["100/min", "5/30s", "100/500ms", "1/2h"]] == [
        "100/minute",
        "5/30s",
        "100/500ms",
        "1/2h",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rates": "100/fortnight"}, "cannot parse rate '100/fortnight'"),
        ({"rates": []}, "at least one rate"),
        ({"rates": ["1/s", "1/s"]}, "duplicate rates"),
        ({"rates": [5]}, "a rate must be a Rate or a string"),
        ({"algorithm": "leaky"}, "unknown algorithm 'leaky'.*'fixed_window'.*'gcra'"),
        ({"burst": 0}, "burst must be an integer >= 1, got 0"),
        ({"burst": 5, "algorithm": "fixed_window"}, "burst applies to the gcra algorithm only"),
        ({"rates": ["1/s", "2/m"], "burst": 5}, "one integer per rate"),
        ({"name": ""}, "limiter name"),
        ({"name": "a:b"}, "limiter name"),
        ({"name": "{x}"}, "limiter name"),
        ({"prefix": "a{"}, "prefix"),
        ({"on_backend_error": "ignore"}, "on_backend_error must be one of"),
        ({"backend": "valkey://x"}, "backend must be a Backend"),
    ],
)
def test_limiter_rejects(kwargs: dict[str, object], message: str) -> None:
    kwargs.setdefault("rates", "10/second")
    with pytest.raises(ConfigurationError, match=message):
        Limiter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cost", [-1, 1.5, "1", True, None, 2**60])
async def test_bad_cost(cost: object) -> None:
    limiter = Limiter("10/second", backend=MemoryBackend())
    with pytest.raises(ConfigurationError, match="cost"):
        await limiter.hit("k", cost=cost)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cost"):
        await limiter.acquire("k", cost=cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", None, 42, b"bytes"])
async def test_bad_key(key: object) -> None:
    limiter = Limiter("10/second", backend=MemoryBackend())
    with pytest.raises(ConfigurationError, match="key must be a non-empty string"):
        await limiter.hit(key)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="key must be a non-empty string"):
        await limiter.peek(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window"])
@pytest.mark.parametrize("timeout", [-1, math.nan, True, "1"])
async def test_bad_timeout(algorithm: str, timeout: object) -> None:
    limiter = Limiter("10/second", backend=MemoryBackend(), algorithm=algorithm)
    with pytest.raises(ConfigurationError, match="timeout"):
        await limiter.acquire("k", timeout=timeout)  # type: ignore[arg-type]


def test_bad_max_keys() -> None:
    with pytest.raises(ConfigurationError, match="max_keys"):
        MemoryBackend(max_keys=0)
