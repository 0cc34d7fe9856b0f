"""smsbridge: send and receive SMS through many providers behind one interface."""

from __future__ import annotations

from .bridge import Bridge, load
from .capabilities import Capabilities
from .errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRecipient,
    InvalidSender,
    MessageError,
    MessageTooLong,
    ProviderUnavailable,
    RateLimited,
    Rejected,
    RoutingError,
    SendError,
    SmsBridgeError,
    UnsupportedFeature,
    WebhookAuthError,
    WebhookError,
    WebhookParseError,
)
from .http import WebhookRequest, WebhookResponse
from .message import (
    Attempt,
    Balance,
    IncomingMessage,
    OutgoingMessage,
    SendResult,
    StatusReport,
)
from .phone import HttpPhone, Phone, PhoneOptions, PreparedMessage, Submission
from .status import Status

__version__ = "0.1.0"

__all__ = [
    "AmbiguousSend",
    "Attempt",
    "AuthError",
    "Balance",
    "Bridge",
    "Capabilities",
    "ConfigError",
    "HttpPhone",
    "IncomingMessage",
    "InsufficientCredit",
    "InvalidRecipient",
    "InvalidSender",
    "MessageError",
    "MessageTooLong",
    "OutgoingMessage",
    "Phone",
    "PhoneOptions",
    "PreparedMessage",
    "ProviderUnavailable",
    "RateLimited",
    "Rejected",
    "RoutingError",
    "SendError",
    "SendResult",
    "SmsBridgeError",
    "Status",
    "StatusReport",
    "Submission",
    "UnsupportedFeature",
    "WebhookAuthError",
    "WebhookError",
    "WebhookParseError",
    "WebhookRequest",
    "WebhookResponse",
    "__version__",
    "load",
]
