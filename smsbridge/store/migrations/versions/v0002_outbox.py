"""The outbox: enqueued messages, scheduled sends, worker claims with leases.

Revision ID: 0002_outbox
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_outbox"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)
CLAIMABLE = "status = 'pending' AND outbox"


def upgrade() -> None:
    # Plain ADD COLUMNs (constant defaults only): no table copy on SQLite, no rewrite on
    # PostgreSQL, so the upgrade is quick even on a large table.
    table = "smsbridge_outgoing"
    op.add_column(
        table, sa.Column("outbox", sa.Boolean, nullable=False, server_default=sa.text("false"))
    )
    op.add_column(table, sa.Column("lane", sa.String(128)))
    op.add_column(table, sa.Column("send_at", TZ))
    op.add_column(table, sa.Column("claimed_by", sa.String(128)))
    op.add_column(table, sa.Column("claim_token", sa.String(32)))
    op.add_column(table, sa.Column("lease_until", TZ))
    op.add_column(table, sa.Column("sending_since", TZ))
    op.add_column(
        table, sa.Column("claims", sa.Integer, nullable=False, server_default=sa.text("0"))
    )
    op.add_column(table, sa.Column("polled_at", TZ))
    op.create_index(
        "ix_smsbridge_outgoing_claim",
        table,
        ["lane", "seq"],
        sqlite_where=sa.text(CLAIMABLE),
        postgresql_where=sa.text(CLAIMABLE),
    )
    for name, column, where in (
        ("ix_smsbridge_outgoing_claimed", "claimed_by", "claimed_by IS NOT NULL"),
        ("ix_smsbridge_outgoing_in_flight", "lease_until", "sending_since IS NOT NULL"),
    ):
        op.create_index(
            name,
            table,
            [column],
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    table = "smsbridge_outgoing"
    for name in (
        "ix_smsbridge_outgoing_in_flight",
        "ix_smsbridge_outgoing_claimed",
        "ix_smsbridge_outgoing_claim",
    ):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table(table) as batch:
        for column in (
            "polled_at",
            "claims",
            "sending_since",
            "lease_until",
            "claim_token",
            "claimed_by",
            "send_at",
            "lane",
            "outbox",
        ):
            batch.drop_column(column)
