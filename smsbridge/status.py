"""Normalised message status (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

__all__ = ["Status", "map_status"]


class Status(str, Enum):
    """Where an outgoing message is. Every report also keeps the provider's raw status."""

    pending = "pending"  # stored, not yet handed to a provider
    queued = "queued"  # the provider accepted it
    sent = "sent"  # handed to the carrier network
    delivered = "delivered"  # the handset confirmed
    failed = "failed"
    unknown = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """``delivered`` and ``failed`` never change again."""
        return self in (Status.delivered, Status.failed)

    @property
    def rank(self) -> int:
        """Progress order used so that status history never goes backwards."""
        return _RANK[self]

    def may_become(self, new: Status) -> bool:
        """Whether a report of ``new`` may replace this current status.

        Final states never change; otherwise a status only moves forward
        (``unknown`` can be replaced by anything, and never replaces progress).
        """
        if self.is_final:
            return False
        if new is Status.unknown:
            return self in (Status.pending, Status.unknown)
        if self is Status.unknown:
            return True
        return new.rank > self.rank


_RANK = {
    Status.pending: 0,
    Status.unknown: 0,
    Status.queued: 1,
    Status.sent: 2,
    Status.delivered: 3,
    Status.failed: 3,
}


def map_status(table: Mapping[str, Status], raw: object) -> Status:
    """Look ``raw`` up in a provider table (case-insensitive); unmapped -> ``unknown``."""
    if raw is None:
        return Status.unknown
    key = str(raw).strip()
    found = table.get(key)
    if found is None:
        found = table.get(key.lower())
    return found if found is not None else Status.unknown
