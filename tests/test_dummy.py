"""The dummy phone passes the shared plugin contract, and simulates what it promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smsbridge import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    OutgoingMessage,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendResult,
    Status,
    WebhookParseError,
    WebhookRequest,
)
from smsbridge.phone import Phone
from smsbridge.phones.dummy import DummyPhone
from smsbridge.testing import PhoneContract


class TestDummyContract(PhoneContract):
    recipient = "+2250701020304"
    error_cases = {
        "AuthError": AuthError,
        "RateLimited": RateLimited,
        "InsufficientCredit": InsufficientCredit,
        "ProviderUnavailable": ProviderUnavailable,
        "AmbiguousSend": AmbiguousSend,
        "Rejected": Rejected,
    }
    status_cases = [(s.value, s) for s in Status] + [("weird-status", Status.unknown)]

    def make_phone(self, **options: Any) -> Phone:
        self._options = {"webhook_secret": "dummy-secret-42", **options}
        return DummyPhone("dev", self._options, public_url="https://sms.example.com")

    def arrange_error(self, phone: Phone, case: str) -> None:
        # Options are frozen: rebuild the same phone's options with the failure armed.
        phone.options = phone.Options.model_validate(
            {**self._options, "fail_all": True, "error": case}
        )

    def assert_provider_received(self, phone: Phone, result: SendResult, body: str) -> None:
        assert isinstance(phone, DummyPhone)
        assert phone.sent[-1]["body"] == body
        assert phone.sent[-1]["provider_id"] == result.provider_id

    def status_request(self, phone: Phone, provider_id: str, raw_status: str) -> WebhookRequest:
        return WebhookRequest(
            "POST",
            phone.callback_url("status") or "",
            {"Content-Type": "application/json"},
            json.dumps({"provider_id": provider_id, "status": raw_status}).encode(),
        )

    def inbound_request(self, phone: Phone, sender: str, body: str) -> WebhookRequest:
        return WebhookRequest(
            "POST",
            phone.callback_url("inbound") or "",
            {"Content-Type": "application/json"},
            json.dumps({"from": sender, "body": body, "id": "mo-1"}).encode(),
        )

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        url = (phone.callback_url(kind) or "").replace("dummy-secret-42", "wrong")
        return WebhookRequest("POST", url, {}, b"{}")


def test_outbox_file_keeps_every_sent_message(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    phone = DummyPhone("dev", {"outbox_file": str(path), "delivery": "none"})
    phone.send(OutgoingMessage(to="+33612345678", body="one"))
    phone.send(OutgoingMessage(to="+33612345679", body="deux é"))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["body"] for r in lines] == ["one", "deux é"]
    assert lines[1]["to"] == "+33612345679"


def test_fail_for_only_fails_listed_numbers() -> None:
    phone = DummyPhone("dev", {"fail_for": ["+33612345678"], "error": "Rejected", "retries": 0})
    with pytest.raises(Rejected):
        phone.send(OutgoingMessage(to="+33 6 12 34 56 78", body="x"))
    assert phone.send(OutgoingMessage(to="+33612345679", body="x")).status is Status.queued


def test_units_run_out() -> None:
    phone = DummyPhone("dev", {"units": 2, "retries": 0})
    phone.send(OutgoingMessage(to="+33612345678", body="a"))
    phone.send(OutgoingMessage(to="+33612345678", body="b"))
    assert phone.balance().units == 0
    with pytest.raises(InsufficientCredit):
        phone.send(OutgoingMessage(to="+33612345678", body="c"))


def test_malformed_dummy_webhooks_are_parse_errors() -> None:
    phone = DummyPhone("dev")
    for body in (b"", b"not json", b"[1, 2]", b'{"status": "delivered"}'):
        with pytest.raises(WebhookParseError):
            phone.parse_status_callback(WebhookRequest("POST", "http://x/", {}, body))
    with pytest.raises(WebhookParseError):
        phone.parse_inbound(WebhookRequest("POST", "http://x/", {}, b'{"from": "garbage"}'))


def test_simulated_reports_carry_the_token_without_public_url() -> None:
    import smsbridge

    phone = DummyPhone("dev", {"webhook_secret": "tok-123", "delivery_delay": 0})
    reports: list[Any] = []
    bridge = smsbridge.Bridge({"dev": phone})
    bridge.on_status(reports.append)
    result = phone.send(OutgoingMessage(to="+33612345678", body="x"))
    phone.wait_reports()
    assert [r.provider_id for r in reports] == [result.provider_id]
    assert phone.simulate_inbound("+33612345679", "hi").status == 200
    bridge.close()


def test_the_contract_wants_the_exact_error_class() -> None:
    """A phone raising a subclass where the contract expects a plain SendError fails it."""
    from smsbridge.errors import SendError

    class Lenient(TestDummyContract):
        error_cases = {"RateLimited": SendError}

    with pytest.raises(AssertionError, match="raised RateLimited, want SendError"):
        Lenient().test_error_mapping()


def test_the_contract_requires_a_provider_side_check() -> None:
    class Trusting(TestDummyContract):
        assert_provider_received = PhoneContract.assert_provider_received

    with pytest.raises(NotImplementedError, match="must implement assert_provider_received"):
        Trusting().test_send_happy_path()
