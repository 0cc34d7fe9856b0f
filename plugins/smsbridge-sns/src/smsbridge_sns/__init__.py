"""AWS SNS phone: publish SMS with boto3, two-way inbound over signed SNS notifications.

- ``send`` → ``sns.publish(PhoneNumber, Message, MessageAttributes)`` (sender ID, SMS type,
  origination number, max price); ``MessageId`` is the provider id, status ``queued``.
- Delivery status exists only in CloudWatch Logs: with ``delivery_log_group`` set the phone
  polls it (:meth:`SnsPhone.fetch_status`), otherwise it declares ``status: False``.
- Inbound: an SNS topic (the two-way SMS channel) posts signed notifications to
  ``/webhooks/{phone}/inbound``; signatures are verified (:mod:`smsbridge_sns.signature`)
  before anything is parsed or a subscription confirmed.

botocore's own retries are off: smsbridge's base class retries, with backoff, only what is
safe to retry (a publish that timed out after sending is :class:`AmbiguousSend`, never retried).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

import boto3  # type: ignore[import-untyped,unused-ignore]
import botocore.exceptions as bexc  # type: ignore[import-untyped,unused-ignore]
import requests
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
from pydantic import Field, SecretStr, field_validator

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InvalidRecipient,
    InvalidSender,
    ProviderUnavailable,
    Rejected,
    UnsupportedFeature,
    WebhookError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.numbers import normalize
from smsbridge.phone import Phone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from .errors import map_client_error
from .payloads import find_log_entry, incoming_message, status_report
from .signature import CertificateCache, Fetcher, SnsSignatureVerifier, check_sns_url

__all__ = ["SnsOptions", "SnsPhone", "SubscriptionNotConfirmed"]

log = logging.getLogger("smsbridge.sns")

# AWS: 1-11 alphanumeric characters, at least one letter, no spaces.
SENDER_ID_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")


class SubscriptionNotConfirmed(WebhookError):
    """Confirming a verified subscription failed: HTTP 502, so SNS retries the request."""

    status_code = 502


class SnsOptions(PhoneOptions):
    region: str | None = Field(default=None, description="AWS region, e.g. eu-west-1.")
    aws_access_key_id: SecretStr | None = Field(default=None, description="Else boto3's chain.")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Else boto3's chain.")
    aws_session_token: SecretStr | None = Field(default=None, description="Temporary credentials.")
    profile: str | None = Field(default=None, description="Named profile in ~/.aws/config.")
    endpoint_url: str | None = Field(default=None, description="Override (tests, VPC endpoints).")
    sender_id: str | None = Field(default=None, description="Default AWS.SNS.SMS.SenderID.")
    sms_type: Literal["Transactional", "Promotional"] = Field(default="Transactional")
    origination_number: str | None = Field(default=None, description="AWS.MM.SMS.OriginationNumber")
    max_price: Decimal | None = Field(default=None, gt=0, description="USD per message.")
    check_opt_out: bool = Field(default=False, description="Refuse opted-out numbers first.")
    delivery_log_group: str | None = Field(
        default=None, description="CloudWatch Logs group of SMS delivery status (enables status)."
    )
    delivery_log_lookback_hours: float = Field(default=96.0, gt=0)
    topic_arns: list[str] | None = Field(
        default=None, description="Only accept inbound notifications from these topics."
    )
    confirm_subscriptions: bool = Field(default=True, description="Confirm signed subscriptions.")

    @field_validator("sender_id")
    @classmethod
    def _sender_id(cls, value: str | None) -> str | None:
        if value is not None and not SENDER_ID_RE.match(value):
            raise ValueError("sender_id must be 1-11 letters/digits with at least one letter")
        return value

    @field_validator("sms_type", mode="before")
    @classmethod
    def _sms_type(cls, value: Any) -> Any:
        return value.strip().capitalize() if isinstance(value, str) else value

    @field_validator("origination_number")
    @classmethod
    def _origination(cls, value: str | None) -> str | None:
        return normalize(value) if value else value


class SnsPhone(Phone):
    """A phone sending through AWS SNS (``boto3``)."""

    plugin: ClassVar[str] = "sns"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True,
        receive=True,
        receive_mode="webhook",
        status=False,  # True per instance when delivery_log_group is set (see caps)
        status_mode=None,
        mms_send=False,
        mms_receive=False,
        flash=False,
        sender_name=True,
        unicode=True,
        long_messages=True,
        max_segments=10,
        balance=False,
        default_rate_limit=20.0,
    )
    Options: ClassVar[type[PhoneOptions]] = SnsOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {
        "SUCCESS": Status.delivered,
        "FAILURE": Status.failed,
    }
    options: SnsOptions

    def __init__(
        self,
        name: str,
        options: Any = None,
        *,
        boto_session: boto3.session.Session | None = None,
        fetch_url: Fetcher | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, options, **kw)
        self._boto_session = boto_session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.fetch_url: Fetcher = fetch_url or self._http_get
        self.verifier = SnsSignatureVerifier(
            CertificateCache(lambda url: self.fetch_url(url)),
            topic_arns=self.options.topic_arns,
            clock=self.clock,
        )

    # ------------------------------------------------------------------ description
    @property
    def caps(self) -> Capabilities:
        caps = super().caps
        if self.options.delivery_log_group:
            caps = caps.replace(status=True, status_mode="poll")
        return caps

    @property
    def webhook_protected(self) -> bool:
        return True  # every notification is signature-checked

    # ------------------------------------------------------------------ boto3 clients
    def _client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = self._make_client(service)
            return client

    def _make_client(self, service: str) -> Any:
        o = self.options
        try:
            session = self._boto_session or boto3.session.Session(
                aws_access_key_id=_reveal(o.aws_access_key_id),
                aws_secret_access_key=_reveal(o.aws_secret_access_key),
                aws_session_token=_reveal(o.aws_session_token),
                profile_name=o.profile,
                region_name=o.region,
            )
            config = Config(
                connect_timeout=o.timeout,
                read_timeout=o.timeout,
                # SNS calls: smsbridge's base retries (and never retries an ambiguous
                # publish). Log reads are idempotent: botocore may retry those.
                retries={
                    "mode": "standard",
                    "total_max_attempts": 1 if service == "sns" else 1 + o.retries,
                },
                user_agent_extra="smsbridge",
            )
            return session.client(service, endpoint_url=o.endpoint_url, config=config)
        except bexc.ProfileNotFound:
            raise AuthError(f"AWS profile {o.profile!r} not found", phone=self.name) from None
        except bexc.NoRegionError:
            raise ConfigError(
                f"phone '{self.name}': no AWS region (set `region` or AWS_DEFAULT_REGION)",
                key="region",
            ) from None

    @property
    def sns(self) -> Any:
        """The boto3 SNS client (created on first use; a botocore Stubber can wrap it)."""
        return self._client("sns")

    @property
    def logs(self) -> Any:
        """The boto3 CloudWatch Logs client (delivery-status polling)."""
        return self._client("logs")

    def _call(self, client: Any, operation: str, *, sends: bool = False, **params: Any) -> Any:
        """One AWS call; every botocore failure becomes a smsbridge error."""
        try:
            return getattr(client, operation)(**params)
        except bexc.ClientError as exc:
            raise map_client_error(exc, self.name, operation) from None
        except (bexc.NoCredentialsError, bexc.PartialCredentialsError) as exc:
            raise AuthError(
                f"AWS credentials missing: {type(exc).__name__}", phone=self.name
            ) from None
        except (bexc.CredentialRetrievalError, bexc.NoAuthTokenError, bexc.TokenRetrievalError):
            raise AuthError("AWS credentials could not be retrieved", phone=self.name) from None
        except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as exc:
            # Nothing reached AWS (covers SSL and proxy failures too).
            raise ProviderUnavailable(
                f"cannot reach AWS {operation}: {type(exc).__name__}", phone=self.name
            ) from None
        except (bexc.ReadTimeoutError, bexc.ConnectionClosedError, bexc.HTTPClientError) as exc:
            if sends:
                raise AmbiguousSend(
                    f"no answer to {operation} after the request was sent "
                    f"({type(exc).__name__}); the message may or may not have gone out",
                    phone=self.name,
                ) from None
            raise ProviderUnavailable(
                f"AWS {operation} did not answer: {type(exc).__name__}", phone=self.name
            ) from None

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        """An E.164 origination number, or an AWS sender ID (1-11 alphanumerics, a letter)."""
        if sender.startswith("+"):
            try:
                normalize(sender)
            except InvalidRecipient:
                raise InvalidSender(f"sender {sender!r} is not a valid E.164 number") from None
            return
        if not SENDER_ID_RE.match(sender):
            raise InvalidSender(
                f"SNS sender ID {sender!r} must be 1-11 letters or digits, at least one letter,"
                " no spaces"
            )

    def message_attributes(self, message: PreparedMessage) -> dict[str, dict[str, str]]:
        o = self.options
        attrs = {"AWS.SNS.SMS.SMSType": _string(o.sms_type)}
        sender_id, origination = o.sender_id, o.origination_number
        if message.sender:
            if message.sender.startswith("+"):
                origination = normalize(message.sender)
            else:
                sender_id = message.sender
        if sender_id:
            attrs["AWS.SNS.SMS.SenderID"] = _string(sender_id)
        if origination:
            attrs["AWS.MM.SMS.OriginationNumber"] = _string(origination)
        if o.max_price is not None:
            attrs["AWS.SNS.SMS.MaxPrice"] = {"DataType": "Number", "StringValue": str(o.max_price)}
        return attrs

    def submit(self, message: PreparedMessage) -> Submission:
        if self.options.check_opt_out:
            answer = self._call(
                self.sns, "check_if_phone_number_is_opted_out", phoneNumber=message.to
            )
            if answer.get("isOptedOut"):
                raise Rejected(
                    f"{message.to} opted out of SMS from this AWS account",
                    opt_out=True,
                    provider_code="OptedOut",
                    phone=self.name,
                )
        response = self._call(
            self.sns,
            "publish",
            sends=True,
            PhoneNumber=message.to,
            Message=message.body,
            MessageAttributes=self.message_attributes(message),
        )
        raw = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        return Submission(provider_id=raw.get("MessageId"), status=Status.queued, raw=raw)

    # ------------------------------------------------------------------ delivery status
    def fetch_status(self, provider_id: str) -> StatusReport:
        """Read the delivery-status CloudWatch Logs (success group, then ``/Failure``)."""
        group = self.options.delivery_log_group
        if not group:
            raise UnsupportedFeature(
                f"phone '{self.name}' (sns) has no delivery status: set delivery_log_group"
            )
        start = self.clock() - timedelta(hours=self.options.delivery_log_lookback_hours)
        for name in (group, group + "/Failure"):
            entry = find_log_entry(
                lambda **params: self._call(self.logs, "filter_log_events", **params),
                name,
                provider_id,
                int(start.timestamp() * 1000),
            )
            if entry is not None:
                return status_report(self.name, provider_id, entry, self.map_status, self.clock())
        return StatusReport(
            provider_id=provider_id, phone=self.name, status=Status.unknown, at=self.clock()
        )

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        super().verify_webhook(request)  # allow_ips and optional ?token=
        self.verifier.verify(request)

    def handle_webhook_extra(self, kind: str, request: WebhookRequest) -> bool:
        envelope = self.verifier.verify(request)  # never act on an unverified message
        kind_ = envelope["Type"]
        if kind_ == "SubscriptionConfirmation":
            if not self.options.confirm_subscriptions:
                log.warning(
                    "phone %s: subscription to %s not confirmed (disabled)",
                    self.name,
                    envelope.get("TopicArn"),
                )
                return True
            url = str(envelope.get("SubscribeURL") or "")
            check_sns_url(url, "SubscribeURL")
            try:
                self.fetch_url(url)
            except Exception as exc:  # answer 5xx so that SNS sends the confirmation again
                raise SubscriptionNotConfirmed(
                    f"could not confirm the SNS subscription: {type(exc).__name__}"
                ) from None
            log.info("phone %s: confirmed SNS subscription to %s", self.name, envelope["TopicArn"])
            return True
        if kind_ == "UnsubscribeConfirmation":
            log.warning("phone %s: unsubscribed from %s", self.name, envelope.get("TopicArn"))
            return True
        return False

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        return [incoming_message(self.name, request.json(), self.clock())]

    # ------------------------------------------------------------------ admin
    def check(self) -> None:
        self._call(self.sns, "get_sms_attributes", attributes=["DefaultSMSType"])
        if self.options.delivery_log_group:
            self._call(
                self.logs,
                "describe_log_groups",
                logGroupNamePrefix=self.options.delivery_log_group,
                limit=1,
            )

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        super().close()

    def _http_get(self, url: str) -> bytes:
        if self._session is None:
            self._session = requests.Session()
        response = self._session.get(url, timeout=self.options.timeout)
        response.raise_for_status()
        return response.content


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}
