"""What the bridge needs from a message store (implemented by :mod:`smsbridge.store.sql`).

The store is persistence only: it imports nothing above the value types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..cache import KeyValueCache
from ..message import Attempt, IncomingMessage, OutgoingMessage, SendResult, StatusReport

if TYPE_CHECKING:
    from .records import ClaimedMessage, ClaimOutcome, OutboxEntry

__all__ = ["KeyValueCache", "MessageStore", "OutboxStore"]


@runtime_checkable
class MessageStore(Protocol):
    def begin_send(
        self,
        message_id: str,
        message: OutgoingMessage,
        *,
        to: str,
        segments: int,
        encoding: str,
    ) -> SendResult | None:
        """Record ``message`` as ``pending`` before any provider call.

        When ``message.idempotency_key`` is already known (in this process or another),
        record nothing and return the first message's current result instead.
        """

    def record_attempt(self, message_id: str, attempt: Attempt) -> None:
        """Append one phone attempt (success or error) to the message."""

    def finish_send(self, result: SendResult) -> None:
        """Store the outcome of a send: phone, provider id, status (queued/failed/unknown)."""

    def apply_status(self, report: StatusReport) -> tuple[StatusReport, bool]:
        """Apply a delivery report: find the message by (phone, provider id), append it to
        the status history, and move the current status forward only (never backwards
        from a final state). Returns the report with ``message_id`` filled in when found,
        and False when the same (provider id, status) was already recorded (a duplicate).
        """

    def record_incoming(self, message: IncomingMessage) -> bool:
        """Store an inbound message; False when (phone, provider id) is already stored."""

    def get_result(self, message_id: str) -> SendResult | None:
        """The current state of a stored outgoing message."""

    def close(self) -> None: ...


@runtime_checkable
class OutboxStore(MessageStore, Protocol):
    """A store that also keeps the outbox (``Bridge.enqueue`` and the worker need one).

    Implemented by :class:`smsbridge.store.sql.SqlStore`; see its docstrings.
    """

    def enqueue(self, entries: Sequence[OutboxEntry]) -> list[str]:
        """Store validated messages as pending outbox messages, in one transaction.

        Idempotency keys already stored give back the first message's id.
        """

    def claim(
        self,
        worker: str,
        *,
        lanes: Sequence[str] | None = None,
        exclude_lanes: Sequence[str] | None = None,
        limit: int = 10,
        lease: float = 30.0,
    ) -> list[ClaimedMessage]:
        """Atomically take due outbox messages for ``worker`` for ``lease`` seconds."""

    def claim_one(
        self,
        message_id: str,
        *,
        owner: str,
        lease: float = 30.0,
        resend_ambiguous: bool = False,
    ) -> ClaimOutcome:
        """Claim one given outbox message (task queues carrying message ids)."""

    def pending_ids(self, *, older_than: float = 0.0, limit: int = 10_000) -> list[str]:
        """Due outbox messages no live worker holds (to re-dispatch lost tasks)."""

    def mark_sending(
        self, message_id: str, worker: str, *, token: str | None = None, lease: float = 30.0
    ) -> bool:
        """Record the hand-over to a provider; False when ``worker`` lost the claim."""

    def renew(self, worker: str, *, lease: float = 30.0) -> int:
        """Extend ``worker``'s live claims."""

    def release(self, worker: str, message_ids: Sequence[str] | None = None) -> int:
        """Give back claimed messages not yet handed to a provider."""

    def lost_claims(self, *, limit: int = 100) -> list[ClaimedMessage]:
        """In-flight messages whose worker's lease expired."""

    def resolve_lost(self, lost: ClaimedMessage, *, resend: bool) -> bool:
        """Mark a lost in-flight message ``unknown``, or return it to the outbox."""

    def to_poll(self, phone: str, *, limit: int = 100) -> list[tuple[str, str]]:
        """(message id, provider id) of ``phone``'s messages awaiting a final status."""

    def mark_polled(self, message_ids: Sequence[str]) -> None:
        """Note that these messages' statuses were just polled."""
