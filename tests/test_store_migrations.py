"""Schema migrations: from an empty database, from the previous version.

Many processes migrating one empty database at once: see test_outbox_idempotency.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from smsbridge import ConfigError, Status
from smsbridge.store import migrate, open_store
from smsbridge.store.schema import VERSION_TABLE, metadata
from smsbridge.store.sql import make_engine

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import config_text, make_bridge  # noqa: E402


def schema_diff(url: str) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ours = set(metadata.tables)

            def include_name(name: str | None, type_: str, parents: dict[str, Any]) -> bool:
                # other smsbridge features may keep their own tables in this database
                table = name if type_ == "table" else parents.get("table_name")
                return table is None or table in ours

            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "compare_type": True,
                    "include_name": include_name,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_empty_database_gets_the_newest_schema(store_url: str) -> None:
    store = open_store(store_url)
    assert migrate.current_revision(store.engine) == migrate.head_revision() == "0002_outbox"
    store.close()
    # the migrations build exactly the tables the code uses
    assert schema_diff(store_url) == []
    # opening again is a no-op
    store = open_store(store_url)
    assert not migrate.upgrade(store.engine)
    store.close()


V1_ROWS = """
INSERT INTO smsbridge_outgoing (id, created_at, updated_at, "to", body, flash, status,
    status_at, phone, provider_id, segments, encoding, idempotency_key)
VALUES ('old1', :t, :t, '+2250701020304', 'sent before the upgrade', false, 'queued', :t,
    'dev', 'pid-old', 1, 'gsm7', 'key-old');
INSERT INTO smsbridge_attempts (message_id, phone, at, retries) VALUES ('old1', 'dev', :t, 0);
INSERT INTO smsbridge_status_history (message_id, at, status, source, phone, provider_id)
VALUES ('old1', :t, 'queued', 'send', 'dev', 'pid-old');
INSERT INTO smsbridge_incoming (id, phone, sender, body, received_at, stored_at, provider_id)
VALUES ('in1', 'dev', '+2250701020304', 'hello', :t, :t, 'in-old');
"""


def test_upgrade_from_the_previous_version_keeps_data(store_url: str) -> None:
    engine = make_engine(store_url)
    assert migrate.upgrade(engine, "0001_initial")
    assert migrate.current_revision(engine) == "0001_initial"
    now = "2026-01-02 03:04:05" if engine.dialect.name == "sqlite" else "2026-01-02T03:04:05Z"
    with engine.begin() as conn:
        columns = (
            {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(smsbridge_outgoing)")}
            if engine.dialect.name == "sqlite"
            else set()
        )
        for statement in V1_ROWS.strip().split(";"):
            if statement.strip():
                conn.execute(text(statement), {"t": now})
    engine.dispose()
    if columns:
        assert "outbox" not in columns  # really the v1 table

    bridge = make_bridge(config_text(store_url, "  dev: {plugin: dummy, delivery: none}\n"))
    try:
        store = bridge.store
        assert migrate.current_revision(store.engine) == "0002_outbox"  # type: ignore[union-attr]
        old = store.get_result("old1")  # type: ignore[union-attr]
        assert old is not None and old.status is Status.queued and old.provider_id == "pid-old"
        assert [a.phone for a in old.attempts] == ["dev"]
        stored = store.get_message("old1")  # type: ignore[union-attr]
        assert stored is not None and not stored.outbox and stored.created_at.year == 2026
        # reports still find old messages, idempotency keys still hold
        phone = bridge.phone("dev")
        phone.simulate_status("pid-old", "delivered")  # type: ignore[attr-defined]
        assert store.get_result("old1").status is Status.delivered  # type: ignore[union-attr]
        again = bridge.send("+2250701020304", "x", idempotency_key="key-old")
        assert again.message_id == "old1"
        # and the new outbox works on the upgraded database
        new_id = bridge.enqueue("+2250701020304", "after the upgrade")
        claimed = store.claim("w1", limit=5)  # type: ignore[union-attr]
        assert [c.message_id for c in claimed] == [new_id]
        assert [m.body for m in store.list_incoming()] == ["hello"]  # type: ignore[union-attr]
    finally:
        bridge.close()
    assert schema_diff(store_url) == []


def test_downgrade_and_upgrade_again(store_url: str) -> None:
    store = open_store(store_url)
    migrate.downgrade(store.engine, "0001_initial")
    assert migrate.current_revision(store.engine) == "0001_initial"
    assert migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == "0002_outbox"
    store.close()


def test_a_newer_schema_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer"):
        open_store(store_url)


def test_bridge_reports_a_bad_store_as_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="store"):
        make_bridge(config_text("mysql://x@localhost/db", "  dev: {plugin: dummy}\n"))
    missing_dir = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(ConfigError, match="cannot open store"):
        make_bridge(config_text(f"sqlite:///{missing_dir}", "  dev: {plugin: dummy}\n"))
