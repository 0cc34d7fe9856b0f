"""Value types: what goes out, what comes back, what comes in."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from .clock import utcnow
from .status import Status

__all__ = [
    "Attempt",
    "Balance",
    "IncomingMessage",
    "OutgoingMessage",
    "SendResult",
    "StatusReport",
    "new_id",
    "utcnow",
]


def new_id() -> str:
    """smsbridge's own message id: a uuid4 in hex."""
    return uuid.uuid4().hex


def _plain(value: Any) -> Any:
    """JSON-friendly form of a value (used by every ``to_dict``)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Status):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_plain(v) for v in value]
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    return value


class _Value:
    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if f.metadata.get("to_dict", True)
        }


@dataclass(frozen=True)
class OutgoingMessage(_Value):
    """A message to send. ``to`` may be national when the config sets ``default_region``."""

    to: str
    body: str
    sender: str | None = None
    phone: str | None = None
    tag: str | None = None
    flash: bool = False
    media: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    send_at: datetime | None = None
    template: str | None = None  # slug, set by send_template
    locale: str | None = None  # template locale actually used
    encoding: str | None = None  # auto | gsm7 | ucs2 (None: the phone's option)
    fold_accents: bool | None = None  # None: the phone's option

    def __post_init__(self) -> None:
        if isinstance(self.media, str):
            object.__setattr__(self, "media", (self.media,))
        elif not isinstance(self.media, tuple):
            object.__setattr__(self, "media", tuple(self.media or ()))
        if self.metadata is None:
            object.__setattr__(self, "metadata", {})

    @classmethod
    def coerce(cls, value: OutgoingMessage | Mapping[str, Any]) -> OutgoingMessage:
        if isinstance(value, OutgoingMessage):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise TypeError(f"unknown message field(s): {', '.join(unknown)}")
            return cls(**value)
        raise TypeError(f"expected OutgoingMessage or dict, got {type(value).__name__}")

    def replace(self, **changes: Any) -> OutgoingMessage:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return OutgoingMessage(**data)


@dataclass(frozen=True)
class Attempt(_Value):
    """One phone tried for a message, and how it went (``error`` is None on success)."""

    phone: str
    error: str | None = None
    error_type: str | None = None
    at: datetime = field(default_factory=utcnow)
    retries: int = 0


@dataclass(frozen=True)
class SendResult(_Value):
    """What became of a send. ``error`` is set when every phone failed."""

    message_id: str
    status: Status
    phone: str | None
    provider_id: str | None
    to: str
    segments: int
    encoding: str
    error: BaseException | None = None
    attempts: Sequence[Attempt] = ()
    raw: Any = None
    template: str | None = None
    locale: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not Status.failed


@dataclass(frozen=True)
class StatusReport(_Value):
    """A delivery report, from a webhook or from polling."""

    provider_id: str | None
    phone: str
    status: Status
    raw_status: str | None = None
    message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    at: datetime = field(default_factory=utcnow)
    raw: Any = None
    recipient: str | None = None


@dataclass(frozen=True)
class IncomingMessage(_Value):
    """An SMS (or MMS) received by a phone."""

    phone: str
    sender: str
    recipient: str | None
    body: str
    received_at: datetime = field(default_factory=utcnow)
    provider_id: str | None = None
    media: tuple[str, ...] = ()
    raw: Any = None
    id: str = field(default_factory=new_id)
    bridge: Any = field(default=None, repr=False, compare=False, metadata={"to_dict": False})

    def reply(self, body: str | None = None, **fields: Any) -> SendResult:
        """Answer the sender through the phone that received this message
        (``template=``, ``context=``, ``locale=`` and send() fields accepted)."""
        if self.bridge is None:
            raise RuntimeError("this message is not attached to a bridge")
        result: SendResult = self.bridge.reply(self, body, **fields)
        return result


@dataclass(frozen=True)
class Balance(_Value):
    """What is left on an account: ``units`` (SMS or credits) and contract expiry when known."""

    phone: str
    units: float | None
    expires_at: datetime | None = None
    details: Any = None
