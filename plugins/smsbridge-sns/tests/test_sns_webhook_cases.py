"""SNS's signed notifications (two-way SMS, subscription confirmation) over real HTTP:
the shared :class:`smsbridge.testing.WebhookCases`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from smsbridge.phone import Phone
from smsbridge.testing import WebhookCases


@pytest.fixture(scope="module")
def sns_signer() -> Any:
    from smsbridge_sns.testing import SnsSigner

    return SnsSigner()


class TestSnsWebhooks(WebhookCases):
    name = "sns"
    status_webhook = False  # SNS delivery status comes from CloudWatch Logs (polled)
    test_status_happy_path = None  # type: ignore[assignment]
    test_out_of_order_statuses = None  # type: ignore[assignment]
    sender = "+33612345678"

    @pytest.fixture(autouse=True)
    def _signer(self, sns_signer: Any) -> None:
        self.signer = sns_signer
        self.envelopes: dict[str, Any] = {}

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_sns import SnsPhone

        options = {
            "region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "endpoint_url": "http://127.0.0.1:9",
        }
        return SnsPhone(
            "sns-promo", options, public_url=public_url, fetch_url=self.signer.fetch_url
        )

    def post_envelope(self, phone: Phone, envelope: dict[str, Any]) -> requests.Response:
        template = self.signer.request(envelope, url=self.url(phone, "inbound"))
        return requests.post(
            template.url, data=template.body, headers=dict(template.headers), timeout=10
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        if ref not in self.envelopes:  # SNS retries resend the very same envelope
            from smsbridge_sns.testing import two_way_sms

            sms = two_way_sms(sender, body)
            sms["inboundMessageId"] = ref
            self.envelopes[ref] = self.signer.notification(json.dumps(sms))
        return self.post_envelope(phone, self.envelopes[ref])

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        from smsbridge_sns.testing import two_way_sms

        envelope = self.signer.notification(json.dumps(two_way_sms(self.sender, "hi")))
        envelope["Message"] = json.dumps(two_way_sms(self.sender, "forged"))
        return self.post_envelope(phone, envelope)

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        envelope = self.signer.notification("not the two-way SMS JSON")
        return self.post_envelope(phone, envelope)

    def test_subscription_confirmation(self, env: Any) -> None:
        bridge, phone, _ = env
        _, inbound = self.collect(bridge)
        envelope = self.signer.subscription_confirmation()
        assert self.post_envelope(phone, envelope).status_code == 200
        assert any("ConfirmSubscription" in u for u in self.signer.fetched)
        assert inbound == []
