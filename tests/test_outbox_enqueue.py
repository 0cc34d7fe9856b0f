"""Bridge.enqueue / enqueue_many: validation up front, storage, idempotency."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smsbridge import (
    ConfigError,
    InvalidRecipient,
    MessageError,
    MessageTooLong,
    OutgoingMessage,
    RoutingError,
    Status,
    UnsupportedFeature,
)

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import config_text  # noqa: E402

PHONES = """\
  ci: {plugin: dummy, countries: [CI], max_segments: 2, delivery: none}
  world: {plugin: dummy, delivery: none}
"""
ROUTES = """\
  - match: {countries: [CI]}
    phones: [ci, world]
  - match: {tags: [nowhere]}
    phones: [ci]
  - phones: [world]
"""


@pytest.fixture
def bridge(bridges: Any, store_url: str) -> Any:
    return bridges(config_text(store_url, PHONES, ROUTES))


def test_enqueue_stores_pending_with_its_lane(bridge: Any) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    ci = bridge.enqueue("07 01 02 03 04", "Bonjour", tag="otp", metadata={"user": 7})
    fr = bridge.enqueue("+33612345678", "Bonjour", send_at=when, sender="MonService")
    store = bridge.store
    first, second = store.get_message(ci), store.get_message(fr)
    assert first.status is Status.pending and first.outbox and first.to == "+2250701020304"
    assert first.lane == "ci" and first.tag == "otp" and first.metadata == {"user": 7}
    assert second.lane == "world" and second.send_at == when and second.sender == "MonService"
    assert [m.message_id for m in store.list_outgoing(outbox=True, status="pending")] == [fr, ci]
    assert [h.source for h in first.history] == ["enqueue"]


@pytest.mark.parametrize(
    ("to", "body", "fields", "error"),
    [
        ("12", "x", {}, InvalidRecipient),
        ("+2250701020304", "   ", {}, MessageError),
        ("+33612345678", "x", {"tag": "nowhere"}, RoutingError),
        ("+2250701020304", "x" * 1000, {"phone": "ci"}, MessageTooLong),
        ("+2250701020304", "x", {"phone": "nope"}, RoutingError),
        ("+2250701020304", "x", {"send_at": datetime(2030, 1, 1)}, MessageError),
    ],
)
def test_bad_messages_raise_at_enqueue_time(
    bridge: Any, to: str, body: str, fields: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        bridge.enqueue(to, body, **fields)
    assert bridge.store.counts() == {}


def test_enqueue_many_is_all_or_nothing(bridge: Any) -> None:
    good = {"to": "+2250701020304", "body": "ok"}
    with pytest.raises(InvalidRecipient) as info:
        bridge.enqueue_many([good, good, {"to": "123", "body": "bad"}])
    assert info.value.index == 2  # type: ignore[attr-defined]
    assert bridge.store.counts() == {}
    with pytest.raises(TypeError):
        bridge.enqueue_many([{"to": "+2250701020304", "body": "x", "colour": "red"}])
    ids = bridge.enqueue_many([good, OutgoingMessage(to="+33612345678", body="two")])
    assert len(set(ids)) == 2 and bridge.store.counts() == {"pending": 2}
    assert bridge.enqueue_many([]) == []


def test_idempotency_keys_in_and_across_batches(bridge: Any) -> None:
    first = bridge.enqueue("+2250701020304", "a", idempotency_key="k1")
    ids = bridge.enqueue_many(
        [
            {"to": "+2250701020304", "body": "b", "idempotency_key": "k2"},
            {"to": "+2250701020304", "body": "c", "idempotency_key": "k1"},
            {"to": "+2250701020304", "body": "d", "idempotency_key": "k2"},
            {"to": "+2250701020304", "body": "e"},
        ]
    )
    assert ids[1] == first and ids[0] == ids[2] and ids[3] not in (first, ids[0])
    assert bridge.store.counts() == {"pending": 3}
    assert bridge.store.get_message(ids[0]).body == "b"
    # send() with a key already enqueued does not send a second SMS
    result = bridge.send("+2250701020304", "a", idempotency_key="k1")
    assert result.message_id == first and result.status is Status.pending


def test_enqueue_needs_a_store(bridges: Any) -> None:
    bridge = bridges("phones:\n  dev: {plugin: dummy}\n")
    with pytest.raises(ConfigError, match="store"):
        bridge.enqueue("+2250701020304", "x")


def test_unsupported_feature_is_refused_at_enqueue(bridges: Any, store_url: str) -> None:
    from smsbridge import Bridge, Capabilities
    from smsbridge.phones.dummy import DummyPhone
    from smsbridge.store import open_store

    class NoMms(DummyPhone):
        capabilities = Capabilities(send=True, unicode=True, long_messages=True, max_segments=5)

    bridge = Bridge({"p": NoMms("p", {"delivery": "none"})}, store=open_store(store_url))
    try:
        with pytest.raises((UnsupportedFeature, RoutingError)):
            bridge.enqueue("+2250701020304", "x", media=("https://example.org/a.png",))
    finally:
        bridge.close()
