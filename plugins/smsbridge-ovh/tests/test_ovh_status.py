"""Status: OVH's callback (GET, ?token=) and polling /outgoing/{id}."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from smsbridge_ovh import OvhPhone
from smsbridge_ovh.testing import OvhFake

from smsbridge.bridge import Bridge
from smsbridge.errors import ConfigError, WebhookAuthError, WebhookParseError
from smsbridge.http import WebhookRequest
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status

MakePhone = Callable[..., OvhPhone]


def test_callback_url_carries_the_token(make_phone: MakePhone) -> None:
    url = make_phone().callback_url("status")
    assert url == "https://sms.example.com/webhooks/ovh-test/status?token=test-secret-123"


@pytest.mark.parametrize("param", ["dlr", "description"])
def test_callback_accepts_dlr_and_description(make_phone: MakePhone, param: str) -> None:
    phone = make_phone()
    request = OvhFake.status_callback(
        phone.callback_url("status") or "", 26929925, ptt=4, dlr=1, param=param
    )
    assert request.method == "GET"
    phone.verify_webhook(request)
    [report] = phone.parse_status_callback(request)
    assert report.provider_id == "26929925"
    assert report.status is Status.delivered
    assert report.raw_status == "dlr:1,ptt:4"
    assert report.at.tzinfo is not None
    assert "token" not in report.raw


def test_failed_callback_keeps_the_ptt_reason(make_phone: MakePhone) -> None:
    phone = make_phone()
    request = OvhFake.status_callback(
        phone.callback_url("status") or "", 7, ptt=24, dlr=2, text="Failed"
    )
    [report] = phone.parse_status_callback(request)
    assert report.status is Status.failed
    assert report.error_code == "ptt:24"
    assert report.error_message == "Failed"
    request = OvhFake.status_callback(phone.callback_url("status") or "", 7, ptt=23)
    [report] = phone.parse_status_callback(request)
    assert report.error_message == "invalid, blacklisted or barred number"


def test_progress_wins_over_waiting(make_phone: MakePhone) -> None:
    phone = make_phone()
    request = OvhFake.status_callback(phone.callback_url("status") or "", 7, ptt=3, dlr=4)
    assert phone.parse_status_callback(request)[0].status is Status.sent


@pytest.mark.parametrize(
    "query",
    ["ptt=4&dlr=1", "id=&dlr=1", "id=12", "id=12&dlr=&ptt="],
)
def test_malformed_callbacks(make_phone: MakePhone, query: str) -> None:
    request = WebhookRequest("GET", f"https://sms.example.com/x?token=test-secret-123&{query}")
    with pytest.raises(WebhookParseError):
        make_phone().parse_status_callback(request)


def test_unmapped_values_are_unknown_not_errors(make_phone: MakePhone) -> None:
    request = WebhookRequest("GET", "https://sms.example.com/x?id=5&description=Success&ptt=x")
    [report] = make_phone().parse_status_callback(request)
    assert report.status is Status.unknown
    assert report.raw_status == "dlr:Success,ptt:x"


def test_wrong_or_missing_token_is_refused(make_phone: MakePhone) -> None:
    phone = make_phone()
    for url in (
        "https://sms.example.com/w?id=1&dlr=1",
        "https://sms.example.com/w?token=nope&id=1&dlr=1",
    ):
        with pytest.raises(WebhookAuthError):
            phone.verify_webhook(WebhookRequest("GET", url))


def test_allow_ips_applies_on_top_of_the_token(make_phone: MakePhone) -> None:
    phone = make_phone(allow_ips=["10.0.0.0/8"])
    request = OvhFake.status_callback(phone.callback_url("status") or "", 1, dlr=1)
    with pytest.raises(WebhookAuthError, match="allow_ips"):
        phone.verify_webhook(request)  # comes from 127.0.0.1


def test_webhook_secret_required_for_status_webhooks(fake: OvhFake) -> None:
    with pytest.raises(ValidationError, match="webhook_secret is required"):
        OvhPhone("ovh", fake.phone_options(webhook_secret=None))


def test_config_file_without_secret_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "smsbridge.yaml"
    path.write_text(
        "phones:\n"
        "  ovh-fr:\n"
        "    plugin: ovh\n"
        "    application_key: test-ak\n"
        "    application_secret: test-as\n"
        "    consumer_key: test-ck\n"
        "    service_name: sms-test-1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="webhook_secret") as info:
        Bridge.from_yaml(path)
    assert "ovh-fr" in str(info.value) and "smsbridge.yaml" in str(info.value)


def test_polling_only_phone_needs_no_secret(fake: OvhFake) -> None:
    phone = OvhPhone("ovh", fake.phone_options(webhook_secret=None, status_webhook=False))
    assert phone.caps.status and phone.caps.status_mode == "poll"
    request = OvhFake.status_callback("https://sms.example.com/webhooks/ovh/status", 1, dlr=1)
    with pytest.raises(WebhookAuthError, match="no webhook_secret"):
        phone.verify_webhook(request)
    phone.close()


def test_fetch_status_reads_outgoing(fake: OvhFake, make_phone: MakePhone) -> None:
    phone = make_phone()
    result = phone.send(OutgoingMessage(to="+33612345678", body="x"))
    assert result.provider_id
    assert phone.fetch_status(result.provider_id).status is Status.queued
    fake.set_status(result.provider_id, ptt=3)
    assert phone.fetch_status(result.provider_id).status is Status.sent
    fake.set_status(result.provider_id, ptt=4, delivery_receipt=1)
    report = phone.fetch_status(result.provider_id)
    assert report.status is Status.delivered
    assert report.raw_status == "dlr:1,ptt:4"
    assert report.raw["receiver"] == "+33612345678"
    fake.set_status(result.provider_id, ptt=27, delivery_receipt=2)
    report = phone.fetch_status(result.provider_id)
    assert report.status is Status.failed and report.error_code == "ptt:27"


def test_fetch_status_of_a_waiting_job(fake: OvhFake, make_phone: MakePhone) -> None:
    fake.hold_jobs = True
    phone = make_phone()
    result = phone.send(OutgoingMessage(to="+33612345678", body="x"))
    report = phone.fetch_status(result.provider_id or "")
    assert report.status is Status.queued and report.raw_status == "job"
    fake.release_jobs()
    assert phone.fetch_status(result.provider_id or "").raw_status == "dlr:0,ptt:0"


def test_fetch_status_of_an_unknown_id(make_phone: MakePhone) -> None:
    report = make_phone().fetch_status("123")
    assert report.status is Status.unknown and report.raw_status == "not-found"
