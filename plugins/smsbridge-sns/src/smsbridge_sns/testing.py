"""Test helpers for apps using the SNS phone (and for this plugin's own tests).

- :class:`MotoSnsServer`: moto in server mode on 127.0.0.1 (real HTTP, real boto3), with
  what it recorded as sent and a way to write delivery-status logs. Needs ``moto[server]``.
- :class:`SnsSigner`: signs SNS envelopes with a certificate made on the spot, and serves
  that certificate to the phone through ``fetch_url`` — so the real signature check runs.

::

    with MotoSnsServer() as aws:
        signer = SnsSigner()
        phone = SnsPhone("sns", aws.phone_options(), fetch_url=signer.fetch_url)
        phone.send(OutgoingMessage(to="+33612345678", body="hi"))
        assert aws.sent_sms()[-1]["message"] == "hi"
        request = signer.inbound_request(sender="+33612345678", body="STOP")
        phone.verify_webhook(request); phone.parse_inbound(request)
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import boto3  # type: ignore[import-untyped,unused-ignore]
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from smsbridge.http import WebhookRequest
from smsbridge.testing import free_port

from .signature import string_to_sign

__all__ = [
    "FAKE_CREDENTIALS",
    "MotoSnsServer",
    "SnsSigner",
    "delivery_log_entry",
    "two_way_sms",
]

# Obviously fake: moto accepts anything.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
MOTO_ACCOUNT = "123456789012"


def delivery_log_entry(
    message_id: str,
    status: str = "SUCCESS",
    destination: str = "+33612345678",
    provider_response: str = "Message has been accepted by phone carrier",
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """One SNS SMS delivery-status log entry, shaped like AWS writes them."""
    at = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return {
        "notification": {"messageId": message_id, "timestamp": at},
        "delivery": {
            "phoneCarrier": "Test Carrier",
            "mnc": 1,
            "mcc": 208,
            "destination": destination,
            "priceInUSD": 0.0075,
            "smsType": "Transactional",
            "providerResponse": provider_response,
            "dwellTimeMs": 600,
            "dwellTimeMsUntilDeviceAck": 1300,
        },
        "status": status,
    }


def two_way_sms(
    sender: str, body: str, recipient: str = "+15550100000", keyword: str = ""
) -> dict[str, Any]:
    """The JSON AWS puts in the SNS ``Message`` of an inbound (two-way) SMS."""
    return {
        "originationNumber": sender,
        "destinationNumber": recipient,
        "messageKeyword": keyword or (body.split() or [""])[0].upper(),
        "messageBody": body,
        "inboundMessageId": str(uuid.uuid4()),
        "previousPublishedMessageId": str(uuid.uuid4()),
    }


class SnsSigner:
    """Makes SNS envelopes signed like AWS does, with a certificate generated here."""

    def __init__(
        self,
        region: str = "us-east-1",
        cert_url: str | None = None,
        topic_arn: str | None = None,
    ) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self.cert_url = cert_url or (
            f"https://sns.{region}.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        )
        self.topic_arn = topic_arn or f"arn:aws:sns:{region}:{MOTO_ACCOUNT}:two-way-sms"
        self.fetched: list[str] = []  # every URL the phone fetched (certificate, SubscribeURL)

    def fetch_url(self, url: str) -> bytes:
        """Pass as ``SnsPhone(..., fetch_url=signer.fetch_url)``: serves the certificate."""
        self.fetched.append(url)
        if url == self.cert_url:
            return self.pem
        if "Action=ConfirmSubscription" in url:
            return b"<ConfirmSubscriptionResponse/>"
        raise requests.HTTPError(f"404 for {url}")

    def sign(self, envelope: dict[str, Any], version: str = "1") -> dict[str, Any]:
        data = dict(envelope, SignatureVersion=version, SigningCertURL=self.cert_url)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(data), padding.PKCS1v15(), algorithm)
        data["Signature"] = base64.b64encode(signature).decode("ascii")
        return data

    def _base(self, kind: str, message: str) -> dict[str, Any]:
        return {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": self.topic_arn,
            "Message": message,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }

    def notification(
        self, message: str, version: str = "1", subject: str | None = None
    ) -> dict[str, Any]:
        data = self._base("Notification", message)
        if subject is not None:
            data["Subject"] = subject
        data["UnsubscribeURL"] = (
            f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
            f"{self.topic_arn}:{uuid.uuid4()}"
        )
        return self.sign(data, version)

    def subscription_confirmation(self, version: str = "1") -> dict[str, Any]:
        token = uuid.uuid4().hex
        data = self._base(
            "SubscriptionConfirmation",
            f"You have chosen to subscribe to the topic {self.topic_arn}.",
        )
        data["Token"] = token
        data["SubscribeURL"] = (
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={self.topic_arn}&Token={token}"
        )
        return self.sign(data, version)

    def request(
        self, envelope: dict[str, Any], url: str = "https://sms.example.com/webhooks/sns/inbound"
    ) -> WebhookRequest:
        """The HTTP request SNS makes to an HTTPS subscription."""
        return WebhookRequest(
            method="POST",
            url=url,
            headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": envelope["Type"],
                "x-amz-sns-message-id": envelope["MessageId"],
                "x-amz-sns-topic-arn": envelope["TopicArn"],
                "User-Agent": "Amazon Simple Notification Service Agent",
            },
            body=json.dumps(envelope).encode("utf-8"),
            remote_addr="127.0.0.1",
        )

    def inbound_request(
        self, sender: str, body: str, recipient: str = "+15550100000", version: str = "1"
    ) -> WebhookRequest:
        return self.request(
            self.notification(json.dumps(two_way_sms(sender, body, recipient)), version)
        )


class MotoSnsServer:
    """moto in server mode on 127.0.0.1, on a free port. Use as a context manager."""

    def __init__(self, region: str = "us-east-1") -> None:
        from moto.server import ThreadedMotoServer  # test extra: moto[server]

        self.region = region
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __enter__(self) -> MotoSnsServer:
        self._server.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.stop()

    def phone_options(self, **options: Any) -> dict[str, Any]:
        return {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            **FAKE_CREDENTIALS,
            **options,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, **FAKE_CREDENTIALS
        )

    def reset(self) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def sent_sms(self) -> list[dict[str, Any]]:
        """What moto recorded as published to phone numbers: message_id, phone_number, message."""
        data = requests.get(f"{self.endpoint_url}/moto-api/data.json", timeout=10).json()
        return list(data.get("sns", {}).get("SMS", []))

    def fetch_certificate(self, url: str) -> bytes:
        """Serve moto's SNS signing certificates (moto signs the HTTP notifications it posts)."""
        path = url.split(".amazonaws.com", 1)[1]
        response = requests.get(
            self.endpoint_url + path,
            # moto's server routes unsigned GETs to S3: name the service the SigV4 way.
            headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/"
                f"{self.region}/sns/aws4_request, SignedHeaders=host, Signature=0"
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.content

    def put_delivery_log(self, group: str, entry: dict[str, Any]) -> None:
        """Write a delivery-status entry as SNS would (creates group and stream)."""
        logs = self.client("logs")
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        stream = uuid.uuid4().hex
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(entry)}],
        )
