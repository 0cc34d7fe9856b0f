"""Orange's callbacks (delivery receipts, inbound SMS) over real HTTP: the shared
:class:`smsbridge.testing.WebhookCases`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from smsbridge.phone import Phone
from smsbridge.testing import WebhookCases


@pytest.fixture(scope="module")
def orange_fake() -> Iterator[Any]:
    from smsbridge_orange.testing import FakeOrange

    with FakeOrange() as fake:
        yield fake


class TestOrangeWebhooks(WebhookCases):
    name = "orange"
    delivered_raw = "DeliveredToTerminal"
    sent_raw = "DeliveredToNetwork"
    secret = "orange-hook-secret"

    @pytest.fixture(autouse=True)
    def _fake(self, orange_fake: Any) -> None:
        self.fake = orange_fake

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_orange import OrangePhone

        options = self.fake.phone_options(webhook_secret=self.secret)
        return OrangePhone("orange-ci", options, public_url=public_url)

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self.fake.post_delivery_receipt(  # type: ignore[no-any-return]
            self.url(phone, "status"), provider_id, "tel:+2250701020304", raw
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        payload = self.fake.inbound_payload(sender, body, when="2024-05-01T10:00:00Z")
        payload["inboundSMSMessageNotification"]["inboundSMSMessage"]["messageId"] = ref
        return requests.post(self.url(phone, "inbound"), json=payload, timeout=10)

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        url = self.url(phone, kind).split("?")[0]  # Orange cannot sign: the token is all
        payload = (
            self.fake.delivery_payload("p", "tel:+2250701020304", "DeliveredToTerminal")
            if kind == "status"
            else self.fake.inbound_payload(self.sender, "x")
        )
        return requests.post(url, json=payload, timeout=10)

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        wrong = {"deliveryInfoNotification": {"deliveryInfo": "nope"}}
        return requests.post(self.url(phone, kind), json=wrong, timeout=10)
