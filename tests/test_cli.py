"""The ``glidelimit`` command against real servers, standalone and cluster: what each command
prints (tables, documented JSON), and how it fails (one line on stderr, never a traceback,
never a password, nothing of glide's on stdout).

Exit codes, stderr and stdout as a whole are checked on the command run as a process; the
rest calls ``main()`` in this process, which is faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from _servers import Deployment, Server, command, free_port
from glidelimit import Limiter, ValkeyBackend, __version__
from glidelimit.backends.valkey._scan import escape_glob
from glidelimit.cli import _common, main
from glidelimit.cli._glob import glob_regex
from glidelimit.cli._parser import parser
from glidelimit.cli._state import KEYS_HEADER

PASSWORD = "hunter2-s3cret"
BURST_WITHOUT_GCRA = ["reset", "valkey://h", "api", "k", "--rate=5/m", "--burst=3",
                      "--algorithm=sliding_log"]  # fmt: skip


@pytest.fixture(autouse=True)
def _glide_logger_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command turns glide's process-wide logger off; in this process, that would change
    it for every later test. The commands run as processes check that it is off."""
    monkeypatch.setattr(_common, "quiet_glide", lambda: None)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``glidelimit ARGS`` in this process: its exit status, stdout and stderr."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def process(*args: str, timeout: float = 60) -> tuple[int, str, str, float]:
    """``glidelimit ARGS`` as a process: its exit status, stdout, stderr and duration."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "glidelimit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def assert_one_line_error(err: str, *, without: str = PASSWORD) -> None:
    assert err.startswith("glidelimit"), err
    assert err.count("\n") == 1, err
    assert err.endswith("\n"), err
    assert "Traceback" not in err
    assert without not in err


def state(
    url: str,
    name: str,
    *hits: tuple[str, str, int],
    algorithm: str = "gcra",
    prefix: str = "glidelimit:",
) -> None:
    """Spend on a limiter named ``name``: (rate, key, cost) per hit."""

    async def spend() -> None:
        async with ValkeyBackend.from_url(url) as backend:
            for rate, key, cost in hits:
                limiter = Limiter(
                    rate, algorithm=algorithm, backend=backend, name=name, prefix=prefix
                )
                assert (await limiter.hit(key, cost)).allowed

    asyncio.run(spend())


def raw(url: str, *commands: list[str | bytes]) -> list[Any]:
    """Commands sent as they are, through glide (keys of any bytes, on any node)."""

    async def send() -> list[Any]:
        async with ValkeyBackend.from_url(url) as backend:
            await backend.connect()
            client = (await backend._channel()).client
            return [await client.custom_command(c) for c in commands]

    return asyncio.run(send())


def stored(url: str, pattern: bytes) -> list[bytes]:
    async def scan() -> list[bytes]:
        async with ValkeyBackend.from_url(url) as backend:
            return [key async for key in backend.scan(pattern)]

    return asyncio.run(scan())


# --- what the commands print ----------------------------------------------------------------


def test_version() -> None:
    code, out, err, _ = process("--version")
    assert (code, out, err) == (0, f"glidelimit {__version__}\n", "")


def test_inspect_reads_each_rate_without_spending(
    capsys: pytest.CaptureFixture[str], deployment: Deployment, name: str
) -> None:
    state(deployment.url, name, ("5/minute", "user:42", 2), ("100/hour", "user:42", 2))
    args = ["inspect", deployment.url, name, "user:42", "--rate", "5/minute", "--rate", "100/hour"]
    for _ in range(2):  # the second look sees the same: the first spent nothing
        code, out, err = cli(capsys, *args, "--json")
        assert (code, err) == (0, "")
        report = json.loads(out)
        assert report.keys() == {"limiter", "key", "algorithm", "prefix", "rates"}
        assert (report["limiter"], report["key"], report["algorithm"]) == (name, "user:42", "gcra")
        assert report["prefix"] == "glidelimit:"
        minute, hour = report["rates"]
        assert minute.keys() == {"rate", "limit", "period", "capacity", "remaining",
                                 "reset_after", "retry_after", "stored_key"}  # fmt: skip
        assert (minute["rate"], minute["limit"], minute["period"]) == ("5/minute", 5, 60.0)
        assert (minute["capacity"], minute["remaining"], minute["retry_after"]) == (5, 3, 0.0)
        assert 20 < minute["reset_after"] <= 24  # two of five, 12 s each
        assert minute["stored_key"] == f"glidelimit:{{{name}:user:42}}:gcra:5:60000"
        assert (hour["rate"], hour["remaining"], hour["capacity"]) == ("100/hour", 98, 100)
        assert 68 < hour["reset_after"] <= 72

    code, out, err = cli(capsys, *args)
    assert (code, err) == (0, "")
    title, header, *rows = out.splitlines()
    assert name in title
    assert "user:42" in title
    assert "gcra" in title
    assert header.split()[:3] == ["RATE", "CAPACITY", "REMAINING"]
    assert rows[0].split()[:3] == ["5/minute", "5", "3"]
    assert rows[1].split()[:3] == ["100/hour", "100", "98"]


def test_inspect_a_denied_key_says_when_to_retry(
    capsys: pytest.CaptureFixture[str], valkey_url: str, name: str
) -> None:
    state(valkey_url, name, ("5/minute", "k", 5))
    code, out, _ = cli(capsys, "inspect", valkey_url, name, "k", "--rate", "5/minute", "--json")
    (rate,) = json.loads(out)["rates"]
    assert (code, rate["remaining"]) == (0, 0)
    assert 8 < rate["retry_after"] <= 12
    # a burst makes another capacity: the same stored key, read as the limiter reads it
    state(valkey_url, name + "b", ("5/minute", "k", 5))
    code, out, _ = cli(
        capsys, "inspect", valkey_url, name + "b", "k", "--rate", "5/minute", "--burst", "2",
        "--json",
    )  # fmt: skip
    (rate,) = json.loads(out)["rates"]
    assert (code, rate["capacity"]) == (0, 2)


def test_a_key_that_keys_shows_as_bytes_is_that_key(valkey_url: str, name: str) -> None:
    """A key of a lone surrogate (a header's bytes that were not UTF-8) is stored as the bytes
    ``keys`` shows; given as those bytes, inspect reads that very key."""
    state(valkey_url, name, ("5/minute", "\udcff", 2))
    stored = os.fsdecode(b"\xed\xb3\xbf")  # the raw bytes, as a shell passes $'\xed\xb3\xbf'
    code, out, _, _ = process("inspect", valkey_url, name, stored, "--rate", "5/minute", "--json")
    (rate,) = json.loads(out)["rates"]
    assert (code, rate["remaining"]) == (0, 3)


def test_reset_forgets_every_rate(
    capsys: pytest.CaptureFixture[str], deployment: Deployment, name: str
) -> None:
    url = deployment.url
    state(url, name, ("5/minute", "user:7", 3), ("10/hour", "user:7", 3), ("5/minute", "other", 1),
          algorithm="sliding_window")  # fmt: skip
    code, out, err = cli(capsys, "reset", url, name, "user:7", "--rate", "5/minute",
                         "--rate", "10/hour", "--algorithm", "sliding_window")  # fmt: skip
    assert (code, err) == (0, "")
    assert "was at 2 of 5 remaining" in out
    assert "was at 7 of 10 remaining" in out
    assert f"glidelimit:{{{name}:user:7}}:sliding_window:10:3600000" in out
    head = escape_glob(f"glidelimit:{{{name}:".encode())
    assert stored(url, head + b"*") == [
        f"glidelimit:{{{name}:other}}:sliding_window:5:60000".encode()
    ]


def _held_slot(name: str, key: str, slots: int) -> list[str | bytes]:
    """A slot of a concurrency limit, held for ten minutes, as the limiter stores it (the
    servers run on this machine: one clock)."""
    until = str(int((time.time() + 600) * 1000))
    return ["ZADD", f"glidelimit:{{{name}:{key}}}:concurrency:{slots}", until, "holder-1"]


def test_keys_lists_each_stored_key_with_its_state(
    capsys: pytest.CaptureFixture[str], deployment: Deployment, name: str
) -> None:
    url = deployment.url
    weird = "a\udcff\nb\\c"  # a lone surrogate (bytes that are not UTF-8), a newline, a backslash
    state(url, name, ("5/minute", "user:1", 2), ("5/minute", "user:2", 1), ("5/minute", weird, 1))
    state(url, name, ("10/minute", "user:1", 4), algorithm="fixed_window")
    state(url, name + "x", ("5/minute", "user:1", 1))  # another limiter's: never listed
    state(url, name, ("5/minute", "user:9", 1), prefix="other:")  # listed with --prefix only
    raw(
        url,
        _held_slot(name, "job", 3),
        ["SET", f"glidelimit:{{{name}:\xff}}:gcra:5:60000".encode("latin-1"), "x", "EX", "600"],
        ["SET", f"glidelimit:{{{name}:odd}}:lease:1", "x", "EX", "600"],
    )
    code, out, err = cli(capsys, "keys", url, name, "--json")
    assert (code, err) == (0, "")
    rows = {row["stored_key"]: row for row in map(json.loads, out.splitlines())}
    gcra = f"glidelimit:{{{name}:user:1}}:gcra:5:60000"
    assert rows.keys() == {
        gcra,
        f"glidelimit:{{{name}:user:2}}:gcra:5:60000",
        f"glidelimit:{{{name}:a\\xed\\xb3\\xbf\\nb\\\\c}}:gcra:5:60000",
        f"glidelimit:{{{name}:user:1}}:fixed_window:10:60000",
        f"glidelimit:{{{name}:job}}:concurrency:3",
        f"glidelimit:{{{name}:\\xff}}:gcra:5:60000",
        f"glidelimit:{{{name}:odd}}:lease:1",
    }
    row = rows[gcra]
    assert row.keys() == {"key", "stored_key", "algorithm", "rate", "limit", "period",
                          "capacity", "remaining", "reset_after"}  # fmt: skip
    assert (row["key"], row["algorithm"]) == ("user:1", "gcra")
    assert (row["rate"], row["limit"]) == ("5/minute", 5)
    assert (row["period"], row["capacity"], row["remaining"]) == (60.0, 5, 3)
    assert 20 < row["reset_after"] <= 24
    window = rows[f"glidelimit:{{{name}:user:1}}:fixed_window:10:60000"]
    assert window["algorithm"] == "fixed_window"
    assert (window["rate"], window["remaining"]) == ("10/minute", 6)
    slot = rows[f"glidelimit:{{{name}:job}}:concurrency:3"]
    assert (slot["algorithm"], slot["rate"], slot["limit"], slot["remaining"]) == (
        "concurrency",
        None,
        3,
        2,
    )
    surrogate = rows[f"glidelimit:{{{name}:a\\xed\\xb3\\xbf\\nb\\\\c}}:gcra:5:60000"]
    assert (surrogate["key"], surrogate["remaining"]) == ("a\\xed\\xb3\\xbf\\nb\\\\c", 4)
    not_utf8 = rows[f"glidelimit:{{{name}:\\xff}}:gcra:5:60000"]
    assert (not_utf8["key"], not_utf8["algorithm"], not_utf8["remaining"]) == ("\\xff", "gcra",
                                                                               None)  # fmt: skip
    odd = rows[f"glidelimit:{{{name}:odd}}:lease:1"]
    assert (odd["key"], odd["algorithm"], odd["remaining"]) == (None, None, None)

    code, out, err = cli(capsys, "keys", url, name)
    assert (code, err) == (0, "")
    header, *lines = out.splitlines()
    assert header == KEYS_HEADER
    assert len(lines) == len(rows)  # the newline in a key is escaped: one line per key
    assert "\x1b" not in out
    assert "\udcff" not in out
    assert any(line.split() == ["gcra", "5/minute", "3/5", line.split()[3], "user:1"]
               for line in lines)  # fmt: skip
    assert any(line.split()[:3] == ["concurrency", "3", "slots"] for line in lines)

    code, out, _ = cli(capsys, "keys", url, name, "--json", "--match", "user:*")
    assert sorted(json.loads(line)["key"] for line in out.splitlines()) == [
        "user:1", "user:1", "user:2"
    ]  # fmt: skip
    code, out, _ = cli(capsys, "keys", url, name, "--json", "--limit", "2")
    assert (code, len(out.splitlines())) == (0, 2)
    code, out, _ = cli(capsys, "keys", url, name, "--json", "--prefix", "other:")
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["user:9"]
    code, out, err = cli(capsys, "keys", url, name + "none")
    assert (code, out) == (0, "")
    assert f"no stored keys of limiter '{name}none'" in err


def test_keys_of_a_gcra_limiter_with_a_burst(
    capsys: pytest.CaptureFixture[str], valkey_url: str, name: str
) -> None:
    async def spend() -> None:
        async with ValkeyBackend.from_url(valkey_url) as backend:
            limiter = Limiter("5/minute", backend=backend, name=name, burst=10)
            await limiter.hit("k", 7)

    asyncio.run(spend())
    code, out, _ = cli(capsys, "keys", valkey_url, name, "--json", "--burst", "10")
    (row,) = map(json.loads, out.splitlines())
    assert (code, row["capacity"], row["remaining"]) == (0, 10, 3)


def test_keys_lists_a_key_it_cannot_read_and_says_so(
    capsys: pytest.CaptureFixture[str], valkey_url: str, name: str
) -> None:
    state(valkey_url, name, ("5/minute", "fine", 1))
    raw(valkey_url, ["HSET", f"glidelimit:{{{name}:broken}}:gcra:5:60000", "n", "1"])
    code, out, err = cli(capsys, "keys", valkey_url, name, "--json")
    rows = {row["key"]: row for row in map(json.loads, out.splitlines())}
    assert (rows["fine"]["remaining"], rows["broken"]["remaining"]) == (4, None)
    assert code == 1
    assert_one_line_error(err)
    assert "1 shown with '?'" in err


async def test_glob_reads_as_the_server_does(valkey_backend: ValkeyBackend, name: str) -> None:
    """The keys command holds each key's KEY part to --match itself: it must agree with the
    server's SCAN MATCH, odd patterns included."""
    words = [b"a", b"ab", b"abc", b"a]", b"a-b", b"a\\b", b"a*", b"a?", b"b", b"[", b"a[b",
             b"ac", b"a^", b"\xff", b"a\nb", b""]  # fmt: skip
    patterns = [b"a*", b"a?", b"a[bc]", b"a[^b]", b"a[a-c]*", b"a[c-a]", b"a\\*", b"a[]",
                b"a[^]", b"a[", b"a[b", b"*\\", b"a[\\]]", b"a[-b]", b"?", b"*b*", b"a[b-]",
                b"[\\[]", b"a\\", b"\xff", b"a?b", b"*"]  # fmt: skip
    head = f"{name}:".encode()
    await valkey_backend.connect()
    client = (await valkey_backend._channel()).client
    await client.mset({head + word: b"1" for word in words})
    for pattern in patterns:
        on_server = {key async for key in valkey_backend.scan(escape_glob(head) + pattern)}
        here = {head + word for word in words if glob_regex(pattern).match(word)}
        assert here == on_server, pattern


def test_bench(capsys: pytest.CaptureFixture[str], deployment: Deployment) -> None:
    code, out, err = cli(capsys, "bench", deployment.url, "--seconds", "0.3", "--keys", "20",
                         "--concurrency", "10", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report.keys() == {"server", "settings", "results", "keys_deleted"}
    server = report["server"]
    assert server["software"] == "Valkey"
    assert server["version"][0].isdigit()
    cluster = "cluster=true" in deployment.url
    assert (server["cluster"], server["primaries"]) == (cluster, 3 if cluster else 1)
    ours, bare = report["results"]
    for result in (ours, bare):
        assert result.keys() == {"name", "calls", "per_second", "p50_ms", "p99_ms", "allowed",
                                 "errors", "first_error"}  # fmt: skip
        assert result["calls"] > 0
        assert result["errors"] == 0
        assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert ours["name"] == "glidelimit gcra hit"
    assert bare["name"] == "glide invoke_script"
    assert isinstance(report["keys_deleted"], int)
    assert report["keys_deleted"] > 0
    assert stored(deployment.url, b"glidelimit:{glidelimit-bench-*") == []  # cleaned up
    assert "glidelimit gcra hit" in err  # the progress, on stderr


def test_bench_table(capsys: pytest.CaptureFixture[str], valkey_url: str) -> None:
    code, out, _ = cli(capsys, "bench", valkey_url, "--seconds", "0.2", "--keys", "5",
                       "--concurrency", "4", "--algorithm", "sliding_log")  # fmt: skip
    assert code == 0
    assert "Valkey" in out
    assert "standalone" in out
    assert "calls/s" in out
    assert "glidelimit sliding_log hit" in out
    assert "glide invoke_script" in out


def test_every_option_says_its_default() -> None:
    (commands,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands: dict[str, argparse.ArgumentParser] = commands.choices
    assert set(subcommands) == {"inspect", "reset", "keys", "bench", "demo"}
    for which, sub in subcommands.items():
        for action in sub._actions:
            if action.option_strings and action.dest not in ("help", "rates"):
                assert action.help, (which, action.dest)
                assert "default" in action.help, (which, action.dest)


def test_demo_prints_its_bursts() -> None:
    code, out, err, _ = process("demo", "--pause", "0.1", "--burst", "7")
    assert (code, err) == (0, "")
    assert 'RateLimit-Policy: "demo";q=5;w=2' in out
    assert out.count(" 200 ") >= 5
    assert out.count(" 429 ") >= 1
    assert "application/problem+json" in out


# --- how they fail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["inspect", "valkey://h", "api", "k"], "required: --rate"),
        (["inspect", "valkey://h", "api", "k", "--rate", "5/fortnight"], "cannot parse rate"),
        (["inspect", "valkey://h", "a:b", "k", "--rate", "5/m"], "limiter name"),
        (["inspect", "valkey://h", "api", "k", "--rate", "5/m", "--rate", "5/minute"], "twice"),
        (BURST_WITHOUT_GCRA, "gcra"),
        (["keys", "valkey://h", "api", "--limit", "0"], "positive integer"),
        (["bench", "valkey://h", "--seconds", "nan"], "positive number"),
        ([], "required: COMMAND"),
    ],
)
def test_a_command_line_that_is_not_valid_is_one_line_and_2(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert (code, out) == (2, "")
    assert_one_line_error(err)
    assert says in err


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{PASSWORD}@127.0.0.1:6379",
        f"valkey://:{PASSWORD}@127.0.0.1:99999",
        f"valkey://:{PASSWORD}@127.0.0.1:6379?cluster=maybe",
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str) -> None:
    code, out, err, _ = process("inspect", url, "api", "k", "--rate", "5/m")
    assert (code, out) == (1, "")
    assert_one_line_error(err)
    assert "invalid Valkey URL" in err
    assert ":***@" in err


def test_a_wrong_password_is_one_line_and_quick(own_valkey: Server) -> None:
    command(own_valkey.port, "CONFIG", "SET", "requirepass", PASSWORD)
    url = f"valkey://127.0.0.1:{own_valkey.port}"
    wrong = f"valkey://:not-{PASSWORD}@127.0.0.1:{own_valkey.port}"
    code, out, err, took = process("keys", wrong, "api")
    assert (code, out) == (1, "")
    assert_one_line_error(err, without=f"not-{PASSWORD}")
    assert "cannot connect to valkey://:***@" in err
    assert "WRONGPASS" in err
    assert took < 5
    code, out, err, _ = process("keys", url, "api")  # no password at all
    assert code == 1
    assert "NOAUTH" in err
    right = f"valkey://:{PASSWORD}@127.0.0.1:{own_valkey.port}"
    code, out, err, _ = process("inspect", right, "api", "k", "--rate", "5/m")
    assert code == 0, err
    assert ":***@" in out
    assert PASSWORD not in out


@pytest.mark.parametrize("how", ["standalone", "cluster", "demo"])
def test_a_server_that_is_down_is_one_line_and_quick(how: str) -> None:
    """glide logs each failed connection attempt to stdout: none of it may show."""
    url = f"valkey://127.0.0.1:{free_port()}" + ("?cluster=true" if how == "cluster" else "")
    args = ["demo", "--url", url] if how == "demo" else ["keys", url, "api"]
    code, out, err, took = process(*args)
    assert (code, out) == (1, "")
    assert_one_line_error(err)
    assert err.startswith(f"glidelimit: error: cannot connect to {url}: ")
    assert took < 10  # the connect is bounded (5 s); refused is much faster


def test_a_cluster_node_reached_as_standalone_is_named(
    capsys: pytest.CaptureFixture[str], valkey_cluster: list[Server]
) -> None:
    code, out, err = cli(capsys, "keys", valkey_cluster[0].url, "api")
    assert (code, out) == (1, "")
    assert_one_line_error(err)
    assert "?cluster=true" in err


@pytest.fixture
def many_keys(valkey_url: str, name: str) -> str:
    state(valkey_url, name, *[("5/minute", f"user:{i}", 1) for i in range(300)])
    return name


@pytest.mark.parametrize("what", ["keys", "keys-json", "demo"])
def test_a_reader_that_goes_away_ends_it_quietly(
    valkey_url: str, many_keys: str, what: str
) -> None:
    """``glidelimit keys ... | head -1``: exit 141, as for a process killed by SIGPIPE, with
    nothing on stderr."""
    args = {
        "keys": ["keys", valkey_url, many_keys],
        "keys-json": ["keys", valkey_url, many_keys, "--json"],
        "demo": ["demo", "--pause", "0.1"],
    }[what]
    with subprocess.Popen(
        [sys.executable, "-m", "glidelimit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()  # before anything is written: the first write meets a closed pipe
        err = proc.stderr.read()
        assert (proc.wait(timeout=60), err) == (141, "")


def test_a_short_password_is_hidden_without_garbling_the_message() -> None:
    from glidelimit.cli import _scrub

    url = "valkey://:a@127.0.0.1:1"
    assert _scrub(f"cannot connect to {url}", url) == "cannot connect to valkey://:***@127.0.0.1:1"
    long_url = "valkey://:TopSecret@127.0.0.1:1"
    assert _scrub("refused TopSecret", long_url) == "refused ***"
