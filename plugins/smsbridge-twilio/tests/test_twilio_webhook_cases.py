"""Twilio's signed callbacks (status, inbound) over real HTTP: the shared
:class:`smsbridge.testing.WebhookCases` and Twilio's own cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

import smsbridge
from smsbridge.config import Config, WebhooksConfig
from smsbridge.phone import Phone
from smsbridge.status import Status
from smsbridge.testing import LiveStack, WebhookCases


@pytest.fixture(scope="module")
def twilio_fake() -> Iterator[Any]:
    from smsbridge_twilio.testing import FakeTwilio

    with FakeTwilio() as fake:
        yield fake


class TestTwilioWebhooks(WebhookCases):
    name = "twilio"
    sender = "+15005550006"

    @pytest.fixture(autouse=True)
    def _fake(self, twilio_fake: Any) -> None:
        self.fake = twilio_fake

    def make_phone(self, public_url: str) -> Phone:
        from smsbridge_twilio import TwilioPhone

        options = {**self.fake.phone_options(), "from": "+15005550006"}
        return TwilioPhone("twilio-world", options, public_url=public_url)

    def status_params(self, provider_id: str, raw: str) -> dict[str, str]:
        return {
            "AccountSid": self.fake.account_sid,
            "ApiVersion": "2010-04-01",
            "From": "+15005550006",
            "MessageSid": provider_id,
            "MessageStatus": raw,
            "SmsSid": provider_id,
            "SmsStatus": raw,
            "To": "+33612345678",
        }

    def status(self, phone: Phone, provider_id: str, raw: str) -> requests.Response:
        return self.fake.post(  # type: ignore[no-any-return]
            self.url(phone, "status"), self.status_params(provider_id, raw)
        )

    def inbound(self, phone: Phone, sender: str, body: str, ref: str) -> requests.Response:
        params = self.fake.inbound_params(sender, "+15005550006", body)
        params.update(MessageSid=ref, SmsSid=ref, SmsMessageSid=ref)
        return self.fake.post(self.url(phone, "inbound"), params)  # type: ignore[no-any-return]

    def unauthenticated(self, phone: Phone, kind: str) -> requests.Response:
        params = self.status_params("SMbad", "delivered")
        # signed for another URL: what a forger (or a wrong public_url) produces
        return self.fake.post(  # type: ignore[no-any-return]
            self.url(phone, kind), params, sign_url="https://evil.example.com/x"
        )

    def malformed(self, phone: Phone, kind: str) -> requests.Response:
        params = {"AccountSid": self.fake.account_sid, "NumMedia": "two"}
        return self.fake.post(self.url(phone, kind), params)  # type: ignore[no-any-return]

    def test_inbound_answer_is_empty_twiml(self, env: Any) -> None:
        _, phone, _ = env
        r = self.inbound(phone, self.sender, "hi", "SMtwiml")
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/xml")
        assert "<Response" in r.text

    def test_missing_signature(self, env: Any) -> None:
        _, phone, _ = env
        r = requests.post(
            self.url(phone, "status"), data=self.status_params("SMx", "sent"), timeout=10
        )
        assert r.status_code == 403

    def test_signature_behind_a_trusted_proxy(self, live: LiveStack) -> None:
        """No public_url: the URL Twilio signed is rebuilt from X-Forwarded-* headers."""
        from smsbridge_twilio import TwilioPhone

        phone = TwilioPhone("tw", {**self.fake.phone_options(), "from": "+15005550006"})
        for trust, expected in ((True, 200), (False, 403)):
            config = Config(phones={}, webhooks=WebhooksConfig(trust_proxy=trust))
            bridge = smsbridge.Bridge({"tw": phone}, config=config)
            live.serve(bridge)
            public = "https://sms.example.com/webhooks/tw/status?x=1"
            params = self.status_params("SMproxy", "sent")
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.fake.sign(public, params),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "sms.example.com",
                "X-Forwarded-For": "54.172.60.1",
            }
            r = requests.post(
                live.base + "/webhooks/tw/status?x=1",
                data=urlencode(params),
                headers=headers,
                timeout=10,
            )
            assert r.status_code == expected, (trust, r.text)
            bridge.close()

    def test_send_then_signed_callbacks_round_trip(self, env: Any) -> None:
        bridge, phone, _ = env
        reports, _ = self.collect(bridge)
        result = bridge.send("+33612345678", "Bonjour", phone=phone.name)
        answers = self.fake.advance(
            result.provider_id, "sent", "delivered", url=self.url(phone, "status")
        )
        assert [a.status_code for a in answers] == [200, 200]
        assert [r.status for r in reports] == [Status.sent, Status.delivered]
