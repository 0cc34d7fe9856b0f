"""The SQL store on SQLite and PostgreSQL: the send lifecycle, status reports, inbound."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smsbridge import (
    AmbiguousSend,
    Attempt,
    ConfigError,
    IncomingMessage,
    OutgoingMessage,
    ProviderUnavailable,
    SendResult,
    Status,
    StatusReport,
)
from smsbridge.clock import FakeClock
from smsbridge.store import MessageStore, OutboxStore, SqlStore, open_store

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import config_text  # noqa: E402

TO = "+2250701020304"


@pytest.fixture
def store(store_url: str) -> Any:
    s = open_store(store_url)
    yield s
    s.close()


def begin(store: SqlStore, message_id: str = "m1", **fields: Any) -> SendResult | None:
    message = OutgoingMessage(to=TO, body="hello", **fields)
    return store.begin_send(message_id, message, to=TO, segments=1, encoding="gsm7")


def finished(message_id: str = "m1", **kw: Any) -> SendResult:
    values: dict[str, Any] = {
        "message_id": message_id,
        "status": Status.queued,
        "phone": "p1",
        "provider_id": "pid-1",
        "to": TO,
        "segments": 1,
        "encoding": "gsm7",
    }
    values.update(kw)
    return SendResult(**values)


def report(status: Status, provider_id: str = "pid-1", **kw: Any) -> StatusReport:
    return StatusReport(provider_id=provider_id, phone="p1", status=status, **kw)


def test_store_implements_the_protocols(store: SqlStore) -> None:
    assert isinstance(store, MessageStore)
    assert isinstance(store, OutboxStore)
    assert "store" not in repr(store).lower() or "SqlStore" in repr(store)


def test_send_lifecycle_round_trip(store: SqlStore) -> None:
    assert begin(store, metadata={"order": 42}, tag="otp", sender="MonService") is None
    pending = store.get_result("m1")
    assert pending is not None and pending.status is Status.pending and pending.to == TO
    store.record_attempt("m1", Attempt(phone="p0", error="down", error_type="ProviderUnavailable"))
    store.record_attempt("m1", Attempt(phone="p1", retries=1))
    store.finish_send(finished(raw={"sid": "x"}))
    result = store.get_result("m1")
    assert result is not None
    assert (result.status, result.phone, result.provider_id) == (Status.queued, "p1", "pid-1")
    assert [a.phone for a in result.attempts] == ["p0", "p1"]
    assert result.attempts[0].error_type == "ProviderUnavailable"
    assert result.attempts[1].retries == 1
    assert result.attempts[0].at.tzinfo is not None
    assert result.raw == {"sid": "x"}
    stored = store.get_message("m1")
    assert stored is not None
    assert stored.metadata == {"order": 42} and stored.tag == "otp" and not stored.outbox
    assert [h.status for h in stored.history] == [Status.pending, Status.queued]
    assert store.get_result("nope") is None and store.get_message("nope") is None


def test_failed_send_keeps_its_error(store: SqlStore) -> None:
    begin(store)
    error = ProviderUnavailable("down", phone="p1", provider_code=503)
    store.finish_send(finished(status=Status.failed, provider_id=None, error=error))
    result = store.get_result("m1")
    assert result is not None and result.status is Status.failed
    assert isinstance(result.error, ProviderUnavailable)
    assert result.error.provider_code == "503" and result.error.phone == "p1"
    assert not result.ok


def test_idempotency_key_returns_the_first_message(store: SqlStore) -> None:
    assert begin(store, "first", idempotency_key="order-42") is None
    store.finish_send(finished("first"))
    again = begin(store, "second", idempotency_key="order-42")
    assert again is not None and again.message_id == "first" and again.status is Status.queued
    assert store.get_result("second") is None


def test_status_moves_forward_only_and_dedupes(store: SqlStore) -> None:
    begin(store)
    store.finish_send(finished())
    applied, fresh = store.apply_status(report(Status.sent, raw_status="DeliveredToNetwork"))
    assert fresh and applied.message_id == "m1"
    assert store.get_result("m1").status is Status.sent  # type: ignore[union-attr]
    _, fresh = store.apply_status(report(Status.delivered))
    assert fresh
    # a late 'sent' and a duplicate 'delivered' change nothing
    _, fresh = store.apply_status(report(Status.sent))
    assert not fresh
    _, fresh = store.apply_status(report(Status.delivered))
    assert not fresh
    _, fresh = store.apply_status(report(Status.failed))
    assert fresh  # recorded in the history...
    assert store.get_result("m1").status is Status.delivered  # type: ignore[union-attr]
    history = store.get_message("m1").history  # type: ignore[union-attr]
    assert [(h.status, h.source) for h in history] == [
        (Status.pending, "send"),
        (Status.queued, "send"),
        (Status.sent, "report"),
        (Status.delivered, "report"),
        (Status.failed, "report"),
    ]
    assert history[2].raw_status == "DeliveredToNetwork"


def test_unknown_is_replaced_by_progress_but_never_replaces_it(store: SqlStore) -> None:
    begin(store)
    store.finish_send(finished(status=Status.unknown, error=AmbiguousSend("timeout")))
    store.apply_status(report(Status.sent))
    assert store.get_result("m1").status is Status.sent  # type: ignore[union-attr]
    store.apply_status(report(Status.unknown))
    assert store.get_result("m1").status is Status.sent  # type: ignore[union-attr]


def test_report_before_the_send_was_recorded_is_applied_later(store: SqlStore) -> None:
    begin(store)
    early, fresh = store.apply_status(report(Status.delivered, at=datetime.now(UTC)))
    assert fresh and early.message_id is None
    store.finish_send(finished())
    result = store.get_result("m1")
    assert result is not None and result.status is Status.delivered
    statuses = [h.status for h in store.get_message("m1").history]  # type: ignore[union-attr]
    assert Status.delivered in statuses


def test_report_by_message_id_and_without_provider_id(store: SqlStore) -> None:
    begin(store)
    store.finish_send(finished())
    applied, fresh = store.apply_status(
        StatusReport(provider_id=None, phone="p1", status=Status.sent, message_id="m1")
    )
    assert fresh and applied.message_id == "m1"
    assert store.get_result("m1").status is Status.sent  # type: ignore[union-attr]


def test_incoming_is_stored_once(store: SqlStore) -> None:
    message = IncomingMessage(
        phone="p1",
        sender=TO,
        recipient="+2250700000000",
        body="Salut",
        provider_id="in-1",
        raw={"x": 1},
    )
    assert store.record_incoming(message)
    assert not store.record_incoming(replace(message, id="other-id"))
    without_id = IncomingMessage(phone="p1", sender=TO, recipient=None, body="a")
    assert store.record_incoming(without_id)
    assert not store.record_incoming(without_id)
    listed = store.list_incoming()
    assert {m.body for m in listed} == {"Salut", "a"}
    assert all(m.received_at.tzinfo is not None for m in listed)
    assert store.list_incoming(phone="nobody") == []


def test_listing_and_prefix_lookup(store: SqlStore) -> None:
    for n in range(3):
        begin(store, f"abcdef{n}", tag="t")
    store.finish_send(finished("abcdef1"))
    assert [m.message_id for m in store.list_outgoing()] == ["abcdef2", "abcdef1", "abcdef0"]
    assert [m.message_id for m in store.list_outgoing(status="queued")] == ["abcdef1"]
    assert [m.message_id for m in store.list_outgoing(phone="p1")] == ["abcdef1"]
    assert store.list_outgoing(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert store.list_outgoing(outbox=True) == []
    assert store.counts() == {"pending": 2, "queued": 1}
    assert store.find_ids("abcdef1") == ["abcdef1"]
    assert len(store.find_ids("abcdef")) == 2  # limited: ambiguous
    assert store.find_ids("abc%") == []  # LIKE wildcards are escaped


def test_delete_before(store: SqlStore) -> None:
    begin(store, "old")
    store.finish_send(finished("old"))
    store.apply_status(report(Status.delivered))
    begin(store, "still-pending")
    assert store.delete_before(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert store.get_result("old") is None and store.get_result("still-pending") is not None


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.apply_status(report(Status.sent, at=datetime(2026, 1, 1)))


def test_urls_and_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        open_store("mysql://u:p@localhost/db")
    with pytest.raises(ConfigError, match="SQLAlchemy URL"):
        open_store("not a url")
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert "x.db" in store.url
    store.close()
    memory = open_store("sqlite://")
    begin(memory)
    assert memory.get_result("m1") is not None
    memory.close()


def test_password_is_never_shown(pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    store = open_store(url)  # trust auth: the password is not checked
    assert "s3cret-pw" not in store.url and "s3cret-pw" not in repr(store)
    store.close()


def test_bridge_records_sends_and_webhook_reports(bridges: Any, store_url: str) -> None:
    """Through the real webhook path: the dummy phone's simulated provider callbacks."""
    bridge = bridges(config_text(store_url, "  dev: {plugin: dummy, delivery: none}\n"))
    seen: list[StatusReport] = []
    bridge.on_status(seen.append)
    result = bridge.send("0701020304", "Bonjour", tag="otp")
    assert bridge.store.get_result(result.message_id).status is Status.queued  # type: ignore[union-attr]
    phone = bridge.phone("dev")
    assert phone.simulate_status(result.provider_id, "delivered").status == 200  # type: ignore[attr-defined]
    assert phone.simulate_status(result.provider_id, "sent").status == 200  # type: ignore[attr-defined]
    assert phone.simulate_status(result.provider_id, "delivered").status == 200  # type: ignore[attr-defined]
    stored = bridge.store.get_message(result.message_id)  # type: ignore[union-attr]
    assert stored.status is Status.delivered  # never backwards to 'sent'
    assert [h.status for h in stored.history if h.source == "report"] == [
        Status.delivered,
        Status.sent,
    ]
    # the stale 'sent' is kept in the history, and callbacks never see it
    assert [r.status for r in seen] == [Status.delivered]
    assert all(r.message_id == result.message_id for r in seen)
    phone.simulate_inbound("0701020304", "Oui merci")  # type: ignore[attr-defined]
    assert [m.body for m in bridge.store.list_incoming()] == ["Oui merci"]  # type: ignore[union-attr]


def test_send_with_idempotency_key_sends_once(bridges: Any, store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "dev.jsonl"
    bridge = bridges(
        config_text(store_url, f"  dev: {{plugin: dummy, delivery: none, outbox_file: '{out}'}}\n")
    )
    first = bridge.send(TO, "Votre code: 1234", idempotency_key="otp-7")
    second = bridge.send(TO, "Votre code: 1234", idempotency_key="otp-7")
    assert second.message_id == first.message_id and second.provider_id == first.provider_id
    assert len(out.read_text().splitlines()) == 1


def test_template_slug_and_locale_are_stored_with_the_message(bridges: Any, store_url: str) -> None:
    """send_template's slug and locale land in the store (direct sends and the outbox)."""
    from smsbridge.templates import Template
    from smsbridge.worker import Worker

    bridge = bridges(config_text(store_url, "  dev:\n    plugin: dummy\n"))
    bridge.templates.add(Template("hello", {"fr": "Bonjour {{ name }}", "en": "Hello {{ name }}"}))
    result = bridge.send_template("+2250701020304", "hello", {"name": "Awa"}, locale="fr_CI")
    assert (result.template, result.locale) == ("hello", "fr")
    stored = bridge.store.get_message(result.message_id)
    assert (stored.template, stored.locale) == ("hello", "fr")
    assert bridge.store.get_result(result.message_id).template == "hello"
    plain = bridge.send("+2250701020304", "no template")
    assert bridge.store.get_message(plain.message_id).template is None

    queued = bridge.enqueue("+2250701020304", "Hello Awa", template="hello", locale="en")
    Worker(bridge).run(once=True)
    done = bridge.store.get_result(queued)
    assert done.status.value == "queued" and (done.template, done.locale) == ("hello", "en")


def test_delete_before_by_status_and_dry_run(store: SqlStore) -> None:
    clock = store.clock = FakeClock(datetime.now(UTC))
    message = OutgoingMessage(to=TO, body="x")
    for message_id, status in (
        ("d1", Status.delivered),
        ("f1", Status.failed),
        ("q1", Status.queued),
    ):
        store.begin_send(message_id, message, to=TO, segments=1, encoding="gsm7")
        store.finish_send(finished(message_id, status=status, provider_id=f"p-{message_id}"))
    store.begin_send("p1", message, to=TO, segments=1, encoding="gsm7")  # stays pending
    clock.advance(3600)
    cutoff = clock()
    dry = store.delete_before(cutoff, statuses=["delivered"], dry_run=True)
    assert dry == 1 and dry.tables["outgoing"] == 1 and dry.tables["incoming"] == 0
    assert dry.tables["history"] >= 1 and store.get_result("d1") is not None  # nothing gone
    done = store.delete_before(cutoff, statuses=[Status.delivered, Status.failed])
    assert done == 2 and store.get_result("d1") is None and store.get_result("f1") is None
    assert store.get_message("d1") is None
    assert store.get_result("q1") is not None and store.get_result("p1") is not None
    with pytest.raises(ValueError, match="never purged"):
        store.delete_before(cutoff, statuses=["pending"])
    assert store.delete_before(cutoff) == 1  # q1 (queued); the pending one stays
    assert store.get_result("p1").status is Status.pending  # type: ignore[union-attr]
