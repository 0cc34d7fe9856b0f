"""Schema migrations, run automatically when a store is opened.

Opening a store checks the schema version (one cheap read). Only when it is behind does
it take the migration lock — an exclusive write transaction on SQLite, an advisory lock on
PostgreSQL — and run the missing Alembic migrations inside that one transaction, so that
many processes starting at once upgrade the database exactly once and a failed upgrade
leaves it as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

from ..errors import ConfigError
from .schema import VERSION_TABLE

__all__ = ["HEAD", "MIGRATIONS", "current_revision", "downgrade", "head_revision", "upgrade"]

log = logging.getLogger("smsbridge.store")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
# pg_advisory_xact_lock key: "smsbridge" as a 63-bit number
_PG_LOCK_KEY = int.from_bytes(b"smsbrdg", "big")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema version of the database (None when it has no smsbridge tables)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        revision = context.get_current_revision()
        conn.rollback()
    return revision


def upgrade(engine: Engine, revision: str = HEAD) -> bool:
    """Bring the schema to ``revision`` (default: the newest). True when it changed."""
    script = _script()
    current = current_revision(engine)
    target = script.get_current_head() if revision == HEAD else revision
    if current == target:
        return False
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise ConfigError(
            f"the store's schema (revision {current}) is newer than this version of "
            "smsbridge knows: upgrade smsbridge",
            key="store",
        )
    cfg = _config()
    with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: the migration lock
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("store schema upgraded from %s to %s", current or "empty", target)
    return True


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (an operator's tool; never run automatically)."""
    cfg = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
