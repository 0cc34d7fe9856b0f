"""The embedded worker in process: draining, failover, outcomes, schedules, recovery."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import update

from smsbridge import (
    Bridge,
    Capabilities,
    ConfigError,
    IncomingMessage,
    OutgoingMessage,
    PreparedMessage,
    Status,
    StatusReport,
    Submission,
)
from smsbridge.clock import FakeClock
from smsbridge.phones.dummy import DummyPhone
from smsbridge.store import open_store
from smsbridge.store.schema import outgoing
from smsbridge.worker import Worker

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import config_text, wait_for  # noqa: E402

TO = "+2250701020304"

TWO = """\
  first: {{plugin: dummy, retries: 0, delivery: none{first}}}
  second: {{plugin: dummy, retries: 0, delivery: none}}
"""
ROUTE = """\
  - phones: [first, second]{extra}
"""


def two(bridges: Any, store_url: str, first: str = "", extra: str = "") -> Bridge:
    return bridges(config_text(store_url, TWO.format(first=first), ROUTE.format(extra=extra)))  # type: ignore[no-any-return]


def sent(bridge: Bridge, name: str) -> list[str]:
    return [r["message_id"] for r in bridge.phone(name).sent]  # type: ignore[attr-defined]


def status(bridge: Bridge, message_id: str) -> Status:
    result = bridge.store.get_result(message_id)  # type: ignore[union-attr]
    assert result is not None
    return result.status


def run_in_thread(worker: Worker) -> Callable[[], None]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()

    def stop() -> None:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()

    return stop


def test_worker_drains_the_outbox_once(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url)
    ids = bridge.enqueue_many([{"to": TO, "body": f"hello {n}"} for n in range(30)])
    stats = Worker(bridge, threads_per_phone=2).run(once=True)
    assert stats.sent == 30 and stats.processed == 30
    assert sorted(sent(bridge, "first")) == sorted(ids)
    assert all(status(bridge, i) is Status.queued for i in ids)
    result = bridge.store.get_result(ids[0])  # type: ignore[union-attr]
    assert result is not None and result.provider_id and result.phone == "first"
    assert Worker(bridge).run(once=True).processed == 0  # nothing sent twice


def test_failover_and_outcomes(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url, first=", fail_for: ['+2250701020305']")
    ok, moved = bridge.enqueue_many([{"to": TO, "body": "a"}, {"to": TO[:-1] + "5", "body": "b"}])
    Worker(bridge).run(once=True)
    assert sent(bridge, "first") == [ok] and sent(bridge, "second") == [moved]
    result = bridge.store.get_result(moved)  # type: ignore[union-attr]
    assert result is not None and [a.phone for a in result.attempts] == ["first", "second"]
    assert result.attempts[0].error_type == "ProviderUnavailable"


@pytest.mark.parametrize(
    ("error", "expected"), [("Rejected", Status.failed), ("AmbiguousSend", Status.unknown)]
)
def test_errors_that_do_not_fail_over(
    bridges: Any, store_url: str, error: str, expected: Status
) -> None:
    bridge = two(bridges, store_url, first=f", fail_all: true, error: {error}")
    message_id = bridge.enqueue(TO, "x")
    stats = Worker(bridge).run(once=True)
    assert status(bridge, message_id) is expected
    assert sent(bridge, "second") == []  # no failover, and an ambiguous send is not resent
    assert stats.failed + stats.unknown == 1
    assert Worker(bridge).run(once=True).processed == 0


def test_ambiguous_send_fails_over_when_the_route_allows(bridges: Any, store_url: str) -> None:
    bridge = two(
        bridges,
        store_url,
        first=", fail_all: true, error: AmbiguousSend",
        extra="\n    resend_ambiguous: true",
    )
    message_id = bridge.enqueue(TO, "x")
    Worker(bridge).run(once=True)
    assert sent(bridge, "second") == [message_id] and status(bridge, message_id) is Status.queued


def test_scheduled_messages_wait_until_due(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url)
    later = bridge.enqueue(TO, "later", send_at=datetime.now(UTC) + timedelta(hours=1))
    assert Worker(bridge).run(once=True).processed == 0
    assert status(bridge, later) is Status.pending and sent(bridge, "first") == []
    assert bridge.store.next_due() is not None  # type: ignore[union-attr]

    due_at = datetime.now(UTC) + timedelta(seconds=0.8)
    soon = bridge.enqueue(TO, "soon", send_at=due_at)
    now = bridge.enqueue(TO, "now")
    stop = run_in_thread(Worker(bridge, idle_interval=0.05))
    try:
        wait_for(lambda: sent(bridge, "first") == [now])
        assert status(bridge, soon) is Status.pending
        wait_for(lambda: soon in sent(bridge, "first"))
    finally:
        stop()
    stored = bridge.store.get_message(soon)  # type: ignore[union-attr]
    handed = [h.at for h in stored.history if h.status is Status.queued]
    assert handed and handed[0] >= due_at
    assert status(bridge, later) is Status.pending


def _dead_worker_claims(bridge: Bridge, *, in_flight: int, idle: int) -> list[str]:
    store: Any = bridge.store
    clock = store.clock = FakeClock(datetime.now(UTC))
    ids = bridge.enqueue_many([{"to": TO, "body": f"m{n}"} for n in range(in_flight + idle)])
    claimed = store.claim("dead-worker", limit=in_flight + idle, lease=0.2)
    assert [c.message_id for c in claimed] == ids
    for message_id in ids[:in_flight]:
        assert store.mark_sending(message_id, "dead-worker", lease=0.2)
    clock.advance(0.3)  # the dead worker's lease runs out
    return list(ids)


def test_a_lost_workers_messages_are_recovered(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url)
    ids = _dead_worker_claims(bridge, in_flight=2, idle=3)
    stats = Worker(bridge).run(once=True)
    # claimed but never handed over: sent now; handed over: may have gone out -> unknown
    assert sorted(sent(bridge, "first")) == sorted(ids[2:])
    assert [status(bridge, i) for i in ids[:2]] == [Status.unknown, Status.unknown]
    assert stats.lost_unknown == 2 and stats.sent == 3
    history = bridge.store.get_message(ids[0]).history  # type: ignore[union-attr]
    assert history[-1].source == "worker" and history[-1].status is Status.unknown
    result = bridge.store.get_result(ids[0])  # type: ignore[union-attr]
    assert type(result.error).__name__ == "AmbiguousSend"  # type: ignore[union-attr]


def test_lost_in_flight_messages_are_resent_when_the_route_allows(
    bridges: Any, store_url: str
) -> None:
    bridge = two(bridges, store_url, extra="\n    resend_ambiguous: true")
    ids = _dead_worker_claims(bridge, in_flight=1, idle=1)
    stats = Worker(bridge).run(once=True)
    assert sorted(sent(bridge, "first")) == sorted(ids)
    assert stats.lost_requeued == 1


def test_a_worker_that_lost_its_claim_does_not_send(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url)
    store: Any = bridge.store
    message_id = bridge.enqueue(TO, "x")
    worker = Worker(bridge)
    [item] = store.claim(worker.worker_id, limit=1)
    with store.engine.begin() as conn:  # the lease expired and another worker took it
        conn.execute(update(outgoing).values(claimed_by="someone-else"))
    worker.process(item)
    assert sent(bridge, "first") == [] and worker.stats.claims_lost == 1
    assert status(bridge, message_id) is Status.pending


def test_stop_finishes_the_message_in_flight(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url, first=", latency: 0.3")
    ids = bridge.enqueue_many([{"to": TO, "body": f"m{n}"} for n in range(20)])
    worker = Worker(bridge, threads_per_phone=2, idle_interval=0.05)
    stop = run_in_thread(worker)
    wait_for(lambda: bridge.store.lost_claims(now=datetime.now(UTC) + timedelta(hours=1)))  # type: ignore[union-attr]
    stop()
    store: Any = bridge.store
    done = sent(bridge, "first")
    assert 1 <= len(done) < 20
    assert all(status(bridge, i) is Status.queued for i in done)
    assert all(status(bridge, i) is Status.pending for i in set(ids) - set(done))
    assert store.lost_claims(now=datetime.now(UTC) + timedelta(hours=1)) == []  # none in flight
    assert all(m.claimed_by is None for m in store.list_outgoing(status="pending"))
    assert worker.stats.released > 0
    # the next worker sends the rest, and nothing twice
    Worker(bridge).run(once=True)
    assert sorted(sent(bridge, "first")) == sorted(ids)


def test_two_workers_in_one_process_never_send_twice(bridges: Any, store_url: str) -> None:
    text = config_text(store_url, "  dev: {plugin: dummy, delivery: none, latency: 0.002}\n")
    one, other = bridges(text), bridges(text)
    ids = one.enqueue_many([{"to": TO, "body": f"m{n}"} for n in range(120)])
    workers = [
        Worker(one, threads_per_phone=3, batch_size=3),
        Worker(other, threads_per_phone=3, batch_size=3),
    ]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    both = sent(one, "dev") + sent(other, "dev")
    assert sorted(both) == sorted(ids)


def test_messages_of_a_phone_that_left_the_config(
    bridges: Any, store_url: str, tmp_path: Path
) -> None:
    before = bridges(
        config_text(store_url, "  old: {plugin: dummy}\n  new: {plugin: dummy, delivery: none}\n")
    )
    rerouted = before.enqueue(TO, "x")  # lane: old
    pinned = before.enqueue(TO, "y", phone="old")
    after = bridges(config_text(store_url, "  new: {plugin: dummy, delivery: none}\n"))
    stats = Worker(after).run(once=True)
    assert sent(after, "new") == [rerouted]
    assert status(after, pinned) is Status.failed  # its phone is gone: RoutingError
    assert stats.sent == 1 and stats.failed == 1


class _Broken(DummyPhone):
    def submit(self, message: PreparedMessage) -> Submission:
        raise RuntimeError("plugin bug after the request went out")


def test_an_unexpected_error_after_the_hand_over_is_unknown(store_url: str) -> None:
    bridge = Bridge({"p": _Broken("p", {"delivery": "none"})}, store=open_store(store_url))
    try:
        message_id = bridge.enqueue(TO, "x")
        stats = Worker(bridge).run(once=True)
        assert status(bridge, message_id) is Status.unknown and stats.unknown == 1
    finally:
        bridge.close()


class _Poller(DummyPhone):
    capabilities: ClassVar[Capabilities] = DummyPhone.capabilities.replace(
        receive_mode="poll", status_mode="poll"
    )

    def fetch_incoming(
        self, handle: Callable[[IncomingMessage], None] | None = None
    ) -> list[IncomingMessage]:
        message = IncomingMessage(
            phone=self.name, sender=TO, recipient=None, body="polled", provider_id="in-1"
        )
        if handle is not None:
            handle(message)
        return [message]

    def fetch_status(self, provider_id: str) -> StatusReport:
        return StatusReport(
            provider_id=provider_id, phone=self.name, status=Status.delivered, raw_status="4"
        )


def test_polling_phones_are_polled(store_url: str) -> None:
    bridge = Bridge({"p": _Poller("p", {"delivery": "none"})}, store=open_store(store_url))
    try:
        message_id = bridge.enqueue(TO, "x")
        stats = Worker(bridge).run(once=True)
        assert stats.sent == 1 and stats.polled_inbound == 1 and stats.polled_status == 1
        assert status(bridge, message_id) is Status.delivered
        assert [m.body for m in bridge.store.list_incoming()] == ["polled"]  # type: ignore[union-attr]
        # continuous mode polls on its interval
        stop = run_in_thread(Worker(bridge, poll_interval=0.05, idle_interval=0.05))
        try:
            wait_for(lambda: bridge.store.counts() == {"delivered": 1})  # type: ignore[union-attr]
        finally:
            stop()
    finally:
        bridge.close()


def test_worker_arguments(bridges: Any, store_url: str) -> None:
    with pytest.raises(ConfigError, match="store"):
        Worker(bridges("phones:\n  dev: {plugin: dummy}\n"))
    with pytest.raises(ValueError):
        Worker(two(bridges, store_url), lease=0)
    worker = Worker(bridges(config_text(store_url, "  p: {plugin: dummy, rate_limit: 10}\n")))
    phone = worker.bridge.phone("p")
    assert worker._threads_for(phone) == 2 and worker._batch_for(phone) == 10  # ~2 s of work


def test_send_is_untouched_while_a_worker_runs(bridges: Any, store_url: str) -> None:
    bridge = two(bridges, store_url)
    stop = run_in_thread(Worker(bridge, idle_interval=0.05))
    try:
        result = bridge.send_message(OutgoingMessage(to=TO, body="direct"))
        assert status(bridge, result.message_id) is Status.queued
    finally:
        stop()
    assert bridge.phone("first").limiter is None  # the worker's wrappers are gone


def test_sigterm_handler_stops_the_worker(bridges: Any, tmp_path: Path) -> None:
    import os
    import signal

    bridge = bridges(config_text(f"sqlite:///{tmp_path / 's.db'}", "  p: {plugin: dummy}\n"))
    worker = Worker(bridge, idle_interval=0.05)
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        worker.install_signal_handlers()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: worker.stopping)
        thread.join(30)
        assert not thread.is_alive()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second one kills
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])
