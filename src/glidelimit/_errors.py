"""The exceptions glidelimit raises.

All of them derive from one base class::

    GlideLimitError
    ├── ConfigurationError (also a ValueError)  bad rate text, algorithm, cost, key, URL, ...
    ├── RateLimitExceeded                        acquire() could not be allowed in time (it is
    │                                            defined beside the Decision it carries)
    ├── BackendError                             the store is unavailable; the client's error is
    │                                            __cause__ (a failure policy may decide instead)
    └── UsageError (also a RuntimeError)         glidelimit was used in a way that cannot work:
                                                 a closed backend, a client of another event loop

A failure policy (``on_backend_error``) only ever decides on a BackendError; every other error
is raised, whatever the policy.
"""

from __future__ import annotations


class GlideLimitError(Exception):
    """Base class of every error glidelimit raises."""


class ConfigurationError(GlideLimitError, ValueError):
    """A value given to glidelimit is not valid; the message names it and what is accepted."""


class BackendError(GlideLimitError):
    """The backend failed to decide; the client's own error is chained as ``__cause__``."""


class UsageError(GlideLimitError, RuntimeError):
    """glidelimit was used in a way that cannot work (a closed backend, a glide client of
    another event loop): a bug in the caller, raised whatever the failure policy."""
