"""Rate limits shared across threads and processes; pauses after a provider's 429."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrate_limiter import AbstractClock

from smsbridge import OutgoingMessage, RateLimited
from smsbridge.limits import RedisLimiter
from smsbridge.phone import TokenBucketLimiter
from smsbridge.phones.dummy import DummyPhone

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The most stamps in any (t - 1 s, t]: the strictest provider throttle there is.
from celery_support import max_in_window


class SimTime(AbstractClock):
    """Simulated time for a limiter: its clock (pyrate's, in whole ms) and its sleep.

    Every sleep overshoots by ``lateness()`` seconds, as a real wake-up does (scheduler,
    a Redis round trip, a busy CPU).
    """

    def __init__(self, lateness: Any = lambda: 0.0) -> None:
        self.t = 1_000.0  # seconds
        self.lateness = lateness

    def now(self) -> int:
        return int(self.t * 1000)

    def sleep(self, seconds: float) -> None:
        self.t += seconds + self.lateness()


def test_a_late_unit_leaves_the_schedule_where_it_was() -> None:
    # 10/s: one unit every 100 ms. The second unit is taken 5 ms late.
    exact, tolerant = SimTime(), SimTime()
    strict = TokenBucketLimiter(10, clock=exact, sleep=exact.sleep)
    lenient = TokenBucketLimiter(10, tolerance=0.02, clock=tolerant, sleep=tolerant.sleep)
    waited = {}
    for sim, limiter in ((exact, strict), (tolerant, lenient)):
        limiter.acquire(1)
        sim.t += 0.105
        limiter.acquire(1)
        sim.t += 0.095  # the third unit's slot, on the original schedule
        start = sim.t
        limiter.acquire(1)
        waited[limiter] = sim.t - start
    assert waited[strict] == pytest.approx(0.005, abs=0.0015)
    assert waited[lenient] == 0
    assert lenient.tolerance == pytest.approx(0.02)
    assert strict.tolerance == 0


def test_without_tolerance_late_wakeups_are_lost_with_it_they_are_not() -> None:
    # Every wake-up 1 ms late, 50/s, one waiter always waiting, 10 simulated seconds.
    rates = {}
    for tolerance in (0.0, 0.01):
        sim = SimTime(lateness=lambda: 0.001)
        limiter = TokenBucketLimiter(50, tolerance=tolerance, clock=sim, sleep=sim.sleep)
        start = sim.t
        count = 0
        while sim.t - start < 10:
            limiter.acquire(1)
            count += 1
        rates[tolerance] = count / (sim.t - start)
    assert rates[0.0] < 48.0  # a 1 ms delay on a 20 ms interval: ~5 % lost
    assert rates[0.01] > 49.5


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=200),
    headroom=st.sampled_from([0.01, 0.02, 0.05, 0.1]),
    lateness_ms=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=50),
    idle_ms=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=20),
)
def test_paced_with_its_tolerance_a_phone_never_exceeds_a_strict_provider_window(
    limit: int, headroom: float, lateness_ms: list[int], idle_ms: list[int]
) -> None:
    """rate_limit paced at (1 - headroom) with Phone.pacing_tolerance: however late the
    wake-ups and however irregular the traffic (idle gaps, then catching up), no rolling
    second ever holds more than rate_limit units."""
    phone = DummyPhone("p", {"rate_limit": limit, "rate_headroom": headroom})
    late = iter(lateness_ms * 1000)
    sim = SimTime(lateness=lambda: next(late) / 1000)
    limiter = TokenBucketLimiter(
        phone.pacing_rate or 0, tolerance=phone.pacing_tolerance, clock=sim, sleep=sim.sleep
    )
    stamps: list[float] = []
    for i in range(min(6 * limit, 400)):
        if i % 7 == 3:
            sim.t += idle_ms[i % len(idle_ms)] / 1000
        limiter.acquire(1)
        stamps.append(sim.t)
    assert max_in_window(stamps) <= limit


def test_weights_count_units_and_bad_arguments_are_refused() -> None:
    sim = SimTime()
    limiter = TokenBucketLimiter(4, clock=sim, sleep=sim.sleep)  # 250 ms a unit
    limiter.acquire(3)  # a 3-segment message: 3 units
    assert sim.t - 1_000.0 == pytest.approx(0.5, abs=0.002)
    assert "4/s" in repr(limiter)
    with pytest.raises(ValueError):
        TokenBucketLimiter(0)
    with pytest.raises(ValueError):
        TokenBucketLimiter(5, tolerance=-1)


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
    assert max_in_window(stamps) <= 21  # 20 + one for clock granularity at the edge
    RedisLimiter.from_url(redis_url, "p", 20, prefix=prefix).reset()


def test_redis_limiter_is_fair_between_processes(redis_url: str) -> None:
    """Three processes competing for one phone's units for 3 s each get a fair share
    (pyrate-limiter's own blocking wait let one process take most units), and together
    never exceed the limit in any rolling second."""
    prefix = f"smsbridge-test-{uuid.uuid4().hex[:8]}"
    start_at = time.time() + 2.0  # after the three interpreters have started
    code = (
        "import time; from smsbridge.limits import RedisLimiter\n"
        f"l = RedisLimiter.from_url({redis_url!r}, 'p', 49, prefix={prefix!r}, "
        "tolerance=0.0102)\n"
        f"time.sleep(max(0, {start_at!r} - time.time()))\n"
        f"while time.time() < {start_at + 3.0!r}:\n"
        "    l.acquire(1); print(time.time(), flush=True); time.sleep(0.003)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    got = [[float(x) for x in p.communicate(timeout=60)[0].split()] for p in procs]
    total = sum(len(g) for g in got)
    assert total >= 100, got  # about 147 at 49/s: the test itself ran
    shares = [len(g) / total for g in got]
    assert min(shares) >= 0.15, shares  # a fair share is a third
    assert max_in_window(sorted(t for g in got for t in g)) <= 50 + 1  # +1: print jitter
    RedisLimiter.from_url(redis_url, "p", 49, prefix=prefix).reset()


def test_redis_pause_holds_every_worker(redis_url: str) -> None:

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
    a.reset()
    assert a.paused_for() == 0
