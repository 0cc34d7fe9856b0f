"""TwilioPhone against the local fake Twilio, through the real twilio SDK over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import ValidationError
from smsbridge_twilio import TwilioOptions, TwilioPhone
from smsbridge_twilio.testing import FakeTwilio

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
    UnsupportedFeature,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import OutgoingMessage
from smsbridge.phone import Phone
from smsbridge.registry import available, load_plugin
from smsbridge.status import Status
from smsbridge.testing import PhoneContract, free_port

SENDER = "+15005550006"
TO = "+14155552671"
PUBLIC = "https://sms.example.com"
SERVICE = "MG" + "0" * 31 + "9"
API_KEY = "SK" + "0" * 31 + "7"
MakePhone = Callable[..., TwilioPhone]


def msg(to: str = TO, body: str = "hello", **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(to=to, body=body, **kw)


def form(fake: FakeTwilio) -> dict[str, list[str]]:
    return fake.requests[-1].form


# ---------------------------------------------------------------------- shared contract
class TestTwilioContract(PhoneContract):
    recipient = TO
    error_cases = {
        "opt_out_21610": Rejected,
        "auth_20003": AuthError,
        "account_inactive_20005": AuthError,
        "http_401_without_code": AuthError,
        "rate_20429": RateLimited,
        "http_429_without_code": RateLimited,
        "server_500": ProviderUnavailable,
        "server_503": ProviderUnavailable,
        "connection_dropped_after_post": AmbiguousSend,
        "unlisted_code_21408": SendError,
    }
    status_cases = [
        ("accepted", Status.queued),
        ("scheduled", Status.queued),
        ("queued", Status.queued),
        ("sending", Status.queued),
        ("sent", Status.sent),
        ("delivered", Status.delivered),
        ("read", Status.delivered),
        ("undelivered", Status.failed),
        ("failed", Status.failed),
        ("canceled", Status.failed),
        ("partially_delivered", Status.unknown),
        ("something-new", Status.unknown),
    ]

    @pytest.fixture(autouse=True)
    def _fake(self, fake_twilio: FakeTwilio) -> None:
        self.fake = fake_twilio

    def make_phone(self, **options: Any) -> Phone:
        opts = {**self.fake.phone_options(), "from": SENDER, "timeout": 2, **options}
        return TwilioPhone("tw", opts, public_url=PUBLIC, sleep=lambda s: None)

    def arrange_error(self, phone: Phone, case: str) -> None:
        fail = self.fake.fail_next
        {
            "opt_out_21610": lambda: fail(21610, message="Attempt to send to unsubscribed"),
            "auth_20003": lambda: fail(20003, status=401, message="Authenticate"),
            "account_inactive_20005": lambda: fail(20005, status=401, message="Not active"),
            "http_401_without_code": lambda: fail(status=401, body="{}"),
            "rate_20429": lambda: fail(20429, status=429, message="Too Many Requests"),
            "http_429_without_code": lambda: fail(status=429, body="busy"),
            "server_500": lambda: fail(20500, status=500, message="Internal Server Error"),
            "server_503": lambda: fail(status=503, body="<html>down</html>"),
            "connection_dropped_after_post": lambda: fail(drop=True),
            "unlisted_code_21408": lambda: fail(21408, message="Permission not enabled"),
        }[case]()

    def assert_provider_received(self, phone: Phone, result: Any, body: str) -> None:
        stored = self.fake.messages[result.provider_id]
        assert stored["body"] == body and stored["to"] == result.to

    def _signed(self, phone: Phone, kind: str, params: dict[str, str]) -> WebhookRequest:
        url = phone.callback_url(kind)
        assert url is not None
        return WebhookRequest(
            "POST",
            url,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.fake.sign(url, params),
            },
            body=_encode(params),
        )

    def status_request(self, phone: Phone, provider_id: str, raw_status: str) -> WebhookRequest:
        params = {"MessageSid": provider_id, "MessageStatus": raw_status, "To": TO}
        return self._signed(phone, "status", params)

    def inbound_request(self, phone: Phone, sender: str, body: str) -> WebhookRequest:
        return self._signed(phone, "inbound", self.fake.inbound_params(sender, SENDER, body))

    def unauthenticated_request(self, phone: Phone, kind: str) -> WebhookRequest:
        request = self.status_request(phone, "SM" + "1" * 32, "delivered")
        return WebhookRequest(
            "POST", request.url, headers={"Content-Type": request.content_type}, body=request.body
        )


def _encode(params: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(params).encode()


# ---------------------------------------------------------------------- plugin wiring
def test_entry_point_registered() -> None:
    assert available()["twilio"].value == "smsbridge_twilio:TwilioPhone"
    assert load_plugin("twilio") is TwilioPhone


def test_capabilities() -> None:
    caps = TwilioPhone.capabilities
    assert caps.mms_send and caps.mms_receive and caps.sender_name and caps.balance
    assert caps.status_mode == "webhook" and caps.receive_mode == "webhook"
    assert not caps.flash


# ---------------------------------------------------------------------- options
def test_from_is_the_yaml_key(fake_twilio: FakeTwilio) -> None:
    opts = TwilioOptions.model_validate({**fake_twilio.phone_options(), "from": "+15005550006"})
    assert opts.from_ == "+15005550006"
    assert "from" in TwilioOptions.model_json_schema(by_alias=True)["properties"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"auth_token": None}, "auth_token, or api_key"),
        ({"api_key": API_KEY}, "api_key and api_secret go together"),
        ({"from": None}, "messaging_service_sid"),
        ({"account_sid": "ACnope"}, "account_sid"),
        ({"from": "Bad!Sender"}, "sender ID"),
        ({"from": "12345678901"}, "E.164"),
        ({"validity_period": 36001}, "validity_period"),
        ({"messaging_service_sid": "MGshort"}, "messaging_service_sid"),
        ({"base_url": "ftp://x"}, "http(s)"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_options(fake_twilio: FakeTwilio, change: dict[str, Any], complaint: str) -> None:
    opts = {**fake_twilio.phone_options(), "from": SENDER, **change}
    with pytest.raises(ValidationError) as info:
        TwilioOptions.model_validate({k: v for k, v in opts.items() if v is not None})
    assert complaint in str(info.value)
    assert fake_twilio.auth_token not in str(info.value)


def test_repr_hides_api_secret(fake_twilio: FakeTwilio) -> None:
    opts = {**fake_twilio.phone_options(), "api_key": API_KEY, "api_secret": "test-key-secret"}
    phone = TwilioPhone("tw", {**opts, "from": SENDER})
    assert "test-key-secret" not in repr(phone.options) + str(phone.options) + repr(phone)
    assert fake_twilio.auth_token not in repr(phone.options)


# ---------------------------------------------------------------------- sending
def test_send_sms_wire_format(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(validity_period=600)
    result = phone.send(msg(body="Bonjour ✓"))
    assert result.provider_id and result.provider_id.startswith("SM")
    assert result.status is Status.queued and result.encoding == "ucs2"
    assert result.raw["sid"] == result.provider_id  # the provider's JSON is kept
    sent = fake_twilio.requests[-1]
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert sent.auth == (fake_twilio.account_sid, fake_twilio.auth_token)
    assert sent.form == {
        "To": [TO],
        "From": [SENDER],
        "Body": ["Bonjour ✓"],
        "StatusCallback": [f"{PUBLIC}/webhooks/tw/status"],
        "ValidityPeriod": ["600"],
    }


def test_send_mms(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    media = ("https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg")
    result = make_phone().send(msg(body="two pictures", media=media))
    assert result.provider_id and result.provider_id.startswith("MM")
    assert form(fake_twilio)["MediaUrl"] == list(media)
    assert fake_twilio.messages[result.provider_id]["num_media"] == "2"


def test_send_media_without_body(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    result = make_phone().send(msg(body="", media=("https://cdn.example.com/a.png",)))
    assert result.provider_id
    assert "Body" not in form(fake_twilio)


def test_more_than_ten_media_refused(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    media = tuple(f"https://cdn.example.com/{i}.png" for i in range(11))
    with pytest.raises(UnsupportedFeature, match="at most 10 media"):
        make_phone().send(msg(media=media))
    assert fake_twilio.requests == []


def test_flash_is_refused_before_any_request(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    with pytest.raises(UnsupportedFeature):
        make_phone().send(msg(flash=True))
    assert fake_twilio.requests == []


def test_messaging_service_without_from(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(**{"from": None, "messaging_service_sid": SERVICE})
    result = phone.send(msg())
    assert result.status is Status.queued  # Twilio answers "accepted"
    assert fake_twilio.messages[result.provider_id or ""]["status"] == "accepted"
    sent = form(fake_twilio)
    assert sent["MessagingServiceSid"] == [SERVICE] and "From" not in sent


@pytest.mark.parametrize("sender", ["MyBrand", "12345", "+15005550006", "Shop-24 & C"])
def test_sender_override(make_phone: MakePhone, fake_twilio: FakeTwilio, sender: str) -> None:
    make_phone().send(msg(sender=sender))
    assert form(fake_twilio)["From"] == [sender]


@pytest.mark.parametrize("sender", ["Bad!Name", "TooLongSenderID", "123456789012", "+1555"])
def test_invalid_sender_before_network(
    make_phone: MakePhone, fake_twilio: FakeTwilio, sender: str
) -> None:
    with pytest.raises(InvalidSender):
        make_phone().send(msg(sender=sender))
    assert fake_twilio.requests == []


def test_status_callback_options(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    make_phone(public_url=None).send(msg())
    assert "StatusCallback" not in form(fake_twilio)
    make_phone(status_callback="").send(msg())
    assert "StatusCallback" not in form(fake_twilio)
    make_phone(status_callback="https://hooks.example.org/twilio").send(msg())
    assert form(fake_twilio)["StatusCallback"] == ["https://hooks.example.org/twilio"]
    make_phone(webhook_secret="test-hook-secret").send(msg())
    assert form(fake_twilio)["StatusCallback"] == [
        f"{PUBLIC}/webhooks/tw/status?token=test-hook-secret"
    ]


def test_api_key_auth(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    fake_twilio.api_keys[API_KEY] = "test-key-secret"
    try:
        phone = make_phone(auth_token=None, api_key=API_KEY, api_secret="test-key-secret")
        assert phone.send(msg()).provider_id
        assert fake_twilio.requests[-1].auth == (API_KEY, "test-key-secret")
        phone = make_phone(auth_token=None, api_key=API_KEY, api_secret="wrong-key-secret")
        with pytest.raises(AuthError) as info:
            phone.send(msg())
        assert "wrong-key-secret" not in str(info.value)
    finally:
        fake_twilio.api_keys.clear()


# ---------------------------------------------------------------------- errors, by code
@pytest.mark.parametrize(
    ("to", "sender", "expected", "code"),
    [
        ("+15005550001", SENDER, InvalidRecipient, 21211),
        ("+15005550009", SENDER, InvalidRecipient, 21614),
        (TO, "+15005550001", InvalidSender, 21212),
        (TO, "+15005550007", InvalidSender, 21606),
    ],
)
def test_invalid_numbers_from_twilio(
    make_phone: MakePhone,
    fake_twilio: FakeTwilio,
    to: str,
    sender: str,
    expected: type[MessageError],
    code: int,
) -> None:
    with pytest.raises(expected) as info:
        make_phone().send(msg(to=to, sender=sender))
    assert f"Twilio error {code}" in str(info.value)
    assert info.value.provider_code == str(code)
    assert len(fake_twilio.requests) == 1  # never retried
    if isinstance(info.value, InvalidRecipient):
        assert info.value.recipient == to


def test_21659_not_a_twilio_number(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(21659, message="'From' +15017122661 is not a Twilio phone number")
    with pytest.raises(InvalidSender, match="not a Twilio phone number"):
        make_phone().send(msg())


def test_21610_unsubscribed_is_an_opt_out(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    with pytest.raises(Rejected) as info:
        make_phone().send(msg(to="+15005550004"))
    exc = info.value
    assert exc.opt_out and exc.provider_code == "21610" and not exc.retryable
    assert "unsubscribed recipient" in str(exc)
    assert exc.to_dict()["opt_out"] is True
    assert len(fake_twilio.requests) == 1


@pytest.mark.parametrize(("code", "status"), [(20003, 401), (20005, 401), (None, 401)])
def test_auth_errors(
    make_phone: MakePhone, fake_twilio: FakeTwilio, code: int | None, status: int
) -> None:
    fake_twilio.fail_next(code, status=status, message="Authenticate")
    with pytest.raises(AuthError) as info:
        make_phone().send(msg())
    assert info.value.provider_code == str(code or status)
    assert fake_twilio.auth_token not in str(info.value)


def test_wrong_token_is_an_auth_error(make_phone: MakePhone) -> None:
    with pytest.raises(AuthError) as info:
        make_phone(auth_token="not-the-token").send(msg())
    assert info.value.provider_code == "20003"
    assert "not-the-token" not in str(info.value)


def test_rate_limited_honours_retry_after_then_succeeds(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    waits: list[float] = []
    phone = make_phone(retries=2)
    phone.sleep = waits.append
    fake_twilio.fail_next(20429, status=429, headers={"Retry-After": "3"}, message="Too Many")
    result = phone.send(msg())
    assert result.provider_id
    assert len(fake_twilio.requests) == 2
    assert waits and waits[0] >= 3


def test_rate_limited_exhausted(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(20429, status=429, times=3, headers={"Retry-After": "1.5"})
    with pytest.raises(RateLimited) as info:
        make_phone(retries=2).send(msg())
    assert info.value.retry_after == 1.5 and info.value.retryable
    assert len(fake_twilio.requests) == 3


def test_rate_limited_retry_after_as_http_date(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_twilio.fail_next(20429, status=429, headers={"Retry-After": later})
    with pytest.raises(RateLimited) as info:
        make_phone(retries=0).send(msg())
    assert info.value.retry_after is not None and 20 < info.value.retry_after <= 30


def test_error_raw_and_text_are_redacted(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    token = fake_twilio.auth_token
    fake_twilio.fail_next(20005, status=401, message=f"Account of token {token} not active")
    with pytest.raises(AuthError) as info:
        make_phone().send(msg())
    raw = info.value.raw
    assert raw == {
        "status": 401,
        "code": 20005,
        "message": "Twilio: Account of token *** not active",
    }
    assert token not in str(info.value)


def test_403_without_code_is_an_auth_error(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(status=403, body="{}")
    with pytest.raises(AuthError) as info:
        make_phone().send(msg())
    assert info.value.provider_code == "403" and "HTTP 403" in str(info.value)


def test_rfc9457_service_error_mapped_by_code(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    problem = {
        "type": "https://www.twilio.com/docs/errors/20429",
        "title": "Too Many Requests",
        "status": 429,
        "code": 20429,
        "detail": "Slow down please",
    }
    fake_twilio.fail_next(status=429, body=json.dumps(problem))
    with pytest.raises(RateLimited, match="Slow down please"):
        make_phone(retries=0).send(msg())


def test_5xx_retried_then_succeeds(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(status=502, body="bad gateway", times=2)
    result = make_phone(retries=2).send(msg())
    assert result.provider_id and len(fake_twilio.requests) == 3


def test_read_timeout_after_post_is_ambiguous(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(delay=0.6)
    with pytest.raises(AmbiguousSend):
        make_phone(timeout=0.2, retries=3).send(msg())
    assert len(fake_twilio.requests) == 1  # an ambiguous send is never retried


def test_read_timeout_on_fetch_is_unavailable(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(delay=0.6)
    with pytest.raises(ProviderUnavailable):
        make_phone(timeout=0.2).fetch_status("SM" + "a" * 32)


def test_connection_refused_is_unavailable(make_phone: MakePhone) -> None:
    phone = make_phone(base_url=f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(ProviderUnavailable) as info:
        phone.send(msg())
    assert info.value.retryable


# ---------------------------------------------------------------------- polling & admin
def test_fetch_status_progression(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(public_url=None)
    sid = phone.send(msg()).provider_id or ""
    assert phone.fetch_status(sid).status is Status.queued
    fake_twilio.advance(sid, "sent")
    assert phone.fetch_status(sid).status is Status.sent
    fake_twilio.advance(sid, "undelivered", error_code=30003)
    report = phone.fetch_status(sid)
    assert report.status is Status.failed and report.raw_status == "undelivered"
    assert report.error_code == "30003" and report.recipient == TO
    assert report.at.tzinfo is not None and report.raw["sid"] == sid
    assert fake_twilio.requests[-1].path.endswith(f"/Messages/{sid}.json")


def test_fetch_status_unknown_and_malformed_sid(make_phone: MakePhone) -> None:
    phone = make_phone()
    with pytest.raises(SendError) as info:
        phone.fetch_status("SM" + "b" * 32)
    assert info.value.provider_code == "20404"
    with pytest.raises(MessageError):
        phone.fetch_status("../Balance")


def test_balance(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    balance = make_phone().balance()
    assert balance.units == 12.34 and balance.phone == "tw"
    assert balance.details["currency"] == "USD"
    assert fake_twilio.requests[-1].path.endswith("/Balance.json")


def test_check(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    make_phone().check()
    assert fake_twilio.requests[-1].path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}.json"
    fake_twilio.account_status = "suspended"
    with pytest.raises(AuthError, match="suspended"):
        make_phone().check()
    with pytest.raises(AuthError):
        make_phone(auth_token="not-the-token").check()
