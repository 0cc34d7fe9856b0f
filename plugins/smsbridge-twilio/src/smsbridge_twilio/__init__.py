"""Twilio phone for smsbridge: SMS and MMS through the official ``twilio`` SDK.

The SDK builds every request; its HTTP goes through this phone's ``requests`` session
(:mod:`.transport`: keep-alive, the phone's timeout, network failures mapped by
:class:`HttpPhone`). Twilio errors (:class:`TwilioRestException`, RFC 9457
:class:`TwilioServiceException`) are mapped by code through :data:`ERROR_CODES`
(:mod:`.errors`). Callbacks are verified with the SDK's :class:`RequestValidator` against
the public URL Twilio was given (:mod:`.signature`) and read by :mod:`.payloads`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from twilio.twiml.messaging_response import MessagingResponse

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AuthError,
    InvalidSender,
    MessageError,
    SmsBridgeError,
    UnsupportedFeature,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, OutgoingMessage, StatusReport
from smsbridge.phone import ErrorRule, HttpPhone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from .errors import ERROR_CODES, TWILIO_ERRORS, TwilioError, describe
from .options import TWILIO_API, TwilioOptions, sender_problem
from .payloads import fetched_report, inbound_message, status_report
from .signature import SIGNATURE_HEADER as SIGNATURE_HEADER
from .signature import signed_urls, verify_signature
from .transport import PhoneHttpClient, build_client

__all__ = ["ERROR_CODES", "TWILIO_API", "TwilioOptions", "TwilioPhone"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.twilio")

MESSAGE_SID_RE = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
MAX_MEDIA = 10

T = TypeVar("T")


class TwilioPhone(HttpPhone):
    """A Twilio account (and sender) as a smsbridge phone."""

    plugin: ClassVar[str] = "twilio"
    user_agent: ClassVar[str] = f"smsbridge-twilio/{__version__}"
    # Defaults kept: max_segments=10 stays below Twilio's 1,600 characters; no default
    # rate limit, as Twilio queues above the sender's MPS.
    capabilities: ClassVar[Capabilities] = Capabilities(
        receive=True,
        receive_mode="webhook",
        status=True,
        status_mode="webhook",
        mms_send=True,
        mms_receive=True,
        sender_name=True,
        balance=True,
    )
    Options: ClassVar[type[PhoneOptions]] = TwilioOptions
    ERROR_CODES: ClassVar[Mapping[Any, ErrorRule]] = ERROR_CODES
    STATUS_MAP: ClassVar[Mapping[str, Status]] = {
        "accepted": Status.queued,
        "scheduled": Status.queued,
        "queued": Status.queued,
        "sending": Status.queued,
        "sent": Status.sent,
        "delivered": Status.delivered,
        "read": Status.delivered,
        "failed": Status.failed,
        "undelivered": Status.failed,
        "canceled": Status.failed,
    }

    options: TwilioOptions

    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        self.http_client = PhoneHttpClient(self)
        #: The SDK client, for Twilio features smsbridge does not wrap.
        self.client = build_client(self.options, self.http_client)
        self._account = self.client.api.v2010.account

    # ------------------------------------------------------------------ sending
    def check_message(self, message: OutgoingMessage, to: str | None = None) -> MessageError | None:
        if len(message.media) > MAX_MEDIA:
            return UnsupportedFeature(
                f"Twilio takes at most {MAX_MEDIA} media per message ({len(message.media)} given)"
            )
        return super().check_message(message, to)

    def validate_sender(self, sender: str) -> None:
        if problem := sender_problem(sender):
            raise InvalidSender(problem)

    @property
    def status_callback_url(self) -> str | None:
        """The StatusCallback sent with each message ('' in the options disables it)."""
        if self.options.status_callback is not None:
            return self.options.status_callback or None
        return self.callback_url("status")

    def submit(self, message: PreparedMessage) -> Submission:
        opts = self.options
        kwargs: dict[str, Any] = {"to": message.to}
        if message.body:
            kwargs["body"] = message.body
        if sender := message.sender or opts.from_:
            kwargs["from_"] = sender
        if opts.messaging_service_sid:
            kwargs["messaging_service_sid"] = opts.messaging_service_sid
        if message.media:
            kwargs["media_url"] = list(message.media)
        if callback := self.status_callback_url:
            kwargs["status_callback"] = callback
        if opts.validity_period:
            kwargs["validity_period"] = opts.validity_period
        created = self.call(lambda: self._account.messages.create(**kwargs), message.to)
        status = self.map_status(created.status)
        return Submission(
            provider_id=created.sid,
            status=Status.queued if status is Status.unknown else status,
            raw=self.http_client.last_json(),
        )

    def call(self, request: Callable[[], T], recipient: str | None = None) -> T:
        """Run one SDK call; a Twilio error answer becomes a smsbridge error."""
        try:
            return request()
        except TWILIO_ERRORS as exc:
            raise self.twilio_error(exc, recipient) from None

    def twilio_error(self, exc: TwilioError, recipient: str | None = None) -> SmsBridgeError:
        """Map a Twilio error through :attr:`ERROR_CODES`, else its HTTP status (the
        provider's text kept, no secret; ``Retry-After`` honoured)."""
        code, status, text = describe(exc, self.http_client.last_json())
        text = self.redact(text)
        return self.provider_error(
            text,
            code=code,
            http_status=status,
            retry_after=self.http_client.retry_after(),
            raw={"status": status, "code": code, "message": text},
            recipient=recipient,
        )

    # ------------------------------------------------------------------ webhooks
    @property
    def webhook_protected(self) -> bool:
        return super().webhook_protected or self.options.auth_token is not None

    def signed_urls(self, request: WebhookRequest) -> list[str]:
        """The URLs Twilio may have signed: the public URL of this request's path."""
        return signed_urls(request, self.public_url, self.name, self.options.status_callback)

    def verify_webhook(self, request: WebhookRequest) -> None:
        super().verify_webhook(request)  # allow_ips, and ?token= when webhook_secret is set
        token = self.options.auth_token
        if token is not None:  # API-key-only phone: Twilio signs with a token we do not have
            verify_signature(request, token.get_secret_value(), self.signed_urls(request))

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        return [status_report(self, self.callback_params(request))]

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        return [inbound_message(self, self.callback_params(request))]

    def webhook_response(self, kind: str, request: WebhookRequest) -> tuple[int, bytes, str]:
        if kind == "inbound":  # Twilio wants TwiML: an empty <Response/> sends no reply
            return 200, str(MessagingResponse()).encode("utf-8"), "text/xml"
        return super().webhook_response(kind, request)

    # ------------------------------------------------------------------ polling & admin
    def fetch_status(self, provider_id: str) -> StatusReport:
        if not MESSAGE_SID_RE.match(provider_id):
            raise MessageError(f"not a Twilio message SID (SM/MM + 32 hex): {provider_id!r}")
        found = self.call(self._account.messages(provider_id).fetch)
        return fetched_report(self, found, provider_id, self.http_client.last_json())

    def balance(self) -> Balance:
        """The account balance, in money (``details['currency']``), not in messages."""
        found = self.call(self._account.balance.fetch)
        return Balance(
            phone=self.name,
            units=float(found.balance) if found.balance is not None else None,
            details={"currency": found.currency, "account_sid": found.account_sid},
        )

    def check(self) -> None:
        """Fetch the account: the credentials work and the account is active."""
        account = self.call(self._account.fetch)
        if account.status not in (None, "active"):
            raise AuthError(
                f"Twilio account {self.options.account_sid} is {account.status}",
                phone=self.name,
                provider_code=str(account.status),
            )
