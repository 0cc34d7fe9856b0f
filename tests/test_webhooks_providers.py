"""The shared webhook cases (:class:`smsbridge.testing.WebhookCases`) for the dummy phone,
over real HTTP through both stacks; each plugin runs the same cases in its own tests
(``plugins/smsbridge-<name>/tests/test_<name>_webhook_cases.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

import smsbridge
from smsbridge.phone import Phone
from smsbridge.phones.dummy import DummyPhone
from smsbridge.testing import LiveStack, WebhookCases


class TestDummy(WebhookCases):
    name = "dummy"
    secret = "dummy-hook-secret"

    def make_phone(self, public_url: str) -> Phone:
        return DummyPhone(
            "dev", {"webhook_secret": self.secret, "delivery": "none"}, public_url=public_url
        )

    def _post(self, url: str, data: Any) -> requests.Response:
        return requests.post(url, json=data, timeout=10)

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self._post(self.url(phone, "status"), {"provider_id": provider_id, "status": raw})

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        return self._post(self.url(phone, "inbound"), {"from": sender, "body": body, "id": ref})

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        url = self.url(phone, kind).split("?")[0] + "?token=guess"
        return self._post(url, {"provider_id": "p", "status": "sent", "from": self.sender})

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        return requests.post(self.url(phone, kind), data=b"<xml/>", timeout=10)

    def test_live_stacks_report_health(self, live: LiveStack) -> None:
        bridge = smsbridge.Bridge({"dev": DummyPhone("dev")})
        live.serve(bridge)
        r = requests.get(live.base + "/healthz", timeout=10)
        assert r.json() == {"status": "ok", "phones": 1}
        assert urlsplit(live.base).hostname == "127.0.0.1"
        bridge.close()
