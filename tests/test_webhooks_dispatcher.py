"""The dispatcher's semantics: store, dedupe (also under concurrency and across a
store), status order, listeners, and failures that must never become a 500 loop."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.errors import WebhookAuthError, WebhookError, WebhookParseError
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.phones.dummy import DummyPhone
from smsbridge.status import Status

SECRET = "dispatch-secret-1"


def req(
    kind: str, payload: Any, token: str | None = SECRET, method: str = "POST"
) -> WebhookRequest:
    query = f"?token={token}" if token else ""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return WebhookRequest(
        method=method,
        url=f"http://localhost/webhooks/dev/{kind}{query}",
        headers={"Content-Type": "application/json"},
        body=body,
        remote_addr="127.0.0.1",
    )


def yaml_for(store: str | None = None, delivery: str = "none") -> str:
    text = f"""
phones:
  dev:
    plugin: dummy
    webhook_secret: {SECRET}
    delivery: {delivery}
"""
    if store:
        text = f"store: {store}\n" + text
    return text


def open_store_or_skip() -> None:
    try:
        from smsbridge.store import open_store  # noqa: F401
    except ImportError as exc:  # the store is being written alongside
        pytest.skip(f"smsbridge.store is not available: {exc}")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    open_store_or_skip()
    return f"sqlite:///{(tmp_path / 'hooks.db').as_posix()}"


# ---------------------------------------------------------------------- with a store
def test_out_of_order_with_store_is_in_history_but_not_current(
    bridge_factory: Any, store_url: str
) -> None:
    bridge = bridge_factory(yaml_for(store_url))
    seen: list[Status] = []
    bridge.on_status(lambda r: seen.append(r.status))
    result = bridge.send("+2250701020304", "Bonjour", phone="dev")
    pid = result.provider_id
    for status in ("delivered", "sent", "queued"):
        response = bridge.handle_webhook(
            "dev", "status", req("status", {"provider_id": pid, "status": status})
        )
        assert response.status == 200
    assert seen == [Status.delivered]
    assert bridge.store is not None
    assert bridge.store.get_result(result.message_id).status is Status.delivered
    get_message = getattr(bridge.store, "get_message", None)
    if get_message is not None:
        stored = get_message(result.message_id)
        reported = [h.status for h in stored.history if h.source == "report"]
        assert reported == [Status.delivered, Status.sent, Status.queued]


def test_report_carries_the_message_id_from_the_store(bridge_factory: Any, store_url: str) -> None:
    bridge = bridge_factory(yaml_for(store_url))
    seen: list[StatusReport] = []
    bridge.on_status(seen.append)
    result = bridge.send("+2250701020304", "Bonjour", phone="dev")
    bridge.handle_webhook(
        "dev", "status", req("status", {"provider_id": result.provider_id, "status": "sent"})
    )
    assert [r.message_id for r in seen] == [result.message_id]


def test_duplicates_with_store_apply_once_and_retry_after_500(
    bridge_factory: Any, store_url: str
) -> None:
    bridge = bridge_factory(yaml_for(store_url))
    calls: list[str] = []

    def flaky(report: StatusReport) -> None:
        calls.append(report.status.value)
        if len(calls) == 1:
            raise RuntimeError("boom")

    bridge.on_status(flaky)
    result = bridge.send("+2250701020304", "Bonjour", phone="dev")
    body = {"provider_id": result.provider_id, "status": "delivered"}
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 500
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 200
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 200
    assert calls == ["delivered", "delivered"]
    stored = getattr(bridge.store, "get_message", lambda _id: None)(result.message_id)
    if stored is not None:
        assert [h.status for h in stored.history if h.source == "report"] == [Status.delivered]


def test_inbound_is_stored_once(bridge_factory: Any, store_url: str) -> None:
    bridge = bridge_factory(yaml_for(store_url))
    got: list[IncomingMessage] = []
    bridge.on_receive(got.append)
    body = {"from": "+2250701020304", "body": "salut", "id": "in-1"}
    for _ in range(3):
        assert bridge.handle_webhook("dev", "inbound", req("inbound", body)).status == 200
    assert len(got) == 1
    lister = getattr(bridge.store, "list_incoming", None)
    if lister is not None:
        assert len(list(lister())) == 1


def test_store_failure_is_503_so_the_provider_retries(bridge_factory: Any) -> None:
    bridge = bridge_factory(yaml_for())

    class BrokenStore:
        def apply_status(self, report: StatusReport) -> Any:
            raise OSError("disk full")

        def record_incoming(self, message: IncomingMessage) -> bool:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    bridge.store = BrokenStore()
    seen: list[Any] = []
    bridge.on_status(seen.append)
    body = {"provider_id": "p", "status": "sent"}
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 503
    inbound = {"from": "+2250701020304", "body": "x", "id": "i"}
    assert bridge.handle_webhook("dev", "inbound", req("inbound", inbound)).status == 503
    assert seen == []
    bridge.store = None  # it recovered: the provider's retry goes through
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 200
    assert len(seen) == 1


# ---------------------------------------------------------------------- dedupe details
def test_concurrent_duplicates_run_callbacks_once(bridge_factory: Any) -> None:
    bridge = bridge_factory(yaml_for())
    calls: list[str] = []
    gate = threading.Event()

    def slow(report: StatusReport) -> None:
        calls.append(report.provider_id or "")
        gate.wait(2)

    bridge.on_status(slow)
    body = {"provider_id": "p-race", "status": "delivered"}
    codes: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(
                bridge.handle_webhook("dev", "status", req("status", body)).status
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert codes == [200] * 8
    assert calls == ["p-race"]


def test_concurrent_duplicate_waits_and_reruns_when_the_first_failed(bridge_factory: Any) -> None:
    bridge = bridge_factory(yaml_for())
    calls: list[int] = []
    entered = threading.Event()
    gate = threading.Event()

    def first_fails(report: StatusReport) -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            entered.set()
            gate.wait(2)
            raise RuntimeError("first attempt fails")

    bridge.on_status(first_fails)
    body = {"provider_id": "p-race2", "status": "delivered"}
    codes: dict[str, int] = {}

    def post(name: str) -> None:
        codes[name] = bridge.handle_webhook("dev", "status", req("status", body)).status

    a = threading.Thread(target=post, args=("a",))
    a.start()
    assert entered.wait(2)
    b = threading.Thread(target=post, args=("b",))
    b.start()
    time.sleep(0.1)
    gate.set()
    a.join(5)
    b.join(5)
    assert codes == {"a": 500, "b": 200}
    assert calls == [0, 1]


def test_reports_without_provider_id_are_deduped_by_payload(bridge_factory: Any) -> None:
    class NoIdPhone(DummyPhone):
        def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
            data = request.json()
            return [
                StatusReport(
                    provider_id=None,
                    phone=self.name,
                    status=self.map_status(data["status"]),
                    raw=data,
                )
            ]

        def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
            data = request.json()
            return [
                IncomingMessage(
                    phone=self.name,
                    sender=data["from"],
                    recipient=None,
                    body=data["body"],
                    raw=data,
                )
            ]

    bridge = smsbridge.Bridge({"dev": NoIdPhone("dev", {"webhook_secret": SECRET})})
    reports: list[StatusReport] = []
    inbound: list[IncomingMessage] = []
    bridge.on_status(reports.append)
    bridge.on_receive(inbound.append)
    for _ in range(2):
        bridge.handle_webhook("dev", "status", req("status", {"status": "sent", "ref": 1}))
        bridge.handle_webhook(
            "dev", "inbound", req("inbound", {"from": "+33612345678", "body": "x", "at": 1})
        )
    bridge.handle_webhook(
        "dev", "inbound", req("inbound", {"from": "+33612345678", "body": "x", "at": 2})
    )
    assert len(reports) == 1
    assert len(inbound) == 2
    bridge.close()


def test_dispatch_status_return_values(bridge_factory: Any) -> None:
    bridge = bridge_factory(yaml_for())
    report = StatusReport(provider_id="p-r", phone="dev", status=Status.delivered)
    assert bridge.dispatch_status(report) == report
    assert bridge.dispatch_status(report) is None  # duplicate
    late = StatusReport(provider_id="p-r", phone="dev", status=Status.sent)
    assert bridge.dispatch_status(late) == late  # applied (history), not passed on
    message = IncomingMessage(
        phone="dev", sender="+33612345678", recipient=None, body="x", provider_id="i-1"
    )
    assert bridge.dispatch_incoming(message) is True
    assert bridge.dispatch_incoming(message) is False


@pytest.mark.parametrize(
    ("first", "then", "passed_on"),
    [
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("sent", "failed", True),
        ("delivered", "sent", False),
        ("delivered", "failed", False),
        ("failed", "delivered", False),
        ("sent", "queued", False),
        ("sent", "unknown", False),
        ("unknown", "sent", True),
        ("unknown", "delivered", True),
    ],
)
def test_status_order_in_memory(
    bridge_factory: Any, first: str, then: str, passed_on: bool
) -> None:
    bridge = bridge_factory(yaml_for())
    seen: list[str] = []
    bridge.on_status(lambda r: seen.append(r.status.value))
    for status in (first, then):
        bridge.dispatch_status(StatusReport(provider_id="p", phone="dev", status=Status(status)))
    assert seen == ([first, then] if passed_on else [first])


# ---------------------------------------------------------------------- failures
class QuirkyPhone(DummyPhone):
    mode = ""

    def verify_webhook(self, request: WebhookRequest) -> None:
        if self.mode == "verify-crash":
            raise KeyError("bug in the verifier")
        if self.mode == "verify-401":
            err = WebhookAuthError("no credentials")
            err.status_code = 401
            raise err
        super().verify_webhook(request)

    def handle_webhook_extra(self, kind: str, request: WebhookRequest) -> bool:
        if self.mode == "extra-retry":
            err = WebhookError("could not confirm the subscription")
            err.status_code = 502
            raise err
        return self.mode == "extra"

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        if self.mode == "parse-crash":
            raise AttributeError("bug in the parser")
        if self.mode == "parse-auth":
            raise WebhookAuthError("bad signature inside the body")
        if self.mode == "wrong-type":
            return ["not a report"]  # type: ignore[list-item]
        if self.mode == "two":
            return [
                StatusReport(provider_id=p, phone=self.name, status=Status.delivered)
                for p in ("two-1", "two-2")
            ]
        return super().parse_status_callback(request)


@pytest.fixture
def quirky() -> Any:
    phone = QuirkyPhone("dev", {"webhook_secret": SECRET})
    bridge = smsbridge.Bridge({"dev": phone})
    yield bridge, phone
    bridge.close()


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("verify-crash", 400),
        ("extra-retry", 502),
        ("verify-401", 401),
        ("extra", 200),
        ("parse-crash", 400),
        ("parse-auth", 403),
        ("wrong-type", 500),
    ],
)
def test_phone_failures_map_to_statuses(quirky: Any, mode: str, status: int) -> None:
    bridge, phone = quirky
    phone.mode = mode
    seen: list[Any] = []
    bridge.on_status(seen.append)
    response = bridge.handle_webhook(
        "dev", "status", req("status", {"provider_id": "p", "status": "sent"})
    )
    assert response.status == status
    assert seen == []


def test_partial_failure_retry_only_reruns_what_failed(quirky: Any) -> None:
    bridge, phone = quirky
    phone.mode = "two"
    calls: list[str] = []

    def fail_second_once(report: StatusReport) -> None:
        calls.append(report.provider_id or "")
        if calls == ["two-1", "two-2"]:
            raise RuntimeError("second one fails")

    bridge.on_status(fail_second_once)
    assert bridge.handle_webhook("dev", "status", req("status", b"{}")).status == 500
    assert bridge.handle_webhook("dev", "status", req("status", b"{}")).status == 200
    assert calls == ["two-1", "two-2", "two-2"]


def test_phone_without_a_webhook_is_404() -> None:
    from smsbridge.phone import Phone, PreparedMessage, Submission

    class SendOnly(Phone):
        plugin = "sendonly"

        def submit(self, message: PreparedMessage) -> Submission:
            return Submission(provider_id="x")

    bridge = smsbridge.Bridge({"so": SendOnly("so")})
    response = bridge.handle_webhook("so", "status", req("status", {}))
    assert response.status == 404
    bridge.close()


def test_parse_error_is_a_parse_error() -> None:
    phone = DummyPhone("dev")
    with pytest.raises(WebhookParseError):
        phone.parse_status_callback(req("status", b"nope"))


# ---------------------------------------------------------------------- listeners
def test_listeners_get_events_after_callbacks_and_never_fail_the_request(
    bridge_factory: Any,
) -> None:
    bridge = bridge_factory(yaml_for())
    order: list[str] = []
    bridge.on_status(lambda r: order.append("callback"))

    class Listener:
        def status(self, report: StatusReport) -> None:
            order.append("listener")

        def inbound(self, message: IncomingMessage) -> None:
            raise RuntimeError("listener bug")

    class Partial:  # only status
        def status(self, report: StatusReport) -> None:
            order.append("partial")

    bridge.dispatcher.listeners.extend([Listener(), Partial()])
    body = {"provider_id": "p-l", "status": "sent"}
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 200
    inbound = {"from": "+2250701020304", "body": "x", "id": "i-l"}
    assert bridge.handle_webhook("dev", "inbound", req("inbound", inbound)).status == 200
    assert order == ["callback", "listener", "partial"]


def test_listener_not_called_when_a_callback_raised(bridge_factory: Any) -> None:
    bridge = bridge_factory(yaml_for())
    got: list[StatusReport] = []

    class Listener:
        def status(self, report: StatusReport) -> None:
            got.append(report)

    bridge.dispatcher.listeners.append(Listener())
    state = {"fail": True}

    def cb(report: StatusReport) -> None:
        if state["fail"]:
            raise RuntimeError("x")

    bridge.on_status(cb)
    body = {"provider_id": "p-x", "status": "sent"}
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 500
    assert got == []
    state["fail"] = False
    assert bridge.handle_webhook("dev", "status", req("status", body)).status == 200
    assert len(got) == 1


def test_simulated_reports_go_through_the_dispatcher(bridge_factory: Any) -> None:
    text = "webhooks: {public_url: 'https://sms.example.com'}\n" + yaml_for(delivery="delivered")
    bridge = bridge_factory(text)
    seen: list[StatusReport] = []
    bridge.on_status(seen.append)
    bridge.send("+2250701020304", "Bonjour", phone="dev")
    phone = bridge.phones["dev"]
    assert isinstance(phone, DummyPhone)
    phone.wait_reports()
    assert [r.status for r in seen] == [Status.delivered]
