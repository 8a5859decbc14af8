"""A Valkey URL and glide options, made into a glide client configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..._errors import ConfigurationError

if TYPE_CHECKING:
    from typing import TypeAlias

    from glide import GlideClientConfiguration, GlideClusterClientConfiguration

    Config: TypeAlias = GlideClientConfiguration | GlideClusterClientConfiguration

_SCHEMES = {"valkey": False, "redis": False, "valkeys": True, "rediss": True}
_FORM = "valkey[s]://[[user]:password@]host[:port][/db][?cluster=true] (or redis[s]://)"
# glide's own reconnection, unless given: at most 160 ms between attempts (glide's default
# grows to 3.2 s), so that a server that is back is used again within about a second.
_RECONNECT = {"num_of_retries": 4, "factor": 10, "exponent_base": 2}


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what messages may show.

    Read from the text itself, not from a parse: a password that is not URL-encoded (a
    ``/``, ``#`` or ``?`` in it) would end the netloc where a parser looks for it."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def config_from_url(url: str, options: dict[str, object]) -> Config:
    """The glide configuration that ``url`` and ``options`` describe, checked now: a bad
    option is refused here, not when the first decision tries to connect.

    Raises:
        ConfigurationError: Naming what is wrong; never showing the password.
    """
    from glide import (
        BackoffStrategy,
        GlideClientConfiguration,
        GlideClusterClientConfiguration,
        NodeAddress,
        ServerCredentials,
    )

    if not isinstance(url, str):
        raise ConfigurationError(f"a Valkey URL must be a string, got {type(url).__name__}")
    shown = redact(url)
    password = ""

    def bad(why: str) -> ConfigurationError:
        if password:
            why = why.replace(password, "***")
        return ConfigurationError(f"invalid Valkey URL {shown!r}: {why}; expected {_FORM}")

    _, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo = rest.rpartition("@")[0]
        password = unquote(userinfo.partition(":")[2])
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if password and unquote(parts.password or "") != password:
        raise bad("the password holds a character that must be URL-encoded ('/', '#', '?')")
    if parts.scheme not in _SCHEMES:
        raise bad(f"unknown scheme {parts.scheme!r}")
    try:
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError as exc:
        raise bad(str(exc)) from None
    query: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
    cluster_text = query.pop("cluster", "false").lower()
    if cluster_text not in ("true", "false", "1", "0", "yes", "no"):
        raise bad(f"cluster must be true or false, got {cluster_text!r}")
    cluster = cluster_text in ("true", "1", "yes")
    db_text, db_query = parts.path.lstrip("/"), query.pop("db", "")
    if db_text and db_query:
        raise bad("the database is given twice")
    db_text = db_text or db_query
    if query:
        raise bad(f"unknown query parameter(s) {sorted(query)}")
    kwargs: dict[str, Any] = {
        "addresses": [NodeAddress(host, port)],
        "use_tls": _SCHEMES[parts.scheme],
        "reconnect_strategy": BackoffStrategy(**_RECONNECT),
        # create() returns at once and the first command connects: a failed connection
        # attempt at create() would block the event loop for its whole timeout
        "lazy_connect": True,
    }
    if db_text:
        if not db_text.isdigit():
            raise bad(f"the database must be a number, got {db_text!r}")
        kwargs["database_id"] = int(db_text)
    kwargs.update(options)
    try:
        if parts.password is not None or parts.username:
            kwargs["credentials"] = ServerCredentials(
                password=password or None,
                username=unquote(parts.username) if parts.username else None,
            )
        config_class = GlideClusterClientConfiguration if cluster else GlideClientConfiguration
        config = config_class(**kwargs)
        _check(config)
    except Exception as exc:  # glide raises TypeError, ValueError or its own errors
        raise bad(f"{type(exc).__name__}: {exc}") from None
    return config


def _check(config: Config) -> None:
    """Build the connection request glide would send: that is where it checks its options."""
    try:
        from glide_shared.connection_request import _create_async_connection_request
    except ImportError:  # another glide version: its create() will check them
        return
    _create_async_connection_request(config)
