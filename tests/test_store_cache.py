"""The store's key-value cache (``smsbridge_cache``): get/set/delete, expiry, sharing.

SQLite always; PostgreSQL too when ``SMSBRIDGE_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from smsbridge.cache import KeyValueCache
from smsbridge.store import open_store
from smsbridge.store.protocol import MessageStore
from smsbridge.store.schema import cache
from smsbridge.store.sql import SqlStore

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("conftest_store")
pytest_plugins = ("conftest_store",)  # fixtures: store_url, pg_url
from conftest_store import start_together  # noqa: E402


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def later(seconds: float = 60.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def rows(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(cache)).scalar_one())


def test_the_sql_store_is_a_key_value_cache(store: SqlStore) -> None:
    assert isinstance(store, KeyValueCache) and isinstance(store, MessageStore)


def test_set_get_delete(store: SqlStore) -> None:
    assert store.cache_get("ns", "k") is None
    expires = later()
    store.cache_set("ns", "k", "välue ✓", expires)
    found = store.cache_get("ns", "k")
    assert found is not None
    value, at = found
    assert value == "välue ✓"
    assert at.tzinfo is not None and abs(at - expires) < timedelta(milliseconds=1)
    # namespaces are separate
    assert store.cache_get("other", "k") is None
    store.cache_delete("ns", "k")
    assert store.cache_get("ns", "k") is None
    store.cache_delete("ns", "k")  # deleting nothing is fine


def test_set_replaces_the_value_and_expiry(store: SqlStore) -> None:
    store.cache_set("ns", "k", "one", later(60))
    store.cache_set("ns", "k", "two", later(3600))
    found = store.cache_get("ns", "k")
    assert found is not None and found[0] == "two"
    assert found[1] > later(3000)
    assert rows(store) == 1


def test_expired_values_are_not_returned_and_are_cleaned_up(store: SqlStore) -> None:
    store.cache_set("ns", "old", "stale", datetime.now(UTC) - timedelta(seconds=1))
    store.cache_set("keep", "old", "stale", datetime.now(UTC) - timedelta(seconds=1))
    assert store.cache_get("ns", "old") is None
    assert rows(store) == 2
    store.cache_set("ns", "new", "fresh", later())  # drops the namespace's expired rows
    assert rows(store) == 2  # ns/new and keep/old
    found = store.cache_get("ns", "new")
    assert found is not None and found[0] == "fresh"


def test_expiry_in_another_time_zone(store: SqlStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.cache_set("ns", "k", "v", datetime.now(plus_two) + timedelta(minutes=5))
    found = store.cache_get("ns", "k")
    assert found is not None and found[1].utcoffset() == timedelta(0)
    with pytest.raises(StatementError, match="naive"):
        store.cache_set("ns", "k", "v", datetime.now() + timedelta(minutes=5))


def test_processes_share_the_cache(store: SqlStore, store_url: str) -> None:
    """Values written by one process are read by others; concurrent upserts of one key
    all succeed and leave one row."""
    code = (
        "from datetime import UTC, datetime, timedelta\n"
        f"s = smsbridge.store.open_store({store_url!r})\n"
        "for i in range(20):\n"
        "    s.cache_set('ns', 'shared', f'v{i}', datetime.now(UTC) + timedelta(minutes=5))\n"
        "print(s.cache_get('ns', 'shared')[0])\n"
        "s.close()\n"
    )
    results = start_together([code] * 2)
    assert [rc for rc, _, _ in results] == [0, 0], results
    found = store.cache_get("ns", "shared")
    assert found is not None and found[0] == "v19"
    assert rows(store) == 1


def test_a_lease_has_one_holder_until_it_expires(store: SqlStore) -> None:
    from smsbridge.clock import FakeClock

    clock = store.clock = FakeClock(datetime.now(UTC))
    assert store.lease_holder("lane:a") is None
    assert store.acquire_lease("lane:a", "w1", 10)
    assert not store.acquire_lease("lane:a", "w2", 10)  # held by w1
    assert store.lease_holder("lane:a") == ("w1", clock() + timedelta(seconds=10))
    clock.advance(8)
    assert store.acquire_lease("lane:a", "w1", 10)  # renewal by the holder
    clock.advance(8)
    assert not store.acquire_lease("lane:a", "w2", 10)  # the renewal still runs
    clock.advance(3)
    assert store.acquire_lease("lane:a", "w2", 10)  # expired: taken over
    assert not store.release_lease("lane:a", "w1")  # w1 no longer holds it
    assert store.release_lease("lane:a", "w2")
    assert store.acquire_lease("lane:a", "w3", 10) and store.acquire_lease("lane:b", "w1", 10)


def test_processes_racing_for_a_lease_get_one_holder(store_url: str, store: SqlStore) -> None:
    code = (
        "import os\n"
        f"s = smsbridge.store.open_store({store_url!r})\n"
        "print(sum(s.acquire_lease('race', str(os.getpid()), 60) for _ in range(5)))\n"
        "s.close()\n"
    )
    results = start_together([code] * 4)
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], results
    wins = [int(out) for _, out, _ in results]
    assert sorted(wins) == [0, 0, 0, 5]  # one process got it (and renewed it), the rest none
