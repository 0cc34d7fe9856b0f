"""Schema migrations: from an empty database, from the previous version.

Many processes migrating one empty database at once: see test_outbox_idempotency.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, text

from smsbridge import ConfigError, Status
from smsbridge.store import migrate, open_store
from smsbridge.store.schema import VERSION_TABLE, metadata
from smsbridge.store.sql import make_engine

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url, bridges
from conftest_store import config_text, make_bridge  # noqa: E402

HEAD = "0004_template"


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
    assert migrate.current_revision(store.engine) == migrate.head_revision() == HEAD
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
        assert migrate.current_revision(store.engine) == HEAD  # type: ignore[union-attr]
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


def legacy_extras_metadata() -> MetaData:
    """The opt-out and verification tables as ``create_all`` made them before v3
    (a frozen copy of the old smsbridge.store.features definitions)."""
    tz = DateTime(timezone=True)
    meta = MetaData()
    Table(
        "smsbridge_optouts",
        meta,
        Column("number", String(32), primary_key=True),
        Column("opted_out_at", tz, nullable=False, index=True),
        Column("keyword", String(64)),
        Column("phone", String(128)),
        Column("source", String(16), nullable=False),
    )
    Table(
        "smsbridge_verifications",
        meta,
        Column("number", String(32), primary_key=True),
        Column("purpose", String(64), primary_key=True),
        Column("record_id", String(32), nullable=False, unique=True),
        Column("digest", String(128), nullable=False),
        Column("salt", String(64), nullable=False),
        Column("sent_at", tz, nullable=False),
        Column("expires_at", tz, nullable=False),
        Column("window_started_at", tz, nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("sends", Integer, nullable=False, default=1),
        Column("used_at", tz),
    )
    return meta


@pytest.mark.parametrize("legacy_tables", [False, True], ids=["fresh", "legacy-extras"])
def test_upgrade_from_v2_keeps_data(store_url: str, legacy_tables: bool) -> None:
    """v2 → v3: the outbox rows stay; opt-outs and verification codes that the old
    ``create_all`` kept in the store's database stay too (the migration adopts them)."""
    from smsbridge.optouts import OptOut
    from smsbridge.store.features import SqlOptOutStore, SqlVerificationStore

    engine = make_engine(store_url)
    assert migrate.upgrade(engine, "0002_outbox")
    now = "2026-01-02 03:04:05" if engine.dialect.name == "sqlite" else "2026-01-02T03:04:05Z"
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        for statement in V1_ROWS.strip().split(";"):
            if statement.strip():
                conn.execute(text(statement), {"t": now})
        conn.execute(text("UPDATE smsbridge_outgoing SET outbox = true, lane = 'l1'"))
    if legacy_tables:
        legacy = legacy_extras_metadata()
        legacy.create_all(engine)
        optouts, verifications = legacy.tables.values()
        with engine.begin() as conn:
            conn.execute(
                optouts.insert().values(
                    number="+2250701020304", opted_out_at=at, keyword="STOP", source="sms"
                )
            )
            conn.execute(
                verifications.insert().values(
                    number="+2250701020304",
                    purpose="login",
                    record_id="r1",
                    digest="d" * 64,
                    salt="s" * 32,
                    sent_at=at,
                    expires_at=at + timedelta(minutes=10),
                    window_started_at=at,
                )
            )
    engine.dispose()

    store = open_store(store_url)
    try:
        assert migrate.current_revision(store.engine) == HEAD
        stored = store.get_message("old1")
        assert stored is not None and stored.outbox and stored.provider_id == "pid-old"
        assert [m.body for m in store.list_incoming()] == ["hello"]
        optout_store = SqlOptOutStore(store.engine)
        codes = SqlVerificationStore(store.engine)
        if legacy_tables:
            entry = optout_store.get("+2250701020304")
            assert entry is not None and entry.keyword == "STOP" and entry.at == at
            record = codes.get("+2250701020304", "login")
            assert record is not None and record.record_id == "r1"
            assert record.expires_at == at + timedelta(minutes=10)
        else:
            assert optout_store.count() == 0
        assert optout_store.add(OptOut("+2250701020399"))
        store.cache_set("ns", "k", "v", datetime.now(UTC) + timedelta(minutes=1))
        assert store.cache_get("ns", "k") is not None
    finally:
        store.close()
    # the adopted tables are exactly the ones the code declares
    assert schema_diff(store_url) == []


def test_downgrade_from_v3_keeps_the_optouts(store_url: str) -> None:
    from smsbridge.optouts import OptOut
    from smsbridge.store.features import SqlOptOutStore

    store = open_store(store_url)
    SqlOptOutStore(store.engine).add(OptOut("+2250701020304"))
    migrate.downgrade(store.engine, "0002_outbox")
    assert migrate.current_revision(store.engine) == "0002_outbox"
    assert migrate.upgrade(store.engine)
    assert SqlOptOutStore(store.engine).count() == 1
    store.close()
    assert schema_diff(store_url) == []


def test_downgrade_and_upgrade_again(store_url: str) -> None:
    store = open_store(store_url)
    migrate.downgrade(store.engine, "0001_initial")
    assert migrate.current_revision(store.engine) == "0001_initial"
    assert migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == HEAD
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
