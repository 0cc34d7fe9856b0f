"""Alembic environment of the message store.

smsbridge runs it itself (:func:`smsbridge.store.migrate.upgrade`) with an open connection
in ``config.attributes["connection"]``, already inside a transaction that holds the
migration lock, so every migration of one upgrade commits or rolls back together.
For development, ``alembic -x url=sqlite:///dev.db upgrade head`` also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from smsbridge.store.schema import VERSION_TABLE, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from smsbridge.store.sql import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///smsbridge.db upgrade head")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


main()
