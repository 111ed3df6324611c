"""Per-subject rate limits: one token bucket per token subject, checked before any decoding.

A bucket holds up to ``burst`` calls and refills at ``rate`` calls per second; each RPC a token
makes (a stream counts once) takes one, and an empty bucket is RESOURCE_EXHAUSTED with the wait
in the message. Buckets are keyed by the token's *subject*, so a subject's tokens share one (a
rotation does not refill it), and another subject's calls are never slowed by this one's.

The rate and burst are the token's own (``toitsu tokens create --rate R --burst B``, stored in
its record), else ``auth.rate_per_second`` / ``auth.burst``. The default is off
(``auth.rate_per_second = 0``): no limit until an operator sets one. A gateway without tokens
(open) has no subjects and no limits.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from serving.errors import Overloaded

_MAX_BUCKETS = 10_000  # subjects remembered; the least recently used is forgotten (it refills anyway)


@dataclass(frozen=True)
class Limit:
    rate: float  # calls per second; 0 = unlimited
    burst: float  # bucket size

    @classmethod
    def of(cls, rate: float | None, burst: float | None, default: Limit) -> Limit:
        """A token's limit: its own rate and burst where it has them, else the default's. A token with
        its own rate but no burst gets a one-second burst (at least one call)."""
        if rate is None:
            return cls(default.rate, burst if burst is not None else default.burst)
        return cls(rate, burst if burst is not None else max(rate, 1.0))


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level, self.stamp = level, stamp


class RateLimiter:
    def __init__(self, default: Limit, clock: Callable[[], float] = time.monotonic) -> None:
        if default.rate < 0 or (default.rate > 0 and default.burst < 1):
            raise ValueError("auth.rate_per_second must be >= 0, and auth.burst >= 1 when a rate is set")
        self.default = default
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @classmethod
    def configured(cls, rate_per_second: float, burst: float) -> RateLimiter:
        """The limiter of ``auth.rate_per_second`` and ``auth.burst`` (0: one second's worth, at least 1)."""
        return cls(Limit(rate_per_second, burst or max(rate_per_second, 1.0)))

    def take(self, subject: str, limit: Limit) -> None:
        """Take one call from ``subject``'s bucket, or raise Overloaded (RESOURCE_EXHAUSTED)."""
        if limit.rate <= 0:
            return
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(subject)
            if bucket is None:
                bucket = self._buckets[subject] = _Bucket(limit.burst, now)
                if len(self._buckets) > _MAX_BUCKETS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(subject)
                bucket.level = min(limit.burst, bucket.level + (now - bucket.stamp) * limit.rate)
                bucket.stamp = now
            if bucket.level >= 1.0:
                bucket.level -= 1.0
                return
            wait = (1.0 - bucket.level) / limit.rate
        raise Overloaded(
            f"rate limit for {subject!r} exceeded ({limit.rate:g} calls/s, burst {limit.burst:g}); "
            f"retry in {wait:.2f} s"
        )
