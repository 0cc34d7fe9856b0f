"""The store's tables at the newest schema version (what the code reads and writes).

The migrations under ``migrations/versions`` build the same tables step by step and must
stay frozen snapshots: they never import this module. A test compares the two.

Every table name starts with ``smsbridge_`` so the store can share a database with the
application (Django, Flask...), and Alembic's version table is ``smsbridge_alembic_version``
so it never collides with the application's own migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "PENDING_OUTBOX",
    "VERSION_TABLE",
    "UTCDateTime",
    "attempts",
    "cache",
    "history",
    "incoming",
    "metadata",
    "optouts",
    "outgoing",
    "verifications",
]

VERSION_TABLE = "smsbridge_alembic_version"
CLAIMABLE = "status = 'pending' AND outbox"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC (which also keeps its text comparisons right) and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use a timezone-aware one")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - raw text from a hand-made row
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JsonType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# An autoincrementing 64-bit key; SQLite only autoincrements "INTEGER PRIMARY KEY".
SeqType = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

outgoing = Table(
    "smsbridge_outgoing",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # the message as given (``to`` normalised to E.164)
    Column("to", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("sender", String(64)),
    Column("requested_phone", String(128)),
    Column("tag", String(128)),
    Column("flash", Boolean, nullable=False, server_default=text("false")),
    Column("media", JsonType),
    Column("meta", JsonType),
    Column("idempotency_key", String(255)),
    # the outcome
    Column("status", String(16), nullable=False),
    Column("status_at", UTCDateTime(), nullable=False),
    Column("phone", String(128)),
    Column("provider_id", String(255)),
    Column("segments", Integer, nullable=False, server_default=text("1")),
    Column("encoding", String(8), nullable=False, server_default=text("'gsm7'")),
    Column("error", JsonType),
    Column("raw", JsonType),
    # v2: the outbox
    Column("outbox", Boolean, nullable=False, server_default=text("false")),
    Column("lane", String(128)),
    Column("send_at", UTCDateTime()),
    Column("claimed_by", String(128)),
    Column("claim_token", String(32)),
    Column("lease_until", UTCDateTime()),
    Column("sending_since", UTCDateTime()),
    Column("claims", Integer, nullable=False, server_default=text("0")),
    Column("polled_at", UTCDateTime()),
    # v4: the template slug and the locale actually used (send_template)
    Column("template", String(128)),
    Column("locale", String(35)),
    UniqueConstraint("id", name="uq_smsbridge_outgoing_id"),
    UniqueConstraint("idempotency_key", name="uq_smsbridge_outgoing_idempotency_key"),
    Index("ix_smsbridge_outgoing_provider", "phone", "provider_id"),
    Index("ix_smsbridge_outgoing_status", "status", "created_at"),
    Index("ix_smsbridge_outgoing_created", "created_at"),
    # v2: claimable rows only (pending outbox rows), in order, per lane
    Index(
        "ix_smsbridge_outgoing_claim",
        "lane",
        "seq",
        sqlite_where=text(CLAIMABLE),
        postgresql_where=text(CLAIMABLE),
    ),
    # v2: live claims (heartbeats, releases) and messages being handed to a provider
    Index(
        "ix_smsbridge_outgoing_claimed",
        "claimed_by",
        sqlite_where=text("claimed_by IS NOT NULL"),
        postgresql_where=text("claimed_by IS NOT NULL"),
    ),
    Index(
        "ix_smsbridge_outgoing_in_flight",
        "lease_until",
        sqlite_where=text("sending_since IS NOT NULL"),
        postgresql_where=text("sending_since IS NOT NULL"),
    ),
)

# Queries on the outbox repeat the claim index's predicate word for word: SQLite uses a
# partial index only when the query's WHERE contains the index's terms literally (a bound
# parameter for 'pending' would not do).
PENDING_OUTBOX = text("smsbridge_outgoing.status = 'pending' AND smsbridge_outgoing.outbox")

history = Table(
    "smsbridge_status_history",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column(
        "message_id",
        String(32),
        ForeignKey("smsbridge_outgoing.id", ondelete="CASCADE"),
        nullable=True,  # a report that arrived before its send was recorded
    ),
    Column("at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("raw_status", String(255)),
    Column("error_code", String(255)),
    Column("error_message", Text),
    Column("phone", String(128)),
    Column("provider_id", String(255)),
    Column("source", String(16), nullable=False),  # send | report | worker
    Column("report_key", String(700)),  # phone, provider id, status: dedupes reports
    Column("raw", JsonType),
    UniqueConstraint("report_key", name="uq_smsbridge_status_history_report"),
    Index("ix_smsbridge_status_history_message", "message_id", "id"),
    Index("ix_smsbridge_status_history_provider", "phone", "provider_id"),
)

attempts = Table(
    "smsbridge_attempts",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column(
        "message_id",
        String(32),
        ForeignKey("smsbridge_outgoing.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("phone", String(128), nullable=False),
    Column("error", Text),
    Column("error_type", String(64)),
    Column("at", UTCDateTime(), nullable=False),
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Index("ix_smsbridge_attempts_message", "message_id", "id"),
)

incoming = Table(
    "smsbridge_incoming",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("phone", String(128), nullable=False),
    Column("sender", String(64), nullable=False),
    Column("recipient", String(64)),
    Column("body", Text, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("stored_at", UTCDateTime(), nullable=False),
    Column("provider_id", String(255)),
    Column("media", JsonType),
    Column("raw", JsonType),
    UniqueConstraint("phone", "provider_id", name="uq_smsbridge_incoming_provider"),
    Index("ix_smsbridge_incoming_received", "received_at"),
)

# v3: the opt-out list and verification codes (smsbridge.store.features). Created by
# ``create_all`` before v3: the migration keeps tables that already exist, so these
# definitions (names of the index and unique constraint included) must not change.
optouts = Table(
    "smsbridge_optouts",
    metadata,
    Column("number", String(32), primary_key=True),
    Column("opted_out_at", UTCDateTime(), nullable=False, index=True),
    Column("keyword", String(64)),
    Column("phone", String(128)),
    Column("source", String(16), nullable=False),
)

verifications = Table(
    "smsbridge_verifications",
    metadata,
    Column("number", String(32), primary_key=True),
    Column("purpose", String(64), primary_key=True),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("digest", String(128), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("window_started_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("sends", Integer, nullable=False, default=1),
    Column("used_at", UTCDateTime()),
)

# v3: a small key-value cache shared by processes (e.g. provider access tokens)
cache = Table(
    "smsbridge_cache",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)
