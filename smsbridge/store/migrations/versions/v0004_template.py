"""The template slug and locale of each outgoing message.

Revision ID: 0004_template
Revises: 0003_extras
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_template"
down_revision: str | None = "0003_extras"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain nullable ADD COLUMNs: no table copy on SQLite, no rewrite on PostgreSQL.
    op.add_column("smsbridge_outgoing", sa.Column("template", sa.String(128)))
    op.add_column("smsbridge_outgoing", sa.Column("locale", sa.String(35)))


def downgrade() -> None:
    with op.batch_alter_table("smsbridge_outgoing") as batch:
        batch.drop_column("locale")
        batch.drop_column("template")
