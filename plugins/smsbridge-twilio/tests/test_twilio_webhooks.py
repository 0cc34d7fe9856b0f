"""Twilio callbacks: signed status callbacks and inbound SMS/MMS, over HTTP and in-process."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from smsbridge_twilio import TwilioPhone
from smsbridge_twilio.signature import verify_signature
from smsbridge_twilio.testing import FakeTwilio

import smsbridge
from smsbridge.errors import WebhookAuthError, WebhookParseError
from smsbridge.http import WebhookRequest
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status

TO = "+14155552671"
SENDER = "+15005550006"
PUBLIC = "https://sms.example.com"
SID = "SM" + "c" * 32
MakePhone = Callable[..., TwilioPhone]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def status_params(status: str = "delivered", **extra: str) -> dict[str, str]:
    return {"MessageSid": SID, "SmsSid": SID, "MessageStatus": status, "To": TO, **extra}


def signed(
    fake: FakeTwilio, url: str, params: dict[str, Any], sign_url: str | None = None
) -> WebhookRequest:
    headers = {**FORM, "X-Twilio-Signature": fake.sign(sign_url or url, params)}
    return WebhookRequest("POST", url, headers=headers, body=urlencode(params, doseq=True).encode())


# ---------------------------------------------------------------------- over real HTTP
def test_status_progression_via_callbacks(
    make_phone: MakePhone, fake_twilio: FakeTwilio, receiver: Any
) -> None:
    phone = receiver.phone = make_phone(public_url=receiver.url)
    result = phone.send(OutgoingMessage(to=TO, body="track me"))
    sid = result.provider_id or ""
    assert fake_twilio.messages[sid]["_status_callback"] == f"{receiver.url}/webhooks/tw/status"
    answers = fake_twilio.advance(sid, "sending", "sent", "delivered")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [r.status for r in receiver.reports] == [Status.queued, Status.sent, Status.delivered]
    assert [r.raw_status for r in receiver.reports] == ["sending", "sent", "delivered"]
    assert all(r.provider_id == sid and r.phone == "tw" for r in receiver.reports)
    assert receiver.reports[-1].recipient == TO


def test_failed_delivery_callback_carries_error_code(
    make_phone: MakePhone, fake_twilio: FakeTwilio, receiver: Any
) -> None:
    phone = receiver.phone = make_phone(public_url=receiver.url, webhook_secret="test-hook-1")
    sid = phone.send(OutgoingMessage(to=TO, body="x")).provider_id or ""
    answers = fake_twilio.advance(sid, "sent", "undelivered", error_code=30003)
    assert [a.status_code for a in answers] == [200, 200]
    report = receiver.reports[-1]
    assert report.status is Status.failed and report.error_code == "30003"
    assert "token" not in report.raw  # the webhook secret is not kept in reports


def test_inbound_sms_over_http(
    make_phone: MakePhone, fake_twilio: FakeTwilio, receiver: Any
) -> None:
    receiver.phone = make_phone(public_url=receiver.url)
    resp = fake_twilio.inbound(f"{receiver.url}/webhooks/tw/inbound", TO, SENDER, "STOP")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/xml"
    assert resp.text.endswith("<Response />")
    (message,) = receiver.reports
    assert message.sender == TO and message.recipient == SENDER and message.body == "STOP"
    assert message.provider_id and message.provider_id.startswith("SM")
    assert message.received_at.tzinfo is not None and message.media == ()


def test_inbound_mms_over_http(
    make_phone: MakePhone, fake_twilio: FakeTwilio, receiver: Any
) -> None:
    receiver.phone = make_phone(public_url=receiver.url)
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "video/mp4"),
    ]
    resp = fake_twilio.inbound(f"{receiver.url}/webhooks/tw/inbound", TO, SENDER, "", media)
    assert resp.status_code == 200
    (message,) = receiver.reports
    assert message.media == tuple(url for url, _ in media)
    assert message.raw["MediaContentType1"] == "video/mp4" and message.body == ""


def test_bad_signatures_over_http(
    make_phone: MakePhone, fake_twilio: FakeTwilio, receiver: Any
) -> None:
    receiver.phone = make_phone(public_url=receiver.url)
    url = f"{receiver.url}/webhooks/tw/status"
    good = fake_twilio.sign(url, status_params())
    tampered = fake_twilio.post(url, status_params("failed"), signature=good)
    wrong_url = fake_twilio.post(
        url, status_params(), sign_url="https://attacker.example.net/webhooks/tw/status"
    )
    missing = requests.post(url, data=status_params(), timeout=5)
    assert [tampered.status_code, wrong_url.status_code, missing.status_code] == [403] * 3
    assert receiver.reports == []
    assert fake_twilio.post(url, status_params()).status_code == 200


# ---------------------------------------------------------------------- signature rules
@pytest.fixture
def phone(make_phone: MakePhone) -> TwilioPhone:
    return make_phone()


def test_valid_signature(phone: TwilioPhone, fake_twilio: FakeTwilio) -> None:
    phone.verify_webhook(signed(fake_twilio, f"{PUBLIC}/webhooks/tw/status", status_params()))


def test_tampered_body(phone: TwilioPhone, fake_twilio: FakeTwilio) -> None:
    url = f"{PUBLIC}/webhooks/tw/status"
    request = signed(fake_twilio, url, status_params())
    forged = WebhookRequest(
        "POST", url, headers=request.headers, body=request.body.replace(b"delivered", b"failed")
    )
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(forged)


def test_wrong_url(phone: TwilioPhone, fake_twilio: FakeTwilio) -> None:
    url = f"{PUBLIC}/webhooks/tw/status"
    for other in (f"{PUBLIC}/webhooks/tw/inbound", "https://other.example.com/webhooks/tw/status"):
        with pytest.raises(WebhookAuthError):
            phone.verify_webhook(signed(fake_twilio, url, status_params(), sign_url=other))


def test_missing_and_wrong_key_signature(phone: TwilioPhone, fake_twilio: FakeTwilio) -> None:
    url = f"{PUBLIC}/webhooks/tw/status"
    body = urlencode(status_params()).encode()
    with pytest.raises(WebhookAuthError, match="missing X-Twilio-Signature"):
        phone.verify_webhook(WebhookRequest("POST", url, headers=FORM, body=body))
    other = FakeTwilio(auth_token="another-test-token")
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(signed(other, url, status_params()))


@pytest.mark.parametrize(
    "signed_as",
    [
        "https://sms.example.com:443/webhooks/tw/status",
        "https://sms.example.com/webhooks/tw/status",
    ],
)
def test_public_url_with_and_without_port(
    phone: TwilioPhone, fake_twilio: FakeTwilio, signed_as: str
) -> None:
    # Behind a proxy the app sees an internal URL; Twilio signed the public one.
    internal = "http://10.0.0.5:8080/webhooks/tw/status"
    phone.verify_webhook(signed(fake_twilio, internal, status_params(), sign_url=signed_as))


def test_public_url_with_path_prefix(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(public_url="https://example.com/sms/")
    internal = "http://127.0.0.1:8000/sms/webhooks/tw/inbound"
    public = "https://example.com/sms/webhooks/tw/inbound"
    params = fake_twilio.inbound_params(TO, SENDER, "hi")
    phone.verify_webhook(signed(fake_twilio, internal, params, sign_url=public))


def test_host_header_is_not_trusted_when_public_url_is_set(
    phone: TwilioPhone, fake_twilio: FakeTwilio
) -> None:
    # Signed for the URL the request claims to come to, but that is not our public URL.
    claimed = "https://evil.example.net/webhooks/tw/status"
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(signed(fake_twilio, claimed, status_params()))


def test_without_public_url_the_request_url_is_checked(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    phone = make_phone(public_url=None)
    url = "http://127.0.0.1:9000/webhooks/tw/status"
    phone.verify_webhook(signed(fake_twilio, url, status_params()))


def test_explicit_status_callback_url(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(status_callback="https://hooks.example.org/twilio/status")
    internal = "http://127.0.0.1:8000/webhooks/tw/status"
    request = signed(
        fake_twilio, internal, status_params(), sign_url="https://hooks.example.org/twilio/status"
    )
    phone.verify_webhook(request)


def test_webhook_secret_and_signature_both_required(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    phone = make_phone(webhook_secret="test-hook-2")
    url = phone.callback_url("status") or ""
    assert url.endswith("?token=test-hook-2")
    phone.verify_webhook(signed(fake_twilio, url, status_params()))
    bare = f"{PUBLIC}/webhooks/tw/status"
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(signed(fake_twilio, bare, status_params()))


def test_repeated_fields_are_signed_with_every_value(
    phone: TwilioPhone, fake_twilio: FakeTwilio
) -> None:
    params = {**status_params(), "Tag": ["b", "a"]}
    phone.verify_webhook(signed(fake_twilio, f"{PUBLIC}/webhooks/tw/status", params))


def test_json_body_signed_with_body_sha256(phone: TwilioPhone, fake_twilio: FakeTwilio) -> None:
    body = json.dumps({"MessageSid": SID, "MessageStatus": "delivered"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    url = f"{PUBLIC}/webhooks/tw/status?bodySHA256={digest}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": fake_twilio.sign(url, {})}
    phone.verify_webhook(WebhookRequest("POST", url, headers=headers, body=body.encode()))
    forged = WebhookRequest(
        "POST", url, headers=headers, body=body.replace("deliv", "fail").encode()
    )
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(forged)


# Twilio's published request-validator case for a JSON body (twilio-python,
# tests/unit/test_request_validator.py): Auth Token, URL, body, its SHA-256, signature.
PUBLISHED_TOKEN = "12345"
PUBLISHED_BODY = '{"property": "value", "boolean": true}'
PUBLISHED_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
PUBLISHED_URL = f"https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={PUBLISHED_HASH}"
PUBLISHED_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="
JSON = {"Content-Type": "application/json"}


def json_request(url: str, body: str, signature: str) -> WebhookRequest:
    headers = {**JSON, "X-Twilio-Signature": signature}
    return WebhookRequest("POST", url, headers=headers, body=body.encode())


def test_published_json_case_verifies() -> None:
    assert hashlib.sha256(PUBLISHED_BODY.encode()).hexdigest() == PUBLISHED_HASH
    request = json_request(PUBLISHED_URL, PUBLISHED_BODY, PUBLISHED_SIGNATURE)
    verify_signature(request, PUBLISHED_TOKEN, [PUBLISHED_URL])
    with pytest.raises(WebhookAuthError, match="does not match"):
        verify_signature(request, "54321", [PUBLISHED_URL])


def test_published_json_case_through_a_phone_without_public_url(make_phone: MakePhone) -> None:
    # No public_url: the URL the request came to is the one checked, as Twilio signed it.
    phone = make_phone(public_url=None, auth_token=PUBLISHED_TOKEN)
    phone.verify_webhook(json_request(PUBLISHED_URL, PUBLISHED_BODY, PUBLISHED_SIGNATURE))
    tampered = PUBLISHED_BODY.replace("true", "false")
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(json_request(PUBLISHED_URL, tampered, PUBLISHED_SIGNATURE))
    # A bodySHA256 for another body, the URL signed as it is: the body hash does not match.
    other = hashlib.sha256(tampered.encode()).hexdigest()
    url = PUBLISHED_URL.replace(PUBLISHED_HASH, other)
    signature = FakeTwilio(auth_token=PUBLISHED_TOKEN).sign(url, {})
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(json_request(url, PUBLISHED_BODY, signature))


@pytest.mark.parametrize("query", ["", "?x=1", "?bodySHA256="], ids=["none", "other", "empty"])
def test_json_body_without_body_sha256_cannot_be_verified(
    phone: TwilioPhone, fake_twilio: FakeTwilio, query: str
) -> None:
    url = f"{PUBLIC}/webhooks/tw/status{query}"
    body = json.dumps({"MessageSid": SID, "MessageStatus": "delivered"})
    request = json_request(url, body, fake_twilio.sign(url, {}))  # the URL itself is signed
    with pytest.raises(WebhookAuthError, match="JSON body without bodySHA256 in the URL"):
        phone.verify_webhook(request)
    with pytest.raises(WebhookAuthError, match="without bodySHA256"):
        verify_signature(request, PUBLISHED_TOKEN, [url])


def test_json_body_with_explicit_status_callback(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    # The configured status_callback has no bodySHA256: it is skipped, not a crash.
    phone = make_phone(status_callback="https://hooks.example.org/twilio/status")
    url = f"{PUBLIC}/webhooks/tw/status"
    request = json_request(
        url, "{}", fake_twilio.sign("https://hooks.example.org/twilio/status", {})
    )
    with pytest.raises(WebhookAuthError, match="without bodySHA256"):
        phone.verify_webhook(request)


def test_json_webhooks_through_the_bridge(
    make_phone: MakePhone, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = smsbridge.Bridge({"tw": make_phone()})
    body = json.dumps({"MessageSid": SID, "MessageStatus": "delivered"})
    bare = f"{PUBLIC}/webhooks/tw/status"
    signed_url = f"{bare}?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    requests_and_answers = [
        (json_request(bare, body, fake_twilio.sign(bare, {})), 403),
        (
            json_request(
                signed_url, body.replace("deliv", "fail"), fake_twilio.sign(signed_url, {})
            ),
            403,
        ),
    ]
    try:
        with caplog.at_level(logging.DEBUG):
            for request, expected in requests_and_answers:
                assert bridge.handle_webhook("tw", "status", request).status == expected
    finally:
        bridge.close()
    assert not any("crashed" in r.getMessage() or r.exc_info for r in caplog.records)
    refusals = [r.getMessage() for r in caplog.records if "refused (403)" in r.getMessage()]
    assert len(refusals) == 2
    assert "JSON body without bodySHA256 in the URL: cannot be verified" in refusals[0]


def test_api_key_only_phone_cannot_check_signatures(
    make_phone: MakePhone, fake_twilio: FakeTwilio
) -> None:
    key = {"auth_token": None, "api_key": "SK" + "0" * 32, "api_secret": "test-key-secret"}
    assert not make_phone(**key).webhook_protected
    assert make_phone(**key, webhook_secret="test-hook-3").webhook_protected
    assert make_phone().webhook_protected


def test_allow_ips_still_applies(make_phone: MakePhone, fake_twilio: FakeTwilio) -> None:
    phone = make_phone(allow_ips=["10.1.0.0/16"])
    request = signed(fake_twilio, f"{PUBLIC}/webhooks/tw/status", status_params())
    with pytest.raises(WebhookAuthError, match="allow_ips"):
        phone.verify_webhook(request)


# ---------------------------------------------------------------------- parsing
def test_status_fields(phone: TwilioPhone) -> None:
    request = signed(
        FakeTwilio(),
        f"{PUBLIC}/webhooks/tw/status",
        status_params("failed", ErrorCode="30007", ErrorMessage="Carrier violation"),
    )
    (report,) = phone.parse_status_callback(request)
    assert report.status is Status.failed and report.raw_status == "failed"
    assert (report.error_code, report.error_message) == ("30007", "Carrier violation")
    assert report.at.tzinfo is not None


def test_status_with_only_legacy_sms_fields(phone: TwilioPhone) -> None:
    body = urlencode({"SmsSid": SID, "SmsStatus": "sent"}).encode()
    (report,) = phone.parse_status_callback(WebhookRequest("POST", PUBLIC, FORM, body))
    assert report.provider_id == SID and report.status is Status.sent


@pytest.mark.parametrize(
    "params",
    [{"MessageStatus": "sent"}, {"MessageSid": SID}, {}],
    ids=["no-sid", "no-status", "empty"],
)
def test_status_parse_errors(phone: TwilioPhone, params: dict[str, str]) -> None:
    request = WebhookRequest("POST", PUBLIC, FORM, urlencode(params).encode())
    with pytest.raises(WebhookParseError):
        phone.parse_status_callback(request)


@pytest.mark.parametrize(
    "params",
    [
        {"Body": "no sender"},
        {"From": TO, "NumMedia": "two"},
        {"From": TO, "NumMedia": "2", "MediaUrl0": "https://x.example/1"},
        {"From": TO, "NumMedia": "-1"},
    ],
    ids=["no-from", "nummedia-nan", "media-missing", "nummedia-negative"],
)
def test_inbound_parse_errors(phone: TwilioPhone, params: dict[str, str]) -> None:
    request = WebhookRequest("POST", PUBLIC, FORM, urlencode(params).encode())
    with pytest.raises(WebhookParseError):
        phone.parse_inbound(request)


def test_inbound_from_short_code_kept_as_is(phone: TwilioPhone) -> None:
    body = urlencode({"From": "12345", "To": SENDER, "Body": "Your code"}).encode()
    (message,) = phone.parse_inbound(WebhookRequest("POST", PUBLIC, FORM, body))
    assert message.sender == "12345" and message.recipient == SENDER


def test_webhook_responses(phone: TwilioPhone) -> None:
    request = WebhookRequest("POST", PUBLIC)
    status, body, content_type = phone.webhook_response("inbound", request)
    assert (status, content_type) == (200, "text/xml")
    assert body == b'<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert phone.webhook_response("status", request)[:2] == (200, b"")
