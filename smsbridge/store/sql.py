"""The SQL message store (SQLAlchemy Core): SQLite by default, PostgreSQL in production.

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

import importlib.util
import json
import logging
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from .. import errors as errors_module
from ..errors import ConfigError, SendError, SmsBridgeError, error_from_dict
from ..message import (
    Attempt,
    IncomingMessage,
    OutgoingMessage,
    SendResult,
    StatusReport,
    utcnow,
)
from ..status import Status
from . import migrate
from .records import ClaimedMessage, ClaimOutcome, HistoryEntry, OutboxEntry, StoredMessage
from .schema import PENDING_OUTBOX, attempts, cache, history, incoming, outgoing

__all__ = ["SqlStore", "make_engine", "open_store"]

log = logging.getLogger("smsbridge.store")

_CHUNK = 2000  # rows per INSERT batch
_KEY_CHUNK = 500  # values per IN (...) lookup


# ---------------------------------------------------------------------- engine
def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _normalise_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "store must be an SQLAlchemy URL such as sqlite:///smsbridge.db or "
            "postgresql+psycopg://user@host/db",
            key="store",
        ) from None
    backend = url.get_backend_name()
    if backend == "postgres":  # Heroku-style scheme
        url = url.set(drivername="postgresql+psycopg")
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"store backend '{backend}' is not supported (use sqlite or postgresql)", key="store"
        )
    # SQLAlchemy's default PostgreSQL driver is psycopg2; use psycopg 3 when it is absent.
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        url = url.set(drivername="postgresql+psycopg")
    return url


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(raw_url: str | URL, *, pool_size: int = 5, max_overflow: int = 30) -> Engine:
    """An engine set up for the store (WAL and ``BEGIN IMMEDIATE`` on SQLite)."""
    url = _normalise_url(raw_url if isinstance(raw_url, str) else raw_url.render_as_string(False))
    kw: dict[str, Any] = {"json_serializer": _json_dumps}
    if url.get_backend_name() == "sqlite":
        kw["connect_args"] = {"check_same_thread": False, "timeout": 30.0}
        if _is_memory(url):
            kw["poolclass"] = StaticPool
        else:
            kw["pool_size"] = pool_size
            kw["max_overflow"] = max_overflow
    else:
        kw["pool_size"] = pool_size
        kw["max_overflow"] = max_overflow
        kw["pool_pre_ping"] = True
    engine = _create_engine(url, **kw)
    if url.get_backend_name() == "sqlite":
        memory = _is_memory(url)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            # Let SQLAlchemy's "begin" event below emit BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 30000")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        # SQLite has one writer at a time. The writers of this process queue on a lock
        # (handed over at once, right after each COMMIT) before asking SQLite, whose busy
        # handler sleeps in growing steps and starves threads when many write at once.
        writers = threading.Lock() if memory else _writer_lock(url.database or "")
        held = threading.local()  # the raw connection this thread holds the lock for

        def release(dbapi_connection: Any) -> None:
            raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
            if raw is not None and getattr(held, "raw", None) is raw:
                held.raw = None
                writers.release()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take SQLite's write lock up front: a deferred transaction that reads
            # and then writes can fail at once with SQLITE_BUSY, whatever the busy timeout.
            if conn.get_execution_options().get("smsbridge_read"):
                conn.exec_driver_sql("BEGIN")
                return
            writers.acquire()
            held.raw = conn.connection.dbapi_connection
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                release(held.raw)
                raise

        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                release(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                release(dbapi_connection)

        setattr(dialect, "do_commit", do_commit)  # noqa: B010 - this engine's dialect only
        setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

        @event.listens_for(engine, "checkin")
        def _on_checkin(dbapi_connection: Any, record: Any) -> None:
            release(dbapi_connection)  # a transaction that never ended (safety net)

    return engine


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(database: str) -> threading.Lock:
    """One lock per SQLite file per process, shared by every engine on that file."""
    import os

    key = os.path.realpath(database)
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(key, threading.Lock())


def open_store(url: str, **kw: Any) -> SqlStore:
    """Open (and create or migrate) the store at an SQLAlchemy URL."""
    return SqlStore(url, **kw)


# ---------------------------------------------------------------------- helpers
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_json(error: BaseException | None) -> dict[str, Any] | None:
    if error is None:
        return None
    to_dict = getattr(error, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, dict):
            return data
    return {"type": type(error).__name__, "message": str(error)}


def _error_from_json(data: Mapping[str, Any] | None) -> BaseException | None:
    if not data:
        return None
    name = str(data.get("type", ""))
    cls = getattr(errors_module, name, None)
    if isinstance(cls, type) and issubclass(cls, SendError):
        return error_from_dict(data)
    message = str(data.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, SmsBridgeError):
        try:
            return cls(message)
        except TypeError:  # pragma: no cover - an error class with required arguments
            pass
    return SmsBridgeError(f"{name}: {message}" if name else message)


def _report_key(phone: str, provider_id: str, status: Status) -> str:
    return f"{phone}\x1f{provider_id}\x1f{status.value}"


def _message_of(row: Any) -> OutgoingMessage:
    return OutgoingMessage(
        to=row.to,
        body=row.body,
        sender=row.sender,
        phone=row.requested_phone,
        tag=row.tag,
        flash=bool(row.flash),
        media=tuple(row.media or ()),
        metadata=dict(row.meta or {}),
        idempotency_key=row.idempotency_key,
        send_at=row.send_at,
    )


_MESSAGE_COLUMNS = (
    outgoing.c.id,
    outgoing.c.to,
    outgoing.c.body,
    outgoing.c.sender,
    outgoing.c.requested_phone,
    outgoing.c.tag,
    outgoing.c.flash,
    outgoing.c.media,
    outgoing.c.meta,
    outgoing.c.idempotency_key,
    outgoing.c.send_at,
    outgoing.c.lane,
    outgoing.c.claimed_by,
    outgoing.c.claim_token,
    outgoing.c.lease_until,
    outgoing.c.claims,
)


def _claimed(row: Any) -> ClaimedMessage:
    return ClaimedMessage(
        message_id=row.id,
        message=_message_of(row),
        lane=row.lane,
        claimed_by=row.claimed_by,
        lease_until=row.lease_until,
        claims=int(row.claims or 0),
        token=row.claim_token,
    )


# ---------------------------------------------------------------------- hot statements
# Built once: SQLAlchemy memoises a statement's cache key, so the per-message path
# (hand-over, attempt, outcome) skips statement construction and compilation.
_INSERT_ATTEMPT = insert(attempts)
_INSERT_HISTORY = insert(history)


def _finish_statement(new: Status) -> Any:
    o = outgoing
    movable = [s.value for s in Status if s.may_become(new)]
    moves = o.c.status.in_(movable)
    return (
        update(o)
        .where(o.c.id == bindparam("b_id"))
        .values(
            status=case((moves, new.value), else_=o.c.status),
            status_at=case((moves, bindparam("b_now")), else_=o.c.status_at),
            phone=bindparam("b_phone"),
            provider_id=bindparam("b_provider_id"),
            segments=bindparam("b_segments"),
            encoding=bindparam("b_encoding"),
            error=bindparam("b_error", type_=o.c.error.type),
            raw=bindparam("b_raw", type_=o.c.raw.type),
            updated_at=bindparam("b_now"),
            claimed_by=None,
            claim_token=None,
            lease_until=None,
            sending_since=None,
        )
        .returning(o.c.status)
    )


_FINISH = {status: _finish_statement(status) for status in Status}

_ADOPT = (
    update(history)
    .where(
        history.c.message_id.is_(None),
        history.c.phone == bindparam("b_phone"),
        history.c.provider_id == bindparam("b_pid"),
    )
    .values(message_id=bindparam("b_id"))
    .returning(history.c.id, history.c.status, history.c.at)
)


def _claimable(now: Any) -> list[Any]:
    """Conditions of a message any worker may claim at ``now``: pending in the outbox,
    due, its lease (if any) over, not handed over to a provider yet."""
    o = outgoing
    return [
        PENDING_OUTBOX,
        or_(o.c.send_at.is_(None), o.c.send_at <= now),
        or_(o.c.lease_until.is_(None), o.c.lease_until < now),
        o.c.sending_since.is_(None),
    ]


def _claiming(where: Any, now: Any) -> Any:
    """The UPDATE that claims the rows ``where`` selects, returning them."""
    o = outgoing
    return (
        update(o)
        .where(where)
        .values(
            claimed_by=bindparam("b_worker"),
            claim_token=bindparam("b_token"),
            lease_until=bindparam("b_lease", type_=o.c.lease_until.type),
            claims=o.c.claims + 1,
            updated_at=now,
        )
        .returning(o.c.seq, *_MESSAGE_COLUMNS)
    )


def _mark_statement(with_token: bool) -> Any:
    o = outgoing
    cond = [
        o.c.id == bindparam("b_id"),
        o.c.claimed_by == bindparam("b_worker"),
        o.c.status == Status.pending.value,
    ]
    if with_token:
        cond.append(o.c.claim_token == bindparam("b_token"))
    return (
        update(o)
        .where(*cond)
        .values(
            sending_since=func.coalesce(o.c.sending_since, bindparam("b_now")),
            lease_until=bindparam("b_lease"),
        )
    )


_MARK = {True: _mark_statement(True), False: _mark_statement(False)}
#: The claiming statements' clock: the caller's ``now``, read once the write lock is held.
_NOW = bindparam("b_now", type_=outgoing.c.lease_until.type)
_CLAIM_GIVEN = _claiming(and_(outgoing.c.id == bindparam("b_id"), *_claimable(_NOW)), _NOW)


# ---------------------------------------------------------------------- the store
class SqlStore:
    """A :class:`~smsbridge.store.protocol.MessageStore` and outbox over SQLAlchemy.

    ``url`` is any SQLAlchemy URL for SQLite or PostgreSQL. The schema is created or
    upgraded on open (``migrate=False`` skips that, for tools that manage it themselves).
    Thread-safe: one instance serves every thread of a process (a connection pool).
    """

    def __init__(
        self,
        url: str,
        *,
        migrate_schema: bool = True,
        pool_size: int = 5,
        max_overflow: int = 30,
    ) -> None:
        self._url = _normalise_url(url)
        self.engine = make_engine(self._url, pool_size=pool_size, max_overflow=max_overflow)
        self._read_engine = self.engine.execution_options(smsbridge_read=True)
        self.dialect = self.engine.dialect.name
        self._claim_statements: dict[Any, Any] = {}
        # successful attempts waiting for their finish_send (see record_attempt)
        self._held_attempts: dict[str, list[dict[str, Any]]] = {}
        self._held_lock = threading.Lock()
        # One shared connection (in-memory SQLite): serialise all its users.
        self._lock: Any = threading.RLock() if _is_memory(self._url) else nullcontext()
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
            "claimed_by": None,
            "claim_token": None,
            "lease_until": None,
            "sending_since": None,
            "claims": 0,
            "polled_at": None,
        }

    def _ids_for_keys(self, conn: Connection, keys: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = sorted(set(keys))
        for chunk in _chunks(unique, _KEY_CHUNK):
            rows = conn.execute(
                select(outgoing.c.idempotency_key, outgoing.c.id).where(
                    outgoing.c.idempotency_key.in_(chunk)
                )
            )
            found.update({r.idempotency_key: r.id for r in rows})
        return found

    # ------------------------------------------------------------------ MessageStore
    def begin_send(
        self,
        message_id: str,
        message: OutgoingMessage,
        *,
        to: str,
        segments: int,
        encoding: str,
    ) -> SendResult | None:
        key = message.idempotency_key
        existing: str | None = None
        if key:
            with self._read() as conn:
                existing = self._ids_for_keys(conn, [key]).get(key)
            if existing is not None:
                return self.get_result(existing)
        row = self._outgoing_row(
            message_id,
            message,
            to=to,
            segments=segments,
            encoding=encoding,
            now=utcnow(),
            outbox=False,
            lane=None,
        )
        with self._write() as conn:
            inserted = conn.execute(self._insert_outgoing, row).first() is not None
            if not inserted and key:
                existing = self._ids_for_keys(conn, [key]).get(key)
        if inserted:
            return None
        assert existing is not None
        return self.get_result(existing)

    def record_attempt(self, message_id: str, attempt: Attempt) -> None:
        """A failed attempt is written at once (more provider calls follow it); a
        successful one is written with the outcome by :meth:`finish_send`, which the
        send lifecycle calls right after it: one commit less per message."""
        row = {
            "message_id": message_id,
            "phone": attempt.phone,
            "error": attempt.error,
            "error_type": attempt.error_type,
            "at": attempt.at,
            "retries": attempt.retries,
        }
        if attempt.error is None:
            with self._held_lock:
                self._held_attempts.setdefault(message_id, []).append(row)
            return
        with self._write() as conn:
            conn.execute(_INSERT_ATTEMPT, row)

    def finish_send(self, result: SendResult) -> None:
        now = utcnow()
        params = {
            "b_id": result.message_id,
            "b_phone": result.phone,
            "b_provider_id": result.provider_id,
            "b_segments": result.segments,
            "b_encoding": result.encoding,
            "b_error": _error_json(result.error),
            "b_raw": result.raw,
            "b_now": now,
        }
        with self._held_lock:
            held = self._held_attempts.pop(result.message_id, None)
        with self._write() as conn:
            # one conditional UPDATE: the status moves only where Status.may_become allows
            row = conn.execute(_FINISH[result.status], params).first()
            if row is None:
                log.warning("finish_send: message %s is not in the store", result.message_id)
                return
            if held:
                conn.execute(_INSERT_ATTEMPT, held)
            conn.execute(
                _INSERT_HISTORY,
                {
                    "message_id": result.message_id,
                    "at": now,
                    "status": result.status.value,
                    "raw_status": None,
                    "error_code": getattr(result.error, "provider_code", None),
                    "error_message": str(result.error) if result.error is not None else None,
                    "phone": result.phone,
                    "provider_id": result.provider_id,
                    "source": "send",
                    "report_key": None,
                    "raw": None,
                },
            )
            if result.phone and result.provider_id:
                self._adopt_early_reports(conn, result, Status(row.status))

    @staticmethod
    def _adopt_early_reports(conn: Connection, result: SendResult, status: Status) -> None:
        """Reports that arrived before the provider id was stored: attach and apply them."""
        early = conn.execute(
            _ADOPT,
            {"b_id": result.message_id, "b_phone": result.phone, "b_pid": result.provider_id},
        ).all()
        at = None
        for r in sorted(early, key=lambda r: r.id):
            new = Status(r.status)
            if status.may_become(new):
                status, at = new, r.at
        if at is not None:
            conn.execute(
                update(outgoing)
                .where(outgoing.c.id == result.message_id)
                .values(status=status.value, status_at=at)
            )

    def apply_status(self, report: StatusReport) -> tuple[StatusReport, bool]:
        o = outgoing
        now = utcnow()
        with self._write() as conn:
            row = None
            if report.message_id:
                row = conn.execute(
                    select(o.c.id, o.c.status).where(o.c.id == report.message_id).with_for_update()
                ).first()
            if row is None and report.provider_id:
                row = conn.execute(
                    select(o.c.id, o.c.status)
                    .where(o.c.phone == report.phone, o.c.provider_id == report.provider_id)
                    .order_by(o.c.seq.desc())
                    .limit(1)
                    .with_for_update()
                ).first()
            message_id = row.id if row is not None else None
            values = {
                "message_id": message_id,
                "at": report.at,
                "status": report.status.value,
                "raw_status": None if report.raw_status is None else str(report.raw_status),
                "error_code": None if report.error_code is None else str(report.error_code),
                "error_message": report.error_message,
                "phone": report.phone,
                "provider_id": report.provider_id,
                "source": "report",
                "report_key": (
                    _report_key(report.phone, report.provider_id, report.status)
                    if report.provider_id
                    else None
                ),
                "raw": report.raw,
            }
            stmt = self._insert(history).values(values)
            if report.provider_id:
                stmt = stmt.on_conflict_do_nothing(index_elements=["report_key"])
            # RETURNING, not rowcount: implicit RETURNING of the key hides rowcount on PG
            fresh = conn.execute(stmt.returning(history.c.id)).first() is not None
            if fresh and row is not None and Status(row.status).may_become(report.status):
                conn.execute(
                    update(o)
                    .where(o.c.id == message_id)
                    .values(status=report.status.value, status_at=report.at, updated_at=now)
                )
        if message_id is not None and report.message_id != message_id:
            report = replace(report, message_id=message_id)
        return report, fresh

    def record_incoming(self, message: IncomingMessage) -> bool:
        stmt = (
            self._insert(incoming)
            .values(
                id=message.id,
                phone=message.phone,
                sender=message.sender,
                recipient=message.recipient,
                body=message.body,
                received_at=message.received_at,
                stored_at=utcnow(),
                provider_id=message.provider_id,
                media=list(message.media) or None,
                raw=message.raw,
            )
            .on_conflict_do_nothing()
        )
        with self._write() as conn:
            return conn.execute(stmt.returning(incoming.c.id)).first() is not None

    def get_result(self, message_id: str) -> SendResult | None:
        o = outgoing
        with self._read() as conn:
            row = conn.execute(
                select(
                    o.c.id,
                    o.c.status,
                    o.c.phone,
                    o.c.provider_id,
                    o.c.to,
                    o.c.segments,
                    o.c.encoding,
                    o.c.error,
                    o.c.raw,
                ).where(o.c.id == message_id)
            ).first()
            if row is None:
                return None
            tried = self._attempts(conn, message_id)
        return SendResult(
            message_id=row.id,
            status=Status(row.status),
            phone=row.phone,
            provider_id=row.provider_id,
            to=row.to,
            segments=int(row.segments),
            encoding=row.encoding,
            error=_error_from_json(row.error),
            attempts=tuple(tried),
            raw=row.raw,
        )

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

    # ------------------------------------------------------------------ outbox
    def enqueue(self, entries: Sequence[OutboxEntry]) -> list[str]:
        """Store messages in the outbox in one transaction; returns their ids.

        A message whose ``idempotency_key`` is already stored (or repeated earlier in
        ``entries``) is not stored again: its position gets the first message's id.
        """
        now = utcnow()
        keys = [e.message.idempotency_key for e in entries if e.message.idempotency_key]
        stmt = self._insert(outgoing)
        if keys:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        with self._write() as conn:
            for chunk in _chunks(entries, _CHUNK):  # rows built per chunk: bounded memory
                rows = [
                    self._outgoing_row(
                        e.message_id,
                        e.message,
                        to=e.to,
                        segments=e.segments,
                        encoding=e.encoding,
                        now=now,
                        outbox=True,
                        lane=e.lane,
                    )
                    for e in chunk
                ]
                conn.execute(stmt, rows)
            by_key = self._ids_for_keys(conn, keys) if keys else {}
        return [
            by_key.get(e.message.idempotency_key, e.message_id)
            if e.message.idempotency_key
            else e.message_id
            for e in entries
        ]

    def claim(
        self,
        worker: str,
        *,
        lanes: Sequence[str] | None = None,
        exclude_lanes: Sequence[str] | None = None,
        limit: int = 10,
        lease: float = 30.0,
        now: datetime | None = None,
    ) -> list[ClaimedMessage]:
        """Atomically take up to ``limit`` due outbox messages for ``worker``, oldest first.

        ``lanes`` restricts to those lanes; ``exclude_lanes`` takes every other lane
        (messages whose phone left the config). A claim lasts ``lease`` seconds unless
        renewed; messages claimed by a lost worker become claimable again after that,
        except those it had started sending (see :meth:`lost_claims`).
        """
        stmt = self._claim_statement(
            tuple(lanes) if lanes is not None else None, tuple(exclude_lanes or ())
        )
        with self._write() as conn:
            # the clock is read once the write lock is held (SQLite): a claim that waited
            # for the lock must not start with a lease that is already running out
            now = now or utcnow()
            params = {
                "b_now": now,
                "b_limit": limit,
                "b_worker": worker,
                "b_token": secrets.token_hex(8),
                "b_lease": now + timedelta(seconds=lease),
            }
            rows = sorted(conn.execute(stmt, params).all(), key=lambda r: r.seq)
        return [_claimed(r) for r in rows]

    def _claim_statement(self, lanes: tuple[str, ...] | None, exclude: tuple[str, ...]) -> Any:
        """The claiming UPDATE for a set of lanes, built once per set (hot path)."""
        key = (lanes, exclude)
        stmt = self._claim_statements.get(key)
        if stmt is not None:
            return stmt
        o = outgoing
        cond = _claimable(_NOW)
        if lanes is not None:
            cond.append(o.c.lane.in_(list(lanes)))
        if exclude:
            cond.append(or_(o.c.lane.is_(None), o.c.lane.not_in(list(exclude))))
        candidates = (
            select(o.c.seq)
            .where(*cond)
            .order_by(o.c.seq)
            .limit(bindparam("b_limit"))
            .with_for_update(skip_locked=True)
        )
        stmt = _claiming(o.c.seq.in_(candidates.scalar_subquery()), _NOW)
        self._claim_statements[key] = stmt
        return stmt

    def claim_one(
        self,
        message_id: str,
        *,
        owner: str,
        lease: float = 30.0,
        resend_ambiguous: bool = False,
    ) -> ClaimOutcome:
        """Claim one given outbox message (task queues that carry message ids).

        A message whose previous owner's lease expired after it had started sending
        is settled first: ``unknown`` (state ``done``), or claimed again when
        ``resend_ambiguous``.
        """
        o = outgoing
        with self._write() as conn:
            now = utcnow()
            # The common case in one statement: pending, due, unclaimed → claimed.
            claimed = conn.execute(
                _CLAIM_GIVEN,
                {
                    "b_id": message_id,
                    "b_now": now,
                    "b_worker": owner,
                    "b_token": secrets.token_hex(8),
                    "b_lease": now + timedelta(seconds=lease),
                },
            ).first()
            if claimed is not None:
                item = _claimed(claimed)
                return ClaimOutcome(
                    "claimed", message=item.message, status=Status.pending.value, claimed=item
                )
            # Otherwise find out why (and settle a lost send) under the row's lock.
            row = conn.execute(
                select(o.c.seq, o.c.status, o.c.outbox, o.c.sending_since, *_MESSAGE_COLUMNS)
                .where(o.c.id == message_id)
                .with_for_update()
            ).first()
            if row is None or not row.outbox:
                return ClaimOutcome("missing")
            if row.status != Status.pending.value:
                return ClaimOutcome("done", status=row.status)
            if row.send_at is not None and row.send_at > now:
                wait = (row.send_at - now).total_seconds()
                return ClaimOutcome("not_due", retry_in=wait, status=row.status)
            if row.lease_until is not None and row.lease_until > now:
                wait = (row.lease_until - now).total_seconds()
                return ClaimOutcome("busy", retry_in=wait, status=row.status)
            if row.sending_since is not None and not resend_ambiguous:
                self._settle_lost(conn, _claimed(row), now, resend=False)
                return ClaimOutcome("done", status=Status.unknown.value)
            claimed = conn.execute(
                update(o)
                .where(o.c.id == message_id)
                .values(
                    claimed_by=owner,
                    claim_token=secrets.token_hex(8),
                    lease_until=now + timedelta(seconds=lease),
                    sending_since=None,
                    claims=o.c.claims + 1,
                    updated_at=now,
                )
                .returning(o.c.seq, *_MESSAGE_COLUMNS)
            ).one()
        item = _claimed(claimed)
        return ClaimOutcome("claimed", message=item.message, status=row.status, claimed=item)

    def pending_ids(self, *, older_than: float = 0.0, limit: int = 10_000) -> list[str]:
        """Ids of due outbox messages no live worker holds, stored at least
        ``older_than`` seconds ago, oldest first (for re-dispatching lost tasks)."""
        o = outgoing
        now = utcnow()
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id)
                .where(
                    PENDING_OUTBOX,
                    or_(o.c.send_at.is_(None), o.c.send_at <= now),
                    or_(o.c.lease_until.is_(None), o.c.lease_until < now),
                    o.c.created_at <= now - timedelta(seconds=older_than),
                )
                .order_by(o.c.seq)
                .limit(limit)
            )
            return [r.id for r in rows]

    def mark_sending(
        self,
        message_id: str,
        worker: str,
        *,
        token: str | None = None,
        lease: float = 30.0,
    ) -> bool:
        """Record that ``worker`` is about to hand the message to a provider.

        False when the claim (``token``: the one :meth:`claim` returned) is no longer
        held: the caller must then not send. From here on, a lost worker's message is
        not resent blindly (see :meth:`lost_claims`).
        """
        with self._write() as conn:
            now = utcnow()
            params = {
                "b_id": message_id,
                "b_worker": worker,
                "b_token": token,
                "b_now": now,
                "b_lease": now + timedelta(seconds=lease),
            }
            return bool(conn.execute(_MARK[token is not None], params).rowcount == 1)

    def renew(self, worker: str, *, lease: float = 30.0) -> int:
        """Extend every live claim of ``worker`` (its heartbeat); returns how many."""
        o = outgoing
        with self._write() as conn:
            now = utcnow()
            result = conn.execute(
                update(o)
                .where(o.c.claimed_by == worker, o.c.status == Status.pending.value)
                .values(lease_until=now + timedelta(seconds=lease))
            )
            return int(result.rowcount)

    def release(self, worker: str, message_ids: Sequence[str] | None = None) -> int:
        """Give back claimed messages ``worker`` has not started sending."""
        o = outgoing
        cond = [
            o.c.claimed_by == worker,
            o.c.status == Status.pending.value,
            o.c.sending_since.is_(None),
        ]
        if message_ids is not None:
            if not message_ids:
                return 0
            cond.append(o.c.id.in_(list(message_ids)))
        with self._write() as conn:
            result = conn.execute(
                update(o).where(*cond).values(claimed_by=None, claim_token=None, lease_until=None)
            )
            return int(result.rowcount)

    def lost_claims(self, *, now: datetime | None = None, limit: int = 100) -> list[ClaimedMessage]:
        """Messages a worker started sending and then lost (lease expired, still pending).

        They may have reached the provider: resolve each with :meth:`resolve_lost`.
        """
        o = outgoing
        now = now or utcnow()
        with self._read() as conn:
            # (no status test in SQL: it would steer SQLite to the status index; rows
            # leave the in-flight index when their outcome is recorded)
            rows = conn.execute(
                select(o.c.seq, o.c.status, *_MESSAGE_COLUMNS)
                .where(o.c.sending_since.is_not(None), o.c.lease_until < now)
                .order_by(o.c.lease_until)
                .limit(limit)
            ).all()
        return [_claimed(r) for r in rows if r.status == Status.pending.value]

    def resolve_lost(self, lost: ClaimedMessage, *, resend: bool) -> bool:
        """Settle a lost in-flight message: ``unknown`` (it may have gone out), or back
        to the outbox when its route allows resending ambiguous messages. False when
        something else settled it first."""
        with self._write() as conn:
            return self._settle_lost(conn, lost, utcnow(), resend=resend)

    @staticmethod
    def _settle_lost(
        conn: Connection, lost: ClaimedMessage, now: datetime, *, resend: bool
    ) -> bool:
        o = outgoing
        owner = o.c.claimed_by
        cond = [
            o.c.id == lost.message_id,
            o.c.status == Status.pending.value,
            o.c.sending_since.is_not(None),
            o.c.lease_until < now,
            owner.is_(None) if lost.claimed_by is None else owner == lost.claimed_by,
        ]
        if resend:
            values: dict[str, Any] = {
                "claimed_by": None,
                "claim_token": None,
                "lease_until": None,
                "sending_since": None,
                "updated_at": now,
            }
            return bool(conn.execute(update(o).where(*cond).values(values)).rowcount == 1)
        error = {
            "type": "AmbiguousSend",
            "message": "the worker sending it stopped before recording the outcome; "
            "it may or may not have gone out",
            "phone": None,
            "retryable": False,
            "provider_code": None,
        }
        changed = conn.execute(
            update(o)
            .where(*cond)
            .values(
                status=Status.unknown.value,
                status_at=now,
                updated_at=now,
                error=error,
                claimed_by=None,
                claim_token=None,
                lease_until=None,
                sending_since=None,
            )
        ).rowcount
        if changed != 1:
            return False
        conn.execute(
            insert(history).values(
                message_id=lost.message_id,
                at=now,
                status=Status.unknown.value,
                error_message=error["message"],
                source="worker",
            )
        )
        return True

    def next_due(self) -> datetime | None:
        """When the earliest scheduled outbox message becomes due (None: none waiting)."""
        o = outgoing
        with self._read() as conn:
            value: datetime | None = conn.execute(
                select(func.min(o.c.send_at)).where(PENDING_OUTBOX, o.c.send_at.is_not(None))
            ).scalar()
        return value

    def to_poll(
        self, phone: str, *, limit: int = 100, max_age: timedelta = timedelta(days=3)
    ) -> list[tuple[str, str]]:
        """(message id, provider id) of ``phone``'s messages still waiting for a final
        status, least recently polled first (for phones whose status_mode is poll)."""
        o = outgoing
        since = utcnow() - max_age
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id, o.c.provider_id)
                .where(
                    o.c.phone == phone,
                    o.c.provider_id.is_not(None),
                    o.c.status.in_([Status.queued.value, Status.sent.value, Status.unknown.value]),
                    o.c.created_at >= since,
                )
                .order_by(o.c.polled_at.is_not(None), o.c.polled_at, o.c.seq)
                .limit(limit)
            ).all()
        return [(r.id, r.provider_id) for r in rows]

    def mark_polled(self, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        now = utcnow()
        with self._write() as conn:
            for chunk in _chunks(list(message_ids), _KEY_CHUNK):
                conn.execute(update(outgoing).where(outgoing.c.id.in_(chunk)).values(polled_at=now))

    # ------------------------------------------------------------------ queries
    def counts(self, *, outbox: bool | None = None) -> dict[str, int]:
        """Number of outgoing messages per status."""
        o = outgoing
        query = select(o.c.status, func.count()).group_by(o.c.status)
        if outbox is not None:
            query = query.where(o.c.outbox.is_(outbox))
        with self._read() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def find_ids(self, prefix: str, *, limit: int = 2) -> list[str]:
        """Message ids starting with ``prefix`` (for short ids typed by humans)."""
        o = outgoing
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read() as conn:
            rows = conn.execute(
                select(o.c.id).where(o.c.id.like(escaped + "%", escape="\\")).limit(limit)
            )
            return [r.id for r in rows]

    def get_message(self, message_id: str) -> StoredMessage | None:
        """Everything stored about one outgoing message, with attempts and history."""
        with self._read() as conn:
            row = conn.execute(select(outgoing).where(outgoing.c.id == message_id)).first()
            if row is None:
                return None
            tried = self._attempts(conn, message_id)
            h = history
            lines = conn.execute(
                select(h).where(h.c.message_id == message_id).order_by(h.c.at, h.c.id)
            ).all()
        entries = [
            HistoryEntry(
                at=row.created_at,
                status=Status.pending,
                source="enqueue" if row.outbox else "send",
            )
        ] + [
            HistoryEntry(
                at=r.at,
                status=Status(r.status),
                source=r.source,
                raw_status=r.raw_status,
                error_code=r.error_code,
                error_message=r.error_message,
                phone=r.phone,
                provider_id=r.provider_id,
            )
            for r in lines
        ]
        return self._stored(row, tried, entries)

    @staticmethod
    def _stored(
        row: Row[Any], tried: Sequence[Attempt] = (), entries: Sequence[HistoryEntry] = ()
    ) -> StoredMessage:
        return StoredMessage(
            message_id=row.id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            to=row.to,
            body=row.body,
            status=Status(row.status),
            status_at=row.status_at,
            phone=row.phone,
            provider_id=row.provider_id,
            segments=int(row.segments),
            encoding=row.encoding,
            sender=row.sender,
            tag=row.tag,
            requested_phone=row.requested_phone,
            idempotency_key=row.idempotency_key,
            metadata=dict(row.meta or {}),
            error=row.error,
            outbox=bool(row.outbox),
            lane=row.lane,
            send_at=row.send_at,
            claimed_by=row.claimed_by,
            lease_until=row.lease_until,
            attempts=tuple(tried),
            history=tuple(entries),
        )

    def list_outgoing(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        phone: str | None = None,
        since: datetime | None = None,
        outbox: bool | None = None,
        limit: int | None = 50,
        newest_first: bool = True,
    ) -> list[StoredMessage]:
        """Outgoing messages, filtered (``phone`` matches the phone used or the lane)."""
        o = outgoing
        query = select(o)
        if status is not None:
            wanted = [status] if isinstance(status, (str, Status)) else list(status)
            query = query.where(o.c.status.in_([Status(s).value for s in wanted]))
        if phone is not None:
            query = query.where(
                or_(o.c.phone == phone, and_(o.c.phone.is_(None), o.c.lane == phone))
            )
        if since is not None:
            query = query.where(o.c.created_at >= since)
        if outbox is not None:
            query = query.where(o.c.outbox.is_(outbox))
        query = query.order_by(o.c.seq.desc() if newest_first else o.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [self._stored(r) for r in rows]

    def list_incoming(
        self,
        *,
        phone: str | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[IncomingMessage]:
        """Inbound messages, newest first."""
        i = incoming
        query = select(i)
        if phone is not None:
            query = query.where(i.c.phone == phone)
        if since is not None:
            query = query.where(i.c.received_at >= since)
        query = query.order_by(i.c.received_at.desc(), i.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            IncomingMessage(
                id=r.id,
                phone=r.phone,
                sender=r.sender,
                recipient=r.recipient,
                body=r.body,
                received_at=r.received_at,
                provider_id=r.provider_id,
                media=tuple(r.media or ()),
                raw=r.raw,
            )
            for r in rows
        ]

    def delete_before(self, before: datetime) -> int:
        """Delete outgoing messages (with history and attempts) and inbound messages
        older than ``before`` that are no longer pending; returns how many outgoing."""
        o = outgoing
        with self._write() as conn:
            doomed = select(o.c.id).where(
                o.c.created_at < before, o.c.status != Status.pending.value
            )
            conn.execute(delete(history).where(history.c.message_id.in_(doomed)))
            conn.execute(delete(attempts).where(attempts.c.message_id.in_(doomed)))
            count = conn.execute(
                delete(o).where(o.c.created_at < before, o.c.status != Status.pending.value)
            ).rowcount
            conn.execute(delete(incoming).where(incoming.c.received_at < before))
        return int(count)

    # ------------------------------------------------------------------ key-value cache
    def cache_get(self, namespace: str, key: str) -> tuple[str, datetime] | None:
        """The value stored under (``namespace``, ``key``) and when it expires; None
        when there is none or it has expired."""
        c = cache
        query = select(c.c.value, c.c.expires_at).where(
            c.c.namespace == namespace, c.c.key == key, c.c.expires_at > utcnow()
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.value, row.expires_at)

    def cache_set(self, namespace: str, key: str, value: str, expires_at: datetime) -> None:
        """Store ``value`` until ``expires_at`` (replacing any value under that key); the
        namespace's expired entries are dropped on the way."""
        c = cache
        stmt = self._insert(c).values(
            namespace=namespace, key=key, value=value, expires_at=expires_at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.c.namespace, c.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        with self._write() as conn:
            conn.execute(
                delete(c).where(
                    c.c.namespace == namespace, c.c.key != key, c.c.expires_at <= utcnow()
                )
            )
            conn.execute(stmt)

    def cache_delete(self, namespace: str, key: str) -> None:
        """Forget the value under (``namespace``, ``key``), if any."""
        c = cache
        with self._write() as conn:
            conn.execute(delete(c).where(c.c.namespace == namespace, c.c.key == key))
