"""Rate limiters: per phone, in one process or shared by many processes and machines (Redis).

Both limiters are pyrate-limiter's GCRA (a token bucket kept as one timestamp) driven by
one waiting loop, :class:`GcraLimiter`:

- **Evenly spaced.** The bucket holds (about) one unit, so units leave ``1/rate`` apart
  instead of in bursts at window edges: what providers' per-second throttles accept.
- **Fair.** Every try is made with a fresh timestamp and, when refused, sleeps exactly until
  the next unit is due, then tries again. Every waiter (thread, process, machine) therefore
  races for each unit on equal terms (why pyrate-limiter's own blocking wait is not used:
  docs/scaling.md, "How the limiter waits").
- **No lost units from late wake-ups.** A waiter always wakes a little after its unit is
  due (sleep overshoot, a Redis round trip, a busy CPU); with a bucket of exactly one unit
  that lateness would be lost for good. The bucket therefore tolerates ``tolerance``
  seconds of catch-up (built with sub-units: one unit is ``sub`` sub-units and the bucket
  holds ``sub + j``), so a unit taken late leaves the schedule where it was.
  :attr:`smsbridge.phone.Phone.pacing_tolerance` derives the tolerance from
  ``rate_headroom`` so that a strict "N per rolling second" provider is still never
  exceeded (see that property).
- **Pausable.** After a provider's ``RateLimited`` answer, :meth:`GcraLimiter.pause` holds
  every sender of the phone (every thread; with Redis every worker) for ``retry_after``.

:class:`RedisLimiter` keeps each phone's GCRA state in one Redis hash (updated atomically
in Lua by pyrate-limiter) and its pause in one key with a TTL. Timestamps are the wall
clocks of the machines taking part: keep them synchronised (NTP), as for any distributed
limiter. Needs the ``redis`` package (``pip install 'smsbridge[celery]'``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

from pyrate_limiter import (
    GCRA,
    AbstractClock,
    Rate,
    RateItem,
    RedisStateStore,
    StateBucket,
    StateStore,
)

__all__ = ["GcraLimiter", "RedisLimiter", "TokenBucketLimiter", "install_redis_limiters"]

#: pyrate-limiter counts in integer microseconds: a sub-unit is kept at 1 ms or more, so
#: rounding it up to a whole microsecond slows the rate by at most 0.1 %.
_MIN_SUB_US = 1000
_MAX_SUB = 100
#: One pyrate "interval" of 1,000 s: the rate becomes an integer limit (units × 1,000 ×
#: sub-units) without rounding fractional rates such as 4.9/s.
_INTERVAL_MS = 1_000_000


class GcraLimiter(ABC):
    """``rate`` units (segments) per second, evenly spaced, fair between waiters.

    ``store`` is where pyrate-limiter keeps the GCRA state (in memory by default);
    ``tolerance`` is how late, in seconds, a unit may be taken without the next one being
    delayed (0: exact spacing, every late wake-up lost). A message of ``n`` segments
    takes ``n`` units, one by one. ``clock`` (a pyrate-limiter clock, in milliseconds) and
    ``sleep`` are injectable for simulations and tests.
    """

    def __init__(
        self,
        rate: float,
        name: str = "phone",
        *,
        tolerance: float = 0.0,
        store: StateStore | None = None,
        clock: AbstractClock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if tolerance < 0:
            raise ValueError("tolerance must not be negative")
        self.rate = rate
        self.name = name
        emission_us = 1_000_000 / rate
        # Sub-units per unit: fine enough to express the tolerance to about 1 ms.
        self.sub = max(1, min(_MAX_SUB, int(emission_us // _MIN_SUB_US)))
        extra = round(min(tolerance, 1.0) * rate * self.sub)
        self.tolerance = extra * emission_us / self.sub / 1_000_000
        limit = max(1, round(rate * self.sub * _INTERVAL_MS / 1000))
        self._bucket = StateBucket(
            [Rate(limit, _INTERVAL_MS, burst=self.sub + extra)],
            algorithm=GCRA(),
            store=store,
            clock=clock,
        )
        self._sleep = sleep
        # put() then waiting() read the bucket's record of the last refusal: one pair at a
        # time in this process. The sleep happens outside the lock.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.rate:g}/s>"

    def acquire(self, weight: int = 1) -> None:
        """Block until ``weight`` units may go (each one as soon as it is due)."""
        for _ in range(max(1, weight)):
            while True:
                held = self.paused_for()
                if held > 0:
                    self._sleep(min(held, 1.0))
                    continue
                with self._lock:
                    now: int = self._bucket.now()  # type: ignore[no-untyped-call]
                    item = RateItem(self.name, now, self.sub)
                    if self._bucket.put(item):
                        break
                    wait_ms = cast(int, self._bucket.waiting(item))  # a sync store: an int
                # Never 0 here (refused means a unit is due later): at least 1 ms, the
                # clock's resolution, so a rounding can never spin.
                self._sleep(max(wait_ms, 1) / 1000)

    @abstractmethod
    def pause(self, seconds: float) -> None:
        """Hold every sender of this phone for ``seconds`` (after a provider's 429)."""

    @abstractmethod
    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""


class TokenBucketLimiter(GcraLimiter):
    """Per-phone in-process limiter (the default of every phone with a rate limit).

    Thread-safe: the threads of one process (``send_many``, the embedded worker) share the
    phone's budget, and a pause holds all of them.
    """

    _paused_until = 0.0  # time.monotonic() until which every sender waits

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())


class RedisLimiter(GcraLimiter):
    """A phone's limiter whose state is shared through Redis by every worker."""

    def __init__(
        self,
        redis: Any,
        phone: str,
        rate: float,
        *,
        prefix: str = "smsbridge",
        max_pause: float = 300.0,
        tolerance: float = 0.0,
    ) -> None:
        self._limit_key = f"{prefix}:limit:{phone}"
        self._pause_key = f"{prefix}:pause:{phone}"
        store = RedisStateStore(redis, key=self._limit_key)
        super().__init__(rate, phone, tolerance=tolerance, store=store)
        self.redis = redis
        self.max_pause = max_pause

    @property
    def phone(self) -> str:
        """The phone whose budget this is (the limiter's name)."""
        return self.name

    @classmethod
    def from_url(cls, url: str, phone: str, rate: float, **kw: Any) -> RedisLimiter:
        import redis

        return cls(redis.Redis.from_url(url), phone, rate, **kw)

    def paused_for(self) -> float:
        ms = self.redis.pttl(self._pause_key)
        return ms / 1000.0 if ms and ms > 0 else 0.0

    def pause(self, seconds: float) -> None:
        """Hold every worker's sends through this phone for ``seconds`` (at most max_pause)."""
        ms = int(min(max(seconds, 0.0), self.max_pause) * 1000)
        if ms > 0:
            # Keep the longest pause asked for: only extend, never shorten.
            current = self.redis.pttl(self._pause_key) or 0
            if ms > current:
                self.redis.set(self._pause_key, "1", px=ms)

    def reset(self) -> None:
        """Forget this phone's shared state (its budget and any pause)."""
        self.redis.delete(self._limit_key, self._pause_key)


def install_redis_limiters(bridge: Any, url: str, *, prefix: str = "smsbridge") -> None:
    """Give every phone of ``bridge`` that has a rate limit a Redis-shared limiter."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(url)
    for phone in bridge.phones.values():
        rate = phone.pacing_rate
        if rate:
            phone.limiter = RedisLimiter(
                client, phone.name, rate, prefix=prefix, tolerance=phone.pacing_tolerance
            )
