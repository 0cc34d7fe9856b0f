"""The store's engine: URL checks, drivers (psycopg 3), SQLite WAL, one writer at a time."""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from typing import Any

from sqlalchemy import create_engine as _create_engine
from sqlalchemy import (
    event,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ..errors import ConfigError

__all__ = ["is_memory", "json_dumps", "make_engine", "normalise_url"]

log = logging.getLogger("smsbridge.store")


# ---------------------------------------------------------------------- engine
def json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def normalise_url(raw: str) -> URL:
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


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(raw_url: str | URL, *, pool_size: int = 5, max_overflow: int = 30) -> Engine:
    """An engine set up for the store (WAL and ``BEGIN IMMEDIATE`` on SQLite)."""
    url = normalise_url(raw_url if isinstance(raw_url, str) else raw_url.render_as_string(False))
    kw: dict[str, Any] = {"json_serializer": json_dumps}
    if url.get_backend_name() == "sqlite":
        kw["connect_args"] = {"check_same_thread": False, "timeout": 30.0}
        if is_memory(url):
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
        memory = is_memory(url)

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
