"""What the bridge needs from a message store (implemented by :mod:`smsbridge.store.sql`).

The store is persistence only: it imports nothing above the value types.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..message import Attempt, IncomingMessage, OutgoingMessage, SendResult, StatusReport

__all__ = ["MessageStore"]


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
