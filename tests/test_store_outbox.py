"""The store's outbox primitives: claims, leases, fencing tokens, lost workers."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smsbridge import OutgoingMessage, SendResult, Status
from smsbridge.clock import FakeClock
from smsbridge.store import OutboxEntry, SqlStore, open_store

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges

TO = "+2250701020304"


@pytest.fixture
def store(store_url: str) -> Any:
    s = open_store(store_url)
    yield s
    s.close()


def put(store: SqlStore, *ids: str, lane: str = "a", **fields: Any) -> list[str]:
    entries = [
        OutboxEntry(
            message_id=i,
            message=OutgoingMessage(to=TO, body=f"body {i}", **fields),
            to=TO,
            lane=lane,
            segments=1,
            encoding="gsm7",
        )
        for i in ids
    ]
    return store.enqueue(entries)


def done(store: SqlStore, message_id: str) -> None:
    store.finish_send(
        SendResult(
            message_id=message_id,
            status=Status.queued,
            phone="a",
            provider_id="pid-" + message_id,
            to=TO,
            segments=1,
            encoding="gsm7",
        )
    )


def test_claims_are_oldest_first_per_lane(store: SqlStore) -> None:
    put(store, "a1", "a2", "a3")
    put(store, "b1", lane="b")
    first = store.claim("w", lanes=["a"], limit=2)
    assert [c.message_id for c in first] == ["a1", "a2"]
    assert first[0].message.body == "body a1" and first[0].lane == "a" and first[0].claims == 1
    assert first[0].token and first[0].token == first[1].token
    assert [c.message_id for c in store.claim("w", lanes=["a"], limit=5)] == ["a3"]
    assert store.claim("w", lanes=["a"]) == []
    assert [c.message_id for c in store.claim("w", exclude_lanes=["a"])] == ["b1"]


def test_scheduled_messages_are_not_claimed_before_due(store: SqlStore) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    put(store, "later", send_at=soon)
    assert store.claim("w") == []
    assert store.next_due() == soon
    claimed = store.claim("w", now=soon + timedelta(seconds=1))
    assert [c.message_id for c in claimed] == ["later"] and claimed[0].message.send_at == soon


def test_leases_fencing_and_release(store: SqlStore) -> None:
    put(store, "m1", "m2")
    c1, _ = store.claim("w1", limit=2, lease=60)
    assert store.claim("w2") == []  # held
    assert store.renew("w1", lease=60) == 2
    assert store.release("w1", ["m2"]) == 1
    assert [c.message_id for c in store.claim("w2")] == ["m2"]
    # w1's lease on m1 runs out and w3 takes it: w1's old claim can no longer send
    later = datetime.now(UTC) + timedelta(seconds=61)
    [again] = store.claim("w3", now=later, limit=1)
    assert again.message_id == "m1" and again.claims == 2 and again.token != c1.token
    assert not store.mark_sending("m1", "w1", token=c1.token)
    assert store.mark_sending("m1", "w3", token=again.token)
    assert store.release("w3") == 0  # never gives back a message being sent
    assert store.lost_claims() == []  # its lease is still running
    done(store, "m1")
    assert store.get_message("m1").claimed_by is None  # type: ignore[union-attr]


def test_lost_in_flight_messages(store: SqlStore) -> None:
    clock = store.clock = FakeClock(datetime.now(UTC))
    put(store, "m1", "m2")
    for c in store.claim("dead", limit=2, lease=0.05):
        assert store.mark_sending(c.message_id, "dead", token=c.token, lease=0.05)
    clock.advance(0.1)
    assert store.claim("w") == []  # in flight: never claimed again blindly
    lost = store.lost_claims()
    assert [c.message_id for c in lost] == ["m1", "m2"] and lost[0].claimed_by == "dead"
    assert store.resolve_lost(lost[0], resend=False)
    assert not store.resolve_lost(lost[0], resend=False)  # settled already
    assert store.get_result("m1").status is Status.unknown  # type: ignore[union-attr]
    assert store.resolve_lost(lost[1], resend=True)
    assert [c.message_id for c in store.claim("w")] == ["m2"]


def test_claim_one_states(store: SqlStore) -> None:
    clock = store.clock = FakeClock(datetime.now(UTC))
    assert store.claim_one("nope", owner="w").state == "missing"
    put(store, "m1", "m2", "m3")
    put(store, "later", send_at=clock() + timedelta(minutes=1))
    got = store.claim_one("m1", owner="w", lease=30)
    assert got.state == "claimed" and got.message is not None and got.claimed is not None
    busy = store.claim_one("m1", owner="w2")
    assert busy.state == "busy" and busy.retry_in == 30  # the clock did not move
    not_due = store.claim_one("later", owner="w")
    assert not_due.state == "not_due" and not_due.retry_in == 60
    done(store, "m1")
    assert store.claim_one("m1", owner="w").state == "done"
    # a direct send() is not an outbox message
    store.begin_send("direct", OutgoingMessage(to=TO, body="x"), to=TO, segments=1, encoding="gsm7")
    assert store.claim_one("direct", owner="w").state == "missing"
    # owners that died while sending: unknown, or claimed again if resending is allowed
    for message_id in ("m2", "m3"):
        claimed = store.claim_one(message_id, owner="dead", lease=0.05).claimed
        assert claimed is not None
        store.mark_sending(message_id, "dead", token=claimed.token, lease=0.05)
    clock.advance(0.1)
    lost = store.claim_one("m2", owner="w")
    assert lost.state == "done" and lost.status == "unknown"
    assert store.claim_one("m3", owner="w", resend_ambiguous=True).state == "claimed"


def test_pending_ids(store: SqlStore) -> None:
    put(store, "m1", "m2")
    put(store, "later", send_at=datetime.now(UTC) + timedelta(minutes=1))
    assert store.pending_ids() == ["m1", "m2"]
    assert store.pending_ids(older_than=60) == []
    store.claim("w", limit=1)
    assert store.pending_ids() == ["m2"]


def test_polling_queue(store: SqlStore) -> None:
    put(store, "m1", "m2", "m3")
    for message_id in ("m1", "m2"):
        done(store, message_id)
    assert store.to_poll("a") == [("m1", "pid-m1"), ("m2", "pid-m2")]
    store.mark_polled(["m1"])
    assert store.to_poll("a") == [("m2", "pid-m2"), ("m1", "pid-m1")]
    store.mark_polled([])
    assert store.to_poll("other") == []


def test_concurrent_claimers_never_share_a_message(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(2)]
    put(stores[0], *[f"m{n:03}" for n in range(300)])
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(store: SqlStore, name: str) -> None:
        while claimed := store.claim(name, limit=7):
            with lock:
                taken.extend(c.message_id for c in claimed)

    threads = [threading.Thread(target=claimer, args=(stores[n % 2], f"w{n}")) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert len(taken) == 300 and len(set(taken)) == 300
