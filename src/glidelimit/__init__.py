"""glidelimit: async-first rate limiting on Valkey through valkey-glide.

>>> from glidelimit import Limiter
>>> limiter = Limiter("100/minute", name="api")  # in-memory by default
>>> decision = await limiter.hit("user:42")
"""

from ._breaker import CircuitBreaker as CircuitBreaker
from ._concurrency import ConcurrencyLimiter as ConcurrencyLimiter
from ._decision import Decision as Decision
from ._decision import RateLimitExceeded as RateLimitExceeded
from ._decision import RateState as RateState
from ._errors import BackendError as BackendError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import GlideLimitError as GlideLimitError
from ._errors import UsageError as UsageError
from ._lease import Lease as Lease
from ._limiter import Limiter as Limiter
from ._metrics import instrument as instrument
from ._metrics import uninstrument as uninstrument
from ._rate import Rate as Rate
from ._tiers import Tiers as Tiers
from ._version import __version__ as __version__
from .backends import Backend as Backend
from .backends import MemoryBackend as MemoryBackend
from .backends import ValkeyBackend as ValkeyBackend

__all__ = [
    "Backend",
    "BackendError",
    "CircuitBreaker",
    "ConcurrencyLimiter",
    "ConfigurationError",
    "Decision",
    "GlideLimitError",
    "Lease",
    "Limiter",
    "MemoryBackend",
    "Rate",
    "RateLimitExceeded",
    "RateState",
    "Tiers",
    "UsageError",
    "ValkeyBackend",
    "instrument",
    "uninstrument",
]
