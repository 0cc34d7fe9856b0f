"""What every part of the SQL store shares: the engine, connection scopes, row helpers.

:class:`~smsbridge.store.sql.SqlStore` is this base plus one part per responsibility:
:mod:`.messages` (the send lifecycle and reports), :mod:`.claims` (the outbox),
:mod:`.queries` (listings for the CLI, retention), :mod:`.keyvalue` (the cache).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from ..clock import Clock, utcnow
from ..message import (
    Attempt,
    OutgoingMessage,
)
from ..status import Status
from . import migrate
from .engine import is_memory, make_engine, normalise_url
from .rows import KEY_CHUNK, chunks
from .schema import attempts, outgoing

__all__ = ["SqlBase", "direct_owner"]

log = logging.getLogger("smsbridge.store")


def direct_owner() -> str:
    """Who owns a direct send's ``pending`` row: this process (``send:host:pid``)."""
    return f"send:{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------- the store
class SqlBase:
    """A :class:`~smsbridge.store.protocol.MessageStore` and outbox over SQLAlchemy.

    ``url`` is any SQLAlchemy URL for SQLite or PostgreSQL. The schema is created or
    upgraded on open (``migrate_schema=False`` skips that, for tools that manage it
    themselves). ``clock`` is where it reads the time (leases, expiries, history).
    ``pending_grace``: seconds after which a direct send still ``pending`` (its process
    died between the record and the outcome) is settled as ``unknown`` by the recovery.
    Thread-safe: one instance serves every thread of a process (a connection pool).
    """

    def __init__(
        self,
        url: str,
        *,
        migrate_schema: bool = True,
        pool_size: int = 5,
        max_overflow: int = 30,
        clock: Clock = utcnow,
        pending_grace: float = 900.0,
    ) -> None:
        #: Where the store reads the time (leases, expiries, history): tests hand in a
        #: :class:`~smsbridge.clock.FakeClock` instead of waiting for the wall clock.
        self.clock = clock
        #: Seconds a direct ``send()`` may stay ``pending`` before the workers' and the
        #: Celery sweep's recovery settles it as ``unknown`` (its process died mid-send).
        self.pending_grace = float(pending_grace)
        self._url = normalise_url(url)
        self.engine = make_engine(self._url, pool_size=pool_size, max_overflow=max_overflow)
        self._read_engine = self.engine.execution_options(smsbridge_read=True)
        self.dialect = self.engine.dialect.name
        self._claim_statements: dict[Any, Any] = {}
        # successful attempts waiting for their finish_send (see record_attempt)
        self._held_attempts: dict[str, list[dict[str, Any]]] = {}
        self._held_lock = threading.Lock()
        # One shared connection (in-memory SQLite): serialise all its users.
        self._lock: Any = threading.RLock() if is_memory(self._url) else nullcontext()
        # begin_send's INSERT, built once (see "hot statements"); a repeated idempotency
        # key inserts nothing and returns no row
        self._insert_outgoing = (
            self._insert(outgoing)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(outgoing.c.id)
        )
        if migrate_schema:
            try:
                migrate.upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise

    # ------------------------------------------------------------------ plumbing
    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return self._url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"<SqlStore {self.url}>"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock, self._read_engine.connect() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ rows
    @staticmethod
    def _outgoing_row(
        message_id: str,
        message: OutgoingMessage,
        *,
        to: str,
        segments: int,
        encoding: str,
        now: datetime,
        outbox: bool,
        lane: str | None,
        grace: float = 900.0,
    ) -> dict[str, Any]:
        return {
            "id": message_id,
            "created_at": now,
            "updated_at": now,
            "to": to,
            "body": message.body or "",
            "sender": message.sender,
            "requested_phone": message.phone,
            "tag": message.tag,
            "flash": bool(message.flash),
            "media": list(message.media) or None,
            "meta": dict(message.metadata) or None,
            "idempotency_key": message.idempotency_key,
            "status": Status.pending.value,
            "status_at": now,
            "phone": None,
            "provider_id": None,
            "segments": segments,
            "encoding": encoding,
            "error": None,
            "raw": None,
            "outbox": outbox,
            "lane": lane,
            "send_at": message.send_at,
            # A direct send is handed over at once: owned by this process until its
            # outcome is recorded, or for ``pending_grace`` seconds (see lost_claims).
            "claimed_by": None if outbox else direct_owner(),
            "claim_token": None,
            "lease_until": None if outbox else now + timedelta(seconds=grace),
            "sending_since": None if outbox else now,
            "claims": 0,
            "polled_at": None,
            "template": message.template,
            "locale": message.locale,
        }

    def _ids_for_keys(self, conn: Connection, keys: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = sorted(set(keys))
        for chunk in chunks(unique, KEY_CHUNK):
            rows = conn.execute(
                select(outgoing.c.idempotency_key, outgoing.c.id).where(
                    outgoing.c.idempotency_key.in_(chunk)
                )
            )
            found.update({r.idempotency_key: r.id for r in rows})
        return found

    @staticmethod
    def _attempts(conn: Connection, message_id: str) -> list[Attempt]:
        a = attempts
        rows = conn.execute(
            select(a.c.phone, a.c.error, a.c.error_type, a.c.at, a.c.retries)
            .where(a.c.message_id == message_id)
            .order_by(a.c.id)
        )
        return [
            Attempt(
                phone=r.phone, error=r.error, error_type=r.error_type, at=r.at, retries=r.retries
            )
            for r in rows
        ]
