"""Initial store: outgoing messages, status history, attempts, incoming messages.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _seq() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "smsbridge_outgoing",
        sa.Column("seq", _seq(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("to", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sender", sa.String(64)),
        sa.Column("requested_phone", sa.String(128)),
        sa.Column("tag", sa.String(128)),
        sa.Column("flash", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("media", _json()),
        sa.Column("meta", _json()),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", TZ, nullable=False),
        sa.Column("phone", sa.String(128)),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("segments", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("encoding", sa.String(8), nullable=False, server_default=sa.text("'gsm7'")),
        sa.Column("error", _json()),
        sa.Column("raw", _json()),
        sa.UniqueConstraint("id", name="uq_smsbridge_outgoing_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_smsbridge_outgoing_idempotency_key"),
    )
    op.create_index(
        "ix_smsbridge_outgoing_provider", "smsbridge_outgoing", ["phone", "provider_id"]
    )
    op.create_index("ix_smsbridge_outgoing_status", "smsbridge_outgoing", ["status", "created_at"])
    op.create_index("ix_smsbridge_outgoing_created", "smsbridge_outgoing", ["created_at"])

    op.create_table(
        "smsbridge_status_history",
        sa.Column("id", _seq(), primary_key=True, autoincrement=True),
        sa.Column(
            "message_id",
            sa.String(32),
            sa.ForeignKey("smsbridge_outgoing.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw_status", sa.String(255)),
        sa.Column("error_code", sa.String(255)),
        sa.Column("error_message", sa.Text),
        sa.Column("phone", sa.String(128)),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("report_key", sa.String(700)),
        sa.Column("raw", _json()),
        sa.UniqueConstraint("report_key", name="uq_smsbridge_status_history_report"),
    )
    op.create_index(
        "ix_smsbridge_status_history_message", "smsbridge_status_history", ["message_id", "id"]
    )
    op.create_index(
        "ix_smsbridge_status_history_provider",
        "smsbridge_status_history",
        ["phone", "provider_id"],
    )

    op.create_table(
        "smsbridge_attempts",
        sa.Column("id", _seq(), primary_key=True, autoincrement=True),
        sa.Column(
            "message_id",
            sa.String(32),
            sa.ForeignKey("smsbridge_outgoing.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("phone", sa.String(128), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("error_type", sa.String(64)),
        sa.Column("at", TZ, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_smsbridge_attempts_message", "smsbridge_attempts", ["message_id", "id"])

    op.create_table(
        "smsbridge_incoming",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("phone", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("stored_at", TZ, nullable=False),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("media", _json()),
        sa.Column("raw", _json()),
        sa.UniqueConstraint("phone", "provider_id", name="uq_smsbridge_incoming_provider"),
    )
    op.create_index("ix_smsbridge_incoming_received", "smsbridge_incoming", ["received_at"])


def downgrade() -> None:
    op.drop_table("smsbridge_incoming")
    op.drop_table("smsbridge_attempts")
    op.drop_table("smsbridge_status_history")
    op.drop_table("smsbridge_outgoing")
