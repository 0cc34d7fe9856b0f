"""Twilio phone for smsbridge: SMS and MMS through the official ``twilio`` SDK.

The SDK builds every request; its HTTP goes through this phone's ``requests`` session
(:meth:`HttpPhone.request`: keep-alive, the phone's timeout, network failures mapped to
:class:`ProviderUnavailable` / :class:`AmbiguousSend`). Twilio errors
(:class:`TwilioRestException`, RFC 9457 :class:`TwilioServiceException`) are mapped by
code through :data:`ERROR_CODES`. Callbacks are verified with the SDK's
:class:`RequestValidator` against the public URL Twilio was given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from smsbridge.capabilities import Capabilities
from smsbridge.errors import (
    AuthError,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    SendError,
    SmsBridgeError,
    UnsupportedFeature,
    WebhookAuthError,
    WebhookParseError,
)
from smsbridge.http import WebhookRequest
from smsbridge.message import Balance, IncomingMessage, OutgoingMessage, StatusReport
from smsbridge.numbers import normalize
from smsbridge.phone import HttpPhone, PhoneOptions, PreparedMessage, Submission
from smsbridge.status import Status

from ._http import FormParams, PhoneHttpClient
from .options import TWILIO_API, TwilioOptions, sender_problem

__all__ = ["ERROR_CODES", "TWILIO_API", "TwilioOptions", "TwilioPhone"]
__version__ = "0.1.0"

log = logging.getLogger("smsbridge.twilio")

SIGNATURE_HEADER = "X-Twilio-Signature"
MESSAGE_SID_RE = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
MAX_MEDIA = 10

#: Twilio error code -> (smsbridge error, keyword arguments). Unlisted codes: HTTP status
#: decides (401 auth, 429 rate limit, 5xx unavailable), else a generic :class:`SendError`.
ERROR_CODES: Mapping[int, tuple[type[SmsBridgeError], Mapping[str, Any]]] = {
    21211: (InvalidRecipient, {}),  # invalid 'To' number
    21614: (InvalidRecipient, {}),  # 'To' is not a mobile number
    21212: (InvalidSender, {}),  # invalid 'From' number
    21606: (InvalidSender, {}),  # 'From' is not a valid, SMS-capable number of the account
    21659: (InvalidSender, {}),  # 'From' is not a Twilio number
    21610: (Rejected, {"opt_out": True}),  # recipient replied STOP
    20003: (AuthError, {}),  # authentication failed
    20005: (AuthError, {}),  # account not active
    20429: (RateLimited, {}),  # too many requests
}


class TwilioPhone(HttpPhone):
    """A Twilio account (and sender) as a smsbridge phone."""

    plugin: ClassVar[str] = "twilio"
    user_agent: ClassVar[str] = f"smsbridge-twilio/{__version__}"
    capabilities: ClassVar[Capabilities] = Capabilities(
        send=True,
        receive=True,
        receive_mode="webhook",
        status=True,
        status_mode="webhook",
        mms_send=True,
        mms_receive=True,
        flash=False,
        sender_name=True,
        unicode=True,
        long_messages=True,
        max_segments=10,  # Twilio takes 1,600 characters; 10 segments stays below
        balance=True,
        default_rate_limit=None,  # Twilio queues above the sender's MPS
    )
    Options: ClassVar[type[PhoneOptions]] = TwilioOptions
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
        opts = self.options
        if opts.api_key is not None and opts.api_secret is not None:
            username, password = opts.api_key, opts.api_secret.get_secret_value()
        else:  # TwilioOptions guarantees an auth token here
            token = opts.auth_token.get_secret_value() if opts.auth_token else ""
            username, password = opts.account_sid, token
        self.http_client = PhoneHttpClient(self)
        #: The SDK client, for Twilio features smsbridge does not wrap.
        self.client = Client(username, password, opts.account_sid, http_client=self.http_client)
        if opts.base_url != TWILIO_API:
            # A custom host wins over TWILIO_EDGE / TWILIO_REGION host rewriting.
            self.client.edge = self.client.region = None
            self.client.api.base_url = opts.base_url
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
        try:
            created = self._account.messages.create(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._error(exc, recipient=message.to) from None
        status = self.map_status(created.status)
        return Submission(
            provider_id=created.sid,
            status=Status.queued if status is Status.unknown else status,
            raw=self.http_client.last_json(),
        )

    def _error(
        self, exc: TwilioRestException | TwilioServiceException, recipient: str | None = None
    ) -> SmsBridgeError:
        """Map a Twilio error to the smsbridge tree (the provider's text kept, no secret)."""
        status = int(exc.status or 0)
        code = int(exc.code) if exc.code else None
        if isinstance(exc, TwilioServiceException):
            text = exc.detail or exc.title
        else:
            text = str(exc.msg).removeprefix("Unable to create record: ")
            if ": " not in str(exc.msg):  # no "message" in the body: say what came back
                body = self.http_client.last_json()
                found = body.get("detail") or body.get("title") if isinstance(body, dict) else None
                text = f"{text} (HTTP {status}{': ' + str(found) if found else ''})"
        text = self.redact(f"Twilio: {text}")
        raw = {"status": status, "code": code, "message": text}
        kind, extra = ERROR_CODES.get(code or 0, (None, {}))
        if kind is None:
            if status == 401:
                kind = AuthError
            elif status == 429:
                kind = RateLimited
            elif status >= 500:
                kind = ProviderUnavailable
            else:
                kind = SendError
        if kind is InvalidRecipient:
            return InvalidRecipient(f"{text} (Twilio error {code})", recipient=recipient)
        if issubclass(kind, MessageError):
            return kind(f"{text} (Twilio error {code})")
        if kind is RateLimited:
            extra = {"retry_after": self._retry_after()}
        if not issubclass(kind, SendError):  # pragma: no cover - ERROR_CODES holds no other kind
            kind = SendError
        return kind(text, phone=self.name, provider_code=code or status, raw=raw, **extra)

    def _retry_after(self) -> float | None:
        resp = self.http_client.last_response
        value = (resp.headers or {}).get("Retry-After") if resp is not None else None
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None

    # ------------------------------------------------------------------ webhooks
    @property
    def webhook_protected(self) -> bool:
        return super().webhook_protected or self.options.auth_token is not None

    def signed_urls(self, request: WebhookRequest) -> list[str]:
        """The URLs Twilio may have signed: the public URL of this request's path."""
        if not self.public_url:
            return [request.url]
        parts = urlsplit(request.url)
        query = f"?{parts.query}" if parts.query else ""
        urls = []
        at = parts.path.rfind(f"/webhooks/{quote(self.name, safe='')}/")
        if at >= 0:
            urls.append(self.public_url + parts.path[at:] + query)
        if self.options.status_callback:
            urls.append(self.options.status_callback)
        return urls

    def verify_webhook(self, request: WebhookRequest) -> None:
        super().verify_webhook(request)  # allow_ips, and ?token= when webhook_secret is set
        token = self.options.auth_token
        if token is None:
            return  # API-key-only phone: Twilio signs with the auth token we do not have
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            raise WebhookAuthError(f"missing {SIGNATURE_HEADER} header")
        params: Any = {}
        if request.content_type == "application/json":
            params = request.text()  # signed through ?bodySHA256=
        elif request.method == "POST" and request.body:
            params = FormParams(request.form_lists())
        validator = RequestValidator(token.get_secret_value())
        if not any(validator.validate(url, params, signature) for url in self.signed_urls(request)):
            raise WebhookAuthError(
                f"{SIGNATURE_HEADER} does not match (is webhooks.public_url the URL Twilio calls?)"
            )

    def _fields(self, request: WebhookRequest) -> dict[str, str]:
        data = request.params()
        data.pop("token", None)
        return data

    def parse_status_callback(self, request: WebhookRequest) -> list[StatusReport]:
        data = self._fields(request)
        sid = data.get("MessageSid") or data.get("SmsSid")
        raw_status = data.get("MessageStatus") or data.get("SmsStatus")
        if not sid or not raw_status:
            raise WebhookParseError("Twilio status callback without MessageSid/MessageStatus")
        return [
            StatusReport(
                provider_id=sid,
                phone=self.name,
                status=self.map_status(raw_status),
                raw_status=raw_status,
                error_code=data.get("ErrorCode") or None,
                error_message=data.get("ErrorMessage") or None,
                at=self.clock(),
                raw=data,
                recipient=_number(data.get("To")),
            )
        ]

    def parse_inbound(self, request: WebhookRequest) -> list[IncomingMessage]:
        data = self._fields(request)
        sender = _number(data.get("From"))
        if not sender:
            raise WebhookParseError("Twilio inbound message without From")
        try:
            count = int(data.get("NumMedia") or 0)
        except ValueError:
            raise WebhookParseError(f"NumMedia is not a number: {data['NumMedia']!r}") from None
        media = tuple(data[f"MediaUrl{i}"] for i in range(count) if data.get(f"MediaUrl{i}"))
        if count < 0 or len(media) != count:
            raise WebhookParseError(f"NumMedia={count} but {len(media)} MediaUrlN fields")
        return [
            IncomingMessage(
                phone=self.name,
                sender=sender,
                recipient=_number(data.get("To")),
                body=data.get("Body", ""),
                received_at=self.clock(),
                provider_id=data.get("MessageSid") or data.get("SmsMessageSid") or None,
                media=media,
                raw=data,
            )
        ]

    def webhook_response(self, kind: str, request: WebhookRequest) -> tuple[int, bytes, str]:
        if kind == "inbound":  # Twilio wants TwiML: an empty <Response/> sends no reply
            return 200, str(MessagingResponse()).encode("utf-8"), "text/xml"
        return super().webhook_response(kind, request)

    # ------------------------------------------------------------------ polling & admin
    def fetch_status(self, provider_id: str) -> StatusReport:
        if not MESSAGE_SID_RE.match(provider_id):
            raise MessageError(f"not a Twilio message SID (SM/MM + 32 hex): {provider_id!r}")
        try:
            msg = self._account.messages(provider_id).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._error(exc) from None
        updated = msg.date_updated if hasattr(msg.date_updated, "tzinfo") else None
        return StatusReport(
            provider_id=msg.sid or provider_id,
            phone=self.name,
            status=self.map_status(msg.status),
            raw_status=msg.status,
            error_code=str(msg.error_code) if msg.error_code else None,
            error_message=msg.error_message or None,
            at=updated.astimezone(UTC) if updated else self.clock(),
            raw=self.http_client.last_json(),
            recipient=_number(msg.to),
        )

    def balance(self) -> Balance:
        """The account balance, in money (``details['currency']``), not in messages."""
        try:
            found = self._account.balance.fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._error(exc) from None
        return Balance(
            phone=self.name,
            units=float(found.balance) if found.balance is not None else None,
            details={"currency": found.currency, "account_sid": found.account_sid},
        )

    def check(self) -> None:
        """Fetch the account: the credentials work and the account is active."""
        try:
            account = self._account.fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._error(exc) from None
        if account.status not in (None, "active"):
            raise AuthError(
                f"Twilio account {self.options.account_sid} is {account.status}",
                phone=self.name,
                provider_code=str(account.status),
            )


def _number(value: str | None) -> str | None:
    """E.164 when ``value`` is a phone number; short codes and sender IDs as given."""
    if not value:
        return None
    try:
        return normalize(value)
    except InvalidRecipient:
        return value
