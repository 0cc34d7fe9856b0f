"""Plain records the store hands out (listings, outbox claims) and takes in (enqueue)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from ..clock import utcnow
from ..message import Attempt, OutgoingMessage
from ..status import Status

__all__ = [
    "ClaimOutcome",
    "ClaimedMessage",
    "HistoryEntry",
    "OptOut",
    "OutboxEntry",
    "StoredMessage",
    "Throttle",
    "VerificationRecord",
    "plan_issue",
]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class OutboxEntry(_Record):
    """A validated message to put in the outbox (built by :mod:`smsbridge.outbox`)."""

    message_id: str
    message: OutgoingMessage
    to: str  # E.164
    lane: str  # the phone whose worker thread sends it (first phone of its route)
    segments: int
    encoding: str


@dataclass(frozen=True)
class ClaimedMessage(_Record):
    """An outbox message a worker holds (``claimed_by``) until ``lease_until``."""

    message_id: str
    message: OutgoingMessage
    lane: str | None
    claimed_by: str | None
    lease_until: datetime | None
    claims: int  # how many times it was claimed (> 1 after a worker was lost)
    token: str | None = None  # this claim's own token (see SqlStore.mark_sending)
    outbox: bool = True  # False: a direct send() whose process was lost (never resent)


@dataclass(frozen=True)
class ClaimOutcome(_Record):
    """What :meth:`SqlStore.claim_one` found for one message id.

    ``state``: ``claimed`` (yours to send: ``message``/``claimed`` set), ``not_due``
    (``send_at`` is ``retry_in`` seconds away), ``busy`` (another worker holds it for
    ``retry_in`` more seconds), ``done`` (no longer pending: ``status``), ``missing``
    (no such outbox message).
    """

    state: Literal["claimed", "not_due", "busy", "done", "missing"]
    message: OutgoingMessage | None = None
    retry_in: float | None = None
    status: str | None = None
    claimed: ClaimedMessage | None = None


@dataclass(frozen=True)
class HistoryEntry(_Record):
    """One line of a message's status history."""

    at: datetime
    status: Status
    source: str  # "send" (the send lifecycle), "report" (provider), "worker" (recovery)
    raw_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    phone: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class StoredMessage(_Record):
    """An outgoing message as stored, for listings and ``smsbridge status``."""

    message_id: str
    created_at: datetime
    updated_at: datetime
    to: str
    body: str
    status: Status
    status_at: datetime
    phone: str | None
    provider_id: str | None
    segments: int
    encoding: str
    sender: str | None = None
    tag: str | None = None
    requested_phone: str | None = None
    idempotency_key: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    outbox: bool = False
    lane: str | None = None
    send_at: datetime | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    attempts: Sequence[Attempt] = ()
    history: Sequence[HistoryEntry] = ()
    template: str | None = None  # the template slug (send_template)
    locale: str | None = None  # the template locale actually used


# ---------------------------------------------------------------------- opt-outs
@dataclass(frozen=True)
class OptOut:
    """One number that asked not to receive messages."""

    number: str  # E.164
    at: datetime = field(default_factory=utcnow)
    keyword: str | None = None  # STOP keyword, or the provider's error code
    phone: str | None = None  # the phone that received the STOP / refused the send
    source: str = "manual"  # keyword | provider | manual

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "keyword": self.keyword,
            "phone": self.phone,
            "source": self.source,
        }


# ---------------------------------------------------------------------- verification codes
@dataclass(frozen=True)
class VerificationRecord:
    """The stored state of the latest code sent to a number (never the code itself)."""

    number: str
    purpose: str
    record_id: str
    digest: str  # hex HMAC-SHA256
    salt: str  # hex
    sent_at: datetime
    expires_at: datetime
    window_started_at: datetime
    attempts: int = 0
    sends: int = 1
    used_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"VerificationRecord(number={self.number!r}, purpose={self.purpose!r}, "
            f"attempts={self.attempts}, used={self.used_at is not None})"
        )


@dataclass(frozen=True)
class Throttle:
    """Why a new code cannot be sent yet."""

    reason: Literal["cooldown", "too_many"]
    retry_after: float  # seconds


def plan_issue(
    existing: VerificationRecord | None,
    record: VerificationRecord,
    *,
    cooldown: timedelta,
    window: timedelta,
    max_sends: int,
) -> Throttle | VerificationRecord:
    """The record to store in place of ``existing``, or the :class:`Throttle` refusing it.

    ``record.sent_at`` is "now". Shared by every :class:`VerificationStore`.
    """
    now = record.sent_at
    if existing is not None:
        wait = (existing.sent_at + cooldown - now).total_seconds()
        if wait > 0:
            return Throttle("cooldown", wait)
        window_end = existing.window_started_at + window
        if window_end > now:
            if existing.sends >= max_sends:
                return Throttle("too_many", (window_end - now).total_seconds())
            return replace(
                record, sends=existing.sends + 1, window_started_at=existing.window_started_at
            )
    return replace(record, sends=1, window_started_at=now)
