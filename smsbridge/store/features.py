"""SQL persistence for the opt-out list and verification codes (SQLAlchemy Core).

The tables (:mod:`smsbridge.store.schema`, ``smsbridge_optouts`` and
``smsbridge_verifications``) belong to the message store's Alembic migrations, so a
store's database already has them. Given any other SQLAlchemy URL or engine, the
migrations are run on it on first use (idempotent; concurrent starters serialise on the
migration lock). SQLite and PostgreSQL are tested.

Concurrency: every state change is one conditional ``UPDATE`` (``attempts < max``,
``used_at IS NULL``, ``record_id = expected``) or an ``INSERT`` guarded by the primary
key, in its own short transaction, so two processes can never both consume a code,
exceed the attempt bound, or both pass a resend cooldown, and no lock is held between
statements (SQLite's single writer never deadlocks on an upgrade).
"""

from __future__ import annotations

import threading
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import migrate
from .records import OptOut, Throttle, VerificationRecord, plan_issue
from .schema import optouts as optouts_table
from .schema import verifications as verifications_table

__all__ = [
    "SqlOptOutStore",
    "SqlVerificationStore",
    "engine_for",
    "ensure_tables",
    "optouts_table",
    "verifications_table",
]

# Engines whose tables were made. Weak: a disposed engine leaves, and a new engine can
# never pass for it (an id() can be reused once the old engine is garbage-collected — it was,
# and a new engine on a fresh schema then skipped creating its tables).
_created: weakref.WeakSet[Engine] = weakref.WeakSet()
_created_lock = threading.Lock()


def engine_for(target: Any) -> Engine:
    """An engine from an SQLAlchemy URL, an :class:`~sqlalchemy.Engine`, or an object
    with an ``engine`` attribute (the bridge's message store, whose migrations made the
    tables); for a URL or engine, the tables are created once if missing."""
    engine: Engine
    if isinstance(target, Engine):
        engine = target
    elif isinstance(getattr(target, "engine", None), Engine):
        engine = target.engine
        return engine
    elif isinstance(target, str):
        engine = _make_engine(target)
    else:
        raise TypeError(f"expected an SQLAlchemy URL or engine, got {type(target).__name__}")
    ensure_tables(engine)
    return engine


def _make_engine(url: str) -> Engine:
    # The message store's engine set-up: URL checks, psycopg 3, SQLite WAL and timeouts.
    from .sql import make_engine

    return make_engine(url)


def ensure_tables(engine: Engine) -> None:
    """Bring the database to the store's schema (the Alembic migrations), once per
    engine. Processes starting together race on the first migration (SQLite: a locked
    database; PostgreSQL: the advisory lock is taken after ``alembic_version`` may be
    created): the loser retries, and then finds the schema current."""
    with _created_lock:
        if engine in _created:
            return
        for attempt in range(5):
            try:
                migrate.upgrade(engine)
                break
            except DBAPIError:
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        _created.add(engine)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _reader(engine: Engine) -> Engine:
    # Reads need no write lock (the message store's SQLite engine honours this option).
    return engine.execution_options(smsbridge_read=True)


class SqlOptOutStore:
    """:class:`~smsbridge.optouts.OptOutStore` in table ``smsbridge_optouts``."""

    def __init__(self, engine: Engine | str) -> None:
        self.engine = engine_for(engine)
        self._read = _reader(self.engine)

    def add(self, entry: OptOut) -> bool:
        values = {
            "opted_out_at": _utc(entry.at),
            "keyword": entry.keyword,
            "phone": entry.phone,
            "source": entry.source,
        }
        t = optouts_table
        for _ in range(3):
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(t).where(t.c.number == entry.number).values(**values)
                ).rowcount
            if changed:
                return False
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(t).values(number=entry.number, **values))
                return True
            except IntegrityError:  # added in between by another process: update it
                continue
        return False

    def remove(self, number: str) -> bool:
        with self.engine.begin() as conn:
            t = optouts_table
            return bool(conn.execute(delete(t).where(t.c.number == number)).rowcount)

    @staticmethod
    def _entry(row: Any) -> OptOut:
        at = _aware(row.opted_out_at)
        assert at is not None
        return OptOut(row.number, at, row.keyword, row.phone, row.source)

    def get(self, number: str) -> OptOut | None:
        t = optouts_table
        with self._read.connect() as conn:
            row = conn.execute(select(t).where(t.c.number == number)).first()
        return None if row is None else self._entry(row)

    def entries(self, *, limit: int | None = None, offset: int = 0) -> list[OptOut]:
        t = optouts_table
        query = select(t).order_by(t.c.opted_out_at.desc(), t.c.number).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._read.connect() as conn:
            return [self._entry(row) for row in conn.execute(query)]

    def count(self) -> int:
        with self._read.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(optouts_table)).scalar_one())

    def close(self) -> None:
        return None  # the engine belongs to whoever made it


class SqlVerificationStore:
    """:class:`~smsbridge.verification.VerificationStore` in ``smsbridge_verifications``."""

    def __init__(self, engine: Engine | str) -> None:
        self.engine = engine_for(engine)
        self._read = _reader(self.engine)

    @staticmethod
    def _record(row: Any) -> VerificationRecord:
        sent_at, expires_at, window = (
            _aware(row.sent_at),
            _aware(row.expires_at),
            _aware(row.window_started_at),
        )
        assert sent_at is not None and expires_at is not None and window is not None
        return VerificationRecord(
            number=row.number,
            purpose=row.purpose,
            record_id=row.record_id,
            digest=row.digest,
            salt=row.salt,
            sent_at=sent_at,
            expires_at=expires_at,
            window_started_at=window,
            attempts=row.attempts,
            sends=row.sends,
            used_at=_aware(row.used_at),
        )

    def _values(self, record: VerificationRecord) -> dict[str, Any]:
        return {
            "record_id": record.record_id,
            "digest": record.digest,
            "salt": record.salt,
            "sent_at": _utc(record.sent_at),
            "expires_at": _utc(record.expires_at),
            "window_started_at": _utc(record.window_started_at),
            "attempts": record.attempts,
            "sends": record.sends,
            "used_at": _utc(record.used_at) if record.used_at else None,
        }

    def issue(
        self,
        record: VerificationRecord,
        *,
        cooldown: timedelta,
        window: timedelta,
        max_sends: int,
    ) -> Throttle | None:
        t = verifications_table
        raced = Throttle("cooldown", max(cooldown.total_seconds(), 1.0))
        key = (t.c.number == record.number) & (t.c.purpose == record.purpose)
        # Optimistic: read, decide, then write only if the row is still the one read
        # (same record_id), in one statement each, so no lock is held across them.
        existing = self.get(record.number, record.purpose)
        planned = plan_issue(
            existing, record, cooldown=cooldown, window=window, max_sends=max_sends
        )
        if isinstance(planned, Throttle):
            return planned
        values = self._values(planned)
        if existing is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(t).values(number=record.number, purpose=record.purpose, **values)
                    )
            except IntegrityError:  # another process inserted a record meanwhile
                return raced
            return None
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t).where(key & (t.c.record_id == existing.record_id)).values(**values)
            ).rowcount
        return None if changed == 1 else raced

    def get(self, number: str, purpose: str) -> VerificationRecord | None:
        t = verifications_table
        with self._read.connect() as conn:
            row = conn.execute(
                select(t).where((t.c.number == number) & (t.c.purpose == purpose))
            ).first()
        return None if row is None else self._record(row)

    def attempt(self, record_id: str, max_attempts: int) -> bool:
        t = verifications_table
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(
                    (t.c.record_id == record_id)
                    & (t.c.attempts < max_attempts)
                    & t.c.used_at.is_(None)
                )
                .values(attempts=t.c.attempts + 1)
            ).rowcount
        return changed == 1

    def consume(self, record_id: str, at: datetime) -> bool:
        t = verifications_table
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t)
                .where((t.c.record_id == record_id) & t.c.used_at.is_(None))
                .values(used_at=_utc(at))
            ).rowcount
        return changed == 1

    def discard(self, record_id: str) -> None:
        t = verifications_table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.record_id == record_id))

    def close(self) -> None:
        return None
