"""The message store: outgoing messages (status history, attempts), inbound messages and
the outbox, over SQLAlchemy — SQLite by default (WAL), PostgreSQL in production.

``open_store(url)`` opens it, creating or upgrading the schema (Alembic migrations run
automatically; an upgrade never needs a manual step).
"""

from __future__ import annotations

from .protocol import MessageStore, OutboxStore
from .records import ClaimedMessage, ClaimOutcome, HistoryEntry, OutboxEntry, StoredMessage
from .sql import SqlStore, make_engine, open_store

__all__ = [
    "ClaimOutcome",
    "ClaimedMessage",
    "HistoryEntry",
    "MessageStore",
    "OutboxEntry",
    "OutboxStore",
    "SqlStore",
    "StoredMessage",
    "make_engine",
    "open_store",
]
