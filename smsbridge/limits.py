"""Rate limiters shared by many processes and machines (Redis), for scaled-out sending.

Each phone's budget lives in Redis as pyrate-limiter's GCRA state (one hash per phone,
updated atomically in Lua), so every worker on every machine draws from the same budget,
counted in segments and evenly spaced. When a provider answers ``RateLimited``, the worker
that got it calls :meth:`RedisLimiter.pause`: every worker then waits ``retry_after``
seconds before the next unit for that phone.

Needs the ``redis`` package (``pip install 'smsbridge[celery]'``).
"""

from __future__ import annotations

import time
from typing import Any

from pyrate_limiter import GCRA, Limiter, Rate, RedisStateStore, StateBucket

__all__ = ["RedisLimiter", "install_redis_limiters"]


class RedisLimiter:
    """A phone's limiter whose state is shared through Redis."""

    def __init__(
        self,
        redis: Any,
        phone: str,
        rate: float,
        *,
        prefix: str = "smsbridge",
        max_pause: float = 300.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.redis = redis
        self.phone = phone
        self.rate = rate
        self.max_pause = max_pause
        self._pause_key = f"{prefix}:pause:{phone}"
        if float(rate).is_integer():
            limit, interval_ms = int(rate), 1000
        else:  # pyrate needs integers: one unit per emission interval, in ms
            limit, interval_ms = 1, max(1, round(1000 / rate))
        store = RedisStateStore(redis, key=f"{prefix}:limit:{phone}")
        bucket = StateBucket([Rate(limit, interval_ms, burst=1)], algorithm=GCRA(), store=store)
        self._limiter = Limiter(bucket, buffer_ms=0)

    @classmethod
    def from_url(cls, url: str, phone: str, rate: float, **kw: Any) -> RedisLimiter:
        import redis

        return cls(redis.Redis.from_url(url), phone, rate, **kw)

    def _wait_pause(self) -> None:
        while True:
            ms = self.redis.pttl(self._pause_key)
            if ms is None or ms <= 0:
                return
            time.sleep(min(ms / 1000.0, 1.0))

    def acquire(self, weight: int = 1) -> None:
        for _ in range(max(1, weight)):
            self._wait_pause()
            self._limiter.try_acquire(self.phone, weight=1)

    def pause(self, seconds: float) -> None:
        """Hold every worker's sends through this phone for ``seconds`` (at most max_pause)."""
        ms = int(min(max(seconds, 0.0), self.max_pause) * 1000)
        if ms > 0:
            # Keep the longest pause asked for: only extend, never shorten.
            current = self.redis.pttl(self._pause_key) or 0
            if ms > current:
                self.redis.set(self._pause_key, "1", px=ms)


def install_redis_limiters(bridge: Any, url: str, *, prefix: str = "smsbridge") -> None:
    """Give every phone of ``bridge`` that has a rate limit a Redis-shared limiter."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(url)
    for phone in bridge.phones.values():
        rate = phone.pacing_rate
        if rate:
            phone.limiter = RedisLimiter(client, phone.name, rate, prefix=prefix)
