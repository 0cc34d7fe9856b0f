"""Inbound over SNS HTTPS notifications: signature checks, subscription confirmation, parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from smsbridge_sns import SnsPhone, SubscriptionNotConfirmed
from smsbridge_sns.signature import check_signing_cert_url, check_sns_url
from smsbridge_sns.testing import FAKE_CREDENTIALS, MotoSnsServer, SnsSigner, two_way_sms

from smsbridge.errors import (
    UnsupportedFeature,
    WebhookAuthError,
    WebhookParseError,
)
from smsbridge.http import WebhookRequest
from smsbridge.testing import FakeServer

OPTS = {"region": "us-east-1", **FAKE_CREDENTIALS}


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


def phone_for(signer: SnsSigner, **options: Any) -> SnsPhone:
    return SnsPhone("sns-in", {**OPTS, **options}, fetch_url=signer.fetch_url)


def body_of(envelope: dict[str, Any], signer: SnsSigner) -> WebhookRequest:
    return signer.request(envelope)


# ---------------------------------------------------------------------- signatures
@pytest.mark.parametrize("version", ["1", "2"])
def test_valid_signature_both_versions(signer: SnsSigner, version: str) -> None:
    phone = phone_for(signer)
    request = signer.inbound_request("+33612345678", "Oui merci", version=version)
    phone.verify_webhook(request)
    [incoming] = phone.parse_inbound(request)
    assert incoming.sender == "+33612345678" and incoming.body == "Oui merci"
    assert incoming.recipient == "+15550100000" and incoming.phone == "sns-in"
    assert incoming.provider_id == incoming.raw["sms"]["inboundMessageId"]
    assert incoming.received_at.tzinfo is not None


def test_subject_is_part_of_the_signature(signer: SnsSigner) -> None:
    phone = phone_for(signer)
    envelope = signer.notification(json.dumps(two_way_sms("+33612345678", "hi")), subject="S")
    phone.verify_webhook(signer.request(envelope))
    envelope["Subject"] = "changed"
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(signer.request(envelope))


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn"])
def test_tampered_message_is_refused(signer: SnsSigner, version: str, field: str) -> None:
    phone = phone_for(signer)
    envelope = signer.notification(json.dumps(two_way_sms("+33612345678", "pay 1")), version)
    envelope[field] = envelope[field].replace("1", "9") + "x"
    with pytest.raises(WebhookAuthError, match="does not verify"):
        phone.verify_webhook(signer.request(envelope))


def test_signature_version_swap_is_refused(signer: SnsSigner) -> None:
    envelope = signer.notification("{}", version="1")
    envelope["SignatureVersion"] = "2"
    with pytest.raises(WebhookAuthError):
        phone_for(signer).verify_webhook(signer.request(envelope))


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.evil.com/cert.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/bucket/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "",
    ],
)
def test_wrong_certificate_host_is_refused_without_fetching(url: str) -> None:
    evil = SnsSigner(cert_url=url or "https://x")
    envelope = evil.notification("{}")
    envelope["SigningCertURL"] = url
    phone = phone_for(evil)
    with pytest.raises(WebhookAuthError, match="SigningCertURL"):
        phone.verify_webhook(evil.request(envelope))
    assert evil.fetched == []


def test_sns_url_check_accepts_real_shapes() -> None:
    check_sns_url("https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-abc.pem")
    check_sns_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem")


@pytest.mark.parametrize(
    "path",
    [
        "/SimpleNotificationService-x.txt",
        "/x.pem.txt",
        "/x.pem/",
        "/x.PEM",
        "/.pem",
        "/",
        "",
        "/x.pem?a=b",
        "/x?a=.pem",
        "/x.pem#frag",
        "/x.pem?",
        "/x%2Epem",
    ],
)
@pytest.mark.parametrize("version", ["1", "2"])
def test_certificate_url_must_name_a_pem_file(path: str, version: str) -> None:
    """Issue 15: on the right host, a SigningCertURL that is not a .pem file is refused (403)
    before any certificate is fetched, as AWS's own validators do."""
    url = f"https://sns.us-east-1.amazonaws.com{path}"
    signer = SnsSigner(cert_url=url)  # signs validly and would serve its certificate there
    request = signer.inbound_request("+33612345678", "hi", version=version)
    with pytest.raises(WebhookAuthError, match=r"SigningCertURL does not name a \.pem file"):
        phone_for(signer).verify_webhook(request)
    assert signer.fetched == []
    with pytest.raises(WebhookAuthError, match=r"\.pem"):
        check_signing_cert_url(url)


def test_non_pem_certificate_url_is_403_through_the_bridge() -> None:
    from smsbridge.bridge import Bridge

    signer = SnsSigner(cert_url="https://sns.us-east-1.amazonaws.com/x.pem.txt")
    bridge = Bridge({"sns-in": phone_for(signer)})
    received: list[Any] = []
    bridge.on_receive(received.append)
    response = bridge.handle_webhook(
        "sns-in", "inbound", signer.inbound_request("+33612345678", "hi")
    )
    assert response.status == 403 and received == [] and signer.fetched == []
    confirm = signer.request(signer.subscription_confirmation())
    assert bridge.handle_webhook("sns-in", "inbound", confirm).status == 403
    assert signer.fetched == []  # neither the certificate nor the SubscribeURL


def test_pem_rule_is_for_the_certificate_only(signer: SnsSigner) -> None:
    check_signing_cert_url(signer.cert_url)
    check_signing_cert_url(
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a.pem"
    )
    phone = phone_for(signer)
    phone.verify_webhook(signer.inbound_request("+33612345678", "hi"))  # a normal .pem passes
    envelope = signer.subscription_confirmation()
    assert not envelope["SubscribeURL"].endswith(".pem")
    request = signer.request(envelope)
    signer.fetched.clear()
    phone.verify_webhook(request)
    assert phone.handle_webhook_extra("inbound", request) is True
    assert envelope["SubscribeURL"] in signer.fetched  # SubscribeURL (no .pem) still confirmed
    check_sns_url(envelope["SubscribeURL"], "SubscribeURL")
    check_sns_url(signer.notification("{}")["UnsubscribeURL"], "UnsubscribeURL")


def test_certificate_signed_by_another_key_is_refused(signer: SnsSigner) -> None:
    forged = SnsSigner(cert_url=signer.cert_url)  # same URL, other key
    request = forged.inbound_request("+33612345678", "hi")
    with pytest.raises(WebhookAuthError, match="does not verify"):
        phone_for(signer).verify_webhook(request)


def test_certificate_fetched_once_and_cached() -> None:
    signer = SnsSigner()
    phone = phone_for(signer)
    for _ in range(3):
        phone.verify_webhook(signer.inbound_request("+33612345678", "hi"))
    assert signer.fetched == [signer.cert_url]
    assert phone.verifier.certificates.fetches == 1


def test_certificate_fetch_failure_is_auth_error(signer: SnsSigner) -> None:
    def broken(url: str) -> bytes:
        raise OSError("unreachable")

    phone = SnsPhone("x", OPTS, fetch_url=broken)
    with pytest.raises(WebhookAuthError, match="certificate"):
        phone.verify_webhook(signer.inbound_request("+33612345678", "hi"))


def test_expired_certificate_is_refused(signer: SnsSigner) -> None:
    later = datetime.now(UTC) + timedelta(days=365)
    phone = SnsPhone("x", OPTS, fetch_url=signer.fetch_url, clock=lambda: later)
    with pytest.raises(WebhookAuthError, match="expired"):
        phone.verify_webhook(signer.inbound_request("+33612345678", "hi"))


def test_topic_allow_list(signer: SnsSigner) -> None:
    request = signer.inbound_request("+33612345678", "hi")
    phone_for(signer, topic_arns=[signer.topic_arn]).verify_webhook(request)
    other = phone_for(signer, topic_arns=["arn:aws:sns:us-east-1:123456789012:other"])
    with pytest.raises(WebhookAuthError, match="TopicArn"):
        other.verify_webhook(request)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        json.dumps(two_way_sms("+33612345678", "raw delivery, unsigned")).encode(),
        json.dumps(
            {
                "Type": "Notification",
                "Message": "{}",
                "MessageId": "m",
                "Timestamp": "t",
                "TopicArn": "a",
            }
        ).encode(),
    ],
)
def test_unsigned_or_malformed_bodies_are_refused(signer: SnsSigner, body: bytes) -> None:
    request = WebhookRequest("POST", "https://sms.example.com/webhooks/sns-in/inbound", body=body)
    with pytest.raises(WebhookAuthError):
        phone_for(signer).verify_webhook(request)


def test_message_type_header_must_match(signer: SnsSigner) -> None:
    envelope = signer.notification("{}")
    request = signer.request(envelope)
    headers = dict(request.headers, **{"x-amz-sns-message-type": "SubscriptionConfirmation"})
    forged = WebhookRequest("POST", request.url, headers=headers, body=request.body)
    with pytest.raises(WebhookAuthError, match="message-type"):
        phone_for(signer).verify_webhook(forged)


def test_token_and_ip_allow_list_still_apply(signer: SnsSigner) -> None:
    phone = phone_for(signer, webhook_secret="test-secret-123", allow_ips=["10.0.0.0/8"])
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(signer.inbound_request("+33612345678", "hi"))  # 127.0.0.1


# ---------------------------------------------------------------------- subscription confirmation
@pytest.mark.parametrize("version", ["1", "2"])
def test_subscription_confirmed_after_verification(signer: SnsSigner, version: str) -> None:
    phone = phone_for(signer)
    envelope = signer.subscription_confirmation(version)
    request = signer.request(envelope)
    signer.fetched.clear()
    phone.verify_webhook(request)
    assert phone.handle_webhook_extra("inbound", request) is True
    assert envelope["SubscribeURL"] in signer.fetched


def test_forged_subscription_is_never_confirmed(signer: SnsSigner) -> None:
    phone = phone_for(signer)
    envelope = signer.subscription_confirmation()
    envelope["SubscribeURL"] = envelope["SubscribeURL"].replace("Token=", "Token=attacker")
    request = signer.request(envelope)
    signer.fetched.clear()
    with pytest.raises(WebhookAuthError):
        phone.handle_webhook_extra("inbound", request)
    assert not any("ConfirmSubscription" in url for url in signer.fetched)


def test_subscription_confirmation_can_be_disabled(signer: SnsSigner) -> None:
    phone = phone_for(signer, confirm_subscriptions=False)
    request = signer.request(signer.subscription_confirmation())
    signer.fetched.clear()
    assert phone.handle_webhook_extra("inbound", request) is True
    assert not any("ConfirmSubscription" in url for url in signer.fetched)


def test_subscription_confirm_failure_asks_sns_to_retry(signer: SnsSigner) -> None:
    def only_cert(url: str) -> bytes:
        if url == signer.cert_url:
            return signer.pem
        raise OSError("network down")

    phone = SnsPhone("x", OPTS, fetch_url=only_cert)
    with pytest.raises(SubscriptionNotConfirmed) as info:
        phone.handle_webhook_extra("inbound", signer.request(signer.subscription_confirmation()))
    assert info.value.status_code >= 500  # SNS retries 5xx answers


def test_unsubscribe_confirmation_is_handled(signer: SnsSigner) -> None:
    envelope = signer.subscription_confirmation()
    envelope["Type"] = "UnsubscribeConfirmation"
    envelope = signer.sign({k: v for k, v in envelope.items() if k != "Signature"})
    assert phone_for(signer).handle_webhook_extra("inbound", signer.request(envelope)) is True


def test_notification_is_left_to_the_parser(signer: SnsSigner) -> None:
    request = signer.inbound_request("+33612345678", "hi")
    assert phone_for(signer).handle_webhook_extra("inbound", request) is False


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "message",
    ["not json", json.dumps({"messageBody": "no sender"}), json.dumps(["a"])],
)
def test_bad_two_way_payload_is_parse_error(signer: SnsSigner, message: str) -> None:
    request = signer.request(signer.notification(message))
    phone = phone_for(signer)
    phone.verify_webhook(request)
    with pytest.raises(WebhookParseError):
        phone.parse_inbound(request)


def test_inbound_numbers_are_normalised(signer: SnsSigner) -> None:
    request = signer.inbound_request("33612345678", "hi", recipient="12345")
    [incoming] = phone_for(signer).parse_inbound(request)
    assert incoming.sender == "+33612345678" and incoming.recipient == "12345"


@pytest.mark.parametrize("sender", ["hello", "12345", "+33 6 12 34 56 7x"])
def test_inbound_sender_must_be_a_number(signer: SnsSigner, sender: str) -> None:
    with pytest.raises(WebhookParseError, match="not a phone number"):
        phone_for(signer).parse_inbound(signer.inbound_request(sender, "hi"))


def test_parse_refuses_non_notification(signer: SnsSigner) -> None:
    with pytest.raises(WebhookParseError):
        phone_for(signer).parse_inbound(signer.request(signer.subscription_confirmation()))


def test_status_webhook_unsupported(signer: SnsSigner) -> None:
    with pytest.raises(UnsupportedFeature):
        phone_for(signer).parse_status_callback(signer.inbound_request("+33612345678", "x"))


# ---------------------------------------------------------------------- moto end to end
class _Capture(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.state["requests"].append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_moto_signed_notification_verifies_end_to_end(moto_sns: MotoSnsServer) -> None:
    """moto posts a real SNS HTTP notification (SignatureVersion 2, its own certificate)."""
    sns = moto_sns.client("sns")
    with FakeServer(_Capture, {"requests": []}) as hook:
        topic = sns.create_topic(Name="two-way-e2e")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{hook.url}/webhooks/sns/inbound")
        sns.publish(TopicArn=topic, Message=json.dumps(two_way_sms("+33612345678", "Bonsoir")))
        [(headers, body)] = hook.state["requests"]
    phone = SnsPhone(
        "sns", moto_sns.phone_options(topic_arns=[topic]), fetch_url=moto_sns.fetch_certificate
    )
    request = WebhookRequest(
        "POST",
        f"{hook.url}/webhooks/sns/inbound",
        headers=headers,
        body=body,
        remote_addr="127.0.0.1",
    )
    phone.verify_webhook(request)
    assert phone.handle_webhook_extra("inbound", request) is False
    [incoming] = phone.parse_inbound(request)
    assert (incoming.sender, incoming.body) == ("+33612345678", "Bonsoir")
    tampered = WebhookRequest(
        "POST", request.url, headers=headers, body=body.replace(b"Bonsoir", b"Bonjour")
    )
    with pytest.raises(WebhookAuthError):
        phone.verify_webhook(tampered)


# ---------------------------------------------------------------------- through the bridge
def test_bridge_dispatch(signer: SnsSigner) -> None:
    from smsbridge.bridge import Bridge

    phone = phone_for(signer)
    bridge = Bridge({"sns-in": phone})
    received: list[Any] = []
    bridge.on_receive(received.append)

    signer.fetched.clear()
    confirm = signer.request(signer.subscription_confirmation("2"))
    assert bridge.handle_webhook("sns-in", "inbound", confirm).status == 200
    assert any("ConfirmSubscription" in url for url in signer.fetched)

    ok = bridge.handle_webhook("sns-in", "inbound", signer.inbound_request("+33612345678", "OUI"))
    assert ok.status == 200 and [m.body for m in received] == ["OUI"]

    forged = SnsSigner(cert_url=signer.cert_url).inbound_request("+33612345678", "NON")
    assert bridge.handle_webhook("sns-in", "inbound", forged).status == 403
    assert len(received) == 1

    def fail(url: str) -> bytes:
        if url == signer.cert_url:
            return signer.pem
        raise OSError("down")

    phone.fetch_url = fail
    again = signer.request(signer.subscription_confirmation())
    assert bridge.handle_webhook("sns-in", "inbound", again).status == 502
