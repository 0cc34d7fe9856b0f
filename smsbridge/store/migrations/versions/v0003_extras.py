"""Opt-outs and verification codes join the migrations; a key-value cache.

``smsbridge_optouts`` and ``smsbridge_verifications`` were created by ``create_all``
(smsbridge.store_extras) before this version, so a database may already have them: they
are created only when missing, with exactly the definitions ``create_all`` used, and
their rows are kept. ``smsbridge_cache`` holds short-lived values shared by processes
(e.g. provider access tokens).

Downgrading drops ``smsbridge_cache`` only: the older code still uses the other two
tables (it creates them when missing), and an opt-out list must never be lost.

Revision ID: 0003_extras
Revises: 0002_outbox
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_extras"
down_revision: str | None = "0002_outbox"
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "smsbridge_optouts" not in existing:
        op.create_table(
            "smsbridge_optouts",
            sa.Column("number", sa.String(32), primary_key=True),
            sa.Column("opted_out_at", TZ, nullable=False),
            sa.Column("keyword", sa.String(64)),
            sa.Column("phone", sa.String(128)),
            sa.Column("source", sa.String(16), nullable=False),
        )
        op.create_index("ix_smsbridge_optouts_opted_out_at", "smsbridge_optouts", ["opted_out_at"])
    if "smsbridge_verifications" not in existing:
        op.create_table(
            "smsbridge_verifications",
            sa.Column("number", sa.String(32), primary_key=True),
            sa.Column("purpose", sa.String(64), primary_key=True),
            sa.Column("record_id", sa.String(32), nullable=False, unique=True),
            sa.Column("digest", sa.String(128), nullable=False),
            sa.Column("salt", sa.String(64), nullable=False),
            sa.Column("sent_at", TZ, nullable=False),
            sa.Column("expires_at", TZ, nullable=False),
            sa.Column("window_started_at", TZ, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("sends", sa.Integer, nullable=False),
            sa.Column("used_at", TZ),
        )
    op.create_table(
        "smsbridge_cache",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("smsbridge_cache")
