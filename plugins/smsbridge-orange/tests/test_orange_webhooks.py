"""Delivery receipts and inbound SMS: parsing, correlation, webhook auth, over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from smsbridge_orange import OrangePhone
from smsbridge_orange.testing import FakeOrange

from smsbridge.errors import WebhookAuthError, WebhookParseError
from smsbridge.http import WebhookRequest
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status
from smsbridge.testing import FakeServer

from .conftest import HOOK_SECRET, RECIPIENT

SIX = [
    ("DeliveredToTerminal", Status.delivered),
    ("DeliveredToNetwork", Status.sent),
    ("MessageWaiting", Status.queued),
    ("DeliveryImpossible", Status.failed),
    ("DeliveryUncertain", Status.unknown),
    ("DeliveryNotificationNotSupported", Status.unknown),
]


def hook_phone(fake: FakeOrange, url: str, **options: Any) -> OrangePhone:
    options.setdefault("webhook_secret", HOOK_SECRET)
    return OrangePhone("orange-ci", fake.phone_options(**options), public_url=url)


def request(url: str, payload: Any, remote_addr: str = "127.0.0.1") -> WebhookRequest:
    return FakeOrange.webhook_request(url, payload, remote_addr)


@pytest.mark.parametrize(("raw", "expected"), SIX)
def test_dr_mapping_of_all_six_statuses(fake: FakeOrange, raw: str, expected: Status) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    url = phone.callback_url("status")
    assert url is not None
    req = request(url, FakeOrange.delivery_payload("rid-1", f"tel:{RECIPIENT}", raw))
    phone.verify_webhook(req)
    (report,) = phone.parse_status_callback(req)
    assert report.status is expected
    assert report.raw_status == raw
    assert report.provider_id == "rid-1"
    assert report.recipient == RECIPIENT
    assert report.phone == "orange-ci"
    assert report.at.tzinfo is not None
    phone.close()


def test_dr_round_trip_over_http_correlates_by_resource_id(
    fake: FakeOrange, receiver: FakeServer
) -> None:
    phone = hook_phone(fake, receiver.url, rate_limit=1000)
    receiver.state["phone"] = phone
    subscription = phone.subscribe()
    assert subscription.id and "token=***" in (subscription.notify_url or "")
    results = [phone.send(OutgoingMessage(to=RECIPIENT, body=f"m{i}")) for i in range(3)]
    responses = fake.deliver_all("DeliveredToTerminal")
    assert [r.status_code for r in responses] == [200, 200, 200]
    reports = receiver.state["reports"]
    assert {r.provider_id for r in reports} == {r.provider_id for r in results}
    assert all(r.status is Status.delivered and r.recipient == RECIPIENT for r in reports)
    phone.close()


def test_inbound_over_http(fake: FakeOrange, receiver: FakeServer) -> None:
    phone = hook_phone(fake, receiver.url)
    receiver.state["phone"] = phone
    url = phone.callback_url("inbound")
    assert url is not None
    response = fake.post_inbound(url, "+2250701020304", "Oui, je confirme ✓ éèà@")
    assert response.status_code == 200
    (incoming,) = receiver.state["inbound"]
    assert incoming.sender == "+2250701020304"
    assert incoming.body == "Oui, je confirme ✓ éèà@"
    assert incoming.recipient == "+2250000"
    phone.close()


def test_bad_webhook_token_over_http(fake: FakeOrange, receiver: FakeServer) -> None:
    phone = hook_phone(fake, receiver.url)
    receiver.state["phone"] = phone
    bad = f"{receiver.url}/webhooks/orange-ci/status?token=not-the-secret"
    assert (
        fake.post_delivery_receipt(bad, "r", f"tel:{RECIPIENT}", "DeliveredToTerminal").status_code
        == 403
    )
    missing = f"{receiver.url}/webhooks/orange-ci/inbound"
    assert fake.post_inbound(missing, RECIPIENT, "hi").status_code == 403
    assert receiver.state["reports"] == [] and receiver.state["inbound"] == []
    phone.close()


def test_inbound_parsing_seed_sample(fake: FakeOrange) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    payload = {
        "inboundSMSMessageNotification": {
            "inboundSMSMessage": {
                "senderAddress": "tel:+26770000001",
                "destinationAddress": "+26716968",
                "message": "BEGIN Test éèà@ END",
                "dateTime": "2014-04-15T07:40:13Z",
                "messageId": "mo-1",
            }
        }
    }
    (incoming,) = phone.parse_inbound(request("https://sms.example.com/x", payload))
    assert incoming.sender == "+26770000001"
    assert incoming.recipient == "+26716968"  # short number, no tel: — kept as given
    assert incoming.body == "BEGIN Test éèà@ END"
    assert incoming.received_at == datetime(2014, 4, 15, 7, 40, 13, tzinfo=UTC)
    assert incoming.provider_id == "mo-1"
    assert incoming.raw == payload
    phone.close()


def test_inbound_destination_without_plus_and_list(fake: FakeOrange) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    payload = {
        "inboundSMSMessageNotification": {
            "inboundSMSMessage": [
                {
                    "senderAddress": "tel:+2250701020304",
                    "destinationAddress": "2250000",
                    "message": "a",
                },
                {
                    "senderAddress": "+2250701020305",
                    "destinationAddress": "tel:+2250000",
                    "message": "b",
                },
            ]
        }
    }
    messages = phone.parse_inbound(request("https://x/", payload))
    assert [m.body for m in messages] == ["a", "b"]
    assert {m.recipient for m in messages} == {"+2250000"}
    assert messages[0].received_at.tzinfo is not None
    phone.close()


def test_dr_list_form_and_empty_callback_data(fake: FakeOrange) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    payload = {
        "deliveryInfoNotification": {
            "callbackData": "",
            "deliveryInfo": [
                {"address": "tel:+2250701020304", "deliveryStatus": "DeliveredToTerminal"},
                {"address": "tel:+2250701020305", "deliveryStatus": "DeliveryImpossible"},
            ],
        }
    }
    reports = phone.parse_status_callback(request("https://x/", payload))
    assert [r.status for r in reports] == [Status.delivered, Status.failed]
    assert all(r.provider_id is None for r in reports)
    phone.close()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        json.dumps({"inboundSMSMessageNotification": {}}).encode(),
        json.dumps({"deliveryInfoNotification": {"deliveryInfo": {"address": "tel:+1"}}}).encode(),
        json.dumps({"deliveryInfoNotification": {"deliveryInfo": "x"}}).encode(),
    ],
)
def test_malformed_dr_bodies(fake: FakeOrange, body: bytes) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    req = WebhookRequest("POST", "https://x/", {"Content-Type": "application/json"}, body)
    with pytest.raises(WebhookParseError):
        phone.parse_status_callback(req)
    phone.close()


def test_malformed_inbound_bodies(fake: FakeOrange) -> None:
    phone = hook_phone(fake, "https://sms.example.com")
    no_sender = {"inboundSMSMessageNotification": {"inboundSMSMessage": {"message": "x"}}}
    with pytest.raises(WebhookParseError):
        phone.parse_inbound(request("https://x/", no_sender))
    with pytest.raises(WebhookParseError):
        phone.parse_inbound(request("https://x/", FakeOrange.delivery_payload("r", "a", "b")))
    phone.close()


def test_webhook_auth_token_and_allow_ips(fake: FakeOrange) -> None:
    phone = hook_phone(fake, "https://sms.example.com", allow_ips=["196.207.0.0/16"])
    url = phone.callback_url("status")
    assert url is not None and HOOK_SECRET in url
    payload = FakeOrange.delivery_payload("r", f"tel:{RECIPIENT}", "DeliveredToTerminal")
    phone.verify_webhook(request(url, payload, remote_addr="196.207.1.2"))
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(request(url, payload, remote_addr="10.0.0.1"))
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(request(url.replace(HOOK_SECRET, "nope"), payload, "196.207.1.2"))
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(request(url.split("?")[0], payload, "196.207.1.2"))
    phone.close()
