"""Celery scale-out with real components: ``celery worker`` subprocesses, a real broker
(Redis, RabbitMQ), a real store (SQLite, or PostgreSQL when SMSBRIDGE_TEST_POSTGRES_URL is
set) and a local HTTP provider that records every message it receives.

Each test judges what the *provider* saw: how many times each message arrived, and when.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import celery_support as cs

from smsbridge.message import utcnow

pytestmark = pytest.mark.services


def _need(get: Callable[[], str]) -> str:
    try:
        return get()
    except cs.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def provider() -> Iterator[cs.FakeProvider]:
    with cs.FakeProvider() as fake:
        yield fake


@pytest.fixture
def cluster(tmp_path: Path, provider: cs.FakeProvider) -> Iterator[Callable[..., cs.Cluster]]:
    made: list[cs.Cluster] = []
    with cs.plugin_site(tmp_path) as site, cs.store_url(tmp_path) as store:

        def make(broker: str = "redis", **kw: Any) -> cs.Cluster:
            redis = _need(cs.redis_broker)
            url = redis if broker == "redis" else _need(cs.amqp_broker)
            made.append(
                cs.Cluster(tmp_path, site, provider, broker=url, store=store, redis_url=redis, **kw)
            )
            return made[-1]

        try:
            yield make
        finally:
            for c in made:
                c.close()


def _to(i: int, prefix: str = "+336") -> str:
    return f"{prefix}{i:08d}"


def test_three_workers_share_one_phones_limit(cluster: Callable[..., cs.Cluster]) -> None:
    c = cluster(phones={"p": {"rate_limit": 10}})
    c.start("w1", "w2", "w3")
    ids = c.tasks.enqueue_many([{"to": _to(i), "body": f"m{i}"} for i in range(40)])
    statuses = c.wait_settled(ids, 40)
    assert set(statuses.values()) == {"queued"}
    hits = c.provider_hits("p")
    assert len(hits) == 40
    assert len({h.pid for h in hits}) == 3  # all three workers took part
    # 10/s shared by three processes: never more than 10 in a one-second window (+1 for
    # the window's closed edge, as in test_limits).
    assert cs.max_in_window([h.at for h in hits]) <= 11


def test_sigkill_mid_batch_sends_each_message_at_most_once(
    cluster: Callable[..., cs.Cluster],
) -> None:
    # RabbitMQ gives a killed worker's unacknowledged task straight back to another one.
    c = cluster("amqp", phones={"slow": {"provider": {"latency": 0.3}}})
    c.start("victim", "survivor")
    ids = c.tasks.enqueue_many([{"to": _to(i), "body": f"m{i}"} for i in range(24)])

    # Kill the victim while the provider holds one of its requests (an ambiguous send),
    # after it has sent a few.
    def victim_mid_send() -> bool:
        done = sum(c.workers.owns("victim", h.pid) for h in c.provider_hits("slow"))
        with c.provider.state.lock:
            holding = [
                p for p in c.provider.state.in_flight.values() if c.workers.owns("victim", p)
            ]
        return done >= 3 and bool(holding)

    cs.wait_until(victim_mid_send, 20, "the victim to be sending", every=0.01)
    victim_pids = {h.pid for h in c.provider_hits("slow") if c.workers.owns("victim", h.pid)}
    c.workers.kill("victim")
    statuses = c.wait_settled(ids, 40)
    counts = c.provider.sends_per_message()
    assert max(counts.values()) == 1, "a message reached the provider twice"
    for message_id, status in statuses.items():
        if counts.get(message_id):
            assert status in ("queued", "unknown"), (message_id, status)
        else:  # never reached the provider: it must have been sent by the survivor
            pytest.fail(f"{message_id} never sent ({status})")
    unknown = [m for m, s in statuses.items() if s == "unknown"]
    assert len(unknown) == 1  # the one the victim was sending (one process: one at a time)
    assert counts[unknown[0]] == 1  # it did reach the provider: resending would double it
    assert c.provider_hits("slow")[-1].pid not in victim_pids


def test_broker_redelivery_does_not_double_send(cluster: Callable[..., cs.Cluster]) -> None:
    # Redis re-delivers a task nobody acknowledged within visibility_timeout (1 s) while
    # the first worker is still sending it (2 s at the provider); every task is also
    # published three times. The store lets exactly one claim win.
    c = cluster(
        phones={"p": {"provider": {"latency": 2.0}}},
        queue={"visibility_timeout": 1, "lease": 5},
    )
    c.start("w1", "w2")
    ids = c.tasks.enqueue_many([{"to": _to(i), "body": f"m{i}"} for i in range(4)])
    for _ in range(2):
        for message_id in ids:
            c.tasks.dispatch(message_id, lane="p")
    statuses = c.wait_settled(ids, 40)
    assert set(statuses.values()) == {"queued"}
    counts = c.provider.sends_per_message()
    assert [counts.get(m) for m in ids] == [1, 1, 1, 1]
    time.sleep(2.5)  # the late copies run and find nothing to do
    assert [c.provider.sends_per_message().get(m) for m in ids] == [1, 1, 1, 1]
    logs = c.workers.log("w1") + c.workers.log("w2")
    assert logs.count("] received") >= 3 * len(ids)  # the copies were delivered, and ignored


def test_per_phone_queues_failover_and_schedule(
    cluster: Callable[..., cs.Cluster],
) -> None:
    c = cluster(
        phones={
            "down": {"provider": {"status": 503}},
            "backup": {},
            "slow": {"provider": {"latency": 1.5}},
            "fast": {},
        },
        routes=[
            {"match": {"prefixes": ["+33"]}, "phones": ["down", "backup"]},
            {"match": {"prefixes": ["+44"]}, "phones": ["slow"]},
            {"phones": ["fast"]},
        ],
    )
    # One worker per phone queue, as in production: the slow phone has its own.
    c.start(
        "w-down",
        "w-slow",
        "w-fast",
        queues={f"w-{q}": [c.tasks.queue_for(q)] for q in ("down", "slow", "fast")},
    )
    send_at = utcnow() + timedelta(seconds=3)
    scheduled = c.tasks.enqueue("+12025550999", "later", send_at=send_at)
    slow = c.tasks.enqueue_many([{"to": f"+4479111234{i:02d}", "body": "s"} for i in range(5)])
    french = c.tasks.enqueue_many([{"to": _to(i), "body": "f"} for i in range(5)])
    fast = c.tasks.enqueue_many([{"to": f"+12025550{i:03d}", "body": "x"} for i in range(5)])
    fast_done = c.wait_settled(fast, 20)
    assert set(fast_done.values()) == {"queued"}
    # The fast phone finished while the slow phone's backlog (7.5 s) was still going.
    assert "pending" in c.statuses(slow).values()
    statuses = c.wait_settled(french + slow, 30)
    assert set(statuses.values()) == {"queued"}
    for message_id in french:
        result = c.store.get_result(message_id)
        assert result.phone == "backup"
        assert [a.phone for a in result.attempts] == ["down", "backup"]
        assert result.attempts[0].error_type == "ProviderUnavailable"
    assert len(c.provider_hits("down", accepted=False)) == 5
    assert len(c.provider_hits("backup")) == 5
    # The scheduled message (an ETA task) went out once, not before its send_at.
    assert c.wait_settled([scheduled], 15) == {scheduled: "queued"}
    (hit,) = [h for h in c.provider_hits("fast") if h.message_id == scheduled]
    assert hit.at >= send_at.timestamp() - 0.05
