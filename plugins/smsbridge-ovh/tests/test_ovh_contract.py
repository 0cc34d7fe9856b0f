"""The shared phone contract, against the fake OVH API through the real ``ovh`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake

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


class TestOvhContract(PhoneContract):
    recipient = "+33612345678"
    error_cases: ClassVar[dict[str, type[SendError]]] = {
        "invalid_key": AuthError,
        "invalid_credential": AuthError,
        "invalid_signature": AuthError,
        "clock_skew": AuthError,
        "not_granted": AuthError,
        "not_granted_class": AuthError,
        "unknown_service": AuthError,
        "no_credits": InsufficientCredit,
        "expired": InsufficientCredit,
        "bad_request": Rejected,
        "rate_limited": RateLimited,
        "server_error": ProviderUnavailable,
        "unavailable": ProviderUnavailable,
        "read_timeout": AmbiguousSend,
        "dropped": AmbiguousSend,
        "garbled": AmbiguousSend,
    }
    # "<query parameter>:<value>" pairs as OVH's callback carries them.
    status_cases: ClassVar[list[tuple[str, Status]]] = [
        ("description:0", Status.queued),
        ("description:4", Status.queued),
        ("description:8", Status.sent),
        ("description:1", Status.delivered),
        ("dlr:1", Status.delivered),
        ("description:2", Status.failed),
        ("dlr:16", Status.failed),
        ("ptt:1", Status.sent),
        ("ptt:3", Status.sent),
        ("ptt:4", Status.delivered),
        ("ptt:5", Status.failed),
        ("ptt:8", Status.failed),
        ("ptt:24", Status.failed),
        ("ptt:99", Status.failed),
        ("ptt:6", Status.unknown),
        ("description:77", Status.unknown),
        ("description:2,ptt:24", Status.failed),
        ("description:1,ptt:0", Status.delivered),
    ]

    @pytest.fixture(autouse=True)
    def _fake(self) -> Iterator[None]:
        with OvhFake() as fake:
            self.fake = fake
            self.baseline = {
                k: getattr(fake, k)
                for k in (
                    "application_key",
                    "application_secret",
                    "consumer_key",
                    "service_name",
                    "credits_left",
                    "granted",
                    "time_offset",
                )
            }
            yield

    def _restore(self) -> None:
        for key, value in self.baseline.items():
            setattr(self.fake, key, value)
        self.fake._faults.clear()

    def make_phone(self, **options: Any) -> Phone:
        self._restore()  # a fresh phone sees a healthy fake (error cases share it)
        options.setdefault("timeout", 0.5)
        return OvhPhone(
            "ovh-test",
            self.fake.phone_options(**options),
            sleep=lambda _s: None,
            public_url="https://sms.example.com",
        )

    def arrange_error(self, phone: Phone, case: str) -> None:
        fake = self.fake
        genuine = {
            "invalid_key": ("application_key", "another-ak"),
            "invalid_credential": ("consumer_key", "another-ck"),
            "invalid_signature": ("application_secret", "another-as"),
            "unknown_service": ("service_name", "sms-other-9"),
            "no_credits": ("credits_left", 0.0),
            "not_granted": ("granted", False),
        }
        if case in genuine:
            setattr(fake, *genuine[case])
        elif case == "clock_skew":
            _ = phone.client.time_delta  # learned now; the server clock jumps afterwards
            fake.time_offset += 600
        elif case == "read_timeout":
            fake.stall_next(1.0)
        elif case == "dropped":
            fake.drop_next()
        elif case == "garbled":
            fake.garble_next()
        else:
            fake.fail_next(case)

    def assert_provider_received(self, phone: Phone, result: SendResult, body: str) -> None:
        assert result.provider_id is not None
        record = self.fake.outgoing[int(result.provider_id)]
        assert record["message"] == body
        assert record["receiver"] == self.recipient
        assert self.fake.payloads[int(result.provider_id)]["charset"] == "UTF-8"

    def status_request(self, phone: Phone, provider_id: str, raw_status: str) -> WebhookRequest:
        url = phone.callback_url("status")
        assert url is not None and "token=" in url
        query = dict(part.split(":") for part in raw_status.split(","))
        request = OvhFake.status_callback(url, provider_id)
        extra = "&".join(f"{k}={v}" for k, v in query.items())
        return WebhookRequest("GET", f"{request.url}&{extra}", remote_addr="127.0.0.1")

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        return OvhFake.status_callback(
            f"https://sms.example.com/webhooks/{phone.name}/{kind}?token=wrong", 1, dlr=1
        )
