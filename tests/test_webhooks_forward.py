"""Event forwarding: signed JSON to local HTTP receivers (real HTTP on 127.0.0.1),
retries with backoff, a bounded queue, and the receiver-side signature check."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

import smsbridge
from smsbridge.config import ForwardTarget
from smsbridge.errors import WebhookAuthError
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.status import Status
from smsbridge.testing import FakeServer, free_port
from smsbridge.webhooks.forward import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Forwarder,
    sign,
    verify_signature,
)

HOOK_SECRET = "hook-secret-1"
FORWARD_SECRET = "forward-secret-XYZ"


class Receiver(BaseHTTPRequestHandler):
    """Records every POST; answers ``state['codes']`` in turn (then 200)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        gate: threading.Event | None = state.get("gate")
        if gate is not None:
            state["waiting"].set()
            gate.wait(10)
        with state["lock"]:
            state["got"].append({"body": body, "headers": dict(self.headers.items())})
            codes = state["codes"]
            code = codes.pop(0) if codes else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeServer]:
    with FakeServer(Receiver, {}) as server:
        yield server


@pytest.fixture
def receiver(_server: FakeServer) -> FakeServer:
    state = _server.state
    state.clear()
    state.update(got=[], codes=[], lock=threading.Lock(), waiting=threading.Event())
    return _server


def target(server: FakeServer | str, **kw: Any) -> ForwardTarget:
    url = server if isinstance(server, str) else server.url + "/events?key=abc"
    return ForwardTarget(url=url, secret=kw.pop("secret", FORWARD_SECRET), **kw)


def status_request(provider_id: str, status: str = "delivered") -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url=f"http://localhost/webhooks/dev/status?token={HOOK_SECRET}",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"provider_id": provider_id, "status": status}).encode(),
    )


def inbound_request(provider_id: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url=f"http://localhost/webhooks/dev/inbound?token={HOOK_SECRET}",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"from": "+2250701020304", "body": "Salut", "id": provider_id}).encode(),
    )


def bridge_with(forwarder: Forwarder) -> smsbridge.Bridge:
    from smsbridge.phones.dummy import DummyPhone

    bridge = smsbridge.Bridge({"dev": DummyPhone("dev", {"webhook_secret": HOOK_SECRET})})
    bridge.dispatcher.listeners.append(forwarder)
    return bridge


# ---------------------------------------------------------------------- happy path
def test_forward_from_config_signed_and_verifiable(
    receiver: FakeServer, bridge_factory: Any
) -> None:
    bridge = bridge_factory(f"""
phones:
  dev: {{plugin: dummy, webhook_secret: {HOOK_SECRET}}}
forward:
  - url: {receiver.url}/events
    secret: {FORWARD_SECRET}
""")
    forwarders = [x for x in bridge.dispatcher.listeners if isinstance(x, Forwarder)]
    assert len(forwarders) == 1
    assert bridge.handle_webhook("dev", "status", status_request("p-1")).status == 200
    assert bridge.handle_webhook("dev", "inbound", inbound_request("in-1")).status == 200
    assert forwarders[0].flush(10)
    got = receiver.state["got"]
    assert len(got) == 2
    for item in got:
        verify_signature(item["body"], item["headers"], FORWARD_SECRET)
        event = json.loads(item["body"])
        assert item["headers"][EVENT_HEADER] == event["type"]
        assert item["headers"][DELIVERY_HEADER] == event["id"]
        assert item["headers"]["Content-Type"] == "application/json"
    events = {e["type"]: e for e in (json.loads(g["body"]) for g in got)}  # any order
    status, inbound = events["status"], events["inbound"]
    assert status["type"] == "status"
    assert status["data"]["provider_id"] == "p-1"
    assert status["data"]["status"] == "delivered"
    assert status["data"]["phone"] == "dev"
    assert inbound["type"] == "inbound"
    assert inbound["data"]["sender"] == "+2250701020304"
    assert inbound["data"]["body"] == "Salut"
    assert "created_at" in status


def test_events_filter_and_unsigned_target(receiver: FakeServer) -> None:
    forwarder = Forwarder([target(receiver, secret=None, events=frozenset({"inbound"}))])
    bridge = bridge_with(forwarder)
    bridge.handle_webhook("dev", "status", status_request("p-1"))
    bridge.handle_webhook("dev", "inbound", inbound_request("in-1"))
    assert forwarder.flush(10)
    got = receiver.state["got"]
    assert [json.loads(g["body"])["type"] for g in got] == ["inbound"]
    assert SIGNATURE_HEADER not in got[0]["headers"]
    assert TIMESTAMP_HEADER in got[0]["headers"]
    bridge.close()


def test_duplicates_and_stale_reports_are_not_forwarded(receiver: FakeServer) -> None:
    forwarder = Forwarder([target(receiver)])
    bridge = bridge_with(forwarder)
    for status in ("delivered", "delivered", "sent"):
        assert bridge.handle_webhook("dev", "status", status_request("p-9", status)).status == 200
    assert forwarder.flush(10)
    assert [json.loads(g["body"])["data"]["status"] for g in receiver.state["got"]] == ["delivered"]
    bridge.close()


# ---------------------------------------------------------------------- retries
def test_retried_with_backoff_until_accepted(receiver: FakeServer) -> None:
    receiver.state["codes"] = [500, 503, 429]
    forwarder = Forwarder([target(receiver, retries=5)], backoff=0.01)
    bridge = bridge_with(forwarder)
    assert bridge.handle_webhook("dev", "status", status_request("p-r")).status == 200
    assert forwarder.flush(10)
    got = receiver.state["got"]
    assert len(got) == 4
    assert len({g["headers"][DELIVERY_HEADER] for g in got}) == 1  # one event, 4 attempts
    assert len({g["body"] for g in got}) == 1
    for g in got:
        verify_signature(g["body"], g["headers"], FORWARD_SECRET)
    stats = next(iter(forwarder.stats().values()))
    assert stats == {"delivered": 1, "retried": 3, "failed": 0, "dropped": 0, "pending": 0}
    bridge.close()


def test_gives_up_after_retries_and_logs_it(
    receiver: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.state["codes"] = [500] * 10
    forwarder = Forwarder([target(receiver, retries=2)], backoff=0.01)
    bridge = bridge_with(forwarder)
    assert bridge.handle_webhook("dev", "status", status_request("p-f")).status == 200
    assert forwarder.flush(10)
    assert len(receiver.state["got"]) == 3
    stats = next(iter(forwarder.stats().values()))
    assert stats["failed"] == 1 and stats["delivered"] == 0
    event_id = receiver.state["got"][0]["headers"][DELIVERY_HEADER]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(event_id in m and "not delivered after 3 attempt(s)" in m for m in errors)
    assert FORWARD_SECRET not in caplog.text
    assert "key=abc" not in caplog.text  # target URLs are logged without their query
    bridge.close()


def test_unreachable_target_never_fails_the_provider_callback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/events"
    forwarder = Forwarder([target(dead, retries=1)], backoff=0.01)
    bridge = bridge_with(forwarder)
    seen: list[StatusReport] = []
    bridge.on_status(seen.append)
    assert bridge.handle_webhook("dev", "status", status_request("p-d")).status == 200
    assert len(seen) == 1
    assert forwarder.flush(10)
    assert next(iter(forwarder.stats().values()))["failed"] == 1
    bridge.close()


def test_a_stuck_target_does_not_block_callbacks(receiver: FakeServer) -> None:
    gate = threading.Event()
    receiver.state["gate"] = gate
    forwarder = Forwarder([target(receiver)], queue_size=3)
    bridge = bridge_with(forwarder)
    try:
        # The first event is being delivered and the receiver holds it: the webhooks
        # still answer at once, and past the queue bound events are dropped, not waited on.
        assert bridge.handle_webhook("dev", "status", status_request("p-0")).status == 200
        assert receiver.state["waiting"].wait(5)
        codes = [
            bridge.handle_webhook("dev", "status", status_request(f"p-{i}")).status
            for i in range(1, 10)
        ]
        assert codes == [200] * 9
        stats = next(iter(forwarder.stats().values()))
        assert stats["dropped"] == 7  # 1 in flight + 2 queued fill the 3 slots
        assert stats["pending"] == 3
    finally:
        gate.set()
    assert forwarder.flush(10)
    assert len(receiver.state["got"]) == 3
    bridge.close()


def test_close_drains_the_queue(receiver: FakeServer) -> None:
    forwarder = Forwarder([target(receiver)], drain_timeout=10)
    for i in range(20):
        forwarder.status(StatusReport(provider_id=f"p-{i}", phone="dev", status=Status.sent))
    forwarder.close()
    assert len(receiver.state["got"]) == 20
    # after close, events are refused (and logged), never raised
    forwarder.inbound(
        IncomingMessage(phone="dev", sender="+33612345678", recipient=None, body="late")
    )
    assert next(iter(forwarder.stats().values()))["dropped"] == 1


def test_close_gives_pending_retries_one_last_try(receiver: FakeServer) -> None:
    receiver.state["codes"] = [500]
    forwarder = Forwarder([target(receiver, retries=3)], backoff=60, drain_timeout=5)
    forwarder.status(StatusReport(provider_id="p-late", phone="dev", status=Status.sent))
    deadline = time.monotonic() + 5
    # wait until the 500 was handled and the retry scheduled (not just received)
    while next(iter(forwarder.stats().values()))["retried"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(receiver.state["got"]) == 1
    forwarder.close()  # the retry is due in ~a minute: close sends it now
    assert len(receiver.state["got"]) == 2
    assert next(iter(forwarder.stats().values()))["delivered"] == 1


def test_repr_hides_secrets(receiver: FakeServer) -> None:
    forwarder = Forwarder([target(receiver)])
    assert FORWARD_SECRET not in repr(forwarder)
    assert FORWARD_SECRET not in repr(forwarder.targets)
    forwarder.close()


# ---------------------------------------------------------------------- verify_signature
def signed(body: bytes, secret: str = FORWARD_SECRET, at: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(body, secret, stamp)}


def test_verify_signature_accepts_the_real_thing() -> None:
    body = b'{"id":"1","type":"status"}'
    verify_signature(body, signed(body), FORWARD_SECRET)
    lower = {k.lower(): v for k, v in signed(body).items()}
    verify_signature(body, lower, FORWARD_SECRET)
    old = int(time.time()) - 1000
    verify_signature(body, signed(body, at=old), FORWARD_SECRET, tolerance=0)
    verify_signature(body, signed(body, at=old), FORWARD_SECRET, now=old + 10)


def test_verify_signature_accepts_any_of_several_signatures() -> None:
    body = b"{}"
    headers = signed(body)
    other = sign(body, "old-secret", headers[TIMESTAMP_HEADER])
    headers[SIGNATURE_HEADER] = f"{other}, {headers[SIGNATURE_HEADER]}"
    verify_signature(body, headers, FORWARD_SECRET)
    verify_signature(body, headers, "old-secret")


@pytest.mark.parametrize(
    "case", ["tampered", "wrong-secret", "old", "future", "no-ts", "no-sig", "bad-ts", "garbage"]
)
def test_verify_signature_refuses(case: str) -> None:
    body = b'{"id":"1"}'
    headers = signed(body)
    secret = FORWARD_SECRET
    if case == "tampered":
        body = b'{"id":"2"}'
    elif case == "wrong-secret":
        secret = "other"
    elif case == "old":
        headers = signed(body, at=int(time.time()) - 301)
    elif case == "future":
        headers = signed(body, at=int(time.time()) + 301)
    elif case == "no-ts":
        del headers[TIMESTAMP_HEADER]
    elif case == "no-sig":
        del headers[SIGNATURE_HEADER]
    elif case == "bad-ts":
        headers[TIMESTAMP_HEADER] = "yesterday"
    elif case == "garbage":
        headers[SIGNATURE_HEADER] = "v1=é"
    with pytest.raises(WebhookAuthError) as info:
        verify_signature(body, headers, secret)
    assert FORWARD_SECRET not in str(info.value)


def test_signature_binds_the_timestamp() -> None:
    body = b"{}"
    headers = signed(body)
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) - 1)  # replay, new stamp
    with pytest.raises(WebhookAuthError):
        verify_signature(body, headers, FORWARD_SECRET)
