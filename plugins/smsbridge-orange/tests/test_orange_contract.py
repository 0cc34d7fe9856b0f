"""The shared phone contract, run against the fake Orange over HTTP."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from smsbridge_orange import OrangePhone
from smsbridge_orange.testing import TOO_MANY, FakeOrange, gateway, policy_error, service_error

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import SendResult
from smsbridge.phone import Phone
from smsbridge.status import Status
from smsbridge.testing import PhoneContract

PUBLIC_URL = "https://sms.example.com"
SECRET = "test-hook-secret"


class TestOrangeContract(PhoneContract):
    recipient = "+2250701020304"
    error_cases: ClassVar[dict[str, type[SendError]]] = {
        "no_units": InsufficientCredit,
        "expired_contract": InsufficientCredit,
        "throttled_429": RateLimited,
        "outage_503_code_5": ProviderUnavailable,
        "internal_500": ProviderUnavailable,
        "bad_gateway_html": ProviderUnavailable,
        "timeout_after_send": AmbiguousSend,
        "revoked_token_41": AuthError,
        "forbidden_50": AuthError,
        "unknown_policy": Rejected,
        "unknown_service": Rejected,
        "malformed_body_22": SendError,
        # last: refused credentials are remembered for a few seconds (no token loop)
        "invalid_client": AuthError,
    }
    status_cases: ClassVar[list[tuple[str, Status]]] = [
        ("MessageWaiting", Status.queued),
        ("DeliveredToNetwork", Status.sent),
        ("DeliveredToTerminal", Status.delivered),
        ("DeliveryImpossible", Status.failed),
        ("DeliveryUncertain", Status.unknown),
        ("DeliveryNotificationNotSupported", Status.unknown),
        ("SomethingNew", Status.unknown),
    ]

    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeOrange) -> None:
        self.fake = fake

    def make_phone(self, **options: Any) -> Phone:
        options.setdefault("webhook_secret", SECRET)
        options.setdefault("timeout", 0.5)
        return OrangePhone("orange-ci", self.fake.phone_options(**options), public_url=PUBLIC_URL)

    def arrange_error(self, phone: Phone, case: str) -> None:
        fake = self.fake
        fake.reset()
        if case == "no_units":
            fake.set_units(0)
        elif case == "expired_contract":
            fake.expire_contract()
        elif case == "throttled_429":
            fake.fail_next(429, TOO_MANY, headers={"Retry-After": "2"})
        elif case == "outage_503_code_5":
            fake.fail_next(503, gateway(5, "Service unavailable", "Temporary state"))
        elif case == "internal_500":
            fake.fail_next(500, gateway(1, "Internal error", "Try again later"))
        elif case == "bad_gateway_html":
            fake.fail_next(502, b"<html>Bad Gateway</html>")
        elif case == "timeout_after_send":
            fake.fail_next(0, delay=1.0)
        elif case == "invalid_client":  # token expired, and the app's secret was changed
            assert isinstance(phone, OrangePhone)
            phone.token()
            fake.expire_tokens()
            fake.client_secret = "another-secret"
        elif case == "revoked_token_41":
            assert isinstance(phone, OrangePhone)
            phone.token()
            fake.revoke_tokens()
        elif case == "forbidden_50":
            fake.fail_next(403, gateway(50, "Access denied", "The application is not authorized"))
        elif case == "unknown_policy":
            fake.fail_next(403, policy_error("POL3006", "Destination blocked by policy %1", "X"))
        elif case == "unknown_service":
            fake.fail_next(400, service_error("SVC0001", "A service error occurred: %1", "oops"))
        elif case == "malformed_body_22":
            fake.fail_next(400, gateway(22, "Invalid body", "The posted body is not well-formed"))
        else:  # pragma: no cover
            raise AssertionError(case)

    def assert_provider_received(self, phone: Phone, result: SendResult, body: str) -> None:
        sent = {s["id"]: s for s in self.fake.sent}
        assert result.provider_id in sent
        assert sent[result.provider_id]["message"] == body
        assert sent[result.provider_id]["address"] == [f"tel:{self.recipient}"]

    def _url(self, phone: Phone, kind: str) -> str:
        url = phone.callback_url(kind)
        assert url is not None and "token=" in url
        return url

    def status_request(self, phone: Phone, provider_id: str, raw_status: str) -> WebhookRequest:
        payload = FakeOrange.delivery_payload(provider_id, f"tel:{self.recipient}", raw_status)
        return FakeOrange.webhook_request(self._url(phone, "status"), payload)

    def inbound_request(self, phone: Phone, sender: str, body: str) -> WebhookRequest:
        return FakeOrange.webhook_request(
            self._url(phone, "inbound"), FakeOrange.inbound_payload(sender, body)
        )

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        payload: Any = (
            FakeOrange.delivery_payload("x", f"tel:{self.recipient}", "DeliveredToTerminal")
            if kind == "status"
            else FakeOrange.inbound_payload(self.recipient, "hi")
        )
        url = f"{PUBLIC_URL}/webhooks/orange-ci/{kind}?token=wrong-token"
        return FakeOrange.webhook_request(url, payload)
