"""The SQL message store (SQLAlchemy Core): SQLite by default, PostgreSQL in production.

:class:`SqlStore` is assembled from one part per responsibility: :mod:`.engine`,
:mod:`.base` (connections, rows), :mod:`.messages`, :mod:`.claims` (the outbox),
:mod:`.queries`, :mod:`.keyvalue`; opt-out and verification tables are in
:mod:`.features`.

What it guarantees:

- ``begin_send`` records a message as ``pending`` before any provider call, and an
  ``idempotency_key`` is unique in the database, so a repeated send or enqueue in any
  process finds the first message instead of making a second one.
- Status reports are matched by (phone, provider id), appended to the history once per
  (phone, provider id, status), and move the current status forward only
  (:meth:`Status.may_become`). A report that arrives before its send was recorded is kept
  and applied when the provider id is stored.
- Outbox claims are atomic: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite every
  write transaction is ``BEGIN IMMEDIATE`` (one writer at a time, WAL mode so readers
  never wait), which makes the claiming ``UPDATE`` atomic too.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed; a power cut may lose the last few.
"""

from __future__ import annotations

from typing import Any

from .claims import OutboxClaims
from .engine import make_engine
from .keyvalue import KeyValueRecords
from .messages import MessageRecords
from .queries import Queries

__all__ = ["SqlStore", "make_engine", "open_store"]


class SqlStore(MessageRecords, OutboxClaims, Queries, KeyValueRecords):
    """A :class:`~smsbridge.store.protocol.MessageStore` and outbox over SQLAlchemy.

    ``url`` is any SQLAlchemy URL for SQLite or PostgreSQL. The schema is created or
    upgraded on open (``migrate_schema=False`` skips that, for tools that manage it
    themselves). Thread-safe: one instance serves every thread of a process (a pool).
    """


def open_store(url: str, **kw: Any) -> SqlStore:
    """Open (and create or migrate) the store at an SQLAlchemy URL."""
    return SqlStore(url, **kw)
