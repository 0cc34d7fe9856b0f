"""Fixtures for the Orange plugin tests: a fresh fake Orange per test, no real cache dir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from smsbridge_orange import OrangePhone
from smsbridge_orange.auth import forget_shared_tokens
from smsbridge_orange.testing import FakeOrange

from smsbridge.errors import WebhookError
from smsbridge.http import WebhookRequest
from smsbridge.testing import FakeServer

RECIPIENT = "+2250701020304"
HOOK_SECRET = "test-hook-secret"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs' user cache dir points into tmp_path: tests never touch ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    forget_shared_tokens()  # a new fake may get an old fake's port (same token URL)


@pytest.fixture
def fake() -> Iterator[FakeOrange]:
    with FakeOrange() as server:
        yield server


@pytest.fixture
def make_phone(fake: FakeOrange) -> Iterator[Any]:
    phones: list[OrangePhone] = []

    def build(
        name: str = "orange-ci", server: FakeOrange | None = None, **options: Any
    ) -> OrangePhone:
        kw = {k: options.pop(k) for k in ("clock", "sleep", "public_url") if k in options}
        phone = OrangePhone(name, (server or fake).phone_options(**options), **kw)
        phones.append(phone)
        return phone

    yield build
    for phone in phones:
        phone.close()


class _WebhookHandler(BaseHTTPRequestHandler):
    """Plays the bridge's dispatcher: verify, parse, answer 200 / 4xx."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        host, port = self.server.server_address[:2]
        request = WebhookRequest(
            "POST",
            f"http://{host}:{port}{self.path}",
            dict(self.headers),
            body,
            remote_addr=self.client_address[0],
        )
        phone: OrangePhone = state["phone"]
        kind = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            phone.verify_webhook(request)
            if kind == "status":
                state["reports"].extend(phone.parse_status_callback(request))
            else:
                state["inbound"].extend(phone.parse_inbound(request))
            status, payload = 200, b""
        except WebhookError as exc:
            status, payload = exc.status_code, json.dumps({"error": str(exc)}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    """An HTTP webhook endpoint on 127.0.0.1; set ``receiver.state['phone']``."""
    with FakeServer(_WebhookHandler, {"phone": None, "reports": [], "inbound": []}) as server:
        yield server
