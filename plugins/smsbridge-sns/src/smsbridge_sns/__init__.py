"""AWS SNS phone: publish SMS with boto3, two-way inbound over signed SNS notifications.

- ``send`` → ``sns.publish(PhoneNumber, Message, MessageAttributes)`` (sender ID, SMS type,
  origination number, max price); ``MessageId`` is the provider id, status ``queued``.
- Delivery status exists only in CloudWatch Logs: with ``delivery_log_group`` set the phone
  polls it (:meth:`SnsPhone.fetch_status`), otherwise it declares ``status: False``.
- Inbound: an SNS topic (the two-way SMS channel) posts signed notifications to
  ``/webhooks/{phone}/inbound``; signatures are verified (:mod:`smsbridge_sns.signature`)
  before anything is parsed or a subscription confirmed (:mod:`smsbridge_sns.webhooks`).

botocore's own retries are off: smsbridge's base class retries, with backoff, only what is
safe to retry (a publish that timed out after sending is :class:`AmbiguousSend`, never
retried). AWS errors map through :data:`~smsbridge_sns.errors.ERROR_CODES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import boto3  # type: ignore[import-untyped,unused-ignore]

from smsbridge.capabilities import Capabilities
from smsbridge.errors import Rejected, UnsupportedFeature
from smsbridge.http import WebhookRequest
from smsbridge.message import IncomingMessage, StatusReport
from smsbridge.phone import ErrorRule, HttpPhone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from .clients import AwsClients
from .errors import ERROR_CODES, call_aws
from .options import SnsOptions, check_sender, message_attributes
from .payloads import find_log_entry, incoming_message, status_report
from .signature import CertificateCache, Fetcher, SnsSignatureVerifier
from .webhooks import SubscriptionNotConfirmed, handle_protocol_message

__all__ = ["SnsOptions", "SnsPhone", "SubscriptionNotConfirmed"]


class SnsPhone(HttpPhone):
    """A phone sending through AWS SNS (``boto3``).

    ``boto_session`` replaces the session built from the options; ``fetch_url(url) -> bytes``
    fetches signing certificates and confirms subscriptions (default: the phone's HTTP
    session). Status is polled, and declared, only with ``delivery_log_group`` set.
    """

    plugin: ClassVar[str] = "sns"
    provider_name: ClassVar[str] = "AWS SNS"
    capabilities: ClassVar[Capabilities] = Capabilities(
        receive=True, receive_mode="webhook", sender_name=True, default_rate_limit=20.0
    )
    Options: ClassVar[type[PhoneOptions]] = SnsOptions
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {
        "SUCCESS": Status.delivered,
        "FAILURE": Status.failed,
    }
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = ERROR_CODES
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
        self.clients = AwsClients(name, self.options, boto_session)
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
    @property
    def sns(self) -> Any:
        """The boto3 SNS client (created on first use; a botocore Stubber can wrap it)."""
        return self.clients.get("sns")

    @property
    def logs(self) -> Any:
        """The boto3 CloudWatch Logs client (delivery-status polling)."""
        return self.clients.get("logs")

    # ------------------------------------------------------------------ sending
    def validate_sender(self, sender: str) -> None:
        """An E.164 origination number, or an AWS sender ID (1-11 alphanumerics, a letter)."""
        check_sender(sender)

    def message_attributes(self, message: PreparedMessage) -> dict[str, dict[str, str]]:
        return message_attributes(self.options, message.sender)

    def submit(self, message: PreparedMessage) -> Submission:
        if self.options.check_opt_out:
            answer = call_aws(
                self, self.sns, "check_if_phone_number_is_opted_out", phoneNumber=message.to
            )
            if answer.get("isOptedOut"):
                raise Rejected(
                    f"{message.to} opted out of SMS from this AWS account",
                    opt_out=True,
                    provider_code="OptedOut",
                    phone=self.name,
                )
        response = call_aws(
            self,
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
                lambda **params: call_aws(self, self.logs, "filter_log_events", **params),
                name,
                provider_id,
                int(start.timestamp() * 1000),
            )
            if entry is not None:
                return status_report(self, provider_id, entry)
        return self.report(provider_id, None, status=Status.unknown)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        super().verify_webhook(request)  # allow_ips and optional ?token=
        self.verifier.verify(request)

    def handle_webhook_extra(self, kind: str, request: WebhookRequest) -> bool:
        return handle_protocol_message(
            self.verifier.verify(request),  # never act on an unverified message
            phone=self.name,
            confirm=self.options.confirm_subscriptions,
            fetch=self.fetch_url,
        )

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        return [incoming_message(self.name, request.json(), self.clock())]

    # ------------------------------------------------------------------ admin
    def check(self) -> None:
        call_aws(self, self.sns, "get_sms_attributes", attributes=["DefaultSMSType"])
        if self.options.delivery_log_group:
            call_aws(
                self,
                self.logs,
                "describe_log_groups",
                logGroupNamePrefix=self.options.delivery_log_group,
                limit=1,
            )

    def close(self) -> None:
        self.clients.close()
        super().close()

    def _http_get(self, url: str) -> bytes:
        """GET ``url`` with the phone's session and timeout; the body, or an exception."""
        response = self.session.get(url, timeout=self.options.timeout)
        response.raise_for_status()
        return response.content
