"""Sending through OVH jobs: payload, per-receiver results, errors (beyond the contract)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    RateLimited,
    Rejected,
)
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status
from smsbridge.testing import free_port

TO = "+33612345678"
MakePhone = Callable[..., OvhPhone]


def msg(body: str = "Bonjour", **fields: object) -> OutgoingMessage:
    return OutgoingMessage(to=TO, body=body, **fields)  # type: ignore[arg-type]


def test_shortcode_send_uses_sender_for_response(fake: OvhFake, make_phone: MakePhone) -> None:
    result = make_phone().send(msg("Répondez OUI", tag="otp"))
    assert result.status is Status.queued
    assert result.provider_id == str(fake.last_id)
    payload = fake.payloads[int(result.provider_id)]
    assert payload == {
        "message": "Répondez OUI",
        "receivers": [TO],
        "charset": "UTF-8",
        "noStopClause": False,
        "senderForResponse": True,
        "tag": "otp",
    }
    assert result.raw["totalCreditsRemoved"] == 1
    assert result.raw["creditsLeft"] == 99


def test_named_sender_and_job_options(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone(
        sender="MonService", no_stop_clause=True, priority="high", validity_period=2880
    )
    result = phone.send(msg())
    payload = fake.payloads[int(result.provider_id or 0)]
    assert payload["sender"] == "MonService"
    assert payload["senderForResponse"] is False
    assert payload["noStopClause"] is True
    assert payload["priority"] == "high"
    assert payload["validityPeriod"] == 2880
    assert "tag" not in payload


def test_per_message_sender_overrides_option(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.senders.add("Promo")
    result = make_phone(sender="MonService").send(msg(sender="Promo"))
    assert fake.payloads[int(result.provider_id or 0)]["sender"] == "Promo"


def test_unknown_sender_is_invalid_sender(fake: OvhFake, make_phone: MakePhone) -> None:
    with pytest.raises(InvalidSender, match="does not exists"):
        make_phone(sender="Inconnu").send(msg())
    assert not fake.outgoing


def test_bad_sender_refused_before_any_call(fake: OvhFake, make_phone: MakePhone) -> None:
    with pytest.raises(InvalidSender):
        make_phone().send(msg(sender="Far-too-long-name"))
    assert fake.requests == []


def test_all_receivers_invalid_in_a_200(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.invalid_receivers.add(TO)
    with pytest.raises(InvalidRecipient) as info:
        make_phone().send(msg())
    assert info.value.recipient == TO
    assert fake.credits_left == 100  # nothing was charged
    job = [r for r in fake.requests if r["path"].endswith("/jobs")]
    assert len(job) == 1


def test_long_unicode_message_costs_its_segments(fake: OvhFake, make_phone: MakePhone) -> None:
    body = "é" * 70 + "ç" * 70  # 140 UCS-2 units: 3 segments of 67
    result = make_phone().send(msg(body))
    assert result.segments == 3 and result.encoding == "ucs2"
    assert result.raw["totalCreditsRemoved"] == 3
    assert fake.credits_left == 97


def test_credit_exhaustion(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.credits_left = 1
    phone = make_phone()
    phone.send(msg())
    with pytest.raises(InsufficientCredit) as info:
        phone.send(msg())
    assert info.value.retryable is False
    assert info.value.provider_code == "Client::Forbidden"
    assert info.value.raw["http_status"] == 403
    assert info.value.raw["query_id"].startswith("EU.ext-1.fake")


def test_clock_delta_from_auth_time_is_used(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.time_offset = -7200  # OVH's clock two hours behind ours: unsigned-looking requests fail
    make_phone().send(msg())
    stamp = int(fake.requests[-1]["headers"]["x-ovh-timestamp"])
    assert abs(stamp - fake.server_time()) <= 2


@pytest.mark.parametrize(
    ("case", "expected", "code"),
    [
        ("invalid_key", AuthError, "INVALID_KEY"),
        ("invalid_credential", AuthError, "INVALID_CREDENTIAL"),
        ("invalid_signature", AuthError, "INVALID_SIGNATURE"),
        ("not_granted", AuthError, "NOT_GRANTED_CALL"),
        ("not_granted_class", AuthError, "Client::Forbidden"),
        ("not_found", AuthError, "Client::NotFound"),
        ("expired", InsufficientCredit, "Client::Expired"),
        ("bad_request", Rejected, "Client::BadRequest"),
        ("server_error", ProviderUnavailable, "Server::InternalServerError"),
    ],
)
def test_error_bodies(
    fake: OvhFake, make_phone: MakePhone, case: str, expected: type, code: str
) -> None:
    fake.fail_next(case)
    with pytest.raises(expected) as info:
        make_phone().send(msg())
    assert info.value.provider_code == code
    assert "test-as-123" not in str(info.value) and "test-ck-123" not in str(info.value)


def test_bad_signature_gets_ovh_error_body(fake: OvhFake) -> None:
    phone = OvhPhone("ovh-test", fake.phone_options(application_secret="wrong-secret"))
    with pytest.raises(AuthError, match="Invalid signature") as info:
        phone.send(msg())
    assert info.value.raw["body"] == {
        "errorCode": "INVALID_SIGNATURE",
        "httpCode": "400 Bad Request",
        "message": "Invalid signature",
    }
    assert "wrong-secret" not in str(info.value)
    phone.close()


def test_check_reports_bad_credentials(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    phone.check()
    fake.consumer_key = "another-ck"  # the phone's key was revoked at OVH
    with pytest.raises(AuthError, match="credential is not valid"):
        phone.check()


def test_rate_limited_honours_retry_after(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.fail_next(429, {"message": "Too many requests"}, {"Retry-After": "3"})
    with pytest.raises(RateLimited) as info:
        make_phone().send(msg())
    assert info.value.retry_after == 3.0 and info.value.retryable


def test_rate_limited_reads_an_http_date_retry_after(fake: OvhFake, make_phone: MakePhone) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    fake.fail_next(429, {"message": "Too many requests"}, {"Retry-After": later})
    with pytest.raises(RateLimited) as info:
        make_phone().send(msg())
    assert info.value.retry_after is not None and 50 < info.value.retry_after <= 60


def test_unavailable_is_retried_then_sent(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.fail_next("unavailable")
    fake.fail_next("server_error")
    result = make_phone(retries=2).send(msg())
    assert result.provider_id and len(fake.outgoing) == 1


def test_connection_refused_is_provider_unavailable() -> None:
    fake = OvhFake()  # never started: nothing listens on this port
    port = free_port()
    options = fake.phone_options(endpoint=f"http://127.0.0.1:{port}/1.0", retries=0)
    phone = OvhPhone("ovh-test", options)
    with pytest.raises(ProviderUnavailable) as info:
        phone.send(msg())
    assert info.value.retryable
    phone.close()


def test_read_timeout_after_post_is_ambiguous_and_not_retried(
    fake: OvhFake, make_phone: MakePhone
) -> None:
    phone = make_phone(retries=3, timeout=0.2)
    phone.check()  # warm up: learn the clock delta
    fake.stall_next(0.6)
    with pytest.raises(AmbiguousSend):
        phone.send(msg())
    posts = [r for r in fake.requests if r["method"] == "POST"]
    assert len(posts) == 1  # no blind resend


def test_read_timeout_on_get_is_provider_unavailable(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone(timeout=0.2)
    phone.check()
    fake.stall_next(0.6)
    with pytest.raises(ProviderUnavailable):
        phone.balance()


def test_timeout_on_auth_time_is_not_ambiguous(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone(timeout=0.2)
    fake.stall_next(0.6)  # the stall hits the first signed call, after /auth/time
    phone.client._time_delta = None
    with pytest.raises(AmbiguousSend):
        phone.send(msg())
    # /auth/time itself failing means nothing was posted:
    phone2 = OvhPhone(
        "ovh-x", fake.phone_options(endpoint="http://127.0.0.1:9/1.0", retries=0, timeout=0.2)
    )
    with pytest.raises(ProviderUnavailable):
        phone2.send(msg())
    phone2.close()


def test_dropped_connection_after_post_is_ambiguous(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.drop_next()
    with pytest.raises(AmbiguousSend):
        make_phone().send(msg())


def test_html_error_page_on_get_is_unavailable(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.garble_next(502)
    with pytest.raises(ProviderUnavailable):
        make_phone().balance()
