"""The shared phone contract, run against moto in server mode (real HTTP, real boto3)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from botocore.stub import Stubber
from smsbridge_sns import SnsPhone
from smsbridge_sns.testing import MotoSnsServer, SnsSigner, delivery_log_entry

from smsbridge.errors import AuthError, ProviderUnavailable, RateLimited, Rejected, SendError
from smsbridge.http import WebhookRequest
from smsbridge.message import SendResult
from smsbridge.phone import Phone
from smsbridge.status import Status
from smsbridge.testing import PhoneContract

LOG_GROUP = "sns/us-east-1/123456789012/DirectPublishToPhoneNumber"

# case -> (AWS error code, HTTP status, message)
STUBBED: dict[str, tuple[str, int, str]] = {
    "throttling": ("Throttling", 400, "Rate exceeded"),
    "throttled": ("Throttled", 429, "Request throttled"),
    "authorization": ("AuthorizationError", 403, "not authorized to perform: SNS:Publish"),
    "bad_token": ("InvalidClientTokenId", 403, "The security token included is invalid."),
    "internal": ("InternalError", 500, "Internal error"),
    "opted_out": ("OptedOut", 400, "Phone number is opted out"),
    "invalid_parameter": ("InvalidParameter", 400, "Invalid parameter: Message too long"),
    "unknown_5xx": ("SomethingNew", 503, "Service is busy"),
    "unknown_4xx": ("SomethingElse", 400, "No idea"),
}


class TestSnsContract(PhoneContract):
    recipient = "+33612345678"
    error_cases: ClassVar[dict[str, type[SendError]]] = {
        "throttling": RateLimited,
        "throttled": RateLimited,
        "authorization": AuthError,
        "bad_token": AuthError,
        "internal": ProviderUnavailable,
        "opted_out": Rejected,
        "invalid_parameter": Rejected,
        "unknown_5xx": ProviderUnavailable,
        "unknown_4xx": SendError,
    }
    status_cases: ClassVar[list[tuple[str, Status]]] = [
        ("SUCCESS", Status.delivered),
        ("FAILURE", Status.failed),
        ("PARTIAL_SOMETHING", Status.unknown),
    ]

    @pytest.fixture(autouse=True)
    def _aws(self, moto_sns: MotoSnsServer) -> None:
        self.aws = moto_sns
        self.signer = SnsSigner()

    def make_phone(self, **options: Any) -> Phone:
        opts = self.aws.phone_options(
            delivery_log_group=LOG_GROUP, aws_secret_access_key="test-secret-123", **options
        )
        return SnsPhone("sns-test", opts, fetch_url=self.signer.fetch_url)

    def arrange_error(self, phone: Phone, case: str) -> None:
        assert isinstance(phone, SnsPhone)
        code, status, text = STUBBED[case]
        stubber = Stubber(phone.sns)
        stubber.add_client_error("publish", code, text, status)
        stubber.activate()

    def assert_provider_received(self, phone: Phone, result: SendResult, body: str) -> None:
        sent = {m["message_id"]: m for m in self.aws.sent_sms()}
        assert sent[result.provider_id]["message"] == body
        assert sent[result.provider_id]["phone_number"] == result.to

    def arrange_status(self, phone: Phone, provider_id: str, raw_status: str) -> None:
        group = LOG_GROUP + ("/Failure" if raw_status == "FAILURE" else "")
        self.aws.put_delivery_log(group, delivery_log_entry(provider_id, raw_status))

    def inbound_request(self, phone: Phone, sender: str, body: str) -> WebhookRequest:
        return self.signer.inbound_request(sender, body)

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        forged = SnsSigner()  # a key whose certificate the phone never sees
        envelope = forged.notification('{"originationNumber": "+33612345678"}')
        envelope["SigningCertURL"] = self.signer.cert_url  # claims the real certificate
        return forged.request(envelope)


def test_status_unsupported_without_log_group(moto_sns: MotoSnsServer) -> None:
    """Without delivery_log_group the phone says status: False and refuses to poll."""
    phone = SnsPhone("plain", moto_sns.phone_options())
    assert SnsPhone.capabilities.status is False
    assert phone.caps.status is False and phone.caps.status_mode is None
    with_logs = SnsPhone("logs", moto_sns.phone_options(delivery_log_group=LOG_GROUP))
    assert with_logs.caps.status is True and with_logs.caps.status_mode == "poll"
    assert with_logs.caps.receive_mode == "webhook"
