"""Sending: moto in process and in server mode, error mapping (Stubber and real sockets)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends
from smsbridge_sns import SnsPhone
from smsbridge_sns.testing import FAKE_CREDENTIALS, MotoSnsServer, delivery_log_entry

from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    UnsupportedFeature,
)
from smsbridge.message import OutgoingMessage
from smsbridge.status import Status
from smsbridge.testing import FakeServer, free_port

TO = "+33612345678"
REGION = "eu-west-1"


def msg(body: str = "Bonjour", **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(to=fields.pop("to", TO), body=body, **fields)


def capture_publish(phone: SnsPhone) -> list[dict[str, Any]]:
    """Record the Publish parameters boto3 sends (the request still goes out)."""
    seen: list[dict[str, Any]] = []
    phone.sns.meta.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: seen.append(dict(params))
    )
    return seen


# ---------------------------------------------------------------------- moto in process
@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def inproc_phone(**options: Any) -> SnsPhone:
    return SnsPhone("sns", {"region": REGION, **FAKE_CREDENTIALS, **options})


def test_inprocess_publish_recorded_by_moto(aws: None) -> None:
    phone = inproc_phone(sender_id="MonService", max_price="0.50", sms_type="Promotional")
    seen = capture_publish(phone)
    result = phone.send(msg("Votre code: 1234"))
    assert result.status is Status.queued and result.provider_id
    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert backend.sms_messages[result.provider_id] == (TO, "Votre code: 1234")
    attrs = seen[0]["MessageAttributes"]
    assert attrs["AWS.SNS.SMS.SenderID"] == {"DataType": "String", "StringValue": "MonService"}
    assert attrs["AWS.SNS.SMS.SMSType"]["StringValue"] == "Promotional"
    assert attrs["AWS.SNS.SMS.MaxPrice"] == {"DataType": "Number", "StringValue": "0.50"}
    assert "AWS.MM.SMS.OriginationNumber" not in attrs
    assert seen[0]["PhoneNumber"] == TO


def test_inprocess_sender_number_becomes_origination(aws: None) -> None:
    phone = inproc_phone(origination_number="+1 202 555 0143")
    seen = capture_publish(phone)
    phone.send(msg())
    assert seen[0]["MessageAttributes"]["AWS.MM.SMS.OriginationNumber"]["StringValue"] == (
        "+12025550143"
    )
    assert seen[0]["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    phone.send(msg(sender="+447911123456"))
    assert seen[1]["MessageAttributes"]["AWS.MM.SMS.OriginationNumber"]["StringValue"] == (
        "+447911123456"
    )
    phone.send(msg(sender="Brand2"))
    assert seen[2]["MessageAttributes"]["AWS.SNS.SMS.SenderID"]["StringValue"] == "Brand2"


def test_inprocess_opt_out_checked_first(aws: None) -> None:
    """moto reports numbers ending in 99 as opted out: refused before publish."""
    phone = inproc_phone(check_opt_out=True)
    with pytest.raises(Rejected) as info:
        phone.send(msg(to="+33612345699"))
    assert info.value.opt_out and info.value.provider_code == "OptedOut"
    assert sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages == {}
    assert phone.send(msg()).provider_id  # a number not opted out goes


def test_inprocess_provider_length_limit_is_rejected(aws: None) -> None:
    """SNS refuses > 1600 characters (InvalidParameter, not about the number) → Rejected."""
    phone = inproc_phone(max_segments=20, retries=0)
    with pytest.raises(Rejected) as info:
        phone.send(msg("x" * 1700))
    assert info.value.provider_code == "InvalidParameter" and not info.value.opt_out


def test_inprocess_fetch_status_and_check(aws: None) -> None:
    group = f"sns/{REGION}/{DEFAULT_ACCOUNT_ID}/DirectPublishToPhoneNumber"
    phone = inproc_phone(delivery_log_group=group)
    phone.check()
    result = phone.send(msg())
    assert phone.fetch_status(result.provider_id).status is Status.unknown  # no log yet
    logs = boto3.client("logs", region_name=REGION, **FAKE_CREDENTIALS)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    other = delivery_log_entry("someone-else", "FAILURE")
    mine = delivery_log_entry(result.provider_id, "SUCCESS", destination=TO)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": int(time.time() * 1000), "message": m}
            for m in (str(other).replace("'", '"'), "not json", str(mine).replace("'", '"'))
        ],
    )
    report = phone.fetch_status(result.provider_id)
    assert report.status is Status.delivered and report.raw_status == "SUCCESS"
    assert report.recipient == TO and report.at.tzinfo is not None
    assert report.error_message is None


# ---------------------------------------------------------------------- moto server mode
def test_server_mode_send_and_failure_log(moto_sns: MotoSnsServer) -> None:
    group = "sns/us-east-1/123456789012/DirectPublishToPhoneNumber"
    phone = SnsPhone("srv", moto_sns.phone_options(delivery_log_group=group))
    result = phone.send(msg("Rendez-vous à 10h ✓"))
    recorded = [m for m in moto_sns.sent_sms() if m["message_id"] == result.provider_id]
    assert recorded == [
        {"message_id": result.provider_id, "phone_number": TO, "message": "Rendez-vous à 10h ✓"}
    ]
    moto_sns.put_delivery_log(
        group + "/Failure",
        delivery_log_entry(result.provider_id, "FAILURE", provider_response="Phone is unreachable"),
    )
    report = phone.fetch_status(result.provider_id)
    assert report.status is Status.failed
    assert report.error_message == "Phone is unreachable"
    phone.check()
    phone.close()


def test_fetch_status_needs_log_group(moto_sns: MotoSnsServer) -> None:
    with pytest.raises(UnsupportedFeature):
        SnsPhone("srv", moto_sns.phone_options()).fetch_status("x")


def test_balance_unsupported(moto_sns: MotoSnsServer) -> None:
    with pytest.raises(UnsupportedFeature):
        SnsPhone("srv", moto_sns.phone_options()).balance()


# ---------------------------------------------------------------------- sender validation
@pytest.mark.parametrize("sender", ["My Brand", "123456", "TooLongSender1", "Brand-X", "+1"])
def test_invalid_sender_refused_before_network(sender: str) -> None:
    phone = SnsPhone("x", {"region": REGION, "endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(InvalidSender):
        phone.send(msg(sender=sender))


def test_sender_id_option_validated() -> None:
    with pytest.raises(ValueError, match="sender_id"):
        SnsPhone("x", {"region": REGION, "sender_id": "bad id"})


# ---------------------------------------------------------------------- Stubber errors
def stubbed(**options: Any) -> tuple[SnsPhone, Stubber]:
    phone = SnsPhone(
        "stub",
        {
            "region": REGION,
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            **FAKE_CREDENTIALS,
            **options,
        },
        sleep=lambda _s: None,
    )
    stubber = Stubber(phone.sns)
    stubber.activate()
    return phone, stubber


def test_invalid_parameter_on_number_is_invalid_recipient() -> None:
    phone, stub = stubbed(retries=0)
    stub.add_client_error(
        "publish",
        "InvalidParameter",
        f"Invalid parameter: PhoneNumber Reason: {TO} is not valid to publish to",
        400,
    )
    with pytest.raises(InvalidRecipient, match="is not valid to publish") as info:
        phone.send(msg())
    assert info.value.provider_code == "InvalidParameter"


def test_throttling_is_retried_honouring_retry_after() -> None:
    sleeps: list[float] = []
    phone, stub = stubbed(retries=2)
    phone.sleep = sleeps.append
    stub.add_client_error(
        "publish",
        "Throttling",
        "Rate exceeded",
        400,
        response_meta={"HTTPHeaders": {"retry-after": "3"}},
    )
    stub.add_response(
        "publish",
        {"MessageId": "mid-1"},
        expected_params={"PhoneNumber": TO, "Message": "Bonjour", "MessageAttributes": ANY},
    )
    assert phone.send(msg()).provider_id == "mid-1"
    assert len(sleeps) == 1 and sleeps[0] >= 3
    stub.assert_no_pending_responses()


def test_rate_limited_carries_retry_after() -> None:
    phone, stub = stubbed(retries=0)
    stub.add_client_error(
        "publish",
        "Throttled",
        "slow down",
        429,
        response_meta={"HTTPHeaders": {"Retry-After": "7"}},
    )
    with pytest.raises(RateLimited) as info:
        phone.send(msg())
    assert info.value.retry_after == 7.0 and info.value.retryable


def test_retry_after_http_date_is_honoured() -> None:
    phone, stub = stubbed(retries=0)
    stub.add_client_error(
        "publish",
        "Throttling",
        "Rate exceeded",
        400,
        response_meta={"HTTPHeaders": {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}},
    )
    with pytest.raises(RateLimited) as info:
        phone.send(msg())
    assert info.value.retry_after == 0.0  # a date in the past: retry now


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthError), (403, AuthError), (429, RateLimited)]
)
def test_unknown_code_falls_back_on_http_status(status: int, error: type[Exception]) -> None:
    phone, stub = stubbed(retries=0)
    stub.add_client_error("publish", "SomethingNew", "new refusal", status)
    with pytest.raises(error) as info:
        phone.send(msg())
    assert getattr(info.value, "provider_code", None) == "SomethingNew"


def test_error_table_is_the_phone_table() -> None:
    from smsbridge_sns.errors import ERROR_CODES

    assert SnsPhone.ERROR_CODES is ERROR_CODES
    assert ERROR_CODES["Throttling"] is RateLimited


def test_opt_out_check_errors_are_mapped() -> None:
    phone, stub = stubbed(retries=0, check_opt_out=True)
    stub.add_client_error(
        "check_if_phone_number_is_opted_out", "AuthorizationError", "not authorized", 403
    )
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert info.value.phone == "stub"


def test_opt_out_message_in_error_marks_opt_out() -> None:
    phone, stub = stubbed(retries=0)
    stub.add_client_error(
        "publish", "InvalidParameter", "Invalid parameter: The phone number has opted out", 400
    )
    with pytest.raises(Rejected) as info:
        phone.send(msg())
    assert info.value.opt_out and info.value.provider_code == "InvalidParameter"


def test_check_maps_auth_error() -> None:
    phone, stub = stubbed()
    stub.add_client_error("get_sms_attributes", "InvalidClientTokenId", "bad token", 403)
    with pytest.raises(AuthError):
        phone.check()


def test_error_messages_carry_no_secret() -> None:
    phone, stub = stubbed(retries=0, aws_secret_access_key="test-secret-123")
    stub.add_client_error(
        "publish",
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match",
        403,
    )
    with pytest.raises(AuthError) as info:
        phone.send(msg())
    assert "test-secret-123" not in str(info.value) + repr(info.value.raw)
    assert "test-secret-123" not in repr(phone.options)


# ---------------------------------------------------------------------- real sockets
def test_connection_refused_is_provider_unavailable() -> None:
    phone = SnsPhone(
        "down",
        {
            "region": REGION,
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "timeout": 1,
            "retries": 1,
            **FAKE_CREDENTIALS,
        },
        sleep=lambda _s: None,
    )
    with pytest.raises(ProviderUnavailable) as info:
        phone.send(msg())
    assert info.value.retryable and info.value.phone == "down"


class _Slow(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.state["posts"] += 1  # type: ignore[attr-defined]
        if self.server.state["mode"] == "drop":  # type: ignore[attr-defined]
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.server.state["release"].wait(2)  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("mode", ["hang", "drop"])
def test_no_answer_after_publish_is_ambiguous_and_not_retried(mode: str) -> None:
    state: dict[str, Any] = {"posts": 0, "mode": mode, "release": threading.Event()}
    with FakeServer(_Slow, state) as server:
        phone = SnsPhone(
            "slow",
            {
                "region": REGION,
                "endpoint_url": server.url,
                "timeout": 0.3,
                "retries": 3,
                **FAKE_CREDENTIALS,
            },
            sleep=lambda _s: None,
        )
        try:
            with pytest.raises(AmbiguousSend):
                phone.send(msg())
        finally:
            state["release"].set()
        assert state["posts"] == 1  # neither botocore nor smsbridge sent it twice


def test_read_timeout_on_check_is_provider_unavailable() -> None:
    state: dict[str, Any] = {"posts": 0, "mode": "hang", "release": threading.Event()}
    with FakeServer(_Slow, state) as server:
        phone = SnsPhone(
            "slow",
            {"region": REGION, "endpoint_url": server.url, "timeout": 0.3, **FAKE_CREDENTIALS},
        )
        try:
            with pytest.raises(ProviderUnavailable):
                phone.check()
        finally:
            state["release"].set()


def test_missing_credentials_is_auth_error(isolated_aws_env: None) -> None:
    phone = SnsPhone(
        "nocreds",
        {"region": REGION, "retries": 0, "endpoint_url": f"http://127.0.0.1:{free_port()}"},
    )
    with pytest.raises(AuthError, match="credentials"):
        phone.send(msg())


def test_unknown_profile_is_auth_error(isolated_aws_env: None) -> None:
    phone = SnsPhone("prof", {"region": REGION, "profile": "does-not-exist", "retries": 0})
    with pytest.raises(AuthError, match="does-not-exist"):
        phone.send(msg())


def test_missing_region_is_config_error(isolated_aws_env: None) -> None:
    phone = SnsPhone("noregion", {**FAKE_CREDENTIALS})
    with pytest.raises(ConfigError, match="region"):
        phone.send(msg())


def test_timeout_and_retries_reach_botocore(moto_sns: MotoSnsServer) -> None:
    phone = SnsPhone("cfg", moto_sns.phone_options(timeout=4.5, retries=3))
    config = phone.sns.meta.config
    assert config.connect_timeout == 4.5 and config.read_timeout == 4.5
    assert config.retries["total_max_attempts"] == 1  # smsbridge retries publish itself
    assert phone.logs.meta.config.retries["total_max_attempts"] == 4
    assert phone.sns.meta.endpoint_url == moto_sns.endpoint_url


# ---------------------------------------------------------------------- live
@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("SMSBRIDGE_TEST_SNS_TO"), reason="set SMSBRIDGE_TEST_SNS_TO (+ AWS env)"
)
def test_live_send() -> None:
    phone = SnsPhone("live", {"region": os.environ.get("SMSBRIDGE_TEST_SNS_REGION", "us-east-1")})
    phone.check()
    result = phone.send(
        OutgoingMessage(to=os.environ["SMSBRIDGE_TEST_SNS_TO"], body="smsbridge live test")
    )
    assert result.provider_id
