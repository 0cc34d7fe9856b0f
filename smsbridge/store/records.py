"""Plain records the store hands out (listings, outbox claims) and takes in (enqueue)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from ..message import Attempt, OutgoingMessage
from ..status import Status

__all__ = ["ClaimOutcome", "ClaimedMessage", "HistoryEntry", "OutboxEntry", "StoredMessage"]


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
