"""Rate limits shared across threads and processes; pauses after a provider's 429."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from smsbridge import OutgoingMessage, RateLimited
from smsbridge.phone import TokenBucketLimiter
from smsbridge.phones.dummy import DummyPhone


def test_rate_limited_answer_pauses_every_thread_of_the_phone() -> None:
    class Throttled(DummyPhone):
        calls = 0

        def submit(self, message: Any) -> Any:
            type(self).calls += 1
            if type(self).calls == 1:
                raise RateLimited("slow down", retry_after=0.4)
            return super().submit(message)

    waited: list[float] = []

    def other_sender() -> None:  # another thread of the same phone, during the backoff
        start = time.monotonic()
        phone.limiter.acquire(1)  # type: ignore[union-attr]
        waited.append(time.monotonic() - start)

    other = threading.Thread(target=other_sender)
    phone = Throttled(
        "t", {"rate_limit": 1000, "retries": 1, "delivery": "none"}, sleep=lambda s: other.start()
    )
    assert isinstance(phone.limiter, TokenBucketLimiter)
    start = time.monotonic()
    phone.send(OutgoingMessage(to="+33612345678", body="first"))  # 429, then retried
    assert time.monotonic() - start >= 0.3  # the retry itself waited for the pause
    other.join(5)
    assert waited and waited[0] >= 0.3  # and so did the other thread


def test_redis_limiter_is_shared_between_processes(redis_url: str) -> None:
    from smsbridge.limits import RedisLimiter

    prefix = f"smsbridge-test-{uuid.uuid4().hex[:8]}"
    code = (
        "import sys, time; from smsbridge.limits import RedisLimiter\n"
        f"l = RedisLimiter.from_url({redis_url!r}, 'p', 20, prefix={prefix!r})\n"
        "for _ in range(10): l.acquire(1); print(time.time(), flush=True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    stamps = sorted(float(line) for p in procs for line in p.communicate(timeout=30)[0].split())
    assert len(stamps) == 30
    # 30 units at 20/s shared by three processes: never more than 20 in any one second.
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:] if u - t < 1.0)
        assert in_window <= 21, in_window  # 20 + one for clock granularity at the edge
    limiter = RedisLimiter.from_url(redis_url, "p", 20, prefix=prefix)
    limiter.redis.delete(f"{prefix}:limit:p")


def test_redis_pause_holds_every_worker(redis_url: str) -> None:
    from smsbridge.limits import RedisLimiter

    prefix = f"smsbridge-test-{uuid.uuid4().hex[:8]}"
    a = RedisLimiter.from_url(redis_url, "p", 1000, prefix=prefix)
    b = RedisLimiter.from_url(redis_url, "p", 1000, prefix=prefix)
    a.pause(0.5)
    a.pause(0.1)  # a shorter pause never shortens the longer one
    start = time.monotonic()
    b.acquire(1)
    assert time.monotonic() - start >= 0.35
    with pytest.raises(ValueError):
        RedisLimiter.from_url(redis_url, "p", 0)
