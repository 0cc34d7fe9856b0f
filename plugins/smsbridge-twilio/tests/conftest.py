"""Fixtures for the Twilio plugin tests: the fake Twilio, phones, a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from smsbridge_twilio import TwilioPhone
from smsbridge_twilio.testing import FakeTwilio

from smsbridge.errors import WebhookError
from smsbridge.http import WebhookRequest
from smsbridge.testing import FakeServer

SENDER = "+15005550006"  # Twilio's "valid From" magic number


@pytest.fixture(scope="session")
def fake_twilio_server() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_twilio(fake_twilio_server: FakeTwilio) -> FakeTwilio:
    fake_twilio_server.reset()
    return fake_twilio_server


@pytest.fixture
def make_phone(fake_twilio: FakeTwilio) -> Iterator[Callable[..., TwilioPhone]]:
    phones: list[TwilioPhone] = []

    def make(public_url: str | None = "https://sms.example.com", **options: Any) -> TwilioPhone:
        opts: dict[str, Any] = {**fake_twilio.phone_options(), "from": SENDER, "timeout": 2}
        opts.update(options)
        phone = TwilioPhone("tw", opts, public_url=public_url, sleep=lambda s: None)
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        phone.close()


class Receiver:
    """A webhook endpoint on 127.0.0.1 doing what the bridge's dispatcher does:
    verify -> parse -> respond; 401/403/400 from WebhookError."""

    def __init__(self) -> None:
        self.phone: TwilioPhone | None = None
        self.reports: list[Any] = []
        self.server = FakeServer(_ReceiverHandler, {"receiver": self})

    @property
    def url(self) -> str:
        return self.server.url

    def handle(self, request: WebhookRequest, kind: str) -> tuple[int, bytes, str]:
        assert self.phone is not None
        try:
            self.phone.verify_webhook(request)
            if kind == "status":
                self.reports.extend(self.phone.parse_status_callback(request))
            else:
                self.reports.extend(self.phone.parse_inbound(request))
        except WebhookError as exc:
            return exc.status_code, str(exc).encode(), "text/plain"
        return self.phone.webhook_response(kind, request)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver: Receiver = self.server.state["receiver"]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = WebhookRequest(
            "POST",
            receiver.url + self.path,
            headers=dict(self.headers.items()),
            body=body,
            remote_addr=self.client_address[0],
        )
        kind = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        status, data, content_type = receiver.handle(request, kind)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    rec = Receiver()
    with rec.server:
        yield rec


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.phone = None
    receiver_server.reports = []
    return receiver_server
