"""The smsbridge exception tree.

::

    SmsBridgeError
    ├── ConfigError (ValueError)        bad YAML, unknown plugin, missing/invalid option
    ├── MessageError (ValueError)
    │   ├── InvalidRecipient            not a valid number (raised before any network call)
    │   ├── InvalidSender               a sender the phone cannot use
    │   ├── MessageTooLong              more segments than the phone allows
    │   └── UnsupportedFeature          e.g. media on a phone without mms_send
    ├── RoutingError                    no phone matches / none capable
    ├── SendError                       .phone .retryable .provider_code .raw
    │   ├── AuthError                   credentials refused (after one token refresh)
    │   ├── RateLimited                 .retry_after seconds
    │   ├── InsufficientCredit          no units / contract expired: fail over, don't retry
    │   ├── ProviderUnavailable         5xx, connection refused, timeout before sending
    │   ├── AmbiguousSend               timeout after sending: may or may not have gone out
    │   └── Rejected                    permanent refusal of this message (.opt_out)
    └── WebhookError
        ├── WebhookAuthError            bad/missing secret or signature -> HTTP 401/403
        └── WebhookParseError           malformed body -> HTTP 400

Every message is safe to log: no exception built by smsbridge carries a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AmbiguousSend",
    "AuthError",
    "ConfigError",
    "InsufficientCredit",
    "InvalidRecipient",
    "InvalidSender",
    "MessageError",
    "MessageTooLong",
    "ProviderUnavailable",
    "RateLimited",
    "Rejected",
    "RoutingError",
    "SendError",
    "SmsBridgeError",
    "UnsupportedFeature",
    "WebhookAuthError",
    "WebhookError",
    "WebhookParseError",
]


class SmsBridgeError(Exception):
    """Base class of every error smsbridge raises on purpose."""


class ConfigError(SmsBridgeError, ValueError):
    """Invalid configuration. ``file``, ``line`` and ``key`` locate the problem when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = message
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MessageError(SmsBridgeError, ValueError):
    """The message itself cannot be sent as given; no phone would accept it.

    ``provider_code`` is set when a provider (rather than smsbridge) refused the message.
    """

    def __init__(self, message: str, *, provider_code: str | int | None = None) -> None:
        self.provider_code = None if provider_code is None else str(provider_code)
        super().__init__(message)


class InvalidRecipient(MessageError):
    """The recipient is not a valid phone number (for this phone or at all)."""

    def __init__(
        self,
        message: str,
        *,
        recipient: str | None = None,
        provider_code: str | int | None = None,
    ) -> None:
        self.recipient = recipient
        super().__init__(message, provider_code=provider_code)


class InvalidSender(MessageError):
    """The sender (number or name) cannot be used."""


class MessageTooLong(MessageError):
    """The body needs more segments than the phone allows."""

    def __init__(
        self,
        message: str,
        *,
        segments: int = 0,
        max_segments: int = 0,
        provider_code: str | int | None = None,
    ) -> None:
        self.segments = segments
        self.max_segments = max_segments
        super().__init__(message, provider_code=provider_code)


class UnsupportedFeature(MessageError):
    """The phone cannot do what was asked (media, flash, polling...)."""


class RoutingError(SmsBridgeError):
    """No phone matches the message, or none that matches can carry it."""


class SendError(SmsBridgeError):
    """A provider refused or failed to take a message.

    ``retryable`` tells whether the same phone may be tried again later;
    ``provider_code`` and ``raw`` keep what the provider said.
    """

    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        phone: str | None = None,
        retryable: bool | None = None,
        provider_code: str | int | None = None,
        raw: Any = None,
    ) -> None:
        self.phone = phone
        self.retryable = self.default_retryable if retryable is None else retryable
        self.provider_code = None if provider_code is None else str(provider_code)
        self.raw = raw
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message
        if self.provider_code:
            text = f"{text} (provider code {self.provider_code})"
        if self.phone:
            text = f"[{self.phone}] {text}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "phone": self.phone,
            "retryable": self.retryable,
            "provider_code": self.provider_code,
        }


class AuthError(SendError):
    """Credentials refused (after one token refresh where the provider has tokens)."""


class RateLimited(SendError):
    """The provider asks to slow down. ``retry_after`` is in seconds when known."""

    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class InsufficientCredit(SendError):
    """No units left or contract expired: fail over, do not retry the same phone."""


class ProviderUnavailable(SendError):
    """The provider could not be reached or failed (5xx); the message was not taken."""

    default_retryable = True


class AmbiguousSend(SendError):
    """The request was sent but no answer came: the SMS may or may not have gone out."""


class Rejected(SendError):
    """A permanent refusal of this message by the provider. ``opt_out`` when the
    recipient unsubscribed (STOP)."""

    def __init__(self, message: str, *, opt_out: bool = False, **kw: Any) -> None:
        self.opt_out = opt_out
        super().__init__(message, **kw)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["opt_out"] = self.opt_out
        return data


class WebhookError(SmsBridgeError):
    """A webhook request could not be accepted."""

    status_code = 400


class WebhookAuthError(WebhookError):
    """Bad or missing secret or signature."""

    status_code = 403


class WebhookParseError(WebhookError):
    """The webhook body or query is malformed."""

    status_code = 400


def error_from_dict(data: Mapping[str, Any]) -> SendError:
    """Rebuild a :class:`SendError` from :meth:`SendError.to_dict` output (e.g. from the store)."""
    cls = {c.__name__: c for c in SendError.__subclasses__()}.get(str(data.get("type")), SendError)
    return cls(
        str(data.get("message", "")),
        phone=data.get("phone"),
        retryable=data.get("retryable"),
        provider_code=data.get("provider_code"),
    )
