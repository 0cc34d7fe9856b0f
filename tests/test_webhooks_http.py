"""The webhook endpoints through the real ASGI (httpx.ASGITransport) and WSGI (werkzeug
test client) stacks: every case runs on both adapters, with the dummy phone's format."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from werkzeug.test import Client

import smsbridge
from smsbridge.config import load_yaml, parse_config
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.phones.dummy import DummyPhone
from smsbridge.status import Status

SECRET = "s3cret-token-1"
PEER = "203.0.113.9"

YAML = f"""
webhooks:
  public_url: https://sms.example.com
  max_body_bytes: 2048
phones:
  dev:
    plugin: dummy
    webhook_secret: {SECRET}
    delivery: none
"""


@dataclass
class Resp:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Http:
    """One stack (ASGI or WSGI) in front of one bridge."""

    kind: str
    bridge: smsbridge.Bridge
    peer: str = PEER
    root: str = ""
    calls: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Any = b"",
        headers: dict[str, str] | None = None,
    ) -> Resp:
        if self.kind == "asgi":
            return asyncio.run(self._asgi(method, path, body, headers or {}))
        app = self.bridge.webhook_app("wsgi")
        client = Client(app)
        base = "http://testserver" + self.root
        path = path[len(self.root) :] if self.root and path.startswith(self.root) else path
        r = client.open(
            path,
            method=method,
            data=body,
            headers=headers or {},
            base_url=base,
            environ_base={"REMOTE_ADDR": self.peer},
        )
        return Resp(r.status_code, r.get_data(), {k.lower(): v for k, v in r.headers.items()})

    async def _asgi(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Resp:
        app = self.bridge.webhook_app("asgi")
        transport = httpx.ASGITransport(app=app, client=(self.peer, 4567), root_path=self.root)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.request(method, path, content=body, headers=headers)
            return Resp(r.status_code, r.content, {k.lower(): v for k, v in r.headers.items()})

    def post(self, path: str, data: Any, **kw: Any) -> Resp:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return self.request(
            "POST", path, body, {"Content-Type": "application/json", **kw.get("headers", {})}
        )


def status_url(phone: str = "dev", token: str | None = SECRET) -> str:
    return f"/webhooks/{phone}/status" + (f"?token={token}" if token is not None else "")


def inbound_url(phone: str = "dev", token: str | None = SECRET) -> str:
    return f"/webhooks/{phone}/inbound" + (f"?token={token}" if token is not None else "")


@pytest.fixture(params=["asgi", "wsgi"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_http(stack: str, bridge_factory: Any) -> Callable[..., Http]:
    def make(yaml_text: str = YAML, **kw: Any) -> Http:
        return Http(stack, bridge_factory(yaml_text), **kw)

    return make


@pytest.fixture
def http(make_http: Callable[..., Http]) -> Http:
    return make_http()


def collect(bridge: smsbridge.Bridge) -> tuple[list[StatusReport], list[IncomingMessage]]:
    reports: list[StatusReport] = []
    inbound: list[IncomingMessage] = []
    bridge.on_status(reports.append)
    bridge.on_receive(inbound.append)
    return reports, inbound


# ---------------------------------------------------------------------- happy paths
def test_status_report_happy_path(http: Http) -> None:
    reports, _ = collect(http.bridge)
    r = http.post(status_url(), {"provider_id": "p-1", "status": "delivered"})
    assert r.status == 200
    assert [(x.phone, x.provider_id, x.status) for x in reports] == [
        ("dev", "p-1", Status.delivered)
    ]
    assert reports[0].raw_status == "delivered"


def test_inbound_happy_path(http: Http) -> None:
    _, inbound = collect(http.bridge)
    r = http.post(
        inbound_url(),
        {"from": "+2250701020304", "to": "+2250700000001", "body": "Salut", "id": "m1"},
    )
    assert r.status == 200
    assert len(inbound) == 1
    assert (inbound[0].sender, inbound[0].body, inbound[0].provider_id) == (
        "+2250701020304",
        "Salut",
        "m1",
    )


def test_send_then_report_round_trip(http: Http) -> None:
    reports, _ = collect(http.bridge)
    result = http.bridge.send("+2250701020304", "Bonjour", phone="dev")
    r = http.post(status_url(), {"provider_id": result.provider_id, "status": "sent"})
    assert r.status == 200
    r = http.post(status_url(), {"provider_id": result.provider_id, "status": "delivered"})
    assert r.status == 200
    assert [x.status for x in reports] == [Status.sent, Status.delivered]


def test_healthz(http: Http) -> None:
    r = http.request("GET", "/healthz")
    assert r.status == 200
    assert r.json() == {"status": "ok", "phones": 1}
    assert r.headers["content-type"] == "application/json"
    assert http.request("POST", "/healthz").status == 405


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
def test_bad_or_missing_token_is_403(http: Http, token: str | None) -> None:
    reports, inbound = collect(http.bridge)
    r = http.post(status_url(token=token), {"provider_id": "p", "status": "delivered"})
    assert r.status == 403
    r = http.post(inbound_url(token=token), {"from": "+2250701020304", "body": "x", "id": "i"})
    assert r.status == 403
    assert reports == [] and inbound == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"status": "delivered"}',
        b'{"provider_id": "p"}',
        b"\xff\xfe\x00garbage",
        b'{"provider_id": "p", "status": ',
    ],
)
def test_malformed_status_is_400(http: Http, body: bytes) -> None:
    reports, _ = collect(http.bridge)
    r = http.post(status_url(), body)
    assert r.status == 400
    assert reports == []


def test_malformed_inbound_is_400(http: Http) -> None:
    _, inbound = collect(http.bridge)
    assert http.post(inbound_url(), {"body": "no sender"}).status == 400
    assert http.post(inbound_url(), {"from": "not a number", "body": "x"}).status == 400
    assert inbound == []


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/nope/status",
        "/webhooks/dev/other",
        "/webhooks/dev",
        "/webhooks/dev/status/extra",
        "/",
        "/favicon.ico",
    ],
)
def test_unknown_phone_kind_or_path_is_404(http: Http, path: str) -> None:
    r = http.post(path + f"?token={SECRET}", {"provider_id": "p", "status": "delivered"})
    assert r.status == 404


def test_other_methods_are_405(http: Http) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        r = http.request(method, status_url())
        assert r.status == 405
        assert r.headers["allow"] == "GET, POST"


def test_get_is_routed_to_the_phone(http: Http) -> None:
    # The dummy phone wants a JSON body: a bare GET reaches its parser and is malformed.
    assert http.request("GET", status_url()).status == 400
    assert http.request("GET", status_url(token="bad")).status == 403


def test_oversize_body_is_413(http: Http) -> None:
    reports, _ = collect(http.bridge)
    big = {"provider_id": "p", "status": "delivered", "pad": "x" * 4096}
    r = http.post(status_url(), big)
    assert r.status == 413
    assert reports == []
    # the limit is on bytes: just under it passes
    ok = {"provider_id": "p", "status": "delivered", "pad": "x" * 1900}
    assert http.post(status_url(), ok).status == 200


def test_oversize_streamed_body_is_413_without_reading_it_all(bridge_factory: Any) -> None:
    bridge = bridge_factory(YAML)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(1000):
            sent.append(i)
            yield b"x" * 1024

    async def go() -> int:
        transport = httpx.ASGITransport(app=bridge.webhook_app("asgi"))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(status_url(), content=chunks())
            return r.status_code

    assert asyncio.run(go()) == 413
    assert len(sent) < 10  # stopped right after the 2 KiB limit, not after 1 MiB


# ---------------------------------------------------------------------- delivery semantics
def test_duplicate_delivery_is_applied_once(http: Http) -> None:
    reports, inbound = collect(http.bridge)
    for _ in range(3):
        assert (
            http.post(status_url(), {"provider_id": "p-dup", "status": "delivered"}).status == 200
        )
        msg = {"from": "+2250701020304", "body": "hi", "id": "in-dup"}
        assert http.post(inbound_url(), msg).status == 200
    assert len(reports) == 1
    assert len(inbound) == 1


def test_same_provider_id_other_status_is_not_a_duplicate(http: Http) -> None:
    reports, _ = collect(http.bridge)
    for status in ("queued", "sent", "delivered"):
        assert http.post(status_url(), {"provider_id": "p-x", "status": status}).status == 200
    assert [r.status.value for r in reports] == ["queued", "sent", "delivered"]


def test_out_of_order_status_does_not_reach_callbacks(http: Http) -> None:
    reports, _ = collect(http.bridge)
    assert http.post(status_url(), {"provider_id": "p-o", "status": "delivered"}).status == 200
    assert http.post(status_url(), {"provider_id": "p-o", "status": "sent"}).status == 200
    assert http.post(status_url(), {"provider_id": "p-o", "status": "queued"}).status == 200
    assert [r.status for r in reports] == [Status.delivered]


def test_raising_callback_is_500_and_the_retry_runs_it_again(http: Http) -> None:
    calls: list[str] = []
    fail = [True]

    def flaky(report: StatusReport) -> None:
        calls.append(report.status.value)
        if fail[0]:
            raise RuntimeError("database down")

    http.bridge.on_status(flaky)
    body = {"provider_id": "p-flaky", "status": "delivered"}
    assert http.post(status_url(), body).status == 500
    assert http.post(status_url(), body).status == 500
    fail[0] = False
    assert http.post(status_url(), body).status == 200
    assert http.post(status_url(), body).status == 200  # now a duplicate
    assert calls == ["delivered", "delivered", "delivered"]


def test_raising_receive_callback_is_500_and_retried(http: Http) -> None:
    calls: list[str] = []

    def flaky(message: IncomingMessage) -> None:
        calls.append(message.body)
        if len(calls) == 1:
            raise ValueError("boom")

    http.bridge.on_receive(flaky)
    body = {"from": "+2250701020304", "body": "hello", "id": "in-flaky"}
    assert http.post(inbound_url(), body).status == 500
    assert http.post(inbound_url(), body).status == 200
    assert http.post(inbound_url(), body).status == 200
    assert calls == ["hello", "hello"]


# ---------------------------------------------------------------------- security plumbing
class RecordingPhone(DummyPhone):
    """A dummy phone that keeps the requests it was asked to verify."""

    plugin = "dummy"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seen: list[WebhookRequest] = []

    def verify_webhook(self, request: WebhookRequest) -> None:
        self.seen.append(request)
        super().verify_webhook(request)


def recording_bridge(yaml_text: str, **options: Any) -> tuple[smsbridge.Bridge, RecordingPhone]:
    config = parse_config(load_yaml(yaml_text, "t.yaml"), file="t.yaml")
    phone = RecordingPhone("rec", options, public_url=config.webhooks.public_url)
    return smsbridge.Bridge({"rec": phone}, config=config), phone


PROXY_YAML = """
webhooks:
  trust_proxy: {trust}
phones:
  rec: {{plugin: dummy}}
"""


@pytest.mark.parametrize("trust", [True, False])
def test_external_url_and_remote_addr_behind_proxy(stack: str, trust: bool) -> None:
    bridge, phone = recording_bridge(PROXY_YAML.format(trust=str(trust).lower()))
    http = Http(stack, bridge)
    headers = {
        "Content-Type": "application/json",
        "X-Forwarded-For": "192.0.2.1, 198.51.100.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "sms.example.com",
    }
    body = json.dumps({"provider_id": "p", "status": "sent"}).encode()
    r = http.request("POST", "/webhooks/rec/status?a=1&b=%2B33", body, headers)
    assert r.status == 200
    seen = phone.seen[-1]
    if trust:
        assert seen.url == "https://sms.example.com/webhooks/rec/status?a=1&b=%2B33"
        assert seen.remote_addr == "198.51.100.7"  # the hop the proxy saw, not the client's claim
    else:
        assert seen.url == "http://testserver/webhooks/rec/status?a=1&b=%2B33"
        assert seen.remote_addr == PEER
    assert seen.method == "POST"
    assert seen.header("content-type") == "application/json"
    bridge.close()


def test_mounted_under_a_prefix_keeps_the_full_url(stack: str) -> None:
    bridge, phone = recording_bridge(PROXY_YAML.format(trust="false"))
    http = Http(stack, bridge, root="/sms")
    body = json.dumps({"provider_id": "p", "status": "sent"}).encode()
    r = http.request("POST", "/sms/webhooks/rec/status", body, {"Content-Type": "application/json"})
    assert r.status == 200
    assert phone.seen[-1].url == "http://testserver/sms/webhooks/rec/status"
    assert http.request("GET", "/sms/healthz").status == 200
    bridge.close()


ALLOW_YAML = """
webhooks:
  trust_proxy: {trust}
phones:
  dev:
    plugin: dummy
    allow_ips: ["198.51.100.0/24", "2001:db8::/32"]
"""


@pytest.mark.parametrize(
    ("trust", "peer", "forwarded", "expected"),
    [
        (False, "198.51.100.20", None, 200),
        (False, PEER, None, 403),
        (False, PEER, "198.51.100.20", 403),  # not trusted: the header is ignored
        (True, PEER, "198.51.100.20", 200),
        (True, PEER, "198.51.100.20, 203.0.113.50", 403),  # leftmost is the client's claim
        (True, PEER, "203.0.113.50, 198.51.100.20", 200),
        (True, "198.51.100.20", None, 200),
        (True, PEER, "not-an-ip", 403),
    ],
)
def test_allow_ips(
    make_http: Callable[..., Http], trust: bool, peer: str, forwarded: str | None, expected: int
) -> None:
    http = make_http(ALLOW_YAML.format(trust=str(trust).lower()), peer=peer)
    headers = {"Content-Type": "application/json"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    body = json.dumps({"provider_id": "p", "status": "sent"}).encode()
    assert http.request("POST", "/webhooks/dev/status", body, headers).status == expected


def smsbridge_log(caplog: pytest.LogCaptureFixture) -> str:
    """What smsbridge logged (the test clients log their own request URLs)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("smsbridge"))


def test_secrets_and_bodies_are_not_logged(http: Http, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http.post(status_url(), {"provider_id": "p-log", "status": "delivered", "secret": "BODYMARK"})
    http.post(status_url(token="wrong-" + SECRET), {"provider_id": "p", "status": "sent"})
    http.post(status_url(), b"BODYMARK not json")
    ours = smsbridge_log(caplog)
    assert "/webhooks/dev/status" in ours  # the access log is there
    assert SECRET not in ours
    assert "BODYMARK" not in ours


def test_log_bodies_opt_in(
    make_http: Callable[..., Http], caplog: pytest.LogCaptureFixture
) -> None:
    http = make_http(YAML.replace("max_body_bytes: 2048", "log_bodies: true"))
    caplog.set_level(logging.INFO)
    http.post(status_url(), {"provider_id": "p-log", "status": "delivered", "note": "BODYMARK"})
    assert "BODYMARK" in smsbridge_log(caplog)
    assert SECRET not in smsbridge_log(caplog)


def test_unicode_phone_name_is_404_not_500(http: Http) -> None:
    assert http.post("/webhooks/t%C3%A9l%C3%A9phone/status", {"x": 1}).status == 404
