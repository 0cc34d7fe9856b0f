"""Send: wire format, on-net, sender names, and every error family."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from smsbridge_orange.errors import parse_error, to_exception
from smsbridge_orange.testing import TOO_MANY, FakeOrange, gateway, policy_error, service_error

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
)
from smsbridge.message import OutgoingMessage
from smsbridge.testing import free_port

from .conftest import RECIPIENT

FAST = 100_000


def msg(body: str = "Hello!", **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(to=RECIPIENT, body=body, **kw)


def test_wire_format(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(sender_name="MonService")
    result = phone.send(msg("Hello!"))
    sent = fake.sent[-1]
    assert sent["raw_path"] == "/smsmessaging/v1/outbound/tel%3A%2B2250000/requests"
    assert sent["sender"] == "tel:+2250000"
    assert sent["address"] == ["tel:+2250701020304"]
    assert sent["sender_name"] == "MonService"
    assert sent["message"] == "Hello!"
    assert sent["offer"] == "SMS_OCB"
    assert result.provider_id == sent["id"]
    send_call = [r for r in fake.requests if r["path"].endswith("/requests")][-1]
    assert send_call["content_type"] == "application/json"
    assert "resource_type_parameter_management" not in send_call["path"]


def test_no_sender_name_by_default(fake: FakeOrange, make_phone: Any) -> None:
    make_phone().send(msg())
    assert fake.sent[-1]["sender_name"] is None


def test_encoded_resource_url_and_location(fake: FakeOrange, make_phone: Any) -> None:
    fake.resource_url_encoded = True
    result = make_phone().send(msg())
    assert result.provider_id == fake.sent[-1]["id"]
    # no resourceURL in the body: the Location header gives the id
    fake.fail_next(
        201,
        {"outboundSMSMessageRequest": {}},
        headers={
            "Location": "https://api.orange.com/smsmessaging/v1/outbound/"
            "tel%3A%2B2250000/requests/abc-123"
        },
    )
    assert make_phone().send(msg()).provider_id == "abc-123"


def test_on_net_adds_query_parameter_and_uses_orange_only_units(
    fake: FakeOrange, make_phone: Any
) -> None:
    phone = make_phone(on_net=True)
    phone.send(msg())
    send_call = [r for r in fake.requests if r["path"].startswith("/smsmessaging")][-1]
    assert send_call["path"].endswith("/requests?resource_type_parameter_management=SMS_OCB2")
    assert fake.sent[-1]["offer"] == "SMS_OCB2"
    assert fake.contracts["SMS_OCB2"]["units"] == 999
    assert phone.balance().units == 999


def test_unicode_message_reaches_the_provider_intact(fake: FakeOrange, make_phone: Any) -> None:
    body = "Bonjour Aïcha, votre code: 4821 ✓ — à bientôt 😊"
    result = make_phone().send(msg(body))
    assert result.encoding == "ucs2"
    assert fake.sent[-1]["message"] == body


def test_per_message_sender_name(fake: FakeOrange, make_phone: Any) -> None:
    fake.sender_names.add("Promo 2026")
    phone = make_phone(sender_name="MonService")
    phone.send(msg(sender="Promo 2026"))
    assert fake.sent[-1]["sender_name"] == "Promo 2026"
    phone.send(msg(sender="+2250000"))  # the phone's own address: default name kept
    assert fake.sent[-1]["sender_name"] == "MonService"


def test_sender_name_not_whitelisted_is_invalid_sender(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(sender_name="NotApproved")
    with pytest.raises(InvalidSender, match="senderName"):
        phone.send(msg())
    assert fake.sent == []


def test_bad_senders_refused_before_any_call(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone()
    for sender in ("+2250700000000", "Way Too Long Name", "Café!"):
        with pytest.raises(InvalidSender):
            phone.send(msg(sender=sender))
    assert fake.token_requests == 0


def test_invalid_and_foreign_recipients_refused_before_any_call(
    fake: FakeOrange, make_phone: Any
) -> None:
    phone = make_phone()
    with pytest.raises(InvalidRecipient):
        phone.send(OutgoingMessage(to="12", body="x"))
    with pytest.raises(InvalidRecipient, match="does not serve"):
        phone.send(OutgoingMessage(to="+33612345678", body="x"))
    assert fake.token_requests == 0


def test_fake_rejects_bad_wire_input(fake: FakeOrange, make_phone: Any) -> None:
    token = make_phone().token().access_token
    url = f"{fake.url}/smsmessaging/v1/outbound/tel%3A%2B2250000/requests"
    headers = {"Authorization": f"Bearer {token}"}

    def post(request: dict[str, Any]) -> requests.Response:
        return requests.post(
            url, json={"outboundSMSMessageRequest": request}, headers=headers, timeout=5
        )

    good = {
        "address": "tel:+2250701020304",
        "senderAddress": "tel:+2250000",
        "outboundSMSTextMessage": {"message": "hi"},
    }
    assert post(good).status_code == 201
    assert (
        post(dict(good, address="2250701020304")).json()["requestError"]["serviceException"][
            "messageId"
        ]
        == "SVC0004"
    )
    mismatch = post(dict(good, senderAddress="tel:+2210000"))
    assert mismatch.status_code == 400 and "senderAddress" in mismatch.text
    no_auth = requests.post(url, json={}, timeout=5)
    assert no_auth.status_code == 401 and no_auth.json()["code"] == 40


# ---------------------------------------------------------------- error families
@pytest.mark.parametrize(
    ("status", "body", "expected", "code", "text"),
    [
        # gateway family
        (
            503,
            gateway(5, "Service unavailable", "temporary state"),
            ProviderUnavailable,
            "5",
            "Service unavailable",
        ),
        (500, gateway(1, "Internal error", "oops"), ProviderUnavailable, "1", "Internal error"),
        (429, TOO_MANY, RateLimited, "53", "Too many requests"),
        (403, gateway(50, "Access denied", "not authorized"), AuthError, "50", "Access denied"),
        (400, gateway(22, "Invalid body", "not well-formed"), SendError, "22", "Invalid body"),
        # OneAPI service / policy family (with %1 substitution)
        (
            400,
            service_error("SVC0004", "No valid addresses provided in message part %1", "address"),
            InvalidRecipient,
            "SVC0004",
            "No valid addresses provided in message part address",
        ),
        (
            400,
            service_error("SVC0002", "Invalid input value for message part %1", "senderName"),
            InvalidSender,
            "SVC0002",
            "message part senderName",
        ),
        (
            400,
            service_error("SVC0001", "A service error occurred. Error code is %1", "E42"),
            Rejected,
            "SVC0001",
            "Error code is E42",
        ),
        (
            403,
            policy_error(
                "POL0001",
                "A policy error occurred. For example, rate limit error, authorization error. %1",
                "Expired contract",
            ),
            InsufficientCredit,
            "POL0001",
            "Expired contract",
        ),
        (
            403,
            policy_error("POL0001", "A policy error occurred: %1", "No more units in bundle"),
            InsufficientCredit,
            "POL0001",
            "No more units",
        ),
        (
            403,
            policy_error("POL0001", "A policy error occurred: %1", "Rate limit exceeded"),
            RateLimited,
            "POL0001",
            "Rate limit exceeded",
        ),
        (
            400,
            policy_error("POL1102", "SMS Bunch ASP Control (%1)", "blocked"),
            Rejected,
            "POL1102",
            "SMS Bunch ASP Control (blocked)",
        ),
        # OAuth family on an API call
        (
            401,
            {"error": "invalid_token", "error_description": "token unknown"},
            AuthError,
            "invalid_token",
            "token unknown",
        ),
        # no JSON at all
        (502, b"<html>Bad gateway</html>", ProviderUnavailable, None, "Bad gateway"),
        (404, None, SendError, None, "HTTP 404"),
    ],
)
def test_error_families(
    fake: FakeOrange,
    make_phone: Any,
    status: int,
    body: Any,
    expected: type[Exception],
    code: str | None,
    text: str,
) -> None:
    phone = make_phone(retries=0, rate_limit=FAST)
    fake.fail_next(status, body)
    with pytest.raises(expected) as info:
        phone.send(msg())
    assert text in str(info.value)
    if code is not None:
        assert getattr(info.value, "provider_code", None) == code
    for secret in phone.secrets():
        assert secret not in str(info.value)


def test_parse_error_without_json() -> None:
    response = requests.Response()
    response.status_code = 503
    response._content = b"upstream down"
    response.headers["Retry-After"] = "7"
    err = parse_error(response)
    assert err.family == "http" and err.retry_after == 7.0
    assert isinstance(to_exception(err, "p"), ProviderUnavailable)


def test_rate_limited_is_retried_honouring_retry_after(fake: FakeOrange, make_phone: Any) -> None:
    waits: list[float] = []
    phone = make_phone(retries=2, rate_limit=FAST, sleep=waits.append)
    fake.fail_next(429, TOO_MANY, headers={"Retry-After": "2"})
    assert phone.send(msg()).provider_id
    assert len(waits) == 1 and waits[0] >= 2


def test_fake_tps_limiter_throttles_bursts(make_phone: Any) -> None:
    with FakeOrange(tps=5) as fake:
        phone = make_phone(server=fake, retries=0, rate_limit=FAST)
        for _ in range(5):
            phone.send(msg())
        with pytest.raises(RateLimited) as info:
            phone.send(msg())
        assert info.value.retry_after == 1.0 and info.value.provider_code == "53"
        assert fake.throttled == 1


def test_units_run_out(fake: FakeOrange, make_phone: Any) -> None:
    fake.set_units(2)
    phone = make_phone(rate_limit=FAST, retries=0)
    phone.send(msg())
    phone.send(msg())
    with pytest.raises(InsufficientCredit, match="no units left"):
        phone.send(msg())
    assert phone.balance().units == 0


def test_timeout_after_send_is_ambiguous(fake: FakeOrange, make_phone: Any) -> None:
    phone = make_phone(timeout=0.2, retries=3)
    phone.check()
    fake.fail_next(0, delay=0.6)
    with pytest.raises(AmbiguousSend):
        phone.send(msg())
    assert not [r for r in fake.requests if r["path"].endswith("/requests")][1:]


def test_connection_refused_is_provider_unavailable(make_phone: Any) -> None:
    phone = make_phone(base_url=f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(ProviderUnavailable):
        phone.send(msg())


def test_result_raw_is_provider_body(fake: FakeOrange, make_phone: Any) -> None:
    result = make_phone().send(msg())
    assert json.dumps(result.raw)
    assert result.raw["outboundSMSMessageRequest"]["resourceURL"].endswith(result.provider_id)
