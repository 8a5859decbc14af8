"""glide's errors, made glidelimit's in one place.

An error that means the server is unavailable (unreachable, timed out, refusing writes, a
failed script) becomes a :class:`~glidelimit.BackendError`, which a limiter's failure policy
may decide on. An error that means the client cannot be used at all (closed, made in another
process) or is not allowed to (a wrong password, no AUTH, an ACL that lacks a command)
becomes a :class:`~glidelimit.UsageError`, which is raised whatever the policy: a limiter
that is misconfigured must not quietly fail open. Anything else is a bug, raised as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..._errors import BackendError, GlideLimitError, UsageError


def translate(exc: BaseException, doing: str) -> BaseException:
    """What glidelimit raises for ``exc``, met while ``doing`` something."""
    from glide import ClosingError, GlideError
    from glide import ConfigurationError as GlideConfigurationError

    if isinstance(exc, (ClosingError, GlideConfigurationError)) or _refused(exc):
        error: GlideLimitError = UsageError(f"cannot {doing}: {exc}")
    elif isinstance(exc, GlideError):
        error = BackendError(f"Valkey failed to {doing}: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error


def _refused(exc: BaseException) -> bool:
    """Whether the server refused this client its credentials or a command (ACL)."""
    text = str(exc)
    return any(word in text for word in ("WRONGPASS", "NOAUTH", "NOPERM", "PermissionDenied"))


@contextlib.contextmanager
def glide_errors(doing: str) -> Iterator[None]:
    """Raise glide's errors in the block as :func:`translate` says."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, doing)
        if error is exc:
            raise
        raise error from exc
