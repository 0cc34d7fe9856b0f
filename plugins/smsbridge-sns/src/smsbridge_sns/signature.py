"""SNS HTTP(S) message signature verification (SignatureVersion 1 = SHA1, 2 = SHA256).

AWS documents the check: take the listed keys of the JSON envelope in order, write each as
``Key\\nValue\\n``, and verify the base64 ``Signature`` with the public key of the X.509
certificate at ``SigningCertURL`` — which must be HTTPS on an SNS host of amazonaws.com and
name a ``.pem`` file (as AWS's own validators require), so an attacker cannot bring their own
certificate. Certificates are cached per URL.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from smsbridge.errors import WebhookAuthError, WebhookParseError
from smsbridge.http import WebhookRequest

__all__ = [
    "CertificateCache",
    "Fetcher",
    "SnsSignatureVerifier",
    "check_signing_cert_url",
    "check_sns_url",
    "string_to_sign",
]

Fetcher = Callable[[str], bytes]

SNS_HOST_RE = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")

SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_KEYS["UnsubscribeConfirmation"] = SIGNED_KEYS["SubscriptionConfirmation"]
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


def check_sns_url(url: str, what: str = "SigningCertURL") -> None:
    """Refuse anything but ``https://sns.<region>.amazonaws.com[.cn]/...``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "https"
        or parts.username is not None
        or parts.port not in (None, 443)
        or not SNS_HOST_RE.match(host)
    ):
        raise WebhookAuthError(f"{what} is not an HTTPS amazonaws.com SNS URL: {url[:200]!r}")


def check_signing_cert_url(url: str) -> None:
    """:func:`check_sns_url`, and the path must name a ``.pem`` file (no query, no fragment).

    AWS's validators refuse a certificate URL that does not end in ``.pem`` (case-sensitive);
    SNS's real ones are ``/SimpleNotificationService-<hex>.pem`` with nothing after.
    """
    check_sns_url(url, "SigningCertURL")
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if "?" in url or "#" in url or not name.endswith(".pem") or name == ".pem":
        raise WebhookAuthError("SigningCertURL does not name a .pem file")


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    keys: Iterable[str] = SIGNED_KEYS[envelope["Type"]]
    out = []
    for key in keys:
        if key in envelope and envelope[key] is not None:
            out.append(f"{key}\n{envelope[key]}\n")
        elif key != "Subject":
            raise WebhookParseError(f"SNS message lacks {key}")
    return "".join(out).encode("utf-8")


class CertificateCache:
    """Fetch-once store of SNS signing certificates (thread-safe, bounded)."""

    def __init__(self, fetch: Fetcher, maxsize: int = 32) -> None:
        self.fetch = fetch
        self.maxsize = maxsize
        self.fetches = 0
        self._certs: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        with self._lock:
            cert = self._certs.get(url)
            if cert is not None:
                self._certs.move_to_end(url)
                return cert
        try:
            pem = self.fetch(url)
            self.fetches += 1
            cert = x509.load_pem_x509_certificate(pem)
        except Exception as exc:
            raise WebhookAuthError(
                f"cannot load the SNS signing certificate: {type(exc).__name__}"
            ) from None
        with self._lock:
            self._certs[url] = cert
            while len(self._certs) > self.maxsize:
                self._certs.popitem(last=False)
        return cert


class SnsSignatureVerifier:
    """Verifies SNS envelopes; returns the parsed envelope or raises WebhookAuthError."""

    def __init__(
        self,
        certificates: CertificateCache,
        *,
        topic_arns: Iterable[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.certificates = certificates
        self.topic_arns = frozenset(topic_arns) if topic_arns is not None else None
        self.clock = clock or (lambda: datetime.now(UTC))

    def verify(self, request: WebhookRequest) -> dict[str, Any]:
        try:
            envelope = request.json()
        except WebhookParseError:
            raise WebhookAuthError("not a signed SNS message (body is not JSON)") from None
        if not isinstance(envelope, dict) or envelope.get("Type") not in SIGNED_KEYS:
            raise WebhookAuthError(
                "not a signed SNS message (disable raw message delivery on the subscription)"
            )
        header = request.header("x-amz-sns-message-type")
        if header is not None and header != envelope["Type"]:
            raise WebhookAuthError("x-amz-sns-message-type does not match the message")
        if self.topic_arns is not None and envelope.get("TopicArn") not in self.topic_arns:
            raise WebhookAuthError(f"unexpected TopicArn {envelope.get('TopicArn')!r}")
        algorithm = HASHES.get(str(envelope.get("SignatureVersion")))
        if algorithm is None:
            raise WebhookAuthError(
                f"unsupported SNS SignatureVersion {envelope.get('SignatureVersion')!r}"
            )
        cert_url = str(envelope.get("SigningCertURL") or "")
        check_signing_cert_url(cert_url)
        try:
            signature = base64.b64decode(str(envelope.get("Signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookAuthError("SNS Signature is not base64") from None
        try:
            data = string_to_sign(envelope)
        except WebhookParseError as exc:
            raise WebhookAuthError(str(exc)) from None
        cert = self.certificates.get(cert_url)
        now = self.clock()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise WebhookAuthError("SNS signing certificate is expired or not yet valid")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookAuthError("SNS signing certificate is not RSA")
        try:
            key.verify(signature, data, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise WebhookAuthError("SNS message signature does not verify") from None
        return envelope
